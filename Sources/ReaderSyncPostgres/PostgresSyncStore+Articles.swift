import Foundation
import PostgresNIO
import ReaderSyncCore
import ReaderSyncService

extension PostgresSyncStore {
    /// Applies a batch in one transaction. The batch's existing articles are locked in id order
    /// (`FOR UPDATE`), so a racing push waits and then sees a delete, and two ingests never
    /// deadlock; each line is classified as on SQLite (``IngestEffect``), then every written
    /// article is stored by one multi-row upsert with a new sequence value.
    package func ingest(_ items: [IngestItem], now clock: @escaping @Sendable () -> String) async throws -> IngestReport {
        // An id holding NUL is never stored (see ``canBeStoredName(_:)``): deleting one is unchanged, as on SQLite.
        let ids = Array(Set(items.map { $0.articleId.exact })).sorted().map(\.string).filter(canBeStoredName)
        return try await transaction { connection in
            var stored: [ExactText: StoredArticle] = [:]
            // The section each article is in before the batch (a tombstone's too): followers of it
            // that had the article drop it if the batch moves it elsewhere.
            var sectionBefore: [ExactText: String] = [:]
            let rows = try await connection.query("""
                SELECT id, section, title, summary, body, author, url, published_at, updated_at, deleted_at IS NOT NULL
                FROM article WHERE id = ANY(\(ids)) ORDER BY id FOR UPDATE
                """, logger: self.logger)
            for try await row in rows {
                let cells = row.makeRandomAccess()
                let id = try cells[0].decode(String.self)
                sectionBefore[id.exact] = try cells[1].decode(ByteBuffer?.self).map { String(buffer: $0) }
                if try cells[9].decode(Bool.self) {
                    stored[id.exact] = .tombstoned
                    continue
                }
                func text(_ i: Int) throws -> String { try cells[i].decode(ByteBuffer?.self).map { String(buffer: $0) } ?? "" }
                func date(_ i: Int) throws -> String { try cells[i].decode(Date?.self).map(Timestamp.format) ?? "" }
                stored[id.exact] = .live(ArticleContent(
                    id: id, section: try text(1), title: try text(2), summary: try text(3), body: try text(4),
                    author: try text(5), url: try text(6), publishedAt: try date(7), updatedAt: try date(8)))
            }

            // Each line against what the lines before it left, as SQLite applies them one by one;
            // an id written twice in a batch is stored once, as its last write, its version
            // growing by the number of writes.
            var report = IngestReport()
            var retentionBound: String?
            for try await days in try await connection.query(
                "SELECT value::int FROM meta WHERE key = 'retentionDays'", logger: self.logger
            ).decode(Int.self) {
                retentionBound = Timestamp.secondBound(try Self.date(clock()).addingTimeInterval(-Double(days) * 86_400))
            }
            // Each write takes the next sequence value, as on SQLite, and an article keeps its
            // last write's: a pull serves the batch in the order it was written, and the values
            // are SQLite's when nothing else writes meanwhile.
            var written: [ExactText: (item: IngestItem, writes: Int64, firstWrite: Int, lastWrite: Int)] = [:]
            var writeCount = 0
            for item in items {
                let id = item.articleId.exact
                let effect = IngestEffect(item, stored: stored[id], retentionBound: retentionBound)
                report.count(effect)
                guard effect.writes else { continue }
                switch item {
                case .upsert(let content): stored[id] = .live(content)
                case .delete: stored[id] = .tombstoned
                }
                written[id, default: (item, 0, writeCount, writeCount)].writes += 1
                written[id]?.item = item
                written[id]?.lastWrite = writeCount
                writeCount += 1
            }
            guard !written.isEmpty else { return report }
            // Read holding the batch's row locks, and again on a retry: as close to the commit as
            // the transaction can tell.
            let now = clock()
            let nowDate = try Self.date(now)
            let arrivedAt = try ArrivalTime.micros(now)

            // The rows are written in id order, the order the locks above were taken in.
            let order = written.keys.sorted()
            let seqs = try await Self.nextValues(connection, sequence: "change_seq", count: writeCount, logger: self.logger)
            // At most `upsertRows` rows a statement: a statement takes at most 65,535 parameters.
            var start = 0
            while start < order.count {
                let chunk = order[start..<min(start + Self.upsertRows, order.count)]
                start = chunk.endIndex
                var binds = PostgresBindings(capacity: chunk.count * 14)
                var values: [String] = []
                for id in chunk {
                    guard let (item, writes, firstWrite, lastWrite) = written[id] else { continue }
                    let base = binds.count
                    values.append("(" + (1...14).map { "$\(base + $0)" }.joined(separator: ", ") + ")")
                    binds.append(id.string)
                    switch item {
                    case .upsert(let a):
                        for text in [a.section, a.title, a.summary, a.body, a.author, a.url] {
                            binds.append(ByteBuffer(string: text))
                        }
                        binds.append(try Self.date(a.publishedAt))
                        binds.append(try Self.date(a.updatedAt))
                        binds.appendNull()
                    case .delete:
                        for _ in 0..<8 { binds.appendNull() }
                        binds.append(nowDate)
                    }
                    binds.append(writes)
                    binds.append(seqs[lastWrite])
                    // A new article's item number is the sequence value of its first write, as on
                    // SQLite (m0003_postgres_reader_api); an existing one keeps both below.
                    binds.append(seqs[firstWrite])
                    binds.append(arrivedAt)
                }
                try await connection.query(PostgresQuery(unsafeSQL: """
                    INSERT INTO article (id, section, title, summary, body, author, url, published_at, updated_at, deleted_at, version, seq,
                        item_id, arrived_at)
                    VALUES \(values.joined(separator: ", "))
                    ON CONFLICT (id) DO UPDATE SET section = coalesce(EXCLUDED.section, article.section), title = EXCLUDED.title,
                        summary = EXCLUDED.summary,
                        body = EXCLUDED.body, author = EXCLUDED.author, url = EXCLUDED.url, published_at = EXCLUDED.published_at,
                        updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, expired_at = NULL,
                        version = article.version + EXCLUDED.version, seq = EXCLUDED.seq, xid = pg_current_xact_id(),
                        arrived_at = CASE WHEN article.deleted_at IS NOT NULL AND EXCLUDED.deleted_at IS NULL
                            THEN EXCLUDED.arrived_at ELSE article.arrived_at END
                    """, binds: binds), logger: self.logger)
            }
            // A tombstone keeps its section (above); an article moved or restored to another
            // section leaves the one it was in (one row of section_exit, at the batch's last write).
            for id in order {
                guard let (item, _, _, lastWrite) = written[id], case .upsert(let article) = item,
                      let before = sectionBefore[id], !before.isExactly(article.section) else { continue }
                try await connection.query("""
                    INSERT INTO section_exit (section, article_id, seq) VALUES (\(ByteBuffer(string: before)), \(id.string), \(seqs[lastWrite]))
                    ON CONFLICT (md5(section), article_id) DO UPDATE SET section = EXCLUDED.section, seq = EXCLUDED.seq,
                        xid = pg_current_xact_id()
                    """, logger: self.logger)
                let after = ByteBuffer(string: article.section)
                try await connection.query("""
                    DELETE FROM section_exit WHERE md5(section) = md5(\(after)) AND section = \(after) AND article_id = \(id.string)
                    """, logger: self.logger)
            }
            try await self.addSections(of: items, connection: connection)
            return report
        }
    }

