import ArgumentParser
import Foundation
import ReaderSyncSQLiteStore
import ReaderSyncServer
import ReaderSyncService

extension ReaderSync {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a consistent copy of the database, also while the server runs.",
            discussion: "The copy is one compact SQLite file, checked with integrity_check before it gets its final name.")

        @OptionGroup var database: DatabaseOptions

        @Option(help: "The backup file to write (must not exist).")
        var out: String

        func run() async throws {
            try refusePostgres(database, "pg_dump -Fc")
            do {
                let summary = try SQLiteBackup.backup(databasePath: database.path, to: out)
                say("backup of \(database.path) written to \(summary.path): \(summary.articles) articles, \(summary.users) users, \(summary.bytes) bytes")
            } catch let error as SQLiteBackupError {
                throw CLIError(error.description)
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install a backup as the database, under a new epoch (stop the server first).",
            discussion: """
                Every device then gets 410 reset_required on its next sync, gives back the changes the \
                backup lacks and pulls from the beginning. The replaced database is kept beside it as \
                <db>.before-restore-<time>; the backup file is left as it was.

                Users and tokens never go back in time: from the replaced database the restore keeps every \
                user's token and revocation, the users created after the backup (with no state: their \
                devices give it back) and the admin token. Everything else — articles, states, devices, \
                conflicts — is the backup's. A user only the backup has keeps the backup's token. With no \
                database at --db, the backup's users and tokens are used; a replaced database whose users \
                cannot be read stops the restore, and nothing changes.
                """)

        @OptionGroup var database: DatabaseOptions

        @Option(name: .customLong("from"), help: "The backup file to install.")
        var from: String

        func run() async throws {
            try refusePostgres(database, "pg_restore")
            do {
                let restored = try SQLiteBackup.restore(from: from, to: database.path)
                let summary = restored.summary
                say("restored \(from) into \(summary.path): \(summary.articles) articles, \(summary.users) users, new epoch \(summary.epoch)")
                if let previous = restored.previous { say("the database it replaced is kept at \(previous)") }
                if let carried = restored.carriedOver, carried.updatedUsers.isEmpty && carried.addedUsers.isEmpty && !carried.adminToken {
                    say("the replaced database had no users and no admin token: the backup's are used")
                } else if let carried = restored.carriedOver {
                    var kept = "kept from the replaced database: the tokens and revocations of \(Self.count(carried.updatedUsers.count + carried.addedUsers.count, "user"))"
                    if !carried.addedUsers.isEmpty {
                        kept += " (created after the backup: \(carried.addedUsers.joined(separator: ", ")))"
                    }
                    kept += carried.adminToken ? ", and the admin token" : "; it had no admin token, so the backup's stays"
                    say(kept)
                    if !carried.backupOnlyUsers.isEmpty {
                        say("the replaced database did not have \(carried.backupOnlyUsers.joined(separator: ", ")): the backup's tokens stay; revoke with: reader-sync users revoke NAME")
                    }
                } else {
                    say("no database was at \(database.path): users, tokens and the admin token are the backup's")
                }
                say("devices will get 410 reset_required and give back what the backup lacks")
            } catch let error as SQLiteBackupError {
                throw CLIError(error.description)
            }
        }

        private static func count(_ n: Int, _ noun: String) -> String {
            "\(n) \(noun)\(n == 1 ? "" : "s")"
        }
    }
}

/// Backup and restore copy SQLite files; a PostgreSQL database has its own tools.
private func refusePostgres(_ database: DatabaseOptions, _ tool: String) throws {
    if case .postgres = try database.location {
        throw CLIError("""
            backup and restore copy SQLite files; for PostgreSQL use \(tool) (docs/RELIABILITY.md), \
            then start a new epoch with: reader-sync reset-epoch --db …
            """)
    }
}

extension ReaderSync {
    struct ResetEpoch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-epoch",
            abstract: "Start a new epoch: every device gives back what the database lacks and pulls from the beginning.",
            discussion: """
                restore's other half, for any database: after installing an older copy by other means \
                (pg_restore, a file copy), run this so no device keeps a cursor past what the database \
                holds. Every device gets 410 reset_required on its next sync, pushes the changes it \
                made (the database keeps whatever is newer by the merge rules) and pulls everything \
                again. Stop every server first and start them after: a server reads the epoch when it \
                starts. On a SQLite file this refuses while a server runs on it.
                """)

        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            if case .sqlite(let path) = try database.location {
                guard FileManager.default.fileExists(atPath: path) else { throw CLIError("no database at \(path); give its path with --db") }
                // Exclusive: a running server would go on signing cursors of the old epoch.
                do {
                    let lock = try DatabaseFileLock(databasePath: path, exclusive: true)
                    defer { lock.release() }
                    let store = try SQLiteSyncStore(path: path)
                    try store.startNewEpoch()
                    say("new epoch \(try await store.identity().epoch) for \(path); every device resets on its next sync")
                } catch let error as SQLiteBackupError {
                    throw CLIError(error.description)
                }
                return
            }
            let epoch = try await database.withStore(create: false) { store in
                try await store.startNewEpoch()
                return try await store.identity().epoch
            }
            say("new epoch \(epoch) for \(database.shown); restart every server, and every device resets on its next sync")
        }
    }
}
