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

/// A ``SyncTransport`` that hands requests to the server's real router in this process, without
/// sockets: the same decoding, auth, limits, errors and encoding as over HTTP, deterministic and fast.
///
/// ```swift
/// let router = buildRouter(service: service, logger: logger)
/// let transport = InProcessTransport(responder: router.buildResponder(), token: token)
/// ```
public struct InProcessTransport: SyncTransport {
    private let responder: RouterResponder<BasicRequestContext>
    private let token: String
    private let logger: Logger
    private let channel = NIOAsyncTestingChannel()

    package init(responder: RouterResponder<BasicRequestContext>, token: String, logger: Logger = Logger(label: "in-process")) {
        self.responder = responder
        self.token = token
        self.logger = logger
    }

    public func pull(cursor: String?, limit: Int) async throws -> Transported<PullResponse> {
        var components = URLComponents()
        components.queryItems = [URLQueryItem(name: "limit", value: String(limit))]
        if let cursor { components.queryItems?.append(URLQueryItem(name: "cursor", value: cursor)) }
        return try await send(.get, "/v1/sync/pull?" + (components.percentEncodedQuery ?? ""), body: nil)
    }

    public func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        try await send(.post, "/v1/sync/push", body: try JSONEncoder().encode(request))
    }

    private func send<T: Decodable & Sendable>(_ method: HTTPRequest.Method, _ path: String, body: Data?) async throws -> Transported<T> {
        var headers: HTTPFields = [.authorization: "Bearer \(token)"]
        let buffer = body.map { ByteBuffer(bytes: $0) } ?? ByteBuffer()
        if body != nil {
            headers[.contentType] = "application/json"
            headers[.contentLength] = String(buffer.readableBytes)
        }
        let request = Request(
            head: HTTPRequest(method: method, scheme: "http", authority: "in-process", path: path, headerFields: headers),
            body: RequestBody(buffer: buffer))
        let context = BasicRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: logger))
        let response = try await responder.respond(to: request, context: context)
        let collected = CollectingWriter.Storage()
        try await response.body.write(CollectingWriter(storage: collected))
        let data = collected.bytes.withLock { Data($0.readableBytesView) }
        guard response.status == .ok else {
            let serverError = (try? JSONDecoder().decode(ErrorBody.self, from: data))
                .map { SyncError(SyncError.Code(rawValue: $0.error.code), $0.error.message) }
            throw ReaderSyncError(response.status.code >= 500 ? .transportFailed : .serverRefused,
                                  "\(method) \(path) answered \(response.status.code): \(serverError?.message ?? "")",
                                  serverError: serverError)
        }
        return Transported(value: try JSONDecoder().decode(T.self, from: data), bytesSent: buffer.readableBytes, bytesReceived: data.count)
    }
}

/// Collects a response body in memory (the writer is consumed, so the bytes live in a shared box).
private struct CollectingWriter: ResponseBodyWriter {
    final class Storage: Sendable {
        let bytes = Mutex(ByteBuffer())
    }

    let storage: Storage

    func write(_ part: ByteBuffer) async throws {
        storage.bytes.withLock { buffer in
            var part = part
            buffer.writeBuffer(&part)
        }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
