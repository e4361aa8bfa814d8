import Foundation
import PostgresNIO
import ReaderSyncCore
import ReaderSyncService

/// Compaction (``RetentionStore``) on the columns of `m0004_postgres_retention`. Each step is one
/// short transaction whose rows are locked `FOR UPDATE SKIP LOCKED`: an ingest or a push holding
/// one of them is never waited for (the row is left for the next run), and two servers
/// compacting at once take different rows.
extension PostgresSyncStore {
    package func expireArticles(publishedBefore cutoff: Date, now: Date, limit: Int) async throws -> Int {
        try await transaction { connection in
            // Each expiry is a change of this transaction, at a new sequence value, as an ingest's.
            let rows = try await connection.query("""
                UPDATE article SET expired_at = \(now), seq = nextval('change_seq'), xid = pg_current_xact_id()
                WHERE id IN (
                    SELECT id FROM article WHERE deleted_at IS NULL AND expired_at IS NULL AND published_at < \(cutoff)
                    ORDER BY published_at LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING 1
                """, logger: self.logger).collect()
            return rows.count
        }
    }

    package func removeArticles(goneBefore cutoff: Date, limit: Int) async throws -> RemovedArticles {
        try await transaction { connection in
            var candidates: [(id: String, position: FeedPosition, expired: Bool)] = []
            for try await (id, xid, seq) in try await connection.query("""
                SELECT id, xid::text, seq FROM article WHERE deleted_at IS NOT NULL AND deleted_at < \(cutoff)
                ORDER BY deleted_at LIMIT \(limit) FOR UPDATE SKIP LOCKED
                """, logger: self.logger).decode((String, String, Int64).self) {
                candidates.append((id, try Self.position(transaction: xid, seq: seq), false))
            }
            if candidates.count < limit {
                for try await (id, xid, seq) in try await connection.query("""
                    SELECT id, xid::text, seq FROM article a WHERE expired_at IS NOT NULL AND expired_at < \(cutoff)
                        AND NOT EXISTS (SELECT 1 FROM user_article_state s WHERE s.article_id = a.id AND s.bookmarked_value)
                    ORDER BY expired_at LIMIT \(limit - candidates.count) FOR UPDATE OF a SKIP LOCKED
                    """, logger: self.logger).decode((String, String, Int64).self) {
                    candidates.append((id, try Self.position(transaction: xid, seq: seq), true))
                }
            }
            guard !candidates.isEmpty else { return RemovedArticles() }
            // A push that bookmarked one of these expired articles and committed after the
            // statement above read the states (but before its lock) is seen now, in a newer
            // snapshot with the rows locked: such an article is pinned and stays.
            let expiredIds = candidates.filter(\.expired).map(\.id)
            var pinned = Set<String>()
            if !expiredIds.isEmpty {
                for try await id in try await connection.query("""
                    SELECT DISTINCT article_id FROM user_article_state WHERE article_id = ANY(\(expiredIds)) AND bookmarked_value
                    """, logger: self.logger).decode(String.self) {
                    pinned.insert(id)
                }
            }
            let gone = candidates.filter { !$0.expired || !pinned.contains($0.id) }
            let ids = gone.map(\.id)
            var removed = RemovedArticles(tombstones: gone.count(where: { !$0.expired }), expired: gone.count(where: { $0.expired }))
            guard !ids.isEmpty else { return removed }
            removed.states = try await connection.query(
                "DELETE FROM user_article_state WHERE article_id = ANY(\(ids)) RETURNING 1", logger: self.logger
            ).collect().count
            try await connection.query("DELETE FROM article WHERE id = ANY(\(ids))", logger: self.logger)
            // The meta row is locked: two compactions raise the horizon one after the other.
            var horizon = FeedPosition.start
            for try await text in try await connection.query(
                "SELECT value FROM meta WHERE key = 'horizon' FOR UPDATE", logger: self.logger
            ).decode(String.self) {
                horizon = try Self.tombstoneHorizon(text)
            }
            horizon = max(horizon, gone.map(\.position).max() ?? .start)
            try await connection.query(
                "UPDATE meta SET value = \(horizon.description) WHERE key = 'horizon'", logger: self.logger)
            return removed
        }
    }

