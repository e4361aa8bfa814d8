import Foundation
import NIOHTTP1
import ReaderSyncCore
import Testing

extension ProcessTests {
    /// `reader-sync history` and `why` run as support runs them, on a database a real server wrote.
    @Suite("reader-sync history and why as a process", .serialized)
    struct HistoryCLITests {
        @Test("the bookmark that vanished: history prints both devices' writes and how each was decided, why says it in words; bad input exits non-zero")
        func bookmarkVanished() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("history.sqlite").path
            let token = try CLI.run(["users", "add", "alice", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let file = dir.appendingPathComponent("a.jsonl")
            try #"{"id":"story","title":"A story","publishedAt":"2026-11-20T09:00:00Z"}"#.write(to: file, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["ingest", file.path, "--db", db]).status == 0)

            let server = try ServerProcess(arguments: ["--db", db, "--port", "0"])
            let url = try server.baseURL()
            let wall: Int64 = 1_764_593_000_000  // 2025-12-01 12:43:20 UTC
            func push(_ device: String, _ mutation: Mutation) async throws -> PushResponse {
                let body = String(decoding: try JSONEncoder().encode(PushRequest(deviceId: device, mutations: [mutation])), as: UTF8.self)
                let answer = try await Loopback.with(url) { try await $0.call(.POST, "/v1/sync/push", token: token, body: body) }
                #expect(answer.status == 200, "\(answer.body)")
                return try JSONDecoder().decode(PushResponse.self, from: Data(answer.body.utf8))
            }
            let phone = try await push("phone", Mutation(id: 1, articleId: "story", field: .bookmarked, value: .bool(true),
                                                         hlc: HLC(wall: wall, counter: 0), baseVersion: 0))
            let seen = try #require(phone.states.first?.version)
            _ = try await push("laptop", Mutation(id: 1, articleId: "story", field: .bookmarked, value: .bool(false),
                                                  hlc: HLC(wall: wall + 5_000, counter: 0), baseVersion: seen))
            #expect(server.stop() == 0)

            let history = try CLI.run(["history", "--db", db, "--user", "alice", "--article", "story", "--field", "bookmarked"])
            #expect(history.status == 0, "\(history.stderr)")
            let lines = history.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 3, "two entries, then (after a blank line) why")
            #expect(lines.first == "2025-12-01 12:43:20 UTC  phone #1  bookmarked it  applied (first_write)")
            #expect(lines.dropFirst().first == "2025-12-01 12:43:25 UTC  laptop #1  removed the bookmark  applied (causally_later, had seen v\(seen))")
            let sentence = "It is off because alice's laptop removed the bookmark at 2025-12-01 12:43:25 UTC, "
                + "after it had seen alice's phone's bookmark of 2025-12-01 12:43:20 UTC."
            #expect(lines.last == sentence)

            let why = try CLI.run(["why", "--db", db, "--user", "alice", "--article", "story", "--field", "bookmarked"])
            #expect(why.status == 0)
            #expect(why.stdout == sentence + "\n")

            let json = try CLI.run(["history", "--db", db, "--user", "alice", "--article", "story", "--json"])
            let decoded = try JSONDecoder().decode(HistoryResponse.self, from: Data(json.stdout.utf8))
            #expect(decoded.entries.map(\.write.deviceId) == ["phone", "laptop"])
            #expect(decoded.why == nil, "no field given")

            let badField = try CLI.run(["why", "--db", db, "--user", "alice", "--article", "story", "--field", "starred"])
            #expect(badField.status != 0 && badField.stderr.contains("--field must be read, bookmarked or progress"))
            let nobody = try CLI.run(["history", "--db", db, "--user", "nobody", "--article", "story"])
            #expect(nobody.status != 0 && nobody.stderr.contains("nobody"))
            let untouched = try CLI.run(["why", "--db", db, "--user", "alice", "--article", "story", "--field", "read"])
            #expect(untouched.stdout == "It is unread: no device of alice has changed it.\n")
        }
    }
}
