import Foundation
import GRDB
import Logging
import NIOCore
import PostgresNIO
import ReaderSyncPostgres
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// Reads of a store's own rows for the few checks no ``SyncStore`` method can show (what a
/// tombstone keeps, what is stored for a token), each written once per backend.
extension Harness {
    /// The PostgreSQL store's client, for a PostgreSQL-side read.
    private var postgresClient: PostgresClient {
        guard let postgres else { preconditionFailure("a PostgreSQL read ran on \(backend)") }
        return postgres.store.client
    }

    /// The title and body a tombstoned article still holds, concatenated (`""` when purged);
    /// nil when there is no row.
    func rawTombstoneContent(id: String) async throws -> String? {
        switch backend {
        case .sqlite:
            return try await sqlite.dbPool.read { db in
                try String.fetchOne(db, sql: "SELECT coalesce(title, '') || coalesce(body, '') FROM article WHERE id = ?", arguments: [id])
            }
        case .postgres:
            let rows = try await postgresClient.query(
                "SELECT coalesce(title, ''::bytea) || coalesce(body, ''::bytea) FROM article WHERE id = \(id)", logger: Self.rawLogger
            ).collect()
            return try rows.first.map { String(buffer: try $0.decode(ByteBuffer.self)) }
        }
    }

    /// The token hashes stored for users, in user id order.
    func rawUserTokenHashes() async throws -> [Data] {
        switch backend {
        case .sqlite:
            return try await sqlite.dbPool.read { db in try Data.fetchAll(db, sql: "SELECT tokenHash FROM user ORDER BY id") }
        case .postgres:
            return try await postgresClient.query("SELECT token_hash FROM users ORDER BY id", logger: Self.rawLogger)
                .collect().map { try $0.decode(Data.self) }
        }
    }

    /// Everything the database holds, as bytes to search: the SQLite file and its WAL, or every
    /// row of every table of the PostgreSQL database as text (`bytea` as hex).
    func rawDatabaseContents() async throws -> [Data] {
        switch backend {
        case .sqlite:
            let file = try Data(contentsOf: URL(fileURLWithPath: databasePath))
            let wal = (try? Data(contentsOf: URL(fileURLWithPath: databasePath + "-wal"))) ?? Data()
            return [file, wal]
        case .postgres:
            let client = postgresClient
            let tables = try await client.query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", logger: Self.rawLogger
            ).collect().map { try $0.decode(String.self) }
            #expect(tables.contains("users") && tables.contains("meta"))
            var contents: [Data] = []
            for table in tables {
                let quoted = "\"" + table.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                let rows = try await client.query(PostgresQuery(unsafeSQL: "SELECT t::text FROM \(quoted) t"), logger: Self.rawLogger).collect()
                contents.append(Data(try rows.map { try $0.decode(String.self) }.joined(separator: "\n").utf8))
            }
            return contents
        }
    }

    /// Runs `body` on a second store opened (and migrated) on this harness's database: the
    /// SQLite file, or the PostgreSQL database with a pool of its own, closed when `body` returns.
    func withReopenedStore(_ body: (any SyncStore) async throws -> Void) async throws {
        switch backend {
        case .sqlite:
            try await body(try SQLiteSyncStore(path: databasePath))
        case .postgres:
            guard let postgres else { preconditionFailure("no PostgreSQL store") }
            try await PostgresSyncStore.withStore(url: try PostgresDatabaseURL(postgres.url), logger: Self.rawLogger) { try await body($0) }
        }
    }

    private static let rawLogger: Logger = {
        var logger = Logger(label: "test.raw")
        logger.logLevel = .error
        return logger
    }()
}
