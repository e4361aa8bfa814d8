import Foundation
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
}
