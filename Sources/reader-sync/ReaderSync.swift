import ArgumentParser
import Foundation

/// The `reader-sync` command: parse, configure, call a library; nothing else.
@main
struct ReaderSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reader-sync",
        abstract: "Offline sync for news-reader apps: server, ingest, users and the conflict log.",
        subcommands: [Demo.self, Serve.self, Users.self, Ingest.self, Conflicts.self, Backup.self, Restore.self, Simulate.self, Bench.self]
    )
}

/// The database file, shared by every subcommand.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: "Path of the SQLite database file.")
    var path: String = "reader-sync.sqlite"
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
