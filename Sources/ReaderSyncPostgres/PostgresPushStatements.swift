import Foundation
import PostgresNIO
import ReaderSyncCore

// The push's statements, prepared once per connection (postgres-nio's `PostgresPreparedStatement`
// keeps them by name): a push is begin, the user's lock, one read, one write and commit, and
// PostgreSQL parses and plans none of them again. Their text is fixed whatever the push holds:
// the rows a push writes travel as one `jsonb` array each, taken apart by `jsonb_to_recordset`
// (postgres-nio cannot bind an array with NULL elements, and an unwritten field is NULL).

/// `pg_advisory_xact_lock(user)`: the push's transaction holds the user's lock until it ends,
/// so its reads are fresh and two servers given the same push apply it once.
struct PushLockStatement: PostgresPreparedStatement {
    static let name = "reader_sync_push_lock_v1"
    static let sql = "SELECT pg_advisory_xact_lock($1)"
    typealias Row = ()

    var userId: Int64

    func makeBindings() throws -> PostgresBindings {
        var binds = PostgresBindings(capacity: 1)
        binds.append(userId)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

/// Everything a push decides on, in one statement after the lock: the device's owner and last
/// mutation id, the named articles (share-locked in id order, so an ingest deleting one waits for
/// the push, or the push sees the delete) and the user's states of those articles.
///
/// Row shape: `device_user_id, device_last_mutation_id, article_id, article_deleted`, then
/// ``PostgresSyncStore/stateColumns`` (NULL when the user has no state for the article). Always
/// at least one row; `article_id` is NULL on the row of a push that names no stored article.
struct PushReadStatement: PostgresPreparedStatement {
    static let name = "reader_sync_push_read_v1"
    static let sql = """
        WITH a AS (
            SELECT id, deleted_at IS NOT NULL AS deleted FROM article WHERE id = ANY($1) ORDER BY id FOR SHARE
        )
        SELECT d.user_id, d.last_mutation_id, a.id, a.deleted, \(PostgresSyncStore.stateColumns)
        FROM (SELECT 1) AS one
        LEFT JOIN device d ON d.id = $2
        LEFT JOIN (a LEFT JOIN user_article_state ON user_article_state.user_id = $3 AND user_article_state.article_id = a.id) ON true
        """
    typealias Row = PostgresRow

    var articleIds: [String]
    var deviceId: String
    var userId: Int64

    func makeBindings() throws -> PostgresBindings {
        var binds = PostgresBindings(capacity: 3)
        binds.append(articleIds)
        binds.append(deviceId)
        binds.append(userId)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { row }
}

/// What a push writes, in one statement: the changed states (each with the next change
/// sequence value and this transaction's id), the conflict log entries (ids in the order given)
/// and the device's last mutation id. A device the push binds is inserted before, by its own
/// statement: an id another user's push bound meanwhile must fail its key, not update.
///
/// Rows returned: `('s', article_id, seq)` per state written, `('c', NULL, id)` per conflict.
struct PushWriteStatement: PostgresPreparedStatement {
    static let name = "reader_sync_push_write_v1"
    static let sql: String = {
        let fieldColumns = StateField.allCases.flatMap { field in
            PostgresSyncStore.cellColumns.map { "\(field.columnPrefix)_\($0.name)" }
        }
        let fieldTypes = StateField.allCases.flatMap { field in
            PostgresSyncStore.cellColumns.map { "\(field.columnPrefix)_\($0.name) \($0.name == "value" ? (field == .progress ? "double precision" : "boolean") : $0.type)" }
        }
        let updates = (["version", "seq", "xid"] + fieldColumns).map { "\($0) = EXCLUDED.\($0)" }
        return """
            WITH s AS (
                INSERT INTO user_article_state (user_id, article_id, version, seq, xid, \(fieldColumns.joined(separator: ", ")))
                SELECT $1, u.article_id, u.version, nextval('change_seq'), pg_current_xact_id(), \(fieldColumns.map { "u.\($0)" }.joined(separator: ", "))
                FROM jsonb_to_recordset($4::jsonb) AS u(article_id text, version bigint, \(fieldTypes.joined(separator: ", ")))
                ON CONFLICT (user_id, article_id) DO UPDATE SET \(updates.joined(separator: ", "))
                RETURNING article_id, seq
            ),
            c AS (
                INSERT INTO conflict (user_id, article_id, field, rule,
                    winner_value, winner_hlc_wall, winner_hlc_counter, winner_device_id, winner_mutation_id,
                    loser_value, loser_hlc_wall, loser_hlc_counter, loser_device_id, loser_mutation_id,
                    base_version, detected_at)
                SELECT $1, c.article_id, c.field, c.rule,
                    c.winner_value, c.winner_hlc_wall, c.winner_hlc_counter, c.winner_device_id, c.winner_mutation_id,
                    c.loser_value, c.loser_hlc_wall, c.loser_hlc_counter, c.loser_device_id, c.loser_mutation_id,
                    c.base_version, $3
                FROM jsonb_to_recordset($5::jsonb) AS c(ord bigint, article_id text, field text, rule text,
                    winner_value text, winner_hlc_wall bigint, winner_hlc_counter bigint, winner_device_id text, winner_mutation_id bigint,
                    loser_value text, loser_hlc_wall bigint, loser_hlc_counter bigint, loser_device_id text, loser_mutation_id bigint,
                    base_version bigint)
                ORDER BY c.ord
                RETURNING id
            ),
            d AS (
                UPDATE device SET last_mutation_id = $6, last_seen_at = $3 WHERE id = $2
            )
            SELECT 's', article_id, seq FROM s
            UNION ALL
            SELECT 'c', NULL, id FROM c
            """
    }()
    typealias Row = (kind: String, articleId: String?, value: Int64)

    var userId: Int64
    var deviceId: String
    var now: Date
    /// A JSON array of ``PushStateRow``.
    var states: String
    /// A JSON array of ``PushConflictRow``.
    var conflicts: String
    var lastMutationId: Int64

    func makeBindings() throws -> PostgresBindings {
        var binds = PostgresBindings(capacity: 6)
        binds.append(userId)
        binds.append(deviceId)
        binds.append(now)
        binds.append(states)
        binds.append(conflicts)
        binds.append(lastMutationId)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode((String, String?, Int64).self)
    }
}

/// The device row of a device's first push.
struct PushBindDeviceStatement: PostgresPreparedStatement {
    static let name = "reader_sync_push_bind_device_v1"
    static let sql = """
        INSERT INTO device (id, user_id, last_mutation_id, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $4)
        """
    typealias Row = ()

    var deviceId: String
    var userId: Int64
    var lastMutationId: Int64
    var now: Date

    func makeBindings() throws -> PostgresBindings {
        var binds = PostgresBindings(capacity: 4)
        binds.append(deviceId)
        binds.append(userId)
        binds.append(lastMutationId)
        binds.append(now)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}

/// One changed state as ``PushWriteStatement`` takes it: keys are the column names; a field
/// never written has no keys (NULL columns).
struct PushStateRow: Encodable {
    var state: UserArticleState

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(state.articleId, forKey: Key("article_id"))
        try container.encode(state.version, forKey: Key("version"))
        for field in StateField.allCases {
            guard let cell = state[field] else { continue }
            let prefix = field.columnPrefix
            switch cell.write.value {
            case .bool(let b): try container.encode(b, forKey: Key("\(prefix)_value"))
            case .number(let d): try container.encode(d, forKey: Key("\(prefix)_value"))
            case .unsupported: break
            }
            try container.encode(cell.write.hlc.wall, forKey: Key("\(prefix)_hlc_wall"))
            try container.encode(cell.write.hlc.counter, forKey: Key("\(prefix)_hlc_counter"))
            try container.encode(cell.write.deviceId, forKey: Key("\(prefix)_device_id"))
            try container.encode(cell.write.mutationId, forKey: Key("\(prefix)_mutation_id"))
            try container.encode(cell.setAtVersion, forKey: Key("\(prefix)_version"))
        }
    }
}

/// One conflict log entry as ``PushWriteStatement`` takes it (keys in snake case, as the
/// columns); `ord` is its place in the plan.
struct PushConflictRow: Encodable {
    var ord: Int
    var articleId: String
    var field: String
    var rule: String
    var winnerValue: String
    var winnerHlcWall: Int64
    var winnerHlcCounter: Int64
    var winnerDeviceId: String
    var winnerMutationId: Int64
    var loserValue: String?
    var loserHlcWall: Int64?
    var loserHlcCounter: Int64?
    var loserDeviceId: String?
    var loserMutationId: Int64?
    var baseVersion: Int64
}
