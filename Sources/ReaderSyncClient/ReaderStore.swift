import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncSQLite
import ReaderSyncSchema

/// A device's offline store: articles, the reader's state, and the outbox of changes not yet synced.
///
/// Every local action is durable at once (the state and its outbox entry in one transaction) and
/// needs no network. Sync with a ``SyncEngine``.
///
/// ```swift
/// let store = try ReaderStore(path: documents.appendingPathComponent("reader.sqlite").path)
/// try store.markRead("art-000042")
/// let unread = try store.articles(.unread, limit: 20)
/// let engine = SyncEngine(store: store, transport: HTTPSyncTransport(baseURL: url, token: token))
/// let report = try await engine.sync()
/// ```
public final class ReaderStore: Sendable {
    /// How a store behaves.
    public struct Options: Sendable, Hashable {
        /// What the device keeps (default `StorageWindow.unbounded`: every article). With a
        /// window, the newest articles within it, every bookmarked article and every article with
        /// a pending change stay; the others are evicted after each sync (their states stay, and
        /// sync on), and a first sync starts with the newest articles.
        public var window: StorageWindow
        /// The most matches one search ranks (``ReaderStore/search(_:limit:offset:)-(SearchQuery,_,_)``): the most
        /// recently stored ones; 1…1,000,000, default 2,000. A word in half of a large store
        /// would otherwise cost a score for each of its articles (about 3 µs each on our test
        /// machine: 60 ms over 20,000); news readers look for recent stories.
        public var searchRankingLimit: Int

        /// Options; the defaults keep every article.
        ///
        /// - Parameters:
        ///   - window: what the device keeps; default `StorageWindow.unbounded`.
        ///   - searchRankingLimit: the most matches a search ranks; default 2,000.
        public init(window: StorageWindow = .unbounded, searchRankingLimit: Int = 2_000) {
            self.window = window
            self.searchRankingLimit = searchRankingLimit
        }
    }

    package let dbPool: DatabasePool
    /// This device's id, generated on first open unless given.
    public let deviceId: String
    /// What the store was opened with.
    public let options: Options
    let now: @Sendable () -> Date
    /// Deliberate bugs for the simulator's oracle tests.
    package enum Defect: Sendable {
        /// Pulled values overwrite pending changes.
        case skipsPendingOverlay
        /// Observations track the article table only, so they miss changes of the reader's state.
        case observationMissesStates
    }

    /// The deliberate bug this store has; `nil` outside the simulator's oracle tests.
    package let defect: Defect?
    package var skipsPendingOverlay: Bool { defect == .skipsPendingOverlay }

    /// Opens (creating and migrating if needed) the store at `path`.
    ///
    /// - Parameters:
    ///   - path: the store's file, created if missing, e.g. in Application Support (docs/CLIENT.md,
    ///     "Setting up in an app"); SQLite adds `-wal` and `-shm` files beside it.
    ///   - deviceId: the id to register on first open; ignored when the store already has one.
    ///   - options: what the store keeps (``Options``); the default keeps every article.
    ///   - now: the device's clock; injected so tests and the simulator control time.
    /// - Throws: ``ReaderSyncError`` `store_unavailable` when the file cannot be opened or is not
    ///   a SQLite database; `store_full` or `store_failed` when opening or migrating it failed for a
    ///   passing reason (a full disk, another process's lock: the file is intact, try again);
    ///   `store_corrupt` when it is not a ReaderSync client store;
    ///   `invalid_argument` for a window outside 1…1,000,000 articles or 1…36,500 days, or a
    ///   search ranking limit outside 1…1,000,000.
    public convenience init(path: String, deviceId: String? = nil, options: Options = Options(),
                            now: @escaping @Sendable () -> Date = { Date() }) throws {
        try self.init(path: path, deviceId: deviceId, options: options, now: now, defect: nil)
    }

