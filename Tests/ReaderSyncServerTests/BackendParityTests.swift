import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Synchronization
import Testing

/// The same requests give the same responses on every store, to the byte: sequence values,
/// conflict ids, dates, order. Only what names the database differs: the epoch, and the cursor
/// (which holds it, and on PostgreSQL the transaction too).
@Suite("Every store answers alike", .enabled(if: Backend.available.count > 1))
struct BackendParityTests {
    @Test("one session of ingests, pushes with conflicts, pulls in pages and conflict logs, replayed on each store")
    func sameSessionSameBytes() async throws {
        var transcripts: [Backend: [String]] = [:]
        for backend in Backend.available {
            transcripts[backend] = try await Self.session(backend)
        }
        let sqlite = try #require(transcripts[.sqlite])
        #expect(sqlite.count > 15)
        for (backend, lines) in transcripts where backend != .sqlite {
            #expect(lines.count == sqlite.count, "\(backend)")
            for (index, (line, expected)) in zip(lines, sqlite).enumerated() where line != expected {
                Issue.record("\(backend), response \(index): \(line)\nSQLite: \(expected)")
            }
        }
    }

    static func session(_ backend: Backend) async throws -> [String] {
        let h = try await Harness(backend: backend)
        let lines = Lines()
        let add = lines.add
        let (_, alice) = try await h.createUser("alice")
        let (_, bob) = try await h.createUser("bob")
        try await h.withClient { client in
            let ingest = [
                Harness.articleLine(id: "b", title: "B"), Harness.articleLine(id: "a", title: "A"),
                Harness.articleLine(id: "b", title: "B, corrected", updatedAt: "2026-11-21T08:30:00.250Z"),
                Harness.articleLine(id: "c", title: "C"), #"{"id":"c","deleted":true}"#, Harness.articleLine(id: "d", title: "D"),
                #"{"id":"zzz","deleted":true}"#, "{oops",
            ].joined(separator: "\n")
            add(try await call(client, .post, "/v1/admin/articles", token: Harness.adminToken, body: ByteBuffer(string: ingest)))
            let now = h.clock.nowMillis
            let pushes: [(String, String, [Mutation])] = [
                (alice, "phone", [mutation(1, "a", .read, .bool(true), wall: now - 60_000), mutation(2, "b", .bookmarked, .bool(true), wall: now - 60_000),
                                  mutation(3, "b", .progress, .number(0.25), wall: now - 59_000)]),
                (alice, "tablet", [mutation(1, "b", .bookmarked, .bool(false), wall: now - 30_000), mutation(2, "a", .read, .bool(false), wall: now + 86_400_000),
                                   mutation(3, "c", .read, .bool(true), wall: now - 1000), mutation(4, "nope", .read, .bool(true))]),
                (alice, "phone", [mutation(1, "a", .read, .bool(true), wall: now - 60_000)]),
                (bob, "bob-phone", [mutation(1, "d", .progress, .number(1), wall: now - 5000)]),
            ]
            for (token, device, mutations) in pushes {
                add(try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(PushRequest(deviceId: device, mutations: mutations))))
                h.clock.advance(millis: 1500)
            }
            add(try await call(client, .delete, "/v1/admin/articles/d", token: Harness.adminToken))
            add(try await call(client, .post, "/v1/admin/articles", token: Harness.adminToken,
                               body: ByteBuffer(string: Harness.articleLine(id: "c", title: "C again"))))
            for token in [alice, bob] {
                add(try await call(client, .get, "/v1/sync/pull", token: token))
                var cursor = ""
                for _ in 0..<10 {
                    let page = try await call(client, .get, "/v1/sync/pull?limit=2" + cursor, token: token)
                    add(page)
                    let decoded = try page.decode(PullResponse.self)
                    cursor = "&cursor=" + decoded.cursor
                    if !decoded.hasMore { break }
                }
                add(try await call(client, .get, "/v1/conflicts", token: token))
            }
            for query in ["", "?user=alice&limit=2", "?rule=add_wins,clock_skew", "?article=b", "?before=3"] {
                add(try await call(client, .get, "/v1/admin/conflicts" + query, token: Harness.adminToken))
            }
        }
        let users = try await h.store.users(UserQuery())
        return lines.all + ["\(users)"]
    }
}

/// Responses as text, with what names the database (epoch, cursor) blanked out.
private final class Lines: Sendable {
    private let lines = Mutex<[String]>([])
    /// The status and the body, its JSON with sorted keys (the encoder's key order is not fixed).
    @Sendable func add(_ response: TestResponse) {
        var text = String(buffer: response.body)
        if let object = response.json,
           let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]) {
            text = String(decoding: data, as: UTF8.self)
        }
        for pattern in [#/"cursor":"[^"]*"/#, #/"epoch":"[^"]*"/#] {
            text = text.replacing(pattern, with: "\"·\"")
        }
        let line = "\(response.status.code) \(text)"
        lines.withLock { $0.append(line) }
    }

    var all: [String] { lines.withLock { $0 } }
}
