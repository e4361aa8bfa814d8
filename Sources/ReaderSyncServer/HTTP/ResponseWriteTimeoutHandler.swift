import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client does not take its response within `timeout`: a client that
/// asks for a large page and stops reading would otherwise keep the connection and the unsent
/// response in memory for good (the idle timeout does not run while a response is being written).
final class ResponseWriteTimeoutHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head:
            if deadline == nil {
                let loopBoundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
                deadline = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) {
                    loopBoundContext.value.close(promise: nil)
                }
            }
            context.write(data, promise: promise)
        case .end:
            // The response is taken once its last part is handed to the socket.
            let written = promise ?? context.eventLoop.makePromise()
            written.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { _ in
                self.deadline?.cancel()
                self.deadline = nil
            }
            context.write(data, promise: written)
        case .body:
            context.write(data, promise: promise)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}

@available(*, unavailable)
extension ResponseWriteTimeoutHandler: Sendable {}
