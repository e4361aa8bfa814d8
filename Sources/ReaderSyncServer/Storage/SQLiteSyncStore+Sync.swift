import GRDB
import ReaderSyncCore
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
    /// Columns are read with `hasNull` and non-optional types, which GRDB reads straight from the
    /// statement (`sqlite3_column_int64`, `_text`); reading `Int64?` goes through generic metadata
    /// lookups that took a third of a state pull's server CPU (docs/PERFORMANCE.md, S5).
    static func decodeState(_ row: Row) -> (state: UserArticleState, seq: Int64) {
        var state = UserArticleState(articleId: row[0], version: row[1])
        for (i, field) in StateField.allCases.enumerated() {
            let base = 3 + i * 6
            if row.hasNull(atIndex: base + 1) { continue }
            let value: FieldValue = field == .progress ? .number(row[base] as Double) : .bool(row[base] as Bool)
            let write = FieldWrite(value: value, hlc: HLC(wall: row[base + 1] as Int64, counter: row[base + 2] as Int64),
                                   deviceId: row[base + 3] as String, mutationId: row[base + 4] as Int64)
            state[field] = FieldCell(write: write, setAtVersion: row[base + 5] as Int64)
        }
        return (state, row[2] as Int64)
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

    package func changes(userId: Int64, after: Int64, limit: Int) async throws -> ChangePage {
        try await dbPool.read { db in
            // Both reads are index range scans (article_on_seq, userArticleState_on_user_seq),
            // in the one snapshot of this read transaction.
            let articleRows = try Row.fetchAll(
                db.cachedStatement(sql: """
                    SELECT id, section, title, summary, body, author, url, publishedAt, updatedAt, version, seq, deletedAt
                    FROM article WHERE seq > ? ORDER BY seq LIMIT ?
                    """),
                arguments: [after, limit + 1])
            // States are decoded as they are stepped (no copied rows): a caught-up device's pull is
            // mostly states.
            var states: [(state: UserArticleState, seq: Int64)] = []
            let stateRows = try Row.fetchCursor(
                db.cachedStatement(sql: "SELECT \(Self.stateColumns) FROM userArticleState WHERE userId = ? AND seq > ? ORDER BY seq LIMIT ?"),
                arguments: [userId, after, limit + 1])
            while let row = try stateRows.next() { states.append(Self.decodeState(row)) }

            var changes: [(seq: Int64, change: Change)] = []
            changes.reserveCapacity(min(limit, articleRows.count + states.count))
            var a = 0
            var s = 0
            while changes.count < limit, a < articleRows.count || s < states.count {
                let articleSeq: Int64 = a < articleRows.count ? articleRows[a][10] : .max
                let stateSeq: Int64 = s < states.count ? states[s].seq : .max
                if articleSeq < stateSeq {
                    changes.append((articleSeq, Self.decodeArticle(articleRows[a])))
                    a += 1
                } else {
                    changes.append((stateSeq, .state(states[s].state)))
                    s += 1
                }
            }
            let hasMore = a < articleRows.count || s < states.count
            return ChangePage(changes: changes, lastSeq: changes.last?.seq ?? after, hasMore: hasMore)
        }
    }

    static func decodeArticle(_ row: Row) -> Change {
        if row[11] as String? != nil { return .tombstone(id: row[0]) }
        return .article(ArticleDTO(
            id: row[0], section: row.exactText(1), title: row.exactText(2), summary: row.exactText(3),
            body: row.exactText(4), author: row.exactText(5), url: row.exactText(6),
            publishedAt: row[7], updatedAt: row[8], version: row[9]))
    }

    package func state(userId: Int64, articleId: String) async throws -> UserArticleState? {
        try await dbPool.read { db in
            try Self.fetchState(db, userId: userId, articleId: articleId)
        }
    }

    static func fetchState(_ db: Database, userId: Int64, articleId: String) throws -> UserArticleState? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(stateColumns) FROM userArticleState WHERE userId = ? AND articleId = ?"),
            arguments: [userId, articleId]
        ).map { decodeState($0).state }
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
