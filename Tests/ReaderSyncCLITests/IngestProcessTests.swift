import Foundation
import ReaderSyncCore
@testable import ReaderSyncService
import Testing

extension ProcessTests {
    /// `reader-sync ingest` as a user types it: strict dates (issue 10 item 4) and plain-text ids (item 6).
    @Suite("reader-sync ingest as a process: dates and plain-text ids", .serialized)
    struct IngestProcessTests {
        @Test("an impossible date (2026-02-30) is refused with its line number and exit 1; the article is not stored")
        func impossibleDate() throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("r.sqlite").path
            let file = dir.appendingPathComponent("budget.jsonl")
            try #"{"id":"d-1","title":"Budget vote","publishedAt":"2026-02-30T08:15:00Z"}"#.write(to: file, atomically: true, encoding: .utf8)
            let refused = try CLI.run(["ingest", file.path, "--db", db])
            #expect(refused.status == 1)
            #expect(refused.stdout.contains("inserted 0, updated 0, unchanged 0, deleted 0, rejected 1"))
            #expect(refused.stdout.contains(
                #"line 1: publishedAt "2026-02-30T08:15:00Z" is not a valid date-time: February 2026 has 28 days, not 30"#),
                "\(refused.stdout)")
            #expect(refused.stderr.contains("1 line(s) rejected"))

            // Not stored: the corrected line is a new article, not an update of one dated 2026-03-02.
            try #"{"id":"d-1","title":"Budget vote","publishedAt":"2026-02-28T08:15:00Z"}"#.write(to: file, atomically: true, encoding: .utf8)
            let fixed = try CLI.run(["ingest", file.path, "--db", db, "--json"])
            #expect(fixed.status == 0, "\(fixed.stderr)")
            let report = try JSONDecoder().decode(IngestReport.self, from: Data(fixed.stdout.utf8))
            #expect(report.inserted == 1 && report.updated == 0)
        }

        @Test("two .txt files with the same headline are two articles; re-ingest is unchanged; an edited file updates only itself")
        func sameHeadline() throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("r.sqlite").path
            let monday = dir.appendingPathComponent("election-monday.txt")
            let tuesday = dir.appendingPathComponent("election-tuesday.txt")
            try "Live: Election results\n\nPolls closed at 20:00; turnout was 61 percent.\n".write(to: monday, atomically: true, encoding: .utf8)
            let first = try CLI.run(["ingest", monday.path, "--db", db])
            #expect(first.status == 0 && first.stdout.contains("inserted 1, updated 0"), "\(first.stdout)\(first.stderr)")

            try "Live: Election results\n\nThe coalition talks began this morning.\n".write(to: tuesday, atomically: true, encoding: .utf8)
            let second = try CLI.run(["ingest", tuesday.path, "--db", db])
            // Before issue 10 item 6 this said "updated 1": Tuesday's story replaced Monday's under the title's slug.
            #expect(second.status == 0 && second.stdout.contains("inserted 1, updated 0"), "\(second.stdout)\(second.stderr)")

            let again = try CLI.run(["ingest", monday.path, tuesday.path, "--db", db])
            #expect(again.status == 0 && again.stdout.contains("total: inserted 0, updated 0, unchanged 2"), "\(again.stdout)")

            try "Live: Election results\n\nPolls closed at 20:00; turnout was 64 percent.\n".write(to: monday, atomically: true, encoding: .utf8)
            let corrected = try CLI.run(["ingest", monday.path, tuesday.path, "--db", db])
            #expect(corrected.status == 0 && corrected.stdout.contains("total: inserted 0, updated 1, unchanged 1"), "\(corrected.stdout)")
            // Changed text under an existing id is said out loud, never replaced silently.
            #expect(corrected.stdout.contains("taken as a correction"), "\(corrected.stdout)")
            #expect(!again.stdout.contains("taken as a correction"))
            // With --json the note goes to stderr, and stdout stays one JSON document.
            try "Live: Election results\n\nPolls closed at 20:00; turnout was 65 percent.\n".write(to: monday, atomically: true, encoding: .utf8)
            let correctedJSON = try CLI.run(["ingest", monday.path, "--json", "--db", db])
            #expect(correctedJSON.status == 0 && correctedJSON.stderr.contains("taken as a correction"), "\(correctedJSON.stderr)")
            #expect((try? JSONSerialization.jsonObject(with: Data(correctedJSON.stdout.utf8))) != nil, "\(correctedJSON.stdout)")
        }

        @Test("two .txt files of the same name in different folders are refused before anything is stored")
        func sameNameTwoFolders() throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("r.sqlite").path
            var files: [URL] = []
            for (day, text) in [("mon", "Polls closed at 20:00."), ("tue", "The coalition talks began.")] {
                let folder = dir.appendingPathComponent(day)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let file = folder.appendingPathComponent("election.txt")
                try "Live: Election results\n\n\(text)\n".write(to: file, atomically: true, encoding: .utf8)
                files.append(file)
            }
            let refused = try CLI.run(["ingest", files[0].path, files[1].path, "--db", db])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("have the same name, election.txt") && refused.stderr.contains("nothing was stored"),
                    "\(refused.stderr)")
            #expect(refused.stdout.isEmpty)

            // The same file named twice is one story, not a collision.
            let once = try CLI.run(["ingest", files[0].path, files[0].path, "--db", db])
            #expect(once.status == 0 && once.stdout.contains("total: inserted 1, updated 0, unchanged 1"), "\(once.stdout)\(once.stderr)")
        }
    }
}
