import Foundation
import PostgresNIO
import ReaderSyncCore
import ReaderSyncService

extension PostgresSyncStore {
    /// Column list of the state reads below: article_id, version, xid, seq, then six per field.
    ///
    /// The transaction id is read as text under a name of its own, `xid_text`: an output column
    /// named `xid` would be what `ORDER BY xid` sorts by (output names come first in ORDER BY),
    /// as text, so 1000 would come before 999 and a page could pass changes it never served.
    static let stateColumns = "article_id, version, xid::text AS xid_text, seq, "
        + CellColumns.allNames.joined(separator: ", ")

    static let articleColumns = """
        id, section, title, summary, body, author, url, published_at, updated_at, version, xid::text AS xid_text, seq, deleted_at IS NOT NULL,
        expired_at IS NOT NULL
        """

    /// The tombstone horizon as `meta` holds it (NULL before any compaction), a scalar subquery.
    static let horizonColumn = "(SELECT value FROM meta WHERE key = 'horizon')"

    /// The horizon of the statement's snapshot, as a one-row CTE `h (horizon)`: the oldest
    /// transaction that was still running when the snapshot was taken and may write to this
    /// database, or the snapshot's `xmax` when none was. Every transaction of this database
    /// below it has ended, so its rows are final.
    ///
    /// Transaction ids are cluster-wide, and a snapshot lists the running transactions of every
    /// database of the cluster: `pg_snapshot_xmin` alone would let any transaction on another
    /// database (or an autovacuum worker, which never writes these tables) hold back every pull
    /// here, so a change already committed would not be served. A running transaction is passed
    /// over only when `pg_stat_activity` shows its backend on another database, or as an
    /// autovacuum worker; one it does not show (ended since the snapshot, or hidden) still holds
    /// the horizon. A transaction that starts later gets an id at or above `xmax`.
    ///
    /// On a hot standby (`serve --db-read`) a snapshot lists the primary's running transactions
    /// not in `xip` but among its subtransactions, which SQL cannot read, and `pg_stat_activity`
    /// shows none of the primary's backends: the horizon there is the snapshot's `xmin`, the
    /// oldest transaction running on any database of the primary as far as the standby has
    /// replayed (every one the standby has not seen end, including those that took an id and
    /// wrote nothing yet: replay marks the ids below any id it meets as running).
    static let horizonCTE = """
        WITH s AS (SELECT pg_current_snapshot() AS snap),
        passed_over AS (
            SELECT backend_xid FROM pg_stat_activity
            WHERE backend_xid IS NOT NULL
              AND ((datid IS NOT NULL AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))
                   OR backend_type = 'autovacuum worker')
        ),
        h AS (
            SELECT CASE WHEN pg_is_in_recovery() THEN (SELECT pg_snapshot_xmin(snap) FROM s)
            ELSE coalesce(
                (SELECT min(x) FROM s, pg_snapshot_xip(s.snap) AS x WHERE x::xid NOT IN (SELECT backend_xid FROM passed_over)),
                (SELECT pg_snapshot_xmax(snap) FROM s)) END AS horizon
        )
        """

