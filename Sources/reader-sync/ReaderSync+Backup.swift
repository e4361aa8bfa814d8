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
                """)

        @OptionGroup var database: DatabaseOptions

        @Option(name: .customLong("from"), help: "The backup file to install.")
        var from: String

        func run() async throws {
            do {
                let (summary, previous) = try SQLiteBackup.restore(from: from, to: database.path)
                say("restored \(from) into \(summary.path): \(summary.articles) articles, \(summary.users) users, new epoch \(summary.epoch)")
                if let previous { say("the database it replaced is kept at \(previous)") }
                say("devices will get 410 reset_required and give back what the backup lacks")
            } catch let error as SQLiteBackupError {
                throw CLIError(error.description)
            }
        }
    }
}
