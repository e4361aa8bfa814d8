import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import ReaderSyncCore

/// The sync protocol over HTTP, with gzip responses and per-request timeouts.
///
/// Every method throws ``ReaderSyncError``: `transport_failed` when no answer came (no network,
/// a timeout, a reset connection), for a `5xx`, and for an answer that is not protocol v1;
/// `server_refused` with the server's ``ReaderSyncError/serverError`` for another status
/// (`401 unauthorized`, `410 reset_required`…); ``ReaderSyncError/retryAfter`` is set for a
/// `503` or `429`. The HTTP client's own error is kept as ``ReaderSyncError/cause``.
///
/// ```swift
/// let transport = HTTPSyncTransport(baseURL: "https://sync.example.com", token: userToken)
/// ```
public struct HTTPSyncTransport: SyncTransport {
    /// The server, without a trailing `/`.
    public let baseURL: String
    private let token: String
    private let client: HTTPClient
    private let timeout: TimeAmount

    /// A process-wide client that accepts gzip and lives as long as the process (like `HTTPClient.shared`).
    public static let sharedClient = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(
            timeout: .init(connect: .seconds(10), read: .seconds(60)),
            decompression: .enabled(limit: .ratio(100))))

    /// A transport to the server at `baseURL` for the user of `token`.
    ///
    /// - Parameters:
    ///   - baseURL: the server, e.g. `http://127.0.0.1:8080` (no trailing path).
    ///   - token: the user's bearer token.
    ///   - client: an HTTP client with decompression enabled; ``sharedClient`` by default.
    ///   - timeout: the deadline of each request; default 30 s (a long-poll's is this plus its wait).
    public init(baseURL: String, token: String, client: HTTPClient = HTTPSyncTransport.sharedClient,
                timeout: TimeAmount = .seconds(30)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.client = client
        self.timeout = timeout
    }

    /// `GET /v1/sync/pull`: the changes after `cursor` (`nil`: from the beginning), at most `limit`.
    ///
    /// - Throws: ``ReaderSyncError``, as the type's documentation says.
    public func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await send(.GET, SyncRoute.pull(cursor: cursor, limit: limit, sections: sections), body: nil)
    }

    /// `POST /v1/sync/push`.
    ///
    /// - Throws: ``ReaderSyncError``, as the type's documentation says.
    public func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        let body: Data
        do {
            body = try JSONEncoder().encode(request)
        } catch {
            throw ReaderSyncError(.invalidArgument, "the push cannot be encoded as JSON: \(error)", cause: error)
        }
        return try await send(.POST, SyncRoute.push, body: body)
    }

    /// `GET /v1/sync/pull?order=newest`: the first page of a first sync (``SyncTransport/pullNewestFirst(limit:window:since:sections:)``).
    ///
    /// - Throws: ``ReaderSyncError``, as the type's documentation says.
    public func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await send(.GET, SyncRoute.pullNewestFirst(limit: limit, window: window, since: since, sections: sections), body: nil)
    }

    /// `GET /v1/articles/{id}`; `nil` for a `404` or `410 article_deleted`.
    ///
    /// - Throws: ``ReaderSyncError``, as the type's documentation says.
    public func article(id: String) async throws -> Transported<ArticleDTO>? {
        do {
            return try await send(.GET, SyncRoute.article(id: id), body: nil)
        } catch let error as ReaderSyncError where error.meansGone {
            return nil
        }
    }

    /// The long-poll; its deadline is the request timeout plus `wait`.
    ///
    /// - Throws: ``ReaderSyncError``, as the type's documentation says.
    public func pull(cursor: String?, limit: Int, wait: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await send(.GET, SyncRoute.pull(cursor: cursor, limit: limit, wait: wait, sections: sections), body: nil,
                       timeout: timeout + .seconds(Int64(wait)))
    }

    /// Opens the live stream. The request timeout covers the answer's head only; then the client's
    /// read timeout (60 s for ``sharedClient``, three heartbeats) ends a stream that went silent.
    ///
    /// - Throws: ``ReaderSyncError``, as the type's documentation says.
    public func events(cursor: String?) async throws -> AsyncThrowingStream<SyncEvent, any Error> {
        let path = SyncRoute.events(cursor: cursor)
        var request = HTTPClientRequest(url: baseURL + path)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept", value: "text/event-stream")
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw ReaderSyncError(.transportFailed, "GET \(path) failed: \(error)", cause: error)
        }
        guard response.status == .ok else {
            let body = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
            throw ReaderSyncError.answer(status: Int(response.status.code), body: body.readableBytesView, request: "GET \(path)",
                                         retryAfter: response.headers.first(name: "Retry-After"))
        }
        guard response.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true else {
            throw ReaderSyncError(.transportFailed, "GET \(path) did not answer with an event stream (a proxy in between?)")
        }
        let reader = EventStreamReader(body: response.body, request: "GET \(path)")
        return AsyncThrowingStream { try await reader.next() }
    }

    private func send<T: Decodable & Sendable>(_ method: HTTPMethod, _ path: String, body: Data?,
                                               timeout: TimeAmount? = nil) async throws -> Transported<T> {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Accept-Encoding", value: "gzip")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(request, timeout: timeout ?? self.timeout)
            bytes = try await response.body.collect(upTo: 256 << 20)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw ReaderSyncError(.transportFailed, "\(method) \(path) failed: \(error)", cause: error)
        }
        // Bytes on the wire: the compressed length when the server compressed the body.
        let received = response.headers.first(name: "Content-Length").flatMap(Int.init) ?? bytes.readableBytes
        let data = Data(bytes.readableBytesView)
        guard response.status == .ok else {
            throw ReaderSyncError.answer(status: Int(response.status.code), body: data, request: "\(method) \(path)",
                                         retryAfter: response.headers.first(name: "Retry-After"))
        }
        do {
            return Transported(value: try JSONDecoder().decode(T.self, from: data), bytesSent: body?.count ?? 0, bytesReceived: received)
        } catch {
            throw ReaderSyncError(.transportFailed, "\(method) \(path): the response is not what protocol v1 says: \(error)", cause: error)
        }
    }
}