    /// Numbers the sections the batch's articles are in that have none yet, in the ingest's
    /// transaction, in order of first appearance as on SQLite. (Two ingests adding the same two
    /// new names in opposite orders at once can deadlock; the loser is retried, ``transaction(_:)``.)
    private func addSections(of items: [IngestItem], connection: PostgresConnection) async throws {
        var seen = Set<ExactText>()
        var names: [ExactText] = []
        for case .upsert(let article) in items where seen.insert(article.section.exact).inserted { names.append(article.section.exact) }
        guard !names.isEmpty else { return }
        var binds = PostgresBindings(capacity: names.count)
        var values: [String] = []
        for name in names {
            binds.append(ByteBuffer(string: name.string))
            values.append("($\(binds.count)::bytea, \(values.count))")
        }
        // Only names not numbered yet take a number: an insert that meets a conflict would still
        // use one up, and every batch would leave gaps between sections' numbers.
        try await connection.query(PostgresQuery(unsafeSQL: """
            INSERT INTO section (name)
            SELECT v.name FROM (VALUES \(values.joined(separator: ", "))) AS v (name, position)
            WHERE NOT EXISTS (SELECT 1 FROM section WHERE md5(section.name) = md5(v.name) AND section.name = v.name)
            ORDER BY v.position
            ON CONFLICT DO NOTHING
            """, binds: binds), logger: logger)
    }

