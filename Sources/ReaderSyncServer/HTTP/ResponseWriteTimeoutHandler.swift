import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client does not take its response within `timeout`: a client that
/// asks for a large page and stops reading would otherwise keep the connection and the unsent
/// response in memory for good (the idle timeout does not run while a response is being written).
///
/// A live stream (`text/event-stream`) has no end to wait for: there each part written must be
/// taken within `timeout` instead, so a stream whose client stopped reading is closed once its
/// socket buffer is full and a heartbeat or event has waited that long.
final class ResponseWriteTimeoutHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// Whether the response being written is an event stream.
    private var streaming = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            streaming = head.headerFields[.contentType] == ServerSentEvents.contentType
            if streaming {
                context.write(data, promise: promise)
            } else {
                if deadline == nil { deadline = closeLater(context) }
                context.write(data, promise: promise)
            }
        case .end:
            if streaming {
                streaming = false
                context.write(data, promise: promise)
                return
            }
            // The response is taken once its last part is handed to the socket.
            let written = promise ?? context.eventLoop.makePromise()
            written.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { _ in
                self.deadline?.cancel()
                self.deadline = nil
            }
            context.write(data, promise: written)
        case .body:
            guard streaming else {
                context.write(data, promise: promise)
                return
            }
            let close = closeLater(context)
            let written = promise ?? context.eventLoop.makePromise()
            written.futureResult.whenComplete { _ in close.cancel() }
            context.write(data, promise: written)
        }
    }

    /// Closes the connection after `timeout`, unless cancelled.
    private func closeLater(_ context: ChannelHandlerContext) -> Scheduled<Void> {
        let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        return context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) {
            loopBoundContext.value.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}

@available(*, unavailable)
extension ResponseWriteTimeoutHandler: Sendable {}
