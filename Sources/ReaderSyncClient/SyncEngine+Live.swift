import GRDB
import ReaderSyncCore
import Synchronization

/// How ``SyncEngine/live(_:)`` waits for changes and recovers from errors.
public struct LiveOptions: Sendable, Hashable {
    /// Seconds each long-poll waits (1…60, default 30).
    public var longPollWait: Int
    /// The wait after the first error in a row (default 0.5 s); it doubles with each further
    /// one up to ``maxDelay`` (default 30 s), and each wait is cut to a random 50–100 % of it.
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// Stream failures in a row after which the engine long-polls instead (default 2): a proxy
    /// that buffers responses makes a stream silent until the client's read timeout.
    public var streamFailuresBeforeLongPoll: Int
    /// Long-polls after which the engine tries a stream again (default 20).
    public var longPollsBeforeRetryingStream: Int

    public init(longPollWait: Int = 30, baseDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(30),
                streamFailuresBeforeLongPoll: Int = 2, longPollsBeforeRetryingStream: Int = 20) {
        self.longPollWait = min(max(longPollWait, 1), 60)
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
    /// - Throws: ``ReaderSyncError`` `server_refused` when the server refuses the device's token
    ///   (`401`, `403`): retrying cannot help; and the store's errors.
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

    /// A refusal no retry can mend: the token is not (or no longer) accepted.
    static func isFatal(_ error: any Error) -> Bool {
        guard let error = error as? ReaderSyncError else { return true } // the store's own errors
        return error.httpStatus == 401 || error.httpStatus == 403
    }

    func run(report: @Sendable (SyncReport) -> Void) async throws {
        let (wakes, waker) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let (syncs, synced) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
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
                do {
                    report(try await engine.sync())
                    failures = 0
                    synced.yield(())
                } catch {
                    if Task.isCancelled { break }
                    if Self.isFatal(error) {
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
    private func listen(waker: AsyncStream<Void>.Continuation, syncs: AsyncStream<Void>, stop: (any Error) -> Void) async {
        var streaming = true
        var streamFailures = 0
        var longPolls = 0
        var failures = 0
        var synced = syncs.makeAsyncIterator()
        while !Task.isCancelled {
            do {
                if streaming {
                    let events = try await engine.transport.events(cursor: try engine.store.cursor())
                    for try await event in events {
                        streamFailures = 0
                        failures = 0
                        if event != .heartbeat { waker.yield(()) }
                    }
                    continue // the server ended the stream (its life, or shutdown): open another
                }
                longPolls += 1
                if longPolls >= options.longPollsBeforeRetryingStream {
                    streaming = true
                    longPolls = 0
                }
                let page = try await engine.transport.pull(cursor: try engine.store.cursor(), limit: 1, wait: options.longPollWait).value
                failures = 0
                if !page.articles.isEmpty || !page.deletedArticleIds.isEmpty || !page.states.isEmpty || page.hasMore {
                    waker.yield(())
                    // Wait for the sync to move the cursor, or the next long-poll answers at once again.
                    _ = await synced.next()
                }
            } catch {
                if Task.isCancelled { return }
                if Self.isFatal(error) {
                    stop(error)
                    return
                }
                if streaming {
                    streamFailures += 1
                    // A server or proxy without the route will not grow one: long-poll at once.
                    let noRoute = (error as? ReaderSyncError).map { $0.httpStatus == 404 || $0.httpStatus == 405 } ?? false
                    if noRoute || streamFailures >= options.streamFailuresBeforeLongPoll {
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

    /// Wakes the sync loop whenever the outbox holds changes the app just recorded (GRDB's
    /// `ValueObservation` of the outbox's row count).
    private func observeOutbox(waker: AsyncStream<Void>.Continuation, stop: (any Error) -> Void) async {
        let pending = ValueObservation.tracking { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox") ?? 0 }
        do {
            var last = 0
            for try await count in pending.values(in: engine.store.dbPool) {
                if count > last { waker.yield(()) }
                last = count
            }
        } catch {
            if !Task.isCancelled { stop(ReaderSyncError(.storeUnavailable, "watching the outbox failed: \(error)")) }
        }
    }

    private func backoff(failures: Int, _ error: any Error) -> Duration {
        let exponential = min(options.baseDelay * (1 << min(failures - 1, 20)), options.maxDelay)
        let retryAfter = (error as? ReaderSyncError)?.retryAfter ?? .zero
        return retryAfter + exponential * (0.5 + 0.5 * min(max(engine.jitter(), 0), 1))
    }
}
