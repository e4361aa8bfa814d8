import Foundation

/// RFC 3339 UTC text, as the protocol carries dates: `2026-11-27T08:15:00Z`, with `.SSS`
/// milliseconds only when they are not zero.
///
/// Parsing is strict and exact, by the grammar of RFC 3339 section 5.6 (`date-time`) and the
/// proleptic Gregorian calendar: a date that does not exist (`2026-02-30`, `2026-04-31`, hour 24,
/// minute 60) is refused, never rolled over into the next day or month as Foundation's
/// `ISO8601FormatStyle` does. Formatting uses the same calendar, so every text ``parse(_:)``
/// accepts formats back to the same instant.
public enum Timestamp {
    /// Parses an RFC 3339 date-time (section 5.6), strictly.
    ///
    /// Accepted: `YYYY-MM-DDThh:mm:ss`, an optional fraction of 1 to 9 digits after a `.`, then `Z`
    /// or a `±hh:mm` offset; `t` and `z` may be lower case (RFC 3339 5.6, note). The month is
    /// 01–12, the day exists in that month (2024-02-29 does, 2026-02-29 does not), the hour 00–23,
    /// the minute and second 00–59, and an offset's hours 00–23 and minutes 00–59.
    /// Refused: a leap second (`:60`, which RFC 3339 allows only at a real leap second and a
    /// `Date` cannot hold, so it could only be rolled over or moved), a missing offset (a local
    /// time is no instant), `±hhmm` and `±hh` offsets, a space for `T`, and any text around it.
    /// Digits beyond milliseconds are dropped (truncated, so a date never moves to the next second).
    ///
    /// ```swift
    /// try Timestamp.date(parsing: "2026-11-27T10:15:00.250+02:00")  // 2026-11-27 08:15:00.250 UTC
    /// try Timestamp.date(parsing: "2026-02-30T08:15:00Z")  // throws: February 2026 has 28 days, not 30
    /// ```
    ///
    /// - Throws: ``SyncError`` `invalid_request` whose message says what is wrong; the message
    ///   does not repeat `text`, so a caller can name the field and quote it.
    public static func date(parsing text: String) throws(SyncError) -> Date {
        let fields = try Fields(text)
        let days = daysSinceEpoch(year: fields.year, month: fields.month, day: fields.day)
        let seconds = Int64(days) * 86_400 + Int64(fields.hour * 3600 + fields.minute * 60 + fields.second)
            - Int64(fields.offsetMinutes * 60)
        return date(millis: seconds * 1000 + Int64(fields.nanoseconds / 1_000_000))
    }

    /// Parses an RFC 3339 date-time strictly (see ``date(parsing:)``).
    ///
    /// - Returns: `nil` when `text` is not such a date; ``date(parsing:)`` says why.
    public static func parse(_ text: String) -> Date? {
        try? date(parsing: text)
    }

    /// Parses strictly (see ``date(parsing:)``) and re-formats, so equal instants always compare
    /// equal as text: `2026-11-27T10:15:00+02:00` → `2026-11-27T08:15:00Z`.
    ///
    /// - Throws: ``SyncError`` `invalid_request` saying what is wrong with `text`.
    public static func canonical(parsing text: String) throws(SyncError) -> String {
        format(try date(parsing: text))
    }

    /// Parses and re-formats, so equal instants always compare equal as text.
    ///
    /// - Returns: `nil` when `text` is not an RFC 3339 date-time; ``canonical(parsing:)`` says why.
    public static func canonical(_ text: String) -> String? {
        try? canonical(parsing: text)
    }

    /// Formats `date` canonically (UTC, milliseconds only when not zero).
    ///
    /// Years 0000–9999 are four digits, as RFC 3339 has them; a date outside them (no article or
    /// clock has one) gets ISO 8601's signed expanded year rather than a trap.
    public static func format(_ date: Date) -> String {
        // Integer arithmetic from whole milliseconds: a Double such as 1764000000.001 is just
        // below .001 and would print as .000.
        let millis = millis(date)
        let (days, ofDay) = floorDivision(millis, 86_400_000)
        let (year, month, day) = calendarDate(daysSinceEpoch: days)
        let hour = ofDay / 3_600_000, minute = ofDay / 60_000 % 60, second = ofDay / 1000 % 60, ms = ofDay % 1000
        let yearText = (0...9999).contains(year) ? pad(year, 4) : (year < 0 ? "-" : "+") + pad(year.magnitude, 4)
        let text = "\(yearText)-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
        return ms == 0 ? text + "Z" : text + "." + pad(ms, 3) + "Z"
    }

