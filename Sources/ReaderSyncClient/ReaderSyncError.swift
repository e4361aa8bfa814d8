import Foundation
import GRDB
import ReaderSyncCore

/// The one error type of the client SDK: every public throwing method of ``ReaderStore``,
/// ``SyncEngine`` and ``HTTPSyncTransport`` throws it (or `CancellationError` when its task is
/// cancelled), never an error of SQLite, GRDB or the HTTP client raw.
///
/// Switch on ``code`` (stable across releases; ``Code/rawValue`` is what to log); ``message``
/// is for logs and support, not for readers; ``cause`` keeps the underlying error. What to show
/// the reader for each code: docs/CLIENT.md, "Errors and what to show".
public struct ReaderSyncError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure it is: one of the constants below, compared with `==` or `switch`.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The code as logged, e.g. `transport_failed`.
        public var rawValue: String
        /// A code by its raw value (the constants below are the ones the SDK throws).
        public init(rawValue: String) { self.rawValue = rawValue }
        /// ``rawValue``.
        public var description: String { rawValue }

        /// An argument the app passed is out of range (an empty article id, progress outside 0…1).
        public static let invalidArgument = Code(rawValue: "invalid_argument")
        /// The network or the server failed; nothing local was lost, try `sync()` again later.
        public static let transportFailed = Code(rawValue: "transport_failed")
        /// The server refused a request (see `message`); nothing local was lost.
        public static let serverRefused = Code(rawValue: "server_refused")
        /// The device store file cannot be opened or is not a SQLite database (``ReaderStore/init(path:deviceId:options:now:)``).
        public static let storeUnavailable = Code(rawValue: "store_unavailable")
        /// The device store is damaged or not what this version wrote: SQLite says the file is
        /// corrupt, a table or column is missing, or a row cannot be read. Reading other data may
        /// still work; an outbox row that cannot be read is set aside, not lost
        /// (``ReaderStore/setAsideChanges()``). Reinstalling (a new store) is the remedy.
        public static let storeCorrupt = Code(rawValue: "store_corrupt")
        /// A read or write of the device store failed for a reason outside it: an I/O error, the
        /// file is read-only, or another process held it locked past the 10 s busy timeout.
        /// Nothing was half-written (each action is one transaction): the action did not happen;
        /// try again later. ``cause`` has SQLite's error.
        public static let storeFailed = Code(rawValue: "store_failed")
        /// The device is out of space: the store could not grow. Nothing was half-written; the
        /// action did not happen. Tell the reader to free space.
        public static let storeFull = Code(rawValue: "store_full")
    }

    /// What kind of failure it is; stable across releases.
    public var code: Code
    /// What happened, in English, for logs and support (not for readers; not stable).
    public var message: String
    /// The server's error, when the server answered with one.
    public var serverError: SyncError?
    /// How long the server asked to wait before trying again (a `503` with `Retry-After`);
    /// ``SyncEngine`` waits at least this long, with backoff and jitter, before it retries.
    public var retryAfter: Duration?
    /// The HTTP status, when the server answered.
    public var httpStatus: Int?
    /// The error underneath, when there is one: SQLite's (through GRDB) for the `store_` codes,
    /// the HTTP client's for `transport_failed`, a custom ``SyncTransport``'s own error. For logs;
    /// not part of equality.
    public var cause: (any Error)?

    /// An error (the SDK makes these; a custom ``SyncTransport`` throws them too, see there).
    public init(_ code: Code, _ message: String, serverError: SyncError? = nil, retryAfter: Duration? = nil, httpStatus: Int? = nil,
                cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.serverError = serverError
        self.retryAfter = retryAfter
        self.httpStatus = httpStatus
        self.cause = cause
    }

    /// `code: message`, e.g. `transport_failed: GET /v1/sync/pull failed: connection refused`.
    public var description: String { "\(code): \(message)" }

    /// Equal when code, message, server error, wait and status are; ``cause`` is left out.
    public static func == (lhs: ReaderSyncError, rhs: ReaderSyncError) -> Bool {
        (lhs.code, lhs.message, lhs.serverError, lhs.retryAfter, lhs.httpStatus) == (rhs.code, rhs.message, rhs.serverError, rhs.retryAfter, rhs.httpStatus)
    }

    /// Hashes what ``==(_:_:)`` compares.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
        hasher.combine(serverError)
        hasher.combine(retryAfter)
        hasher.combine(httpStatus)
    }
}

extension ReaderSyncError {
    /// `error` as the SDK's error, for a failure while the store was `doing` something (a
    /// phrase such as "mark art-1 read"): a ``ReaderSyncError`` or `CancellationError` as it is;
    /// SQLite's corruption, a missing table or column, a constraint failure and a value of the
    /// wrong type as `store_corrupt`; a full disk as `store_full`; everything else SQLite says
    /// (I/O, read-only, busy, a schema changed meanwhile) as `store_failed`.
    package static func store(_ error: any Error, doing: String) -> any Error {
        if error is ReaderSyncError || error is CancellationError { return error }
        if error is RowDecodingError {
            return ReaderSyncError(.storeCorrupt, "the store could not \(doing): a value is not what this version wrote (\(error))",
                                   cause: error)
        }
        guard let database = error as? DatabaseError else {
            return ReaderSyncError(.storeFailed, "the store could not \(doing): \(error)", cause: error)
        }
        switch database.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_ERROR, .SQLITE_CONSTRAINT, .SQLITE_MISMATCH:
            return ReaderSyncError(.storeCorrupt, "the store could not \(doing): it is damaged or not what this version wrote "
                                   + "(\(database.message ?? "\(database.resultCode)"))", cause: error)
        case .SQLITE_FULL:
            return ReaderSyncError(.storeFull, "the store could not \(doing): the device is out of space", cause: error)
        default:
            return ReaderSyncError(.storeFailed, "the store could not \(doing): \(database.message ?? "\(database.resultCode)")",
                                   cause: error)
        }
    }

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