    /// Reads the pull page.
    ///
    /// The horizon (``horizonCTE``) is read once, in the first statement's snapshot, and bound
    /// into the second: every transaction below it has ended, so the rows below it are final in
    /// both reads; a change of a transaction at or above it is served by a later pull, at a
    /// position after this page's last (transaction ids only grow). Two reads with two horizons
    /// could return a state past an article the other read had not seen yet.
    package func changes(userId: Int64, after: FeedPosition, limit: Int, sections: [String]?) async throws -> ChangePage {
        let afterTransaction = String(after.transaction)
        let rowLimit = limit + 1
        return try await readClient.withConnection { connection in
            let articleQuery: PostgresQuery
            switch (feedOrder, sections) {
            case (_, let sections?):
                articleQuery = self.sectionChanges(after: after, limit: rowLimit, sections: sections)
            case (.transactionThenSequence, nil):
                articleQuery = """
                    \(unescaped: Self.horizonCTE)
                    SELECT h.horizon::text, pg_is_in_recovery(), a.* FROM h LEFT JOIN LATERAL (
                        SELECT \(unescaped: Self.articleColumns) FROM article
                        WHERE (xid, seq) > (\(afterTransaction)::xid8, \(after.seq)) AND xid < h.horizon
                        ORDER BY xid, seq LIMIT \(rowLimit)
                    ) a ON true
                    """
            case (.sequenceAloneForTesting, nil):
                // Transaction ids read as 0: the cursor holds the sequence alone.
                articleQuery = """
                    SELECT '0', pg_is_in_recovery(), a.* FROM (SELECT 1) one LEFT JOIN LATERAL (
                        SELECT \(unescaped: Self.articleColumns.replacingOccurrences(of: "xid::text AS xid_text", with: "'0'"))
                        FROM article WHERE seq > \(after.seq) ORDER BY seq LIMIT \(rowLimit)
                    ) a ON true
                    """
            }
            var horizon = "0"
            var passed: FeedPosition?
            var articles: [(position: FeedPosition, change: Change)] = []
            for try await row in try await connection.query(articleQuery, logger: self.logger) {
                let cells = row.makeRandomAccess()
                horizon = try cells[0].decode(String.self)
                try self.checkReadReplica(inRecovery: try cells[1].decode(Bool.self))
                if sections != nil, let text = try cells[cells.count - 1].decode(String?.self) {
                    guard let position = FeedPosition(text) else { throw StoreError("the newest article position '\(text)' is not a feed position") }
                    passed = position
                }
                if try cells[2].decode(String?.self) == nil { continue } // no article below the horizon
                articles.append(try Self.decodeArticle(cells, offset: 2))
            }

            let stateQuery: PostgresQuery
            switch feedOrder {
            case .transactionThenSequence:
                stateQuery = """
                    SELECT \(unescaped: Self.horizonColumn), s.* FROM (SELECT 1) one LEFT JOIN LATERAL (
                        SELECT \(unescaped: Self.stateColumns) FROM user_article_state
                        WHERE user_id = \(userId) AND (xid, seq) > (\(afterTransaction)::xid8, \(after.seq)) AND xid < \(horizon)::xid8
                        ORDER BY xid, seq LIMIT \(rowLimit)
                    ) s ON true
                    """
            case .sequenceAloneForTesting:
                stateQuery = """
                    SELECT \(unescaped: Self.horizonColumn), s.* FROM (SELECT 1) one LEFT JOIN LATERAL (
                        SELECT \(unescaped: Self.stateColumns.replacingOccurrences(of: "xid::text AS xid_text", with: "'0'")) FROM user_article_state
                        WHERE user_id = \(userId) AND seq > \(after.seq) ORDER BY seq LIMIT \(rowLimit)
                    ) s ON true
                    """
            }
            // The tombstone horizon is read in the second statement, whose snapshot is the later
            // one: a compaction that removed rows before either read has raised it by then.
            var tombstoneHorizon = FeedPosition.start
            var states: [(position: FeedPosition, change: Change)] = []
            for try await row in try await connection.query(stateQuery, logger: self.logger) {
                let cells = row.makeRandomAccess()
                tombstoneHorizon = try FeedPosition(storedHorizon: cells[0].decode(String?.self))
                if try cells[1].decode(String?.self) == nil { continue } // no state
                let (state, position) = try Self.decodeState(cells, offset: 1)
                states.append((position, .state(state)))
            }
            var page = ChangePage.merging(articles: articles, states: states, after: after, limit: limit)
            page.horizon = tombstoneHorizon
            page.passed = passed
            return page
        }
    }

