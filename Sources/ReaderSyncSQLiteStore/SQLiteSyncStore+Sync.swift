import GRDB
import GRDBSQLite
import ReaderSyncCore
import ReaderSyncService
import ReaderSyncSQLite

extension SQLiteSyncStore {
    // Column order shared by the state reads below: articleId, version, seq, then six columns per field.
    static let stateColumns = """
        articleId, version, seq,
        readValue, readHlcWall, readHlcCounter, readDeviceId, readMutationId, readVersion,
        bookmarkedValue, bookmarkedHlcWall, bookmarkedHlcCounter, bookmarkedDeviceId, bookmarkedMutationId, bookmarkedVersion,
        progressValue, progressHlcWall, progressHlcCounter, progressDeviceId, progressMutationId, progressVersion
        """

    /// One state row of ``stateColumns``. A field whose HLC wall is NULL was never written.
    ///
    /// Columns are read with GRDB's throwing `decode` of non-optional types, which reads straight
    /// from the statement (`sqlite3_column_int64`, `_text`) and throws on NULL; reading `Int64?`
    /// went through generic metadata lookups that took a third of a state pull's server CPU
    /// (docs/PERFORMANCE.md, S5), and the non-throwing subscript traps on NULL.
    /// - Throws: ``StoreError`` when a written field misses a column (a row no version writes).
    static func decodeState(_ row: Row) throws -> (state: UserArticleState, seq: Int64) {
        do {
            var state = UserArticleState(articleId: try row.decode(String.self, atIndex: 0), version: try row.decode(atIndex: 1))
            for (i, field) in StateField.allCases.enumerated() {
                let base = 3 + i * 6
                if row.hasNull(atIndex: base + 1) { continue }
                let value: FieldValue = field == .progress
                    ? .number(try row.decode(Double.self, atIndex: base)) : .bool(try row.decode(Bool.self, atIndex: base))
                let write = FieldWrite(
                    value: value,
                    hlc: HLC(wall: try row.decode(atIndex: base + 1), counter: try row.decode(atIndex: base + 2)),
                    deviceId: try row.decode(atIndex: base + 3), mutationId: try row.decode(atIndex: base + 4))
                state[field] = FieldCell(write: write, setAtVersion: try row.decode(atIndex: base + 5))
            }
            return (state, try row.decode(atIndex: 2))
        } catch {
            // The message names the row, never its values.
            throw StoreError("a userArticleState row cannot be read (\(type(of: error))): a column of a written field is NULL")
        }
    }

    static func stateArguments(userId: Int64, state: UserArticleState, seq: Int64) -> StatementArguments {
        var values: [(any DatabaseValueConvertible)?] = [userId, state.articleId, state.version, seq]
        for field in StateField.allCases {
            if let cell = state[field] {
                let value: (any DatabaseValueConvertible)?
                switch cell.write.value {
                case .bool(let b): value = b
                case .number(let d): value = d
                case .unsupported: value = nil
                }
                values += [value, cell.write.hlc.wall, cell.write.hlc.counter, cell.write.deviceId,
                           cell.write.mutationId, cell.setAtVersion]
            } else {
                values += [nil, nil, nil, nil, nil, nil] as [(any DatabaseValueConvertible)?]
            }
        }
        return StatementArguments(values)
    }

    package func feedHead(userId: Int64) async throws -> FeedHead {
        // Two index lookups (article_on_seq, userArticleState_on_user_seq); one writer at a time
        // takes sequence values in commit order, so nothing committed is ever held back.
        try await dbPool.read { db in
            let seq = try Int64.fetchOne(db.cachedStatement(sql: """
                SELECT max(coalesce((SELECT max(seq) FROM article), 0),
                           coalesce((SELECT max(seq) FROM userArticleState WHERE userId = ?), 0))
                """), arguments: [userId]) ?? 0
            return FeedHead(position: FeedPosition(seq: seq))
        }
    }

