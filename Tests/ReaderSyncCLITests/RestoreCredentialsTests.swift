import Foundation
import NIOHTTP1
import ReaderSyncClient
import ReaderSyncCore
import Testing

extension ProcessTests {
    /// Issue 10 item 3: a restore brought back the backup's tokens (a revoked one worked again, the new
    /// one got 401). Security state never goes back in time: the replaced database's credentials are
    /// carried over, and a user created after the backup can still give back what she wrote.
    @Suite("Restore keeps users and tokens of the replaced database", .serialized)
    struct RestoreCredentialsTests {
        private static let admin = "restore-credentials-admin-token"

        /// A fresh database with one article, `story-1` and `story-2`.
        private static func database(_ dir: URL, _ name: String) throws -> String {
            let db = dir.appendingPathComponent(name).path
            let corpus = dir.appendingPathComponent("\(name).jsonl")
            try [1, 2].map { #"{"id":"story-\#($0)","title":"Story \#($0)","publishedAt":"2026-11-20T09:00:00Z"}"# }
                .joined(separator: "\n").write(to: corpus, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["ingest", corpus.path, "--db", db]).status == 0)
            return db
        }

        private static func output(_ arguments: [String]) throws -> String {
            let result = try CLI.run(arguments)
            guard result.status == 0 else { throw CLIFailure("\(arguments) failed: \(result.stderr)") }
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// Runs `body` against `reader-sync serve` on `db`, stopped afterwards (also when `body` throws).
        private static func serving(_ db: String, adminToken: String? = admin,
                                    _ body: (ServerProcess, Loopback) async throws -> Void) async throws {
            let server = try ServerProcess(arguments: ["--db", db, "--port", "0"] + (adminToken.map { ["--admin-token", $0] } ?? []))
            do {
                let url = try server.baseURL()
                try await Loopback.with(url) { try await body(server, $0) }
                #expect(server.stop() == 0)
            } catch {
                _ = server.stop()
                throw error
            }
        }

        @Test("backup, users token alice, restore: the old, revoked token gets 401 and the new one works (the issue's input)")
        func reissuedTokenSurvivesRestore() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = try Self.database(dir, "live.sqlite")
            let backup = dir.appendingPathComponent("b.sqlite").path
            let old = try Self.output(["users", "add", "alice", "--db", db])
            _ = try Self.output(["backup", "--db", db, "--out", backup])
            let new = try Self.output(["users", "token", "alice", "--db", db])
            #expect(new.hasPrefix("rs_") && new != old)

            let restored = try Self.output(["restore", "--from", backup, "--db", db])
            #expect(restored.contains("kept from the replaced database: the tokens and revocations of 1 user"))
            try await Self.serving(db) { _, http async throws in
                #expect(try await http.call(.GET, "/v1/sync/pull", token: old).status == 401, "the revoked token came back")
                #expect(try await http.call(.GET, "/v1/sync/pull", token: new).status == 200, "the new token was lost")
            }
        }

        @Test("a token revoked after the backup stays revoked after the restore")
        func revocationSurvivesRestore() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = try Self.database(dir, "live.sqlite")
            let backup = dir.appendingPathComponent("b.sqlite").path
            let token = try Self.output(["users", "add", "bob", "--db", db])
            _ = try Self.output(["backup", "--db", db, "--out", backup])
            _ = try Self.output(["users", "revoke", "bob", "--db", db])

            _ = try Self.output(["restore", "--from", backup, "--db", db])
            #expect(try Self.output(["users", "list", "--db", db]).contains("revoked 20"))
            try await Self.serving(db) { _, http async throws in
                #expect(try await http.call(.GET, "/v1/sync/pull", token: token).status == 401)
            }
        }

        @Test("app passwords are credentials too: one removed after the backup stays removed after the restore, one made after it works")
        func appPasswordsSurviveRestore() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = try Self.database(dir, "live.sqlite")
            let backup = dir.appendingPathComponent("b.sqlite").path
            _ = try Self.output(["users", "add", "alice", "--db", db])
            let removed = try Self.output(["users", "app-password", "alice", "--label", "old-phone", "--db", db])
            _ = try Self.output(["backup", "--db", db, "--out", backup])
            _ = try Self.output(["users", "revoke-app-password", "alice", "old-phone", "--db", db])
            let made = try Self.output(["users", "app-password", "alice", "--label", "newsboat", "--db", db])

