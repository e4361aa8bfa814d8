import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncSQLite

extension ReaderStore {
    /// The oldest pending changes, at most `limit`, as the server expects them; and how many
    /// rows that cannot be read were set aside on the way.
    ///
    /// A row that cannot be read (``decodeOutboxRow(_:)``) moves, as it is, to `outboxSetAside`
    /// (``setAsideChanges()``) in the same transaction, and the article shows its other pending
    /// or server value again. It can be neither sent nor skipped in place: the acknowledgement of
    /// the ids around it would delete it unsent. Left in the outbox it stopped every sync.
    package func outboxBatch(limit: Int) throws -> (request: PushRequest, setAside: Int) {
        let setAsideAt = Timestamp.millis(now())
        return try write("read the outbox") { db in
            var mutations: [Mutation] = []
            var setAside = 0
            var after = Int64.min
            while mutations.count < limit {
                let rows = try Row.fetchAll(db, sql: """
                    SELECT id, articleId, field, value, hlcWall, hlcCounter, baseVersion, restored FROM outbox
                    WHERE id > ? ORDER BY id LIMIT ?
                    """, arguments: [after, limit - mutations.count])
                guard let last = rows.last else { break }
                after = last[0]
                for row in rows {
                    do {
                        mutations.append(try Self.decodeOutboxRow(row))
                    } catch let error as ReaderSyncError {
                        try Self.setAside(db, row: row, reason: error.message, atMillis: setAsideAt)
                        setAside += 1
                    }
                }
            }
            return (PushRequest(deviceId: deviceId, mutations: mutations, epoch: try SyncMeta.fetch(db).epoch), setAside)
        }
    }

    /// Moves outbox row `row` to `outboxSetAside` as it is, and shows its article's value without it.
    private static func setAside(_ db: Database, row: Row, reason: String, atMillis: Int64) throws {
        let id: Int64 = row[0]
        try db.execute(sql: """
            INSERT INTO outboxSetAside (id, articleId, field, value, hlcWall, hlcCounter, baseVersion, restored, createdAt, reason, setAsideAtMillis)
            SELECT id, articleId, field, value, hlcWall, hlcCounter, baseVersion, restored, createdAt, ?, ? FROM outbox WHERE id = ?
            """, arguments: [reason, atMillis, id])
        try db.execute(sql: "DELETE FROM outbox WHERE id = ?", arguments: [id])
        // An id that is not text names no article the device shows.
        if let articleId = try? row.decode(Data.self, atIndex: 1), let text = String(validating: articleId, as: UTF8.self) {
            try refreshShown(db, articleId: text)
        }
    }

    /// Pending changes a sync could not read and set aside instead of sending (``SyncReport/setAside``),
    /// oldest first: for support and diagnostics. They are kept, never sent; each says why.
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func setAsideChanges() throws -> [SetAsideChange] {
        try read("read the set-aside changes") { db in
            try Row.fetchAll(db, sql: """
                SELECT id, articleId, field, value, reason, setAsideAtMillis FROM outboxSetAside ORDER BY id
                """).map { row in
                func text(_ index: Int) -> String? {
                    (try? row.decode(Data.self, atIndex: index)).flatMap { String(validating: $0, as: UTF8.self) }
                }
                return SetAsideChange(mutationId: try row.decode(atIndex: 0), articleId: text(1), field: text(2), value: text(3),
                                      reason: try row.decode(atIndex: 4), setAsideAt: Timestamp.date(millis: try row.decode(atIndex: 5)))
            }
        }
    }

