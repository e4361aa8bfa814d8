import Foundation
import ReaderSyncClient
import ReaderSyncCore
import Synchronization

/// Serializes each user's pushes, so the recorder holds them in the order the server applied them
/// (the reference model replays them in that order); pushes of different users, and every pull,
/// run in parallel.
actor PushOrder {
    private var busy: Set<String> = []
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    func acquire(_ user: String) async {
        if busy.insert(user).inserted { return }
        await withCheckedContinuation { waiting[user, default: []].append($0) }
    }

    /// Hands the turn to the next waiting push of `user`, if any.
    func release(_ user: String) {
        if let next = waiting[user]?.first {
            waiting[user]?.removeFirst()
            next.resume()
        } else {
            busy.remove(user)
        }
    }
}

/// The error a device sees when its process is killed mid-sync.
struct ProcessKilled: Error {}

/// One device's connection: injects the armed fault, records what the server processed,
/// and can run a user action while a pull is in flight.
final class DeviceLink: SyncTransport {
    struct ArmedFault: Sendable {
        var kind: FaultKind
        /// The request of the sync (1-based) at which it strikes.
        var atRequest: Int
        /// For process kills: whether the server processes the request before the process dies.
        var afterServer: Bool
    }

    private let inner: any SyncTransport
    private let recorder: PushRecorder
    private let order: PushOrder
    private let user: String
    private let serverMillis: @Sendable () -> Int64
    private let state = Mutex<(fault: ArmedFault?, requests: Int, duringPull: (@Sendable (PullResponse) -> Void)?)>((nil, 0, nil))

    init(inner: any SyncTransport, recorder: PushRecorder, order: PushOrder, user: String, serverMillis: @escaping @Sendable () -> Int64) {
        self.inner = inner
        self.recorder = recorder
        self.order = order
        self.user = user
        self.serverMillis = serverMillis
    }

    /// Arms a fault for the next sync.
    func arm(_ fault: ArmedFault?) {
        state.withLock { $0 = (fault, 0, $0.duringPull) }
    }

    /// Something the user does while the next pull is in flight (after the server answered, before the device applies).
    func duringNextPull(_ action: (@Sendable (PullResponse) -> Void)?) {
        state.withLock { $0.duringPull = action }
    }

    private func nextFault() -> ArmedFault? {
        state.withLock { s in
            s.requests += 1
            guard let fault = s.fault, fault.atRequest == s.requests else { return nil }
            s.fault = nil
            return fault
        }
    }

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        let fault = nextFault()
        // The one way a push reaches the server, faults included: what the server answered is
        // recorded even when a fault then hides it from the device (`response_lost`, a process
        // killed after the server); a push that got no answer at all is recorded as unanswered,
        // at the place it held the user's turn, for later answers to decide.
        func send() async throws -> Transported<PushResponse> {
            await order.acquire(user)
            let millis = serverMillis()
            let response: Transported<PushResponse>
            do {
                response = try await inner.push(request)
            } catch {
                // A 4xx answer changed nothing: a push is one transaction, refused whole. Without
                // an answer (a connection cut, an answer that cannot be read), or with a 5xx (a
                // commit whose outcome the server could not learn), the server may have committed.
                if ((error as? ReaderSyncError)?.httpStatus).map({ $0 >= 500 }) ?? true {
                    recorder.recordUnanswered(user: user, request: request, serverMillis: millis)
                }
                await order.release(user)
                throw error
            }
            recorder.record(user: user, request: request, response: response.value, serverMillis: millis)
            await order.release(user)
            return response
        }
        switch fault?.kind {
        case .requestLost?: throw ReaderSyncError(.transportFailed, "simulated: request lost")
        case .serverError?: throw ReaderSyncError(.transportFailed, "simulated: 503 from the server")
        case .responseLost?:
            _ = try await send()
            throw ReaderSyncError(.transportFailed, "simulated: response lost")
        case .duplicateRequest?:
            _ = try await send()
            return try await send()
        case .processKilled?:
            if fault?.afterServer == true { _ = try await send() }
            throw ProcessKilled()
        default:
            return try await send()
        }
    }

    /// Live mode's long-poll, without faults: it only tells when to pull; the pull and push it
    /// leads to go through the faulted paths.
    func pull(cursor: String?, limit: Int, wait: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, wait: wait, sections: sections)
    }

    /// Live mode's event stream, without faults (as the long-poll).
    func events(cursor: String?) async throws -> AsyncThrowingStream<SyncEvent, any Error> {
        try await inner.events(cursor: cursor)
    }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await faultedPull { try await inner.pull(cursor: cursor, limit: limit, sections: sections) }
    }

    /// A first sync's (or a section backfill's) first page, faulted as any pull.
    func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await faultedPull { try await inner.pullNewestFirst(limit: limit, window: window, since: since, sections: sections) }
    }

    /// One article by id, faulted as a pull (lost, refused, killed, sent twice).
    func article(id: String) async throws -> Transported<ArticleDTO>? {
        try await faultedRead { try await inner.article(id: id) }
    }

    private func faultedPull(_ send: () async throws -> Transported<PullResponse>) async throws -> Transported<PullResponse> {
        let page = try await faultedRead(send)
        if let action = state.withLock({ s -> (@Sendable (PullResponse) -> Void)? in
            defer { s.duringPull = nil }
            return s.duringPull
        }) {
            action(page.value)
        }
        return page
    }

    /// A request that changes nothing on the server, under the next fault.
    private func faultedRead<Value>(_ send: () async throws -> Value) async throws -> Value {
        let fault = nextFault()
        switch fault?.kind {
        case .requestLost?, .responseLost?: throw ReaderSyncError(.transportFailed, "simulated: pull lost")
        case .serverError?: throw ReaderSyncError(.transportFailed, "simulated: 503 from the server")
        case .processKilled?: throw ProcessKilled()
        case .duplicateRequest?: _ = try await send()
        default: break
        }
        return try await send()
    }
}
