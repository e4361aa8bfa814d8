import ReaderSyncCore
import Synchronization

/// Whose change feed a committed transaction changed, as far as live streams care.
package enum ChangeScope: Sendable, Hashable {
    /// Articles (ingest, deletion), or unknown changes (a missed notification): every stream.
    case everyone
    /// One user's states: that user's streams only.
    case user(Int64)
}

/// The live streams (and long-polls) open on this server, woken after commits.
///
/// A stream subscribes with ``subscribe(userId:)`` and waits on its ``WakeSignal``; the service
/// calls ``wake(_:)`` after each commit that changed the feed, and the store's listener calls it
/// for commits of other servers. Wakes coalesce: a signal woken a thousand times before its
/// stream looks is woken once.
///
/// Caps: at most `maxStreams` subscriptions, and `maxStreamsPerUser` per user; a subscription
/// past either throws `unavailable` (HTTP `503` with `Retry-After`). After ``close()`` (graceful
/// shutdown) every signal reports closed and new subscriptions throw `unavailable`.
package final class ChangeNotifier: Sendable {
    package let maxStreams: Int
    package let maxStreamsPerUser: Int
    private let state = Mutex(State())

    private struct State {
        var nextId = 0
        var byUser: [Int64: [Int: WakeSignal]] = [:]
        var count = 0
        var closed = false
        /// Counts wake-ups; the value of the last one of each user, and of the last for everyone.
        var generation: UInt64 = 0
        var userGeneration: [Int64: UInt64] = [:]
        var everyoneGeneration: UInt64 = 0
        /// The last feed head read for a user's woken streams, shared by them (``sharedHead``).
        var heads: [Int64: (generation: UInt64, read: Task<FeedHead, any Error>)] = [:]
    }

    /// - Parameters:
    ///   - maxStreams: subscriptions this server holds at once (default 10,000).
    ///   - maxStreamsPerUser: subscriptions one user holds at once (default 32).
    package init(maxStreams: Int = 10_000, maxStreamsPerUser: Int = 32) {
        self.maxStreams = max(maxStreams, 1)
        self.maxStreamsPerUser = max(maxStreamsPerUser, 1)
    }

    /// Streams open now.
    package var count: Int { state.withLock { $0.count } }

    /// Registers a stream of `userId`'s feed; it ends with ``Subscription/cancel()`` (or when the
    /// subscription is released).
    ///
    /// - Throws: ``SyncError`` `unavailable` when a cap is reached or the server is shutting down.
    package func subscribe(userId: Int64) throws(SyncError) -> Subscription {
        let signal = WakeSignal()
        let id: Int = try state.withLock { (state) throws(SyncError) -> Int in
            guard !state.closed else { throw SyncError(.unavailable, "the server is shutting down; reconnect to another") }
            guard state.count < maxStreams else {
                throw SyncError(.unavailable, "this server holds its limit of \(maxStreams) live streams; retry later")
            }
            guard state.byUser[userId, default: [:]].count < maxStreamsPerUser else {
                throw SyncError(.unavailable, "this user holds its limit of \(maxStreamsPerUser) live streams on this server; close one or retry later")
            }
            let id = state.nextId
            state.nextId += 1
            state.byUser[userId, default: [:]][id] = signal
            state.count += 1
            return id
        }
        return Subscription(notifier: self, userId: userId, id: id, signal: signal)
    }

    /// Wakes the streams `scope` concerns.
    package func wake(_ scope: ChangeScope) {
        let signals: [WakeSignal] = state.withLock { state in
            state.generation += 1
            switch scope {
            case .everyone:
                state.everyoneGeneration = state.generation
                return state.byUser.values.flatMap(\.values)
            case .user(let id):
                guard let signals = state.byUser[id] else { return [] }
                state.userGeneration[id] = state.generation
                return Array(signals.values)
            }
        }
        for signal in signals { signal.wake() }
    }

    /// The head of `userId`'s feed for a stream that was woken: one read shared by every stream
    /// of the user woken by the same wake-ups (a thousand devices of one reader make one read,
    /// not a thousand). A read is shared only when it began after the user's last wake-up, so
    /// it sees every commit that woke them (a wake-up comes after its commit).
    ///
    /// Looks not caused by a wake-up (the first, a heartbeat's, one for changes held back) read
    /// `store` themselves: nothing woke anyone for what they look for.
    package func sharedHead(userId: Int64, store: any SyncStore) async throws -> FeedHead {
        let read: Task<FeedHead, any Error> = state.withLock { state in
            let latest = max(state.userGeneration[userId] ?? 0, state.everyoneGeneration)
            if let shared = state.heads[userId], shared.generation >= latest { return shared.read }
            // Read outside the lock, by the first stream that asks; the others await the same task.
            let read = Task { try await store.feedHead(userId: userId) }
            state.heads[userId] = (state.generation, read)
            return read
        }
        return try await read.value
    }

    /// Ends every stream (graceful shutdown): their signals report closed, and new subscriptions
    /// are refused.
    package func close() {
        let signals = state.withLock { state in
            state.closed = true
            return state.byUser.values.flatMap(\.values)
        }
        for signal in signals { signal.close() }
    }

    fileprivate func remove(userId: Int64, id: Int) {
        state.withLock { state in
            guard state.byUser[userId]?.removeValue(forKey: id) != nil else { return }
            state.count -= 1
            if state.byUser[userId]?.isEmpty == true {
                state.byUser[userId] = nil
                state.userGeneration[userId] = nil
                state.heads[userId] = nil
            }
        }
    }

    /// One stream's place among the notifier's: released by ``cancel()`` or when it is freed.
    package final class Subscription: Sendable {
        private let notifier: ChangeNotifier
        package let userId: Int64
        private let id: Int
        /// Woken after each commit that concerns `userId`.
        package let signal: WakeSignal

        fileprivate init(notifier: ChangeNotifier, userId: Int64, id: Int, signal: WakeSignal) {
            self.notifier = notifier
            self.userId = userId
            self.id = id
            self.signal = signal
        }

        /// Leaves the notifier (idempotent).
        package func cancel() {
            notifier.remove(userId: userId, id: id)
        }

        deinit {
            notifier.remove(userId: userId, id: id)
        }
    }
}

/// A wake-up flag one task waits on: any number of ``wake()`` calls before it looks count as one.
package final class WakeSignal: Sendable {
    private let state = Mutex(State())

    private struct State {
        var woken = false
        var closed = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    package init() {}

    /// Whether ``close()`` was called.
    package var isClosed: Bool { state.withLock { $0.closed } }

    /// Sets the flag, resuming the waiter if there is one.
    package func wake() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.woken = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Sets the flag for good: every later wait returns at once.
    package func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            state.woken = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until the flag is set or `deadline` passes, then clears the flag.
    ///
    /// - Returns: whether the flag was set (false: the deadline passed, or the task was cancelled).
    package func wait(until deadline: ContinuousClock.Instant) async -> Bool {
        if take() { return true }
        guard deadline > .now, !Task.isCancelled else { return false }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForWake() }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
        }
        return take()
    }

    /// Clears the flag, telling whether it was set (a closed signal stays set).
    private func take() -> Bool {
        state.withLock { state in
            defer { if !state.closed { state.woken = false } }
            return state.woken
        }
    }

    private func waitForWake() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.woken || Task.isCancelled { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}
