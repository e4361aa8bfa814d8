import Foundation
import ReaderSyncCore
import ReaderSyncServer
import Synchronization

/// The shared database locks this process holds until it exits (the kernel releases them then,
/// also on a crash): a command's writes can never land in a file a restore is moving aside.
private let heldLocks = Mutex<[DatabaseFileLock]>([])

extension DatabaseOptions {
    /// Opens the store and the service on it, holding the database's lock shared (as `serve` does)
    /// until the process ends, so `restore` cannot replace the file under this command.
    ///
    /// - Parameter create: whether a missing file may be created; commands that only read refuse
    ///   to, so a mistyped path does not silently show an empty database.
    /// - Throws: ``CLIError`` when the database is missing (and `create` is false), cannot be
    ///   opened, or is being restored.
    func openService(create: Bool) async throws -> SyncService {
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
            store = try SQLiteSyncStore(path: path)
        } catch {
            throw CLIError("cannot open the database at \(path): \(error)")
        }
        return try await SyncService(store: store)
    }

    /// Opens the service and runs `body` on it; a ``SyncError`` becomes the CLI's one-line message.
    func withService<T>(create: Bool, _ body: (SyncService) async throws -> T) async throws -> T {
        let service = try await openService(create: create)
        do {
            return try await body(service)
        } catch let error as SyncError {
            throw CLIError(error.message)
        }
    }
}
