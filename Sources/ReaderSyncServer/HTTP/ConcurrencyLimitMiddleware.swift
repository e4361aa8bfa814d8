import Hummingbird
import ReaderSyncCore
import ReaderSyncService
import Synchronization

/// Keeps one client, or a crowd, from starving the rest: past `limit` requests in progress, new
/// ones get `503 unavailable` with `Retry-After`, before any body is read or any work done.
///
/// Requests `exempt` says yes to always pass: health and metrics, so a loaded server can still be
/// observed, and live streams and long-polls, which their own caps count.
struct ConcurrencyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limit: Int
    let exempt: @Sendable (Request) -> Bool
    /// Seconds a client should wait before retrying; the client SDK adds backoff and jitter.
    let retryAfterSeconds = 1
    private let inFlight = InFlightCounter()

    init(limit: Int, exempt: @escaping @Sendable (Request) -> Bool) {
        self.limit = max(limit, 1)
        self.exempt = exempt
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if exempt(request) { return try await next(request, context) }
        guard inFlight.enter(limit: limit) else {
            var response = try APIErrorMiddleware<Context>.response(
                SyncError(.unavailable, "the server is handling \(limit) requests; retry after \(retryAfterSeconds) s"))
            response.headers[.retryAfter] = String(retryAfterSeconds)
            return response
        }
        defer { inFlight.leave() }
        return try await next(request, context)
    }
}

/// Requests in progress, shared by every copy of the middleware value.
final class InFlightCounter: Sendable {
    private let count = Atomic<Int>(0)

    /// Takes a slot unless `limit` are taken.
    func enter(limit: Int) -> Bool {
        var current = count.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = count.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func leave() {
        count.subtract(1, ordering: .acquiringAndReleasing)
    }
}