    package init(path: String, deviceId: String?, options: Options = Options(), now: @escaping @Sendable () -> Date,
                 defect: Defect?) throws {
        guard (1...StorageWindow.maxNewest).contains(options.window.newest ?? 1), (1...StorageWindow.maxDays).contains(options.window.days ?? 1) else {
            throw ReaderSyncError(.invalidArgument,
                                  "a storage window keeps 1 to \(StorageWindow.maxNewest) articles and 1 to \(StorageWindow.maxDays) days")
        }
        if let deviceId, !Mutation.isValidIdentifier(deviceId) || deviceId.hasPrefix(Mutation.reservedDevicePrefix) {
            throw ReaderSyncError(.invalidArgument, "a device id is 1 to 200 characters (Unicode scalars), none of them a control "
                                  + "character, and does not start with \(Mutation.reservedDevicePrefix)")
        }
        guard (1...1_000_000).contains(options.searchRankingLimit) else {
            throw ReaderSyncError(.invalidArgument, "searchRankingLimit must be from 1 to 1000000, got \(options.searchRankingLimit)")
        }
        self.options = options
        self.now = now
        self.defect = defect
        do {
            var configuration = Configuration()
            configuration.foreignKeysEnabled = true
            configuration.busyMode = .timeout(10)
            dbPool = try DatabasePool(path: path, configuration: configuration)
            try ReaderSyncSchema.clientMigrations.migrator.migrate(dbPool)
            self.deviceId = try dbPool.write { db in
                if let existing = try String.fetchOne(db, sql: "SELECT deviceId FROM syncMeta WHERE id = 1") {
                    return existing
                }
                let id = deviceId ?? UUID().uuidString.lowercased()
                try db.execute(sql: "INSERT INTO syncMeta (id, deviceId) VALUES (1, ?)", arguments: [id])
                return id
            }
        } catch let error as DatabaseError where [.SQLITE_CANTOPEN, .SQLITE_NOTADB, .SQLITE_CORRUPT, .SQLITE_PERM, .SQLITE_AUTH]
                    .contains(error.resultCode) {
            throw ReaderSyncError(.storeUnavailable, "cannot open the reader store at \(path): \(error)", cause: error)
        } catch {
            // A full disk or another process's lock while migrating: the file is fine, try again.
            throw ReaderSyncError.store(error, doing: "open the reader store at \(path)")
        }
    }

