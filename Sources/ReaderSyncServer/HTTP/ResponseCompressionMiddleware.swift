import Foundation
import CompressNIO
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Gzip-compresses response bodies when the request accepts gzip, at a chosen zlib level.
///
/// swift-nio-extras' `HTTPResponseCompressor` compresses at zlib's fixed default level 6, which
/// took about 2 s of one core per 20,000-article initial sync (docs/PERFORMANCE.md). Level 4 runs
/// about 1.7× faster and still shrinks pull pages about 5.9×.
struct ResponseCompressionMiddleware<Context: RequestContext>: RouterMiddleware {
    /// zlib level, 1 (fastest) … 9 (smallest).
    let level: Int32
    /// Bodies smaller than this are sent as they are.
    let minimumBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        guard Self.acceptsGzip(request.headers[.acceptEncoding]), response.headers[.contentEncoding] == nil else {
            return response
        }
        var body = try await BodyCollector.collect(response.body)
        guard body.readableBytes >= minimumBytes else {
            response.body = .init(byteBuffer: body)
            return response
        }
        let configuration = ZlibConfiguration(windowSize: 15, compressionLevel: level, memoryLevel: 8, strategy: .default)
        let compressed = try body.compress(with: .gzip(configuration: configuration))
        response.headers[.contentEncoding] = "gzip"
        response.headers[.vary] = "Accept-Encoding"
        response.headers[.contentLength] = String(compressed.readableBytes)
        response.body = .init(byteBuffer: compressed)
        return response
    }

    /// Whether an `Accept-Encoding` value accepts gzip (`gzip` or `*`, with no `q=0`).
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        for part in header.split(separator: ",") {
            let pieces = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let coding = pieces.first?.lowercased(), coding == "gzip" || coding == "*" else { continue }
            let q = pieces.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            if q > 0 { return true }
        }
        return false
    }
}

/// Collects a response body into one buffer (the writer is consumed, so the bytes live in a shared box).
package struct BodyCollector: ResponseBodyWriter {
    private final class Storage: Sendable {
        let bytes = Mutex(ByteBuffer())
    }

    private let storage = Storage()

    /// The whole body of `body`.
    package static func collect(_ body: ResponseBody) async throws -> ByteBuffer {
        let collector = BodyCollector()
        let storage = collector.storage
        try await body.write(collector)
        return storage.bytes.withLock { $0 }
    }

    package func write(_ part: ByteBuffer) async throws {
        storage.bytes.withLock { buffer in
            var part = part
            buffer.writeBuffer(&part)
        }
    }

    package consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
