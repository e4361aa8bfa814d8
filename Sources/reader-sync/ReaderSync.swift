import ArgumentParser
import Foundation

/// The `reader-sync` command: parse, configure, call a library; nothing else.
@main
struct ReaderSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reader-sync",
        abstract: "Offline sync for news-reader apps: server, ingest, users and the conflict log.",
        subcommands: [Demo.self, Serve.self, Users.self, Ingest.self, Conflicts.self, History.self, Why.self, Compact.self, Stats.self, Backup.self, Restore.self, ResetEpoch.self, Simulate.self, Bench.self]
    )
}

/// The database, shared by every subcommand: a SQLite file or a PostgreSQL URL.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: ArgumentHelp(
        "A SQLite database file, or a PostgreSQL URL: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (also postgres://, ?host=/socket/dir, ?sslmode=).",
        discussion: "Default: $READER_SYNC_DB (so a password need not be on the command line), else reader-sync.sqlite."))
    var given: String?

    @Option(name: .customLong("db-pool-size"), help: "PostgreSQL: most connections this process opens.")
    var poolSize = 10

    @Option(name: .customLong("db-statement-timeout"), help: "PostgreSQL: seconds a statement may run before it is cancelled.")
    var statementTimeout = 30.0

    @Option(name: .customLong("db-idle-in-transaction-timeout"),
            help: "PostgreSQL: seconds a session may sit idle inside a transaction before it is ended (it holds back every pull).")
    var idleInTransactionTimeout = 60.0

    /// What `--db` or `READER_SYNC_DB` names, as given.
    var path: String {
        given ?? ProcessInfo.processInfo.environment["READER_SYNC_DB"].flatMap { $0.isEmpty ? nil : $0 } ?? "reader-sync.sqlite"
    }

    func validate() throws {
        guard (1...1000).contains(poolSize) else { throw ValidationError("--db-pool-size must be from 1 to 1000") }
        // Whole milliseconds for PostgreSQL, where 0 would mean no timeout at all.
        for (name, value) in [("--db-statement-timeout", statementTimeout), ("--db-idle-in-transaction-timeout", idleInTransactionTimeout)]
        where !(0.001...86_400).contains(value) {
            throw ValidationError("\(name) must be from 0.001 to 86400 seconds (a day)")
        }
        _ = try location
    }
}

/// A failure the CLI reports as one line and a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Writes a line to stdout and flushes it, so a parent process reading a pipe sees it at once.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// Writes a line to stderr.
func warn(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
