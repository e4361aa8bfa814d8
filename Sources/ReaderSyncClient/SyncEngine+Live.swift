import GRDB
import ReaderSyncCore
import Synchronization

/// How ``SyncEngine/live(_:)`` waits for changes and recovers from errors.
public struct LiveOptions: Sendable, Hashable {
    /// Seconds each long-poll waits (1…50, default 30): under the 60 s read timeout of
    /// ``HTTPSyncTransport/sharedClient``, so a quiet long-poll is not taken for a dead one.
    public var longPollWait: Int
    /// The longest ``longPollWait``.
    public static let maxLongPollWait = 50
    /// The wait after the first error in a row (default 0.5 s); it doubles with each further
    /// one up to ``maxDelay`` (default 30 s), and each wait is cut to a random 50–100 % of it.
    public var baseDelay: Duration
    /// The longest wait after errors in a row.
    public var maxDelay: Duration
    /// Stream failures in a row after which the engine long-polls instead (default 2): a proxy
    /// that buffers responses makes a stream silent until the client's read timeout.
    public var streamFailuresBeforeLongPoll: Int
    /// Long-polls after which the engine tries a stream again (default 20).
    public var longPollsBeforeRetryingStream: Int

    /// Options; the defaults suit a phone on a mobile network.
    ///
    /// - Parameters:
    ///   - longPollWait: seconds each long-poll waits, clamped to 1…50; default 30.
    ///   - baseDelay: the wait after the first error in a row; default 0.5 s.
    ///   - maxDelay: the longest wait; default 30 s.
    ///   - streamFailuresBeforeLongPoll: stream failures in a row before long-polling (at least 1); default 2.
    ///   - longPollsBeforeRetryingStream: long-polls before a stream is tried again (at least 1); default 20.
    public init(longPollWait: Int = 30, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30),
                streamFailuresBeforeLongPoll: Int = 2, longPollsBeforeRetryingStream: Int = 20) {
        self.longPollWait = min(max(longPollWait, 1), Self.maxLongPollWait)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.streamFailuresBeforeLongPoll = max(streamFailuresBeforeLongPoll, 1)
        self.longPollsBeforeRetryingStream = max(longPollsBeforeRetryingStream, 1)
    }
}

