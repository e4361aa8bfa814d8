import Foundation
import ReaderSyncCore

/// What one ``SyncEngine/sync()`` did.
public struct SyncReport: Sendable, Hashable {
    /// Mutations sent (retries of a batch count again).
    public var pushed = 0
    /// Outbox entries the server acknowledged.
    public var acknowledged = 0
    /// Pushed changes the server applied (docs/PROTOCOL.md, "Push").
    public var applied = 0
    /// Pushed changes the server kept but that lost to a later write (the conflict log says why).
    public var superseded = 0
    /// Pushed changes the server had already taken (a resend after a lost answer).
    public var duplicates = 0
    /// Pushed changes the server refused (an unknown article, a value out of range).
    public var rejected = 0
    /// Conflict log entries the server pointed this device's mutations to.
    public var conflictIds: [Int64] = []
    /// New or corrected articles pulled.
    public var pulledArticles = 0
    /// Articles the publisher deleted (tombstones pulled); the device dropped them.
    public var pulledDeletions = 0
    /// Reader states pulled (changes made on the user's other devices, and the server's answers).
    public var pulledStates = 0
    /// Pull pages stored.
    public var pages = 0
    /// HTTP requests (or transport calls) made, retries of a busy server not counted.
    public var requests = 0
    /// Bytes of request bodies sent.
    public var bytesSent = 0
    /// Bytes of response bodies received (compressed size).
    public var bytesReceived = 0
    /// Whether the server's database had been reset or restored, and the device started over.
    public var serverWasReset = false
    /// Changes given back to the server after a reset.
    public var requeuedAfterReset = 0
    /// Whether the device had not synced since before the server's tombstone horizon
    /// (`410 cursor_expired`) and pulled anew, its pending changes and states kept.
    public var cursorExpired = false
    /// Articles the server expired (older than its retention); the device dropped those not
    /// bookmarked and without a pending change.
    public var pulledExpiries = 0
    /// Articles evicted after the pull because they are outside the store's window or of a
    /// section the device does not follow.
    public var evicted = 0
    /// Articles of sections the device started following (``ReaderStore/follow(sections:)``),
    /// brought before the pull.
    public var backfilledArticles = 0
    /// Bookmarked articles whose content the device lacked, fetched one by one
    /// (``SyncEngine/article(id:)``) after a first sync, a reset or a pull that brought states.
    public var fetchedArticles = 0
    /// How long after the sync began the first pulled page was stored (what a reader waits for
    /// on a first sync); `nil` when nothing was pulled.
    public var firstPageStored: Duration?
    /// Requests the server turned away as busy (`503`) and the engine sent again after waiting.
    public var busyRetries = 0
    /// Pending changes this version could not read (a row written by hand, or by a newer
    /// version of the app before a downgrade), moved out of the outbox unsent and kept in
    /// ``ReaderStore/setAsideChanges()``; 0 normally. Left in place, one would stop every sync.
    public var setAside = 0

    /// An empty report (every count 0).
    public init() {}
}

/// Where an engine's syncing stands (``SyncEngine/status``, ``SyncEngine/observeStatus()``),
/// for this engine's life (not stored).
public struct SyncStatus: Sendable, Hashable {
    /// Whether a sync runs now.
    public var isSyncing = false
    /// When the last sync that succeeded ended (this device's clock); `nil` before the first.
    public var lastSuccess: Date?
    /// Why the last sync failed; `nil` once one succeeds. A cancelled sync changes nothing here.
    public var lastError: ReaderSyncError?

    /// A status (for previews and tests of app code); the default is that of an engine that never synced.
    public init(isSyncing: Bool = false, lastSuccess: Date? = nil, lastError: ReaderSyncError? = nil) {
        self.isSyncing = isSyncing
        self.lastSuccess = lastSuccess
        self.lastError = lastError
    }
}

/// How ``SyncEngine`` retries a request the server turned away as busy (`503` with `Retry-After`).
///
/// Before the n-th retry it waits the server's `Retry-After` plus a random share (jitter) of
/// `baseDelay × 2^(n-1)`, capped at `maxDelay`, so devices turned away together do not all come
/// back together. Other failures are not retried here: they end the sync, and nothing is lost.
public struct RetryPolicy: Sendable, Hashable {
    /// Tries per request, the first included; 1 turns retrying off.
    public var maxAttempts: Int
    /// The backoff before the first retry, doubled for each further one.
    public var baseDelay: Duration
    /// The longest backoff.
    public var maxDelay: Duration

