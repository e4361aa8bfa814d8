import ArgumentParser
import Foundation
import ReaderSyncServer

extension ReaderSync {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a consistent copy of the database, also while the server runs.",
            discussion: "The copy is one compact SQLite file, checked with integrity_check before it gets its final name.")

        @OptionGroup var database: DatabaseOptions

        @Option(help: "The backup file to write (must not exist).")
        var out: String

        func run() async throws {
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