extension SyncEngine {
    /// Keeps the device in step: syncs once, then again whenever the server announces a change
    /// on its live stream or the app records a change in the store, yielding each sync's report.
    ///
    /// ```swift
    /// for try await report in engine.live() {
    ///     print("pulled \(report.pulledStates) states")
    /// }
    /// ```
    ///
    /// Errors of the network or the server (a dropped stream, a `5xx`, a `503` past the server's
    /// stream caps) are retried with backoff and jitter (``LiveOptions``), so the sequence goes
    /// on; after ``LiveOptions/streamFailuresBeforeLongPoll`` stream failures in a row it
    /// long-polls (`pull?wait=`), trying a stream again later. A reset (the server's database
    /// was restored) is handled as ``sync()`` handles it. The sequence finishes when the
    /// consuming task is cancelled or stops iterating; reports the consumer has not taken yet are
    /// kept up to 100 (older ones are dropped first).
    ///
    /// - Throws: ``ReaderSyncError`` `server_refused` when the server refuses in a way waiting
    ///   cannot mend (`401`, `403`, another `4xx` but `408` and `429`), and the store's errors.
    public nonisolated func live(_ options: LiveOptions = LiveOptions()) -> AsyncThrowingStream<SyncReport, any Error> {
        let (reports, continuation) = AsyncThrowingStream<SyncReport, any Error>.makeStream(bufferingPolicy: .bufferingNewest(100))
        // The work lives exactly as long as the sequence: ending it cancels the task.
        let task = Task {
            do {
                try await LiveSession(engine: self, options: options).run { continuation.yield($0) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return reports
    }
}

/// One ``SyncEngine/live(_:)`` run: a listener (stream or long-poll) and an outbox observer wake
/// the sync loop; wakes that come while a sync runs are one more sync.
private struct LiveSession: Sendable {
    let engine: SyncEngine
    let options: LiveOptions

    /// Whether waiting and trying again may mend `error`: the network (`transport_failed`) and
    /// answers that say so (`408`, `429`, `5xx`, `503` past the stream caps). A refused token,
    /// any other `4xx` and the store's own errors end live mode instead.
    static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? ReaderSyncError else { return false }
        if error.code == .transportFailed { return true }
        guard let status = error.httpStatus else { return false }
        return status == 408 || status == 429 || status >= 500
    }

    func run(report: @Sendable (SyncReport) -> Void) async throws {
        let (wakes, waker) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let syncs = SyncCounter()
        let failure = Mutex<(any Error)?>(nil)
        await withTaskGroup(of: Void.self) { group in
            let stop: @Sendable (any Error) -> Void = { error in
                failure.withLock { $0 = $0 ?? error }
                waker.finish()
            }
            group.addTask { await listen(waker: waker, syncs: syncs, stop: stop) }
            group.addTask { await observeOutbox(waker: waker, stop: stop) }
            waker.yield(()) // the first sync
            var failures = 0
            for await _ in wakes {
                syncs.start()
                defer { syncs.finish() }
                do {
                    report(try await engine.sync())
                    failures = 0
                } catch {
                    if Task.isCancelled { break }
                    guard Self.isTransient(error) else {
                        stop(error)
                        break
                    }
                    failures += 1
                    do { try await engine.sleep(backoff(failures: failures, error)) } catch { break }
                    waker.yield(()) // try again
                }
            }
            group.cancelAll()
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Wakes the sync loop when the server says something changed: on its live stream, or by a
    /// long-poll's answer when streaming fails.
    private func listen(waker: AsyncStream<Void>.Continuation, syncs: SyncCounter, stop: (any Error) -> Void) async {
        var streaming = true
        var streamFailures = 0
        var longPolls = 0
        var failures = 0
        let clock = ContinuousClock()
        /// Wakes the sync loop and waits for a sync begun after the wake-up: until then the
        /// device's cursor is the old one (a reset's, or one a long-poll would answer at once again).
        func syncAndWait() async {
            let mark = syncs.started
            waker.yield(())
            await syncs.waitForSync(startedAfter: mark)
        }
        while !Task.isCancelled {
            do {
                if streaming {
                    let opened = clock.now
                    var told = false
                    let events = try await engine.transport.events(cursor: try engine.store.cursor())
                    for try await event in events {
                        streamFailures = 0
                        failures = 0
                        switch event {
                        case .heartbeat: continue
                        case .changes: told = true
                        case .reset: told = true
                        }
                        // A reset ends the stream; the cursor is good again only after the sync that resets.
                        if case .reset = event { await syncAndWait() } else { waker.yield(()) }
                    }
                    // The server ended the stream (its life, or shutdown). One that lived long or
                    // told something is reopened after a short random wait; a short silent one
                    // counts as a failure (a proxy that cuts streams), so it backs off.
                    if told || clock.now - opened >= .seconds(10) {
                        try await engine.sleep(.milliseconds(100) * (1 + 4 * min(max(engine.jitter(), 0), 1)))
                        continue
                    }
                    throw ReaderSyncError(.transportFailed, "the event stream ended after \(clock.now - opened) without an event")
                }
                longPolls += 1
                if longPolls >= options.longPollsBeforeRetryingStream {
                    streaming = true
                    longPolls = 0
                }
                let asked = clock.now
                let page = try await engine.transport.pull(cursor: try engine.store.cursor(), limit: 1, wait: options.longPollWait,
                                                           sections: try engine.store.followedSections()).value
                if !page.isCaughtUp {
                    failures = 0
                    await syncAndWait()
                } else if clock.now - asked < .seconds(options.longPollWait) / 2 {
                    // An empty page well before the wait: the server (or a proxy) ignores `wait`.
                    throw ReaderSyncError(.transportFailed, "a long-poll answered empty at once: the server does not wait")
                } else {
                    failures = 0
                }
            } catch {
                if Task.isCancelled { return }
                let error = SyncEngine.sdkError(error)
                // A long-poll's or a stream's cursor of another epoch, or before the tombstone
                // horizon: the sync starts the device over.
                if let code = (error as? ReaderSyncError)?.serverError?.code, code == .resetRequired || code == .cursorExpired {
                    await syncAndWait()
                    continue
                }
                guard Self.isTransient(error) || Self.isMissingRoute(error) else {
                    stop(error)
                    return
                }
                if streaming {
                    streamFailures += 1
                    // A server or proxy without the route will not grow one: long-poll at once.
                    if Self.isMissingRoute(error) || streamFailures >= options.streamFailuresBeforeLongPoll {
                        streaming = false
                        streamFailures = 0
                        longPolls = 0
                    }
                }
                failures += 1
                do { try await engine.sleep(backoff(failures: failures, error)) } catch { return }
            }
        }
    }

    /// A `404` or `405`: the server (or a proxy) has no event stream.
    static func isMissingRoute(_ error: any Error) -> Bool {
        (error as? ReaderSyncError).map { $0.httpStatus == 404 || $0.httpStatus == 405 } ?? false
    }

    /// Wakes the sync loop whenever the outbox changes and holds anything (GRDB's
    /// `ValueObservation`, which may fold several commits into one value: an acknowledgement and
    /// a new change together still leave rows, so still wake it).
    private func observeOutbox(waker: AsyncStream<Void>.Continuation, stop: (any Error) -> Void) async {
        let pending = ValueObservation.tracking(ReaderStore.pendingChangeCountFetch)
        do {
            for try await count in pending.values(in: engine.store.dbPool) where count > 0 {
                waker.yield(())
            }
        } catch {
            if !Task.isCancelled { stop(ReaderSyncError.store(error, doing: "watch the outbox")) }
        }
    }

    /// ``RetryPolicy``'s delay with this session's delays, the jitter taking 50–100 % of it.
    private func backoff(failures: Int, _ error: any Error) -> Duration {
        RetryPolicy(baseDelay: options.baseDelay, maxDelay: options.maxDelay).delay(
            beforeRetry: failures, retryAfter: (error as? ReaderSyncError)?.retryAfter ?? .zero,
            jitter: 0.5 + 0.5 * min(max(engine.jitter(), 0), 1))
    }
}

/// Counts the sync loop's syncs, so the listener can wait for one begun after its wake-up.
private final class SyncCounter: Sendable {
    private let counts = Mutex<(started: Int, finished: Int)>((0, 0))
    private let finishes: AsyncStream<Void>
    private let finished: AsyncStream<Void>.Continuation

    init() {
        (finishes, finished) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Syncs begun so far.
    var started: Int { counts.withLock { $0.started } }

    func start() { counts.withLock { $0.started += 1 } }

    func finish() {
        counts.withLock { $0.finished += 1 }
        finished.yield(())
    }

    /// Returns once sync number `mark + 1` (the first begun after `mark` were) has finished, or
    /// the task is cancelled. One waiter at a time (the listener).
    func waitForSync(startedAfter mark: Int) async {
        var iterator = finishes.makeAsyncIterator()
        while counts.withLock({ $0.finished }) <= mark {
            guard await iterator.next() != nil, !Task.isCancelled else { return }
        }
    }
}
