import Foundation
import PostgresNIO
import ReaderSyncCore
import ReaderSyncService

/// Compaction (``RetentionStore``) on the columns of `m0004_postgres_retention`. Each step is one
/// short transaction whose rows are locked `FOR UPDATE SKIP LOCKED`: an ingest or a push holding
/// one of them is never waited for (a later batch takes the row, or the next run if it is still
/// held when nothing else is left), and two servers
/// compacting at once take different rows.
extension PostgresSyncStore {
    package func tombstoneHorizon() async throws -> FeedPosition {
        // Where pulls read, as a pull's page reads it.
        let rows = try await readClient.query("SELECT value FROM meta WHERE key = 'horizon'", logger: logger).collect()
        return try FeedPosition(storedHorizon: rows.first?.decode(String.self))
    }

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

    package func recordCheckpoint(at time: Date) async throws {
        // The last value any session took: every row with a value at or below it took it before now.
        // An idle database's sequence stands still: its first checkpoint at a value is the one
        // that matters (everything at or below it was written by then).
        try await query("""
            INSERT INTO compaction_checkpoint (taken_at, seq)
            SELECT \(time), v FROM (SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS v FROM change_seq) s
            WHERE NOT EXISTS (SELECT 1 FROM compaction_checkpoint WHERE seq >= s.v)
            """)
    }

    package func removalBound(takenAtOrBefore cutoff: Date) async throws -> Int64? {
        try await transaction { connection in
            var bound: Int64?
            for try await seq in try await connection.query("""
                SELECT seq FROM compaction_checkpoint WHERE taken_at <= \(cutoff) ORDER BY seq DESC LIMIT 1
                """, logger: self.logger).decode(Int64.self) {
                bound = seq
            }
            if let bound {
                try await connection.query("DELETE FROM compaction_checkpoint WHERE seq < \(bound)", logger: self.logger)
            }
            return bound
        }
    }

    package func removeArticles(writtenThrough bound: Int64, limit: Int) async throws -> RemovedArticles {
        try await transaction { connection in
            // A row with a state written after the bound stays (a device may not have pulled
            // that state yet); a pinned one (expired, bookmarked by someone) stays too.
            var candidates: [(id: String, position: FeedPosition, deleted: Bool)] = []
            for try await (id, xid, seq, deleted) in try await connection.query("""
                SELECT id, xid::text, seq, deleted_at IS NOT NULL FROM article a
                WHERE (deleted_at IS NOT NULL OR expired_at IS NOT NULL) AND seq <= \(bound)
                    AND NOT EXISTS (SELECT 1 FROM user_article_state s WHERE s.article_id = a.id AND s.seq > \(bound))
                    AND (deleted_at IS NOT NULL
                         OR NOT EXISTS (SELECT 1 FROM user_article_state s WHERE s.article_id = a.id AND s.bookmarked_value))
                ORDER BY seq LIMIT \(limit) FOR UPDATE OF a SKIP LOCKED
                """, logger: self.logger).decode((String, String, Int64, Bool).self) {
                candidates.append((id, try self.position(transaction: xid, seq: seq), deleted))
            }
            guard !candidates.isEmpty else { return RemovedArticles() }
            // A push that wrote a state of one of these (a bookmark, or any state after the bound)
            // and committed after the statement above read the states, before its lock, is seen
            // now, in a newer snapshot with the rows locked: that article stays.
            let ids = candidates.map(\.id)
            var kept = Set<String>()
            for try await id in try await connection.query("""
                SELECT DISTINCT s.article_id FROM user_article_state s JOIN article a ON a.id = s.article_id
                WHERE s.article_id = ANY(\(ids)) AND (s.seq > \(bound) OR (a.deleted_at IS NULL AND s.bookmarked_value))
                """, logger: self.logger).decode(String.self) {
                kept.insert(id)
            }
            let gone = candidates.filter { !kept.contains($0.id) }
            let goneIds = gone.map(\.id)
            var removed = RemovedArticles(tombstones: gone.count(where: \.deleted), expired: gone.count(where: { !$0.deleted }),
                                          found: candidates.count)
            guard !gone.isEmpty else { return removed }
            var horizon = FeedPosition.start
            var states = 0
            for try await (xid, seq) in try await connection.query(
                "DELETE FROM user_article_state WHERE article_id = ANY(\(goneIds)) RETURNING xid::text, seq", logger: self.logger
            ).decode((String, Int64).self) {
                horizon = max(horizon, try self.position(transaction: xid, seq: seq))
                states += 1
            }
            removed.states = states
            // Its exits from sections go with it (their positions count toward the horizon: a
            // transaction that took its id earlier can have written the article after them).
            for try await (xid, seq) in try await connection.query(
                "DELETE FROM section_exit WHERE article_id = ANY(\(goneIds)) RETURNING xid::text, seq", logger: self.logger
            ).decode((String, Int64).self) {
                horizon = max(horizon, try self.position(transaction: xid, seq: seq))
            }
            try await connection.query("DELETE FROM article WHERE id = ANY(\(goneIds))", logger: self.logger)
            // The meta row is locked: two compactions raise the horizon one after the other.
            for try await text in try await connection.query(
                "SELECT value FROM meta WHERE key = 'horizon' FOR UPDATE", logger: self.logger
            ).decode(String.self) {
                horizon = max(horizon, try FeedPosition(storedHorizon: text))
            }
            horizon = max(horizon, gone.map(\.position).max() ?? .start)
            try await connection.query(
                "UPDATE meta SET value = \(horizon.description) WHERE key = 'horizon'", logger: self.logger)
            return removed
        }
    }

