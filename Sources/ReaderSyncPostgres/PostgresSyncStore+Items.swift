import Foundation
import PostgresNIO
import ReaderSyncCore
import ReaderSyncService

/// The Google Reader-compatible API's reads (``ItemStore``), on the columns and tables of
/// `m0003_postgres_reader_api`. Lists are read where pulls are (the read replica, when set);
/// app passwords on the primary, where they are written.
extension PostgresSyncStore {
    package func sections() async throws -> [Section] {
        try await readClient.query("""
            SELECT id, name FROM section
            WHERE EXISTS (SELECT 1 FROM article WHERE md5(article.section) = md5(section.name) AND article.section = section.name
                          AND article.deleted_at IS NULL AND article.expired_at IS NULL)
            ORDER BY id
            """, logger: logger).collect().map(Self.decodeSection)
    }

    package func section(id: Int64) async throws -> Section? {
        try await readClient.query("SELECT id, name FROM section WHERE id = \(id)", logger: logger)
            .collect().first.map(Self.decodeSection)
    }

    package func section(named name: String) async throws -> Section? {
        let bytes = ByteBuffer(string: name)
        return try await readClient.query("SELECT id, name FROM section WHERE md5(name) = md5(\(bytes)) AND name = \(bytes)", logger: logger)
            .collect().first.map(Self.decodeSection)
    }

    private static func decodeSection(_ row: PostgresRow) throws -> Section {
        let (id, name) = try row.decode((Int64, ByteBuffer).self)
        return Section(id: id, name: String(buffer: name))
    }

    /// The columns of an ``ItemRef``, from `article a` left-joined with the user's `user_article_state s`.
    private static let itemRefColumns = "a.arrived_at, a.item_id, a.id, coalesce(s.read_value, false), coalesce(s.bookmarked_value, false)"

    private static func itemRef(_ cells: PostgresRandomAccessRow) throws -> ItemRef {
        ItemRef(position: ItemPosition(arrivedAt: try cells[0].decode(Int64.self), itemId: try cells[1].decode(Int64.self)),
                articleId: try cells[2].decode(String.self), read: try cells[3].decode(Bool.self),
                starred: try cells[4].decode(Bool.self))
    }

    package func itemRefs(userId: Int64, query: ItemQuery) async throws -> [ItemRef] {
        var binds = PostgresBindings()
        func bind(_ value: some PostgresNonThrowingEncodable & Sendable) -> String {
            binds.append(value)
            return "$\(binds.count)"
        }
        // Expired articles leave every stream but the user's starred ones (pinned, as in a pull).
        var conditions = ["a.deleted_at IS NULL", "(a.expired_at IS NULL OR coalesce(s.bookmarked_value, false))"]
        let user = bind(userId)
        if let section = query.section {
            let name = bind(ByteBuffer(string: section))
            conditions.append("md5(a.section) = md5(\(name)) AND a.section = \(name)")
        }
        for section in query.excludedSections { conditions.append("a.section <> \(bind(ByteBuffer(string: section)))") }
        if let ids = query.itemIds { conditions.append("a.item_id = ANY(\(bind(ids)))") }
        if let read = query.read { conditions.append("coalesce(s.read_value, false) = \(bind(read))") }
        if let starred = query.starred { conditions.append("coalesce(s.bookmarked_value, false) = \(bind(starred))") }
        if let since = query.arrivedSince { conditions.append("a.arrived_at >= \(bind(since))") }
        if let before = query.arrivedBefore { conditions.append("a.arrived_at < \(bind(before))") }
        if let after = query.after {
            let comparison = query.newestFirst ? "<" : ">"
            conditions.append("(a.arrived_at, a.item_id) \(comparison) (\(bind(after.arrivedAt)), \(bind(after.itemId)))")
        }
        let direction = query.newestFirst ? "DESC" : "ASC"
        let limit = bind(Int64(query.limit))
        let sql = """
            SELECT \(Self.itemRefColumns)
            FROM article a LEFT JOIN user_article_state s ON s.user_id = \(user) AND s.article_id = a.id
            WHERE \(conditions.joined(separator: " AND "))
            ORDER BY a.arrived_at \(direction), a.item_id \(direction) LIMIT \(limit)
            """
        return try await readClient.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
            .collect().map { try Self.itemRef($0.makeRandomAccess()) }
    }

