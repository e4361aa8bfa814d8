import Foundation
import PostgresNIO
import ReaderSyncCore
import ReaderSyncService

// The push's statements, prepared once per connection (postgres-nio's `PostgresPreparedStatement`
// keeps them by name): a push is begin, the user's lock, one read, one write and commit, and
// PostgreSQL parses none of them again (it plans the first runs afresh, then may keep a generic
// plan). Their text is fixed whatever the push holds: the rows a push writes travel as one
// binary array per column (``ColumnArray``), taken apart by `unnest`. They travelled as `jsonb`
// until parsing it proved a third of the field history's cost (docs/PERFORMANCE.md).

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
/// Parameters: `$1` user id, `$2` device id, `$3` the server's time, `$4` the device's last
/// mutation id, then the columns of ``StateRows``, ``ConflictRows`` and ``HistoryRows``, each
/// column one array. Rows returned: `('s', article_id, seq)` per state written, `('c', NULL, id)`
/// per conflict.
struct PushWriteStatement: PostgresPreparedStatement {
    static let name = "reader_sync_push_write_v4"
    static let sql: String = {
        let fieldColumns = CellColumns.allNames
        let updates = (["version", "seq", "xid"] + fieldColumns).map { "\($0) = EXCLUDED.\($0)" }
        let conflictsFrom = 5 + StateRows().columns.count
        let historyFrom = conflictsFrom + ConflictRows().columns.count
        return """
            WITH s AS (
                INSERT INTO user_article_state (user_id, article_id, version, seq, xid, \(fieldColumns.joined(separator: ", ")))
                SELECT $1, u.article_id, u.version, nextval('change_seq'), pg_current_xact_id(), \(fieldColumns.map { "u.\($0)" }.joined(separator: ", "))
                FROM \(StateRows.unnest(as: "u", from: 5))
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
                FROM \(ConflictRows.unnest(as: "c", from: conflictsFrom))
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
                FROM \(HistoryRows.unnest(as: "h", from: historyFrom))
                LEFT JOIN cn ON cn.ord = h.conflict_index
                ORDER BY h.ord
            ),
            d AS (
                UPDATE device SET last_mutation_id = $4, last_seen_at = $3 WHERE id = $2
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
    var lastMutationId: Int64
    var states: StateRows
    var conflicts: ConflictRows
    var history: HistoryRows

    func makeBindings() throws -> PostgresBindings {
        let columns = states.columns + conflicts.columns + history.columns
        var binds = PostgresBindings(capacity: 4 + columns.count)
        binds.append(userId)
        binds.append(deviceId)
        binds.append(now)
        binds.append(lastMutationId)
        for column in columns { binds.append(column) }
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

/// The changed states ``PushWriteStatement`` writes, in the push's change order (which their
/// sequence values follow): `article_id`, `version`, then each field's ``CellColumns``.
struct StateRows: ColumnRows {
    var articleId = ColumnArray("article_id", of: String.self)
    var version = ColumnArray("version", of: Int64.self)
    var cells = StateField.allCases.map(CellColumns.init)
    var columns: [ColumnArray] { [articleId, version] + cells.flatMap(\.columns) }

    init() {}

    /// - Throws: ``StoreError`` for a field value of another type than the field's (the push's
    ///   validation refuses those; stored, it would make the state unreadable).
    init(_ states: [UserArticleState]) throws {
        for state in states {
            articleId.append(state.articleId)
            version.append(state.version)
            for index in cells.indices { try cells[index].append(state[cells[index].field]) }
        }
    }
}

/// One field's six columns in `user_article_state`: `<field>_value` (`boolean`, or
/// `double precision` for progress), `_hlc_wall`, `_hlc_counter`, `_device_id`, `_mutation_id`, `_version`; all NULL where
/// the field was never written. Also the order ``PostgresSyncStore/decodeState(_:offset:)`` reads
/// them in.
struct CellColumns {
    let field: StateField
    var value: ColumnArray
    var hlcWall: ColumnArray
    var hlcCounter: ColumnArray
    var deviceId: ColumnArray
    var mutationId: ColumnArray
    var version: ColumnArray
    var columns: [ColumnArray] { [value, hlcWall, hlcCounter, deviceId, mutationId, version] }
    /// Every field's column names, fields in ``StateField/allCases`` order.
    static let allNames = StateField.allCases.flatMap { CellColumns($0).columns.map(\.name) }

    init(_ field: StateField) {
        let prefix = field.columnPrefix
        self.field = field
        value = field == .progress ? ColumnArray("\(prefix)_value", of: Double.self) : ColumnArray("\(prefix)_value", of: Bool.self)
        hlcWall = ColumnArray("\(prefix)_hlc_wall", of: Int64.self)
        hlcCounter = ColumnArray("\(prefix)_hlc_counter", of: Int64.self)
        deviceId = ColumnArray("\(prefix)_device_id", of: String.self)
        mutationId = ColumnArray("\(prefix)_mutation_id", of: Int64.self)
        version = ColumnArray("\(prefix)_version", of: Int64.self)
    }

    mutating func append(_ cell: FieldCell?) throws {
        switch (cell?.write.value, field) {
        case (nil, .progress): value.append(Double?.none)
        case (nil, _): value.append(Bool?.none)
        case (.number(let number)?, .progress): value.append(number)
        case (.bool(let flag)?, .read), (.bool(let flag)?, .bookmarked): value.append(flag)
        case (_?, _): throw StoreError("a \(field.rawValue) value of another type in the push's states")
        }
        hlcWall.append(cell?.write.hlc.wall)
        hlcCounter.append(cell?.write.hlc.counter)
        deviceId.append(cell?.write.deviceId)
        mutationId.append(cell?.write.mutationId)
        version.append(cell?.setAtVersion)
    }
}

/// The conflict log entries ``PushWriteStatement`` writes, in the plan's order; the `loser_`
/// columns are NULL for a rejected write's entry, which has no loser.
struct ConflictRows: ColumnRows {
    var articleId = ColumnArray("article_id", of: String.self)
    var field = ColumnArray("field", of: String.self)
    var rule = ColumnArray("rule", of: String.self)
    var winner = WriteColumns("winner")
    var loser = WriteColumns("loser")
    var baseVersion = ColumnArray("base_version", of: Int64.self)
    var columns: [ColumnArray] { [articleId, field, rule] + winner.columns + loser.columns + [baseVersion] }

    init() {}

    init(_ conflicts: [PlannedConflict]) {
        for planned in conflicts {
            articleId.append(planned.articleId)
            field.append(planned.field.rawValue)
            rule.append(planned.conflict.rule.rawValue)
            winner.append(planned.conflict.winner)
            loser.append(planned.conflict.loser)
            baseVersion.append(planned.baseVersion)
        }
    }
}

/// The field history entries ``PushWriteStatement`` writes, in the plan's order;
/// `conflict_index` is the place of an entry's conflict log entry among the push's.
struct HistoryRows: ColumnRows {
    var articleId = ColumnArray("article_id", of: String.self)
    var field = ColumnArray("field", of: String.self)
    var value = ColumnArray("value", of: String.self)
    var hlcWall = ColumnArray("hlc_wall", of: Int64.self)
    var hlcCounter = ColumnArray("hlc_counter", of: Int64.self)
    var mutationId = ColumnArray("mutation_id", of: Int64.self)
    var clampedWall = ColumnArray("clamped_wall", of: Int64.self)
    var clampedCounter = ColumnArray("clamped_counter", of: Int64.self)
    var baseVersion = ColumnArray("base_version", of: Int64.self)
    var restored = ColumnArray("restored", of: Bool.self)
    var outcome = ColumnArray("outcome", of: String.self)
    var rule = ColumnArray("rule", of: String.self)
    var reason = ColumnArray("reason", of: String.self)
    var against = WriteColumns("against")
    var version = ColumnArray("version", of: Int64.self)
    var articleDeleted = ColumnArray("article_deleted", of: Bool.self)
    var conflictIndex = ColumnArray("conflict_index", of: Int64.self)
    var columns: [ColumnArray] {
        [articleId, field, value, hlcWall, hlcCounter, mutationId, clampedWall, clampedCounter, baseVersion, restored,
         outcome, rule, reason] + against.columns + [version, articleDeleted, conflictIndex]
    }

    init() {}

    init(_ entries: [PlannedHistory]) {
        for entry in entries {
            articleId.append(entry.articleId)
            field.append(entry.field.rawValue)
            value.append(entry.write.value.description)
            hlcWall.append(entry.write.hlc.wall)
            hlcCounter.append(entry.write.hlc.counter)
            mutationId.append(entry.write.mutationId)
            clampedWall.append(entry.clampedFrom?.wall)
            clampedCounter.append(entry.clampedFrom?.counter)
            baseVersion.append(entry.baseVersion)
            restored.append(entry.restored)
            outcome.append(entry.outcome.rawValue)
            rule.append(entry.rule.rawValue)
            reason.append(entry.reason)
            against.append(entry.against)
            version.append(entry.version)
            articleDeleted.append(entry.articleDeleted)
            conflictIndex.append(entry.conflictIndex.map(Int64.init))
        }
    }
}

/// A write's five columns, `<prefix>_value` (as text), `_hlc_wall`, `_hlc_counter`,
/// `_device_id`, `_mutation_id`: all NULL where there is no write.
struct WriteColumns {
    var value: ColumnArray
    var hlcWall: ColumnArray
    var hlcCounter: ColumnArray
    var deviceId: ColumnArray
    var mutationId: ColumnArray
    var columns: [ColumnArray] { [value, hlcWall, hlcCounter, deviceId, mutationId] }

    init(_ prefix: String) {
        value = ColumnArray("\(prefix)_value", of: String.self)
        hlcWall = ColumnArray("\(prefix)_hlc_wall", of: Int64.self)
        hlcCounter = ColumnArray("\(prefix)_hlc_counter", of: Int64.self)
        deviceId = ColumnArray("\(prefix)_device_id", of: String.self)
        mutationId = ColumnArray("\(prefix)_mutation_id", of: Int64.self)
    }

    mutating func append(_ write: FieldWrite?) {
        value.append(write?.value.description)
        hlcWall.append(write?.hlc.wall)
        hlcCounter.append(write?.hlc.counter)
        deviceId.append(write?.deviceId)
        mutationId.append(write?.mutationId)
    }
}