    /// Runs `body` in one read transaction (a snapshot); any error as ``ReaderSyncError``
    /// (``ReaderSyncError/store(_:doing:)``), `doing` saying what failed ("read articles").
    func read<T>(_ doing: String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try dbPool.read(body)
        } catch {
            throw ReaderSyncError.store(error, doing: doing)
        }
    }

    /// Runs `body` in one write transaction, all or nothing; any error as ``ReaderSyncError``.
    func write<T>(_ doing: String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try dbPool.write(body)
        } catch {
            throw ReaderSyncError.store(error, doing: doing)
        }
    }

    // MARK: Reading

    /// Qualified: the search joins a table with title, summary and body columns too.
    static let articleColumns = """
        article.id, article.section, article.title, article.summary, article.body, article.author, article.url,
        article.publishedAt, article.updatedAt, article.version,
        coalesce(articleState.read, 0), coalesce(articleState.bookmarked, 0), coalesce(articleState.progress, 0)
        """

    /// Articles on the device, newest first.
    ///
    /// - Parameters:
    ///   - filter: all, unread, bookmarked, or one section.
    ///   - limit: page size, at least 1; default 50.
    ///   - offset: how many to skip, for the next pages; default 0.
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for a page out of range; `store_corrupt`
    ///   or `store_failed` when the store cannot be read.
    public func articles(_ filter: ArticleFilter = .all, limit: Int = 50, offset: Int = 0) throws -> [ReaderArticle] {
        let fetch = try Self.articlesFetch(filter, limit: limit, offset: offset)
        return try read("read articles", fetch)
    }

    /// The read of ``articles(_:limit:offset:)``, for a read or an observation.
    ///
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for a page out of range.
    static func articlesFetch(_ filter: ArticleFilter, limit: Int, offset: Int) throws -> @Sendable (Database) throws -> [ReaderArticle] {
        guard limit > 0, offset >= 0 else {
            throw ReaderSyncError(.invalidArgument, "limit must be positive and offset not negative")
        }
        var condition = ""
        var arguments: StatementArguments = []
        switch filter {
        case .all: break
        case .unread: condition = "WHERE coalesce(articleState.read, 0) = 0"
        case .bookmarked: condition = "WHERE articleState.bookmarked = 1"
        case .section(let section):
            condition = "WHERE article.section = ?"
            arguments += [section]
        }
        arguments += [limit, offset]
        let sql = """
            SELECT \(Self.articleColumns) FROM article LEFT JOIN articleState ON articleState.articleId = article.id
            \(condition) ORDER BY article.publishedAt DESC, article.id DESC LIMIT ? OFFSET ?
            """
        let bound = arguments
        return { db in try Row.fetchAll(db, sql: sql, arguments: bound).map(Self.decodeArticle) }
    }

    /// One article, or `nil` when it is not on the device.
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func article(id: String) throws -> ReaderArticle? {
        try read("read an article", Self.articleFetch(id: id))
    }

    /// The read of ``article(id:)``, for a read or an observation.
    static func articleFetch(id: String) -> @Sendable (Database) throws -> ReaderArticle? {
        { db in
            try Row.fetchOne(db, sql: """
                SELECT \(Self.articleColumns) FROM article LEFT JOIN articleState ON articleState.articleId = article.id
                WHERE article.id = ?
                """, arguments: [id]).map(Self.decodeArticle)
        }
    }

    /// The number of articles on the device.
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func articleCount() throws -> Int {
        try read("count articles") { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM article") ?? 0 }
    }

    /// The reader's state of an article (defaults when never touched), also for an article not on the device.
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func state(articleId: String) throws -> ReaderState {
        try read("read a state") { db in
            try Row.fetchOne(db, sql: "SELECT read, bookmarked, progress, version FROM articleState WHERE articleId = ?",
                             arguments: [articleId])
                .map { ReaderState(articleId: articleId, isRead: try $0.decode(atIndex: 0), isBookmarked: try $0.decode(atIndex: 1),
                                   progress: try $0.decode(atIndex: 2), version: try $0.decode(atIndex: 3)) }
                ?? ReaderState(articleId: articleId, isRead: false, isBookmarked: false, progress: 0, version: 0)
        }
    }

    /// Every state row the device holds (for inspection and the simulator's checks).
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func allStates() throws -> [ReaderState] {
        try read("read states") { db in
            try Row.fetchAll(db, sql: "SELECT articleId, read, bookmarked, progress, version FROM articleState ORDER BY articleId")
                .map { ReaderState(articleId: try $0.decode(atIndex: 0), isRead: try $0.decode(atIndex: 1),
                                   isBookmarked: try $0.decode(atIndex: 2), progress: try $0.decode(atIndex: 3),
                                   version: try $0.decode(atIndex: 4)) }
        }
    }

    /// How many local changes wait to be pushed.
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func pendingChangeCount() throws -> Int {
        try read("count pending changes", Self.pendingChangeCountFetch)
    }

    /// The read of ``pendingChangeCount()``, for a read or an observation.
    @Sendable static func pendingChangeCountFetch(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0
    }

    /// An article of ``articleColumns``; a value of the wrong type (a damaged store) is an error
    /// (mapped to `store_corrupt`), never a trap.
    static func decodeArticle(_ row: Row) throws -> ReaderArticle {
        ReaderArticle(id: try row.decode(atIndex: 0), section: try row.decodeExactText(1), title: try row.decodeExactText(2),
                      summary: try row.decodeExactText(3), body: try row.decodeExactText(4), author: try row.decodeExactText(5),
                      url: try row.decodeExactText(6), publishedAt: try row.decode(atIndex: 7), updatedAt: try row.decode(atIndex: 8),
                      version: try row.decode(atIndex: 9), isRead: try row.decode(atIndex: 10), isBookmarked: try row.decode(atIndex: 11),
                      progress: try row.decode(atIndex: 12))
    }

    // MARK: Local actions

    /// Marks an article read or unread.
    ///
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for an id the server would refuse
    ///   (empty, over 200 Unicode scalars, or holding a control character); `store_corrupt`, `store_full` or `store_failed` when the store cannot be
    ///   written (the change is then not made, nor queued).
    public func markRead(_ articleId: String, _ read: Bool = true) throws {
        try record(articleId, .read, .bool(read))
    }

    /// Bookmarks an article or removes its bookmark.
    ///
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for an id the server would refuse
    ///   (empty, over 200 Unicode scalars, or holding a control character); `store_corrupt`, `store_full` or `store_failed` when the store cannot be
    ///   written (the change is then not made, nor queued).
    public func setBookmarked(_ articleId: String, _ bookmarked: Bool) throws {
        try record(articleId, .bookmarked, .bool(bookmarked))
    }

    /// Records the reading position, 0…1.
    ///
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for an id the server would refuse
    ///   (empty, over 200 Unicode scalars, or holding a control character), or a progress outside 0…1 or not finite; `store_corrupt`, `store_full` or
    ///   `store_failed` when the store cannot be written (the change is then not made, nor queued).
    public func setProgress(_ articleId: String, _ progress: Double) throws {
        try record(articleId, .progress, .number(progress))
    }

    /// Changes the shown state and queues the change for the server, in one transaction.
    ///
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for an empty or over-long id or a value out of range.
    /// - Returns: the mutation as queued for the server.
    @discardableResult
    package func record(_ articleId: String, _ field: StateField, _ value: FieldValue) throws -> Mutation {
        guard Mutation.isValidIdentifier(articleId) else {
            throw ReaderSyncError(.invalidArgument, "an article id is 1 to 200 characters (Unicode scalars), none of them a control character")
        }
        if let problem = field.validationFailure(for: value) {
            throw ReaderSyncError(.invalidArgument, problem)
        }
        let physical = Timestamp.millis(now())
        let createdAt = Timestamp.format(now())
        return try write("record a change") { db in
            var meta = try SyncMeta.fetch(db)
            let mutation = try Self.queue(db, &meta, articleId, field, value, physicalMillis: physical, createdAt: createdAt)
            try meta.save(db)
            return mutation
        }
    }

    /// Queues one change in the caller's transaction: the next mutation id and HLC tick of
    /// `meta` (saved by the caller), the outbox row, the shown state.
    private static func queue(_ db: Database, _ meta: inout SyncMeta, _ articleId: String, _ field: StateField, _ value: FieldValue,
                              physicalMillis: Int64, createdAt: String) throws -> Mutation {
        var clock = HybridClock(last: meta.hlc)
        let hlc = clock.tick(physicalMillis: physicalMillis)
        meta.hlc = hlc
        meta.lastMutationId += 1
        let baseVersion = try Int64.fetchOne(db.cachedStatement(sql: "SELECT version FROM articleState WHERE articleId = ?"),
                                             arguments: [articleId]) ?? 0
        try db.cachedStatement(sql: """
            INSERT INTO outbox (id, articleId, field, value, hlcWall, hlcCounter, baseVersion, createdAt)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [meta.lastMutationId, articleId, field.rawValue, value.description, hlc.wall, hlc.counter,
                                     baseVersion, createdAt])
        try refreshShown(db, articleId: articleId)
        return Mutation(id: meta.lastMutationId, articleId: articleId, field: field, value: value, hlc: hlc, baseVersion: baseVersion)
    }

    /// Where the device stands now in the order articles arrived in: take it when a list is shown,
    /// and pass it to ``markAllRead(section:upTo:)`` when the reader marks that list read.
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func arrivalPoint() throws -> Int64 {
        try read("read the arrival point") { db in try SyncMeta.fetch(db).lastArrival }
    }

    /// Marks read every unread article on the device that had arrived by `point` (from
    /// ``arrivalPoint()``), of `section` or of every section: what the reader had on screen,
    /// never an article (or a new version of one) pulled since, nor one pulled while this runs.
    /// One change per article, queued in one transaction like any change (durable offline) and
    /// pushed in batches.
    ///
    /// - Returns: how many articles were marked.
    /// - Throws: ``ReaderSyncError`` `store_corrupt`, `store_full` or `store_failed` when the store cannot be written.
    @discardableResult
    public func markAllRead(section: String? = nil, upTo point: Int64) throws -> Int {
        let physical = Timestamp.millis(now())
        let createdAt = Timestamp.format(now())
        return try write("mark articles read") { db in
            var meta = try SyncMeta.fetch(db)
            var sql = """
                SELECT article.id FROM article LEFT JOIN articleState ON articleState.articleId = article.id
                WHERE article.arrival <= ? AND coalesce(articleState.read, 0) = 0
                """
            var arguments: StatementArguments = [point]
            if let section {
                sql += " AND article.section = ?"
                arguments += [section]
            }
            let ids = try String.fetchAll(db, sql: sql + " ORDER BY article.id", arguments: arguments)
            for id in ids {
                _ = try Self.queue(db, &meta, id, .read, .bool(true), physicalMillis: physical, createdAt: createdAt)
            }
            try meta.save(db)
            return ids.count
        }
    }

    /// Fields whose shown value is not the device's latest pending change for it: always empty
    /// unless pending changes were overwritten (what the simulator checks after every step).
    package func pendingOverlayViolations() throws -> [(articleId: String, field: StateField)] {
        try read("read pending changes") { db in
            try Row.fetchAll(db, sql: """
                SELECT o.articleId, o.field FROM outbox o JOIN articleState s ON s.articleId = o.articleId
                WHERE o.id = (SELECT MAX(id) FROM outbox WHERE articleId = o.articleId AND field = o.field)
                  AND ((o.field = 'read' AND s.read != (o.value = 'true'))
                    OR (o.field = 'bookmarked' AND s.bookmarked != (o.value = 'true'))
                    OR (o.field = 'progress' AND s.progress != CAST(o.value AS REAL)))
                ORDER BY o.articleId, o.field
                """).map { row in
                    guard let field = StateField(rawValue: row[1]) else {
                        throw ReaderSyncError(.storeCorrupt, "an outbox row of \(row[0] as String) has an unknown field")
                    }
                    return (row[0], field)
                }
        }
    }

    /// Every article on the device with its version (for the simulator's checks), keyed by exact
    /// bytes as the store tells ids apart (String keys would merge, or trap on, two ids that
    /// differ only in Unicode normalization).
    package func articleVersions() throws -> [ExactText: Int64] {
        try read("read article versions") { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, version FROM article").map {
                (($0[0] as String).exact, $0[1] as Int64)
            })
        }
    }

    /// Recomputes what the app shows for an article: each field's latest pending local value,
    /// else the server's value. This is the pending overlay: a pulled value never hides a change
    /// the device has not had acknowledged.
    static func refreshShown(_ db: Database, articleId: String) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO articleState (articleId) VALUES (?)", arguments: [articleId])
        try db.execute(sql: """
            UPDATE articleState SET
                read = coalesce((SELECT value = 'true' FROM outbox WHERE articleId = ?1 AND field = 'read' ORDER BY id DESC LIMIT 1), serverRead),
                bookmarked = coalesce((SELECT value = 'true' FROM outbox WHERE articleId = ?1 AND field = 'bookmarked' ORDER BY id DESC LIMIT 1), serverBookmarked),
                progress = coalesce((SELECT CAST(value AS REAL) FROM outbox WHERE articleId = ?1 AND field = 'progress' ORDER BY id DESC LIMIT 1), serverProgress)
            WHERE articleId = ?1
            """, arguments: [articleId])
    }
}

/// The one row of `syncMeta`.
struct SyncMeta {
    var deviceId: String
    var cursor: String?
    var epoch: String?
    var hlc: HLC
    var lastMutationId: Int64
    var lastAckedMutationId: Int64
    /// The arrival counter: one value per pulled page or fetched article (`m0002_client_arrival`).
    var lastArrival: Int64

    static func fetch(_ db: Database) throws -> SyncMeta {
        guard let row = try Row.fetchOne(db, sql: """
            SELECT deviceId, cursor, epoch, hlcWall, hlcCounter, lastMutationId, lastAckedMutationId, lastArrival FROM syncMeta WHERE id = 1
            """) else {
            throw ReaderSyncError(.storeCorrupt, "the store has no sync metadata")
        }
        return SyncMeta(deviceId: try row.decode(atIndex: 0), cursor: try row.decode(atIndex: 1), epoch: try row.decode(atIndex: 2),
                        hlc: HLC(wall: try row.decode(atIndex: 3), counter: try row.decode(atIndex: 4)),
                        lastMutationId: try row.decode(atIndex: 5), lastAckedMutationId: try row.decode(atIndex: 6),
                        lastArrival: try row.decode(atIndex: 7))
    }

    func save(_ db: Database) throws {
        try db.execute(sql: """
            UPDATE syncMeta SET cursor = ?, epoch = ?, hlcWall = ?, hlcCounter = ?, lastMutationId = ?, lastAckedMutationId = ?,
                lastArrival = ? WHERE id = 1
            """, arguments: [cursor, epoch, hlc.wall, hlc.counter, lastMutationId, lastAckedMutationId, lastArrival])
    }
}