    /// A row's feed position as this store orders the feed: transaction ids read as 0 when it
    /// orders by sequence alone (tests), as its cursors do.
    private func position(transaction: String, seq: Int64) throws -> FeedPosition {
        switch feedOrder {
        case .transactionThenSequence: try Self.position(transaction: transaction, seq: seq)
        case .sequenceAloneForTesting: FeedPosition(seq: seq)
        }
    }

    package func removeConflicts(detectedBefore cutoff: Date, limit: Int) async throws -> Int {
        try await removeOldest(of: "conflict", timeColumn: "detected_at", before: cutoff, limit: limit)
    }

    package func removeHistory(receivedBefore cutoff: Date, limit: Int) async throws -> Int {
        try await removeOldest(of: "state_history", timeColumn: "received_at", before: cutoff, limit: limit)
    }

    /// Removes up to `limit` of the oldest rows of a log table (the conflict log, the field
    /// history) whose time is before `cutoff`: read from the oldest row and cut at the first young
    /// enough one (ids follow the time closely; see the SQLite store), so no index on the time is
    /// needed.
    ///
    /// - Parameters: `table` and `timeColumn` are names written in this file, never input.
    private func removeOldest(of table: String, timeColumn: String, before cutoff: Date, limit: Int) async throws -> Int {
        try await transaction { connection in
            var last: Int64?
            for try await (id, old) in try await connection.query("""
                SELECT id, \(unescaped: timeColumn) < \(cutoff) FROM \(unescaped: table) ORDER BY id LIMIT \(limit)
                """, logger: self.logger).decode((Int64, Bool).self) {
                guard old else { break }
                last = id
            }
            guard let last else { return 0 }
            return try await connection.query("DELETE FROM \(unescaped: table) WHERE id <= \(last) RETURNING 1", logger: self.logger)
                .collect().count
        }
    }

    package func recordCompaction(at time: Date, retentionDays: Int?) async throws {
        try await transaction { connection in
            try await connection.query("""
                INSERT INTO meta (key, value) VALUES ('compactedAt', \(Timestamp.format(time)))
                ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
                """, logger: self.logger)
            if let retentionDays {
                try await connection.query("""
                    INSERT INTO meta (key, value) VALUES ('retentionDays', \(String(retentionDays)))
                    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
                    """, logger: self.logger)
            } else {
                try await connection.query("DELETE FROM meta WHERE key = 'retentionDays'", logger: self.logger)
            }
        }
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
        let horizon = try FeedPosition(storedHorizon: cells[9].decode(String?.self))
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

/// A first sync's reads (``SnapshotStore``), where pulls read (the replica, when set). The head
/// was read below the horizon (``feedHead(userId:)``), so every row at or before it is final.
extension PostgresSyncStore {
    /// `(xid, seq) <= head`, or `seq <= head` when the feed is ordered by sequence alone (tests).
    private func atOrBefore(_ head: FeedPosition) -> String {
        switch feedOrder {
        case .transactionThenSequence: "(xid, seq) <= ('\(head.transaction)'::xid8, \(head.seq))"
        case .sequenceAloneForTesting: "seq <= \(head.seq)"
        }
    }

    package func newestArticles(through head: FeedPosition, after key: PublicationKey?, publishedSince: Date?,
                                sections: [String]?, limit: Int) async throws -> [(key: PublicationKey, article: ArticleDTO)] {
        var binds = PostgresBindings()
        // Fixed fragments and numbers only; every text and date is bound.
        var conditions = ["deleted_at IS NULL", "expired_at IS NULL", atOrBefore(head)]
        if let key {
            binds.append(try Self.date(key.publishedAt))
            binds.append(key.id)
            conditions.append("(published_at, id) < ($\(binds.count - 1), $\(binds.count))")
        }
        if let publishedSince {
            binds.append(publishedSince)
            conditions.append("published_at >= $\(binds.count)")
        }
        let select = "SELECT \(Self.articleColumns) FROM article WHERE \(conditions.joined(separator: " AND "))"
        let order = "ORDER BY published_at DESC, id DESC LIMIT \(limit)"
        var sql = "\(select) \(order)"
        if let sections {
            // One range of article_on_section_published per section, cut at `limit`, then sorted.
            var parts: [String] = []
            for section in sections {
                binds.append(ByteBuffer(string: section))
                let name = "$\(binds.count)::bytea"
                parts.append("(\(select) AND md5(section) = md5(\(name)) AND section = \(name) \(order))")
            }
            sql = "SELECT * FROM (\(parts.joined(separator: "\nUNION ALL\n"))) u \(order)"
        }
        let rows = try await readClient.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).collect()
        return try rows.compactMap { row in
            let cells = row.makeRandomAccess()
            guard case .article(let article) = try Self.decodeArticle(cells, offset: 0).change else { return nil }
            return (PublicationKey(publishedAt: article.publishedAt, id: article.id), article)
        }
    }

    package func states(userId: Int64, after: FeedPosition, through head: FeedPosition,
                        limit: Int) async throws -> [(position: FeedPosition, state: UserArticleState)] {
        let afterCondition = switch feedOrder {
        case .transactionThenSequence: "(xid, seq) > ('\(after.transaction)'::xid8, \(after.seq))"
        case .sequenceAloneForTesting: "seq > \(after.seq)"
        }
        let order = feedOrder == .transactionThenSequence ? "xid, seq" : "seq"
        let rows = try await readClient.query(PostgresQuery(unsafeSQL: """
            SELECT \(Self.stateColumns) FROM user_article_state
            WHERE user_id = \(userId) AND \(afterCondition) AND \(atOrBefore(head))
            ORDER BY \(order) LIMIT \(limit)
            """), logger: logger).collect()
        return try rows.map { row in
            let (state, position) = try Self.decodeState(row.makeRandomAccess())
            return (position, state)
        }
    }
}