    /// A policy; the defaults retry 5 times over at most about 8 s plus the server's waits.
    ///
    /// - Parameters:
    ///   - maxAttempts: tries per request, the first included (at least 1); default 6.
    ///   - baseDelay: the backoff before the first retry; default 250 ms.
    ///   - maxDelay: the longest backoff; default 30 s.
    public init(maxAttempts: Int = 6, baseDelay: Duration = .milliseconds(250), maxDelay: Duration = .seconds(30)) {
        self.maxAttempts = max(maxAttempts, 1)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The wait before retry number `retry` (1-based), given the server's `Retry-After` and a
    /// uniform random `jitter` in 0…1.
    public func delay(beforeRetry retry: Int, retryAfter: Duration, jitter: Double) -> Duration {
        let backoff = min(baseDelay * (1 << min(retry - 1, 20)), maxDelay)
        return retryAfter + backoff * min(max(jitter, 0), 1)
    }
}

/// Syncs a ``ReaderStore`` with a server: push the outbox, then pull until caught up.
///
/// One sync runs at a time per engine; a call made while one runs waits for its own turn.
public actor SyncEngine {
    /// The device's store this engine syncs.
    public nonisolated let store: ReaderStore
    /// How it reaches the server.
    public nonisolated let transport: any SyncTransport
    /// Mutations per push (at most 1000, the server's limit).
    public nonisolated let pushBatchSize: Int
    /// Changes per pulled page (1…1000).
    public nonisolated let pageSize: Int
    /// Changes in the first page of a first sync with a window (1…1000): small, so the newest
    /// stories show at once.
    public nonisolated let firstPageSize: Int

    /// How a busy server's `503` is retried.
    public nonisolated let retryPolicy: RetryPolicy
    let sleep: @Sendable (Duration) async throws -> Void
    let jitter: @Sendable () -> Double

    /// An engine for `store`; nothing runs until ``sync()`` or ``live(_:)``.
    ///
    /// - Parameters:
    ///   - store: the device's store; one engine per store.
    ///   - transport: how the server is reached, e.g. ``HTTPSyncTransport``.
    ///   - pushBatchSize: mutations per push, 1…1000 (clamped); default 500.
    ///   - pageSize: changes per pulled page, 1…1000 (clamped); default 500.
    ///   - firstPageSize: changes in the first page of a first sync with a window, 1…1000
    ///     (clamped); default 30, small enough to show at once.
    ///   - retryPolicy: how a busy server's `503` is retried.
    public init(store: ReaderStore, transport: any SyncTransport, pushBatchSize: Int = 500, pageSize: Int = 500,
                firstPageSize: Int = 30, retryPolicy: RetryPolicy = RetryPolicy()) {
        self.init(store: store, transport: transport, pushBatchSize: pushBatchSize, pageSize: pageSize, firstPageSize: firstPageSize,
                  retryPolicy: retryPolicy, sleep: { try await Task.sleep(for: $0) }, jitter: { Double.random(in: 0...1) })
    }

    /// - Parameters:
    ///   - sleep: how to wait before a retry; tests and the simulator record instead of sleeping.
    ///   - jitter: a uniform random number in 0…1, drawn per retry.
    package init(store: ReaderStore, transport: any SyncTransport, pushBatchSize: Int, pageSize: Int, firstPageSize: Int = 30,
                 retryPolicy: RetryPolicy, sleep: @escaping @Sendable (Duration) async throws -> Void,
                 jitter: @escaping @Sendable () -> Double) {
        self.store = store
        self.transport = transport
        self.pushBatchSize = min(max(pushBatchSize, 1), 1000)
        self.pageSize = min(max(pageSize, 1), 1000)
        self.firstPageSize = min(max(firstPageSize, 1), 1000)
        self.retryPolicy = retryPolicy
        self.sleep = sleep
        self.jitter = jitter
    }

    /// Runs `request`, and again after a wait while the server answers busy, up to the policy's attempts.
    private func retryingWhenBusy<T: Sendable>(_ report: inout SyncReport, _ request: @Sendable () async throws -> T) async throws -> T {
        let (value, retries) = try await Self.retryingWhenBusy(policy: retryPolicy, sleep: sleep, jitter: jitter, request)
        report.busyRetries += retries
        return value
    }

    /// The retry loop, outside the actor so that a prefetched page is fetched and decoded while
    /// the engine stores the one before; returns the value and the busy answers it took.
    private nonisolated static func retryingWhenBusy<T: Sendable>(
        policy: RetryPolicy, sleep: @Sendable (Duration) async throws -> Void, jitter: @Sendable () -> Double,
        _ request: @Sendable () async throws -> T
    ) async throws -> (T, retries: Int) {
        var retry = 0
        while true {
            do {
                return (try await request(), retry)
            } catch let error as ReaderSyncError where error.retryAfter != nil && retry + 1 < policy.maxAttempts {
                retry += 1
                try await sleep(policy.delay(beforeRetry: retry, retryAfter: error.retryAfter ?? .zero, jitter: jitter()))
            } catch {
                throw sdkError(error)
            }
        }
    }

    /// `error` as the SDK throws it: a ``ReaderSyncError`` or `CancellationError` as it is (any
    /// error once the task is cancelled as `CancellationError`); anything else (a custom
    /// transport's own error) as `transport_failed` with it as ``ReaderSyncError/cause``.
    nonisolated static func sdkError(_ error: any Error) -> any Error {
        if error is CancellationError || Task.isCancelled { return CancellationError() }
        if error is ReaderSyncError { return error }
        return ReaderSyncError(.transportFailed, "the transport failed: \(error)", cause: error)
    }

    private var running = false
    /// Articles the server said it has none of (deleted, or removed by compaction), in this
    /// engine's life: not asked for again after each sync.
    private var missingArticles: Set<String> = []
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Pushes every pending change, then pulls pages until the device is caught up.
    ///
    /// Outbox entries are removed only once the server acknowledges them, so a failure at any
    /// point loses nothing: call `sync()` again. On `410 reset_required` the device starts over
    /// (``ReaderStore`` keeps and re-queues its changes) and syncs again; on `410 cursor_expired`
    /// it keeps its outbox and states as they are, drops every article, pulls anew and fetches
    /// bookmarked content again.
    ///
    /// - Throws: ``ReaderSyncError``: `transport_failed` (the network, a `5xx`, a response that is
    ///   not protocol v1, or any error of a custom ``SyncTransport``, kept as ``ReaderSyncError/cause``),
    ///   `server_refused` (a `4xx`: ``ReaderSyncError/serverError`` says which), `store_corrupt`,
    ///   `store_full` or `store_failed` (the device store); `CancellationError` when the calling task is cancelled.
    ///   Nothing local is lost in any case.
    @discardableResult
    public func sync() async throws -> SyncReport {
        while running {
            await withCheckedContinuation { waiters.append($0) }
        }
        running = true
        setStatus { $0.isSyncing = true }
        defer {
            running = false
            if !waiters.isEmpty { waiters.removeFirst().resume() }
        }
        do {
            let report = try await syncOnce()
            setStatus { $0 = SyncStatus(isSyncing: false, lastSuccess: Date(), lastError: nil) }
            return report
        } catch {
            guard let failure = Self.sdkError(error) as? ReaderSyncError else {
                setStatus { $0.isSyncing = false }  // cancelled: not a failure to show
                throw CancellationError()
            }
            setStatus { $0.isSyncing = false; $0.lastError = failure }
            throw failure
        }
    }

    /// Where syncing stands now (see ``observeStatus()``).
    public private(set) var status = SyncStatus()
    private var statusObservers: [UUID: AsyncStream<SyncStatus>.Continuation] = [:]

    /// ``status`` now and after each change: a sync starting, succeeding or failing. For an
    /// app's "syncing…" indicator, "updated at" line and error banner. Ends with its task.
    public func observeStatus() -> AsyncStream<SyncStatus> {
        let id = UUID()
        let (stream, continuation) = AsyncStream.makeStream(of: SyncStatus.self, bufferingPolicy: .bufferingNewest(16))
        continuation.yield(status)
        statusObservers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.removeStatusObserver(id) }
        }
        return stream
    }

    private func removeStatusObserver(_ id: UUID) {
        statusObservers[id] = nil
    }

    private func setStatus(_ change: (inout SyncStatus) -> Void) {
        var next = status
        change(&next)
        guard next != status else { return }
        status = next
        for continuation in statusObservers.values { continuation.yield(next) }
    }

    private func syncOnce() async throws -> SyncReport {
        var report = SyncReport()
        let started = ContinuousClock.now
        let firstSync = try store.cursor() == nil
        do {
            try await pushAndPull(&report, started: started)
        } catch let error as ReaderSyncError where error.serverError?.code == .resetRequired {
            report.serverWasReset = true
            report.requeuedAfterReset = try store.startOverAfterServerReset()
            try await pushAndPull(&report, started: started)
        } catch let error as ReaderSyncError where error.serverError?.code == .cursorExpired {
            report.cursorExpired = true
            try store.startOverAfterCursorExpired()
            try await pushAndPull(&report, started: started)
        }
        // After a first sync (also one resumed after the app was stopped) or a reset, and
        // whenever a pull brought states (a bookmark of an article the device does not keep).
        if firstSync || report.serverWasReset || report.cursorExpired || report.pulledStates > 0 {
            report.fetchedArticles = try await fetchBookmarkedContent()
        }
        report.evicted = try store.evict()
        if firstSync || report.evicted > 0 { store.truncateLog() }
        return report
    }

    private func pushAndPull(_ report: inout SyncReport, started: ContinuousClock.Instant) async throws {
        try await pushAll(&report)
        try await backfillFollowedSections(&report)
        try await pullAll(&report, started: started)
    }

    /// After ``ReaderStore/follow(sections:)``: brings the newest articles (within the window) of
    /// the sections added since the device's articles were pulled, as a first sync of those
    /// sections that keeps only its articles, then pulls go on from the device's own cursor with
    /// the new set. The first sync's head is at or after that cursor, so the pull brings every
    /// change after it (some of those articles again, which changes nothing) and none is missed.
    /// A device without a cursor does a first sync of what it follows instead.
    private func backfillFollowedSections(_ report: inout SyncReport) async throws {
        let (followed, pulled) = try store.sectionsToBackfill()
        guard followed != pulled else { return }
        let added: Set<String>?  // nil: every section
        switch (pulled, followed) {
        case (nil, _): added = []  // it had every section
        case (_?, nil): added = nil
        case (let pulled?, let followed?): added = followed.subtracting(pulled)
        }
        if try store.cursor() != nil, added?.isEmpty != true {
            let window = store.options.window
            let since = window.publishedSince(now: store.now())
            let (transport, limit) = (transport, pageSize)
            var page = try await retryingWhenBusy(&report) {
                try await transport.pullNewestFirst(limit: limit, window: window.newest, since: since, sections: added)
            }
            while true {
                try checkEpoch(of: page.value)
                report.requests += 1
                report.bytesSent += page.bytesSent
                report.bytesReceived += page.bytesReceived
                try store.storeBackfill(page.value.articles)
                report.backfilledArticles += page.value.articles.count
                // The articles come first, then the states (which the device's cursor brings
                // anyway). A transport without first syncs falls back to a pull from the
                // beginning, which says nothing of it: that one is read to its end.
                guard page.value.hasMore, page.value.articlesComplete != true else { break }
                let cursor = page.value.cursor
                page = try await retryingWhenBusy(&report) {
                    try await transport.pull(cursor: cursor, limit: limit, sections: added)
                }
            }
        }
        try store.markBackfilled(sections: followed)
    }

    /// Throws `reset_required` for a page of another epoch: a device that never pulled has no
    /// cursor to be refused, so the epoch tells it the database changed.
    private func checkEpoch(of page: PullResponse) throws {
        if try store.isFromAnotherEpoch(page.epoch) {
            throw ReaderSyncError(.serverRefused, "the server's database changed epoch",
                                  serverError: SyncError(.resetRequired, "the server's database was reset or restored"))
        }
    }

    /// One article: from the store, else fetched from the server (`GET /v1/articles/{id}`) and
    /// kept while bookmarked or pending, else until the next eviction, so a link to a story
    /// outside the window still opens.
    ///
    /// - Returns: `nil` when neither has it (never published, deleted, or removed by the
    ///   server's compaction).
    /// - Throws: ``ReaderSyncError`` `transport_failed` or `server_refused` when the fetch fails;
    ///   `store_corrupt`, `store_full` or `store_failed` when the store cannot be read or written.
    public func article(id: String) async throws -> ReaderArticle? {
        if let article = try store.article(id: id) { return article }
        let transport = self.transport
        let (answer, _) = try await Self.retryingWhenBusy(policy: retryPolicy, sleep: sleep, jitter: jitter) {
            try await transport.article(id: id)
        }
        guard let fetched = answer else {
            missingArticles.insert(id)
            return nil
        }
        try store.cache(fetched.value)
        return try store.article(id: id)
    }

    /// Fetches the content of bookmarked articles the pull did not bring (at most 200 a sync).
    /// A failure (``ReaderSyncError``) ends the fetching, never the sync (cancellation does end
    /// it): what is left is fetched after a later sync
    /// that fetches, or when the app asks for it (``article(id:)``).
    private func fetchBookmarkedContent() async throws -> Int {
        var fetched = 0
        let wanted = ((try? store.bookmarkedArticleIdsWithoutContent(limit: 200 + missingArticles.count)) ?? [])
            .filter { !missingArticles.contains($0) }.prefix(200)
        for id in wanted {
            do {
                if try await article(id: id) != nil { fetched += 1 }
            } catch is ReaderSyncError {
                break
            }
        }
        return fetched
    }

    private func pushAll(_ report: inout SyncReport) async throws {
        while true {
            let (batch, setAside) = try store.outboxBatch(limit: pushBatchSize)
            report.setAside += setAside
            guard !batch.mutations.isEmpty else { return }
            let response = try await retryingWhenBusy(&report) { try await transport.push(batch) }
            report.requests += 1
            report.pushed += batch.mutations.count
            report.bytesSent += response.bytesSent
            report.bytesReceived += response.bytesReceived
            let before = try store.pendingChangeCount()
            try store.acknowledge(response.value, pushed: batch)
            let after = try store.pendingChangeCount()
            report.acknowledged += before - after
            for result in response.value.results {
                switch result.outcome {
                case .applied: report.applied += 1
                case .superseded: report.superseded += 1
                case .duplicate: report.duplicates += 1
                case .rejected: report.rejected += 1
                }
                if let id = result.conflictId { report.conflictIds.append(id) }
            }
            // The server processed nothing of this batch: stop rather than loop.
            if before == after { return }
        }
    }

    /// Pulls pages until caught up. While a page is being stored, the next one (from the cursor
    /// that page ends at) is already requested and decoded, so the server's work and the
    /// device's overlap; it is used only once the page before is stored, and dropped otherwise.
    private func pullAll(_ report: inout SyncReport, started: ContinuousClock.Instant) async throws {
        let cursor = try store.cursor()
        // Safe before a backfill too: it brings what lies before the cursor.
        let sections = try store.followedSections()
        var next: Task<(Transported<PullResponse>, retries: Int), any Error>? = cursor == nil && !store.options.window.isUnbounded
            ? fetchNewestFirst(sections: sections) : fetchPage(from: cursor, sections: sections)
        defer { next?.cancel() }
        while let pending = next {
            next = nil
            // The fetch runs apart from this task: cancelling the sync cancels it too.
            let (page, retries) = try await withTaskCancellationHandler { try await pending.value } onCancel: { pending.cancel() }
            report.busyRetries += retries
            try checkEpoch(of: page.value)
            report.requests += 1
            report.pages += 1
            report.bytesSent += page.bytesSent
            report.bytesReceived += page.bytesReceived
            if page.value.hasMore { next = fetchPage(from: page.value.cursor, sections: sections) }
            try store.apply(page.value)
            if report.firstPageStored == nil { report.firstPageStored = ContinuousClock.now - started }
            report.pulledArticles += page.value.articles.count
            report.pulledDeletions += page.value.deletedArticleIds.count
            report.pulledExpiries += page.value.expiredArticleIds.count
            report.pulledStates += page.value.states.count
        }
    }

    /// Requests the first page of a first sync, newest first within the store's window.
    private func fetchNewestFirst(sections: Set<String>?) -> Task<(Transported<PullResponse>, retries: Int), any Error> {
        let (transport, limit, policy, sleep, jitter) = (transport, firstPageSize, retryPolicy, sleep, jitter)
        let window = store.options.window
        let since = window.publishedSince(now: store.now())
        return Task.detached {
            try await Self.retryingWhenBusy(policy: policy, sleep: sleep, jitter: jitter) {
                try await transport.pullNewestFirst(limit: limit, window: window.newest, since: since, sections: sections)
            }
        }
    }

    /// Requests the page after `cursor`, retrying while the server is busy, off the actor.
    private func fetchPage(from cursor: String?, sections: Set<String>?) -> Task<(Transported<PullResponse>, retries: Int), any Error> {
        let (transport, limit, policy, sleep, jitter) = (transport, pageSize, retryPolicy, sleep, jitter)
        return Task.detached {
            try await Self.retryingWhenBusy(policy: policy, sleep: sleep, jitter: jitter) {
                try await transport.pull(cursor: cursor, limit: limit, sections: sections)
            }
        }
    }
}
