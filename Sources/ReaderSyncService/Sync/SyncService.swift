import Crypto
import Foundation
import ReaderSyncCore

/// Limits and tolerances of a sync server.
package struct SyncConfiguration: Sendable {
    /// How far ahead of the server's clock a device's HLC may be before it is clamped (rule `clock_skew`).
    package var maxClockSkewMillis: Int64 = 5 * 60 * 1000
    package var maxMutationsPerPush = 1000
    package var defaultPullLimit = 500
    package var maxPullLimit = 1000
    /// Largest request body accepted, in bytes.
    package var maxBodyBytes = 16 * 1024 * 1024
    /// Articles written per transaction by an ingest.
    package var ingestBatchSize = 500
    /// Deliberate bugs for the simulator's oracle tests; empty in every real server.
    package var defects: PushPlanner.Defects = []
    /// Whether pushes record the field history (docs/SUPPORT.md); off only to measure its cost
    /// (`bench --no-history`).
    package var recordsHistory = true
    /// Live streams and long-polls.
    package var live = LiveConfiguration()

    package init() {}
}

/// Who a request comes from.
package enum Principal: Sendable, Hashable {
    case admin
    case user(UserRecord)
}

/// The sync server's operations, free of HTTP: what the router, the CLI and the simulator call.
///
/// ```swift
/// let service = try await SyncService(store: SQLiteSyncStore(path: "reader-sync.sqlite"))
/// let page = try await service.pull(user: alice, cursor: nil, limit: nil)
/// ```
package struct SyncService: Sendable {
    package let store: any SyncStore
    package let configuration: SyncConfiguration
    let now: @Sendable () -> Date
    let cursors: CursorCodec
    /// Signs the Google Reader API's session and action tokens (``ReaderAPI``): derived from the
    /// cursor secret, so it is the database's and the same on every server sharing it.
    let readerKey: [UInt8]
    /// The database's epoch, read once at start (a restore starts a new server).
    package let epoch: String
    /// The live streams open on this server, woken after each commit that changed the feed.
    package let notifier: ChangeNotifier

    /// - Parameter now: the server's clock; injected so tests and the simulator control time.
    package init(store: any SyncStore, configuration: SyncConfiguration = .init(),
                 now: @escaping @Sendable () -> Date = { Date() }) async throws {
        self.store = store
        self.configuration = configuration
        self.now = now
        let identity = try await store.identity()
        cursors = CursorCodec(secret: identity.cursorSecret, epoch: identity.epoch)
        epoch = identity.epoch
        readerKey = Array(HMAC<SHA256>.authenticationCode(for: Array("reader-api".utf8), using: SymmetricKey(data: identity.cursorSecret)))
        notifier = ChangeNotifier(maxStreams: configuration.live.maxStreams,
                                  maxStreamsPerUser: configuration.live.maxStreamsPerUser)
    }

    private var nowText: String { Timestamp.format(now()) }

    // MARK: Auth

    /// Resolves an `Authorization` header value (`Bearer <token>`).
    ///
    /// - Throws: ``SyncError`` `unauthorized` when the header is missing, malformed or the token unknown.
    package func authenticate(authorization: String?) async throws -> Principal {
        guard let token = Tokens.bearer(authorization) else {
            throw SyncError(.unauthorized, "send your token as 'Authorization: Bearer <token>'")
        }
        guard !token.isEmpty, token.utf8.count <= 256 else { throw SyncError(.unauthorized, "the token is not valid") }
        let hash = Tokens.hash(token)
        // One read for both: every request authenticates, and each read is a hop to a reader thread.
        let credentials = try await store.credentials(tokenHash: hash)
        if let admin = credentials.adminTokenHash, CursorCodec.constantTimeEqual(admin, hash) {
            return .admin
        }
        if let user = credentials.user { return .user(user) }
        throw SyncError(.unauthorized, "the token is not valid")
    }

    // MARK: Sync

    /// The caller's changes after `cursor` (from the beginning when `nil`).
    ///
    /// - Throws: ``SyncError`` `limit_out_of_range`, `invalid_cursor`, `reset_required` (another
    ///   epoch), `cursor_expired` (before the tombstone horizon, ``compact(_:)``).
    /// - Parameter sections: only articles of these sections (docs/PROTOCOL.md, "Sections"); `nil`
    ///   or empty: every section. States are the user's, of every article.
    /// - Throws: also `invalid_request` for more than ``maxSections`` sections.
    package func pull(user: UserRecord, cursor: String?, limit: Int?, sections: [String]? = nil) async throws -> PullResponse {
        let limit = try checkedLimit(limit)
        let sections = try checkedSections(sections)
        let after: FeedPosition
        let horizonSeen: FeedPosition
        switch try cursor.map({ (c) throws(SyncError) in try cursors.decodeAny(c) }) ?? .feed(.start, horizonSeen: .start) {
        case .feed(let position, let seen): (after, horizonSeen) = (position, seen)
        case .snapshot(let snapshot): return try await snapshotPage(user: user, cursor: snapshot, limit: limit, sections: sections)
        }
        let page = try await store.changes(userId: user.id, after: after, limit: limit, sections: sections)
        // The horizon is read in the page's snapshot: a compaction committed after it cannot slip
        // in between. Only one since the cursor was handed out can have removed a change after
        // it that the device's articles depend on (every removed change is older than the
        // checkpoint it was removed by); a pull from the beginning depends on none.
        if after != .start, after < page.horizon, page.horizon > horizonSeen { throw Self.cursorExpired(page.horizon) }
        // A page that ends the feed hands over at least the horizon: no change of this user's
        // feed lies between its last and the horizon (the page read every one after `after`,
        // and every removed change is older than it), so a device whose own feed is quiet passes
        // what other users' removals raised the horizon to.
        let next = page.hasMore ? page.last : max(page.last, page.horizon, page.passed ?? .start)
        var response = PullResponse(articles: [], deletedArticleIds: [], states: [],
                                    cursor: cursors.encode(next, horizonSeen: page.horizon), hasMore: page.hasMore, epoch: epoch)
        for (_, change) in page.changes {
            switch change {
            case .article(let article): response.articles.append(article)
            case .tombstone(let id): response.deletedArticleIds.append(id)
            case .expiry(let id): response.expiredArticleIds.append(id)
            case .state(let state): response.states.append(state.wire)
            }
        }
        return response
    }

    /// The most sections one pull may name: each is one more index range the store reads.
    package static let maxSections = 100

    /// The sections a pull names, distinct and sorted by their bytes (as every store compares
    /// them, ``ExactText``); `nil` for every section (none named).
    ///
    /// - Throws: ``SyncError`` `invalid_request` for more than ``maxSections``.
    func checkedSections(_ sections: [String]?) throws(SyncError) -> [String]? {
        guard let sections, !sections.isEmpty else { return nil }
        // Counted as sent, repeats included: the document's maxItems (an array of 101 names is refused).
        guard sections.count <= Self.maxSections else {
            throw SyncError(.invalidRequest, "a pull may name at most \(Self.maxSections) sections, got \(sections.count)")
        }
        let distinct = Set(sections.map(\.exact))
        return distinct.map(\.string).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// The page size asked for, or the default.
    ///
    /// - Throws: ``SyncError`` `limit_out_of_range`.
    func checkedLimit(_ limit: Int?) throws(SyncError) -> Int {
        let limit = limit ?? configuration.defaultPullLimit
        guard (1...configuration.maxPullLimit).contains(limit) else {
            throw SyncError(.limitOutOfRange, "limit must be from 1 to \(configuration.maxPullLimit), got \(limit)")
        }
        return limit
    }

    /// ``pull(user:cursor:limit:)`` as a long-poll: when nothing is after `cursor`, waits up to
    /// `wait` for a change and answers as soon as one can be pulled, else with the empty page.
    ///
    /// - Throws: as ``pull(user:cursor:limit:)``; ``SyncError`` `invalid_request` when `wait` is
    ///   over ``LiveConfiguration/maxWait``, `unavailable` when the stream caps are reached.
    package func pull(user: UserRecord, cursor: String?, limit: Int?, sections: [String]? = nil, wait: Duration) async throws -> PullResponse {
        guard wait > .zero else { return try await pull(user: user, cursor: cursor, limit: limit, sections: sections) }
        guard wait <= configuration.live.maxWait else {
            throw SyncError(.invalidRequest, "wait must be from 0 to \(configuration.live.maxWait.components.seconds) seconds")
        }
        // Subscribed before the first read, so a commit between the two still wakes it.
        let stream = try openLiveStream(user: user, cursor: cursor)
        let page = try await pull(user: user, cursor: cursor, limit: limit, sections: sections)
        guard page.isCaughtUp, !stream.isReset else { return page }
        // Each change pulls again; one the pull does not serve (of a section not followed, or
        // held back on PostgreSQL) leaves the page empty, and the wait goes on.
        var answer = page
        try await stream.run(life: wait) { event in
            guard case .changes = event else { return true }
            answer = try await pull(user: user, cursor: cursor, limit: limit, sections: sections)
            return answer.isCaughtUp
        }
        return answer
    }

    /// The cursor of a feed position, as a pull ending there hands out.
    package func cursor(of position: FeedPosition) -> String {
        cursors.encode(position)
    }

    /// Opens a live stream of `user`'s feed after `cursor` (from the beginning when `nil`); run
    /// it with ``LiveStream/run(life:send:)``. A cursor of another epoch gives a stream that
    /// tells its device to reset and ends.
    ///
    /// - Throws: ``SyncError`` `invalid_cursor`; `unavailable` when the server's or the user's
    ///   stream cap is reached, or the server is shutting down.
    package func openLiveStream(user: UserRecord, cursor: String?) throws(SyncError) -> LiveStream {
        let after: FeedPosition
        do {
            after = try cursor.map { (c) throws(SyncError) in try cursors.decode(c) } ?? .start
        } catch where error.code == .resetRequired {
            return LiveStream(resetWith: error.message, notifier: notifier, store: store, epoch: epoch, configuration: configuration.live)
        }
        let subscription = try notifier.subscribe(userId: user.id)
        return LiveStream(watching: user.id, after: after, subscription: subscription, notifier: notifier,
                          store: store, epoch: epoch, configuration: configuration.live)
    }

    /// Hears the changes other servers on this database commit and wakes this server's streams,
    /// until the task is cancelled (``SyncStore/listenForChanges(_:)``).
    package func listenForChanges() async throws {
        let notifier = self.notifier
        try await store.listenForChanges { scope in notifier.wake(scope) }
    }

    /// After a commit that changed `scope`'s feed: wakes this server's streams and queues word
    /// to the others (sent by ``listenForChanges()``, or ``flushAnnouncements()``).
    func committed(_ scope: ChangeScope) {
        notifier.wake(scope)
        store.announce(scope)
    }

    /// Sends the word to other servers that commits of this process queued: for a command that
    /// writes without running ``listenForChanges()``, before it ends.
    package func flushAnnouncements() async {
        await store.flushAnnouncements()
    }

    /// Applies a device's mutations in one transaction.
    ///
    /// - Throws: ``SyncError`` `invalid_request`, `too_many_mutations`, `forbidden` (device of another user),
    ///   `reset_required` when the request's `epoch` is not this database's.
    package func push(user: UserRecord, request: PushRequest) async throws -> PushResponse {
        try await pushWithDetails(user: user, request: request).response
    }

    /// ``push(user:request:)``, also telling the rules of the conflict log entries it wrote (for metrics).
    package func pushWithDetails(user: UserRecord, request: PushRequest) async throws -> (response: PushResponse, rules: [ConflictRule]) {
        try validate(request)
        // A negative zero is stored as zero: SQLite keeps no sign on a zero REAL, and both stores answer alike.
        var normalized = request
        for index in normalized.mutations.indices where normalized.mutations[index].value == .number(0) {
            normalized.mutations[index].value = .number(0)
        }
        let request = normalized
        if let deviceEpoch = request.epoch, !deviceEpoch.isExactly(epoch) {
            throw SyncError(.resetRequired, "the server's database was reset or restored since this device last synced; give back your changes and pull from the beginning")
        }
        let nowDate = now()
        let nowMillis = Timestamp.millis(nowDate)
        let skew = configuration.maxClockSkewMillis
        let defects = configuration.defects
        let recordsHistory = configuration.recordsHistory
        let committed = try await store.push(
            userId: user.id, deviceId: request.deviceId,
            articleIds: Set(request.mutations.map(\.articleId.exact)), now: Timestamp.format(nowDate)
        ) { context in
            var plan = try PushPlanner.plan(userId: user.id, deviceId: request.deviceId, mutations: request.mutations,
                                            context: context, nowMillis: nowMillis, maxClockSkewMillis: skew, defects: defects)
            if !recordsHistory { plan.history = [] }
            return plan
        }
        if !committed.seqByArticle.isEmpty { self.committed(.user(user.id)) }
        let results = committed.plan.results.map { planned in
            MutationResult(
                id: planned.id, outcome: planned.outcome, reason: planned.reason,
                conflictId: planned.conflictIndex.map { committed.conflictIds[$0] },
                seq: planned.changedArticleId.flatMap { committed.seqByArticle[$0.exact] })
        }
        // In id order by exact bytes, as the store orders ids.
        let states = committed.plan.finalStates.sorted { $0.key < $1.key }.map(\.value.wire)
        return (PushResponse(lastMutationId: committed.plan.lastMutationId, results: results, states: states, epoch: epoch),
                committed.plan.conflicts.map(\.conflict.rule))
    }

    private func validate(_ request: PushRequest) throws(SyncError) {
        guard Mutation.isValidIdentifier(request.deviceId) else {
            throw SyncError(.invalidRequest, "deviceId must be 1 to 200 printable characters")
        }
        // The Google Reader API's devices (one per app password) are named by the server alone:
        // a device of the sync protocol that took such a name would block that password's marks.
        guard !request.deviceId.hasPrefix(AppPasswordRecord.devicePrefix) else {
            throw SyncError(.invalidRequest, "device ids starting with \(AppPasswordRecord.devicePrefix) are reserved for the Google Reader API's app passwords")
        }
        guard request.mutations.count <= configuration.maxMutationsPerPush else {
            throw SyncError(.tooManyMutations,
                            "a push carries at most \(configuration.maxMutationsPerPush) mutations, got \(request.mutations.count)")
        }
        var previous: Int64 = 0
        for (index, mutation) in request.mutations.enumerated() {
            guard mutation.id > previous else {
                throw SyncError(.invalidRequest, "mutations[\(index)].id must be at least 1 and greater than the one before it")
            }
            previous = mutation.id
            guard Mutation.isValidIdentifier(mutation.articleId) else {
                throw SyncError(.invalidRequest, "mutations[\(index)].articleId must be 1 to 200 printable characters")
            }
            guard mutation.baseVersion >= 0, mutation.hlc.wall >= 0, mutation.hlc.counter >= 0 else {
                throw SyncError(.invalidRequest, "mutations[\(index)]: baseVersion and hlc must not be negative")
            }
        }
    }

    /// Whether `name` is 1 to 64 ASCII letters, digits and characters of `punctuation`: user
    /// names (`._-@`) and app password labels (`._-`), safe in a table, a log and a device id.
    static func isValidName(_ name: String, punctuation: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || punctuation.unicodeScalars.contains($0))
        }
    }

    // MARK: Field history

    /// A page of a user's field history (docs/SUPPORT.md), oldest first, and on the first page
    /// of one article's one field, why that field is what it is.
    ///
    /// - Throws: ``SyncError`` `limit_out_of_range` for a limit outside 1…1000.
    package func history(_ query: HistoryQuery, userName: String) async throws -> HistoryResponse {
        guard (1...1000).contains(query.limit) else {
            throw SyncError(.limitOutOfRange, "limit must be from 1 to 1000, got \(query.limit)")
        }
        var ask = query
        ask.limit += 1
        var entries = try await store.history(ask)
        let more = entries.count > query.limit
        if more { entries.removeLast() }
        var why: String?
        if let articleId = query.articleId, let field = query.field, query.after == nil {
            // A first page that holds the whole field's history explains it without reading it again.
            if more {
                why = try await self.why(userId: query.userId, userName: userName, articleId: articleId, field: field)
            } else {
                // Read after the entries: a value changed in between has no entry here, and is
                // explained from a fresh read of the whole field (as fieldHistories reads it).
                let current = try await store.state(userId: query.userId, articleId: articleId)?[field]
                let inEntries = current.map { value in entries.contains { $0.outcome == .applied && $0.write == value.write } } ?? true
                why = inEntries
                    ? FieldExplanation.why(user: userName, articleId: articleId, field: field, current: current, history: entries)
                    : try await self.why(userId: query.userId, userName: userName, articleId: articleId, field: field)
            }
        }
        return HistoryResponse(entries: entries, nextAfter: more ? entries.last?.id : nil, why: why)
    }

    /// Why `field` of `articleId` is what it is for the user (``FieldExplanation/why(user:articleId:field:current:history:)``),
    /// from the current state and every history entry of the field the server keeps.
    package func why(userId: Int64, userName: String, articleId: String, field: StateField) async throws -> String {
        try await fieldHistories(userId: userId, userName: userName, articleId: articleId, fields: [field])[0].why
    }

    /// For each of `fields` of one article, in that order: every history entry the server keeps
    /// (oldest first), the field's current value and why it is that. What the console's article
    /// page draws.
    ///
    /// The state is read once, before the entries: a push commits a state and its entries
    /// together, so every value read is in the entries read after it (a push in between adds
    /// later entries, which `why` passes over), where reading it after could meet a value whose
    /// entry was not read ("the server keeps no history of that change").
    package func fieldHistories(userId: Int64, userName: String, articleId: String,
                                fields: [StateField] = StateField.allCases) async throws -> [FieldHistory] {
        let state = try await store.state(userId: userId, articleId: articleId)
        var histories: [(field: StateField, entries: [HistoryEntry])] = []
        for field in fields {
            var entries: [HistoryEntry] = []
            var after: Int64?
            // One field's entries: a handful a day; read in pages all the same.
            repeat {
                let page = try await store.history(HistoryQuery(userId: userId, articleId: articleId, field: field, after: after, limit: 1000))
                entries += page
                after = page.count == 1000 ? page.last?.id : nil
            } while after != nil
            histories.append((field, entries))
        }
        return histories.map { field, entries in
            FieldHistory(entries: entries, current: state?[field],
                         why: FieldExplanation.why(user: userName, articleId: articleId, field: field, current: state?[field], history: entries))
        }
    }

    // MARK: Conflicts

    package func conflicts(_ query: ConflictQuery) async throws -> [ConflictDTO] {
        guard (1...1000).contains(query.limit) else {
            throw SyncError(.limitOutOfRange, "limit must be from 1 to 1000, got \(query.limit)")
        }
        return try await store.conflicts(query)
    }

    /// One conflict log entry, any user's (admin and CLI only), or `nil` when no entry has this id.
    package func conflict(id: Int64) async throws -> ConflictDTO? {
        try await store.conflict(id: id)
    }

    // MARK: Admin

    /// The user with this name.
    ///
    /// - Throws: ``SyncError`` `not_found` when no user has this name.
    package func user(named name: String) async throws -> UserRecord {
        guard let user = try await store.user(named: name) else {
            throw SyncError(.notFound, "no user named \(name)")
        }
        return user
    }

    /// The users `query` selects (every user by default), by name, each with its device count
    /// and token dates.
    package func users(_ query: UserQuery = UserQuery()) async throws -> [UserSummary] {
        try await store.users(query)
    }

    /// What the store holds that an operator watches (shown in `/metrics`).
    package func gauges() async throws -> [StoreGauge] {
        try await store.gauges()
    }

    /// Creates a user and returns its token, which is shown only this once.
    ///
    /// - Throws: ``SyncError`` `invalid_request` for a bad name, `already_exists`.
    package func createUser(name: String) async throws -> CreateUserResponse {
        guard Self.isValidName(name, punctuation: "._-@") else {
            throw SyncError(.invalidRequest, "a user name is 1 to 64 characters of letters, digits and . _ - @")
        }
        let token = Tokens.generate()
        _ = try await store.createUser(name: name, tokenHash: Tokens.hash(token), now: nowText)
        return CreateUserResponse(name: name, token: token)
    }

    /// Revokes a user's token: from the next request on, it gets `401`. State and devices stay.
    ///
    /// - Throws: ``SyncError`` `not_found` when no user has this name.
    package func revokeToken(name: String) async throws {
        guard try await store.revokeToken(userName: name, now: nowText) else {
            throw SyncError(.notFound, "no user named \(name)")
        }
    }

    /// Gives a user a new token, shown only this once; the old one (revoked or not) stops working.
    ///
    /// - Throws: ``SyncError`` `not_found` when no user has this name.
    package func issueToken(name: String) async throws -> CreateUserResponse {
        let token = Tokens.generate()
        guard try await store.replaceToken(userName: name, tokenHash: Tokens.hash(token)) else {
            throw SyncError(.notFound, "no user named \(name)")
        }
        return CreateUserResponse(name: name, token: token)
    }

    /// Ingests JSON Lines: good lines are stored in batched transactions, bad ones reported and skipped.
    package func ingest(jsonLines: some BidirectionalCollection<UInt8>, progress: (Int) -> Void = { _ in }) async throws -> IngestReport {
        var report = IngestReport()
        var batch: [IngestItem] = []
        var lines = 0
        // One contiguous copy: iterating a Data or ByteBuffer view byte by byte is several times slower.
        let bytes = Array(jsonLines)
        let decoder = JSONDecoder()
        for (number, line) in JSONLinesReader(bytes).enumerated() {
            lines = number + 1
            switch ArticleLine.parse(line, decoder: decoder) {
            case .success(let item):
                batch.append(item)
            case .failure(let problem):
                report.reject(line: number + 1, problem.message)
            }
            if batch.count >= configuration.ingestBatchSize {
                report.add(try await ingestBatch(batch))
                batch.removeAll(keepingCapacity: true)
                progress(lines)
            }
        }
        if !batch.isEmpty { report.add(try await ingestBatch(batch)) }
        progress(lines)
        return report
    }

    /// Ingests already-parsed articles (plain-text imports) in batched transactions.
    package func ingest(_ items: [IngestItem]) async throws -> IngestReport {
        var report = IngestReport()
        var start = items.startIndex
        while start < items.endIndex {
            let end = min(start + configuration.ingestBatchSize, items.endIndex)
            report.add(try await ingestBatch(Array(items[start..<end])))
            start = end
        }
        return report
    }

    /// One ingest transaction, then the wake-up of every stream if it changed an article.
    private func ingestBatch(_ items: [IngestItem]) async throws -> IngestReport {
        let clock = now
        let report = try await store.ingest(items) { Timestamp.format(clock()) }
        if report.inserted + report.updated + report.deleted > 0 { committed(.everyone) }
        return report
    }

    /// Tombstones an article.
    ///
    /// - Returns: whether it was live (false: already deleted).
    /// - Throws: ``SyncError`` `not_found` for an id never ingested.
    package func deleteArticle(id: String) async throws -> Bool {
        let report = try await ingestBatch([.delete(id: id)])
        if report.deleted == 1 { return true }
        if try await store.articleExists(id: id) { return false }
        throw SyncError(.notFound, "no article with id \(id)")
    }
}
