import Foundation
import CLibdeflate
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// Gzip-compresses response bodies when the request accepts gzip, at a chosen libdeflate level.
///
/// swift-nio-extras' `HTTPResponseCompressor` compresses with zlib at its fixed level 6, which
/// took about 2 s of one core per 20,000-article initial sync (docs/PERFORMANCE.md); libdeflate
/// at its default level here is several times faster and still shrinks pull pages more than 5×.
struct ResponseCompressionMiddleware<Context: RequestContext>: RouterMiddleware {
    /// libdeflate level, 1 (fastest) … 12 (smallest).
    let level: Int32
    /// Bodies smaller than this are sent as they are.
    let minimumBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        // An event stream is sent as it happens, never collected into one buffer.
        guard Self.acceptsGzip(request.headers[.acceptEncoding]), response.headers[.contentEncoding] == nil,
              response.headers[.contentType] != ServerSentEvents.contentType else {
            return response
        }
        let body = try await BodyCollector.collect(response.body)
        guard body.readableBytes >= minimumBytes else {
            response.body = .init(byteBuffer: body)
            return response
        }
        let compressed = Gzip.compress(body, level: level)
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

/// gzip as the server sends it, by libdeflate: whole buffers, about three times as fast as zlib
/// at a better ratio (docs/PERFORMANCE.md).
package enum Gzip {
    /// libdeflate's levels: 1 (fastest) … 12 (smallest).
    package static let levels: ClosedRange<Int32> = 1...12
    /// The fastest level that keeps pull pages more than 5× smaller (5.6× on the bench corpus).
    package static let defaultLevel: Int32 = 2

    /// `body` as one gzip member at libdeflate level `level`.
    package static func compress(_ body: ByteBuffer, level: Int32) -> ByteBuffer {
        let level = min(max(level, levels.lowerBound), levels.upperBound)
        let compressor = Compressors.take(level: level)
        defer { Compressors.give(compressor, level: level) }
        return body.withUnsafeReadableBytes { input in
            let bound = libdeflate_gzip_compress_bound(compressor.pointer, input.count)
            var output = ByteBuffer()
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
                libdeflate_gzip_compress(compressor.pointer, input.baseAddress, input.count, out.baseAddress, out.count)
            }
            return output
        }
    }

    /// A libdeflate compressor (they are not thread-safe: one user at a time, by the pool below).
    final class Compressor: @unchecked Sendable {
        let pointer: OpaquePointer

        init(level: Int32) {
            guard let pointer = libdeflate_alloc_compressor(level) else { fatalError("libdeflate: out of memory") }
            self.pointer = pointer
        }

        deinit { libdeflate_free_compressor(pointer) }
    }

    /// Idle compressors by level, so that a response does not allocate one (a few hundred KB).
    private enum Compressors {
        static let idle = Mutex<[Int32: [Compressor]]>([:])

        static func take(level: Int32) -> Compressor {
            idle.withLock { $0[level]?.popLast() } ?? Compressor(level: level)
        }

        static func give(_ compressor: Compressor, level: Int32) {
            idle.withLock { pool in
                if pool[level, default: []].count < 8 { pool[level, default: []].append(compressor) }
            }
        }
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
