import Foundation
import ReaderSyncCore
import ReaderSyncServer

extension DatabaseOptions {
    /// Opens the store and the service on it.
    ///
    /// - Parameter create: whether a missing file may be created; commands that only read refuse
    ///   to, so a mistyped path does not silently show an empty database.
    func openService(create: Bool) async throws -> SyncService {
        if !create && !FileManager.default.fileExists(atPath: path) {
            throw CLIError("no database at \(path); give its path with --db")
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