    package func items(userId: Int64, ids: [Int64]) async throws -> [Item] {
        guard !ids.isEmpty else { return [] }
        let rows = try await readClient.query("""
            SELECT \(unescaped: Self.itemRefColumns), a.section, a.title, a.summary, a.body, a.author, a.url, a.published_at, a.updated_at
            FROM article a LEFT JOIN user_article_state s ON s.user_id = \(userId) AND s.article_id = a.id
            WHERE a.deleted_at IS NULL AND a.item_id = ANY(\(ids))
            """, logger: logger).collect()
        return try rows.map { row in
            let cells = row.makeRandomAccess()
            let ref = try Self.itemRef(cells)
            func text(_ index: Int) throws -> String { try cells[index].decode(ByteBuffer?.self).map { String(buffer: $0) } ?? "" }
            func date(_ index: Int) throws -> String { try cells[index].decode(Date?.self).map(Timestamp.format) ?? "" }
            return Item(ref: ref, article: ArticleContent(
                id: ref.articleId, section: try text(5), title: try text(6), summary: try text(7), body: try text(8),
                author: try text(9), url: try text(10), publishedAt: try date(11), updatedAt: try date(12)))
        }
    }

    package func unreadCounts(userId: Int64) async throws -> [UnreadCount] {
        try await readClient.query("""
            SELECT section.id, section.name, count(*), max(a.arrived_at)
            FROM article a
            JOIN section ON section.name = a.section
            LEFT JOIN user_article_state s ON s.user_id = \(userId) AND s.article_id = a.id
            WHERE a.deleted_at IS NULL AND a.expired_at IS NULL AND NOT coalesce(s.read_value, false)
            GROUP BY section.id ORDER BY section.id
            """, logger: logger).collect().map { row in
            let (id, name, count, newest) = try row.decode((Int64, ByteBuffer, Int64, Int64).self)
            return UnreadCount(section: Section(id: id, name: String(buffer: name)), count: Int(count), newestArrival: newest)
        }
    }

    // MARK: App passwords

    private static let appPasswordColumns = "p.id, u.id, u.name, p.label, p.password_hash, p.created_at"

    private static func appPassword(_ row: PostgresRow) throws -> AppPasswordRecord {
        let (id, userId, userName, label, hash, createdAt) = try row.decode((Int64, Int64, String, String, ByteBuffer, Date).self)
        return AppPasswordRecord(id: id, user: UserRecord(id: userId, name: userName), label: label,
                                 passwordHash: Array(buffer: hash), createdAt: Timestamp.format(createdAt))
    }

    package func createAppPassword(userName: String, label: String, passwordHash: [UInt8], now: String) async throws -> AppPasswordRecord? {
        guard canBeStoredName(userName), canBeStoredName(label) else { return nil }
        let createdAt = try Self.date(now)
        return try await transaction { connection in
            let users = try await connection.query("SELECT id FROM users WHERE name = \(userName) FOR UPDATE", logger: self.logger).collect()
            guard let userId = try users.first?.decode(Int64.self) else { return nil }
            try await connection.query("DELETE FROM app_password WHERE user_id = \(userId) AND label = \(label)", logger: self.logger)
            let rows = try await connection.query("""
                INSERT INTO app_password (user_id, label, password_hash, created_at)
                VALUES (\(userId), \(label), \(ByteBuffer(bytes: passwordHash)), \(createdAt)) RETURNING id
                """, logger: self.logger).collect()
            guard let id = try rows.first?.decode(Int64.self) else { throw StoreError("an app password insert returned no id") }
            return AppPasswordRecord(id: id, user: UserRecord(id: userId, name: userName), label: label,
                                     passwordHash: passwordHash, createdAt: Timestamp.format(createdAt))
        }
    }

    package func revokeAppPassword(userName: String, label: String) async throws -> Bool {
        guard canBeStoredName(userName), canBeStoredName(label) else { return false }
        return try await !query("""
            DELETE FROM app_password WHERE label = \(label) AND user_id = (SELECT id FROM users WHERE name = \(userName)) RETURNING id
            """).isEmpty
    }

    package func appPasswords(userName: String) async throws -> [AppPasswordRecord]? {
        guard try await user(named: userName) != nil else { return nil }
        return try await query("""
            SELECT \(unescaped: Self.appPasswordColumns) FROM app_password p JOIN users u ON u.id = p.user_id
            WHERE u.name = \(userName) ORDER BY p.label
            """).map(Self.appPassword)
    }

    package func appPassword(userName: String, passwordHash: [UInt8]) async throws -> AppPasswordRecord? {
        guard canBeStoredName(userName) else { return nil }
        return try await query("""
            SELECT \(unescaped: Self.appPasswordColumns) FROM app_password p JOIN users u ON u.id = p.user_id
            WHERE p.password_hash = \(ByteBuffer(bytes: passwordHash)) AND u.name = \(userName) AND u.revoked_at IS NULL
            """).first.map(Self.appPassword)
    }

    package func appPassword(id: Int64) async throws -> AppPasswordRecord? {
        try await query("""
            SELECT \(unescaped: Self.appPasswordColumns) FROM app_password p JOIN users u ON u.id = p.user_id
            WHERE p.id = \(id) AND u.revoked_at IS NULL
            """).first.map(Self.appPassword)
    }
}