    /// A text bound for comparing canonical texts (``format(_:)``) as SQL `TEXT`: the whole
    /// second of `date`, without its `Z`. Milliseconds are left out of canonical text when zero,
    /// so `…:05Z` sorts after `…:05.250Z`; this bound sorts after every text of an earlier second
    /// and before every text of that second or later. `column < bound` is "before that second"
    /// (never a time at or after `date`, at most a second's short); `column >= bound` is "that
    /// second or later".
    public static func secondBound(_ date: Date) -> String {
        String(format(Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))).dropLast())
    }

    /// Milliseconds since the Unix epoch, rounded; a date beyond `Int64`'s range saturates
    /// instead of trapping.
    public static func millis(_ date: Date) -> Int64 {
        let value = (date.timeIntervalSince1970 * 1000).rounded()
        // 2^63 is exactly representable as a Double; Int64.max is not.
        if value >= 9_223_372_036_854_775_808.0 { return .max }
        if value < -9_223_372_036_854_775_808.0 || value.isNaN { return value.isNaN ? 0 : .min }
        return Int64(value)
    }

    /// The date `millis` milliseconds after the Unix epoch.
    public static func date(millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    // MARK: - RFC 3339 grammar

    /// The fields of an RFC 3339 `date-time`, read by its grammar and checked against the calendar.
    private struct Fields {
        var year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, nanoseconds = 0
        /// Minutes east of UTC.
        var offsetMinutes = 0

        static let expected = "expected an RFC 3339 date-time such as 2026-11-27T08:15:00Z or 2026-11-27T10:15:00.250+02:00"

        init(_ text: String) throws(SyncError) {
            let b = Array(text.utf8)
            func fail(_ reason: String) -> SyncError { SyncError(.invalidRequest, reason) }
            func isDigit(_ i: Int) -> Bool { i < b.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) }
            func number(_ start: Int, _ count: Int) -> Int? {
                guard (start..<start + count).allSatisfy(isDigit) else { return nil }
                return b[start..<start + count].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            }
            func byte(_ i: Int, is options: Character...) -> Bool {
                i < b.count && options.contains { $0.asciiValue == b[i] }
            }
            // full-date "T" partial-time, fixed widths: YYYY-MM-DDThh:mm:ss
            guard let year = number(0, 4), byte(4, is: "-"), let month = number(5, 2), byte(7, is: "-"),
                  let day = number(8, 2) else { throw fail(Self.expected) }
            guard byte(10, is: "T", "t") else {
                throw fail(b.count == 10 ? "a date without a time; \(Self.expected)" : Self.expected)
            }
            guard let hour = number(11, 2), byte(13, is: ":"), let minute = number(14, 2), byte(16, is: ":"),
                  let second = number(17, 2) else { throw fail(Self.expected) }
            var i = 19
            if byte(i, is: ".") {
                i += 1
                let start = i
                while isDigit(i) { i += 1 }
                guard i > start else { throw fail("a '.' must be followed by the fraction of a second (1 to 9 digits)") }
                guard i - start <= 9 else { throw fail("at most 9 digits of a fraction of a second, got \(i - start)") }
                let digits = number(start, i - start) ?? 0
                nanoseconds = digits * [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000][9 - (i - start)]
            }
            // time-offset = "Z" / ("+" / "-") time-hour ":" time-minute
            if byte(i, is: "Z", "z") {
                i += 1
            } else if byte(i, is: "+", "-") {
                let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                guard let offsetHour = number(i + 1, 2), byte(i + 3, is: ":"), let offsetMinute = number(i + 4, 2) else {
                    throw fail("the UTC offset must be Z or ±hh:mm, as in +02:00")
                }
                guard offsetHour <= 23 else { throw fail("the UTC offset's hour \(offsetHour) is not 00–23") }
                guard offsetMinute <= 59 else { throw fail("the UTC offset's minute \(offsetMinute) is not 00–59") }
                offsetMinutes = sign * (offsetHour * 60 + offsetMinute)
                i += 6
            } else if i == b.count {
                throw fail("no UTC offset: a local time is not an instant; end it with Z or ±hh:mm")
            } else {
                throw fail(Self.expected)
            }
            guard i == b.count else { throw fail("unexpected text after the UTC offset; \(Self.expected)") }

            // Calendar and clock ranges (RFC 3339 5.7): refused, never rolled over.
            guard (1...12).contains(month) else { throw fail("month \(month) is not 01–12") }
            let length = Timestamp.daysInMonth(year: year, month: month)
            guard day >= 1 else { throw fail("day \(day) is not a day of the month") }
            guard day <= length else {
                throw fail("\(Timestamp.monthNames[month - 1]) \(year) has \(length) days, not \(day)")
            }
            guard hour <= 23 else { throw fail("hour \(hour) is not 00–23") }
            guard minute <= 59 else { throw fail("minute \(minute) is not 00–59") }
            guard second != 60 else { throw fail("second 60 (a leap second) is not accepted; seconds are 00–59") }
            guard second <= 59 else { throw fail("second \(second) is not 00–59") }
            (self.year, self.month, self.day, self.hour, self.minute, self.second) = (year, month, day, hour, minute, second)
        }
    }

    private static let monthNames = ["January", "February", "March", "April", "May", "June", "July",
                                     "August", "September", "October", "November", "December"]

    /// Days in `month` of `year` in the proleptic Gregorian calendar (RFC 3339 appendix C's leap years).
    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    // MARK: - Proleptic Gregorian calendar (Howard Hinnant's days_from_civil and civil_from_days)

    /// Days from 1970-01-01 to the given valid date.
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// Year, month and day of a day count from 1970-01-01; total over every day an `Int64` of
    /// milliseconds can reach.
    static func calendarDate(daysSinceEpoch days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Quotient rounded down and a remainder in `0..<divisor`.
    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }

    private static func pad(_ value: some BinaryInteger, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
