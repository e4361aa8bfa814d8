import ReaderSyncCore

/// Timing and limits of live streams (`GET /v1/sync/events`) and long-polls (`pull?wait=`).
package struct LiveConfiguration: Sendable {
    /// Time between comment heartbeats of a quiet stream (`--events-heartbeat`, default 20 s).
    /// Each heartbeat also looks at the feed, so a change no wake-up told of (one committed by
    /// another process on the same SQLite file) is announced within this time.
    package var heartbeat: Duration = .seconds(20)
    /// How long a stream lives before the server ends it (default 5 min), spread by
    /// ± ``lifeJitter`` so that streams opened together do not all reconnect together.
    package var streamLife: Duration = .seconds(300)
    /// The fraction of ``streamLife`` a stream's life varies by, at random (default 0.2).
    package var lifeJitter = 0.2
    /// Least time between two `changes` events of one stream (default 50 ms): changes within it
    /// are told by one event, sent when it has passed.
    package var minimumEventInterval: Duration = .milliseconds(50)
    /// The wait before reconnecting that the stream's `retry:` field suggests (default 2 s).
    package var reconnectDelay: Duration = .seconds(2)
    /// Longest `wait` a long-poll may ask for (60 s).
    package var maxWait: Duration = .seconds(60)
    /// Streams and long-polls this server holds at once (`--max-event-streams`, default 10,000).
    package var maxStreams = 10_000
    /// Streams and long-polls one user holds at once on this server (`--max-event-streams-per-user`, default 32).
    package var maxStreamsPerUser = 32

    package init() {}
}

/// What a live stream tells its device.
package enum LiveEvent: Sendable, Hashable {
    /// Something after the device's cursor can be pulled now; data: the epoch.
    case changes(epoch: String)
    /// The cursor is of another epoch: the device must reset (as on `410 reset_required`); the
    /// stream ends after it.
    case reset(epoch: String, message: String)
    /// Nothing happened; keeps proxies and NATs from closing a quiet connection.
    case heartbeat
}

/// One open live stream of one user's feed, from ``SyncService/openLiveStream(user:cursor:)``:
/// ``run(life:send:)`` tells of changes until its life ends.
///
/// It holds its place among the server's streams (``ChangeNotifier``) from opening until `run`
/// returns or it is released, so a stream that never runs leaks no place.
package final class LiveStream: Sendable {
    private enum Start {
        case watch(after: FeedPosition, subscription: ChangeNotifier.Subscription)
        case reset(message: String)
    }

    private let start: Start
    private let store: any SyncStore
    private let notifier: ChangeNotifier
    private let epoch: String
    private let configuration: LiveConfiguration
    /// After a wake-up that showed nothing new, how long the stream keeps looking again (at 10,
    /// 20, 40 … ms): a read replica may not have replayed the change it was woken for yet.
    static let lookAgainAfterWake: Duration = .milliseconds(2500)

    init(watching userId: Int64, after: FeedPosition, subscription: ChangeNotifier.Subscription, notifier: ChangeNotifier,
         store: any SyncStore, epoch: String, configuration: LiveConfiguration) {
        self.start = .watch(after: after, subscription: subscription)
        self.store = store
        self.notifier = notifier
        self.epoch = epoch
        self.configuration = configuration
    }

    init(resetWith message: String, notifier: ChangeNotifier, store: any SyncStore, epoch: String, configuration: LiveConfiguration) {
        self.start = .reset(message: message)
        self.store = store
        self.notifier = notifier
        self.epoch = epoch
        self.configuration = configuration
    }

    /// Whether the stream only tells its device to reset (its cursor is of another epoch).
    package var isReset: Bool {
        if case .reset = start { return true }
        return false
    }

    /// The server's default stream life, with its jitter.
    package func jitteredLife() -> Duration {
        let spread = max(0, min(configuration.lifeJitter, 1))
        return configuration.streamLife * Double.random(in: (1 - spread)...(1 + spread))
    }

    /// Calls `send` with each event, in order, until `life` has passed, `send` returns false, the
    /// notifier closes (shutdown) or the task is cancelled. The first `changes` event comes at
    /// once when the feed already holds something after the cursor.
    ///
    /// - Throws: what the store or `send` throws (a store error ends the stream; the device
    ///   reconnects).
    package func run(life: Duration, send: (LiveEvent) async throws -> Bool) async throws {
        let after: FeedPosition
        let subscription: ChangeNotifier.Subscription
        switch start {
        case .reset(let message):
            _ = try await send(.reset(epoch: epoch, message: message))
            return
        case .watch(let position, let held):
            after = position
            subscription = held
        }
        defer { subscription.cancel() }
        let signal = subscription.signal
        let clock = ContinuousClock()
        let end = clock.now + life
        var told = after
        var lastEvent: ContinuousClock.Instant?
        var nextHeartbeat = clock.now + configuration.heartbeat
        var lookAgainAt: ContinuousClock.Instant?
        var lookAgainDelay: Duration = .milliseconds(10)
        var wokenAt: ContinuousClock.Instant?
        var look = true
        var heartbeatDue = false
        var woken = false
        while !Task.isCancelled, !signal.isClosed {
            if look {
                if let lastEvent, clock.now < lastEvent + configuration.minimumEventInterval {
                    // Coalescing: what changes meanwhile is told by this one event.
                    do { try await Task.sleep(until: min(lastEvent + configuration.minimumEventInterval, end), clock: clock) } catch { return }
                }
                // A look for a wake-up shares its read with the user's other woken streams.
                let head = woken && !heartbeatDue
                    ? try await notifier.sharedHead(userId: subscription.userId, store: store)
                    : try await store.feedHead(userId: subscription.userId)
                let now = clock.now
                let news = head.position > told
                if news {
                    told = head.position
                    guard try await send(.changes(epoch: epoch)) else { return }
                    lastEvent = now
                    nextHeartbeat = now + configuration.heartbeat
                } else if heartbeatDue {
                    // A heartbeat looks first: a change no wake-up told of is announced instead.
                    guard try await send(.heartbeat) else { return }
                    nextHeartbeat = clock.now + configuration.heartbeat
                }
                heartbeatDue = false
                // Look again soon while changes are held back by the horizon, or, on a replica, for
                // a while after a wake-up (it may not have replayed all it was woken for yet, even
                // when it showed some of it).
                let replicaMayCatchUp = head.mayLag && (wokenAt.map { now < $0 + Self.lookAgainAfterWake } ?? false)
                if head.heldBack || replicaMayCatchUp {
                    lookAgainAt = now + lookAgainDelay
                    lookAgainDelay = min(lookAgainDelay * 2, .seconds(1))
                } else {
                    lookAgainAt = nil
                    lookAgainDelay = .milliseconds(10)
                }
            }
            let deadline = min(end, nextHeartbeat, lookAgainAt ?? end)
            woken = await signal.wait(until: deadline)
            let now = clock.now
            if signal.isClosed || now >= end { return }
            if woken {
                wokenAt = now
                lookAgainDelay = .milliseconds(10)
            }
            heartbeatDue = now >= nextHeartbeat
            look = woken || heartbeatDue || lookAgainAt.map { now >= $0 } ?? false
        }
    }
}
