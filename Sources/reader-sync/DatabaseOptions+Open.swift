import ArgumentParser
import Foundation
import Logging
import ReaderSyncCore
import ReaderSyncPostgres
import ReaderSyncSQLiteStore
import ReaderSyncServer
import ReaderSyncService
import Synchronization

/// The shared database locks this process holds until it exits (the kernel releases them then,
/// also on a crash): a command's writes can never land in a file a restore is moving aside.
private let heldLocks = Mutex<[DatabaseFileLock]>([])

/// Where the database is.
enum DatabaseLocation {
    case sqlite(path: String)
    case postgres(PostgresDatabaseURL)
}

extension DatabaseOptions {
    /// A path is SQLite, a `postgresql://` or `postgres://` URL is PostgreSQL.
    ///
    /// - Throws: `ValidationError` for a PostgreSQL URL that cannot be used.
    var location: DatabaseLocation {
        get throws {
            guard PostgresDatabaseURL.isPostgresURL(path) else { return .sqlite(path: path) }
            do {
                return .postgres(try PostgresDatabaseURL(path))
            } catch let error as PostgresURLError {
                throw ValidationError("--db: \(error.description)")
            }
        }
    }

    /// The database as shown in messages: the path, or the URL without its password.
    var shown: String {
        switch try? location {
        case .postgres(let url): url.description
        default: path
        }
    }

    var postgresOptions: PostgresStoreOptions {
        var options = PostgresStoreOptions()
        options.poolSize = poolSize
        options.statementTimeoutMillis = Int(statementTimeout * 1000)
        options.idleInTransactionTimeoutMillis = Int(idleInTransactionTimeout * 1000)
        return options
    }

    /// Opens the store (migrating it) and lends it to `body`.
    ///
    /// On SQLite, holds the database's lock shared (as `serve` does) until the process ends, so
    /// `restore` cannot replace the file under this command. On PostgreSQL, runs the connection
    /// pool for `body`'s duration and closes it after.
    ///
    /// - Parameters:
    ///   - create: whether a missing SQLite file may be created; commands that only read refuse
    ///     to, so a mistyped path does not silently show an empty database.
    ///   - readReplica: on PostgreSQL, a streaming replica that pulls read from (`serve --db-read`).
    /// - Throws: ``CLIError`` when the database is missing (and `create` is false), cannot be
    ///   opened or reached, or is being restored; a ``SyncError`` from `body` as its message.
    func withStore<T: Sendable>(
        create: Bool, durability: SQLiteSyncStore.Durability = .normal, readReplica: PostgresDatabaseURL? = nil,
        logger: Logger = Logger(label: "reader-sync"),
        _ body: (any SyncStore) async throws -> T
    ) async throws -> T {
        do {
            switch try location {
            case .sqlite(let path):
                if !create && !FileManager.default.fileExists(atPath: path) {
                    throw CLIError("no database at \(path); give its path with --db")
                }
                do {
                    let lock = try DatabaseFileLock(databasePath: path, exclusive: false)
                    heldLocks.withLock { $0.append(lock) }
                } catch let error as SQLiteBackupError {
                    throw CLIError(error.description.replacingOccurrences(of: "start the server", with: "run this command again"))
                }
                let store: SQLiteSyncStore
                do {
                    store = try SQLiteSyncStore(path: path, durability: durability)
                } catch {
                    throw CLIError("cannot open the database at \(path): \(error)")
                }
                return try await body(store)
            case .postgres(let url):
                var opened = false
                do {
                    return try await PostgresSyncStore.withStore(url: url, readURL: readReplica, options: postgresOptions, logger: logger) { store in
                        opened = true
                        // What this command committed is announced to the servers' live streams
                        // before the pool closes, also when the command failed part way.
                        do {
                            let result = try await body(store)
                            await store.flushAnnouncements()
                            return result
                        } catch {
                            await store.flushAnnouncements()
                            throw error
                        }
                    }
                } catch where !opened && !(error is SyncError) && !(error is CLIError) {
                    throw CLIError("cannot open the PostgreSQL database at \(url): \(PostgresSyncStore.describe(error))")
                }
            }
        } catch let error as SyncError {
            throw CLIError(error.message)
        }
    }

    /// ``withStore(create:durability:logger:_:)`` with the sync service on the store.
    func withService<T: Sendable>(create: Bool, _ body: (SyncService) async throws -> T) async throws -> T {
        try await withStore(create: create) { store in
            try await body(try await SyncService(store: store))
        }
    }
}
