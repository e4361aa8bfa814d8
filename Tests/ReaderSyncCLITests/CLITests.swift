import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReaderSyncCore
@testable import ReaderSyncService
import Testing

extension ProcessTests {
    @Suite("The reader-sync command as a process", .serialized)
    struct CLITests {
        @Test("users add prints only the token; a taken name fails with a message and status 1")
        func usersAdd() throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("r.sqlite").path
            let added = try CLI.run(["users", "add", "alice", "--db", db])
            #expect(added.status == 0)
            let token = added.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(token.hasPrefix("rs_") && token.count == 67 && !token.contains("\n"))
            let again = try CLI.run(["users", "add", "alice", "--db", db])
            #expect(again.status != 0)
            #expect(again.stderr.contains("already exists"))
            let list = try CLI.run(["users", "list", "--db", db])
            #expect(list.status == 0 && list.stdout.contains("alice"))
            #expect(!list.stdout.contains(token))
        }

        @Test("ingest prints the counts and each bad line's number, stores the good lines, and exits 1")
        func ingest() throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("r.sqlite").path
            let file = dir.appendingPathComponent("articles.jsonl")
            try [
                #"{"id":"a1","title":"One","publishedAt":"2026-11-20T09:00:00Z"}"#,
                #"{"id":"a2","title":"Two","publishedAt":"not a date"}"#,
                #"{"id":"a3","title":"Three","publishedAt":"2026-11-20T09:00:00Z"}"#,
            ].joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
            let first = try CLI.run(["ingest", file.path, "--db", db])
            #expect(first.status == 1)
            #expect(first.stdout.contains("inserted 2, updated 0, unchanged 0, deleted 0, rejected 1"))
            #expect(first.stdout.contains(#"line 2: publishedAt "not a date" is not a valid date-time"#))
            #expect(first.stderr.contains("1 line(s) rejected"))

            let good = dir.appendingPathComponent("good.jsonl")
            try #"{"id":"a1","title":"One","publishedAt":"2026-11-20T09:00:00Z"}"#.write(to: good, atomically: true, encoding: .utf8)
            let again = try CLI.run(["ingest", good.path, "--db", db, "--json"])
            #expect(again.status == 0)
            let report = try JSONDecoder().decode(IngestReport.self, from: Data(again.stdout.utf8))
            #expect(report.unchanged == 1)

