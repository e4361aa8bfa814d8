import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncService

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

    /// What a restore installed, and whose users and tokens it kept.
    package struct Restored: Sendable, Hashable {
        /// The restored database.
        package var summary: Summary
        /// Where the replaced database was moved (`nil` when there was none).
        package var previous: String?
        /// The credentials carried over from the replaced database (`nil` when there was none:
        /// the backup's users and tokens are then the ones installed).
        package var carriedOver: CarriedOver?
    }

    /// The credentials a restore took from the database it replaced.
    package struct CarriedOver: Sendable, Hashable {
        /// Users of both databases: token hash and revocation taken from the replaced one.
        package var updatedUsers: [String]
        /// Users only the replaced database had (created after the backup): added with their token
        /// and revocation, without state, so that their devices can give back what they wrote.
        package var addedUsers: [String]
        /// Users only the backup has (so the replaced database is not a later copy of it): they keep
        /// the backup's token.
        package var backupOnlyUsers: [String]
        /// Whether the admin token's hash is the replaced database's.
        package var adminToken: Bool
    }

    /// The keys of `meta` that hold secrets: a restore takes them from the replaced database where it
    /// has them. A credential added later (an app password table, a stored metrics token) belongs in
    /// ``Credentials`` and here, so that no restore brings back an older copy of it.
    static let credentialMetaKeys = ["adminTokenHash", "cursorSecret"]

    /// The security state of a server database: every user's token hash and revocation, and the
    /// secrets in `meta`.
    struct Credentials {
        struct User {
            var name: String
            var tokenHash: Data
            var revokedAt: String?
            var createdAt: String
        }
        /// An app password (Google Reader API), by its user's name.
        struct AppPassword {
            var id: Int64
            var userName: String
            var label: String
            var passwordHash: Data
            var createdAt: String
        }
        var users: [User]
        var meta: [String: String]
        var appPasswords: [AppPassword] = []
    }

    /// Installs the backup at `backupPath` as the database at `databasePath`, under a new epoch:
    /// every device then gets `410 reset_required`, gives back what the backup lacks and pulls anew.
    ///
    /// Security state never goes back in time: the replaced database is newer than the backup, so
    /// its credentials are carried over into the restored one, in the transaction that starts the
    /// new epoch, before the file goes live. Each user of both keeps the replaced database's token
    /// hash and revocation, and the app passwords are the replaced database's; a user only the
    /// replaced database has (created after the backup) is added with them, without state, so its
    /// devices can give back what they wrote; the admin token's hash and the cursor secret are the
    /// replaced database's where it has them. Everything
    /// else — articles, states, devices and their last mutation ids, conflicts — is the backup's.
    /// With no database at `databasePath` (or an empty file), the backup's users and tokens are kept.
    ///
    /// Refuses while a server holds the database (see ``DatabaseFileLock``). The database it
    /// replaces is kept beside it as `<databasePath>.before-restore-<time>`; the backup file is not changed.
    /// - Throws: ``SQLiteBackupError`` when the backup is missing, damaged or not a ReaderSync
    ///   database, when a server runs, or when the replaced database's users and tokens cannot be
    ///   read (nothing is changed then); GRDB's `DatabaseError` when SQLite fails.
    package static func restore(from backupPath: String, to databasePath: String, now: Date = Date()) throws -> Restored {
        guard FileManager.default.fileExists(atPath: backupPath) else {
            throw SQLiteBackupError("no backup at \(backupPath)")
        }
        let lock = try DatabaseFileLock(databasePath: databasePath, exclusive: true)
        defer { lock.release() }
        // Read before anything is written, so a replaced database that cannot be read changes nothing.
        let replaced = try credentials(ofReplaced: databasePath)

        let staging = databasePath + ".restoring"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: staging + suffix) }
        var carriedOver: CarriedOver?
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
            // Migrates a backup of an older version; then the new epoch and the carried-over
            // credentials in one transaction, before the file goes live.
            let store = try SQLiteSyncStore(path: staging)
            carriedOver = try store.dbPool.write { db in
                try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'epoch'",
                               arguments: [Hex.random(bytes: 8)])
                return try replaced.map { try carryOver($0, into: db) }
            }
            // Everything into the main file: only that file is moved into place.
            try store.dbPool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try store.dbPool.close()
        } catch {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: staging + suffix) }
            throw error
        }

        var previous: String?
        do {
            if FileManager.default.fileExists(atPath: databasePath) {
                // Fold the old database's WAL into it first, so the file kept aside is complete on its own.
                let old = try DatabaseQueue(path: databasePath, configuration: configuration(readonly: false))
                try old.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
                try old.close()
                let stamp = ISO8601DateFormatter().string(from: now).replacingOccurrences(of: ":", with: "")
                let aside = "\(databasePath).before-restore-\(stamp)"
                // A second name for the old file, not a move: at every instant `databasePath` holds a
                // complete database (the old one, then the new), so a crash here never leaves it
                // missing for a server to create empty, and credentials are never lost with it.
                try FileManager.default.linkItem(atPath: databasePath, toPath: aside)
                previous = aside
            }
            // A WAL left beside the new file would be replayed into it: remove the old one's (it was
            // checkpointed and truncated above).
            for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: databasePath + suffix) }
            // rename(2) replaces the old name in one step.
            guard rename(staging, databasePath) == 0 else {
                throw SQLiteBackupError("cannot move the restored database into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            // The replaced database is still in place; leave no half-installed restore behind.
            if let previous { try? FileManager.default.removeItem(atPath: previous) }
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        return Restored(summary: try summary(atPath: databasePath), previous: previous, carriedOver: carriedOver)
    }

    /// The credentials of the database a restore replaces: `nil` when there is no file, none when it
    /// is empty (no tables).
    ///
    /// - Throws: ``SQLiteBackupError`` when the file exists but its users and tokens cannot be read
    ///   (not SQLite, damaged, another program's database): restoring then would bring back the
    ///   backup's tokens, revoked ones included, so the restore stops and says how to go on.
    private static func credentials(ofReplaced path: String) throws -> Credentials? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        func refusal(_ reason: String) -> SQLiteBackupError {
            SQLiteBackupError("""
                cannot read the users and tokens of \(path), the database being replaced (\(reason)); a restore \
                carries them over so that no revoked token works again. To restore with the backup's users and \
                tokens instead, move \(path) aside and run the restore again, then give every user a new token \
                with: reader-sync users token NAME
                """)
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration(readonly: false))
            defer { try? queue.close() }
            return try queue.read { db -> Credentials in
                let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                if tables.isEmpty { return Credentials(users: [], meta: [:]) }
                guard try db.tableExists("user"), try db.tableExists("meta") else {
                    throw refusal("it is not a ReaderSync server database")
                }
                // A database of the first schema version, not yet migrated, has no revocations.
                let revocable = try db.columns(in: "user").contains { $0.name == "revokedAt" }
                let users = try Row.fetchAll(db, sql: """
                    SELECT name, tokenHash, createdAt, \(revocable ? "revokedAt" : "NULL") FROM user ORDER BY id
                    """).map { row in
                        Credentials.User(name: row[0], tokenHash: row[1], revokedAt: row[3], createdAt: row[2])
                    }
                var meta: [String: String] = [:]
                for key in credentialMetaKeys {
                    meta[key] = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
                }
                // A database older than the Google Reader API has no app passwords.
                let appPasswords = try db.tableExists("appPassword") ? try Row.fetchAll(db, sql: """
                    SELECT p.id, u.name, p.label, p.passwordHash, p.createdAt FROM appPassword p JOIN user u ON u.id = p.userId ORDER BY p.id
                    """).map { Credentials.AppPassword(id: $0[0], userName: $0[1], label: $0[2], passwordHash: $0[3], createdAt: $0[4]) } : []
                return Credentials(users: users, meta: meta, appPasswords: appPasswords)
            }
        } catch let error as SQLiteBackupError {
            throw error
        } catch let error as DatabaseError {
            throw refusal(error.message ?? "SQLite error \(error.resultCode.rawValue)")
        }
    }

    /// Writes `credentials` (of the replaced database) into the database being restored, inside its
    /// transaction. Users are matched by name, byte for byte as SQLite compares them; a user's id,
    /// state, devices and conflicts stay the backup's.
    private static func carryOver(_ credentials: Credentials, into db: Database) throws -> CarriedOver {
        var carried = CarriedOver(updatedUsers: [], addedUsers: [], backupOnlyUsers: [], adminToken: false)
        // Names as bytes, as SQLite compares them (Swift's == would equate canonically equivalent names).
        let known = Set(credentials.users.map(\.name.exact))
        let restoredNames = try String.fetchAll(db, sql: "SELECT name FROM user ORDER BY name")
        carried.backupOnlyUsers = restoredNames.filter { !known.contains($0.exact) }
        // Replaced tokens first go out of the way, so that a hash moving between two rows (possible
        // only across unrelated databases) cannot meet itself in the UNIQUE index half-way.
        for user in credentials.users {
            try db.execute(sql: "UPDATE user SET tokenHash = randomblob(32) WHERE name = ?", arguments: [user.name])
        }
        for user in credentials.users {
            try db.execute(sql: "UPDATE user SET tokenHash = ?, revokedAt = ? WHERE name = ?",
                           arguments: [user.tokenHash, user.revokedAt, user.name])
            if db.changesCount > 0 {
                carried.updatedUsers.append(user.name)
            } else {
                try db.execute(sql: "INSERT INTO user (name, tokenHash, createdAt, revokedAt) VALUES (?, ?, ?, ?)",
                               arguments: [user.name, user.tokenHash, user.createdAt, user.revokedAt])
                carried.addedUsers.append(user.name)
            }
        }
        // App passwords are credentials too: the replaced database's, so that a removed one never
        // works again. Their ids stay, and with them the device ids their marks carry.
        try db.execute(sql: "DELETE FROM appPassword")
        for password in credentials.appPasswords {
            try db.execute(sql: """
                INSERT INTO appPassword (id, userId, label, passwordHash, createdAt)
                SELECT ?, id, ?, ?, ? FROM user WHERE name = ?
                """, arguments: [password.id, password.label, password.passwordHash, password.createdAt, password.userName])
        }
        for (key, value) in credentials.meta.sorted(by: { $0.key < $1.key }) {
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", arguments: [key, value])
        }
        carried.adminToken = credentials.meta["adminTokenHash"] != nil
        return carried
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
            // A backup made before retention (m0005) has no expiredAt.
            let live = try db.columns(in: "article").contains { $0.name == "expiredAt" }
                ? "deletedAt IS NULL AND expiredAt IS NULL" : "deletedAt IS NULL"
            return (epoch, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM article WHERE \(live)") ?? 0,
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
