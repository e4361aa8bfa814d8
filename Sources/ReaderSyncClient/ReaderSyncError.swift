import Foundation
import ReaderSyncCore

/// An error of the client SDK, with a stable code.
public struct ReaderSyncError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// An argument the app passed is out of range (an empty article id, progress outside 0…1).
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        /// The network or the server failed; nothing local was lost, try `sync()` again later.
        public static let transportFailed = Code(rawValue: "transport_failed")
        /// The server refused a request (see `message`); nothing local was lost.
        public static let serverRefused = Code(rawValue: "server_refused")
        /// The device store file is not a ReaderSync client store, or cannot be opened.
        public static let storeUnavailable = Code(rawValue: "store_unavailable")
        /// A row of the device store cannot be read (written by hand or by another version): the
        /// sync stops before sending anything, and the row stays where it is.
        public static let storeCorrupt = Code(rawValue: "store_corrupt")
    }

    public var code: Code
    public var message: String
    /// The server's error, when the server answered with one.
    public var serverError: SyncError?
    /// How long the server asked to wait before trying again (a `503` with `Retry-After`);
    /// ``SyncEngine`` waits at least this long, with backoff and jitter, before it retries.
    public var retryAfter: Duration?
    /// The HTTP status, when the server answered.
    public var httpStatus: Int?

    public init(_ code: Code, _ message: String, serverError: SyncError? = nil, retryAfter: Duration? = nil, httpStatus: Int? = nil) {
        self.code = code
        self.message = message
        self.serverError = serverError
        self.retryAfter = retryAfter
        self.httpStatus = httpStatus
    }

    public var description: String { "\(code): \(message)" }
}

extension ReaderSyncError {
    /// Whether the server said it has no such thing (`404`) or no longer has it (`410` but a
    /// reset): what a fetch of one article answers with `nil`.
    package var meansGone: Bool {
        httpStatus == 404 || (httpStatus == 410 && serverError?.code != .resetRequired && serverError?.code != .cursorExpired)
    }

    /// The error for a non-200 answer: the server's `{"error":{…}}` body when there is one;
    /// `transport_failed` for a 5xx (try again later), `server_refused` otherwise.
    ///
    /// - Parameter retryAfter: the `Retry-After` header; kept for a `503` or `429` in its seconds form.
    package static func answer(status: Int, body: some Sequence<UInt8>, request: String, retryAfter: String? = nil) -> ReaderSyncError {
        let serverError = (try? JSONDecoder().decode(ErrorBody.self, from: Data(body)))
            .map { SyncError(SyncError.Code(rawValue: $0.error.code), $0.error.message) }
        var wait: Duration?
        if status == 503 || status == 429 {
            // Seconds, or an HTTP date we do not parse: then the engine's own backoff applies.
            wait = .seconds(retryAfter.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }.map { min(max($0, 0), 300) } ?? 0)
        }
        return ReaderSyncError(status >= 500 ? .transportFailed : .serverRefused,
                               "\(request) answered \(status): \(serverError?.message ?? "no error body")",
                               serverError: serverError, retryAfter: wait, httpStatus: status)
    }
}