    /// The article read of a pull of some sections, as the unsectioned one (the horizon of the
    /// statement's snapshot, whether it runs on a standby, then the articles), with each
    /// section's articles and expiries one range of article_on_section_feed, the tombstones of
    /// every section one range of article_on_tombstone_feed (as on SQLite,
    /// ``SQLiteSyncStore``'s `articleChanges`), and the exits from these sections of articles
    /// now in none of them one range of section_exit_on_section_feed each, read as expiries. Each part is cut at `limit` before the union is sorted. Its last column is the
    /// newest article change below the horizon, of any section (``ChangePage/passed``).
    func sectionChanges(after: FeedPosition, limit: Int, sections: [String]) -> PostgresQuery {
        var binds = PostgresBindings(capacity: sections.count)
        for section in sections { binds.append(ByteBuffer(string: section)) }
        let names = (1...sections.count).map { "$\($0)" }
        let ordered = feedOrder == .transactionThenSequence
        // Fixed fragments and numbers only; every section is bound.
        func range(_ table: String) -> String {
            ordered
                ? "(\(table).xid, \(table).seq) > ('\(after.transaction)'::xid8, \(after.seq)) AND \(table).xid < h.horizon"
                : "\(table).seq > \(after.seq)"
        }
        func order(_ table: String) -> String { ordered ? "\(table).xid, \(table).seq" : "\(table).seq" }
        let columns = ordered ? Self.articleColumns : Self.articleColumns.replacingOccurrences(of: "xid::text AS xid_text", with: "'0'")
        var parts = names.map { name in
            """
            (SELECT \(columns), xid AS feed_xid FROM article
             WHERE md5(section) = md5(\(name)::bytea) AND section = \(name)::bytea AND deleted_at IS NULL AND \(range("article"))
             ORDER BY \(order("article")) LIMIT \(limit))
            """
        }
        parts.append("""
            (SELECT \(columns), xid AS feed_xid FROM article WHERE deleted_at IS NOT NULL AND \(range("article"))
             ORDER BY \(order("article")) LIMIT \(limit))
            """)
        let exitColumns = """
            e.article_id, NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea, NULL::bytea, NULL::timestamptz,
            NULL::timestamptz, 0::bigint, \(ordered ? "e.xid::text" : "'0'"), e.seq, false, true, e.xid
            """
        for name in names {
            parts.append("""
                (SELECT \(exitColumns) FROM section_exit e JOIN article x ON x.id = e.article_id
                 WHERE md5(e.section) = md5(\(name)::bytea) AND e.section = \(name)::bytea AND \(range("e"))
                     AND x.section NOT IN (\(names.map { "\($0)::bytea" }.joined(separator: ", ")))
                 ORDER BY \(order("e")) LIMIT \(limit))
                """)
        }
        let union = parts.joined(separator: "\nUNION ALL\n")
        let sql = ordered
            ? """
                \(Self.horizonCTE)
                SELECT h.horizon::text, pg_is_in_recovery(), a.*,
                    (SELECT xid::text || '/' || seq FROM article WHERE xid < h.horizon ORDER BY xid DESC, seq DESC LIMIT 1)
                FROM h LEFT JOIN LATERAL (
                    SELECT * FROM (\(union)) u ORDER BY feed_xid, seq LIMIT \(limit)
                ) a ON true
                """
            : """
                SELECT '0', pg_is_in_recovery(), a.*, (SELECT max(seq)::text FROM article)
                FROM (SELECT 1) one LEFT JOIN LATERAL (
                    SELECT * FROM (\(union)) u ORDER BY seq LIMIT \(limit)
                ) a ON true
                """
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }

    /// One article row of ``articleColumns`` starting at `offset`: a tombstone, an expiry (unless
    /// `ignoringExpiry`: then its content), or every column of a live article, none defaulted.
    static func decodeArticle(_ cells: PostgresRandomAccessRow, offset: Int, ignoringExpiry: Bool = false) throws -> (position: FeedPosition, change: Change) {
        let id = try cells[offset].decode(String.self)
        let position = try Self.position(transaction: cells[offset + 10].decode(String.self), seq: cells[offset + 11].decode(Int64.self))
        if try cells[offset + 12].decode(Bool.self) { return (position, .tombstone(id: id)) }
        if !ignoringExpiry, try cells[offset + 13].decode(Bool.self) { return (position, .expiry(id: id)) }
        func text(_ index: Int) throws -> String {
            guard let buffer = try cells[offset + index].decode(ByteBuffer?.self) else {
                throw StoreError("article \(id) has no column \(index)")
            }
            return String(buffer: buffer)
        }
        func date(_ index: Int) throws -> String {
            guard let date = try cells[offset + index].decode(Date?.self) else { throw StoreError("article \(id) has no column \(index)") }
            return Timestamp.format(date)
        }
        return (position, .article(ArticleDTO(
            id: id, section: try text(1), title: try text(2), summary: try text(3), body: try text(4),
            author: try text(5), url: try text(6), publishedAt: try date(7), updatedAt: try date(8),
            version: try cells[offset + 9].decode(Int64.self))))
    }

