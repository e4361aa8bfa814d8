import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

@Suite("Protocol v1 through the real router")
struct RouterTests {
    @Test("health needs no token and states the protocol version", arguments: Backend.available)
    func health(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.withClient { client in
            let r = try await call(client, .get, "/v1/health")
            #expect(r.status == .ok)
            let body = try r.decode(HealthResponse.self)
            #expect(body.status == "ok" && body.protocolVersion == 1)
        }
    }

    @Test("a device pushes, then pulls its own state back with the articles", arguments: Backend.available)
    func pushThenPull(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(3)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let push = PushRequest(deviceId: "phone", mutations: [
                mutation(1, "art-1", .read, .bool(true)),
                mutation(2, "art-2", .bookmarked, .bool(true)),
                mutation(3, "art-2", .progress, .number(0.42)),
            ])
            let pushed = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(push))
            #expect(pushed.status == .ok)
            let response = try pushed.decode(PushResponse.self)
            #expect(response.lastMutationId == 3)
            #expect(response.results.map(\.outcome) == [.applied, .applied, .applied])
            #expect(response.results.allSatisfy { $0.seq != nil })
            // The push answers with the resulting state of each article it named.
            #expect(response.states.map(\.articleId) == ["art-1", "art-2"])
            #expect(response.states[1].bookmarked && response.states[1].progress == 0.42 && response.states[1].version == 2)

            let pulled = try await call(client, .get, "/v1/sync/pull", token: token)
            let page = try pulled.decode(PullResponse.self)
            #expect(page.articles.map(\.id) == ["art-1", "art-2", "art-3"])
            #expect(page.hasMore == false)
            let states = Dictionary(uniqueKeysWithValues: page.states.map { ($0.articleId, $0) })
            #expect(states["art-1"]?.read == true)
            #expect(states["art-2"]?.bookmarked == true && states["art-2"]?.progress == 0.42 && states["art-2"]?.version == 2)
            #expect(states["art-2"]?.hlc == HLC(wall: 1_764_000_000_000 - 60_000, counter: 0))
            #expect(states["art-2"]?.writers.progress?.deviceId == "phone")
            #expect(states["art-2"]?.writers.read == nil)