    package func removeConflicts(detectedBefore cutoff: Date, limit: Int) async throws -> Int {
        try await transaction { connection in
            // Read from the oldest entry and cut at the first young enough one (ids follow
            // detection closely; see the SQLite store), so no index on the time is needed.
            var last: Int64?
            for try await (id, old) in try await connection.query("""
                SELECT id, detected_at < \(cutoff) FROM conflict ORDER BY id LIMIT \(limit)
                """, logger: self.logger).decode((Int64, Bool).self) {
                guard old else { break }
                last = id
            }
            guard let last else { return 0 }
            return try await connection.query("DELETE FROM conflict WHERE id <= \(last) RETURNING 1", logger: self.logger)
                .collect().count
        }
    }

    package func recordCompaction(at time: Date) async throws {
        try await query("""
            INSERT INTO meta (key, value) VALUES ('compactedAt', \(Timestamp.format(time)))
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
            """)
    }

    package func statistics() async throws -> StoreStatistics {
        let rows = try await query("""
            SELECT (SELECT count(*) FROM article WHERE deleted_at IS NULL AND expired_at IS NULL),
                (SELECT count(*) FROM article WHERE expired_at IS NOT NULL),
                (SELECT count(*) FROM article a WHERE expired_at IS NOT NULL
                    AND EXISTS (SELECT 1 FROM user_article_state s WHERE s.article_id = a.id AND s.bookmarked_value)),
                (SELECT count(*) FROM article WHERE deleted_at IS NOT NULL),
                (SELECT count(*) FROM users), (SELECT count(*) FROM device),
                (SELECT count(*) FROM user_article_state), (SELECT count(*) FROM conflict),
                pg_database_size(current_database()),
                (SELECT value FROM meta WHERE key = 'horizon'), (SELECT value FROM meta WHERE key = 'compactedAt')
            """)
        guard let row = rows.first else { throw StoreError("the statistics query returned no row") }
        let cells = row.makeRandomAccess()
        var stats = StoreStatistics()
        stats.liveArticles = Int(try cells[0].decode(Int64.self))
        stats.expiredArticles = Int(try cells[1].decode(Int64.self))
        stats.pinnedArticles = Int(try cells[2].decode(Int64.self))
        stats.tombstones = Int(try cells[3].decode(Int64.self))
        stats.users = Int(try cells[4].decode(Int64.self))
        stats.devices = Int(try cells[5].decode(Int64.self))
        stats.states = Int(try cells[6].decode(Int64.self))
        stats.conflicts = Int(try cells[7].decode(Int64.self))
        stats.bytes = try cells[8].decode(Int64.self)
        let horizon = try Self.tombstoneHorizon(cells[9].decode(String?.self))
        stats.horizon = horizon == .start ? nil : horizon.description
        stats.compactedAt = try cells[10].decode(String?.self)
        return stats
    }

    package func article(id: String) async throws -> StoredArticleRecord? {
        guard canBeStoredName(id) else { return nil }
        // Read where pulls read (the replica, when set).
        let rows = try await readClient.query("""
            SELECT \(unescaped: Self.articleColumns), deleted_at, expired_at FROM article WHERE id = \(id)
            """, logger: logger).collect()
        guard let row = rows.first else { return nil }
        let cells = row.makeRandomAccess()
        if let deletedAt = try cells[14].decode(Date?.self) { return .tombstone(deletedAt: Timestamp.format(deletedAt)) }
        guard case .article(let article) = try Self.decodeArticle(cells, offset: 0, ignoringExpiry: true).change else {
            throw StoreError("article \(id) cannot be read")
        }
        if let expiredAt = try cells[15].decode(Date?.self) { return .expired(article, expiredAt: Timestamp.format(expiredAt)) }
        return .live(article)
    }
}
