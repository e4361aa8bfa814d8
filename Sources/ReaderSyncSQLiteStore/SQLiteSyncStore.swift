import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncService
import ReaderSyncSQLite
import ReaderSyncSchema

/// The embedded SQLite store: one file, WAL mode, a `DatabasePool` (concurrent readers, one writer).
///
/// ```swift
/// let store = try SQLiteSyncStore(path: "reader-sync.sqlite")
/// let service = SyncService(store: store)
/// ```
package final class SQLiteSyncStore: SyncStore {
    /// How much a write survives: a process crash (`normal`) or also a power loss (`full`).
    package enum Durability: String, Sendable, CaseIterable {
        case normal
        case full
    }

    package let dbPool: DatabasePool
    package let path: String

    /// Opens (creating if needed) and migrates the database at `path`.
    ///
    /// - Parameter trace: receives the SQL of every statement run (placeholders, no values); for tests.
    /// - Throws: GRDB's `DatabaseError` when the file cannot be opened or migrated.
    package init(path: String, durability: Durability = .normal, trace: (@Sendable (String) -> Void)? = nil) throws {
        var config = Configuration()
        config.foreignKeysEnabled = true
        // Writers from other processes (the CLI while a server runs) wait instead of failing at once.
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: durability == .full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            if let trace { db.trace { trace($0.description) } }
        }
        self.path = path
        dbPool = try DatabasePool(path: path, configuration: config)
        // GRDB sets synchronous = NORMAL on the writer when it turns WAL on, after prepareDatabase:
        // set it again on the one writer connection, the one that commits.
        try dbPool.writeWithoutTransaction { db in
            try db.execute(sql: durability == .full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
        }
        try Self.migrator.migrate(dbPool)
        try dbPool.write { db in try Self.ensureIdentity(db) }
    }

    /// Every migration of `Schema/`, registered under its file name.
    package static var migrator: DatabaseMigrator { ReaderSyncSchema.serverMigrations.migrator }

    private static func ensureIdentity(_ db: Database) throws {
        let insert = "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)"
        try db.execute(sql: insert, arguments: ["epoch", Hex.random(bytes: 8)])
        try db.execute(sql: insert, arguments: ["cursorSecret", Hex.random(bytes: 32)])
    }

    /// Starts a new epoch: every cursor handed out before gets `410 reset_required`.
    package func startNewEpoch() throws {
        try dbPool.write { db in
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'epoch'", arguments: [Hex.random(bytes: 8)])
        }
    }

    package func identity() async throws -> StoreIdentity {
        try await dbPool.read { db in
            // Never defaulted: an empty cursor secret would sign cursors anyone can forge.
            guard let epoch = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'"), !epoch.isEmpty else {
                throw StoreError("the database has no epoch (meta 'epoch'); it is not a migrated ReaderSync database")
            }
            guard let secret = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'cursorSecret'"), !secret.isEmpty else {
                throw StoreError("the database has no cursor secret (meta 'cursorSecret'); it is not a migrated ReaderSync database")
            }
            return StoreIdentity(epoch: epoch, cursorSecret: Array(secret.utf8))
        }
    }

    /// None: a SQLite writer never holds back a pull (one writer, commit order is sequence order).
    package func gauges() async throws -> [StoreGauge] { [] }

    package func adminTokenHash() async throws -> [UInt8]? {
        try await dbPool.read(Self.fetchAdminTokenHash)
    }

    package func credentials(tokenHash: [UInt8]) async throws -> (adminTokenHash: [UInt8]?, user: UserRecord?) {
        try await dbPool.read { db in
            (try Self.fetchAdminTokenHash(db), try Self.fetchUser(db, tokenHash: tokenHash))
        }
    }

    static func fetchAdminTokenHash(_ db: Database) throws -> [UInt8]? {
        try Hex.adminTokenHash(stored: String.fetchOne(db.cachedStatement(sql: "SELECT value FROM meta WHERE key = 'adminTokenHash'")))
    }

    package func setAdminTokenHash(_ hash: [UInt8]) async throws {
        try await dbPool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('adminTokenHash', ?)",
                           arguments: [Hex.string(hash)])
        }
    }
}

/// Hands out the change sequence's next values inside one write transaction.
///
/// Only one writer runs at a time, so reading the counter once and storing it back at the
/// end of the transaction gives every change a unique, increasing value with one UPDATE.
struct SequenceAllocator {
    private(set) var value: Int64
    private let start: Int64

    init(_ db: Database) throws {
        // Never defaulted to 0: a sequence that starts over hands out values devices have passed.
        guard let value = try Int64.fetchOne(db, sql: "SELECT value FROM changeSequence WHERE id = 1") else {
            throw StoreError("the database has no change sequence row; it is not a migrated ReaderSync database")
        }
        self.value = value
        start = value
    }

    mutating func next() -> Int64 {
        value += 1
        return value
    }

    func save(_ db: Database) throws {
        guard value != start else { return }
        try db.execute(sql: "UPDATE changeSequence SET value = ? WHERE id = 1", arguments: [value])
    }
}