    /// One outbox row as a mutation; every column is checked, none defaulted or skipped.
    static func decodeOutboxRow(_ row: Row) throws -> Mutation {
        let rowId = (try? row.decode(Int64.self, atIndex: 0)).map(String.init) ?? "?"
        func unreadable(_ what: String) -> ReaderSyncError {
            ReaderSyncError(.storeCorrupt, "outbox row \(rowId) cannot be read (\(what))")
        }
        // GRDB's throwing decode: a NULL or a value of another type is an error, never a default or a trap.
        func column<Value: DatabaseValueConvertible>(_ index: Int, _ name: String, as type: Value.Type = Value.self) throws -> Value {
            do { return try row.decode(Value.self, atIndex: index) } catch { throw unreadable("\(name) is not a \(Value.self)") }
        }
        let id: Int64 = try column(0, "id")
        guard id >= 1 else { throw unreadable("id is below 1") }
        // Validated, not repaired: String(decoding:) would swap bad bytes for U+FFFD and send the
        // change to another id. Checked as the server checks it, which refuses a whole push otherwise.
        guard let articleId = String(validating: try column(1, "articleId", as: Data.self), as: UTF8.self),
              Mutation.isValidIdentifier(articleId) else {
            throw unreadable("articleId is not UTF-8, or not 1 to 200 characters without control characters")
        }
        let fieldText: String = try column(2, "field")
        guard let field = StateField(rawValue: fieldText) else { throw unreadable("unknown field") }
        let valueText: String = try column(3, "value")
        guard let value = FieldValue(storedText: valueText), field.validationFailure(for: value) == nil else {
            throw unreadable("\(field) cannot be \(valueText.prefix(40).debugDescription)")
        }
        let hlc = HLC(wall: try column(4, "hlcWall"), counter: try column(5, "hlcCounter"))
        let baseVersion: Int64 = try column(6, "baseVersion")
        guard hlc.wall >= 0, hlc.counter >= 0, baseVersion >= 0 else { throw unreadable("a negative hlc or baseVersion") }
        return Mutation(id: id, articleId: articleId, field: field, value: value, hlc: hlc, baseVersion: baseVersion,
                        restored: try column(7, "restored"))
    }

    /// Removes what the server acknowledged and takes the states it returned, in one transaction.
    package func acknowledge(_ response: PushResponse, pushed: PushRequest) throws {
        try write("store the push acknowledgement") { db in
            var meta = try SyncMeta.fetch(db)
            meta.epoch = response.epoch
            // Only what was sent leaves the outbox: never a row the server did not see, whatever
            // `lastMutationId` says.
            let sentUpTo = min(response.lastMutationId, pushed.mutations.map(\.id).max() ?? 0)
            try db.execute(sql: "DELETE FROM outbox WHERE id <= ?", arguments: [sentUpTo])
            meta.lastAckedMutationId = max(meta.lastAckedMutationId, response.lastMutationId)
            var clock = HybridClock(last: meta.hlc)
            for state in response.states {
                try Self.storeServerState(db, state)
                clock.observe(state.hlc)
            }
            meta.hlc = clock.last
            try meta.save(db)
            // Articles whose changes were rejected or superseded show the server's value again
            // (those that came back in `states` were refreshed as they were stored).
            // Ids compared by exact bytes, as SQLite compares them (see ExactText).
            let refreshed = Set(response.states.map(\.articleId.exact))
            for articleId in Set(pushed.mutations.map(\.articleId.exact)).subtracting(refreshed).sorted() {
                try Self.refreshShown(db, articleId: articleId.string)
            }
        }
    }

    /// Where the next pull starts.
    package func cursor() throws -> String? {
        try read("read the cursor") { db in try SyncMeta.fetch(db).cursor }
    }

    /// Whether a response from database epoch `epoch` means the server was reset since this device last synced.
    package func isFromAnotherEpoch(_ epoch: String) throws -> Bool {
        try read("read the epoch") { db in try SyncMeta.fetch(db).epoch.map { !$0.isExactly(epoch) } ?? false }
    }

