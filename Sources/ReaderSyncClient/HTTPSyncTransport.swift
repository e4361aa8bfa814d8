import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import ReaderSyncCore

/// The sync protocol over HTTP, with gzip responses and per-request timeouts.
///
/// ```swift
/// let transport = HTTPSyncTransport(baseURL: "https://sync.example.com", token: userToken)
/// ```
public struct HTTPSyncTransport: SyncTransport {
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

    /// - Parameters:
    ///   - baseURL: the server, e.g. `http://127.0.0.1:8080` (no trailing path).
    ///   - token: the user's bearer token.
    ///   - client: an HTTP client with decompression enabled; ``sharedClient`` by default.
    ///   - timeout: the deadline of each request.
    public init(baseURL: String, token: String, client: HTTPClient = HTTPSyncTransport.sharedClient,
                timeout: TimeAmount = .seconds(30)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.client = client
        self.timeout = timeout
    }

    public func pull(cursor: String?, limit: Int) async throws -> Transported<PullResponse> {
        try await send(.GET, SyncRoute.pull(cursor: cursor, limit: limit), body: nil)
    }

    public func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        let body = try JSONEncoder().encode(request)
        return try await send(.POST, SyncRoute.push, body: body)
    }

    private func send<T: Decodable & Sendable>(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> Transported<T> {
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
            response = try await client.execute(request, timeout: timeout)
            bytes = try await response.body.collect(upTo: 256 << 20)
        } catch {
            throw ReaderSyncError(.transportFailed, "\(method) \(path) failed: \(error)")
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
            throw ReaderSyncError(.transportFailed, "\(method) \(path): the response is not what protocol v1 says: \(error)")
        }
    }
}
