import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncSQLite

extension SQLiteSyncStore {
    package func ingest(_ items: [IngestItem], now: String) async throws -> IngestReport {
        try await dbPool.write { db in
            var report = IngestReport()
            var sequence = try SequenceAllocator(db)
            let select = try db.cachedStatement(sql: """
                SELECT section, title, summary, body, author, url, publishedAt, updatedAt, version, deletedAt
                FROM article WHERE id = ?
                """)
            let insert = try db.cachedStatement(sql: """
                INSERT INTO article (id, section, title, summary, body, author, url, publishedAt, updatedAt, version, seq, deletedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, NULL)
                """)
            let update = try db.cachedStatement(sql: """
                UPDATE article SET section = ?, title = ?, summary = ?, body = ?, author = ?, url = ?,
                    publishedAt = ?, updatedAt = ?, version = version + 1, seq = ?, deletedAt = NULL
                WHERE id = ?
                """)
            let tombstone = try db.cachedStatement(sql: """
                UPDATE article SET section = NULL, title = NULL, summary = NULL, body = NULL, author = NULL, url = NULL,
                    publishedAt = NULL, updatedAt = NULL, version = version + 1, seq = ?, deletedAt = ?
                WHERE id = ?
                """)
            for item in items {
                switch item {
                case .upsert(let a):
                    let existing = try Row.fetchOne(select, arguments: [a.id])
                    // Article text is bound so that it round-trips exactly (see ExactText).
                    let content: StatementArguments = [
                        a.section.exactDatabaseValue, a.title.exactDatabaseValue, a.summary.exactDatabaseValue,
                        a.body.exactDatabaseValue, a.author.exactDatabaseValue, a.url.exactDatabaseValue,
                        a.publishedAt, a.updatedAt,
                    ]
                    guard let existing else {
                        try insert.execute(arguments: [a.id] + content + [sequence.next()])
                        report.inserted += 1
                        continue
                    }
                    let wasDeleted = existing[9] as String? != nil
                    if !wasDeleted, Self.sameContent(existing, a) {
                        report.unchanged += 1
                        continue
                    }
                    try update.execute(arguments: content + [sequence.next(), a.id])
                    // A new version of a deleted id restores it: new to every device, so counted as inserted.
                    if wasDeleted { report.inserted += 1 } else { report.updated += 1 }
                case .delete(let id):
                    guard let existing = try Row.fetchOne(select, arguments: [id]), existing[9] as String? == nil else {
                        report.unchanged += 1
                        continue
                    }
                    try tombstone.execute(arguments: [sequence.next(), now, id])
                    report.deleted += 1
                }
            }
            try sequence.save(db)
            return report
        }
    }

    /// Whether the stored row holds exactly `a`'s text, byte for byte: a title that changed only
    /// in Unicode normalization (`é` precomposed or not) is a change to store, as `String ==`
    /// would not see it (see ``ExactText``).
    private static func sameContent(_ row: Row, _ a: ArticleContent) -> Bool {
        row.exactTextIfPresent(0).isExactly(a.section) && row.exactTextIfPresent(1).isExactly(a.title)
            && row.exactTextIfPresent(2).isExactly(a.summary) && row.exactTextIfPresent(3).isExactly(a.body)
            && row.exactTextIfPresent(4).isExactly(a.author) && row.exactTextIfPresent(5).isExactly(a.url)
            && (row[6] as String?).isExactly(a.publishedAt) && (row[7] as String?).isExactly(a.updatedAt)
    }

    package func articleExists(id: String) async throws -> Bool {
        try await dbPool.read { db in
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
        try await dbPool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, name FROM user WHERE name = ?", arguments: [name])
                .map { UserRecord(id: $0[0], name: $0[1]) }
        }
    }

    package func users() async throws -> [UserSummary] {
        try await dbPool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT name, createdAt, (SELECT COUNT(*) FROM device WHERE device.userId = user.id), revokedAt
                FROM user ORDER BY name
                """).map { UserSummary(name: $0[0], createdAt: $0[1], devices: $0[2], revokedAt: $0[3]) }
        }
    }

    package func revokeToken(userName: String, now: String) async throws -> Bool {
        try await dbPool.write { db in
            // A second revoke keeps the first one's time.
            try db.execute(sql: "UPDATE user SET revokedAt = coalesce(revokedAt, ?) WHERE name = ?",
                           arguments: [now, userName])
            return db.changesCount > 0
        }
    }

    package func replaceToken(userName: String, tokenHash: [UInt8]) async throws -> Bool {
        try await dbPool.write { db in
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
        try await dbPool.read { db in
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

    package func conflict(id: Int64) async throws -> ConflictDTO? {
        try await dbPool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT \(Self.conflictColumns) FROM conflict JOIN user ON user.id = conflict.userId WHERE conflict.id = ?
                """, arguments: [id]).map { try Self.decodeConflict($0) }
        }
    }

    /// An entry as stored. A row this version cannot read (an unknown rule or field, a value or
    /// side it cannot parse) fails the read: it is never shown as something it is not, nor skipped.
    private static func decodeConflict(_ row: Row) throws -> ConflictDTO {
        let id: Int64 = row[0]
        // Names the entry and what is wrong, never the stored values.
        func unreadable(_ what: String) -> StoreError { StoreError("conflict log entry \(id) is unreadable: \(what)") }
        func write(_ base: Int, _ side: String) throws -> WriteDTO? {
            let text: String? = row[base]
            let wall: Int64? = row[base + 1], counter: Int64? = row[base + 2]
            let deviceId: String? = row[base + 3], mutationId: Int64? = row[base + 4]
            guard let text else {
                guard wall == nil, counter == nil, deviceId == nil, mutationId == nil else { throw unreadable("its \(side) is partly empty") }
                return nil
            }
            guard let value = FieldValue(storedText: text) else { throw unreadable("its \(side)'s value is not a boolean or number") }
            guard let wall, let counter, let deviceId, let mutationId else { throw unreadable("its \(side) is partly empty") }
            return WriteDTO(FieldWrite(value: value, hlc: HLC(wall: wall, counter: counter), deviceId: deviceId, mutationId: mutationId))
        }
        guard let field = StateField(rawValue: row[3]) else { throw unreadable("its field is not one this version knows") }
        guard let rule = ConflictRule(rawValue: row[4]) else { throw unreadable("its rule is not one this version knows") }
        guard let winner = try write(5, "winner") else { throw unreadable("it has no winner") }
        return ConflictDTO(
            id: id, user: row[1], articleId: row[2], field: field, rule: rule,
            winner: winner, loser: try write(10, "loser"), baseVersion: row[15], detectedAt: row[16])
    }
}