            let missing = try CLI.run(["ingest", dir.appendingPathComponent("nope.jsonl").path, "--db", db])
            #expect(missing.status != 0 && missing.stderr.contains("cannot read"))
        }

        @Test("reading commands refuse a database path that does not exist")
        func missingDatabase() throws {
            let dir = try CLI.temporaryDirectory()
            let r = try CLI.run(["conflicts", "--db", dir.appendingPathComponent("typo.sqlite").path])
            #expect(r.status != 0 && r.stderr.contains("no database at"))
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("typo.sqlite").path))
            let bad = try CLI.run(["serve", "--port", "70000"])
            #expect(bad.status != 0 && bad.stderr.contains("--port"))
            for (flag, value) in [("--durability", "sometimes"), ("--max-concurrent-requests", "0"), ("--request-timeout", "0"),
                                  ("--log-level", "loud"), ("--max-clock-skew", "9223372036854775807"), ("--max-clock-skew", "-1"),
                                  ("--request-timeout", "inf"), ("--idle-timeout", "1e300"), ("--response-timeout", "nan"),
                                  ("--events-heartbeat", "inf"), ("--compact-interval", "1e300"), ("--db-statement-timeout", "inf")] {
                let refused = try CLI.run(["serve", flag, value, "--db", dir.appendingPathComponent("never.sqlite").path])
                #expect(refused.status == 64 && refused.stderr.contains(flag), "\(flag) \(value): \(refused.stderr)")
            }
            // Timeouts are whole milliseconds: less than one would be none (no statement timeout at all).
            for (flag, value) in [("--db-statement-timeout", "0.0001"), ("--db-idle-in-transaction-timeout", "1e300")] {
                let refused = try CLI.run(["conflicts", flag, value, "--db", dir.appendingPathComponent("never.sqlite").path])
                #expect(refused.status == 64 && refused.stderr.contains("\(flag) must be from 0.001 to 86400"), "\(flag) \(value): \(refused.stderr)")
            }
            let noBackup = try CLI.run(["restore", "--from", dir.appendingPathComponent("missing.sqlite").path,
                                        "--db", dir.appendingPathComponent("db.sqlite").path])
            #expect(noBackup.status != 0 && noBackup.stderr.contains("no backup at"))
            let notOurs = dir.appendingPathComponent("not-ours.sqlite")
            try Data("just text".utf8).write(to: notOurs)
            let refusedFile = try CLI.run(["restore", "--from", notOurs.path, "--db", dir.appendingPathComponent("db.sqlite").path])
            #expect(refusedFile.status != 0, "\(refusedFile.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("db.sqlite").path))
        }

        @Test("serve on a free port; the CLI works on the same file while it runs; conflicts explain themselves; SIGTERM stops it")
        func serveAndInspect() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("live.sqlite").path
            let server = try ServerProcess(arguments: ["--db", db, "--port", "0"])
            let banner = try server.waitForOutput(containing: "admin token")
            let url = try #require(banner.split(separator: "\n").first { $0.contains("http://") }.flatMap { $0.split(separator: " ").last }.map(String.init))
            #expect(banner.contains("database: \(db)"))

            // Users and articles through the CLI, on the file the server is serving.
            let token = try CLI.run(["users", "add", "alice", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let file = dir.appendingPathComponent("a.jsonl")
            try #"{"id":"story","title":"A story","publishedAt":"2026-11-20T09:00:00Z"}"#.write(to: file, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["ingest", file.path, "--db", db]).status == 0)

            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                for (device, value, wall) in [("ipad", true, Int64(1_764_000_000_000)), ("phone", false, Int64(1_764_000_060_000))] {
                    var request = HTTPClientRequest(url: url + "/v1/sync/push")
                    request.method = .POST
                    request.headers.add(name: "Authorization", value: "Bearer \(token)")
                    let push = PushRequest(deviceId: device, mutations: [
                        Mutation(id: 1, articleId: "story", field: .bookmarked, value: .bool(value), hlc: HLC(wall: wall, counter: 0), baseVersion: 0),
                    ])
                    request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(push)))
                    let response = try await client.execute(request, timeout: .seconds(30))
                    _ = try await response.body.collect(upTo: 1 << 20)
                    #expect(response.status == .ok)
                }
            } catch {
                try await client.shutdown()
                throw error
            }
            try await client.shutdown()

            let table = try CLI.run(["conflicts", "--db", db, "--user", "alice"])
            #expect(table.status == 0)
            #expect(table.stdout.contains("add_wins") && table.stdout.contains("story") && table.stdout.contains("true from ipad #1"))
            let json = try CLI.run(["conflicts", "--db", db, "--json"])
            let listed = try JSONDecoder().decode(ConflictsResponse.self, from: Data(json.stdout.utf8))
            let id = try #require(listed.conflicts.first?.id)
            let shown = try CLI.run(["conflicts", "show", String(id), "--db", db])
            #expect(shown.stdout.contains("adding wins over removing"))
            #expect(shown.stdout.contains("ipad bookmarked it") && shown.stdout.contains("phone removed the bookmark"))
            let unknownUser = try CLI.run(["conflicts", "--db", db, "--user", "nobody"])
            #expect(unknownUser.status != 0 && unknownUser.stderr.contains("no user named nobody"))

            #expect(server.stop() == 0)
            #expect(server.outputSoFar.contains("reader-sync stopped"))

            // A second start prints no new admin token.
            let again = try ServerProcess(arguments: ["--db", db, "--port", "0"])
            let secondBanner = try again.waitForOutput(containing: "database:")
            #expect(again.stop() == 0)
            #expect(!secondBanner.contains("admin token"))
        }

        @Test("serve --admin-token sets the admin token, which then creates users over HTTP")
        func givenAdminToken() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("admin.sqlite").path
            let server = try ServerProcess(arguments: ["--db", db, "--port", "0", "--admin-token", "my-own-admin-token-42"])
            let banner = try server.waitForOutput(containing: "database:")
            #expect(!banner.contains("admin token ("))
            let url = try #require(banner.split(separator: "\n").first { $0.contains("http://") }.flatMap { $0.split(separator: " ").last }.map(String.init))
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            var statuses: [UInt] = []
            do {
                for token in ["my-own-admin-token-42", "not-the-admin-token"] {
                    var request = HTTPClientRequest(url: url + "/v1/admin/users")
                    request.method = .POST
                    request.headers.add(name: "Authorization", value: "Bearer \(token)")
                    request.body = .bytes(ByteBuffer(string: #"{"name":"zoe"}"#))
                    let response = try await client.execute(request, timeout: .seconds(30))
                    _ = try await response.body.collect(upTo: 1 << 20)
                    statuses.append(response.status.code)
                }
            } catch {
                try await client.shutdown()
                _ = server.stop()
                throw error
            }
            try await client.shutdown()
            #expect(server.stop() == 0)
            #expect(statuses == [201, 401])
        }

        @Test("simulate runs in process, prints a JSON report with every invariant passing, and refuses bad flags")
        func simulate() throws {
            let dir = try CLI.temporaryDirectory()
            let run = try CLI.run(["simulate", "--seed", "3", "--steps", "80", "--users", "2", "--devices", "2", "--articles", "30",
                                   "--data-dir", dir.path, "--json"])
            #expect(run.status == 0, "\(run.stderr)")
            let data = Data(run.stdout.utf8)
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            #expect(object?["seed"] as? Int == 3)
            let invariants = object?["invariants"] as? [[String: Any]] ?? []
            #expect(invariants.count == 8 && invariants.allSatisfy { $0["passed"] as? Bool == true })
            #expect((object?["replayCommand"] as? String)?.contains("--seed 3") == true)
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("user1-d1.sqlite").path))

            let bad = try CLI.run(["simulate", "--fault-rate", "2"])
            #expect(bad.status != 0 && bad.stderr.contains("--fault-rate"))
            let noToken = try CLI.run(["simulate", "--server", "http://127.0.0.1:9"])
            #expect(noToken.status != 0 && noToken.stderr.contains("--admin-token"))
        }

        @Test("demo runs a real server on a free port, simulates readers and prints the report, the log and what to try next")
        func demo() throws {
            let run = try CLI.run(["demo", "--seed", "5", "--steps", "120"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("server: http://127.0.0.1:"))
            #expect(run.stdout.contains("[pass] convergence") && !run.stdout.contains("FAIL"))
            // Real conflicts and clock adjustments in two tables, so neither reads as the other.
            #expect(run.stdout.contains("Conflicts (newest 10)") && run.stdout.contains("Clock adjustments and notices (newest 5)"))
            #expect(run.stdout.contains("Try next:"))
        }

        @Test("bench --small runs every scenario against a real serve process and reports every figure (no timing asserted)")
        func benchSmoke() throws {
            let dir = try CLI.temporaryDirectory()
            let run = try CLI.run(["bench", "--small", "--json", "--work-dir", dir.path])
            #expect(run.status == 0, "\(run.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
            let figures = object?["figures"] as? [String: Double] ?? [:]
            for name in ["S0.articlesPerSecond", "S1.articlesPerSecond", "S1.wireBytesGzip", "S1.wireBytesPlain", "S2.milliseconds",
                         "S3.mutationsPerSecond", "S3.batchLatencyP99Milliseconds", "floor.S0.articlesPerSecond", "floor.S1.articlesPerSecond",
                         "S1.serverPeakRSSBytes", "cpu.serverSeconds", "S5.pullsPerSecond", "S5.serverCPUSeconds"] {
                #expect((figures[name] ?? 0) > 0, "missing figure \(name)")
            }
            #expect(figures["S2.changes"] == 320 && figures["S2.deletions"] == 20)
            #expect(figures["S4.mismatches"] == 0 && figures["S4.devices"] == 60)
            // Every S5 device pulled exactly its user's states.
            #expect(figures["S5.pulls"] == 60 && figures["S5.statesPerPull"] == 400)
            #expect((figures["S1.wireBytesPlain"] ?? 0) > (figures["S1.wireBytesGzip"] ?? 0))
        }
    }
}