    /// Rows of one upsert statement (14 parameters each, well under PostgreSQL's 65,535).
    static let upsertRows = 1_000

    package func articleExists(id: String) async throws -> Bool {
        guard canBeStoredName(id) else { return false }
        return try await !query("SELECT 1 FROM article WHERE id = \(id)").isEmpty
    }

    // MARK: Conflict log

    static let conflictColumns = """
        conflict.id, users.name, article_id, field, rule,
        winner_value, winner_hlc_wall, winner_hlc_counter, winner_device_id, winner_mutation_id,
        loser_value, loser_hlc_wall, loser_hlc_counter, loser_device_id, loser_mutation_id,
        base_version, detected_at
        """

    package func conflicts(_ query: ConflictQuery) async throws -> [ConflictDTO] {
        // Fixed SQL fragments; every value is bound.
        var conditions: [String] = []
        var binds = PostgresBindings()
        if let userId = query.userId {
            binds.append(userId)
            conditions.append("conflict.user_id = $\(binds.count)")
        }
        if let articleId = query.articleId {
            guard canBeStoredName(articleId) else { return [] }
            binds.append(articleId)
            conditions.append("conflict.article_id = $\(binds.count)")
        }
        if let before = query.before {
            binds.append(before)
            conditions.append("conflict.id < $\(binds.count)")
        }
        if !query.rules.isEmpty {
            binds.append(query.rules.map(\.rawValue).sorted())
            conditions.append("conflict.rule = ANY($\(binds.count))")
        }
        binds.append(query.limit)
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        return try await self.query(PostgresQuery(unsafeSQL: """
            SELECT \(Self.conflictColumns) FROM conflict JOIN users ON users.id = conflict.user_id
            \(whereClause) ORDER BY conflict.id DESC LIMIT $\(binds.count)
            """, binds: binds)).map { try Self.decodeConflict($0) }
    }

    package func history(_ query: HistoryQuery) async throws -> [HistoryEntry] {
        // Fixed SQL fragments; every value is bound.
        var binds = PostgresBindings()
        binds.append(query.userId)
        var conditions = ["h.user_id = $1"]
        if let articleId = query.articleId {
            guard canBeStoredName(articleId) else { return [] }
            binds.append(articleId)
            conditions.append("h.article_id = $\(binds.count)")
        }
        if let field = query.field {
            binds.append(field.rawValue)
            conditions.append("h.field = $\(binds.count)")
        }
        if let after = query.after {
            binds.append(after)
            conditions.append("h.id > $\(binds.count)")
        }
        binds.append(query.limit)
        return try await self.query(PostgresQuery(unsafeSQL: """
            SELECT h.id, users.name, h.article_id, h.field, h.value, h.hlc_wall, h.hlc_counter, h.device_id, h.mutation_id,
                h.clamped_wall, h.clamped_counter, h.base_version, h.restored, h.outcome, h.rule, h.reason,
                h.against_value, h.against_hlc_wall, h.against_hlc_counter, h.against_device_id, h.against_mutation_id,
                h.version, h.article_deleted, (SELECT c.id FROM conflict c WHERE c.id = h.conflict_id), h.received_at
            FROM state_history h JOIN users ON users.id = h.user_id
            WHERE \(conditions.joined(separator: " AND ")) ORDER BY h.id LIMIT $\(binds.count)
            """, binds: binds)).map { row in
            let c = row.makeRandomAccess()
            return try StoredHistoryRow(
                id: c[0].decode(Int64.self), user: c[1].decode(String.self), articleId: c[2].decode(String.self),
                field: c[3].decode(String.self), value: c[4].decode(String.self), hlcWall: c[5].decode(Int64.self),
                hlcCounter: c[6].decode(Int64.self), deviceId: c[7].decode(String.self), mutationId: c[8].decode(Int64.self),
                clampedWall: c[9].decode(Int64?.self), clampedCounter: c[10].decode(Int64?.self), baseVersion: c[11].decode(Int64.self),
                restored: c[12].decode(Bool.self), outcome: c[13].decode(String.self), rule: c[14].decode(String.self),
                reason: c[15].decode(String?.self), againstValue: c[16].decode(String?.self), againstHlcWall: c[17].decode(Int64?.self),
                againstHlcCounter: c[18].decode(Int64?.self), againstDeviceId: c[19].decode(String?.self),
                againstMutationId: c[20].decode(Int64?.self), version: c[21].decode(Int64.self), articleDeleted: c[22].decode(Bool.self),
                conflictId: c[23].decode(Int64?.self), receivedAt: Timestamp.format(c[24].decode(Date.self))
            ).checked()
        }
    }