    package func changes(userId: Int64, after: FeedPosition, limit: Int, sections: [String]?) async throws -> ChangePage {
        // One writer at a time takes sequence values in commit order: the sequence alone orders the feed.
        let afterSeq = after.seq
        let (articleSQL, articleArguments) = Self.articleChanges(after: afterSeq, limit: limit + 1, sections: sections)
        return try await dbPool.read { db in
            // Both reads are index range scans (article_on_seq, or article_on_section_seq per
            // section; userArticleState_on_user_seq), in the one snapshot of this read transaction.
            let articleRows = try Row.fetchCursor(db.cachedStatement(sql: articleSQL), arguments: articleArguments)
            var articles: [(position: FeedPosition, change: Change)] = []
            while let row = try articleRows.next() {
                articles.append((FeedPosition(seq: try row.decode(atIndex: 10)), try Self.decodeArticle(row)))
            }
            // States are decoded as they are stepped (no copied rows): a caught-up device's pull is
            // mostly states.
            var states: [(position: FeedPosition, change: Change)] = []
            let stateRows = try Row.fetchCursor(
                db.cachedStatement(sql: "SELECT \(Self.stateColumns) FROM userArticleState WHERE userId = ? AND seq > ? ORDER BY seq LIMIT ?"),
                arguments: [userId, afterSeq, limit + 1])
            while let row = try stateRows.next() {
                let (state, seq) = try Self.decodeState(row)
                states.append((FeedPosition(seq: seq), .state(state)))
            }
            var page = ChangePage.merging(articles: articles, states: states, after: after, limit: limit)
            page.horizon = try Self.fetchHorizon(db)
            if sections != nil {
                page.passed = try Int64.fetchOne(db.cachedStatement(sql: "SELECT max(seq) FROM article")).map { FeedPosition(seq: $0) }
            }
            return page
        }
    }

    /// The statement of a pull's article changes after `after`, at most `limit`, in feed order.
    ///
    /// With sections, each section's articles and expiries are one range of
    /// article_on_section_seq; the tombstones of every section are one range of
    /// article_on_tombstone_seq (a device keeps bookmarked articles of sections it does not
    /// follow, and tombstones written before they kept their section have none); the exits from
    /// these sections of articles now in none of them are ranges of sectionExit_on_section_seq
    /// (one part: they are few), read as expiries (``decodeArticle(_:ignoringExpiry:)``). Each
    /// part is cut at `limit` before the union is sorted: the first `limit` of the union are
    /// among them. The section names are bound 3 times each (SQLite's limit is 32,766).
    static func articleChanges(after: Int64, limit: Int, sections: [String]?) -> (sql: String, arguments: StatementArguments) {
        guard let sections else {
            return ("SELECT \(articleColumns) FROM article WHERE seq > ? ORDER BY seq LIMIT ?", [after, limit])
        }
        var parts: [String] = []
        var arguments: StatementArguments = []
        for section in sections {
            parts.append("""
                SELECT * FROM (SELECT \(articleColumns) FROM article WHERE section = ? AND seq > ? AND deletedAt IS NULL ORDER BY seq LIMIT ?)
                """)
            arguments += [section.exactDatabaseValue, after, limit]
        }
        parts.append("""
            SELECT * FROM (SELECT \(articleColumns) FROM article WHERE deletedAt IS NOT NULL AND seq > ? ORDER BY seq LIMIT ?)
            """)
        arguments += [after, limit]
        let marks = Array(repeating: "?", count: sections.count).joined(separator: ", ")
        let names = StatementArguments(sections.map(\.exactDatabaseValue))
        let exitColumns = "e.articleId, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, e.seq, NULL, 'exit'"
        parts.append("""
            SELECT * FROM (SELECT \(exitColumns) FROM sectionExit e JOIN article a ON a.id = e.articleId
                WHERE e.section IN (\(marks)) AND e.seq > ? AND a.section NOT IN (\(marks)) ORDER BY e.seq LIMIT ?)
            """)
        arguments += names + [after] + names + [limit]
        return (parts.joined(separator: "\nUNION ALL\n") + "\nORDER BY 11 LIMIT ?", arguments + [limit])
    }