    /// A feed position from the row's `xid::text` and `seq`.
    static func position(transaction: String, seq: Int64) throws -> FeedPosition {
        guard let transaction = UInt64(transaction) else { throw StoreError("a row's transaction id '\(transaction)' is not a number") }
        return FeedPosition(transaction: transaction, seq: seq)
    }

    /// One state row of ``stateColumns``. A field whose HLC wall is NULL was never written.
    /// - Throws: ``StoreError`` when a written field misses a column (a row no version writes).
    static func decodeState(_ cells: PostgresRandomAccessRow, offset: Int = 0) throws -> (UserArticleState, FeedPosition) {
        let articleId = try cells[offset].decode(String.self)
        var state = UserArticleState(articleId: articleId, version: try cells[offset + 1].decode(Int64.self))
        for (i, field) in StateField.allCases.enumerated() {
            let base = offset + 4 + i * 6
            guard let wall = try cells[base + 1].decode(Int64?.self) else { continue }
            let value: FieldValue?
            if field == .progress {
                value = try cells[base].decode(Double?.self).map(FieldValue.number)
            } else {
                value = try cells[base].decode(Bool?.self).map(FieldValue.bool)
            }
            guard let value, let counter = try cells[base + 2].decode(Int64?.self),
                  let deviceId = try cells[base + 3].decode(String?.self),
                  let mutationId = try cells[base + 4].decode(Int64?.self),
                  let setAtVersion = try cells[base + 5].decode(Int64?.self)
            else {
                // The message names the row, never its values.
                throw StoreError("a user_article_state row cannot be read: a column of a written field is NULL")
            }
            state[field] = FieldCell(
                write: FieldWrite(value: value, hlc: HLC(wall: wall, counter: counter), deviceId: deviceId, mutationId: mutationId),
                setAtVersion: setAtVersion)
        }
        let seq = try cells[offset + 3].decode(Int64.self)
        let position = try Self.position(transaction: cells[offset + 2].decode(String.self), seq: seq)
        return (state, position)
    }

    package func state(userId: Int64, articleId: String) async throws -> UserArticleState? {
        guard canBeStoredName(articleId) else { return nil }
        return try await client.withConnection { connection in
            try await Self.fetchStates(connection, userId: userId, articleIds: [articleId], logger: self.logger)[ExactText(articleId)]
        }
    }

    static func fetchStates(_ connection: PostgresConnection, userId: Int64, articleIds: [String], logger: Logger) async throws -> [ExactText: UserArticleState] {
        var states: [ExactText: UserArticleState] = [:]
        let rows = try await connection.query("""
            SELECT \(unescaped: stateColumns) FROM user_article_state WHERE user_id = \(userId) AND article_id = ANY(\(articleIds))
            """, logger: logger)
        for try await row in rows {
            let (state, _) = try decodeState(row.makeRandomAccess())
            states[ExactText(state.articleId)] = state
        }
        return states
    }

