import AsyncHTTPClient
import Foundation
import NIOHTTP1
import ReaderSyncCore
@testable import ReaderSyncService
import Testing

extension ProcessTests {
    @Suite("Tokens and logs of a running server", .serialized)
    struct AuthProcessTests {
        @Test("users revoke makes the token get 401 on the running server; users token issues a new one; the state stays")
        func revokeAndReissue() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("revoke.sqlite").path
            let server = try ServerProcess(arguments: ["--db", db, "--port", "0", "--admin-token", "admin-token-for-revoke-test"])
            defer { _ = server.stop() }
            let url = try server.baseURL()
            let token = try CLI.run(["users", "add", "alice", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let articles = dir.appendingPathComponent("a.jsonl")
            try #"{"id":"story","title":"A story","publishedAt":"2026-11-20T09:00:00Z"}"#.write(to: articles, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["ingest", articles.path, "--db", db]).status == 0)

            try await Loopback.with(url) { http in
                let push = #"{"deviceId":"phone","mutations":[{"id":1,"articleId":"story","field":"read","value":true,"hlc":{"wall":1764000000000,"counter":0},"baseVersion":0}]}"#
                #expect(try await http.call(.POST, "/v1/sync/push", token: token, body: push).status == 200)

                let revoked = try CLI.run(["users", "revoke", "alice", "--db", db])
                #expect(revoked.status == 0 && revoked.stdout.contains("revoked"))
                let refused = try await http.call(.GET, "/v1/sync/pull", token: token)
                #expect(refused.status == 401)
                #expect(refused.body.contains("unauthorized"))
                #expect(try await http.call(.POST, "/v1/sync/push", token: token, body: push).status == 401)
                #expect(try CLI.run(["users", "list", "--db", db]).stdout.contains("revoked 20"))

                let fresh = try CLI.run(["users", "token", "alice", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(fresh.hasPrefix("rs_") && fresh != token)
                #expect(try await http.call(.GET, "/v1/sync/pull", token: token).status == 401)
                let pulled = try await http.call(.GET, "/v1/sync/pull", token: fresh)
                #expect(pulled.status == 200)
                let page = try JSONDecoder().decode(PullResponse.self, from: Data(pulled.body.utf8))
                #expect(page.states.map(\.articleId) == ["story"], "the user's state outlives a revoked token")
                #expect(try CLI.run(["users", "list", "--db", db]).stdout.contains("valid"))
            }
            let unknown = try CLI.run(["users", "revoke", "nobody", "--db", db])
            #expect(unknown.status != 0 && unknown.stderr.contains("no user named nobody"))
        }

        @Test("even at trace level, the server's log holds no token and no article body")
        func logsHoldNoSecrets() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("logs.sqlite").path
            let log = dir.appendingPathComponent("server.log")
            let admin = "admin-token-that-must-not-be-logged"
            let metrics = "metrics-token-that-must-not-be-logged"
            let server = try ServerProcess(arguments: ["--db", db, "--port", "0", "--admin-token", admin,
                                                       "--metrics-token", metrics, "--log-level", "trace"], stderr: log)
            let url = try server.baseURL()
            let body = "SECRET-BODY-\(UUID().uuidString) of the article, which only readers may see"
            var user = ""
            try await Loopback.with(url) { http in
                let created = try await http.call(.POST, "/v1/admin/users", token: admin, body: #"{"name":"bob"}"#)
                #expect(created.status == 201)
                user = try JSONDecoder().decode(CreateUserResponse.self, from: Data(created.body.utf8)).token
                let line = #"{"id":"s1","title":"T","body":"\#(body)","publishedAt":"2026-11-20T09:00:00Z"}"#
                #expect(try await http.call(.POST, "/v1/admin/articles", token: admin, body: line + "\n" + "{not json}\n").status == 200)
                #expect(try await http.call(.GET, "/v1/sync/pull", token: user).body.contains(body))
                let push = #"{"deviceId":"d","mutations":[{"id":1,"articleId":"s1","field":"read","value":true,"hlc":{"wall":1764000000000,"counter":0},"baseVersion":0}]}"#
                #expect(try await http.call(.POST, "/v1/sync/push", token: user, body: push).status == 200)
                // Errors: a wrong token, a user token on an admin route, bad JSON, the metrics token.
                #expect(try await http.call(.GET, "/v1/sync/pull", token: user + "x").status == 401)
                #expect(try await http.call(.POST, "/v1/admin/articles", token: user, body: line).status == 403)
                #expect(try await http.call(.POST, "/v1/sync/push", token: user, body: "{\"deviceId\":\"\(body)\"").status == 400)
                #expect(try await http.call(.GET, "/metrics", token: metrics).status == 200)
            }
            #expect(server.stop() == 0)
            let text = try String(contentsOf: log, encoding: .utf8)
            #expect(text.contains("/v1/sync/push"), "the trace-level access log is on, so the test looks at real log lines")
            for secret in [admin, metrics, user, String(user.dropFirst(3)), body] {
                #expect(!text.contains(secret), "the log contains a secret: \(secret.prefix(12))…")
            }
        }
    }
}
