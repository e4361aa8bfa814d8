import ArgumentParser
import Foundation
import ReaderSyncCore
import ReaderSyncService

/// What compaction keeps: the same options on `serve` and `compact`.
struct RetentionOptions: ParsableArguments {
    @Option(name: .customLong("retention-days"), help: ArgumentHelp(
        "Articles published more than this many days ago leave the sync set (devices may drop them; bookmarked ones stay for their readers).",
        discussion: "Default: none, every article is kept."))
    var retentionDays: Int?

    @Option(name: .customLong("tombstone-days"),
            help: "Days deletions and expiries stay servable; a device that syncs less often pulls anew (410 cursor_expired).")
    var tombstoneDays = 30

    @Option(name: .customLong("conflict-days"), help: "Days the conflict log keeps an entry.")
    var conflictDays = 90

    @Option(name: .customLong("history-days"), help: "Days the field history (reader-sync history, why) keeps an entry.")
    var historyDays = 30

    var policy: RetentionPolicy {
        RetentionPolicy(articleDays: retentionDays, tombstoneDays: tombstoneDays, conflictDays: conflictDays, historyDays: historyDays)
    }

    func validate() throws {
        do { try policy.validate() } catch { throw ValidationError("--" + error.message) }
    }
}

extension ReaderSync {
    struct Compact: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Expire old articles and remove old tombstones and conflict log entries (for cron; `serve` also does it hourly).",
            discussion: """
                Runs in short transactions, so a server on the same database goes on serving. Cursors \
                older than the removed tombstones get 410 cursor_expired; their devices keep their \
                pending changes and pull anew.
                """)

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var retention: RetentionOptions

        @Flag(help: "Print JSON instead of lines.")
        var json = false

        func run() async throws {
            let report = try await database.withService(create: false) { service in
                let report = try await service.compact(retention.policy)
                await service.flushAnnouncements()
                return report
            }
            if json {
                say(try prettyJSON(report))
                return
            }
            say("expired \(report.expired) articles")
            say("removed \(report.removedTombstones) tombstones, \(report.removedExpired) expired articles, \(report.removedStates) states, \(report.removedConflicts) conflict log entries, \(report.removedHistory) history entries")
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print what the database holds: articles live, expired and deleted, users, devices, states, conflicts, bytes.")

        @OptionGroup var database: DatabaseOptions

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() async throws {
            let stats = try await database.withService(create: false) { try await $0.statistics() }
            if json {
                say(try prettyJSON(stats))
                return
            }
            var rows: [[String]] = [
                ["articles (live)", String(stats.liveArticles)],
                ["articles (expired)", "\(stats.expiredArticles) (\(stats.pinnedArticles) pinned by a bookmark)"],
                ["tombstones", String(stats.tombstones)],
                ["users", String(stats.users)],
                ["devices", String(stats.devices)],
                ["states", String(stats.states)],
                ["conflict log entries", String(stats.conflicts)],
                ["bytes", String(stats.bytes) + (stats.freeBytes.map { " (\($0) free for reuse)" } ?? "")],
            ]
            rows.append(["tombstone horizon", stats.horizon.map { "position \($0)" } ?? "none (nothing removed yet)"])
            rows.append(["last compaction", stats.compactedAt ?? "never"])
            say(TextTable(header: ["WHAT", "COUNT"], rows: rows).render())
        }
    }
}
