import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Synchronization
import Testing

/// User B must never read, change or learn about user A's state or conflicts.
@Suite("Isolation between users")
struct IsolationTests {
    /// What Bob does and sees; run once on a server where Alice is busy, once where she never existed.
    private static func bobsSession(_ h: Harness, bob: String) async throws -> [String] {
        let transcript = Transcript()
        try await h.withClient { client in
            // Bob touches the article Alice has state and conflicts on, and one nobody touched.
            let push = PushRequest(deviceId: "bob-phone", mutations: [
                mutation(1, "art-1", .bookmarked, .bool(false), wall: 1_763_999_000_100),
                mutation(2, "art-1", .progress, .number(0.5), wall: 1_763_999_000_200),
                mutation(3, "art-2", .read, .bool(true), wall: 1_763_999_000_300),
                mutation(4, "no-such-article", .read, .bool(true), wall: 1_763_999_000_400),
            ])
            transcript.add(try await call(client, .post, "/v1/sync/push", token: bob, body: try jsonBody(push)))
            transcript.add(try await call(client, .get, "/v1/sync/pull", token: bob))
            transcript.add(try await call(client, .get, "/v1/sync/pull?limit=1", token: bob))
            transcript.add(try await call(client, .get, "/v1/conflicts", token: bob))
            transcript.add(try await call(client, .get, "/v1/conflicts?article=art-1", token: bob))
            transcript.add(try await call(client, .get, "/v1/conflicts?article=no-such-article", token: bob))
            transcript.add(try await call(client, .get, "/v1/conflicts?before=1000000", token: bob))
            transcript.add(try await call(client, .get, "/v1/admin/conflicts?user=alice", token: bob))
            transcript.add(try await call(client, .get, "/v1/admin/conflicts", token: bob))
            // A second device of Bob's that last saw an old state: a conflict of Bob's own.
            let stale = PushRequest(deviceId: "bob-tablet", mutations: [mutation(1, "art-1", .bookmarked, .bool(true), wall: 1_763_999_000_050)])
            transcript.add(try await call(client, .post, "/v1/sync/push", token: bob, body: try jsonBody(stale)))
            transcript.add(try await call(client, .get, "/v1/conflicts", token: bob))
        }
        return transcript.lines
    }

    @Test("everything Bob sees, and every SQL statement his requests run, is the same whether or not Alice exists and has state and conflicts on the same articles",
          arguments: Backend.available)
    func bobLearnsNothing(backend: Backend) async throws {
        // The statements Bob's requests run, as a proxy for their timing: the same statements on the
        // same indexes means no answer takes longer because another user has rows. Only SQLite
        // reports its statements (the trace hook); on PostgreSQL the transcripts are compared.
        let busyStatements = StatementLog()
        let aloneStatements = StatementLog()
        // The server where Bob is alone first, and gone before the busy one starts.
        let aloneTranscript = try await { () async throws -> [String] in
            let empty = try await Harness(backend: backend, trace: { aloneStatements.record($0) })
            try await empty.seedArticles(3)
            let (_, bobAlone) = try await empty.createUser("bob")
            aloneStatements.start()
            defer { aloneStatements.stop() }
            return try await Self.bobsSession(empty, bob: bobAlone)
        }()

        let busy = try await Harness(backend: backend, trace: { busyStatements.record($0) })
        try await busy.seedArticles(3)
        let (alice, aliceToken) = try await busy.createUser("alice")
        try await busy.withClient { client in
            for (device, value, wall) in [("alice-ipad", true, Int64(1_763_999_000_000)), ("alice-phone", false, Int64(1_763_999_000_500))] {
                let push = PushRequest(deviceId: device, mutations: [
                    mutation(1, "art-1", .bookmarked, .bool(value), wall: wall),
                    mutation(2, "art-1", .read, .bool(value), wall: wall),
                    mutation(3, "art-2", .progress, .number(0.9), wall: wall),
                ])
                let answer = try await call(client, .post, "/v1/sync/push", token: aliceToken, body: try jsonBody(push))
                #expect(answer.status == .ok)
            }
        }
        let aliceConflicts = try await busy.store.conflicts(ConflictQuery(userId: alice.id))
        #expect(aliceConflicts.count >= 2, "Alice has conflicts on art-1 for Bob to (not) see")
        let aliceBefore = try await busy.store.state(userId: alice.id, articleId: "art-1")
        let (_, bobInBusy) = try await busy.createUser("bob")
        busyStatements.start()
        let busyTranscript = try await Self.bobsSession(busy, bob: bobInBusy)
        busyStatements.stop()


        #expect(busyTranscript == aloneTranscript)
        if backend == .sqlite {
            #expect(busyStatements.statements.count > 10)
            // As a multiset: a push visits its articles in Set order, which varies between runs by itself.
            #expect(busyStatements.statements.sorted() == aloneStatements.statements.sorted())
        }
        for line in busyTranscript {
            #expect(!line.contains("alice"), "Bob saw a trace of Alice: \(line)")
        }
        // Alice's state and log are as she left them.
        #expect(try await busy.store.state(userId: alice.id, articleId: "art-1") == aliceBefore)
        #expect(try await busy.store.conflicts(ConflictQuery(userId: alice.id)) == aliceConflicts)
    }

