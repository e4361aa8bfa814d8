import Foundation
import PostgresNIO
import ReaderSyncCore

// The push's statements, prepared once per connection (postgres-nio's `PostgresPreparedStatement`
// keeps them by name): a push is begin, the user's lock, one read, one write and commit, and
// PostgreSQL parses none of them again (it plans the first runs afresh, then may keep a generic plan). Their text is fixed whatever the push holds:
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
/// the field history entries (each linked to its conflict by that conflict's place in the
/// plan) and the device's last mutation id. A device the push binds is inserted before, by its own
/// statement: an id another user's push bound meanwhile must fail its key, not update.
///
/// Rows returned: `('s', article_id, seq)` per state written, `('c', NULL, id)` per conflict.
struct PushWriteStatement: PostgresPreparedStatement {
    static let name = "reader_sync_push_write_v3"
    static let sql: String = {
        let cells = StateField.allCases.flatMap(PostgresSyncStore.cellColumns)
        let fieldColumns = cells.map(\.name)
        let fieldTypes = cells.map { "\($0.name) \($0.type)" }
        let updates = (["version", "seq", "xid"] + fieldColumns).map { "\($0) = EXCLUDED.\($0)" }
        return """
            WITH s AS (
                INSERT INTO user_article_state (user_id, article_id, version, seq, xid, \(fieldColumns.joined(separator: ", ")))
                SELECT $1, u.article_id, u.version, nextval('change_seq'), pg_current_xact_id(), \(fieldColumns.map { "u.\($0)" }.joined(separator: ", "))
                FROM jsonb_to_recordset($4::jsonb) AS u(ord bigint, article_id text, version bigint, \(fieldTypes.joined(separator: ", ")))
                ORDER BY u.ord
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
            cn AS (
                SELECT id, row_number() OVER (ORDER BY id) - 1 AS ord FROM c
            ),
            h AS (
                INSERT INTO state_history (user_id, article_id, field, value, hlc_wall, hlc_counter, device_id, mutation_id,
                    clamped_wall, clamped_counter, base_version, restored, outcome, rule, reason,
                    against_value, against_hlc_wall, against_hlc_counter, against_device_id, against_mutation_id,
                    version, article_deleted, conflict_id, received_at)
                SELECT $1, h.article_id, h.field, h.value, h.hlc_wall, h.hlc_counter, $2, h.mutation_id,
                    h.clamped_wall, h.clamped_counter, h.base_version, h.restored, h.outcome, h.rule, h.reason,
                    h.against_value, h.against_hlc_wall, h.against_hlc_counter, h.against_device_id, h.against_mutation_id,
                    h.version, h.article_deleted, cn.id, $3
                FROM jsonb_to_recordset($7::jsonb) AS h(ord bigint, article_id text, field text, value text, hlc_wall bigint,
                    hlc_counter bigint, mutation_id bigint, clamped_wall bigint, clamped_counter bigint, base_version bigint,
                    restored boolean, outcome text, rule text, reason text, against_value text, against_hlc_wall bigint,
                    against_hlc_counter bigint, against_device_id text, against_mutation_id bigint, version bigint,
                    article_deleted boolean, conflict_index bigint)
                LEFT JOIN cn ON cn.ord = h.conflict_index
                ORDER BY h.ord
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
    /// The changed states, ``PushRows/states(_:)``.
    var states: String
    /// The conflict log entries, ``PushRows/conflicts(_:)``.
    var conflicts: String
    var lastMutationId: Int64
    /// The field history entries, ``PushRows/history(_:)``.
    var history: String

    func makeBindings() throws -> PostgresBindings {
        var binds = PostgresBindings(capacity: 7)
        binds.append(userId)
        binds.append(deviceId)
        binds.append(now)
        binds.append(states)
        binds.append(conflicts)
        binds.append(lastMutationId)
        binds.append(history)
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

/// The rows ``PushWriteStatement`` takes, as JSON arrays of objects keyed by column name (a NULL
/// column has no key).
///
/// Written by hand rather than with `JSONEncoder`: in S3 on PostgreSQL, encoding these rows with
/// `JSONEncoder` (snake-case keys) took 14–16 % of the server's CPU (perf, docs/PERFORMANCE.md).
/// The values are integers, booleans, finite doubles (as strings, which keep a negative zero and
/// every bit) and ids, escaped as RFC 8259 asks.
enum PushRows {
    /// The changed states: `ord` (the place in the push's change order, which their sequence
    /// values follow), `article_id`, `version`, then each written field's six columns.
    static func states(_ states: [UserArticleState]) -> String {
        var json = JSONRows()
        for (index, state) in states.enumerated() {
            json.beginObject()
            json.add("ord", Int64(index))
            json.add("article_id", state.articleId)
            json.add("version", state.version)
            for field in StateField.allCases {
                guard let cell = state[field] else { continue }
                let prefix = field.columnPrefix
                switch cell.write.value {
                case .bool(let b): json.add("\(prefix)_value", b)
                case .number(let d): json.add("\(prefix)_value", d)
                case .unsupported: break
                }
                json.add("\(prefix)_hlc_wall", cell.write.hlc.wall)
                json.add("\(prefix)_hlc_counter", cell.write.hlc.counter)
                json.add("\(prefix)_device_id", cell.write.deviceId)
                json.add("\(prefix)_mutation_id", cell.write.mutationId)
                json.add("\(prefix)_version", cell.setAtVersion)
            }
            json.endObject()
        }
        return json.finish()
    }

    /// The conflict log entries; `ord` is each one's place in the plan.
    static func conflicts(_ conflicts: [PlannedConflict]) -> String {
        var json = JSONRows()
        for (index, planned) in conflicts.enumerated() {
            let w = planned.conflict.winner
            json.beginObject()
            json.add("ord", Int64(index))
            json.add("article_id", planned.articleId)
            json.add("field", planned.field.rawValue)
            json.add("rule", planned.conflict.rule.rawValue)
            json.add("winner_value", w.value.description)
            json.add("winner_hlc_wall", w.hlc.wall)
            json.add("winner_hlc_counter", w.hlc.counter)
            json.add("winner_device_id", w.deviceId)
            json.add("winner_mutation_id", w.mutationId)
            if let l = planned.conflict.loser {
                json.add("loser_value", l.value.description)
                json.add("loser_hlc_wall", l.hlc.wall)
                json.add("loser_hlc_counter", l.hlc.counter)
                json.add("loser_device_id", l.deviceId)
                json.add("loser_mutation_id", l.mutationId)
            }
            json.add("base_version", planned.baseVersion)
            json.endObject()
        }
        return json.finish()
    }
}

extension PushRows {
    /// The field history entries; `ord` is each one's place in the plan, `conflict_index` the
    /// place of its conflict log entry among the push's.
    static func history(_ entries: [PlannedHistory]) -> String {
        var json = JSONRows()
        for (index, entry) in entries.enumerated() {
            let w = entry.write
            json.beginObject()
            json.add("ord", Int64(index))
            json.add("article_id", entry.articleId)
            json.add("field", entry.field.rawValue)
            json.add("value", w.value.description)
            json.add("hlc_wall", w.hlc.wall)
            json.add("hlc_counter", w.hlc.counter)
            json.add("mutation_id", w.mutationId)
            if let clamped = entry.clampedFrom {
                json.add("clamped_wall", clamped.wall)
                json.add("clamped_counter", clamped.counter)
            }
            json.add("base_version", entry.baseVersion)
            json.add("restored", entry.restored)
            json.add("outcome", entry.outcome.rawValue)
            json.add("rule", entry.rule.rawValue)
            if let reason = entry.reason { json.add("reason", reason) }
            if let a = entry.against {
                json.add("against_value", a.value.description)
                json.add("against_hlc_wall", a.hlc.wall)
                json.add("against_hlc_counter", a.hlc.counter)
                json.add("against_device_id", a.deviceId)
                json.add("against_mutation_id", a.mutationId)
            }
            json.add("version", entry.version)
            json.add("article_deleted", entry.articleDeleted)
            if let conflictIndex = entry.conflictIndex { json.add("conflict_index", Int64(conflictIndex)) }
            json.endObject()
        }
        return json.finish()
    }
}

/// A JSON array of flat objects, built as UTF-8 bytes.
struct JSONRows {
    private var bytes: [UInt8] = [UInt8(ascii: "[")]
    private var first = true

    mutating func beginObject() {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = true
        bytes.append(UInt8(ascii: "{"))
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        first = false
    }

    mutating func add(_ key: String, _ value: Int64) { addKey(key); bytes.append(contentsOf: String(value).utf8) }
    mutating func add(_ key: String, _ value: Bool) { addKey(key); bytes.append(contentsOf: (value ? "true" : "false").utf8) }
    /// A finite double (the push's validation refuses others), as a JSON string holding its
    /// shortest round-trip text: `jsonb` would keep a JSON number as `numeric`, which has no
    /// negative zero; a string goes straight to `float8`'s input, which reads it back exactly.
    mutating func add(_ key: String, _ value: Double) { addKey(key); appendString(value.description) }
    mutating func add(_ key: String, _ value: String) { addKey(key); appendString(value) }

    func finish() -> String { String(decoding: bytes + [UInt8(ascii: "]")], as: UTF8.self) }

    private mutating func addKey(_ key: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        appendString(key)
        bytes.append(UInt8(ascii: ":"))
    }

    /// A JSON string: `"` and `\` escaped, control characters as `\u00XX`, the rest as UTF-8.
    private mutating func appendString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
