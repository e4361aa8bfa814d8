import Foundation
import ReaderSyncCore
import Testing

/// `Timestamp` parses RFC 3339 (section 5.6) strictly: impossible dates are refused, never rolled over.
@Suite("Timestamp: strict RFC 3339 dates")
struct StrictTimestampTests {
    @Test("valid date-times parse to the right instant and format canonically", arguments: [
        ("2026-11-20T09:00:00Z", "2026-11-20T09:00:00Z"),
        ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z"),                // leap year
        ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z"),                // divisible by 400
        ("2026-04-30T23:59:59Z", "2026-04-30T23:59:59Z"),
        ("2026-12-31T23:59:59.999Z", "2026-12-31T23:59:59.999Z"),
        ("2026-11-20T09:00:00.5Z", "2026-11-20T09:00:00.500Z"),          // 1 fraction digit
        ("2026-11-20T09:00:00.123456789Z", "2026-11-20T09:00:00.123Z"),  // 9 digits, truncated to ms
        ("2026-12-31T23:59:59.9999Z", "2026-12-31T23:59:59.999Z"),       // truncated: no rollover into 2027
        ("2026-11-20T09:00:00.000Z", "2026-11-20T09:00:00Z"),
        ("2026-11-20T10:00:00+01:00", "2026-11-20T09:00:00Z"),
        ("2026-11-20T03:15:00-05:45", "2026-11-20T09:00:00Z"),
        ("2026-11-20T09:00:00-00:00", "2026-11-20T09:00:00Z"),           // RFC 3339 4.3: unknown local offset
        ("2026-11-21T08:59:00+23:59", "2026-11-20T09:00:00Z"),           // the largest offset RFC 3339 allows
        ("2026-11-20t09:00:00z", "2026-11-20T09:00:00Z"),                // RFC 3339 5.6 note: lower case t and z
        ("2026-03-01T00:30:00+01:00", "2026-02-28T23:30:00Z"),           // an offset may cross a day: that is the instant
        ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),        // before the epoch
        ("1500-03-01T00:00:00Z", "1500-03-01T00:00:00Z"),                // proleptic Gregorian, no Julian switch
        ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
    ])
    func valid(text: String, canonical: String) throws {
        #expect(try Timestamp.canonical(parsing: text) == canonical)
        #expect(Timestamp.canonical(text) == canonical)
        // The canonical text is itself valid and stable.
        #expect(try Timestamp.canonical(parsing: canonical) == canonical)
    }

    @Test("impossible or malformed date-times are refused with the reason", arguments: [
        ("2026-02-30T08:15:00Z", "February 2026 has 28 days, not 30"),   // issue 10 item 4: was stored as 2026-03-02
        ("2026-02-29T08:15:00Z", "February 2026 has 28 days, not 29"),
        ("1900-02-29T00:00:00Z", "February 1900 has 28 days, not 29"),
        ("2026-04-31T00:00:00Z", "April 2026 has 30 days, not 31"),
        ("2026-06-31T00:00:00Z", "June 2026 has 30 days, not 31"),
        ("2026-01-32T00:00:00Z", "January 2026 has 31 days, not 32"),
        ("2026-01-00T00:00:00Z", "day 0 is not a day of the month"),
        ("2026-13-01T00:00:00Z", "month 13 is not 01–12"),
        ("2026-00-10T00:00:00Z", "month 0 is not 01–12"),
        ("2026-11-20T24:00:00Z", "hour 24 is not 00–23"),
        ("2026-11-20T23:60:00Z", "minute 60 is not 00–59"),
        ("2026-11-20T23:59:60Z", "second 60 (a leap second) is not accepted"),
        ("2026-11-20T23:59:61Z", "second 61 is not 00–59"),
        ("2026-11-20T09:00:00+24:00", "the UTC offset's hour 24 is not 00–23"),
        ("2026-11-20T09:00:00+01:60", "the UTC offset's minute 60 is not 00–59"),
        ("2026-11-20T09:00:00+0100", "the UTC offset must be Z or ±hh:mm"),
        ("2026-11-20T09:00:00+01", "the UTC offset must be Z or ±hh:mm"),
        ("2026-11-20T09:00:00", "no UTC offset"),
        ("2026-11-20T09:00:00.123", "no UTC offset"),
        ("2026-11-20", "a date without a time"),
        ("2026-11-20T09:00:00.Z", "a '.' must be followed by the fraction of a second"),
        ("2026-11-20T09:00:00.1234567891Z", "at most 9 digits of a fraction of a second, got 10"),
        ("2026-11-20T09:00:00ZZ", "unexpected text after the UTC offset"),
        ("2026-11-20T09:00:00Z ", "unexpected text after the UTC offset"),
        ("2026-11-20T09:00:00GMT", "expected an RFC 3339 date-time"),
        (" 2026-11-20T09:00:00Z", "expected an RFC 3339 date-time"),
        ("2026-11-20 09:00:00Z", "expected an RFC 3339 date-time"),
        ("2026-1-20T09:00:00Z", "expected an RFC 3339 date-time"),
        ("2026-11-20T9:00:00Z", "expected an RFC 3339 date-time"),
        ("12026-11-20T09:00:00Z", "expected an RFC 3339 date-time"),
        ("2026-11-20T09:00Z", "expected an RFC 3339 date-time"),
        ("２０２６-11-20T09:00:00Z", "expected an RFC 3339 date-time"),  // full-width digits
        ("last tuesday", "expected an RFC 3339 date-time"),
        ("", "expected an RFC 3339 date-time"),
    ])
    func invalid(text: String, reason: String) {
        #expect(Timestamp.parse(text) == nil)
        #expect(Timestamp.canonical(text) == nil)
        do {
            let date = try Timestamp.date(parsing: text)
            Issue.record("\(text.debugDescription) was accepted as \(Timestamp.format(date))")
        } catch {
            #expect(error.code == .invalidRequest)
            #expect(error.message.hasPrefix(reason), "\(text.debugDescription): \(error.message)")
        }
    }

    @Test("formatting is total: extreme dates neither trap nor print nonsense")
    func formatExtremes() {
        #expect(Timestamp.format(Timestamp.date(millis: 0)) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.format(Timestamp.date(millis: -1)) == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp.format(Timestamp.date(millis: 1_764_000_000_001)) == "2025-11-24T16:00:00.001Z")
        #expect(Timestamp.format(Timestamp.date(millis: 253_402_300_800_000)) == "+10000-01-01T00:00:00Z")
        #expect(Timestamp.millis(Timestamp.date(millis: .max)) == .max)
        #expect(Timestamp.millis(Timestamp.date(millis: .min)) == .min)
        #expect(Timestamp.format(Timestamp.date(millis: .max)).hasPrefix("+292278994-"))
        #expect(Timestamp.format(Timestamp.date(millis: .min)).hasPrefix("-292275055-"))
        #expect(Timestamp.millis(Date(timeIntervalSince1970: .infinity)) == .max)
    }
}