            // Nothing new after the cursor.
            let again = try await call(client, .get, "/v1/sync/pull?cursor=\(page.cursor)", token: token).decode(PullResponse.self)
            #expect(again.articles.isEmpty && again.states.isEmpty && again.deletedArticleIds.isEmpty && !again.hasMore)
        }
    }

    @Test("the same push twice is duplicate the second time and changes nothing", arguments: Backend.available)
    func idempotentPush(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (alice, token) = try await h.createUser("alice")
        let push = PushRequest(deviceId: "phone", mutations: [mutation(1, "art-1", .read, .bool(true)), mutation(2, "art-1", .progress, .number(0.5))])
        try await h.withClient { client in
            _ = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(push))
            let before = try await h.store.state(userId: alice.id, articleId: "art-1")
            let second = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(push)).decode(PushResponse.self)
            #expect(second.results.map(\.outcome) == [.duplicate, .duplicate])
            #expect(second.lastMutationId == 2)
            #expect(try await h.store.state(userId: alice.id, articleId: "art-1") == before)
        }
    }

    @Test("a device id is bound to the first user that pushes with it", arguments: Backend.available)
    func deviceBinding(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (_, alice) = try await h.createUser("alice")
        let (bobUser, bob) = try await h.createUser("bob")
        try await h.withClient { client in
            let first = PushRequest(deviceId: "shared-id", mutations: [mutation(1, "art-1", .read, .bool(true))])
            #expect(try await call(client, .post, "/v1/sync/push", token: alice, body: try jsonBody(first)).status == .ok)
            let stolen = PushRequest(deviceId: "shared-id", mutations: [mutation(2, "art-1", .read, .bool(false))])
            let r = try await call(client, .post, "/v1/sync/push", token: bob, body: try jsonBody(stolen))
            #expect(r.status == .forbidden)
            #expect(r.errorCode == "forbidden")
            #expect(try await h.store.state(userId: bobUser.id, articleId: "art-1") == nil)
        }
    }

    @Test("concurrent writes from two devices are logged with winner, loser and rule", arguments: Backend.available)
    func conflictLog(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (_, token) = try await h.createUser("alice")
        let (_, bob) = try await h.createUser("bob")
        try await h.withClient { client in
            let tablet = PushRequest(deviceId: "tablet", mutations: [mutation(1, "art-1", .bookmarked, .bool(true), wall: 1_763_999_000_000)])
            _ = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(tablet))
            // The phone never saw the bookmark (baseVersion 0) and un-bookmarks later by its clock.
            let phone = PushRequest(deviceId: "phone", mutations: [mutation(1, "art-1", .bookmarked, .bool(false), wall: 1_763_999_500_000)])
            let result = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(phone)).decode(PushResponse.self)
            #expect(result.results[0].outcome == .superseded)
            let conflictId = try #require(result.results[0].conflictId)

            let own = try await call(client, .get, "/v1/conflicts", token: token).decode(ConflictsResponse.self)
            let entry = try #require(own.conflicts.first)
            #expect(entry.id == conflictId)
            #expect(entry.user == "alice" && entry.articleId == "art-1" && entry.field == .bookmarked && entry.rule == .addWins)
            #expect(entry.winner.deviceId == "tablet" && entry.winner.value == .bool(true) && entry.winner.mutationId == 1)
            #expect(entry.loser?.deviceId == "phone" && entry.loser?.value == .bool(false))
            #expect(entry.baseVersion == 0)
            #expect(entry.detectedAt == "2025-11-24T16:00:00Z")

            // Another user sees none of it; the admin can filter by user and article.
            let bobs = try await call(client, .get, "/v1/conflicts", token: bob).decode(ConflictsResponse.self)
            #expect(bobs.conflicts.isEmpty)
            let admin = try await call(client, .get, "/v1/admin/conflicts?user=alice&article=art-1", token: Harness.adminToken)
                .decode(ConflictsResponse.self)
            #expect(admin.conflicts.map(\.id) == [conflictId])
            let none = try await call(client, .get, "/v1/admin/conflicts?article=other", token: Harness.adminToken)
                .decode(ConflictsResponse.self)
            #expect(none.conflicts.isEmpty)
            let unknownUser = try await call(client, .get, "/v1/admin/conflicts?user=nobody", token: Harness.adminToken)
            #expect(unknownUser.status == .notFound)

            // The state kept the bookmark.
            let page = try await call(client, .get, "/v1/sync/pull", token: token).decode(PullResponse.self)
            #expect(page.states.first?.bookmarked == true)
        }
    }

    @Test("conflicts page newest first with limit and before", arguments: Backend.available)
    func conflictPaging(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            // Three devices that never saw each other: two read conflicts.
            for (i, device) in ["a", "b", "c"].enumerated() {
                let push = PushRequest(deviceId: device, mutations: [mutation(1, "art-1", .read, .bool(i % 2 == 0), wall: 1_763_999_000_000 + Int64(i))])
                _ = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(push))
            }
            let all = try await call(client, .get, "/v1/conflicts", token: token).decode(ConflictsResponse.self)
            #expect(all.conflicts.count == 2)
            #expect(all.conflicts[0].id > all.conflicts[1].id)
            let first = try await call(client, .get, "/v1/conflicts?limit=1", token: token).decode(ConflictsResponse.self)
            #expect(first.conflicts.map(\.id) == [all.conflicts[0].id])
            let older = try await call(client, .get, "/v1/conflicts?limit=1&before=\(all.conflicts[0].id)", token: token).decode(ConflictsResponse.self)
            #expect(older.conflicts.map(\.id) == [all.conflicts[1].id])
        }
    }

    @Test("admin creates users, ingests JSON Lines and deletes articles", arguments: Backend.available)
    func admin(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.withClient { client in
            let created = try await call(client, .post, "/v1/admin/users", token: Harness.adminToken,
                                         body: try jsonBody(CreateUserRequest(name: "alice")))
            #expect(created.status == .created)
            let token = try created.decode(CreateUserResponse.self).token
            #expect(token.count >= 32)
            let taken = try await call(client, .post, "/v1/admin/users", token: Harness.adminToken,
                                       body: try jsonBody(CreateUserRequest(name: "alice")))
            #expect(taken.status == .conflict && taken.errorCode == "already_exists")
            let badName = try await call(client, .post, "/v1/admin/users", token: Harness.adminToken,
                                         body: try jsonBody(CreateUserRequest(name: "no spaces please")))
            #expect(badName.status == .badRequest && badName.errorCode == "invalid_request")

            let lines = [Harness.articleLine(id: "a", title: "A"), "{oops", Harness.articleLine(id: "b", title: "B")].joined(separator: "\n")
            let ingested = try await call(client, .post, "/v1/admin/articles", token: Harness.adminToken, body: ByteBuffer(string: lines))
            let report = try ingested.decode(IngestReport.self)
            #expect(report.inserted == 2 && report.rejected == 1 && report.errors.first?.line == 2)

            let deleted = try await call(client, .delete, "/v1/admin/articles/a", token: Harness.adminToken)
            #expect(deleted.status == .ok)
            let again = try await call(client, .delete, "/v1/admin/articles/a", token: Harness.adminToken)
            #expect(again.status == .ok)
            #expect((again.json as? [String: Any])?["changed"] as? Bool == false)
            let missing = try await call(client, .delete, "/v1/admin/articles/zzz", token: Harness.adminToken)
            #expect(missing.status == .notFound && missing.errorCode == "not_found")

            let page = try await call(client, .get, "/v1/sync/pull", token: token).decode(PullResponse.self)
            #expect(page.articles.map(\.id) == ["b"])
            #expect(page.deletedArticleIds == ["a"])
        }
    }

    @Test("metrics count requests, mutations by outcome and conflicts by rule", arguments: Backend.available)
    func metrics(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            _ = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(
                PushRequest(deviceId: "p", mutations: [
                    mutation(1, "art-1", .read, .bool(true)), mutation(2, "nope", .read, .bool(true)),
                    mutation(3, "art-1", .bookmarked, .bool(true), wall: 1_764_000_000_000 + 86_400_000),
                ])))
            _ = try await call(client, .get, "/v1/sync/pull", token: token)
            let r = try await call(client, .get, "/metrics")
            #expect(r.status == .ok)
            let text = String(buffer: r.body)
            #expect(text.contains(#"readersync_mutations_total{outcome="applied"} 2"#))
            #expect(text.contains(#"readersync_conflicts_total{rule="clock_skew"} 1"#))
            #expect(text.contains(#"readersync_mutations_total{outcome="rejected"} 1"#))
            #expect(text.contains("readersync_pulls_total 1"))
            #expect(text.contains(#"route="/v1/sync/push""#))
            #expect(text.contains("readersync_request_duration_seconds_bucket"))
        }
    }

    /// Issue 10, item 8: the metrics token was compared with `==`; it now goes through
    /// `Tokens.matches` (hash, then constant-time compare) like the admin token.
    @Test("with a metrics token configured, /metrics needs exactly it", arguments: Backend.available)
    func metricsToken(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let app = buildApplication(service: h.service, configuration: .init(port: 0, metricsToken: "scrape-secret-123"),
                                   logger: .init(label: "test"))
        try await app.test(.router) { client in
            let anonymous = try await call(client, .get, "/metrics")
            #expect(anonymous.status == .unauthorized && anonymous.errorCode == "unauthorized")
            for wrong in ["wrong", "scrape-secret-124", "scrape-secret-12", "scrape-secret-1234", "SCRAPE-SECRET-123", Harness.adminToken] {
                let r = try await call(client, .get, "/metrics", token: wrong)
                #expect(r.status == .unauthorized && r.errorCode == "unauthorized", "\(wrong) answered \(r.status)")
            }
            let basic = try await call(client, .get, "/metrics", headers: [.authorization: "Basic scrape-secret-123"])
            #expect(basic.status == .unauthorized)
            #expect(try await call(client, .get, "/metrics", token: "scrape-secret-123").status == .ok)
        }
        #expect(Tokens.matches("scrape-secret-123", hash: Tokens.hash("scrape-secret-123")))
        #expect(!Tokens.matches("scrape-secret-12", hash: Tokens.hash("scrape-secret-123")))
    }

    /// Issue 10, item 8: PROTOCOL.md said an older agreeing write gets `superseded`; the server
    /// answers `applied` without `seq`, and `superseded` always carries a `conflictId`.
    @Test("a concurrent write that agrees is applied, without seq when its stamp is older; one that loses is superseded with a conflict", arguments: Backend.available)
    func agreeingWriteOutcome(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let phone = PushRequest(deviceId: "phone", mutations: [mutation(1, "art-1", .read, .bool(true), wall: 1_764_000_000_000 - 10_000)])
            _ = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(phone))
            // The tablet had not seen the phone's write (base 0) and stamps the same value earlier.
            let tablet = PushRequest(deviceId: "tablet", mutations: [
                mutation(1, "art-1", .read, .bool(true), wall: 1_764_000_000_000 - 20_000),
                mutation(2, "art-1", .read, .bool(false), wall: 1_764_000_000_000 - 30_000),
            ])
            let results = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(tablet))
                .decode(PushResponse.self).results
            #expect(results.map(\.outcome) == [.applied, .superseded])
            #expect(results[0].seq == nil && results[0].conflictId == nil)
            #expect(results[1].conflictId != nil)
        }
    }

    @Test("responses are gzip-compressed when the request accepts gzip, and only then", arguments: Backend.available)
    func gzip(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(40)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let plain = try await call(client, .get, "/v1/sync/pull", token: token)
            #expect(plain.headers[.contentEncoding] == nil)
            let zipped = try await client.executeRequest(uri: "/v1/sync/pull", method: .get,
                                                         headers: [.authorization: "Bearer \(token)", .acceptEncoding: "br, gzip;q=0.8"], body: nil)
            #expect(zipped.headers[.contentEncoding] == "gzip")
            #expect(zipped.headers[.vary] == "Accept-Encoding")
            #expect(zipped.body.readableBytes * 3 < plain.body.readableBytes)
            // gzip magic number
            #expect(Array(zipped.body.readableBytesView.prefix(2)) == [0x1f, 0x8b])
            let refused = try await client.executeRequest(uri: "/v1/sync/pull", method: .get,
                                                          headers: [.authorization: "Bearer \(token)", .acceptEncoding: "gzip;q=0"], body: nil)
            #expect(refused.headers[.contentEncoding] == nil)
            let small = try await client.executeRequest(uri: "/v1/health", method: .get, headers: [.acceptEncoding: "gzip"], body: nil)
            #expect(small.headers[.contentEncoding] == nil)
        }
        #expect(ResponseCompressionMiddleware<BasicRequestContext>.acceptsGzip("deflate, *"))
        #expect(!ResponseCompressionMiddleware<BasicRequestContext>.acceptsGzip("identity"))
        #expect(!ResponseCompressionMiddleware<BasicRequestContext>.acceptsGzip(nil))
    }
}