            _ = try Self.output(["restore", "--from", backup, "--db", db])
            #expect(try Self.output(["users", "app-passwords", "alice", "--db", db]).contains("newsboat"))
            try await Self.serving(db) { _, http async throws in
                for (password, status) in [(removed, 401 as UInt), (made, 200)] {
                    let login = try await http.call(.POST, "/accounts/ClientLogin", token: nil, body: "Email=alice&Passwd=\(password)")
                    #expect(login.status == status, "\(login.body)")
                }
            }
        }

        @Test("an admin token set with serve --admin-token after the backup stays; the backup's older one gets 401")
        func adminTokenSurvivesRestore() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = try Self.database(dir, "live.sqlite")
            let backup = dir.appendingPathComponent("b.sqlite").path
            let first = "first-admin-token-before-backup"
            let second = "second-admin-token-after-backup"
            try await Self.serving(db, adminToken: first) { _, _ in }
            _ = try Self.output(["backup", "--db", db, "--out", backup])
            try await Self.serving(db, adminToken: second) { _, _ in }

            _ = try Self.output(["restore", "--from", backup, "--db", db])
            // No --admin-token: the server uses the stored hash, and prints no new token.
            try await Self.serving(db, adminToken: nil) { server, http async throws in
                #expect(!server.outputSoFar.contains("admin token (shown only this once"))
                #expect(try await http.call(.GET, "/v1/admin/conflicts", token: first).status == 401)
                #expect(try await http.call(.GET, "/v1/admin/conflicts", token: second).status == 200)
            }
        }

        @Test("a user created after the backup can still sign in: her device gets 410 reset_required, gives back what it wrote, and pulls it")
        func userCreatedAfterBackupGivesBack() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = try Self.database(dir, "live.sqlite")
            let backup = dir.appendingPathComponent("b.sqlite").path
            _ = try Self.output(["users", "add", "alice", "--db", db])
            _ = try Self.output(["backup", "--db", db, "--out", backup])
            let token = try Self.output(["users", "add", "carol", "--db", db])
            let phone = try ReaderStore(path: dir.appendingPathComponent("carol-phone.sqlite").path, deviceId: "carol-phone")
            try await Self.serving(db) { server, _ async throws in
                try phone.markRead("story-1", true)
                _ = try await SyncEngine(store: phone, transport: HTTPSyncTransport(baseURL: try server.baseURL(), token: token)).sync()
            }
            try phone.setBookmarked("story-2", true)  // offline, after the server stopped

            let restored = try Self.output(["restore", "--from", backup, "--db", db])
            #expect(restored.contains("(created after the backup: carol)"))
            try await Self.serving(db) { server, http async throws in
                let report = try await SyncEngine(store: phone, transport: HTTPSyncTransport(baseURL: try server.baseURL(), token: token)).sync()
                #expect(report.serverWasReset)
                #expect(try phone.pendingChangeCount() == 0)
                let pulled = try await http.call(.GET, "/v1/sync/pull", token: token)
                #expect(pulled.status == 200)
                let states = try JSONDecoder().decode(PullResponse.self, from: Data(pulled.body.utf8)).states
                #expect(states.first { $0.articleId == "story-1" }?.read == true)
                #expect(states.first { $0.articleId == "story-2" }?.bookmarked == true)
            }
            let carol = try Self.output(["users", "list", "--json", "--db", db])
            #expect(carol.contains("\"carol\""))
        }

        @Test("a user only the backup has (the replaced database is an unrelated one) keeps the backup's token; users of both take the replaced one's")
        func userOnlyInBackup() async throws {
            // Users cannot be deleted, so only an unrelated database lacks one: a fresh server's.
            let dir = try CLI.temporaryDirectory()
            let origin = try Self.database(dir, "origin.sqlite")
            let backup = dir.appendingPathComponent("b.sqlite").path
            let aliceInBackup = try Self.output(["users", "add", "alice", "--db", origin])
            let dave = try Self.output(["users", "add", "dave", "--db", origin])
            _ = try Self.output(["backup", "--db", origin, "--out", backup])
            let db = try Self.database(dir, "fresh.sqlite")
            let alice = try Self.output(["users", "add", "alice", "--db", db])

            let restored = try Self.output(["restore", "--from", backup, "--db", db])
            #expect(restored.contains("the replaced database did not have dave: the backup's tokens stay"))
            try await Self.serving(db) { _, http async throws in
                #expect(try await http.call(.GET, "/v1/sync/pull", token: alice).status == 200)
                #expect(try await http.call(.GET, "/v1/sync/pull", token: aliceInBackup).status == 401)
                #expect(try await http.call(.GET, "/v1/sync/pull", token: dave).status == 200)
            }
        }

        @Test("restore onto a missing or empty file takes the backup's users; onto an unreadable one it is refused and changes nothing")
        func missingEmptyOrUnreadableReplacedDatabase() async throws {
            let dir = try CLI.temporaryDirectory()
            let origin = try Self.database(dir, "origin.sqlite")
            let backup = dir.appendingPathComponent("b.sqlite").path
            let alice = try Self.output(["users", "add", "alice", "--db", origin])
            _ = try Self.output(["backup", "--db", origin, "--out", backup])

            let missing = dir.appendingPathComponent("missing.sqlite").path
            #expect(try Self.output(["restore", "--from", backup, "--db", missing])
                .contains("no database was at \(missing): users, tokens and the admin token are the backup's"))
            try await Self.serving(missing) { _, http async throws in
                #expect(try await http.call(.GET, "/v1/sync/pull", token: alice).status == 200)
            }

            let empty = dir.appendingPathComponent("empty.sqlite").path
            #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
            #expect(try Self.output(["restore", "--from", backup, "--db", empty]).contains("the replaced database had no users and no admin token: the backup's are used"))
            #expect(try Self.output(["users", "list", "--db", empty]).contains("valid"))

            let garbage = dir.appendingPathComponent("garbage.sqlite")
            let bytes = Data(repeating: 0x5A, count: 8192)
            try bytes.write(to: garbage)
            let refused = try CLI.run(["restore", "--from", backup, "--db", garbage.path])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("cannot read the users and tokens of \(garbage.path)"))
            #expect(refused.stderr.contains("move \(garbage.path) aside"))
            #expect(try Data(contentsOf: garbage) == bytes, "the unreadable file is left as it was")
            let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            #expect(!left.contains { $0.hasPrefix("garbage.sqlite.") && !$0.hasSuffix(".lock") }, "no staging file, nothing moved aside: \(left)")
        }
    }
}