    /// Applies one pulled page and its cursor in one transaction.
    package func apply(_ page: PullResponse) throws {
        try write("store a pulled page") { db in
            var meta = try SyncMeta.fetch(db)
            meta.epoch = page.epoch
            if !page.articles.isEmpty { meta.lastArrival += 1 }
            for article in page.articles {
                try Self.storeArticle(db, article, arrival: meta.lastArrival)
                // Version 1 is a new article: a state the device holds under its id is of an earlier
                // one the server removed with its states (compaction), and must not hide the new
                // one's. Its states, if any, come after it in the feed (and in this page, after it).
                if article.version == 1 { try Self.forgetServerState(db, articleId: article.id) }
            }
            let delete = try db.cachedStatement(sql: "DELETE FROM article WHERE id = ?")
            for id in page.deletedArticleIds { try delete.execute(arguments: [id]) }
            var clock = HybridClock(last: meta.hlc)
            for state in page.states {
                try Self.storeServerState(db, state)
                if skipsPendingOverlay {
                    try db.execute(sql: """
                        UPDATE articleState SET read = serverRead, bookmarked = serverBookmarked, progress = serverProgress
                        WHERE articleId = ?
                        """, arguments: [state.articleId])
                }
                clock.observe(state.hlc)
            }
            // After the states, so a bookmark in the same page keeps its article; kept, it goes
            // at the first eviction after nothing pins it any more.
            let dropExpired = try db.cachedStatement(sql: """
                DELETE FROM article WHERE id = ? AND \(Self.unpinned)
                """)
            let keepPinned = try db.cachedStatement(sql: "UPDATE article SET pinnedOnly = 1 WHERE id = ?")
            for id in page.expiredArticleIds {
                try dropExpired.execute(arguments: [id])
                if db.changesCount == 0 { try keepPinned.execute(arguments: [id]) }
            }
            meta.hlc = clock.last
            meta.cursor = page.cursor
            try meta.save(db)
        }
    }

    /// A condition on an `article` row: neither shown bookmarked nor with a pending change, so
    /// the device may drop it.
    static let unpinned = """
        NOT EXISTS (SELECT 1 FROM articleState s WHERE s.articleId = article.id AND s.bookmarked = 1)
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.articleId = article.id)
        """

    /// Stores an article's content, replacing what the device had of it, as arrived at `arrival`;
    /// `pinnedOnly` when it comes from outside what the device syncs (kept only while pinned).
    static func storeArticle(_ db: Database, _ a: ArticleDTO, arrival: Int64, pinnedOnly: Bool = false) throws {
        // Article text is bound so that it round-trips exactly (see ExactText).
        // An upsert, not INSERT OR REPLACE: the row keeps its rowid, and the search index's update
        // trigger fires (a replace's delete fires none; m0004_client_search).
        try db.cachedStatement(sql: """
            INSERT INTO article (id, section, title, summary, body, author, url, publishedAt, updatedAt, version, arrival, pinnedOnly)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET section = excluded.section, title = excluded.title, summary = excluded.summary,
                body = excluded.body, author = excluded.author, url = excluded.url, publishedAt = excluded.publishedAt,
                updatedAt = excluded.updatedAt, version = excluded.version, arrival = excluded.arrival, pinnedOnly = excluded.pinnedOnly
            """).execute(arguments: [a.id, a.section.exactDatabaseValue, a.title.exactDatabaseValue,
                                     a.summary.exactDatabaseValue, a.body.exactDatabaseValue,
                                     a.author.exactDatabaseValue, a.url.exactDatabaseValue,
                                     a.publishedAt, a.updatedAt, a.version, arrival, pinnedOnly])
    }

    /// Keeps an article fetched by id (``SyncEngine/article(id:)``) while it is bookmarked or has
    /// a pending change, else until the next eviction, unless the device has it in this version or
    /// a newer one already (a pull may have stored one while the fetch was under way).
    package func cache(_ article: ArticleDTO) throws {
        try write("store a fetched article") { db in
            let stored = try Int64.fetchOne(db, sql: "SELECT version FROM article WHERE id = ?", arguments: [article.id])
            if let stored, stored >= article.version { return }
            var meta = try SyncMeta.fetch(db)
            meta.lastArrival += 1
            try Self.storeArticle(db, article, arrival: meta.lastArrival, pinnedOnly: true)
            try meta.save(db)
        }
    }

    /// Evicts what the device does not keep: articles outside the store's window
    /// (``Options/window``: all but the newest `newest` by publication and those published in
    /// the last `days` days), articles of sections it does not follow (``follow(sections:)``)
    /// and articles kept only while pinned (expired by the server, or fetched by id), except
    /// bookmarked ones and those with a pending change. Their states stay.
    ///
    /// - Returns: how many articles were evicted.
    @discardableResult
    package func evict() throws -> Int {
        try write("evict articles") { db in try evict(db) }
    }