    /// The columns ``decodeArticle(_:ignoringExpiry:)`` reads, in its order (pulls, first syncs,
    /// one article by id).
    static let articleColumns = "id, section, title, summary, body, author, url, publishedAt, updatedAt, version, seq, deletedAt, expiredAt"

    /// One article row of ``articleColumns``: a tombstone when `deletedAt` is set, an expiry when
    /// `expiredAt` is (unless `ignoringExpiry`: then its content), else every column of a live
    /// article, none defaulted.
    /// - Throws: ``StoreError`` when a live article misses a column.
    static func decodeArticle(_ row: Row, ignoringExpiry: Bool = false) throws -> Change {
        do {
            let id = try row.decode(String.self, atIndex: 0)
            if !row.hasNull(atIndex: 11) { return .tombstone(id: id) }
            if !ignoringExpiry, !row.hasNull(atIndex: 12) { return .expiry(id: id) }
            func text(_ index: Int) throws -> String {
                guard let text = row.exactTextIfPresent(index) else { throw StoreError("article \(id) has no column \(index)") }
                return text
            }
            return .article(ArticleDTO(
                id: id, section: try text(1), title: try text(2), summary: try text(3),
                body: try text(4), author: try text(5), url: try text(6),
                publishedAt: try row.decode(atIndex: 7), updatedAt: try row.decode(atIndex: 8), version: try row.decode(atIndex: 9)))
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError("an article row cannot be read (\(type(of: error)))")
        }
    }

    package func state(userId: Int64, articleId: String) async throws -> UserArticleState? {
        guard canBeStoredName(articleId) else { return nil }
        return try await dbPool.read { db in
            try Self.fetchState(db, userId: userId, articleId: articleId)
        }
    }

    static func fetchState(_ db: Database, userId: Int64, articleId: String) throws -> UserArticleState? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(stateColumns) FROM userArticleState WHERE userId = ? AND articleId = ?"),
            arguments: [userId, articleId]
        ).map { try decodeState($0).state }
    }

    package func push(
        userId: Int64,
        deviceId: String,
        articleIds: Set<ExactText>,
        now: String,
        plan makePlan: @Sendable (PushContext) throws -> PushPlan
    ) async throws -> CommittedPush {
        try await dbPool.write { db in
            let device = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT userId, lastMutationId FROM device WHERE id = ?"), arguments: [deviceId])
            var articles: [ExactText: ArticleAvailability] = [:]
            var states: [ExactText: UserArticleState] = [:]
            let articleStatement = try db.cachedStatement(sql: "SELECT deletedAt IS NOT NULL FROM article WHERE id = ?")
            for articleId in articleIds {
                guard let deleted = try Bool.fetchOne(articleStatement, arguments: [articleId.string]) else { continue }
                articles[articleId] = deleted ? .deleted : .live
                states[articleId] = try Self.fetchState(db, userId: userId, articleId: articleId.string)
            }
            let context = PushContext(
                deviceOwner: device?[0], lastMutationId: device?[1] ?? 0, articles: articles, states: states)
            let plan = try makePlan(context)

            var sequence = try SequenceAllocator(db)
            var seqByArticle: [ExactText: Int64] = [:]
            let upsert = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO userArticleState (userId, articleId, version, seq,
                    readValue, readHlcWall, readHlcCounter, readDeviceId, readMutationId, readVersion,
                    bookmarkedValue, bookmarkedHlcWall, bookmarkedHlcCounter, bookmarkedDeviceId, bookmarkedMutationId, bookmarkedVersion,
                    progressValue, progressHlcWall, progressHlcCounter, progressDeviceId, progressMutationId, progressVersion)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for articleId in plan.changeOrder {
                guard let state = plan.changedStates[articleId] else { continue }
                let seq = sequence.next()
                seqByArticle[articleId] = seq
                try upsert.execute(arguments: Self.stateArguments(userId: userId, state: state, seq: seq))
            }
            try sequence.save(db)

            var conflictIds: [Int64] = []
            let insertConflict = try db.cachedStatement(sql: """
                INSERT INTO conflict (userId, articleId, field, rule,
                    winnerValue, winnerHlcWall, winnerHlcCounter, winnerDeviceId, winnerMutationId,
                    loserValue, loserHlcWall, loserHlcCounter, loserDeviceId, loserMutationId,
                    baseVersion, detectedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for planned in plan.conflicts {
                let w = planned.conflict.winner
                let l = planned.conflict.loser
                try insertConflict.execute(arguments: [
                    userId, planned.articleId, planned.field.rawValue, planned.conflict.rule.rawValue,
                    w.value.description, w.hlc.wall, w.hlc.counter, w.deviceId, w.mutationId,
                    l?.value.description, l?.hlc.wall, l?.hlc.counter, l?.deviceId, l?.mutationId,
                    planned.baseVersion, now,
                ])
                conflictIds.append(db.lastInsertedRowID)
            }
            if !plan.history.isEmpty {
                let insertHistory = try db.cachedStatement(sql: """
                    INSERT INTO stateHistory (userId, articleId, field, value, hlcWall, hlcCounter, deviceId, mutationId,
                        clampedWall, clampedCounter, baseVersion, restored, outcome, rule, reason,
                        againstValue, againstHlcWall, againstHlcCounter, againstDeviceId, againstMutationId,
                        version, articleDeleted, conflictId, receivedAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for entry in plan.history {
                    try Self.insert(entry, with: insertHistory, in: db, userId: userId,
                                    conflictId: entry.conflictIndex.map { conflictIds[$0] }, now: now)
                }
            }

            if plan.bindsDevice {
                try db.execute(
                    sql: "INSERT INTO device (id, userId, lastMutationId, firstSeenAt, lastSeenAt) VALUES (?, ?, ?, ?, ?)",
                    arguments: [deviceId, userId, plan.lastMutationId, now, now])
            } else {
                try db.cachedStatement(sql: "UPDATE device SET lastMutationId = ?, lastSeenAt = ? WHERE id = ?")
                    .execute(arguments: [plan.lastMutationId, now, deviceId])
            }
            return CommittedPush(plan: plan, seqByArticle: seqByArticle, conflictIds: conflictIds)
        }
    }
}

