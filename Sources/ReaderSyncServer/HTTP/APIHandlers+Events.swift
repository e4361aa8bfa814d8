import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ReaderSyncCore
import ReaderSyncService
import ServiceLifecycle

extension APIHandlers {
    /// `GET /v1/sync/events?cursor=C`: a server-sent events stream telling the device when its
    /// feed has something after `C` (docs/PROTOCOL.md, live updates).
    ///
    /// Errors before the stream opens are ordinary JSON errors (`401`, `400 invalid_cursor`,
    /// `503 unavailable` with `Retry-After` past the stream caps); a cursor of another epoch
    /// gets a stream of one `reset` event.
    func events(_ request: Request, parameters: URLParameters) async throws -> Response {
        let user = try await requireUser(request)
        let cursor = try parameters.query("cursor").flatMap { $0.isEmpty ? nil : $0 }
        let stream: LiveStream
        do {
            stream = try service.openLiveStream(user: user, cursor: cursor)
        } catch {
            // (A `catch where` on the typed error here crashes the 6.3 compiler's ownership check.)
            guard error.code == .unavailable else { throw error }
            throw RetryLater(error: error, seconds: Self.streamRetryAfterSeconds)
        }
        let life = stream.jitteredLife()
        let retry = service.configuration.live.reconnectDelay
        let notifier = service.notifier
        let metrics = self.metrics
        let logger = self.logger
        return Response(
            status: .ok,
            headers: [
                .contentType: ServerSentEvents.contentType,
                .cacheControl: "no-store",
                // nginx buffers proxied responses unless told not to.
                HTTPField.Name("X-Accel-Buffering")!: "no",
            ],
            body: ResponseBody { writer in
                metrics.eventStreamOpened()
                defer { metrics.eventStreamClosed() }
                try await writer.write(ServerSentEvents.retry(retry))
                // Graceful shutdown ends every stream, so the server can drain.
                do {
                    try await withGracefulShutdownHandler {
                        try await stream.run(life: life) { event in
                            try await writer.write(ServerSentEvents.encode(event))
                            return true
                        }
                    } onGracefulShutdown: {
                        notifier.close()
                    }
                } catch {
                    // A client that went away is the common case; a store that failed is worth a line.
                    logger.debug("a live stream ended early", metadata: ["error": "\(String(reflecting: error))"])
                    throw error
                }
                try await writer.finish(nil)
            })
    }

    /// Seconds a client told `503` by the stream caps should wait.
    static let streamRetryAfterSeconds = 5
}

/// An error answered with a `Retry-After` header (seconds).
struct RetryLater: Error {
    var error: SyncError
    var seconds: Int
}

/// The `text/event-stream` format (WHATWG HTML, "Server-sent events"): fields `event:`,
/// `data:`, `retry:` (milliseconds), comments starting with `:`, each event ended by a blank line.
enum ServerSentEvents {
    static let contentType = "text/event-stream"

    /// The `retry:` field: how long a client waits before reconnecting.
    static func retry(_ delay: Duration) -> ByteBuffer {
        let millis = delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000
        return ByteBuffer(string: "retry: \(millis)\n\n")
    }

    static func encode(_ event: LiveEvent) -> ByteBuffer {
        switch event {
        case .changes(let epoch):
            return ByteBuffer(string: "event: changes\ndata: \(json(ChangesEvent(epoch: epoch)))\n\n")
        case .reset(let epoch, let message):
            let body = ResetEvent(epoch: epoch, error: ErrorBody.Detail(SyncError(.resetRequired, message)))
            return ByteBuffer(string: "event: reset\ndata: \(json(body))\n\n")
        case .heartbeat:
            return ByteBuffer(string: ": heartbeat\n\n")
        }
    }

    /// One line of JSON (JSONEncoder never writes a line break unless asked to pretty-print).
    private static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
