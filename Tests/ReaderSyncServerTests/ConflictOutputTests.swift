import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// The conflict log through the API: extreme clock values (issue 10 item 5), clock adjustments
/// told apart from conflicts, and the rule filter (item 7).
@Suite("Conflict output")
struct ConflictOutputTests {
    /// The wall of issue 10 item 5.
    static let issueWall: Int64 = 9_223_372_036_854_775_296

    /// The fields this change adds to an entry, as a client reads them.
    struct Added: Decodable {
        var id: Int64
        var rule: ConflictRule
        var kind: ConflictKind
        var clockAdjustment: ClockAdjustment?
    }

    @Test("the issue's push (wall 9223372036854775296) and Int64.max stamps show in both conflict APIs as clock adjustments, valid against the document", arguments: Backend.available)
    func extremeWallsThroughTheAPI(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let issue = PushRequest(deviceId: "phone", mutations: [mutation(1, "art-1", .read, .bool(true), wall: Self.issueWall)])
            let pushed = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(issue)).decode(PushResponse.self)
            #expect(pushed.results.map(\.outcome) == [.applied])
            let edge = PushRequest(deviceId: "tablet", mutations: [
                mutation(.max, "art-1", .progress, .number(1), wall: .max, counter: .max, base: .max),
            ])
            #expect(try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(edge)).status == .ok)

            for (path, auth) in [("/v1/conflicts", token), ("/v1/admin/conflicts?user=alice", Harness.adminToken)] {
                let response = try await call(client, .get, path, token: auth)
                #expect(response.status == .ok)
                let entries = try response.decode(ConflictsResponse.self).conflicts
                let added = try JSONDecoder().decode([String: [Added]].self, from: Data(response.body.readableBytesView))["conflicts"] ?? []
                #expect(added.map(\.kind) == [.clockAdjustment, .clockAdjustment])
                let issueEntry = try #require(added.last?.clockAdjustment)
                #expect(issueEntry.deviceHlc == HLC(wall: Self.issueWall, counter: 0))
                #expect(issueEntry.serverHlc == HLC(wall: h.clock.nowMillis, counter: 0))
                #expect(issueEntry.aheadMillis == Self.issueWall - h.clock.nowMillis)
                let edgeEntry = try #require(added.first?.clockAdjustment)
                #expect(edgeEntry.deviceHlc == HLC(wall: .max, counter: .max) && edgeEntry.serverHlc == HLC(wall: h.clock.nowMillis, counter: .max))
                let newest = try #require(entries.first)
                #expect(newest.winner.mutationId == .max && newest.baseVersion == .max)
                #expect(newest.explanation.contains("(wall 9223372036854775807 ms (beyond any date) +9223372036854775807)"))
                #expect(entries.last?.explanation.contains("wall 9223372036854775296 ms (beyond any date)") == true)
                #expect(entries.allSatisfy { $0.lostWrite == nil && $0.note?.hasPrefix("clock adjusted: device stamped wall ") == true })
            }

