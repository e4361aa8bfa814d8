import Foundation

extension Timestamp {
    /// The wall clock readings, in milliseconds since the Unix epoch, that a calendar date can show:
    /// 0001-01-01 00:00:00.000 UTC to 9999-12-31 23:59:59.999 UTC (four-digit years, as RFC 3339 has them).
    public static let displayableMillis: ClosedRange<Int64> = -62_135_596_800_000 ... 253_402_300_799_999

    /// A wall clock reading for people, total over every `Int64`: `2026-11-27 10:03:05.123 UTC`
    /// (milliseconds only when not zero), or for a reading no calendar date can show, the raw
    /// value with a note: `wall 9223372036854775296 ms (beyond any date)`.
    ///
    /// The protocol accepts any HLC wall from 0 to `Int64.max`, so output that shows one uses this:
    /// a year with six or more digits is no date a reader can place, and is not passed off as one.
    ///
    /// ```swift
    /// Timestamp.displayText(millis: 1_764_000_000_005)  // "2025-11-24 16:00:00.005 UTC"
    /// ```
    public static func displayText(millis: Int64) -> String {
        guard displayableMillis.contains(millis) else {
            return "wall \(millis) ms (\(millis < 0 ? "before" : "beyond") any date)"
        }
        // In this range the Double of `date(millis:)` holds the milliseconds exactly.
        return format(date(millis: millis)).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
    }
}
