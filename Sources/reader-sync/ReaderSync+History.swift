import ArgumentParser
import Foundation
import ReaderSyncCore
import ReaderSyncServer
import ReaderSyncService

extension ReaderSync {
    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a reader's field history of an article: every change a device pushed, and how it was decided.",
            discussion: "Oldest first, one line per decision: when (the device's clock), which device and mutation, what it did, and "
                + "applied, lost or rejected under which rule. Kept for --history-days (30 by default). See docs/SUPPORT.md.")

        @OptionGroup var database: DatabaseOptions

        @Option(help: "The reader's user name.")
        var user: String

        @Option(help: "The article id.")
        var article: String

        @Option(help: "Only this field: read, bookmarked or progress.")
        var field: String?

        @Flag(help: "Print JSON (the entries, and why the field is what it is when --field is given).")
        var json = false

        func validate() throws {
            if let field, StateField(rawValue: field) == nil {
                throw ValidationError("--field must be read, bookmarked or progress")
            }
        }

        func run() async throws {
            try await database.withService(create: false) { service in
                let record = try await service.user(named: user)
                let field = field.flatMap(StateField.init(rawValue:))
                var entries: [HistoryEntry] = []
                var why: String?
                var after: Int64?
                repeat {
                    let page = try await service.history(HistoryQuery(userId: record.id, articleId: article, field: field, after: after,
                                                                      limit: 1000), userName: record.name)
                    entries += page.entries
                    why = why ?? page.why
                    after = page.nextAfter
                } while after != nil
                if json {
                    say(try prettyJSON(HistoryResponse(entries: entries, nextAfter: nil, why: why)))
                    return
                }
                guard !entries.isEmpty else {
                    say(terminalSafe("no history kept for \(user) on \(article)" + (field.map { " (\($0.rawValue))" } ?? "")))
                    if let why { say(terminalSafe(why)) }
                    return
                }
                for entry in entries {
                    say(terminalSafe((field == nil ? "\(entry.field.rawValue)  " : "") + entry.line))
                }
                if let why {
                    say("")
                    say(terminalSafe(why))
                }
            }
        }
    }

    struct Why: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Explain in plain words why a reader's field of an article is what it is (e.g. why a bookmark vanished).",
            discussion: "From the reader's current state and the field's history. See docs/SUPPORT.md.")

        @OptionGroup var database: DatabaseOptions

        @Option(help: "The reader's user name.")
        var user: String

        @Option(help: "The article id.")
        var article: String

        @Option(help: "The field: read, bookmarked or progress.")
        var field: String

        func validate() throws {
            if StateField(rawValue: field) == nil { throw ValidationError("--field must be read, bookmarked or progress") }
        }

        func run() async throws {
            try await database.withService(create: false) { service in
                let record = try await service.user(named: user)
                guard let field = StateField(rawValue: field) else { throw ValidationError("--field must be read, bookmarked or progress") }
                say(terminalSafe(try await service.why(userId: record.id, userName: record.name, articleId: article, field: field)))
            }
        }
    }
}
