import ArgumentParser
import Foundation
import ReaderSyncCore
import ReaderSyncServer
import ReaderSyncService

extension ReaderSync {
    struct Conflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inspect the conflict log: which write won, which lost, and why; clock adjustments and notices too.",
            subcommands: [List.self, Show.self],
            defaultSubcommand: List.self)
    }
}

extension ReaderSync.Conflicts {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List conflict log entries, newest first.")

        @OptionGroup var database: DatabaseOptions

        @Option(help: "Only this user's entries.")
        var user: String?

        @Option(help: "Only entries about this article id.")
        var article: String?

        @Option(help: "At most this many entries (1…1000).")
        var limit = 50

        @Option(help: "Only entries older than this id (to page back).")
        var before: Int64?

        @Option(name: .customLong("rule"), help: ArgumentHelp(
            "Only entries of this rule; repeat or separate with commas for several.",
            discussion: "Rules: " + ConflictRule.allCases.map(\.rawValue).joined(separator: ", ") + "."))
        var rules: [String] = []

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func validate() throws {
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
            _ = try ruleFilter()
        }

        /// The rules `--rule` names (empty: every rule).
        private func ruleFilter() throws -> Set<ConflictRule> {
            do {
                return try ConflictRule.parseList(rules)
            } catch {
                throw ValidationError("--rule: \(error.message)")
            }
        }

        func run() async throws {
            try await database.withService(create: false) { service in
                var query = ConflictQuery(articleId: article, before: before, limit: limit)
                query.rules = try ruleFilter()
                if let user {
                    query.userId = try await service.user(named: user).id
                }
                let conflicts = try await service.conflicts(query)
                if json {
                    say(try prettyJSON(ConflictsResponse(conflicts: conflicts)))
                    return
                }
                guard !conflicts.isEmpty else {
                    let rules = query.rules.map(\.rawValue).sorted()
                    say(terminalSafe("no conflicts logged" + (user.map { " for \($0)" } ?? "") + (article.map { " on \($0)" } ?? "")
                        + (rules.isEmpty ? "" : " under rule \(rules.joined(separator: ", "))")))
                    return
                }
                say(conflictTable(conflicts))
                say("")
                say(terminalSafe("Explain one in words: reader-sync conflicts show ID --db \(database.shown)"))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Explain one conflict log entry in plain words.")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The entry's id, as `reader-sync conflicts` lists it.")
        var id: Int64

        @Flag(help: "Print JSON (the entry and its explanation).")
        var json = false

        func run() async throws {
            try await database.withService(create: false) { service in
                guard let conflict = try await service.conflict(id: id) else {
                    throw CLIError("no conflict log entry with id \(id)")
                }
                if json {
                    struct Explained: Encodable {
                        var conflict: ConflictDTO
                        var explanation: String
                    }
                    say(try prettyJSON(Explained(conflict: conflict, explanation: conflict.explanation)))
                    return
                }
                say(terminalSafe("\(conflictHeading(conflict)) · user \(conflict.user) · article \(conflict.articleId) · \(conflict.field) · rule \(conflict.rule.rawValue) · \(conflict.detectedAt)"))
                say(terminalSafe(conflict.explanation))
            }
        }
    }
}

/// `value` as sorted, indented JSON (every `--json` of the CLI).
func prettyJSON(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// "Conflict 17", "Clock adjustment 18" or "Notice 19": what an entry is, by its kind.
func conflictHeading(_ conflict: ConflictDTO) -> String {
    switch conflict.kind {
    case .conflict: return "Conflict \(conflict.id)"
    case .clockAdjustment: return "Clock adjustment \(conflict.id)"
    case .notice: return "Notice \(conflict.id)"
    }
}

/// The conflict log as a table, newest first, as `reader-sync conflicts` prints it.
///
/// Only a real conflict has a lost write; a clock adjustment shows the device's time against the
/// server's and a notice says what happened, in the same column, so the two are never mistaken.
func conflictTable(_ conflicts: [ConflictDTO]) -> String {
    func side(_ w: WriteDTO) -> String { "\(w.value) from \(w.deviceId) #\(w.mutationId)" }
    let rows = conflicts.map { c in
        [String(c.id), c.detectedAt, c.user, c.articleId, c.field.rawValue, c.rule.rawValue, side(c.winner),
         c.note ?? c.lostWrite.map(side) ?? "-"]
    }
    return TextTable(header: ["ID", "DETECTED", "USER", "ARTICLE", "FIELD", "RULE", "KEPT", "LOST / NOTE"], rows: rows).render()
}
