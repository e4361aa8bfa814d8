import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// Issue 10, item 1: the server tells ids apart by their bytes, as SQLite does, in every layer
/// between the router and the database.
@Suite("Exact identity on the server")
struct ExactIdentityServerTests {
    static let precomposed = "caf\u{E9}"
    static let decomposed = "cafe\u{301}"

    @Test("read on café (U+00E9) and bookmark on café (e + U+0301) in one push land on their own articles", arguments: Backend.available)
    func canonicallyEquivalentArticles(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let lines = [Self.precomposed, Self.decomposed].map { Harness.articleLine(id: $0, title: "Caf\u{E9} \($0.utf8.count)") }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.inserted == 2)
        let (alice, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let push = PushRequest(deviceId: "phone", mutations: [
                mutation(1, Self.precomposed, .read, .bool(true)),
                mutation(2, Self.decomposed, .bookmarked, .bool(true)),
            ])
            let response = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(push))
                .decode(PushResponse.self)
            #expect(response.results.map(\.outcome) == [.applied, .applied])
            #expect(Set(response.results.compactMap(\.seq)).count == 2, "each state row takes its own sequence value")
            // Two states, in byte order (e = 0x65 before 0xC3), each with only its own field.
            #expect(response.states.map(\.articleId.utf8.count) == [Self.decomposed.utf8.count, Self.precomposed.utf8.count])
            #expect(response.states.map(\.articleId.exact) == [Self.decomposed.exact, Self.precomposed.exact])
            #expect(response.states[0].bookmarked && !response.states[0].read)
            #expect(response.states[1].read && !response.states[1].bookmarked)

            let page = try await call(client, .get, "/v1/sync/pull", token: token).decode(PullResponse.self)
            #expect(page.articles.count == 2 && page.states.count == 2)
            let pulled = Dictionary(uniqueKeysWithValues: page.states.map { ($0.articleId.exact, $0) })
            #expect(pulled[Self.precomposed.exact]?.read == true && pulled[Self.precomposed.exact]?.bookmarked == false)
            #expect(pulled[Self.decomposed.exact]?.bookmarked == true && pulled[Self.decomposed.exact]?.read == false)
        }
        let first = try #require(try await h.store.state(userId: alice.id, articleId: Self.precomposed))
        let second = try #require(try await h.store.state(userId: alice.id, articleId: Self.decomposed))
        #expect(first.isRead && !first.isBookmarked)
        #expect(second.isBookmarked && !second.isRead)
    }

    @Test("re-ingesting a title that changed only in normalization stores the new bytes (updated, not unchanged)", arguments: Backend.available)
    func contentComparedByBytes(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let before = Harness.articleLine(id: "a-1", title: "Le " + Self.precomposed)
        let after = Harness.articleLine(id: "a-1", title: "Le " + Self.decomposed)
        #expect(try await h.service.ingest(jsonLines: Array(before.utf8)).inserted == 1)
        let report = try await h.service.ingest(jsonLines: Array(after.utf8))
        #expect(report.updated == 1 && report.unchanged == 0)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let page = try await call(client, .get, "/v1/sync/pull", token: token).decode(PullResponse.self)
            #expect(page.articles.first?.title.isExactly("Le " + Self.decomposed) == true)
            #expect(page.articles.first?.version == 2)
        }
        #expect(try await h.service.ingest(jsonLines: Array(after.utf8)).unchanged == 1)
    }

    @Test("a device id canonically equal to another device's is a different device (bound to its own user)", arguments: Backend.available)
    func canonicallyEquivalentDevices(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (_, alice) = try await h.createUser("alice")
        let (_, bob) = try await h.createUser("bob")
        try await h.withClient { client in
            let first = PushRequest(deviceId: "phon\u{E9}", mutations: [mutation(1, "art-1", .read, .bool(true))])
            #expect(try await call(client, .post, "/v1/sync/push", token: alice, body: try jsonBody(first)).status == .ok)
            // Same text to Swift, other bytes: not alice's device, so bob may bind it.
            let second = PushRequest(deviceId: "phone\u{301}", mutations: [mutation(1, "art-1", .bookmarked, .bool(true))])
            let r = try await call(client, .post, "/v1/sync/push", token: bob, body: try jsonBody(second))
            #expect(r.status == .ok)
            #expect(try r.decode(PushResponse.self).results.map(\.outcome) == [.applied])
        }
    }

    /// PostgreSQL's push writes its rows as one JSON document: a double must come back with the
    /// same bits, a device id with quotes, backslashes and emoji with the same bytes, a
    /// mutation id at Int64.max unrounded.
    @Test("progress doubles, device ids and mutation ids written by a push come back exactly", arguments: Backend.available)
    func pushedValuesRoundTrip(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let progress: [Double] = [0.1, 0.30000000000000004, .leastNonzeroMagnitude, 1.0.nextDown, 1.0 / 3, 2.2250738585072014e-308, 0, -0.0]
        try await h.seedArticles(progress.count)
        let (alice, token) = try await h.createUser("alice")
        let device = "phone \"quoted\" \\ 📱 \(Self.decomposed)"
        let mutations = progress.enumerated().map { index, value in
            mutation(Int64.max - Int64(progress.count) + Int64(index), "art-\(index + 1)", .progress, .number(value))
        }
        try await h.withClient { client in
            let response = try await call(client, .post, "/v1/sync/push", token: token,
                                          body: try jsonBody(PushRequest(deviceId: device, mutations: mutations)))
            #expect(response.status == .ok)
            #expect(try response.decode(PushResponse.self).results.allSatisfy { $0.outcome == .applied })
        }
        for (index, value) in progress.enumerated() {
            let state = try #require(try await h.store.state(userId: alice.id, articleId: "art-\(index + 1)"))
            let cell = try #require(state[.progress])
            #expect(cell.write.value == .number(value), "art-\(index + 1)")
            // A negative zero is stored as zero, on both stores.
            if case .number(let stored) = cell.write.value { #expect(stored.bitPattern == (value == 0 ? 0.0 : value).bitPattern) }
            #expect(cell.write.deviceId.isExactly(device))
            #expect(cell.write.mutationId == mutations[index].id)
        }
    }

    @Test("a store whose epoch, cursor secret or change sequence is missing fails with an error, never a default")
    func missingMetaIsAnError() async throws {
        let h = try await Harness()
        try await h.sqlite.dbPool.write { db in try db.execute(sql: "DELETE FROM meta WHERE key = 'cursorSecret'") }
        await #expect(throws: StoreError.self) { try await h.store.identity() }
        try await h.sqlite.dbPool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('adminTokenHash', 'not hex')")
        }
        await #expect(throws: StoreError.self) { try await h.store.adminTokenHash() }
        try await h.sqlite.dbPool.write { db in try db.execute(sql: "DELETE FROM changeSequence") }
        await #expect(throws: StoreError.self) {
            try await h.store.ingest([.delete(id: "nothing")]) { "2026-11-30T00:00:00Z" }
        }
    }
}