    @Test("a push with another user's device id is 403, names nobody, and changes nothing of either user", arguments: Backend.available)
    func foreignDevice(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (alice, aliceToken) = try await h.createUser("alice")
        let (bob, bobToken) = try await h.createUser("bob")
        try await h.withClient { client in
            let own = PushRequest(deviceId: "ipad-7f3a", mutations: [mutation(1, "art-1", .read, .bool(true))])
            #expect(try await call(client, .post, "/v1/sync/push", token: aliceToken, body: try jsonBody(own)).status == .ok)
            let before = try await h.store.state(userId: alice.id, articleId: "art-1")
            // Bob replays the next mutation id, and a huge one, on Alice's device id.
            for id: Int64 in [2, 1_000_000] {
                let forged = PushRequest(deviceId: "ipad-7f3a", mutations: [mutation(id, "art-1", .read, .bool(false), wall: 1_764_000_000_000)])
                let answer = try await call(client, .post, "/v1/sync/push", token: bobToken, body: try jsonBody(forged))
                #expect(answer.status == .forbidden)
                let body = String(buffer: answer.body)
                #expect(!body.contains("alice"))
            }
            #expect(try await h.store.state(userId: alice.id, articleId: "art-1") == before)
            #expect(try await h.store.state(userId: bob.id, articleId: "art-1") == nil)
            // Alice's device still continues where it was: its next mutation id applies.
            let next = PushRequest(deviceId: "ipad-7f3a", mutations: [mutation(2, "art-1", .read, .bool(false), wall: 1_764_000_000_000)])
            let result = try await call(client, .post, "/v1/sync/push", token: aliceToken, body: try jsonBody(next)).decode(PushResponse.self)
            #expect(result.results.map(\.outcome) == [.applied])
        }
    }

    @Test("tokens are stored only as SHA-256 hashes; the admin token is not stored in the clear either", arguments: Backend.available)
    func tokensHashed(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, token) = try await h.createUser("alice")
        // The SQLite file and its WAL; on PostgreSQL every row as text, bytea as hex, so the
        // secrets' hex is looked for too.
        let contents = try await h.rawDatabaseContents()
        for secret in [token, Harness.adminToken] {
            let hex = Data(Hex.string(Array(secret.utf8)).utf8)
            for content in contents {
                #expect(content.range(of: Data(secret.utf8)) == nil && content.range(of: hex) == nil)
            }
        }
        #expect(try await h.rawUserTokenHashes() == [Data(Tokens.hash(token))])
    }
}

/// SQL statements run while recording is on.
private final class StatementLog: Sendable {
    private let state = Mutex<(recording: Bool, statements: [String])>((false, []))
    func start() { state.withLock { $0.recording = true } }
    func stop() { state.withLock { $0.recording = false } }
    func record(_ sql: String) { state.withLock { if $0.recording { $0.statements.append(sql) } } }
    var statements: [String] { state.withLock { $0.statements } }
}

/// Responses with what differs by database alone (epoch, cursor, sequence values) blanked out.
private final class Transcript: @unchecked Sendable {
    // @unchecked: appended to from one test task at a time.
    private(set) var lines: [String] = []

    func add(_ response: TestResponse) {
        var text = "\(response.status.code) "
        if var object = response.json {
            object = Self.blank(object)
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed])) ?? Data()
            text += String(decoding: data, as: UTF8.self)
        } else {
            text += String(buffer: response.body)
        }
        lines.append(text)
    }

    private static func blank(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            var out: [String: Any] = [:]
            for (key, item) in object {
                out[key] = ["cursor", "epoch", "seq", "id", "conflictId"].contains(key) ? "·" : blank(item)
            }
            return out
        }
        if let array = value as? [Any] { return array.map(blank) }
        return value
    }
}
