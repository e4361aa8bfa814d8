import Foundation
import Hummingbird
import ReaderSyncCore
import ReaderSyncService

/// A request's path and query parameters, each percent-decoded exactly once, strictly.
///
/// Route handlers get parameters only from here (``Route`` hands them this, not the raw
/// context), so a new route cannot forget to decode or decode twice. The router matches on the
/// raw path, split at `/` before decoding, so `%2F` stays inside its segment: an id may hold
/// any character. `+` is a literal plus, in the path and in the query (encode a space as `%20`).
///
/// ```swift
/// let id = try parameters.path("id")             // "/v1/admin/articles/caf%C3%A9" → "café"
/// let article = try parameters.query("article")  // nil when absent
/// ```
struct URLParameters: Sendable {
    private let pathParameters: Parameters
    /// The raw query string, after `?`; decoded per value asked for.
    private let rawQuery: Substring

    init(path: Parameters, query: String?) {
        pathParameters = path
        rawQuery = query.map { $0[...] } ?? ""
    }

    /// The decoded value of the route's `{name}` segment.
    ///
    /// - Throws: ``SyncError`` `invalid_request` when the segment is not percent-encoded UTF-8.
    func path(_ name: String) throws -> String {
        guard let raw = pathParameters.get(name) else {
            // The route template names its parameters, so this is a bug in the route table: a 500.
            throw MissingPathParameter(name: name)
        }
        return try Self.percentDecode(raw[...], what: "the path parameter \(name)")
    }

    /// The decoded value of the first `name=` query parameter, or `nil` when absent.
    ///
    /// - Throws: ``SyncError`` `invalid_request` when the value is not percent-encoded UTF-8.
    func query(_ name: String) throws -> String? {
        try rawValues(of: name).first.map { try Self.percentDecode($0, what: "the query parameter \(name)") }
    }

    /// The first `name=` value decoded as an HTML form sends it (`application/x-www-form-urlencoded`:
    /// `+` is a space), for the console's forms; `nil` when absent. A literal plus comes as `%2B`.
    ///
    /// - Throws: ``SyncError`` `invalid_request` when the value is not percent-encoded UTF-8.
    func formQuery(_ name: String) throws -> String? {
        try rawValues(of: name).first.map {
            try Self.percentDecode(Substring($0.replacingOccurrences(of: "+", with: " ")), what: "the query parameter \(name)")
        }
    }

    /// The decoded values of every `name=` query parameter, in order (`rule=a&rule=b`); empty when absent.
    ///
    /// - Throws: ``SyncError`` `invalid_request` when a value is not percent-encoded UTF-8.
    func queryAll(_ name: String) throws -> [String] {
        try rawValues(of: name).map { try Self.percentDecode($0, what: "the query parameter \(name)") }
    }

    /// The still-encoded values of every `name=` pair, in order. A key that does not decode cannot
    /// be one we know: ignored like any unknown parameter.
    private func rawValues(of name: String) -> [Substring] {
        rawQuery.split(separator: "&", omittingEmptySubsequences: true).compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = try? Self.percentDecode(parts[0], what: "a query parameter name"), key.isExactly(name) else { return nil }
            return parts.count > 1 ? parts[1] : ""
        }
    }

    /// Decodes `%XX` escapes into bytes and checks that the bytes are UTF-8 (Foundation's
    /// `removingPercentEncoding`, which treats `+` as itself, as RFC 3986 does).
    ///
    /// - Throws: ``SyncError`` `invalid_request` for `%` not followed by two hex digits, or bytes
    ///   that are not UTF-8.
    static func percentDecode(_ text: Substring, what: String) throws(SyncError) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return String(text) }
        guard let decoded = String(text).removingPercentEncoding else {
            throw SyncError(.invalidRequest, "\(what) is not percent-encoded UTF-8 (a '%' must be followed by two hex "
                + "digits, and a literal '%' is %25)")
        }
        return decoded
    }
}

/// A handler asked for a path parameter its route template does not have.
private struct MissingPathParameter: Error {
    var name: String
}
