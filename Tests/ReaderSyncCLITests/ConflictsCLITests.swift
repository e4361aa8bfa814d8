import Foundation
import NIOHTTP1
import ReaderSyncCore
import Testing

extension ProcessTests {
    /// `reader-sync conflicts` run as a user runs it, on a database a real server logged a conflict,
    /// a clock adjustment with issue 10 item 5's extreme wall, and a deletion notice into.
    @Suite("reader-sync conflicts as a process", .serialized)
    struct ConflictsCLITests {
        /// The wall of issue 10 item 5: `conflicts show 1` trapped on it (exit 132).
        static let issueWall: Int64 = 9_223_372_036_854_775_296

        struct Logged {
            var db: String
            /// Conflict ids by rule.
            var ids: [ConflictRule: Int64]
        }

        /// Serves a fresh database, pushes one entry of each kind through HTTP, and stops the server.
        func logOneOfEach() async throws -> Logged {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("conflicts.sqlite").path
            let token = try CLI.run(["users", "add", "alice", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let file = dir.appendingPathComponent("a.jsonl")
            try """
                {"id":"story","title":"A story","publishedAt":"2026-11-20T09:00:00Z"}
                {"id":"gone","title":"Gone soon","publishedAt":"2026-11-20T09:00:00Z"}
                """.write(to: file, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["ingest", file.path, "--db", db]).status == 0)
            let deletion = dir.appendingPathComponent("delete.jsonl")
            try #"{"id":"gone","deleted":true}"#.write(to: deletion, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["ingest", deletion.path, "--db", db]).status == 0)

            let server = try ServerProcess(arguments: ["--db", db, "--port", "0"])
            let url = try server.baseURL()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            func push(_ device: String, _ mutations: [Mutation]) async throws -> PushResponse {
                let body = String(decoding: try JSONEncoder().encode(PushRequest(deviceId: device, mutations: mutations)), as: UTF8.self)
                let answer = try await Loopback.with(url) { try await $0.call(.POST, "/v1/sync/push", token: token, body: body) }
                #expect(answer.status == 200, "\(answer.body)")
                return try JSONDecoder().decode(PushResponse.self, from: Data(answer.body.utf8))
            }
            _ = try await push("tablet", [
                Mutation(id: 1, articleId: "story", field: .bookmarked, value: .bool(true), hlc: HLC(wall: now - 60_000, counter: 0), baseVersion: 0),
            ])
            let phone = try await push("phone", [
                Mutation(id: 1, articleId: "story", field: .bookmarked, value: .bool(false), hlc: HLC(wall: now - 30_000, counter: 0), baseVersion: 0),
                Mutation(id: 2, articleId: "story", field: .read, value: .bool(true), hlc: HLC(wall: Self.issueWall, counter: 0), baseVersion: 0),
                Mutation(id: 3, articleId: "gone", field: .read, value: .bool(true), hlc: HLC(wall: now - 1000, counter: 0), baseVersion: 0),
            ])
            #expect(server.stop() == 0)
            return Logged(db: db, ids: [
                .addWins: try #require(phone.results[0].conflictId),
                .clockSkew: try #require(phone.results[1].conflictId),
                .articleDeleted: try #require(phone.results[2].conflictId),
            ])
        }

        @Test("conflicts show, conflicts and --json print the issue's clock adjustment (wall 9223372036854775296) without trapping")
        func extremeWall() async throws {
            let logged = try await logOneOfEach()
            let skewId = String(logged.ids[.clockSkew]!)

            let shown = try CLI.run(["conflicts", "show", skewId, "--db", logged.db])
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.hasPrefix("Clock adjustment \(skewId) · user alice · article story · read · rule clock_skew · "))
            #expect(shown.stdout.contains("alice's device phone marked article story read (mutation 2) with its clock 292471"))
            #expect(shown.stdout.contains("instead of the device's (wall 9223372036854775296 ms (beyond any date))."))

            let json = try CLI.run(["conflicts", "show", skewId, "--json", "--db", logged.db])
            #expect(json.status == 0, "\(json.stderr)")
            struct Shown: Decodable {
                struct Entry: Decodable {
                    var kind: ConflictKind
                    var clockAdjustment: ClockAdjustment
                }
                var conflict: Entry
                var explanation: String
            }
            let decoded = try JSONDecoder().decode(Shown.self, from: Data(json.stdout.utf8))
            #expect(decoded.conflict.kind == .clockAdjustment)
            #expect(decoded.conflict.clockAdjustment.deviceHlc == HLC(wall: Self.issueWall, counter: 0))
            #expect(decoded.conflict.clockAdjustment.aheadMillis == Self.issueWall - decoded.conflict.clockAdjustment.serverHlc.wall)
            #expect(decoded.explanation.contains("beyond any date"))

            let list = try CLI.run(["conflicts", "--json", "--db", logged.db])
            #expect(list.status == 0, "\(list.stderr)")
            let entries = try JSONDecoder().decode(ConflictsResponse.self, from: Data(list.stdout.utf8)).conflicts
            #expect(Set(entries.map(\.kind)) == Set(ConflictKind.allCases))
        }

