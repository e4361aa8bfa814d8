import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncService
import ReaderSyncSQLite

extension SQLiteSyncStore {
    package func ingest(_ items: [IngestItem], now clock: @escaping @Sendable () -> String) async throws -> IngestReport {
        try await dbPool.write { db in
            // Read holding the write lock: the one writer's articles arrive in commit order.
            let now = clock()
            let retentionBound = try Self.retentionBound(db, now: now)
            var report = IngestReport()
            var sequence = try SequenceAllocator(db)
            let select = try db.cachedStatement(sql: """
                SELECT section, title, summary, body, author, url, publishedAt, updatedAt, version, deletedAt
                FROM article WHERE id = ?
                """)
            // A new article's item number is the sequence value of its first write (m0004).
            let insert = try db.cachedStatement(sql: """
                INSERT INTO article (id, section, title, summary, body, author, url, publishedAt, updatedAt, version, seq, deletedAt,
                    itemId, arrivedAt)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, NULL, ?10, ?11)
                """)
            let addSection = try db.cachedStatement(sql: "INSERT OR IGNORE INTO section (name) VALUES (?)")
            let arrivedAt = try ArrivalTime.micros(now)
            // A restored article (tombstoned, then ingested again) arrives again: it was in no
            // stream meanwhile, so a reader's mark-all-as-read of before must not reach it. A
            // changed expired article is in the sync set again until a compaction expires it anew.
            let update = try db.cachedStatement(sql: """
                UPDATE article SET section = ?, title = ?, summary = ?, body = ?, author = ?, url = ?,
                    publishedAt = ?, updatedAt = ?, version = version + 1, seq = ?,
                    arrivedAt = CASE WHEN deletedAt IS NULL THEN arrivedAt ELSE ? END, deletedAt = NULL, expiredAt = NULL
                WHERE id = ?
                """)
            // A tombstone keeps its section: a device following only that section pulls it.
            let tombstone = try db.cachedStatement(sql: """
                UPDATE article SET title = NULL, summary = NULL, body = NULL, author = NULL, url = NULL,
                    publishedAt = NULL, updatedAt = NULL, version = version + 1, seq = ?, deletedAt = ?, expiredAt = NULL
                WHERE id = ?
                """)
            let exitSection = try db.cachedStatement(sql: "INSERT OR REPLACE INTO sectionExit (section, articleId, seq) VALUES (?, ?, ?)")
            let enterSection = try db.cachedStatement(sql: "DELETE FROM sectionExit WHERE section = ? AND articleId = ?")
            for item in items {
                // An id holding NUL is never stored (``canBeStoredName(_:)``): deleting one changes nothing.
                let row = canBeStoredName(item.articleId) ? try Row.fetchOne(select, arguments: [item.articleId]) : nil
                let stored = row.map(Self.storedArticle)
                let effect = IngestEffect(item, stored: stored, retentionBound: retentionBound)
                report.count(effect)
                switch (item, effect) {
                case (_, .unchanged), (_, .tooOld):
                    continue
                case (.upsert(let a), _):
                    // Article text is bound so that it round-trips exactly (see ExactText).
                    let content: StatementArguments = [
                        a.section.exactDatabaseValue, a.title.exactDatabaseValue, a.summary.exactDatabaseValue,
                        a.body.exactDatabaseValue, a.author.exactDatabaseValue, a.url.exactDatabaseValue,
                        a.publishedAt, a.updatedAt,
                    ]
                    let seq = sequence.next()
                    if effect == .insert {
                        try insert.execute(arguments: [a.id] + content + [seq, arrivedAt])
                    } else {
                        try update.execute(arguments: content + [seq, arrivedAt, a.id])
                        // Moved (or restored) to another section: the old one's followers drop it.
                        if let old = row?.exactTextIfPresent(0), !old.isExactly(a.section) {
                            try exitSection.execute(arguments: [old.exactDatabaseValue, a.id, seq])
                            try enterSection.execute(arguments: [a.section.exactDatabaseValue, a.id])
                        }
                    }
                    try addSection.execute(arguments: [a.section.exactDatabaseValue])
                case (.delete(let id), _):
                    try tombstone.execute(arguments: [sequence.next(), now, id])
                }
            }
            try sequence.save(db)
            return report
        }
    }

