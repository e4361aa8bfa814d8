import Foundation
import ReaderSyncCore

/// How a device reaches a sync server: HTTP (``HTTPSyncTransport``) or in-process (the simulator's).
///
/// Implementations throw ``ReaderSyncError`` with `serverError` set when the server answered with
/// an error body (so `reset_required` can be recognised), and `transportFailed` when no answer came.
///
/// `sections` (on the pulls) are the sections whose articles the device follows, `nil` for every
/// section (docs/PROTOCOL.md, "Sections"): sent as `section=` query parameters.
public protocol SyncTransport: Sendable {
    /// `GET /v1/sync/pull`.
    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse>
    /// `POST /v1/sync/push`.
    func push(_ request: PushRequest) async throws -> Transported<PushResponse>
    /// `GET /v1/sync/pull?wait=S`: a long-poll that answers as soon as something after `cursor`
    /// can be pulled, or with an empty page after `wait` seconds (1…60).
    func pull(cursor: String?, limit: Int, wait: Int, sections: Set<String>?) async throws -> Transported<PullResponse>
    /// `GET /v1/sync/events?cursor=C`: the live stream's events, until the server ends it (the
    /// sequence finishes) or it breaks (it throws ``ReaderSyncError`` `transport_failed`).
    ///
    /// - Throws: ``ReaderSyncError`` when the stream cannot be opened (`serverError` set when the
    ///   server refused it, e.g. `503 unavailable` past its stream caps, with `retryAfter`).
    func events(cursor: String?) async throws -> AsyncThrowingStream<SyncEvent, any Error>
    /// `GET /v1/sync/pull?order=newest`: the first page of a first sync, newest publication
    /// first, at most `window` articles (`nil`: no count limit) published at or after `since`;
    /// pull on with its cursor (``pull(cursor:limit:)``) until `hasMore` is false.
    ///
    /// - Throws: ``ReaderSyncError`` `transport_failed` or `server_refused`, as ``pull(cursor:limit:sections:)``.
    func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse>
    /// `GET /v1/articles/{id}`: one article the server keeps, or `nil` when it has none by this
    /// id (`404`) or it was deleted (`410 article_deleted`).
    ///
    /// - Throws: ``ReaderSyncError`` `transport_failed` or `server_refused` (another refusal, e.g. `401`).
    func article(id: String) async throws -> Transported<ArticleDTO>?
}

extension SyncTransport {
    /// A pull of every section.
    ///
    /// - Throws: what the transport's requirement throws (``ReaderSyncError``).
    public func pull(cursor: String?, limit: Int) async throws -> Transported<PullResponse> {
        try await pull(cursor: cursor, limit: limit, sections: nil)
    }

    /// A long-poll of every section.
    ///
    /// - Throws: what the transport's requirement throws (``ReaderSyncError``).
    public func pull(cursor: String?, limit: Int, wait: Int) async throws -> Transported<PullResponse> {
        try await pull(cursor: cursor, limit: limit, wait: wait, sections: nil)
    }

    /// Transports written before first syncs went newest first: the first page from the
    /// beginning, oldest first (correct, only slower to show the newest stories).
    ///
    /// - Throws: what the transport's requirement throws (``ReaderSyncError``).
    public func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await pull(cursor: nil, limit: limit, sections: sections)
    }

    /// Transports written before `GET /v1/articles/{id}`: this throws `transport_failed`.
    ///
    /// - Throws: ``ReaderSyncError`` `transport_failed`, always.
    public func article(id: String) async throws -> Transported<ArticleDTO>? {
        throw ReaderSyncError(.transportFailed, "this transport (\(type(of: self))) cannot fetch one article")
    }

    /// Transports written before live updates have no long-poll: this throws `transport_failed`.
    ///
    /// - Throws: ``ReaderSyncError`` `transport_failed`, always.
    public func pull(cursor: String?, limit: Int, wait: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        throw ReaderSyncError(.transportFailed, "this transport (\(type(of: self))) has no long-poll")
    }

    /// Transports written before live updates have no event stream: this throws `transport_failed`.
    ///
    /// - Throws: ``ReaderSyncError`` `transport_failed`, always.
    public func events(cursor: String?) async throws -> AsyncThrowingStream<SyncEvent, any Error> {
        throw ReaderSyncError(.transportFailed, "this transport (\(type(of: self))) has no event stream")
    }
}

/// A response with the bytes it cost on the wire.
public struct Transported<Value: Sendable>: Sendable {
    /// The decoded response.
    public var value: Value
    /// Bytes of the request body.
    public var bytesSent: Int
    /// Bytes of the response body on the wire (compressed when it was).
    public var bytesReceived: Int

    /// A response and its cost.
    public init(value: Value, bytesSent: Int, bytesReceived: Int) {
        self.value = value
        self.bytesSent = bytesSent
        self.bytesReceived = bytesReceived
    }
}