        @Test("the table tells a clock adjustment and a deletion notice from a conflict: only a conflict has a lost write")
        func tableTellsKindsApart() async throws {
            let logged = try await logOneOfEach()
            let table = try CLI.run(["conflicts", "--db", logged.db])
            #expect(table.status == 0, "\(table.stderr)")
            let lines = table.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.contains("  RULE  ") == true && lines.first?.hasSuffix("  LOST / NOTE") == true, "\(lines.first ?? "")")
            func row(_ rule: ConflictRule) throws -> String {
                try #require(lines.first { $0.hasPrefix("\(logged.ids[rule]!) ") })
            }
            let conflict = try row(.addWins)
            #expect(conflict.contains("true from tablet #1") && conflict.hasSuffix("false from phone #1"))
            let adjustment = try row(.clockSkew)
            #expect(adjustment.range(of: #"true from phone #2 +clock adjusted: device stamped wall 9223372036854775296 ms \(beyond any date\), server time [0-9-]+ [0-9:.]+ UTC, ahead by 29247[0-9]{4} years$"#,
                                     options: .regularExpression) != nil, "\(adjustment)")
            #expect(adjustment.components(separatedBy: "from phone #2").count == 2, "the write is shown once: \(adjustment)")
            let notice = try row(.articleDeleted)
            #expect(notice.range(of: #"true from phone #3 +article deleted: change kept for when it returns$"#, options: .regularExpression) != nil,
                    "\(notice)")
        }

        @Test("ids with line separators and bidirectional overrides, 200 characters long, are shown escaped: one line per entry")
        func oddIdentifiers() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("odd.sqlite").path
            let token = try CLI.run(["users", "add", "alice", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let article = "evil\u{202E}txt.exe"
            let device = "phone\u{2028}two" + String(repeating: "é", count: 191)
            #expect(device.unicodeScalars.count == 200)
            let file = dir.appendingPathComponent("a.jsonl")
            let line = try JSONSerialization.data(withJSONObject: ["id": article, "title": "Odd", "publishedAt": "2026-11-20T09:00:00Z"])
            try line.write(to: file)
            #expect(try CLI.run(["ingest", file.path, "--db", db]).status == 0)
            let server = try ServerProcess(arguments: ["--db", db, "--port", "0"])
            let url = try server.baseURL()
            let push = PushRequest(deviceId: device, mutations: [
                Mutation(id: .max, articleId: article, field: .progress, value: .number(1), hlc: HLC(wall: .max, counter: .max), baseVersion: 0),
            ])
            let answer = try await Loopback.with(url) {
                try await $0.call(.POST, "/v1/sync/push", token: token, body: String(decoding: try JSONEncoder().encode(push), as: UTF8.self))
            }
            #expect(server.stop() == 0)
            #expect(answer.status == 200, "\(answer.body)")

            let table = try CLI.run(["conflicts", "--db", db])
            #expect(table.status == 0, "\(table.stderr)")
            let lines = table.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count == 5, "header, one entry, a blank line, the hint and the end: \(lines)")
            #expect(!table.stdout.unicodeScalars.contains { $0 == "\u{2028}" || $0 == "\u{202E}" })
            #expect(lines[1].contains(#"evil\u{202E}txt.exe"#) && lines[1].contains(#"1 from phone\u{2028}two"#))
            #expect(lines[1].contains("clock adjusted: device stamped wall 9223372036854775807 ms (beyond any date) +9223372036854775807"))
            let shown = try CLI.run(["conflicts", "show", "1", "--db", db])
            #expect(shown.status == 0 && shown.stdout.split(separator: "\n").count == 2, "\(shown.stdout)")
            #expect(shown.stdout.contains("set the reading position of article evil\\u{202E}txt.exe to 100% (mutation 9223372036854775807)"))
        }

        @Test("--rule filters the table and --json, repeated or comma-separated; an unknown rule fails with the valid ones listed")
        func ruleFilter() async throws {
            let logged = try await logOneOfEach()
            func ids(_ arguments: [String]) throws -> [Int64] {
                let r = try CLI.run(["conflicts", "--json", "--db", logged.db] + arguments)
                #expect(r.status == 0, "\(arguments): \(r.stderr)")
                return try JSONDecoder().decode(ConflictsResponse.self, from: Data(r.stdout.utf8)).conflicts.map(\.id)
            }
            #expect(try ids(["--rule", "clock_skew"]) == [logged.ids[.clockSkew]!])
            let two = [logged.ids[.addWins]!, logged.ids[.articleDeleted]!].sorted(by: >)
            #expect(try ids(["--rule", "add_wins,article_deleted"]) == two)
            #expect(try ids(["--rule", "add_wins", "--rule", "article_deleted"]) == two)
            #expect(try ids(["--rule", "add_wins", "--user", "alice", "--article", "story"]) == [logged.ids[.addWins]!])

            let table = try CLI.run(["conflicts", "--rule", "clock_skew", "--db", logged.db])
            #expect(table.status == 0 && table.stdout.split(separator: "\n").filter { $0.contains("clock_skew") }.count == 1)
            #expect(!table.stdout.contains("add_wins"))
            let none = try CLI.run(["conflicts", "--rule", "restore_replay", "--db", logged.db])
            #expect(none.status == 0 && none.stdout.hasPrefix("no conflicts logged under rule restore_replay"))

            let unknown = try CLI.run(["conflicts", "--rule", "clock_skew,skew", "--db", logged.db])
            #expect(unknown.status != 0)
            #expect(unknown.stderr.contains("--rule: unknown rule skew; valid rules are last_writer_wins, add_wins, clock_skew, article_deleted, restore_replay"),
                    "\(unknown.stderr)")
        }
    }
}
