import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncService
import ReaderSyncSQLite

extension SQLiteSyncStore {
    /// Dates are stored as canonical RFC 3339 text (``Timestamp/format(_:)``), whose
    /// milliseconds are left out when zero: `…:05Z` sorts after `…:05.250Z`. The date's whole
    /// second without its `Z` sorts after every canonical text of an earlier second and before
    /// every text of that second or later, so `column < cutoffText(date)` is "before that
    /// second": never a row at or after `date`, at most a second's rows short.
    static func cutoffText(_ date: Date) -> String {
        let whole = Timestamp.format(Date(timeIntervalSince1970: (date.timeIntervalSince1970).rounded(.down)))
        return String(whole.dropLast())
    }

    static func fetchHorizon(_ db: Database) throws -> FeedPosition {
        guard let text = try String.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'horizon'")) else {
            return .start
        }
        guard let horizon = FeedPosition(text) else { throw StoreError("the tombstone horizon (meta 'horizon') '\(text)' is not a feed position") }
        return horizon
    }

    package func expireArticles(publishedBefore cutoff: Date, now: Date, limit: Int) async throws -> Int {
        let cutoff = Self.cutoffText(cutoff)
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

    package func removeArticles(goneBefore cutoff: Date, limit: Int) async throws -> RemovedArticles {
        let cutoff = Self.cutoffText(cutoff)
        return try await dbPool.write { db in
            let tombstones = try Row.fetchAll(db.cachedStatement(sql: """
                SELECT rowid, seq FROM article WHERE deletedAt IS NOT NULL AND deletedAt < ? ORDER BY deletedAt LIMIT ?
                """), arguments: [cutoff, limit])
            // Pinned: an expired article someone has bookmarked stays, content and states.
            let expired = tombstones.count < limit ? try Row.fetchAll(db.cachedStatement(sql: """
                SELECT rowid, seq FROM article a WHERE expiredAt IS NOT NULL AND expiredAt < ?
                    AND NOT EXISTS (SELECT 1 FROM userArticleState s WHERE s.articleId = a.id AND s.bookmarkedValue = 1)
                ORDER BY expiredAt LIMIT ?
                """), arguments: [cutoff, limit - tombstones.count]) : []
            var removed = RemovedArticles(tombstones: tombstones.count, expired: expired.count)
            guard removed.articles > 0 else { return removed }
            var horizon = try Self.fetchHorizon(db)
            let deleteStates = try db.cachedStatement(sql: """
                DELETE FROM userArticleState WHERE articleId = (SELECT id FROM article WHERE rowid = ?)
                """)
            let deleteArticle = try db.cachedStatement(sql: "DELETE FROM article WHERE rowid = ?")
            for row in tombstones + expired {
                let rowid: Int64 = try row.decode(atIndex: 0)
                try deleteStates.execute(arguments: [rowid])
                removed.states += db.changesCount
                try deleteArticle.execute(arguments: [rowid])
                horizon = max(horizon, FeedPosition(seq: try row.decode(atIndex: 1)))
            }
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('horizon', ?)", arguments: [horizon.description])
            return removed
        }
    }

    package func removeConflicts(detectedBefore cutoff: Date, limit: Int) async throws -> Int {
        let cutoff = Self.cutoffText(cutoff)
        return try await dbPool.write { db in
            // The log is read from its oldest entry and cut at the first one that is young
            // enough: entries are detected in id order (one writer), so no index on the time is
            // needed and a compaction with nothing to do reads one row.
            let rows = try Row.fetchAll(db.cachedStatement(sql: "SELECT id, detectedAt < ? FROM conflict ORDER BY id LIMIT ?"),
                                        arguments: [cutoff, limit])
            guard let last = rows.prefix(while: { $0[1] as Bool }).last else { return 0 }
            try db.execute(sql: "DELETE FROM conflict WHERE id <= ?", arguments: [last[0] as Int64])
            return db.changesCount
        }
    }

    package func recordCompaction(at time: Date) async throws {
        try await dbPool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('compactedAt', ?)",
                           arguments: [Timestamp.format(time)])
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
                SELECT id, section, title, summary, body, author, url, publishedAt, updatedAt, version, seq, deletedAt, expiredAt
                FROM article WHERE id = ?
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
