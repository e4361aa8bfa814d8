import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncServer
import Synchronization

/// Sends requests to the server's real router in this process, without sockets: the same
/// decoding, auth, limits, errors and encoding as over HTTP, deterministic and fast.
package struct RouterClient: Sendable {
    /// The router to use for each request (a closure, so a restored server replaces the old one).
    private let responder: @Sendable () -> RouterResponder<BasicRequestContext>
    private let logger: Logger
    private let channel = NIOAsyncTestingChannel()

    package init(responder: @escaping @Sendable () -> RouterResponder<BasicRequestContext>,
                 logger: Logger = Logger(label: "in-process")) {
        self.responder = responder
        self.logger = logger
    }

    /// Sends one request and returns the status and body.
    package func send(_ method: HTTPRequest.Method, _ path: String, body: Data?, token: String?) async throws -> (status: Int, body: Data) {
        let (status, body, _) = try await exchange(method, path, body: body, token: token)
        return (status, body)
    }

    /// ``send(_:_:body:token:)``, also returning the response headers.
    package func exchange(_ method: HTTPRequest.Method, _ path: String, body: Data?, token: String?) async throws -> (status: Int, body: Data, headers: HTTPFields) {
        let response = try await respond(method, path, body: body, token: token)
        let collected = try await BodyCollector.collect(response.body)
        return (Int(response.status.code), Data(collected.readableBytesView), response.headers)
    }

    /// The router's response, its body not yet written (a live stream's goes on until it ends).
    package func respond(_ method: HTTPRequest.Method, _ path: String, body: Data?, token: String?) async throws -> Response {
        var headers: HTTPFields = [:]
        if let token { headers[.authorization] = "Bearer \(token)" }
        let buffer = body.map { ByteBuffer(bytes: $0) } ?? ByteBuffer()
        if body != nil {
            headers[.contentType] = "application/json"
            headers[.contentLength] = String(buffer.readableBytes)
        }
        let request = Request(
            head: HTTPRequest(method: method, scheme: "http", authority: "in-process", path: path, headerFields: headers),
            body: RequestBody(buffer: buffer))
        let context = BasicRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: logger))
        return try await responder().respond(to: request, context: context)
    }
}

/// A ``SyncTransport`` over a ``RouterClient``.
public struct InProcessTransport: SyncTransport {
    private let client: RouterClient
    private let token: String

    package init(client: RouterClient, token: String) {
        self.client = client
        self.token = token
    }

    package init(responder: RouterResponder<BasicRequestContext>, token: String) {
        self.init(client: RouterClient(responder: { responder }), token: token)
    }

    public func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await send(.get, SyncRoute.pull(cursor: cursor, limit: limit, sections: sections), body: nil)
    }

    public func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        try await send(.post, SyncRoute.push, body: try JSONEncoder().encode(request))
    }

    public func pull(cursor: String?, limit: Int, wait: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await send(.get, SyncRoute.pull(cursor: cursor, limit: limit, wait: wait, sections: sections), body: nil)
    }

    public func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await send(.get, SyncRoute.pullNewestFirst(limit: limit, window: window, since: since, sections: sections), body: nil)
    }

    public func article(id: String) async throws -> Transported<ArticleDTO>? {
        do {
            return try await send(.get, SyncRoute.article(id: id), body: nil)
        } catch let error as ReaderSyncError where error.meansGone {
            return nil
        }
    }

    /// The live stream, its body written by a task that ends when the stream is dropped.
    public func events(cursor: String?) async throws -> AsyncThrowingStream<SyncEvent, any Error> {
        let path = SyncRoute.events(cursor: cursor)
        let response = try await client.respond(.get, path, body: nil, token: token)
        guard response.status == .ok else {
            let body = try await BodyCollector.collect(response.body)
            throw ReaderSyncError.answer(status: Int(response.status.code), body: body.readableBytesView,
                                         request: "GET \(path)", retryAfter: response.headers[.retryAfter])
        }
        let (events, continuation) = AsyncThrowingStream<SyncEvent, any Error>.makeStream()
        let writer = EventForwarder(continuation: continuation, request: "GET \(path)")
        let body = response.body
        // The body runs until the server ends the stream; dropping or cancelling the events ends it.
        let task = Task {
            do {
                try await body.write(writer)
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return events
    }

    private func send<T: Decodable & Sendable>(_ method: HTTPRequest.Method, _ path: String, body: Data?) async throws -> Transported<T> {
        let (status, data, headers) = try await client.exchange(method, path, body: body, token: token)
        guard status == 200 else {
            throw ReaderSyncError.answer(status: status, body: data, request: "\(method) \(path)", retryAfter: headers[.retryAfter])
        }
        return Transported(value: try JSONDecoder().decode(T.self, from: data), bytesSent: body?.count ?? 0, bytesReceived: data.count)
    }
}

/// Parses an event-stream body as it is written, handing each event on as a device would read it.
private struct EventForwarder: ResponseBodyWriter {
    private final class Parser: Sendable {
        let state = Mutex(ServerSentEventParser())
    }

    let continuation: AsyncThrowingStream<SyncEvent, any Error>.Continuation
    let request: String
    private let parser = Parser()

    init(continuation: AsyncThrowingStream<SyncEvent, any Error>.Continuation, request: String) {
        self.continuation = continuation
        self.request = request
    }

    func write(_ buffer: ByteBuffer) async throws {
        let items = parser.state.withLock { $0.feed(buffer.readableBytesView) }
        for item in items {
            if let event = try SyncEvent(item, request: request) { continuation.yield(event) }
        }
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

extension SyncTransport {
    /// Pulls pages from `cursor` until the server says there is no more, handing each to `each`.
    ///
    /// - Returns: the cursor after the last page.
    package func pullUntilCaughtUp(from cursor: String?, limit: Int, _ each: (PullResponse) -> Void) async throws -> String? {
        var cursor = cursor
        while true {
            let page = try await pull(cursor: cursor, limit: limit).value
            each(page)
            cursor = page.cursor
            if !page.hasMore { return cursor }
        }
    }
}