/// Reads ``SyncEvent``s from an event-stream body, one `next()` at a time.
///
/// `@unchecked Sendable`: `AsyncThrowingStream(unfolding:)` calls `next()` once at a time, from
/// the one task iterating the stream, so the iterator and parser are never used concurrently.
private final class EventStreamReader: @unchecked Sendable {
    private var body: HTTPClientResponse.Body.AsyncIterator
    private var parser = ServerSentEventParser()
    private var pending: [SyncEvent] = []
    private let request: String

    init(body: HTTPClientResponse.Body, request: String) {
        self.body = body.makeAsyncIterator()
        self.request = request
    }

    func next() async throws -> SyncEvent? {
        while pending.isEmpty {
            let buffer: ByteBuffer?
            do {
                buffer = try await body.next()
            } catch let error where error is CancellationError || Task.isCancelled {
                throw CancellationError()
            } catch {
                throw ReaderSyncError(.transportFailed, "\(request): the stream broke: \(error)", cause: error)
            }
            guard let buffer else { return nil }
            for item in parser.feed(buffer.readableBytesView) {
                if let event = try SyncEvent(item, request: request) { pending.append(event) }
            }
        }
        return pending.removeFirst()
    }
}

extension SyncEvent {
    /// The protocol's event for a parsed item; `nil` for an event type this version does not know.
    ///
    /// - Throws: ``ReaderSyncError`` `transport_failed` when a known event's data is not its JSON.
    package init?(_ item: ServerSentEventParser.Item, request: String) throws {
        switch item {
        case .comment:
            self = .heartbeat
        case .event(let event):
            do {
                switch event.type {
                case "changes": self = .changes(try JSONDecoder().decode(ChangesEvent.self, from: Data(event.data.utf8)))
                case "reset": self = .reset(try JSONDecoder().decode(ResetEvent.self, from: Data(event.data.utf8)))
                default: return nil
                }
            } catch {
                throw ReaderSyncError(.transportFailed, "\(request): a \(event.type) event is not what protocol v1 says: \(error)", cause: error)
            }
        }
    }
}