    /// A push in one READ COMMITTED transaction holding the user's advisory lock: the device's
    /// last mutation id and the user's states are read fresh under it, so the same push sent to
    /// two servers at once is applied by one and answered `duplicate` by the other. The
    /// articles are share-locked in id order, so an ingest deleting one waits for the push (or
    /// the push sees the delete). Begin, lock, read, write, commit: five round trips (six when
    /// the push binds a new device), the lock, read and write prepared once per connection
    /// (`PostgresPushStatements.swift`).
    package func push(
        userId: Int64,
        deviceId: String,
        articleIds: Set<ExactText>,
        now: String,
        plan makePlan: @Sendable (PushContext) throws -> PushPlan
    ) async throws -> CommittedPush {
        let nowDate = try Self.date(now)
        let ids = articleIds.map(\.string)
        return try await transaction { connection in
            // Read to the end: postgres-nio returns a row query before it has run, so an error while
            // waiting for the lock (statement_timeout) would surface only as the next statement's
            // "transaction aborted".
            for try await _ in try await connection.execute(PushLockStatement(userId: userId), logger: self.logger) {}
            var deviceOwner: Int64?
            var lastMutationId: Int64 = 0
            var articles: [ExactText: ArticleAvailability] = [:]
            var states: [ExactText: UserArticleState] = [:]
            let read = PushReadStatement(articleIds: ids, deviceId: deviceId, userId: userId)
            for try await row in try await connection.execute(read, logger: self.logger) {
                let cells = row.makeRandomAccess()
                if let owner = try cells[0].decode(Int64?.self) {
                    deviceOwner = owner
                    lastMutationId = try cells[1].decode(Int64.self)
                }
                guard let id = try cells[2].decode(String?.self) else { continue }
                articles[ExactText(id)] = try cells[3].decode(Bool.self) ? .deleted : .live
                if try cells[4].decode(String?.self) != nil {
                    let (state, _) = try Self.decodeState(cells, offset: 4)
                    states[ExactText(state.articleId)] = state
                }
            }
            let plan = try makePlan(PushContext(deviceOwner: deviceOwner, lastMutationId: lastMutationId, articles: articles, states: states))

            if plan.bindsDevice {
                // A device id another user's push bound meanwhile fails the key: the retry reads the owner.
                // Read to the end (postgres-nio's command-tag form of `execute` traps on a prepared
                // statement whose stream has not ended yet).
                let bind = PushBindDeviceStatement(deviceId: deviceId, userId: userId, lastMutationId: plan.lastMutationId, now: nowDate)
                for try await _ in try await connection.execute(bind, logger: self.logger) {}
            }
            let changed = plan.changeOrder.compactMap { plan.changedStates[$0] }
            let write = PushWriteStatement(
                userId: userId, deviceId: deviceId, now: nowDate,
                lastMutationId: plan.lastMutationId, states: try StateRows(changed), conflicts: ConflictRows(plan.conflicts),
                history: HistoryRows(plan.history))
            var seqByArticle: [ExactText: Int64] = [:]
            var conflictIds: [Int64] = []
            for try await row in try await connection.execute(write, logger: self.logger) {
                switch (row.kind, row.articleId) {
                case ("s", let articleId?): seqByArticle[ExactText(articleId)] = row.value
                case ("c", _): conflictIds.append(row.value)
                default: throw StoreError("the push's write returned an unexpected row")
                }
            }
            // Identity values are taken in the order the rows were inserted (`ORDER BY ord`).
            conflictIds.sort()
            guard seqByArticle.count == changed.count, conflictIds.count == plan.conflicts.count else {
                throw StoreError("the push's write stored \(seqByArticle.count) of \(changed.count) states and \(conflictIds.count) of \(plan.conflicts.count) conflicts")
            }
            return CommittedPush(plan: plan, seqByArticle: seqByArticle, conflictIds: conflictIds)
        }
    }

    /// `count` values of `sequence`, ascending, in one statement.
    static func nextValues(_ connection: PostgresConnection, sequence: String, count: Int, logger: Logger) async throws -> [Int64] {
        var values: [Int64] = []
        values.reserveCapacity(count)
        for try await value in try await connection.query(
            "SELECT nextval(\(sequence)::regclass) FROM generate_series(1, \(count))", logger: logger
        ).decode(Int64.self) {
            values.append(value)
        }
        return values.sorted()
    }
}

extension StateField {
    /// The prefix of the field's columns in `user_article_state`.
    var columnPrefix: String {
        switch self {
        case .read: "read"
        case .bookmarked: "bookmarked"
        case .progress: "progress"
        }
    }
}
