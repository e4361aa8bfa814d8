import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Online backups of the server database, and installing one under a new epoch.
///
/// ```swift
/// let summary = try SQLiteBackup.backup(databasePath: "reader-sync.sqlite", to: "nightly.sqlite")
/// let restored = try SQLiteBackup.restore(from: "nightly.sqlite", to: "reader-sync.sqlite")
/// ```
package enum SQLiteBackup {
    package struct Summary: Sendable, Hashable {
        package var path: String
        package var bytes: Int64
        package var articles: Int
        package var users: Int
        package var epoch: String
    }

    /// Writes a consistent copy of the database at `databasePath` to `outPath`, also while a server
    /// writes to it (`VACUUM INTO` reads one snapshot and blocks no writer).
    ///
    /// The copy is written beside `outPath` and renamed into place once complete, so `outPath` never
    /// holds half a backup.
    /// - Throws: ``SQLiteBackupError`` when the source is missing or not a ReaderSync database, or
    ///   `outPath` exists; GRDB's `DatabaseError` when SQLite fails.
    package static func backup(databasePath: String, to outPath: String) throws -> Summary {
        guard FileManager.default.fileExists(atPath: databasePath) else {
            throw SQLiteBackupError("no database at \(databasePath)")
        }
        guard !FileManager.default.fileExists(atPath: outPath) else {
            throw SQLiteBackupError("\(outPath) already exists; choose a new file for the backup")
        }
        let partial = outPath + ".partial"
        try? FileManager.default.removeItem(atPath: partial)
        // VACUUM INTO needs a writable connection, though it writes only the target.
        let source = try DatabaseQueue(path: databasePath, configuration: configuration(readonly: false))
        do {
            _ = try summary(of: source, path: databasePath)
            try source.inDatabase { db in try db.execute(sql: "VACUUM INTO ?", arguments: [partial]) }
        } catch {
            try? source.close()
            throw error
        }
        try source.close()
        do {
            let copy = try DatabaseQueue(path: partial, configuration: configuration(readonly: false))
            try checkIntegrity(copy, path: partial)
            try copy.close()
            try FileManager.default.moveItem(atPath: partial, toPath: outPath)
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            throw error
        }
        return try summary(atPath: outPath)
    }

    /// Installs the backup at `backupPath` as the database at `databasePath`, under a new epoch:
    /// every device then gets `410 reset_required`, gives back what the backup lacks and pulls anew.
    ///
    /// Refuses while a server holds the database (see ``DatabaseFileLock``). The database it
    /// replaces is kept beside it as `<databasePath>.before-restore-<time>`; the backup file is not changed.
    /// - Returns: the restored database's summary and where the replaced one went (if there was one).
    package static func restore(from backupPath: String, to databasePath: String, now: Date = Date()) throws -> (summary: Summary, previous: String?) {
        guard FileManager.default.fileExists(atPath: backupPath) else {
            throw SQLiteBackupError("no backup at \(backupPath)")
        }
        let lock = try DatabaseFileLock(databasePath: databasePath, exclusive: true)
        defer { lock.release() }

        let staging = databasePath + ".restoring"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: staging + suffix) }
        do {
            let backup = try DatabaseQueue(path: backupPath, configuration: configuration(readonly: false))
            do {
                _ = try summary(of: backup, path: backupPath)
                try checkIntegrity(backup, path: backupPath)
                try backup.inDatabase { db in try db.execute(sql: "VACUUM INTO ?", arguments: [staging]) }
            } catch {
                try? backup.close()
                throw error
            }
            try backup.close()
            // Migrates a backup of an older version, and starts the new epoch.
            let store = try SQLiteSyncStore(path: staging)
            try store.startNewEpoch()
            // Everything into the main file: only that file is moved into place.
            try store.dbPool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try store.dbPool.close()
        } catch {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: staging + suffix) }
            throw error
        }

        var previous: String?
        if FileManager.default.fileExists(atPath: databasePath) {
            // Fold the old database's WAL into it first, so the file kept aside is complete on its own.
            let old = try DatabaseQueue(path: databasePath, configuration: configuration(readonly: false))
            try old.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try old.close()
            let stamp = ISO8601DateFormatter().string(from: now).replacingOccurrences(of: ":", with: "")
            let aside = "\(databasePath).before-restore-\(stamp)"
            try FileManager.default.moveItem(atPath: databasePath, toPath: aside)
            previous = aside
        }
        // A WAL left beside the new file would be replayed into it: remove the old one's.
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: databasePath + suffix) }
        try FileManager.default.moveItem(atPath: staging, toPath: databasePath)
        return (try summary(atPath: databasePath), previous)
    }

    private static func configuration(readonly: Bool) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.busyMode = .timeout(10)
        return configuration
    }

    private static func checkIntegrity(_ db: DatabaseQueue, path: String) throws {
        let result = try db.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        guard result == ["ok"] else {
            throw SQLiteBackupError("\(path) is damaged: \(result.prefix(3).joined(separator: "; "))")
        }
    }

    /// The summary of the database at `path`, read on a connection of its own.
    private static func summary(atPath path: String) throws -> Summary {
        let queue = try DatabaseQueue(path: path, configuration: configuration(readonly: true))
        defer { try? queue.close() }
        return try summary(of: queue, path: path)
    }

    private static func summary(of queue: DatabaseQueue, path: String) throws -> Summary {
        let facts = try queue.read { db -> (String, Int, Int)? in
            guard try db.tableExists("meta"), try db.tableExists("article"), try db.tableExists("user"),
                  let epoch = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'")
            else { return nil }
            return (epoch, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM article WHERE deletedAt IS NULL") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM user") ?? 0)
        }
        guard let (epoch, articles, users) = facts else {
            throw SQLiteBackupError("\(path) is not a ReaderSync server database")
        }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
        return Summary(path: path, bytes: bytes, articles: articles, users: users, epoch: epoch)
    }
}

package struct SQLiteBackupError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// An advisory lock on `<database>.lock`: every `serve` holds it shared, `restore` exclusively, so a
/// database is never replaced under a running server. Released when the process ends, even by SIGKILL.
package final class DatabaseFileLock: Sendable {
    private let descriptor: Int32

    /// - Throws: ``SQLiteBackupError`` when the lock is held the other way (a server runs, or a restore).
    package init(databasePath: String, exclusive: Bool) throws {
        let lockPath = databasePath + ".lock"
        descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw SQLiteBackupError("cannot open \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 else {
            close(descriptor)
            throw SQLiteBackupError(exclusive
                ? "a server is running on \(databasePath); stop it before restoring"
                : "\(databasePath) is being restored; start the server when the restore is done")
        }
    }

    package func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
