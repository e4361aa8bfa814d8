import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncService
import ReaderSyncSQLite

/// Dates are stored as canonical RFC 3339 text and compared with ``Timestamp/secondBound(_:)``.
extension SQLiteSyncStore {
    static func fetchHorizon(_ db: Database) throws -> FeedPosition {
        try FeedPosition(storedHorizon: String.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'horizon'")))
    }

    package func tombstoneHorizon() async throws -> FeedPosition {
        try await dbPool.read(Self.fetchHorizon)
    }

    package func expireArticles(publishedBefore cutoff: Date, now: Date, limit: Int) async throws -> Int {
        let cutoff = Timestamp.secondBound(cutoff)
        let now = Timestamp.format(now)
        return try await dbPool.write { db in
            // A range of the partial index article_on_published: only live, unexpired articles.
            let rowids = try Int64.fetchAll(db.cachedStatement(sql: """
                SELECT rowid FROM article WHERE deletedAt IS NULL AND expiredAt IS NULL AND publishedAt < ?
                ORDER BY publishedAt LIMIT ?
                """), arguments: [cutoff, limit])
            var sequence = try SequenceAllocator(db)
            let expire = try db.cachedStatement(sql: "UPDATE article SET expiredAt = ?, seq = ? WHERE rowid = ?")
            for rowid in rowids {
                try expire.execute(arguments: [now, sequence.next(), rowid])
            }
            try sequence.save(db)
            return rowids.count
        }
    }

    package func recordCheckpoint(at time: Date) async throws {
        try await dbPool.write { db in
            // An idle database's sequence stands still: its first checkpoint at a value is the one
            // that matters (everything at or below it was written by then).
            try db.execute(sql: """
                INSERT INTO compactionCheckpoint (takenAt, seq) SELECT ?, value FROM changeSequence
                WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM compactionCheckpoint WHERE seq >= changeSequence.value)
                """, arguments: [Timestamp.format(time)])
        }
    }

    package func removalBound(takenAtOrBefore cutoff: Date) async throws -> Int64? {
        let cutoff = Timestamp.secondBound(cutoff)
        return try await dbPool.write { db in
            guard let seq = try Int64.fetchOne(db, sql: """
                SELECT seq FROM compactionCheckpoint WHERE takenAt < ? ORDER BY seq DESC LIMIT 1
                """, arguments: [cutoff]) else { return nil }
            try db.execute(sql: "DELETE FROM compactionCheckpoint WHERE seq < ?", arguments: [seq])
            return seq
        }
    }

    package func removeArticles(writtenThrough bound: Int64, limit: Int) async throws -> RemovedArticles {
        try await dbPool.write { db in
            // A range of the partial index article_on_gone. Pinned: an expired article someone has
            // bookmarked stays, content and states. A row with a state written after the bound
            // stays too: a device may not have pulled that state yet.
            let rows = try Row.fetchAll(db.cachedStatement(sql: """
                SELECT rowid, seq, deletedAt IS NOT NULL,
                    (SELECT max(s.seq) FROM userArticleState s WHERE s.articleId = a.id)
                FROM article a
                WHERE (deletedAt IS NOT NULL OR expiredAt IS NOT NULL) AND seq <= ?1
                    AND NOT EXISTS (SELECT 1 FROM userArticleState s WHERE s.articleId = a.id AND s.seq > ?1)
                    AND (deletedAt IS NOT NULL
                         OR NOT EXISTS (SELECT 1 FROM userArticleState s WHERE s.articleId = a.id AND s.bookmarkedValue = 1))
                ORDER BY seq LIMIT ?2
                """), arguments: [bound, limit])
            var removed = RemovedArticles()
            guard !rows.isEmpty else { return removed }
            var horizon = try Self.fetchHorizon(db)
            let deleteStates = try db.cachedStatement(sql: """
                DELETE FROM userArticleState WHERE articleId = (SELECT id FROM article WHERE rowid = ?)
                """)
            let deleteArticle = try db.cachedStatement(sql: "DELETE FROM article WHERE rowid = ?")
            // Its exits from sections go with it; each took a sequence value at or before the
            // article's last change, so the horizon below covers them.
            let deleteExits = try db.cachedStatement(sql: """
                DELETE FROM sectionExit WHERE articleId = (SELECT id FROM article WHERE rowid = ?)
                """)
            for row in rows {
                let rowid: Int64 = try row.decode(atIndex: 0)
                if try row.decode(Bool.self, atIndex: 2) { removed.tombstones += 1 } else { removed.expired += 1 }
                try deleteStates.execute(arguments: [rowid])
                removed.states += db.changesCount
                try deleteExits.execute(arguments: [rowid])
                try deleteArticle.execute(arguments: [rowid])
                horizon = max(horizon, FeedPosition(seq: max(try row.decode(atIndex: 1), row[3] as Int64? ?? 0)))
            }
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('horizon', ?)", arguments: [horizon.description])
            return removed
        }
    }

    package func removeConflicts(detectedBefore cutoff: Date, limit: Int) async throws -> Int {
        try await removeOldest(of: "conflict", timeColumn: "detectedAt", before: cutoff, limit: limit)
    }

    package func removeHistory(receivedBefore cutoff: Date, limit: Int) async throws -> Int {
        try await removeOldest(of: "stateHistory", timeColumn: "receivedAt", before: cutoff, limit: limit)
    }

    /// Removes up to `limit` of the oldest rows of a log table (the conflict log, the field
    /// history) whose time is before `cutoff`. The table is read from its oldest row and cut at
    /// the first one that is young enough: rows are written in id order (one writer), so no index
    /// on the time is needed and a compaction with nothing to do reads one row.
    ///
    /// - Parameters: `table` and `timeColumn` are names written in this file, never input.
    private func removeOldest(of table: String, timeColumn: String, before cutoff: Date, limit: Int) async throws -> Int {
        let cutoff = Timestamp.secondBound(cutoff)
        return try await dbPool.write { db in
            let rows = try Row.fetchAll(db.cachedStatement(sql: "SELECT id, \(timeColumn) < ? FROM \(table) ORDER BY id LIMIT ?"),
                                        arguments: [cutoff, limit])
            guard let last = rows.prefix(while: { $0[1] as Bool }).last else { return 0 }
            try db.execute(sql: "DELETE FROM \(table) WHERE id <= ?", arguments: [last[0] as Int64])
            return db.changesCount
        }
    }

    package func recordCompaction(at time: Date, retentionDays: Int?) async throws {
        try await dbPool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('compactedAt', ?)",
                           arguments: [Timestamp.format(time)])
            if let retentionDays {
                try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('retentionDays', ?)", arguments: [String(retentionDays)])
            } else {
                try db.execute(sql: "DELETE FROM meta WHERE key = 'retentionDays'")
            }
        }
    }

    package func statistics() async throws -> StoreStatistics {
        try await dbPool.read { db in
            let counts = try Row.fetchOne(db, sql: """
                SELECT (SELECT COUNT(*) FROM article WHERE deletedAt IS NULL AND expiredAt IS NULL),
                    (SELECT COUNT(*) FROM article WHERE expiredAt IS NOT NULL),
                    (SELECT COUNT(*) FROM article a WHERE expiredAt IS NOT NULL
                        AND EXISTS (SELECT 1 FROM userArticleState s WHERE s.articleId = a.id AND s.bookmarkedValue = 1)),
                    (SELECT COUNT(*) FROM article WHERE deletedAt IS NOT NULL),
                    (SELECT COUNT(*) FROM user), (SELECT COUNT(*) FROM device),
                    (SELECT COUNT(*) FROM userArticleState), (SELECT COUNT(*) FROM conflict)
                """)!
            var stats = StoreStatistics()
            stats.liveArticles = counts[0]
            stats.expiredArticles = counts[1]
            stats.pinnedArticles = counts[2]
            stats.tombstones = counts[3]
            stats.users = counts[4]
            stats.devices = counts[5]
            stats.states = counts[6]
            stats.conflicts = counts[7]
            let pageSize = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            stats.bytes = (try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0) * pageSize
            stats.freeBytes = (try Int64.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0) * pageSize
            let horizon = try Self.fetchHorizon(db)
            stats.horizon = horizon == .start ? nil : horizon.description
            stats.compactedAt = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'compactedAt'")
            return stats
        }
    }

    package func article(id: String) async throws -> StoredArticleRecord? {
        guard canBeStoredName(id) else { return nil }
        return try await dbPool.read { db in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT \(Self.articleColumns) FROM article WHERE id = ?
                """), arguments: [id]) else { return nil }
            if let deletedAt = row[11] as String? { return .tombstone(deletedAt: deletedAt) }
            guard case .article(let article) = try Self.decodeArticle(row, ignoringExpiry: true) else {
                throw StoreError("article \(id) cannot be read")
            }
            if let expiredAt = row[12] as String? { return .expired(article, expiredAt: expiredAt) }
            return .live(article)
        }
    }
}

/// A first sync's reads (``SnapshotStore``): one writer takes sequence values in commit order, so
/// the sequence alone says whether a row changed after the snapshot's head.
extension SQLiteSyncStore {
    package func newestArticles(through head: FeedPosition, after key: PublicationKey?, publishedSince: Date?,
                                sections: [String]?, limit: Int) async throws -> [(key: PublicationKey, article: ArticleDTO)] {
        let (sql, arguments) = Self.newestArticles(through: head.seq, after: key, publishedSince: publishedSince,
                                                   sections: sections, limit: limit)
        return try await dbPool.read { db in
            var rows: [(key: PublicationKey, article: ArticleDTO)] = []
            let cursor = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
            while let row = try cursor.next() {
                guard case .article(let article) = try Self.decodeArticle(row) else { continue }
                rows.append((PublicationKey(publishedAt: try row.decode(atIndex: 7), id: article.id), article))
            }
            return rows
        }
    }

    /// The statement of ``newestArticles(through:after:publishedSince:sections:limit:)``: a
    /// descending range of the partial index article_on_published (publishedAt, id), or of
    /// article_on_section_published per section, each cut at `limit` before the union is sorted.
    /// `+seq` keeps the sequence out of the index choice: with a section, (section, seq) looks
    /// as good to the planner, and would read the whole section and sort it (measured: a first
    /// page of two sections took 19 ms instead of 5).
    static func newestArticles(through head: Int64, after key: PublicationKey?, publishedSince: Date?,
                               sections: [String]?, limit: Int) -> (sql: String, arguments: StatementArguments) {
        var conditions = ["deletedAt IS NULL", "expiredAt IS NULL", "+seq <= ?"]
        var arguments: StatementArguments = [head]
        if let key {
            conditions.append("(publishedAt, id) < (?, ?)")
            arguments += [key.publishedAt, key.id.exactDatabaseValue]
        }
        if let publishedSince {
            // At or after: every text of that instant's second or later sorts after this bound.
            conditions.append("publishedAt >= ?")
            arguments += [Timestamp.secondBound(publishedSince)]
        }
        let select = "SELECT \(articleColumns) FROM article WHERE \(conditions.joined(separator: " AND "))"
        let order = "ORDER BY publishedAt DESC, id DESC LIMIT ?"
        guard let sections else { return ("\(select) \(order)", arguments + [limit]) }
        var bound: StatementArguments = []
        for section in sections { bound += arguments + [section.exactDatabaseValue, limit] }
        let sql = sections.map { _ in "SELECT * FROM (\(select) AND section = ? \(order))" }.joined(separator: "\nUNION ALL\n")
            + "\nORDER BY 8 DESC, 1 DESC LIMIT ?"
        return (sql, bound + [limit])
    }

    package func states(userId: Int64, after: FeedPosition, through head: FeedPosition,
                        limit: Int) async throws -> [(position: FeedPosition, state: UserArticleState)] {
        try await dbPool.read { db in
            var rows: [(position: FeedPosition, state: UserArticleState)] = []
            let cursor = try Row.fetchCursor(db.cachedStatement(sql: """
                SELECT \(Self.stateColumns) FROM userArticleState WHERE userId = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?
                """), arguments: [userId, after.seq, head.seq, limit])
            while let row = try cursor.next() {
                let (state, seq) = try Self.decodeState(row)
                rows.append((FeedPosition(seq: seq), state))
            }
            return rows
        }
    }
}
