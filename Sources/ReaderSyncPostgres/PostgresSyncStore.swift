import Foundation
import Logging
import PostgresNIO
import ReaderSyncCore
import ReaderSyncSchema
import ReaderSyncService

/// The server store on PostgreSQL: many stateless `reader-sync serve` processes on one database.
///
/// Holds a `PostgresClient` connection pool, which runs while the store is used: open it with
/// ``withStore(url:options:logger:feedOrder:_:)``, which runs the pool, migrates, lends the store
/// and closes the pool when the body returns (for `serve`: after HTTP has drained).
///
/// ```swift
/// try await PostgresSyncStore.withStore(url: try PostgresDatabaseURL("postgresql://rs@db/news")) { store in
///     let service = try await SyncService(store: store)
/// }
/// ```
///
/// Guarantees beyond ``SyncStore``'s (docs/ARCHITECTURE.md):
/// - the change feed never skips a change: every row carries the id of the transaction that
///   wrote it, pulls serve only transactions below the snapshot's horizon (the oldest
///   transaction still running that may write this database, ``horizonCTE``) and page by
///   (transaction, sequence);
/// - a push runs in one READ COMMITTED transaction holding the user's advisory lock, so two
///   servers given the same push apply it once;
/// - transactions that fail with a serialization failure, a deadlock or a lost unique-key race
///   are run again, a bounded number of times, with jitter.
package final class PostgresSyncStore: SyncStore {
    package let client: PostgresClient
    package let url: PostgresDatabaseURL
    /// The pool pulls read from: a streaming replica's (hot standby) when one is given, else ``client``.
    let readClient: PostgresClient
    /// The replica pulls read from, or `nil` when they read from the primary.
    package let readURL: PostgresDatabaseURL?
    package let options: PostgresStoreOptions
    let logger: Logger
    /// How pulls order the feed; only the out-of-order-commit test sets anything but the default.
    let feedOrder: FeedOrder
    /// Batches this server's `NOTIFY`s to the others (``announce(_:)``).
    let announcer = ChangeAnnouncer()

    /// How a pull orders and pages the change feed.
    package enum FeedOrder: Sendable {
        /// (transaction, sequence), below the snapshot's horizon: never skips a change.
        case transactionThenSequence
        /// Sequence alone, as on SQLite: skips a change whose transaction took its sequence value
        /// first and committed last. Reachable only from tests, as the negative control.
        case sequenceAloneForTesting
    }

    /// Creates the store; nothing connects until the pool runs and a statement is sent.
    ///
    /// - Parameter readURL: a streaming replica (hot standby) of `url`'s database that pulls
    ///   read from; everything else (pushes, ingest, auth, the epoch) goes to `url`. A pull from a
    ///   replica that lags is an older snapshot: served below the replica's own horizon, so never
    ///   past a change the replica has not replayed (docs/SCALING.md).
    package init(url: PostgresDatabaseURL, readURL: PostgresDatabaseURL? = nil, options: PostgresStoreOptions = .init(),
                 logger: Logger, feedOrder: FeedOrder = .transactionThenSequence) {
        self.url = url
        self.readURL = readURL
        self.options = options
        self.logger = logger
        self.feedOrder = feedOrder
        // The pool's own log at error level only: it warns when a lease comes before run() has
        // started, which withStore's first query can race with harmlessly (the lease waits).
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .error)
        client = PostgresClient(configuration: url.clientConfiguration(options), backgroundLogger: poolLogger)
        readClient = readURL.map { PostgresClient(configuration: $0.clientConfiguration(options), backgroundLogger: poolLogger) } ?? client
    }

    /// Runs the pool (and the replica's, when `readURL` is given), migrates, and lends the store
    /// to `body`; the pools close when it returns.
    ///
    /// - Throws: the error of a first connection made directly, at once, when none can be made
    ///   (refused, unknown database or role, bad password…); ``StoreError`` when `readURL`'s
    ///   database is not a replica of `url`'s (another epoch or cursor secret, or not migrated);
    ///   else what ``migrate()`` or `body` throws.
    package static func withStore<Result: Sendable>(
        url: PostgresDatabaseURL, readURL: PostgresDatabaseURL? = nil, options: PostgresStoreOptions = .init(),
        logger: Logger = Logger(label: "reader-sync.postgres"),
        feedOrder: FeedOrder = .transactionThenSequence,
        _ body: (PostgresSyncStore) async throws -> Result
    ) async throws -> Result {
        // The pool retries a failing connect for about a minute and then says only that its
        // circuit breaker tripped: one direct connection first says at once why it fails.
        if let failure = await url.connectionFailure(logger: logger) { throw failure }
        if let readURL, let failure = await readURL.connectionFailure(logger: logger) {
            throw StoreError("cannot open the read replica \(readURL): \(describe(failure))")
        }
        let store = PostgresSyncStore(url: url, readURL: readURL, options: options, logger: logger, feedOrder: feedOrder)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.client.run() }
            if readURL != nil { group.addTask { await store.readClient.run() } }
            defer { group.cancelAll() }
            try await store.migrate()
            if let readURL {
                try await store.waitForReplica(readURL)
                // Pulls from another database would serve another feed under this one's cursors.
                let primary = try await store.identity()
                let replica: StoreIdentity
                do {
                    replica = try await identity(store.readClient, logger: logger)
                } catch let error as StoreError {
                    throw StoreError("the read database \(readURL) is not a replica of \(url): \(error.description)")
                }
                guard replica == primary else {
                    throw StoreError("the read database \(readURL) is not a replica of \(url): its epoch or cursor secret differs")
                }
            }
            return try await body(store)
        }
    }

    /// Checks that the read database is a streaming replica of the primary (in recovery, the same
    /// system identifier) and waits, at most 30 s, until it has replayed what the primary had
    /// written when called (the migrations just run).
    ///
    /// - Throws: ``StoreError`` when it is not a standby of this primary, or does not catch up in time.
    func waitForReplica(_ readURL: PostgresDatabaseURL) async throws {
        // The primary's insert position, less a page header when it stands just past one: a
        // record that ended on a page boundary is replayed to the boundary, not past the header.
        let position = """
            SELECT CASE WHEN (l - '0/0'::pg_lsn) % 8192 IN (24, 40) THEN l - ((l - '0/0'::pg_lsn) % 8192) ELSE l END::text,
                   \(Self.systemIdentifier)
            FROM pg_current_wal_insert_lsn() AS l
            """
        guard let (lsn, system) = try await query(PostgresQuery(unsafeSQL: position)).first?.decode((String, String?).self) else { return }
        // A copy (pg_restore, a logical replica) has other transaction ids than the primary: its
        // feed order is not the cursors' (docs/SCALING.md).
        let standby = try await readClient.query(
            PostgresQuery(unsafeSQL: "SELECT pg_is_in_recovery(), \(Self.systemIdentifier)"), logger: logger
        ).collect()
        guard let (recovering, replicaSystem) = try standby.first?.decode((Bool, String?).self), recovering,
              system == nil || replicaSystem == nil || replicaSystem == system
        else {
            throw StoreError("the read database \(readURL) is not a streaming replica (hot standby) of \(url)")
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            let rows = try await readClient.query(
                "SELECT coalesce(pg_last_wal_replay_lsn() >= \(lsn)::pg_lsn, false)", logger: logger
            ).collect()
            if try rows.first?.decode(Bool.self) == true { return }
            guard ContinuousClock.now < deadline else {
                throw StoreError("the read replica \(readURL) has not replayed the primary's changes after 30 s; is it streaming from \(url)?")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The cluster's system identifier (the same on its physical standbys), or NULL where this
    /// role may not call `pg_control_system()` (by default superusers and `pg_monitor`).
    static let systemIdentifier = """
        CASE WHEN has_function_privilege('pg_control_system()', 'EXECUTE') THEN (SELECT system_identifier FROM pg_control_system())::text END
        """

    // MARK: Migrations

    /// The advisory lock key migrations hold (a constant no user id takes: user ids are positive).
    static let migrationLockKey: Int64 = -0x5253_4D49_4752 // "RSMIGR"

    /// Creates or upgrades the schema and the database's identity, in one transaction under an
    /// advisory lock, so servers started at once on an empty database do not race: the first
    /// migrates, the others wait and find it done.
    ///
    /// - Throws: `PSQLError` when the database cannot be reached or a migration fails (nothing
    ///   of that migration run is kept); ``StoreError`` when the database holds migrations this
    ///   version does not know (a newer ReaderSync wrote it).
    package func migrate() async throws {
        try await transaction { connection in
            // Read to the end, so an error while waiting for the lock is this statement's.
            _ = try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLockKey))", logger: self.logger).collect()
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    name text COLLATE "C" PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: self.logger)
            var applied: Set<String> = []
            for try await name in try await connection.query("SELECT name FROM schema_migrations", logger: self.logger).decode(String.self) {
                applied.insert(name)
            }
            let known = Set(ReaderSyncSchema.postgresMigrations.map(\.name))
            if let unknown = applied.subtracting(known).sorted().first {
                throw StoreError("the database has migration \(unknown), which this version of reader-sync does not know; run a newer reader-sync")
            }
            for migration in ReaderSyncSchema.postgresMigrations where !applied.contains(migration.name) {
                for statement in Self.statements(of: migration.sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                }
                try await connection.query("INSERT INTO schema_migrations (name) VALUES (\(migration.name))", logger: self.logger)
            }
            for (key, bytes) in [("epoch", 8), ("cursorSecret", 32)] {
                try await connection.query(
                    "INSERT INTO meta (key, value) VALUES (\(key), \(Hex.random(bytes: bytes))) ON CONFLICT (key) DO NOTHING",
                    logger: self.logger)
            }
        }
    }

    /// The statements of a migration file, one by one (the extended query protocol runs one
    /// statement per query): lines starting with `--` are comments, and a statement ends with a
    /// line ending in `;`. Migration files keep to that shape (no `;` inside a statement).
    static func statements(of sql: String) -> [String] {
        var statements: [String] = []
        var current: [Substring] = []
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("--") { continue }
            current.append(line)
            if trimmed.hasSuffix(";") {
                statements.append(current.joined(separator: "\n"))
                current.removeAll()
            }
        }
        if !current.isEmpty { statements.append(current.joined(separator: "\n")) }
        return statements
    }

    // MARK: Transactions

    /// Runs `body` in one transaction (READ COMMITTED, PostgreSQL's default), committing when it
    /// returns and rolling back when it throws. A serialization failure, deadlock or unique-key
    /// race runs the whole transaction again (``PostgresStoreOptions/maxTransactionAttempts``).
    /// A commit whose outcome is unknown (the connection broke) is not retried here: the error
    /// reaches the caller, and a push is safe to send again because of its mutation ids.
    func transaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await client.withConnection { connection in
                    try await connection.query("BEGIN", logger: self.logger)
                    let result: Result
                    do {
                        result = try await body(connection)
                    } catch {
                        _ = try? await connection.query("ROLLBACK", logger: self.logger)
                        // postgres-nio keeps a prepared statement's failed preparation (a lock wait
                        // timed out during a migration, say) as that statement's answer for the
                        // connection's life: a new connection from the pool prepares afresh.
                        if error is PSQLError { try? await connection.close() }
                        throw error
                    }
                    try await connection.query("COMMIT", logger: self.logger)
                    return result
                }
            } catch let error as PSQLError where attempt < options.maxTransactionAttempts && Self.isRetryable(error) {
                logger.debug("transaction retried", metadata: ["attempt": "\(attempt)", "sqlstate": "\(error.serverInfo?[.sqlState] ?? "")"])
                // Jittered, growing back-off so two retrying servers do not collide again.
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...10) * attempt))
                attempt += 1
            }
        }
    }

    /// SQLSTATE 40001 (serialization failure), 40P01 (deadlock), 23505 (unique violation: two
    /// transactions inserted the same new key; the retry sees the winner's row).
    static func isRetryable(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01" || state == "23505"
    }

    /// A one-line explanation of a PostgreSQL error for a person: the server's message and
    /// SQLSTATE, or what failed on the connection. (`PSQLError`'s own description hides both,
    /// so that logs never leak query data.)
    package static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            return "\(message) (SQLSTATE \(error.serverInfo?[.sqlState] ?? "?"))"
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    /// A statement run outside an explicit transaction.
    @discardableResult
    func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await client.query(query, logger: logger).collect()
    }

    // MARK: Identity and credentials

    package func identity() async throws -> StoreIdentity {
        try await Self.identity(client, logger: logger)
    }

    static func identity(_ client: PostgresClient, logger: Logger) async throws -> StoreIdentity {
        var values: [String: String] = [:]
        for try await (key, value) in try await client.query(
            "SELECT key, value FROM meta WHERE key IN ('epoch', 'cursorSecret')", logger: logger
        ).decode((String, String).self) {
            values[key] = value
        }
        // Never defaulted: an empty cursor secret would sign cursors anyone can forge.
        guard let epoch = values["epoch"], !epoch.isEmpty else {
            throw StoreError("the database has no epoch (meta 'epoch'); it is not a migrated ReaderSync database")
        }
        guard let secret = values["cursorSecret"], !secret.isEmpty else {
            throw StoreError("the database has no cursor secret (meta 'cursorSecret'); it is not a migrated ReaderSync database")
        }
        return StoreIdentity(epoch: epoch, cursorSecret: Array(secret.utf8))
    }

    /// Starts a new epoch: every cursor handed out before gets `410 reset_required`, and every
    /// device gives back what the database lacks (`reader-sync reset-epoch`, after a restore).
    /// Servers read the epoch at start: restart them afterwards.
    ///
    /// Also restamps rows whose transaction id is not below this transaction's: `pg_restore` of
    /// a dump taken on a busier cluster brings transaction ids this cluster has not reached, and
    /// pulls serve only rows below the horizon, so those rows would stay unseen until it did.
    /// Every device pulls from the beginning in the new epoch, so their order among themselves
    /// (kept by `seq`) is all that matters.
    package func startNewEpoch() async throws {
        try await transaction { connection in
            for table in ["article", "user_article_state"] {
                try await connection.query(PostgresQuery(unsafeSQL:
                    "UPDATE \(table) SET xid = pg_current_xact_id() WHERE xid >= pg_current_xact_id()"), logger: self.logger)
            }
            try await connection.query("UPDATE meta SET value = \(Hex.random(bytes: 8)) WHERE key = 'epoch'", logger: self.logger)
        }
    }

    /// `oldest_writing_transaction_seconds`: how long the oldest open transaction that holds a
    /// transaction id and may write this database has been open, 0 when none: the backends
    /// pulls do not pass over (``horizonCTE``), so this is how far behind the newest changes
    /// pulls can be (docs/ARCHITECTURE.md, "The change sequence"). Counts every client of the
    /// database, not only ReaderSync's; prepared (two-phase) transactions, which
    /// `pg_stat_activity` does not list, hold pulls back without showing here.
    package func gauges() async throws -> [StoreGauge] {
        let rows = try await query("""
            SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8 FROM pg_stat_activity
            WHERE backend_xid IS NOT NULL AND backend_type <> 'autovacuum worker'
              AND (datid IS NULL OR datid = (SELECT oid FROM pg_database WHERE datname = current_database()))
            """)
        let seconds = try rows.first?.decode(Double.self) ?? 0
        var gauges = [StoreGauge(name: "oldest_writing_transaction", unit: "seconds",
                                 help: "Age of the oldest open transaction that may write this database; pulls wait for it",
                                 value: max(0, seconds))]
        if readURL != nil {
            // 0 when the standby has replayed all it received; else the age of the last
            // transaction it replayed (an idle primary sends nothing, and is not lag).
            let lag = try await readClient.query("""
                SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
                            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8
                """, logger: logger).collect()
            gauges.append(StoreGauge(name: "read_replica_lag", unit: "seconds",
                                     help: "How far the replica pulls read from (--db-read) is behind what it received",
                                     value: max(0, try lag.first?.decode(Double.self) ?? 0)))
        }
        return gauges
    }

    package func adminTokenHash() async throws -> [UInt8]? {
        try await client.withConnection { try await Self.fetchAdminTokenHash($0, logger: self.logger) }
    }

    static func fetchAdminTokenHash(_ connection: PostgresConnection, logger: Logger) async throws -> [UInt8]? {
        for try await text in try await connection.query("SELECT value FROM meta WHERE key = 'adminTokenHash'", logger: logger).decode(String.self) {
            return try Hex.adminTokenHash(stored: text)
        }
        return nil
    }

    package func credentials(tokenHash: [UInt8]) async throws -> (adminTokenHash: [UInt8]?, user: UserRecord?) {
        // One statement, one snapshot: the admin hash and the user holding the token.
        let rows = try await query("""
            SELECT (SELECT value FROM meta WHERE key = 'adminTokenHash'),
                   (SELECT id FROM users WHERE token_hash = \(Data(tokenHash)) AND revoked_at IS NULL),
                   (SELECT name FROM users WHERE token_hash = \(Data(tokenHash)) AND revoked_at IS NULL)
            """)
        guard let row = rows.first else { return (nil, nil) }
        let (adminText, userId, userName) = try row.decode((String?, Int64?, String?).self)
        let admin = try Hex.adminTokenHash(stored: adminText)
        let user = userId.flatMap { id in userName.map { UserRecord(id: id, name: $0) } }
        return (admin, user)
    }

    package func setAdminTokenHash(_ hash: [UInt8]) async throws {
        try await query("""
            INSERT INTO meta (key, value) VALUES ('adminTokenHash', \(Hex.string(hash)))
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
            """)
    }

    // MARK: Users

    package func createUser(name: String, tokenHash: [UInt8], now: String) async throws -> UserRecord {
        let rows = try await query("""
            INSERT INTO users (name, token_hash, created_at) VALUES (\(name), \(Data(tokenHash)), \(try Self.date(now)))
            ON CONFLICT (name) DO NOTHING RETURNING id
            """)
        guard let row = rows.first else { throw SyncError(.alreadyExists, "a user named \(name) already exists") }
        return UserRecord(id: try row.decode(Int64.self), name: name)
    }

    package func user(named name: String) async throws -> UserRecord? {
        guard canBeStoredName(name) else { return nil }
        return try await query("SELECT id FROM users WHERE name = \(name)").first.map { UserRecord(id: try $0.decode(Int64.self), name: name) }
    }

    package func users(_ query: UserQuery) async throws -> [UserSummary] {
        // No stored name holds a NUL, which PostgreSQL's text refuses.
        guard [query.name, query.nameContains].allSatisfy({ $0.map(canBeStoredName) ?? true }) else { return [] }
        // strpos, not LIKE: a search holding `_` or `%` means those characters. LIMIT NULL is none.
        // lower() under "C", as the column's: ASCII only, whatever the database's locale (SQLite's too).
        return try await self.query("""
            SELECT name, created_at, (SELECT count(*) FROM device WHERE device.user_id = users.id), revoked_at
            FROM users WHERE (\(query.name)::text IS NULL OR name = \(query.name))
                AND (\(query.nameContains)::text IS NULL OR strpos(lower(name), lower(\(query.nameContains) COLLATE "C")) > 0)
            ORDER BY name LIMIT \(query.limit.map(Int64.init))
            """).map { row in
            let (name, createdAt, devices, revokedAt) = try row.decode((String, Date, Int64, Date?).self)
            return UserSummary(name: name, createdAt: Timestamp.format(createdAt), devices: Int(devices),
                               revokedAt: revokedAt.map(Timestamp.format))
        }
    }

    package func revokeToken(userName: String, now: String) async throws -> Bool {
        guard canBeStoredName(userName) else { return false }
        // A second revoke keeps the first one's time.
        return try await !query("""
            UPDATE users SET revoked_at = coalesce(revoked_at, \(try Self.date(now))) WHERE name = \(userName) RETURNING id
            """).isEmpty
    }

    package func replaceToken(userName: String, tokenHash: [UInt8]) async throws -> Bool {
        guard canBeStoredName(userName) else { return false }
        return try await !query("UPDATE users SET token_hash = \(Data(tokenHash)), revoked_at = NULL WHERE name = \(userName) RETURNING id").isEmpty
    }

    /// A canonical RFC 3339 text as a `Date` for a `timestamptz` column.
    /// - Throws: ``StoreError`` for text that is not one (a caller's bug: the service passes canonical text).
    static func date(_ text: String) throws -> Date {
        guard let date = Timestamp.parse(text) else { throw StoreError("'\(text)' is not an RFC 3339 date-time") }
        return date
    }
}