            // The metrics count both entries and stay well-formed.
            let metrics = try await call(client, .get, "/metrics")
            let text = String(buffer: metrics.body)
            #expect(text.contains(#"readersync_conflicts_total{rule="clock_skew"} 2"#))
            #expect(text.contains(#"readersync_mutations_total{outcome="applied"} 2"#))
        }
    }

    /// A conflict (`add_wins`), a clock adjustment and a deletion notice for alice; returns their ids by rule.
    func logOneOfEach(_ h: Harness, _ client: any TestClientProtocol, token: String) async throws -> [ConflictRule: Int64] {
        let now = h.clock.nowMillis
        _ = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(PushRequest(deviceId: "tablet", mutations: [
            mutation(1, "art-1", .bookmarked, .bool(true), wall: now - 60_000),
        ])))
        let phone = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(PushRequest(deviceId: "phone", mutations: [
            mutation(1, "art-1", .bookmarked, .bool(false), wall: now - 30_000),
            mutation(2, "art-1", .read, .bool(true), wall: now + 86_400_000),
        ]))).decode(PushResponse.self)
        #expect(try await call(client, .delete, "/v1/admin/articles/art-2", token: Harness.adminToken).status == .ok)
        let late = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(PushRequest(deviceId: "phone", mutations: [
            mutation(3, "art-2", .read, .bool(true), wall: now - 1000),
        ]))).decode(PushResponse.self)
        return [
            .addWins: try #require(phone.results[0].conflictId),
            .clockSkew: try #require(phone.results[1].conflictId),
            .articleDeleted: try #require(late.results[0].conflictId),
        ]
    }

    @Test("?rule= filters both conflict logs, repeated or comma-separated; an unknown rule is 400 invalid_request listing the valid ones", arguments: Backend.available)
    func ruleFilter(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(2)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let ids = try await logOneOfEach(h, client, token: token)
            func listed(_ path: String, _ auth: String) async throws -> [Int64] {
                let response = try await call(client, .get, path, token: auth)
                #expect(response.status == .ok, "\(path)")
                return try response.decode(ConflictsResponse.self).conflicts.map(\.id)
            }
            let all = try await listed("/v1/conflicts", token)
            #expect(Set(all) == Set(ids.values) && all == all.sorted(by: >))
            #expect(try await listed("/v1/conflicts?rule=clock_skew", token) == [ids[.clockSkew]!])
            #expect(try await listed("/v1/conflicts?rule=", token) == all)
            let two = [ids[.clockSkew]!, ids[.addWins]!].sorted(by: >)
            #expect(try await listed("/v1/conflicts?rule=add_wins,clock_skew", token) == two)
            #expect(try await listed("/v1/conflicts?rule=add_wins&rule=clock_skew", token) == two)
            #expect(try await listed("/v1/conflicts?rule=add_wins%2Cclock_skew&limit=1", token) == [two[0]])
            #expect(try await listed("/v1/conflicts?rule=last_writer_wins", token) == [])
            #expect(try await listed("/v1/admin/conflicts?user=alice&rule=article_deleted", Harness.adminToken) == [ids[.articleDeleted]!])
            #expect(try await listed("/v1/admin/conflicts?rule=add_wins&article=art-1", Harness.adminToken) == [ids[.addWins]!])

            // The document's grammar exactly (found by schemathesis): no spaces, no empty item between commas.
            for path in ["/v1/conflicts?rule=add_wins,", "/v1/conflicts?rule=add_wins,,clock_skew", "/v1/conflicts?rule=%20add_wins"] {
                let refused = try await call(client, .get, path, token: token)
                #expect(refused.status == .badRequest && refused.errorCode == "invalid_request", "\(path)")
            }
            for (path, auth) in [("/v1/conflicts?rule=skew", token), ("/v1/admin/conflicts?rule=clock_skew,skew", Harness.adminToken)] {
                let refused = try await call(client, .get, path, token: auth)
                #expect(refused.status == .badRequest && refused.errorCode == "invalid_request", "\(path)")
                let message = try refused.decode(ErrorBody.self).error.message
                #expect(message.contains("unknown rule skew") && ConflictRule.allCases.allSatisfy { message.contains($0.rawValue) })
            }
        }
    }

    @Test("each kind of entry, encoded as the CLI's --json encodes it, matches the Conflict schema", arguments: Backend.available)
    func jsonMatchesDocument(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(2)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in _ = try await logOneOfEach(h, client, token: token) }
        let conflicts = try await h.service.conflicts(ConflictQuery())
        #expect(Set(conflicts.map(\.kind)) == Set(ConflictKind.allCases))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let document = try JSONValue.parse(encoder.encode(ConflictsResponse(conflicts: conflicts)))
        let problems = openAPI.validate(document, against: .object(["$ref": .string("#/components/schemas/ConflictsResponse")]))
        #expect(problems.isEmpty, "\(problems)")
        let kinds = document["conflicts"]?.array?.compactMap { $0["kind"]?.string }
        #expect(kinds?.sorted() == ["clock_adjustment", "conflict", "notice"])
    }

    @Test("an unreadable conflict log row fails the read, naming the entry, instead of showing a made-up rule or value")
    func unreadableRow() async throws {
        for damage in ["UPDATE conflict SET rule = 'future_rule'", "UPDATE conflict SET winnerValue = 'maybe'",
                       "UPDATE conflict SET field = 'stars'", "UPDATE conflict SET loserDeviceId = NULL"] {
            let h = try await Harness()
            try await h.seedArticles(1)
            let (_, token) = try await h.createUser("alice")
            try await h.withClient { client in
                _ = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(PushRequest(deviceId: "phone", mutations: [
                    mutation(1, "art-1", .read, .bool(true), wall: Self.issueWall),
                ])))
            }
            let id = try #require(try await h.store.conflicts(ConflictQuery()).first?.id)
            try await h.sqlite.dbPool.write { db in try db.execute(sql: damage) }
            await #expect(throws: StoreError.self, "\(damage)") { try await h.store.conflicts(ConflictQuery()) }
            let error = await #expect(throws: StoreError.self, "\(damage)") { try await h.store.conflict(id: id) }
            #expect(error?.description.hasPrefix("conflict log entry \(id) is unreadable: ") == true)
        }
    }
}
