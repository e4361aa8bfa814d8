import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncService
import ReaderSyncSQLite

/// The Google Reader-compatible API's reads (``ItemStore``), on the columns and tables of
/// `m0004_server_reader_api`.
extension SQLiteSyncStore {
    package func sections() async throws -> [Section] {
        try await dbPool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: """
                SELECT id, name FROM section
                WHERE EXISTS (SELECT 1 FROM article WHERE article.section = section.name AND article.deletedAt IS NULL
                              AND article.expiredAt IS NULL)
                ORDER BY id
                """)).map { Section(id: $0[0], name: $0.exactText(1)) }
        }
    }

    package func section(id: Int64) async throws -> Section? {
        try await dbPool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT id, name FROM section WHERE id = ?"), arguments: [id])
                .map { Section(id: $0[0], name: $0.exactText(1)) }
        }
    }

    package func section(named name: String) async throws -> Section? {
        try await dbPool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT id, name FROM section WHERE name = ?"),
                             arguments: [name.exactDatabaseValue])
                .map { Section(id: $0[0], name: $0.exactText(1)) }
        }
    }

    /// The columns of an ``ItemRef``, from `article a` left-joined with the user's `userArticleState s`.
    private static let itemRefColumns = "a.arrivedAt, a.itemId, a.id, coalesce(s.readValue, 0), coalesce(s.bookmarkedValue, 0)"

    private static func itemRef(_ row: Row) -> ItemRef {
        ItemRef(position: ItemPosition(arrivedAt: row[0], itemId: row[1]), articleId: row[2], read: row[3], starred: row[4])
    }

    package func itemRefs(userId: Int64, query: ItemQuery) async throws -> [ItemRef] {
        // Expired articles leave every stream but the user's starred ones (pinned, as in a pull).
        var conditions = ["a.deletedAt IS NULL", "(a.expiredAt IS NULL OR coalesce(s.bookmarkedValue, 0) = 1)"]
        var arguments: StatementArguments = [userId]
        if let section = query.section {
            conditions.append("a.section = ?")
            arguments += [section.exactDatabaseValue]
        }
        for section in query.excludedSections {
            conditions.append("a.section <> ?")
            arguments += [section.exactDatabaseValue]
        }
        if let ids = query.itemIds {
            conditions.append("a.itemId IN (\(databaseQuestionMarks(count: ids.count)))")
            arguments += StatementArguments(ids)
        }
        if let read = query.read {
            conditions.append("coalesce(s.readValue, 0) = ?")
            arguments += [read]
        }
        if let starred = query.starred {
            conditions.append("coalesce(s.bookmarkedValue, 0) = ?")
            arguments += [starred]
        }
        if let since = query.arrivedSince {
            conditions.append("a.arrivedAt >= ?")
            arguments += [since]
        }
        if let before = query.arrivedBefore {
            conditions.append("a.arrivedAt < ?")
            arguments += [before]
        }
        if let after = query.after {
            conditions.append(query.newestFirst ? "(a.arrivedAt, a.itemId) < (?, ?)" : "(a.arrivedAt, a.itemId) > (?, ?)")
            arguments += [after.arrivedAt, after.itemId]
        }
        let direction = query.newestFirst ? "DESC" : "ASC"
        arguments += [query.limit]
        let sql = """
            SELECT \(Self.itemRefColumns)
            FROM article a LEFT JOIN userArticleState s ON s.userId = ? AND s.articleId = a.id
            WHERE \(conditions.joined(separator: " AND "))
            ORDER BY a.arrivedAt \(direction), a.itemId \(direction) LIMIT ?
            """
        let bound = arguments
        return try await dbPool.read { db in
            // Not cached: the statement's text varies with the query (ids, excluded sections).
            try Row.fetchAll(db, sql: sql, arguments: bound).map(Self.itemRef)
        }
    }

    package func items(userId: Int64, ids: [Int64]) async throws -> [Item] {
        guard !ids.isEmpty else { return [] }
        return try await dbPool.read { db in
            // One statement per 500 numbers: far below SQLite's limit of bound parameters.
            var items: [Item] = []
            items.reserveCapacity(ids.count)
            for start in stride(from: 0, to: ids.count, by: 500) {
                let chunk = Array(ids[start..<min(start + 500, ids.count)])
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT \(Self.itemRefColumns), a.section, a.title, a.summary, a.body, a.author, a.url, a.publishedAt, a.updatedAt
                    FROM article a LEFT JOIN userArticleState s ON s.userId = ? AND s.articleId = a.id
                    WHERE a.deletedAt IS NULL AND a.itemId IN (\(databaseQuestionMarks(count: chunk.count)))
                    """, arguments: StatementArguments([userId] + chunk))
                while let row = try rows.next() {
                    let ref = Self.itemRef(row)
                    items.append(Item(ref: ref, article: ArticleContent(
                        id: ref.articleId, section: row.exactText(5), title: row.exactText(6), summary: row.exactText(7),
                        body: row.exactText(8), author: row.exactText(9), url: row.exactText(10),
                        publishedAt: row[11] ?? "", updatedAt: row[12] ?? "")))
                }
            }
            return items
        }
    }

    package func unreadCounts(userId: Int64) async throws -> [UnreadCount] {
        try await dbPool.read { db in
            try Row.fetchAll(db.cachedStatement(sql: """
                SELECT section.id, section.name, count(*), max(a.arrivedAt)
                FROM article a
                JOIN section ON section.name = a.section
                LEFT JOIN userArticleState s ON s.userId = ? AND s.articleId = a.id
                WHERE a.deletedAt IS NULL AND a.expiredAt IS NULL AND coalesce(s.readValue, 0) = 0
                GROUP BY section.id ORDER BY section.id
                """), arguments: [userId]).map {
                UnreadCount(section: Section(id: $0[0], name: $0.exactText(1)), count: $0[2], newestArrival: $0[3])
            }
        }
    }

    // MARK: App passwords

    private static let appPasswordColumns = "p.id, u.id, u.name, p.label, p.passwordHash, p.createdAt"

    private static func appPassword(_ row: Row) -> AppPasswordRecord {
        AppPasswordRecord(id: row[0], user: UserRecord(id: row[1], name: row[2]), label: row[3],
                          passwordHash: [UInt8](row[4] as Data), createdAt: row[5])
    }

    package func createAppPassword(userName: String, label: String, passwordHash: [UInt8], now: String) async throws -> AppPasswordRecord? {
        guard canBeStoredName(userName) else { return nil }
        return try await dbPool.write { db in
            guard let userId = try Int64.fetchOne(db, sql: "SELECT id FROM user WHERE name = ?", arguments: [userName]) else {
                return nil
            }
            try db.execute(sql: "DELETE FROM appPassword WHERE userId = ? AND label = ?", arguments: [userId, label])
            try db.execute(sql: "INSERT INTO appPassword (userId, label, passwordHash, createdAt) VALUES (?, ?, ?, ?)",
                           arguments: [userId, label, Data(passwordHash), now])
            return AppPasswordRecord(id: db.lastInsertedRowID, user: UserRecord(id: userId, name: userName), label: label,
                                     passwordHash: passwordHash, createdAt: now)
        }
    }

    package func revokeAppPassword(userName: String, label: String) async throws -> Bool {
        guard canBeStoredName(userName), canBeStoredName(label) else { return false }
        return try await dbPool.write { db in
            try db.execute(sql: "DELETE FROM appPassword WHERE label = ? AND userId = (SELECT id FROM user WHERE name = ?)",
                           arguments: [label, userName])
            return db.changesCount > 0
        }
    }

    package func appPasswords(userName: String) async throws -> [AppPasswordRecord]? {
        guard canBeStoredName(userName) else { return nil }
        return try await dbPool.read { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM user WHERE name = ?", arguments: [userName]) != nil else { return nil }
            return try Row.fetchAll(db, sql: """
                SELECT \(Self.appPasswordColumns) FROM appPassword p JOIN user u ON u.id = p.userId
                WHERE u.name = ? ORDER BY p.label
                """, arguments: [userName]).map(Self.appPassword)
        }
    }

    package func appPassword(userName: String, passwordHash: [UInt8]) async throws -> AppPasswordRecord? {
        guard canBeStoredName(userName) else { return nil }
        return try await dbPool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: """
                SELECT \(Self.appPasswordColumns) FROM appPassword p JOIN user u ON u.id = p.userId
                WHERE p.passwordHash = ? AND u.name = ? AND u.revokedAt IS NULL
                """), arguments: [Data(passwordHash), userName]).map(Self.appPassword)
        }
    }

    package func appPassword(id: Int64) async throws -> AppPasswordRecord? {
        try await dbPool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: """
                SELECT \(Self.appPasswordColumns) FROM appPassword p JOIN user u ON u.id = p.userId WHERE p.id = ? AND u.revokedAt IS NULL
                """), arguments: [id]).map(Self.appPassword)
        }
    }
}