    /// ``evict()`` in the caller's transaction, with the followed sections it holds.
    func evict(_ db: Database) throws -> Int {
        let window = options.window
        var outside = ["pinnedOnly = 1"]
        var arguments: StatementArguments = []
        let sections = try Self.followedSections(db)
        let followed = sections.map { "section IN (\(Array(repeating: "?", count: $0.count).joined(separator: ", ")))" }
        let sectionArguments = StatementArguments(sections.map { $0.map(\.exactDatabaseValue) } ?? [])
        if let newest = window.newest {
            // The newest of what the device syncs: a range of article_on_publishedAt, newest
            // first, past the articles of other sections and those kept only while pinned.
            outside.append("id NOT IN (SELECT id FROM article WHERE pinnedOnly = 0 \(followed.map { "AND \($0)" } ?? "") "
                           + "ORDER BY publishedAt DESC, id DESC LIMIT ?)")
            arguments += sectionArguments + [newest]
        }
        if let since = window.publishedSince(now: now()) {
            outside.append("publishedAt < ?")
            arguments += [Timestamp.secondBound(since)]
        }
        if let followed {
            outside.append("NOT \(followed)")
            arguments += sectionArguments
        }
        try db.execute(sql: """
            DELETE FROM article WHERE (\(outside.joined(separator: " OR ")))
                AND \(Self.unpinned)
            """, arguments: arguments)
        return db.changesCount
    }

    /// Folds the write-ahead log back into the database file and truncates it, after a sync
    /// that wrote or evicted much (a first sync, an eviction): the space a window frees is
    /// then the database's to reuse, and the log does not keep a first sync's size on disk.
    /// Skipped, not failed, while a read holds the log.
    package func truncateLog() {
        _ = try? dbPool.writeWithoutTransaction { try $0.checkpoint(.truncate) }
    }

    /// Articles shown bookmarked whose content the device does not have (an expired one a first
    /// sync leaves out, or a bookmark pulled after its article was evicted), at most `limit`.
    package func bookmarkedArticleIdsWithoutContent(limit: Int) throws -> [String] {
        try read("read bookmarked articles") { db in
            try String.fetchAll(db, sql: """
                SELECT articleId FROM articleState WHERE bookmarked = 1
                    AND NOT EXISTS (SELECT 1 FROM article WHERE article.id = articleState.articleId)
                ORDER BY articleId LIMIT ?
                """, arguments: [limit])
        }
    }

    /// Drops what the device holds of the server's state of an article (pending changes stay shown).
    static func forgetServerState(_ db: Database, articleId: String) throws {
        try db.cachedStatement(sql: """
            UPDATE articleState SET serverRead = 0, serverBookmarked = 0, serverProgress = 0, version = 0,
                readWriter = NULL, readHlcWall = NULL, readHlcCounter = NULL,
                bookmarkedWriter = NULL, bookmarkedHlcWall = NULL, bookmarkedHlcCounter = NULL,
                progressWriter = NULL, progressHlcWall = NULL, progressHlcCounter = NULL
            WHERE articleId = ? AND version > 0
            """).execute(arguments: [articleId])
        if db.changesCount > 0 { try refreshShown(db, articleId: articleId) }
    }

    /// Records the server's state of an article (never going back to an older version).
    static func storeServerState(_ db: Database, _ state: StateDTO) throws {
        try db.execute(sql: "INSERT OR IGNORE INTO articleState (articleId) VALUES (?)", arguments: [state.articleId])
        let w = state.writers
        try db.execute(sql: """
            UPDATE articleState SET serverRead = ?, serverBookmarked = ?, serverProgress = ?, version = ?,
                readWriter = ?, readHlcWall = ?, readHlcCounter = ?,
                bookmarkedWriter = ?, bookmarkedHlcWall = ?, bookmarkedHlcCounter = ?,
                progressWriter = ?, progressHlcWall = ?, progressHlcCounter = ?
            WHERE articleId = ? AND version <= ?
            """, arguments: [
                state.read, state.bookmarked, state.progress, state.version,
                w.read?.deviceId, w.read?.hlc.wall, w.read?.hlc.counter,
                w.bookmarked?.deviceId, w.bookmarked?.hlc.wall, w.bookmarked?.hlc.counter,
                w.progress?.deviceId, w.progress?.hlc.wall, w.progress?.hlc.counter,
                state.articleId, state.version,
            ])
        try refreshShown(db, articleId: state.articleId)
    }