    package func devices(userNames: [String]) async throws -> [DeviceSummary] {
        guard !userNames.isEmpty else { return [] }
        return try await query("""
            SELECT users.name, device.id, device.first_seen_at, device.last_seen_at, device.last_mutation_id
            FROM device JOIN users ON users.id = device.user_id
            WHERE users.name = ANY(\(userNames))
            ORDER BY users.name, device.last_seen_at DESC, device.id
            """).map { row in
            let (name, id, first, last, mutationId) = try row.decode((String, String, Date, Date, Int64).self)
            return DeviceSummary(userName: name, id: id, firstSeenAt: Timestamp.format(first),
                                 lastSeenAt: Timestamp.format(last), lastMutationId: mutationId)
        }
    }

    package func recentStates(userId: Int64, limit: Int) async throws -> [RecentState] {
        // Newest first in feed order (transaction, then sequence), through the feed index.
        try await query("""
            SELECT \(unescaped: Self.stateColumns), (SELECT title FROM article WHERE article.id = user_article_state.article_id)
            FROM user_article_state WHERE user_id = \(userId) ORDER BY xid DESC, seq DESC LIMIT \(limit)
            """).map { row in
            let cells = row.makeRandomAccess()
            let (state, _) = try Self.decodeState(cells)
            return RecentState(state: state, title: try cells[22].decode(ByteBuffer?.self).map { String(buffer: $0) })
        }
    }

    package func conflict(id: Int64) async throws -> ConflictDTO? {
        try await query("""
            SELECT \(unescaped: Self.conflictColumns) FROM conflict JOIN users ON users.id = conflict.user_id WHERE conflict.id = \(id)
            """).first.map { try Self.decodeConflict($0) }
    }

    /// An entry as stored, checked by ``StoredConflict/checked()``.
    static func decodeConflict(_ row: PostgresRow) throws -> ConflictDTO {
        let cells = row.makeRandomAccess()
        func side(_ base: Int) throws -> StoredConflictWrite {
            StoredConflictWrite(
                value: try cells[base].decode(String?.self), wall: try cells[base + 1].decode(Int64?.self),
                counter: try cells[base + 2].decode(Int64?.self), deviceId: try cells[base + 3].decode(String?.self),
                mutationId: try cells[base + 4].decode(Int64?.self))
        }
        return try StoredConflict(
            id: try cells[0].decode(Int64.self), user: try cells[1].decode(String.self),
            articleId: try cells[2].decode(String.self), field: try cells[3].decode(String.self),
            rule: try cells[4].decode(String.self), winner: try side(5), loser: try side(10),
            baseVersion: try cells[15].decode(Int64.self), detectedAt: Timestamp.format(try cells[16].decode(Date.self))
        ).checked()
    }
}
