import Foundation

/// ISO-8601 UTC text, as the protocol carries dates: `2026-11-27T08:15:00Z`, with `.SSS`
/// milliseconds only when they are not zero.
public enum Timestamp {
    /// Parses an ISO-8601 date-time with a `Z` or `±hh:mm` offset, with or without fractional seconds.
    ///
    /// - Returns: `nil` when `text` is not such a date.
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: plain) { return date }
        return try? Date(text, strategy: fractional)
    }

    /// Formats `date` canonically (UTC, milliseconds only when not zero).
    public static func format(_ date: Date) -> String {
        // Whole seconds through the formatter, milliseconds by integer arithmetic: a Double
        // such as 1764000000.001 is just below .001 and would print as .000.
        let millis = millis(date)
        let (seconds, fraction) = millis.quotientAndRemainder(dividingBy: 1000)
        let (wholeSeconds, ms) = fraction < 0 ? (seconds - 1, fraction + 1000) : (seconds, fraction)
        let text = Date(timeIntervalSince1970: Double(wholeSeconds)).formatted(plain)
        guard ms != 0 else { return text }
        let digits = String(ms)
        return String(text.dropLast()) + "." + String(repeating: "0", count: 3 - digits.count) + digits + "Z"
    }

    /// Parses and re-formats, so equal instants always compare equal as text.
    public static func canonical(_ text: String) -> String? {
        parse(text).map(format)
    }

    /// Milliseconds since the Unix epoch.
    public static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// The date `millis` milliseconds after the Unix epoch.
    public static func date(millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    private static let plain = Date.ISO8601FormatStyle(timeZone: .gmt)
    private static let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
}