    /// Pulls anew after `410 cursor_expired`: the device last synced before the server's
    /// tombstone horizon, so deletions it missed can no longer be served. The server lost nothing
    /// (same epoch): the outbox stays as it is, nothing is queued again. Drops the cursor and
    /// every article, those with a pending change too: a pull from the beginning brings no
    /// deletion, so an article kept across it would outlive its tombstone. What is live comes
    /// back from that pull (within the window), bookmarked ones one by one afterwards
    /// (``SyncEngine`` fetches bookmarked content a pull did not bring). States and pending
    /// changes stay: the pull brings every state the server keeps, never older than the device's.
    package func startOverAfterCursorExpired() throws {
        try write("start over after an expired cursor") { db in
            var meta = try SyncMeta.fetch(db)
            try db.execute(sql: "DELETE FROM article")
            meta.cursor = nil
            try meta.save(db)
        }
    }

    /// Starts over after the server's database was reset or restored (`410 reset_required`).
    ///
    /// Keeps the outbox; queues again every field whose current server value this device wrote
    /// (with its original HLC), so that what the server lost comes back; drops the articles, the
    /// server's states and the cursor. Pending changes keep showing.
    ///
    /// - Returns: how many changes were queued again.
    @discardableResult
    package func startOverAfterServerReset() throws -> Int {
        try write("start over after a server reset") { db in
            var meta = try SyncMeta.fetch(db)
            let createdAt = Timestamp.format(Date())
            var requeued = 0
            let rows = try Row.fetchAll(db, sql: """
                SELECT articleId, serverRead, serverBookmarked, serverProgress,
                    readWriter, readHlcWall, readHlcCounter, bookmarkedWriter, bookmarkedHlcWall, bookmarkedHlcCounter,
                    progressWriter, progressHlcWall, progressHlcCounter
                FROM articleState ORDER BY articleId
                """)
            for row in rows {
                let articleId: String = try row.decode(atIndex: 0)
                let values: [StateField: FieldValue] = [
                    .read: .bool(try row.decode(atIndex: 1)), .bookmarked: .bool(try row.decode(atIndex: 2)),
                    .progress: .number(try row.decode(atIndex: 3)),
                ]
                for (i, field) in StateField.allCases.enumerated() {
                    let base = 4 + i * 3
                    guard (try row.decode(String?.self, atIndex: base)).isExactly(deviceId),
                          let wall = try row.decode(Int64?.self, atIndex: base + 1) else { continue }
                    // The writer's stamp is given back as it was; a missing counter is an error, not 0.
                    guard let counter = try row.decode(Int64?.self, atIndex: base + 2) else {
                        throw ReaderSyncError(.storeCorrupt, "the server state of \(articleId) has a \(field) writer without an HLC counter")
                    }
                    let pending = try Bool.fetchOne(db, sql: "SELECT 1 FROM outbox WHERE articleId = ? AND field = ?",
                                                    arguments: [articleId, field.rawValue]) != nil
                    if pending { continue }  // a newer local change is queued already
                    meta.lastMutationId += 1
                    try db.execute(sql: """
                        INSERT INTO outbox (id, articleId, field, value, hlcWall, hlcCounter, baseVersion, restored, createdAt)
                        VALUES (?, ?, ?, ?, ?, ?, 0, 1, ?)
                        """, arguments: [meta.lastMutationId, articleId, field.rawValue, values[field]!.description,
                                         wall, counter, createdAt])
                    requeued += 1
                }
            }
            // What pending changes had seen is gone with the old database: they too are ordered by HLC.
            try db.execute(sql: "UPDATE outbox SET baseVersion = 0, restored = 1")
            try db.execute(sql: "DELETE FROM article")
            try db.execute(sql: "DELETE FROM articleState")
            for articleId in try String.fetchAll(db, sql: "SELECT DISTINCT articleId FROM outbox") {
                try Self.refreshShown(db, articleId: articleId)
            }
            meta.cursor = nil
            meta.epoch = nil
            try meta.save(db)
            return requeued
        }
    }
}