    /// The bound below which a new article is too old to store (``IngestEffect/tooOld``): the
    /// retention of the last compaction (meta `retentionDays`) before `now`; `nil` without one.
    static func retentionBound(_ db: Database, now: String) throws -> String? {
        guard let days = try Int.fetchOne(db.cachedStatement(sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'retentionDays'")),
              let date = Timestamp.parse(now) else { return nil }
        return Timestamp.secondBound(date.addingTimeInterval(-Double(days) * 86_400))
    }

    /// A row of the ingest's select, its text read exactly (see ``ExactText``).
    private static func storedArticle(_ row: Row) -> StoredArticle {
        if row[9] as String? != nil { return .tombstoned }
        return .live(ArticleContent(
            id: "", section: row.exactText(0), title: row.exactText(1), summary: row.exactText(2),
            body: row.exactText(3), author: row.exactText(4), url: row.exactText(5),
            publishedAt: row[6] as String? ?? "", updatedAt: row[7] as String? ?? ""))
    }

    package func articleExists(id: String) async throws -> Bool {
        guard canBeStoredName(id) else { return false }
        return try await dbPool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM article WHERE id = ?", arguments: [id]) != nil
        }
    }
}

extension SQLiteSyncStore {
    package func createUser(name: String, tokenHash: [UInt8], now: String) async throws -> UserRecord {
        try await dbPool.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM user WHERE name = ?", arguments: [name]) != nil {
                throw SyncError(.alreadyExists, "a user named \(name) already exists")
            }
            try db.execute(sql: "INSERT INTO user (name, tokenHash, createdAt) VALUES (?, ?, ?)",
                           arguments: [name, Data(tokenHash), now])
            return UserRecord(id: db.lastInsertedRowID, name: name)
        }
    }

    static func fetchUser(_ db: Database, tokenHash: [UInt8]) throws -> UserRecord? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT id, name FROM user WHERE tokenHash = ? AND revokedAt IS NULL"),
                         arguments: [Data(tokenHash)])
            .map { UserRecord(id: $0[0], name: $0[1]) }
    }

    package func user(named name: String) async throws -> UserRecord? {
        guard canBeStoredName(name) else { return nil }
        return try await dbPool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, name FROM user WHERE name = ?", arguments: [name])
                .map { UserRecord(id: $0[0], name: $0[1]) }
        }
    }

    package func users(_ query: UserQuery) async throws -> [UserSummary] {
        // No stored name holds a NUL; SQLite's lower() would end the text there, and an empty
        // search is in every name.
        guard [query.name, query.nameContains].allSatisfy({ $0.map(canBeStoredName) ?? true }) else { return [] }
        // instr, not LIKE: a search holding `_` or `%` means those characters.
        return try await dbPool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT name, createdAt, (SELECT COUNT(*) FROM device WHERE device.userId = user.id), revokedAt
                FROM user WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR instr(lower(name), lower(?2)) > 0)
                ORDER BY name LIMIT coalesce(?3, -1)
                """, arguments: [query.name, query.nameContains, query.limit])
                .map { UserSummary(name: $0[0], createdAt: $0[1], devices: $0[2], revokedAt: $0[3]) }
        }
    }

    package func revokeToken(userName: String, now: String) async throws -> Bool {
        guard canBeStoredName(userName) else { return false }
        return try await dbPool.write { db in
            // A second revoke keeps the first one's time.
            try db.execute(sql: "UPDATE user SET revokedAt = coalesce(revokedAt, ?) WHERE name = ?",
                           arguments: [now, userName])
            return db.changesCount > 0
        }
    }

    package func replaceToken(userName: String, tokenHash: [UInt8]) async throws -> Bool {
        guard canBeStoredName(userName) else { return false }
        return try await dbPool.write { db in
            try db.execute(sql: "UPDATE user SET tokenHash = ?, revokedAt = NULL WHERE name = ?",
                           arguments: [Data(tokenHash), userName])
            return db.changesCount > 0
        }
    }
}

extension SQLiteSyncStore {
    private static let conflictColumns = """
        conflict.id, user.name, articleId, field, rule,
        winnerValue, winnerHlcWall, winnerHlcCounter, winnerDeviceId, winnerMutationId,
        loserValue, loserHlcWall, loserHlcCounter, loserDeviceId, loserMutationId,
        baseVersion, detectedAt
        """

    package func conflicts(_ query: ConflictQuery) async throws -> [ConflictDTO] {
        if let articleId = query.articleId, !canBeStoredName(articleId) { return [] }
        return try await dbPool.read { db in
            // Fixed SQL fragments; every value is bound.
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let userId = query.userId {
                conditions.append("conflict.userId = ?")
                arguments += [userId]
            }
            if let articleId = query.articleId {
                conditions.append("conflict.articleId = ?")
                arguments += [articleId]
            }
            if let before = query.before {
                conditions.append("conflict.id < ?")
                arguments += [before]
            }
            if !query.rules.isEmpty {
                let rules = query.rules.map(\.rawValue).sorted()
                conditions.append("conflict.rule IN (" + Array(repeating: "?", count: rules.count).joined(separator: ", ") + ")")
                arguments += StatementArguments(rules)
            }
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            arguments += [query.limit]
            return try Row.fetchAll(db, sql: """
                SELECT \(Self.conflictColumns) FROM conflict JOIN user ON user.id = conflict.userId
                \(whereClause) ORDER BY conflict.id DESC LIMIT ?
                """, arguments: arguments).map { try Self.decodeConflict($0) }
        }
    }

    package func history(_ query: HistoryQuery) async throws -> [HistoryEntry] {
        if let articleId = query.articleId, !canBeStoredName(articleId) { return [] }
        return try await dbPool.read { db in
            // Fixed SQL fragments; every value is bound.
            var conditions = ["h.userId = ?"]
            var arguments: StatementArguments = [query.userId]
            if let articleId = query.articleId {
                conditions.append("h.articleId = ?")
                arguments += [articleId]
            }
            if let field = query.field {
                conditions.append("h.field = ?")
                arguments += [field.rawValue]
            }
            if let after = query.after {
                conditions.append("h.id > ?")
                arguments += [after]
            }
            arguments += [query.limit]
            return try Row.fetchAll(db, sql: """
                SELECT h.id, user.name, h.articleId, h.field, h.value, h.hlcWall, h.hlcCounter, h.deviceId, h.mutationId,
                    h.clampedWall, h.clampedCounter, h.baseVersion, h.restored, h.outcome, h.rule, h.reason,
                    h.againstValue, h.againstHlcWall, h.againstHlcCounter, h.againstDeviceId, h.againstMutationId,
                    h.version, h.articleDeleted, (SELECT c.id FROM conflict c WHERE c.id = h.conflictId), h.receivedAt
                FROM stateHistory h JOIN user ON user.id = h.userId
                WHERE \(conditions.joined(separator: " AND ")) ORDER BY h.id LIMIT ?
                """, arguments: arguments).map { row in
                try StoredHistoryRow(
                    id: row.decode(atIndex: 0), user: row.decode(atIndex: 1), articleId: row.exactText(2), field: row.decode(atIndex: 3),
                    value: row.decode(atIndex: 4), hlcWall: row.decode(atIndex: 5), hlcCounter: row.decode(atIndex: 6),
                    deviceId: row.exactText(7), mutationId: row.decode(atIndex: 8), clampedWall: row.decode(atIndex: 9),
                    clampedCounter: row.decode(atIndex: 10), baseVersion: row.decode(atIndex: 11), restored: row.decode(atIndex: 12),
                    outcome: row.decode(atIndex: 13), rule: row.decode(atIndex: 14), reason: row.decode(atIndex: 15),
                    againstValue: row.decode(atIndex: 16), againstHlcWall: row.decode(atIndex: 17),
                    againstHlcCounter: row.decode(atIndex: 18), againstDeviceId: row.exactTextIfPresent(19),
                    againstMutationId: row.decode(atIndex: 20), version: row.decode(atIndex: 21),
                    articleDeleted: row.decode(atIndex: 22), conflictId: row.decode(atIndex: 23), receivedAt: row.decode(atIndex: 24)
                ).checked()
            }
        }
    }

    package func devices(userNames: [String]) async throws -> [DeviceSummary] {
        guard !userNames.isEmpty else { return [] }
        // By time, not text: `Timestamp.format` leaves out a zero fraction, so `…:05Z` sorts after `…:05.250Z` as text.
        return try await dbPool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT user.name, device.id, device.firstSeenAt, device.lastSeenAt, device.lastMutationId
                FROM device JOIN user ON user.id = device.userId
                WHERE user.name IN (SELECT value FROM json_each(?))
                ORDER BY user.name, julianday(device.lastSeenAt) DESC, device.id
                """, arguments: [String(decoding: try JSONEncoder().encode(userNames), as: UTF8.self)]).map { row in
                DeviceSummary(userName: try row.decode(atIndex: 0), id: row.exactText(1), firstSeenAt: try row.decode(atIndex: 2),
                              lastSeenAt: try row.decode(atIndex: 3), lastMutationId: try row.decode(atIndex: 4))
            }
        }
    }

    package func recentStates(userId: Int64, limit: Int) async throws -> [RecentState] {
        try await dbPool.read { db in
            // The title by a subquery: the state's columns stay unqualified, as `decodeState` reads them.
            try Row.fetchAll(db, sql: """
                SELECT \(Self.stateColumns), (SELECT title FROM article WHERE article.id = userArticleState.articleId)
                FROM userArticleState WHERE userId = ? ORDER BY seq DESC LIMIT ?
                """, arguments: [userId, limit]).map { row in
                RecentState(state: try Self.decodeState(row).state, title: row.exactTextIfPresent(21))
            }
        }
    }

    package func conflict(id: Int64) async throws -> ConflictDTO? {
        try await dbPool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT \(Self.conflictColumns) FROM conflict JOIN user ON user.id = conflict.userId WHERE conflict.id = ?
                """, arguments: [id]).map { try Self.decodeConflict($0) }
        }
    }

    /// An entry as stored, checked by ``StoredConflict/checked()``.
    private static func decodeConflict(_ row: Row) throws -> ConflictDTO {
        func side(_ base: Int) -> StoredConflictWrite {
            StoredConflictWrite(value: row[base], wall: row[base + 1], counter: row[base + 2],
                                deviceId: row[base + 3], mutationId: row[base + 4])
        }
        return try StoredConflict(
            id: row[0], user: row[1], articleId: row[2], field: row[3], rule: row[4],
            winner: side(5), loser: side(10), baseVersion: row[15], detectedAt: row[16]
        ).checked()
    }
}
