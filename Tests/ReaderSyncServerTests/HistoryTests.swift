import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// The field history and `why` (docs/SUPPORT.md), on each store.
@Suite("Field history: every decision, and why a field is what it is")
struct HistoryTests {
    static let t0: Int64 = 1_764_000_000_000 - 60_000  // 2025-11-24 15:59:00 UTC

    static func push(_ h: Harness, _ user: UserRecord, _ device: String, _ mutations: [Mutation]) async throws -> PushResponse {
        try await h.service.push(user: user, request: PushRequest(deviceId: device, mutations: mutations))
    }

    static func history(_ h: Harness, _ user: UserRecord, _ article: String, _ field: StateField? = nil) async throws -> HistoryResponse {
        try await h.service.history(HistoryQuery(userId: user.id, articleId: article, field: field), userName: user.name)
    }

    @Test("the issue's scenario: the laptop, having seen the phone's bookmark, removed it; the history and why say so, and no conflict is logged",
          arguments: Backend.available)
    func bookmarkVanished(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(1)
        let (alice, _) = try await h.createUser("alice")
        let bookmarked = try await Self.push(h, alice, "phone", [mutation(1, "art-1", .bookmarked, .bool(true), wall: Self.t0)])
        let seen = try #require(bookmarked.states.first?.version)
        _ = try await Self.push(h, alice, "laptop", [mutation(1, "art-1", .bookmarked, .bool(false), wall: Self.t0 + 5_000, base: seen)])

        let page = try await Self.history(h, alice, "art-1", .bookmarked)
        #expect(page.entries.map(\.write.deviceId) == ["phone", "laptop"])
        #expect(page.entries.map(\.rule) == [.firstWrite, .causallyLater])
        #expect(page.entries.map(\.outcome) == [.applied, .applied])
        #expect(page.entries[1].baseVersion == seen)
        #expect(page.entries[1].against?.deviceId == "phone")
        #expect(page.why == "It is off because alice's laptop removed the bookmark at 2025-11-24 15:59:05 UTC, "
            + "after it had seen alice's phone's bookmark of 2025-11-24 15:59:00 UTC.")
        #expect(try await h.service.conflicts(ConflictQuery(userId: alice.id)).isEmpty)
        #expect(page.nextAfter == nil)
    }

    @Test("concurrent writes: the winner under last_writer_wins and add_wins, the loser that came later, each in the history and in why",
          arguments: Backend.available)
    func conflicts(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(2)
        let (alice, _) = try await h.createUser("alice")
        // read: the laptop's unread first, then the phone's later read without having seen it (it wins),
        // then the tablet's older unread without having seen either (it loses).
        _ = try await Self.push(h, alice, "laptop", [mutation(1, "art-1", .read, .bool(false), wall: Self.t0)])
        _ = try await Self.push(h, alice, "phone", [mutation(1, "art-1", .read, .bool(true), wall: Self.t0 + 2_000)])
        let lost = try await Self.push(h, alice, "tablet", [mutation(1, "art-1", .read, .bool(false), wall: Self.t0 + 1_000)])
        #expect(lost.results.first?.outcome == .superseded)
        let read = try await Self.history(h, alice, "art-1", .read)
        #expect(read.entries.map(\.rule) == [.firstWrite, .lastWriterWins, .lastWriterWins])
        #expect(read.entries.map(\.outcome) == [.applied, .applied, .lost])
        #expect(read.entries[2].conflictId == lost.results.first?.conflictId)
        #expect(read.why == "It is read because alice's phone marked it read at 2025-11-24 15:59:02 UTC. "
            + "alice's laptop had marked it unread at 2025-11-24 15:59:00 UTC, and neither device had seen the other's change: "
            + "of two changes made without seeing each other, the later one counts (rule last_writer_wins). "
            + "Later, alice's tablet marked it unread at 2025-11-24 15:59:01 UTC without having seen it; "
            + "of two changes made without seeing each other, the later one counts (rule last_writer_wins).")

        // bookmarked: the phone's bookmark, then the laptop's later removal without having seen it.
        _ = try await Self.push(h, alice, "phone", [mutation(2, "art-2", .bookmarked, .bool(true), wall: Self.t0)])
        _ = try await Self.push(h, alice, "laptop", [mutation(2, "art-2", .bookmarked, .bool(false), wall: Self.t0 + 9_000)])
        let bookmark = try await Self.history(h, alice, "art-2", .bookmarked)
        #expect(bookmark.entries.map(\.rule) == [.firstWrite, .addWins])
        #expect(bookmark.entries.map(\.outcome) == [.applied, .lost])
        #expect(bookmark.why?.hasPrefix("It is on because alice's phone bookmarked it at 2025-11-24 15:59:00 UTC; no device had changed it before.") == true)
        #expect(bookmark.why?.contains("Later, alice's laptop removed the bookmark at 2025-11-24 15:59:09 UTC without having seen it; "
            + "a bookmark wins over a removal made at the same time, whatever the clocks (rule add_wins).") == true)
    }

    @Test("a clock clamped for skew, a change given back after a reset, and refusals are recorded with what decided them",
          arguments: Backend.available)
    func clampRestoreReject(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(1)
        let (alice, _) = try await h.createUser("alice")
        let ahead = h.clock.nowMillis + 3 * 3_600_000
        _ = try await Self.push(h, alice, "phone", [mutation(1, "art-1", .progress, .number(0.4), wall: ahead)])
        let progress = try await Self.history(h, alice, "art-1", .progress)
        #expect(progress.entries.first?.clampedFrom == HLC(wall: ahead, counter: 0))
        #expect(progress.entries.first?.write.hlc.wall == h.clock.nowMillis)
        #expect(progress.entries.first?.conflictId != nil, "the clock adjustment's log entry")
        #expect(progress.why?.contains("Its clock was ahead of the server's, so its change counts as made at the server's time") == true)

        // A change given back after a reset that meets a different value: ordered by HLC alone.
        var given = mutation(2, "art-1", .progress, .number(0.9), wall: ahead + 1)
        given.restored = true
        _ = try await Self.push(h, alice, "tablet", [given])
        let after = try await Self.history(h, alice, "art-1", .progress)
        #expect(after.entries.last?.rule == .restoreReplay)
        #expect(after.entries.last?.restored == true)

        let refused = try await Self.push(h, alice, "phone", [mutation(2, "gone", .read, .bool(true)),
                                                             mutation(3, "art-1", .progress, .number(2))])
        #expect(refused.results.map(\.outcome) == [.rejected, .rejected])
        let unknown = try await Self.history(h, alice, "gone")
        #expect(unknown.entries.map(\.outcome) == [.rejected])
        #expect(unknown.entries.first?.reason == "unknown article gone")
        #expect(unknown.entries.first?.line.hasSuffix("phone #2  marked it read  rejected: unknown article gone") == true)
        #expect(progress.entries.first?.line.contains("applied (first_write), clock clamped from ") == true)
        let outOfRange = try await Self.history(h, alice, "art-1", .progress)
        #expect(outOfRange.entries.last?.outcome == .rejected)
        #expect(outOfRange.entries.last?.write.value == .number(2))

        // A value of another type holding a NUL is refused alone, and recorded printable (PostgreSQL's
        // text refuses a NUL: the whole push failed, and the device resent it for ever).
        let nul = try await Self.push(h, alice, "phone", [mutation(4, "art-1", .read, .unsupported("yes\u{0}no")),
                                                         mutation(5, "art-1", .read, .bool(true), wall: h.clock.nowMillis, base: 3)])
        #expect(nul.results.map(\.outcome) == [.rejected, .applied])
        let read = try await Self.history(h, alice, "art-1", .read)
        #expect(read.entries.map(\.outcome) == [.rejected, .applied])
        #expect(read.entries.first?.write.value == .unsupported("yes\u{FFFD}no"))
        #expect(read.entries.first?.reason?.contains("\u{0}") == false)
    }

    @Test("a duplicate and an agreeing write older than the value are not recorded; the history still explains the value",
          arguments: Backend.available)
    func notRecorded(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(1)
        let (alice, _) = try await h.createUser("alice")
        let read = mutation(1, "art-1", .read, .bool(true), wall: Self.t0 + 1_000)
        _ = try await Self.push(h, alice, "phone", [read])
        _ = try await Self.push(h, alice, "phone", [read])  // a resend: duplicate
        _ = try await Self.push(h, alice, "laptop", [mutation(1, "art-1", .read, .bool(true), wall: Self.t0)])  // agreeing, older
        let page = try await Self.history(h, alice, "art-1", .read)
        #expect(page.entries.map(\.write.deviceId) == ["phone"])
        #expect(page.why?.hasPrefix("It is read because alice's phone marked it read") == true)
    }

    @Test("paged over HTTP: a user reads their own history only, the admin anyone's; bad parameters are 400s as documented",
          arguments: Backend.available)
    func overHTTP(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(3)
        let (alice, aliceToken) = try await h.createUser("alice")
        let (bob, bobToken) = try await h.createUser("bob")
        for id in 1...3 {
            _ = try await Self.push(h, alice, "phone", [mutation(Int64(id), "art-\(id)", .read, .bool(true), wall: Self.t0 + Int64(id))])
        }
        _ = try await Self.push(h, bob, "bob-phone", [mutation(1, "art-1", .bookmarked, .bool(true))])
        try await h.withClient { client in
            let first = try await call(client, .get, "/v1/history?limit=2", token: aliceToken)
            #expect(first.status == .ok)
            let page = try first.decode(HistoryResponse.self)
            #expect(page.entries.map(\.articleId) == ["art-1", "art-2"])
            #expect(page.why == nil)
            let next = try #require(page.nextAfter)
            let second = try await call(client, .get, "/v1/history?limit=2&after=\(next)", token: aliceToken).decode(HistoryResponse.self)
            #expect(second.entries.map(\.articleId) == ["art-3"])
            #expect(second.nextAfter == nil)

            let own = try await call(client, .get, "/v1/history?article=art-1&field=bookmarked", token: bobToken).decode(HistoryResponse.self)
            #expect(own.entries.map(\.user) == ["bob"])
            #expect(own.why?.hasPrefix("It is on because bob's bob-phone bookmarked it") == true)

            let admin = try await call(client, .get, "/v1/admin/history?user=alice&article=art-2&field=read", token: Harness.adminToken)
            #expect(try admin.decode(HistoryResponse.self).entries.map(\.write.mutationId) == [2])
            #expect(try await call(client, .get, "/v1/admin/history?user=alice", token: aliceToken).status == .forbidden)
            #expect(try await call(client, .get, "/v1/admin/history?user=nobody", token: Harness.adminToken).status == .notFound)
            #expect(try await call(client, .get, "/v1/admin/history", token: Harness.adminToken).errorCode == "invalid_request")
            let reads = try await call(client, .get, "/v1/history?field=read", token: aliceToken).decode(HistoryResponse.self)
            #expect(reads.entries.map(\.articleId) == ["art-1", "art-2", "art-3"], "one field of every article")
            #expect(reads.why == nil)
            #expect(try await call(client, .get, "/v1/admin/history?user=", token: Harness.adminToken).errorCode == "invalid_request")
            #expect(try await call(client, .get, "/v1/history?article=art-1&field=starred", token: aliceToken).errorCode == "invalid_request")
            #expect(try await call(client, .get, "/v1/history?limit=0", token: aliceToken).errorCode == "limit_out_of_range")
            #expect(try await call(client, .get, "/v1/history").status == .unauthorized)
        }
    }

    @Test("compaction removes entries older than history-days, oldest first", arguments: Backend.available)
    func retention(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(1)
        let (alice, _) = try await h.createUser("alice")
        _ = try await Self.push(h, alice, "phone", [mutation(1, "art-1", .read, .bool(true))])
        h.clock.advance(millis: 20 * 86_400_000)
        _ = try await Self.push(h, alice, "phone", [mutation(2, "art-1", .read, .bool(false), wall: h.clock.nowMillis, base: 1)])
        h.clock.advance(millis: 15 * 86_400_000)
        let report = try await h.service.compact(RetentionPolicy(historyDays: 30))
        #expect(report.removedHistory == 1)
        let left = try await Self.history(h, alice, "art-1", .read)
        #expect(left.entries.map(\.write.mutationId) == [2])
        #expect(left.why?.hasPrefix("It is unread because alice's phone marked it unread") == true)
        // The entry keeps the write it met, so the sentence still says what the device had seen.
        #expect(left.why?.contains("after its own read mark of 2025-11-24 15:59:00 UTC") == true)
    }

    @Test("a history entry whose conflict log entry was compacted away names no conflict", arguments: Backend.available)
    func conflictOutlivedByHistory(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(1)
        let (alice, _) = try await h.createUser("alice")
        _ = try await Self.push(h, alice, "phone", [mutation(1, "art-1", .read, .bool(true), wall: h.clock.nowMillis)])
        let lost = try await Self.push(h, alice, "laptop", [mutation(1, "art-1", .read, .bool(false), wall: h.clock.nowMillis - 1_000)])
        let conflictId = try #require(lost.results.first?.conflictId)
        #expect(try await Self.history(h, alice, "art-1", .read).entries.last?.conflictId == conflictId)
        h.clock.advance(millis: 10 * 86_400_000)
        let report = try await h.service.compact(RetentionPolicy(conflictDays: 5, historyDays: 30))
        #expect(report.removedConflicts == 1 && report.removedHistory == 0)
        let entries = try await Self.history(h, alice, "art-1", .read).entries
        #expect(entries.map(\.outcome) == [.applied, .lost])
        #expect(entries.allSatisfy { $0.conflictId == nil })
    }
}