extension SQLiteSyncStore {
    /// Inserts one field history row, binding its 24 values with SQLite's C API.
    ///
    /// Written for speed: one row per pushed change, and binding through GRDB's
    /// `StatementArguments` (an array of existentials per row) made S3 measurably slower
    /// (docs/PERFORMANCE.md, "Field history"). Text is bound with its byte count, so a NUL
    /// would be kept (none reaches here: ids are checked, refusals made printable).
    static func insert(_ entry: PlannedHistory, with statement: Statement, in db: Database, userId: Int64,
                       conflictId: Int64?, now: String) throws {
        let handle = statement.sqliteStatement
        sqlite3_reset(handle)
        var index: Int32 = 0
        func int(_ value: Int64?) {
            index += 1
            if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
        }
        func text(_ value: String?) {
            index += 1
            guard var value else {
                sqlite3_bind_null(handle, index)
                return
            }
            value.withUTF8 { bytes in
                _ = sqlite3_bind_text(handle, index, bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                                      Int32(bytes.count), sqliteTransient)
            }
        }
        let w = entry.write
        let a = entry.against
        int(userId); text(entry.articleId); text(entry.field.rawValue); text(w.value.description)
        int(w.hlc.wall); int(w.hlc.counter); text(w.deviceId); int(w.mutationId)
        int(entry.clampedFrom?.wall); int(entry.clampedFrom?.counter); int(entry.baseVersion); int(entry.restored ? 1 : 0)
        text(entry.outcome.rawValue); text(entry.rule.rawValue); text(entry.reason)
        text(a?.value.description); int(a?.hlc.wall); int(a?.hlc.counter); text(a?.deviceId); int(a?.mutationId)
        int(entry.version); int(entry.articleDeleted ? 1 : 0); int(conflictId); text(now)
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)),
                                sql: statement.sql)
        }
    }

    /// `SQLITE_TRANSIENT`: SQLite copies the bytes before the bind returns.
    private static let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
