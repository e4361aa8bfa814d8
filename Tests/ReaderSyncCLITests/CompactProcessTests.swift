import Foundation
@testable import ReaderSyncService
import Testing

extension ProcessTests {
    /// `reader-sync compact`, `stats` and `serve --retention-days` as an operator runs them.
    @Suite("reader-sync compact and stats as a process", .serialized)
    struct CompactProcessTests {
        /// A database with two articles published in 2020 and one published now.
        static func database() throws -> (db: String, dir: URL) {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("r.sqlite").path
            let file = dir.appendingPathComponent("articles.jsonl")
            let now = ISO8601DateFormatter().string(from: Date())
            try """
                {"id":"old-1","title":"Old one","publishedAt":"2020-01-01T08:00:00Z"}
                {"id":"old-2","title":"Old two","publishedAt":"2020-01-02T08:00:00Z"}
                {"id":"new-1","title":"New one","publishedAt":"\(now)"}
                """.write(to: file, atomically: true, encoding: .utf8)
            let ingest = try CLI.run(["ingest", file.path, "--db", db])
            #expect(ingest.status == 0, "\(ingest.stderr)")
            return (db, dir)
        }

        @Test("compact --retention-days expires old articles and says so; stats prints the counts as a table and as JSON; bad values are refused with exit 64")
        func compactAndStats() throws {
            let (db, _) = try Self.database()
            let before = try CLI.run(["stats", "--db", db, "--json"])
            #expect(before.status == 0, "\(before.stderr)")
            let first = try JSONDecoder().decode(StoreStatistics.self, from: Data(before.stdout.utf8))
            #expect((first.liveArticles, first.expiredArticles, first.compactedAt) == (3, 0, nil))

            let compact = try CLI.run(["compact", "--db", db, "--retention-days", "90"])
            #expect(compact.status == 0, "\(compact.stderr)")
            #expect(compact.stdout.contains("expired 2 articles"), "\(compact.stdout)")
            #expect(compact.stdout.contains("removed 0 tombstones"), "\(compact.stdout)")
            let json = try CLI.run(["compact", "--db", db, "--retention-days", "90", "--json"])
            #expect(try JSONDecoder().decode(CompactionReport.self, from: Data(json.stdout.utf8)).expired == 0)

            let table = try CLI.run(["stats", "--db", db])
            #expect(table.status == 0)
            #expect(table.stdout.contains("articles (live)") && table.stdout.contains("2 (0 pinned by a bookmark)"), "\(table.stdout)")
            #expect(table.stdout.contains("none (nothing removed yet)"), "\(table.stdout)")
            let after = try JSONDecoder().decode(StoreStatistics.self, from: Data(try CLI.run(["stats", "--db", db, "--json"]).stdout.utf8))
            #expect((after.liveArticles, after.expiredArticles) == (1, 2))
            #expect(after.compactedAt != nil)
            #expect(after.bytes > 0)

            for (option, value) in [("--retention-days", "0"), ("--tombstone-days", "-3"), ("--conflict-days", "40000")] {
                let refused = try CLI.run(["compact", "--db", db, "\(option)=\(value)"])
                #expect(refused.status == 64, "\(option) \(value): \(refused.stderr)")
                #expect(refused.stderr.contains("\(option) must be from 1 to 36500"), "\(refused.stderr)")
            }
            let missing = try CLI.run(["stats", "--db", db + ".missing"])
            #expect(missing.status != 0)
            #expect(!FileManager.default.fileExists(atPath: db + ".missing"))
        }

        @Test("serve --retention-days compacts at start while it serves; --compact-interval 0 turns that off")
        func serveCompacts() async throws {
            let (db, _) = try Self.database()
            let off = try ServerProcess(arguments: ["--db", db, "--port", "0", "--retention-days", "90", "--compact-interval", "0"])
            _ = try off.waitForOutput(containing: "database:")
            #expect(off.stop() == 0)
            let untouched = try JSONDecoder().decode(StoreStatistics.self, from: Data(try CLI.run(["stats", "--db", db, "--json"]).stdout.utf8))
            #expect(untouched.compactedAt == nil)

            let server = try ServerProcess(arguments: ["--db", db, "--port", "0", "--retention-days", "90"])
            _ = try server.waitForOutput(containing: "database:")
            var stats = StoreStatistics()
            try await Tool.waitUntil("the server compacted at start") {
                stats = try JSONDecoder().decode(StoreStatistics.self, from: Data(try await Tool.run(CLI.binary, ["stats", "--db", db, "--json"]).stdout.utf8))
                return stats.compactedAt != nil
            }
            #expect(server.stop() == 0)
            #expect((stats.liveArticles, stats.expiredArticles) == (1, 2))
            #expect(stats.compactedAt != nil)
        }
    }
}
