import Foundation
import ReaderSyncCore

/// A Reader API request's parameters: the query string's and, for a form POST, the body's
/// (`application/x-www-form-urlencoded`), in order, keys repeatable (`i=1&i=2`).
///
/// Decoded as HTML forms are: `+` is a space, `%XX` a byte, and the bytes must be UTF-8.
/// Clients send parameters in either place (NetNewsWire puts `T` in the body, newsboat some
/// in the query), so a handler reads both alike.
struct ReaderParameters: Sendable {
    private var pairs: [(key: String, value: String)] = []

    /// - Throws: ``SyncError`` `invalid_request` when a value is not percent-encoded UTF-8.
    init(query: String?, form: String? = nil) throws(SyncError) {
        for text in [query, form] {
            guard let text else { continue }
            for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = try Self.decode(parts[0])
                let value = try Self.decode(parts.count > 1 ? parts[1] : "")
                pairs.append((key, value))
            }
        }
    }

    /// The first value of `name`, or `nil` when absent.
    func first(_ name: String) -> String? {
        pairs.first { $0.key == name }?.value
    }

    /// Every value of `name`, in order.
    func all(_ name: String) -> [String] {
        pairs.filter { $0.key == name }.map(\.value)
    }

    /// The first value of `name` as an integer, or `nil` when absent or empty.
    ///
    /// - Throws: ``SyncError`` `invalid_request` when present and not an integer.
    func integer(_ name: String) throws(SyncError) -> Int? {
        guard let text = first(name), !text.isEmpty else { return nil }
        guard let value = Int(text) else {
            throw SyncError(.invalidRequest, "\(name) must be an integer, got '\(text.prefix(40))'")
        }
        return value
    }

    private static func decode(_ text: Substring) throws(SyncError) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        guard spaced.contains("%") else { return spaced }
        guard let decoded = spaced.removingPercentEncoding else {
            throw SyncError(.invalidRequest, "a parameter is not percent-encoded UTF-8 (a '%' must be followed by two hex "
                + "digits, and a literal '%' is %25)")
        }
        return decoded
    }
}
