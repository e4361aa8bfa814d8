import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// Retention and compaction (docs/PROTOCOL.md, "Retention and compaction") through the real
/// router, on both stores. The server's clock is the harness's, moved by hand: 2025-11-24T16:00Z
/// at the start.
@Suite("Retention and compaction")
struct RetentionTests {
    static let day: Int64 = 86_400_000

    /// Ingests articles published `daysAgo` days before the harness clock's start.
    static func ingest(_ h: Harness, _ articles: [(id: String, daysAgo: Int)]) async throws {
        let lines = articles.map { article in
            let published = Timestamp.format(Date(timeIntervalSince1970: 1_764_000_000 - Double(article.daysAgo) * 86_400))
            return Harness.articleLine(id: article.id, title: "Title of \(article.id)", publishedAt: published, updatedAt: published)
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.inserted == articles.count)
    }

    static func pull(_ client: any TestClientProtocol, token: String, cursor: String?, limit: Int = 1000,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> PullResponse {
        let response = try await call(client, .get, SyncRoute.pull(cursor: cursor, limit: limit), token: token, sourceLocation: sourceLocation)
        #expect(response.status == .ok, "\(response.text)", sourceLocation: sourceLocation)
        return try response.decode(PullResponse.self)
    }

    /// `first` and the pages after it, pulled with `limit` until `hasMore` is false.
    static func pages(from first: PullResponse, _ client: any TestClientProtocol, token: String, limit: Int,
                      sourceLocation: SourceLocation = #_sourceLocation) async throws -> [PullResponse] {
        var pages = [first]
        while let last = pages.last, last.hasMore {
            pages.append(try await pull(client, token: token, cursor: last.cursor, limit: limit, sourceLocation: sourceLocation))
        }
        return pages
    }

    static func push(_ client: any TestClientProtocol, token: String, device: String, _ mutations: [Mutation],
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> PushResponse {
        let response = try await call(client, .post, SyncRoute.push, token: token,
                                      body: try jsonBody(PushRequest(deviceId: device, mutations: mutations)), sourceLocation: sourceLocation)
        #expect(response.status == .ok, "\(response.text)", sourceLocation: sourceLocation)
        return try response.decode(PushResponse.self)
    }

    @Test("articles older than the retention expire: a device at an old cursor pulls their ids as expiredArticleIds, a new one never gets them; GET /v1/articles serves them until compaction removes them past the horizon, except the one a reader bookmarked, which stays until its un-bookmark is past the horizon too",
          arguments: Backend.available)
    func expiryAndPins(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (aliceUser, alice) = try await h.createUser("alice")
        let (_, bob) = try await h.createUser("bob")
        try await Self.ingest(h, [("old-1", 120), ("old-2", 100), ("old-3", 91), ("new-1", 89), ("new-2", 1)])
        try await h.withClient { client in
            let first = try await Self.pull(client, token: alice, cursor: nil)
            #expect(first.articles.map(\.id) == ["old-1", "old-2", "old-3", "new-1", "new-2"])
            #expect(first.expiredArticleIds == [])
            let wall = h.clock.nowMillis
            let pushed = try await Self.push(client, token: alice, device: "phone", [
                mutation(1, "old-1", .bookmarked, .bool(true), wall: wall),
                mutation(2, "old-2", .read, .bool(true), wall: wall),
            ])
            #expect(pushed.results.map(\.outcome) == [.applied, .applied])

            let report = try await h.service.compact(RetentionPolicy(articleDays: 90))
            #expect(report.expired == 3)
            #expect(report.removedTombstones + report.removedExpired + report.removedStates == 0)

            // The phone, from its cursor: the two states, then the three expiries, in feed order.
            let phone = try await Self.pull(client, token: alice, cursor: first.cursor)
            #expect(phone.articles == [])
            // In publication order on SQLite; PostgreSQL numbers one statement's rows in no set order.
            #expect(phone.expiredArticleIds.sorted() == ["old-1", "old-2", "old-3"])
            #expect(phone.states.map(\.articleId) == ["old-1", "old-2"])
            // A new device of bob's never sees the expired content.
            let fresh = try await Self.pull(client, token: bob, cursor: nil)
            #expect(fresh.articles.map(\.id) == ["new-1", "new-2"])
            #expect(fresh.expiredArticleIds.sorted() == ["old-1", "old-2", "old-3"])

            // Expired content is kept (within the horizon) and served by id.
            let old3 = try await call(client, .get, SyncRoute.article(id: "old-3"), token: bob)
            #expect(old3.status == .ok)
            #expect(try old3.decode(ArticleDTO.self).title == "Title of old-3")
            var stats = try await h.service.statistics()
            #expect((stats.liveArticles, stats.expiredArticles, stats.pinnedArticles, stats.tombstones) == (2, 3, 1, 0))
            #expect(stats.horizon == nil)

            // Past the horizon: the unpinned expired rows go with their states; the pinned one stays.
            h.clock.advance(millis: 31 * Self.day)
            let second = try await h.service.compact(RetentionPolicy(articleDays: 90))
            #expect(second.removedExpired == 2)
            #expect(second.removedStates == 1)  // alice's read mark on old-2
            #expect(second.expired == 1)        // new-1 is 120 days old now
            #expect(try await call(client, .get, SyncRoute.article(id: "old-3"), token: bob).status == .notFound)
            #expect(try await call(client, .get, SyncRoute.article(id: "old-1"), token: bob).status == .ok)
            #expect(try await h.store.state(userId: aliceUser.id, articleId: "old-1")?[.bookmarked] != nil)
            stats = try await h.service.statistics()
            #expect((stats.liveArticles, stats.expiredArticles, stats.pinnedArticles, stats.states) == (1, 2, 1, 1))
            #expect(stats.horizon != nil)
            #expect(stats.compactedAt == Timestamp.format(h.clock.now))

            // Un-bookmarked, it goes at the next compaction.
            let unbookmark = try await Self.push(client, token: alice, device: "phone", [
                mutation(3, "old-1", .bookmarked, .bool(false), wall: h.clock.nowMillis, base: pushed.states[0].version),
            ])
            #expect(unbookmark.results.map(\.outcome) == [.applied])
            // Not at once: the un-bookmark is newer than the newest checkpoint old enough, and a
            // device may not have pulled it yet.
            let third = try await h.service.compact(RetentionPolicy(articleDays: 90))
            #expect(third.removedExpired == 0)
            h.clock.advance(millis: 31 * Self.day)
            let fourth = try await h.service.compact(RetentionPolicy(articleDays: 90))
            #expect(fourth.removedExpired == 2)  // old-1, and new-1 (expired by the second run)
            #expect(try await call(client, .get, SyncRoute.article(id: "old-1"), token: alice).status == .notFound)
        }
    }

    @Test("a cursor before the newest removed tombstone gets 410 cursor_expired (also on a long-poll); a cursor after it and a pull from the beginning are served; the tombstone is served as 410 article_deleted until removed",
          arguments: Backend.available)
    func horizon(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, [("a", 1), ("b", 1), ("c", 1)])
        try await h.withClient { client in
            let stale = try await Self.pull(client, token: alice, cursor: nil).cursor
            #expect(try await h.service.deleteArticle(id: "b"))
            let deleted = try await call(client, .get, SyncRoute.article(id: "b"), token: alice)
            #expect(deleted.status == .gone)
            #expect(deleted.errorCode == "article_deleted")
            let current = try await Self.pull(client, token: alice, cursor: stale)
            #expect(current.deletedArticleIds == ["b"])

            // Not yet past the horizon: nothing removed, the stale cursor still served.
            #expect(try await h.service.compact(RetentionPolicy()).removedTombstones == 0)
            #expect(try await Self.pull(client, token: alice, cursor: stale).deletedArticleIds == ["b"])

            h.clock.advance(millis: 31 * Self.day)
            #expect(try await h.service.compact(RetentionPolicy()).removedTombstones == 1)
            #expect(try await call(client, .get, SyncRoute.article(id: "b"), token: alice).status == .notFound)
            for uri in [SyncRoute.pull(cursor: stale, limit: 10), SyncRoute.pull(cursor: stale, limit: 10, wait: 1)] {
                let refused = try await call(client, .get, uri, token: alice)
                #expect(refused.status == .gone)
                #expect(refused.errorCode == "cursor_expired")
            }
            #expect(try await Self.pull(client, token: alice, cursor: current.cursor).isCaughtUp)
            let again = try await Self.pull(client, token: alice, cursor: nil)
            #expect(again.articles.map(\.id) == ["a", "c"])
            #expect(again.deletedArticleIds == [])
            // A pull from the beginning in pages: its cursors are before the horizon, but they
            // were handed out after the compaction, so they are served.
            let pages = try await Self.pages(from: try await Self.pull(client, token: alice, cursor: nil, limit: 1), client, token: alice, limit: 1)
            #expect(pages.flatMap(\.articles).map(\.id) == ["a", "c"])
            #expect(try await Self.pull(client, token: alice, cursor: pages.last!.cursor).isCaughtUp)
        }
    }

    @Test("removing an article removes its states too, so the horizon covers them: a device that had not pulled an un-bookmark made after the expiry gets 410 cursor_expired instead of missing it; one that pulled it is served",
          arguments: Backend.available)
    func horizonCoversStates(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, [("old", 100), ("new", 1)])
        try await h.withClient { client in
            let wall = h.clock.nowMillis
            let bookmark = try await Self.push(client, token: alice, device: "phone", [mutation(1, "old", .bookmarked, .bool(true), wall: wall)])
            _ = try await h.service.compact(RetentionPolicy(articleDays: 90))
            let laptop = try await Self.pull(client, token: alice, cursor: nil).cursor
            _ = try await Self.push(client, token: alice, device: "phone", [
                mutation(2, "old", .bookmarked, .bool(false), wall: wall + 1, base: bookmark.states[0].version),
            ])
            let phone = try await Self.pull(client, token: alice, cursor: nil).cursor
            _ = try await h.service.compact(RetentionPolicy(articleDays: 90))
            h.clock.advance(millis: 31 * Self.day)
            let report = try await h.service.compact(RetentionPolicy(articleDays: 90))
            #expect(report.removedExpired == 1)
            #expect(report.removedStates == 1)
            let refused = try await call(client, .get, SyncRoute.pull(cursor: laptop, limit: 10), token: alice)
            #expect(refused.status == .gone)
            #expect(refused.errorCode == "cursor_expired")
            #expect(try await Self.pull(client, token: alice, cursor: phone).isCaughtUp)
        }
    }

    @Test("the conflict log keeps conflict-days of entries; older ones are removed oldest first", arguments: Backend.available)
    func conflictDays(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, [("a", 1), ("b", 1)])
        try await h.withClient { client in
            // Two devices that saw nothing disagree: one conflict each time.
            func conflict(_ article: String, _ id: Int64) async throws {
                let wall = h.clock.nowMillis
                _ = try await Self.push(client, token: alice, device: "phone", [mutation(id, article, .progress, .number(0.5), wall: wall)])
                let lost = try await Self.push(client, token: alice, device: "laptop", [mutation(id, article, .progress, .number(0.2), wall: wall - 1)])
                #expect(lost.results.first?.conflictId != nil)
            }
            try await conflict("a", 1)
            h.clock.advance(millis: 50 * Self.day)
            try await conflict("b", 2)
            h.clock.advance(millis: 41 * Self.day)
            // 91 days after the first, 41 after the second.
            let report = try await h.service.compact(RetentionPolicy(conflictDays: 90))
            #expect(report.removedConflicts == 1)
            let left = try await h.service.conflicts(ConflictQuery())
            #expect(left.map(\.articleId) == ["b"])
            #expect(try await h.service.statistics().conflicts == 1)
        }
    }

    @Test("the Reader API's streams and unread counts leave expired articles out, except the reader's starred ones", arguments: Backend.available)
    func readerAPIStreams(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.createUser("alice")
        let password = try await ReaderAPI(service: h.service).createAppPassword(userName: "alice", label: "app")
        try await Self.ingest(h, [("old-1", 100), ("old-2", 100), ("new-1", 1)])
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let old1 = try await ReaderAPITests.itemId(reader, of: "old-1")
            let token = try await reader.actionToken()
            #expect(try await reader.post("/reader/api/0/edit-tag", "i=\(old1)&a=\(ReaderAPITests.starred)&T=\(token)").text == "OK")
            _ = try await h.service.compact(RetentionPolicy(articleDays: 90))

            let all = try await reader.allIds("s=\(ReaderAPITests.readingList)", n: 100).ids
            #expect(all.count == 2)  // new-1 and the starred old-1
            let starred = try await reader.allIds("s=\(ReaderAPITests.starred)", n: 100).ids
            #expect(starred.count == 1)
            let counts = try await reader.json("/reader/api/0/unread-count?output=json")
            let unread = try #require(counts["unreadcounts"] as? [[String: Any]])
            #expect(unread.first { ($0["id"] as? String)?.hasPrefix("feed/") == true }?["count"] as? Int == 1)
        }
    }

    @Test("an expired article ingested again with changes is back in the sync set; unchanged it stays expired", arguments: Backend.available)
    func reingest(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, [("a", 100), ("b", 100)])
        _ = try await h.service.compact(RetentionPolicy(articleDays: 90))
        let published = Timestamp.format(Date(timeIntervalSince1970: 1_764_000_000 - 100 * 86_400))
        let lines = [
            Harness.articleLine(id: "a", title: "Title of a", publishedAt: published, updatedAt: published),
            Harness.articleLine(id: "b", title: "Corrected title of b", publishedAt: published, updatedAt: published),
        ]
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect((report.unchanged, report.updated) == (1, 1))
        try await h.withClient { client in
            let page = try await Self.pull(client, token: alice, cursor: nil)
            #expect(page.articles.map(\.title) == ["Corrected title of b"])
            #expect(page.expiredArticleIds == ["a"])
        }
        // Still old: the next compaction expires it again.
        #expect(try await h.service.compact(RetentionPolicy(articleDays: 90)).expired == 1)
    }

    @Test("after a compaction with a retention, ingest stores no new or deleted article published before it (a full export would bring compacted ones back for an hour); without one it does",
          arguments: Backend.available)
    func tooOldToIngest(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, [("old", 100), ("gone", 1)])
        _ = try await h.service.compact(RetentionPolicy(articleDays: 90))
        h.clock.advance(millis: 31 * Self.day)
        #expect(try await h.service.compact(RetentionPolicy(articleDays: 90)).removedExpired == 1)
        #expect(try await h.service.deleteArticle(id: "gone"))  // its tombstone stays
        let published = { (daysAgo: Int) in Timestamp.format(h.clock.now.addingTimeInterval(-Double(daysAgo) * 86_400)) }
        let lines = [
            Harness.articleLine(id: "old", title: "Title of old", publishedAt: published(131), updatedAt: published(131)),
            Harness.articleLine(id: "gone", title: "Gone again", publishedAt: published(95), updatedAt: published(95)),
            Harness.articleLine(id: "fresh", title: "Fresh", publishedAt: published(1), updatedAt: published(1)),
        ]
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect((report.inserted, report.expired, report.rejected) == (1, 2, 0))
        try await h.withClient { client in
            let old = try await call(client, .get, SyncRoute.article(id: "old"), token: alice)
            let gone = try await call(client, .get, SyncRoute.article(id: "gone"), token: alice)
            #expect((old.status, gone.status) == (.notFound, .gone))
        }
        // A compaction without a retention clears it: old articles are stored again.
        _ = try await h.service.compact(RetentionPolicy())
        #expect(try await h.service.ingest(jsonLines: Array(lines[0].utf8)).inserted == 1)
    }

    @Test("compaction runs in transactions of the batch size while pushes and pulls go on, and loses no state of a live or bookmarked article",
          arguments: Backend.available)
    func smallTransactions(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, (1...40).map { ("old-\($0)", 100) } + (1...10).map { ("new-\($0)", 1) })
        try await h.withClient { client in
            var policy = RetentionPolicy(articleDays: 90)
            policy.batchSize = 3
            let wall = h.clock.nowMillis
            async let compaction = h.service.compact(policy)
            // Meanwhile alice marks every article: read for the new ones, bookmarked for the old.
            for i in 1...10 {
                _ = try await Self.push(client, token: alice, device: "phone", [
                    mutation(Int64(2 * i - 1), "new-\(i)", .read, .bool(true), wall: wall + Int64(i)),
                    mutation(Int64(2 * i), "old-\(i)", .bookmarked, .bool(true), wall: wall + Int64(i)),
                ])
            }
            let report = try await compaction
            #expect(report.transactions >= report.expired / 3 + 1)  // expiry in batches of 3, then the conflict log
            // On PostgreSQL an article a push holds is skipped (SKIP LOCKED) and taken by a later
            // batch, or by the next run if it is still held when nothing else is left.
            let straggler = try await h.service.compact(policy)
            #expect(report.expired + straggler.expired == 40)
            #expect(backend == .postgres || report.expired == 40, "SQLite's single writer skips nothing")
            h.clock.advance(millis: 31 * Self.day)
            let removal = try await h.service.compact(policy)
            #expect(removal.removedExpired == 30)  // the ten bookmarked are pinned
            let page = try await Self.pull(client, token: alice, cursor: nil)
            #expect(page.states.count == 20)
            #expect(page.states.filter(\.read).count == 10)
            #expect(page.states.filter(\.bookmarked).count == 10)
            #expect(Set(page.expiredArticleIds) == Set((1...10).map { "old-\($0)" }))
        }
    }

    @Test("bad input: a retention out of range is refused before anything changes; GET /v1/articles needs a token and a well-formed id")
    func badInput() async throws {
        let h = try await Harness()
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, [("a", 100)])
        for policy in [RetentionPolicy(articleDays: 0), RetentionPolicy(tombstoneDays: -1), RetentionPolicy(conflictDays: 40_000)] {
            await #expect(throws: SyncError.self) { try await h.service.compact(policy) }
        }
        #expect(try await h.service.statistics().expiredArticles == 0)
        #expect(try await h.service.statistics().compactedAt == nil)
        try await h.withClient { client in
            #expect(try await call(client, .get, SyncRoute.article(id: "a")).status == .unauthorized)
            let malformed = try await call(client, .get, "/v1/articles/%FF", token: alice)
            #expect(malformed.status == .badRequest)
            #expect(try await call(client, .get, SyncRoute.article(id: "nope"), token: alice).errorCode == "not_found")
            // The admin token may read an article too (support).
            #expect(try await call(client, .get, SyncRoute.article(id: "a"), token: Harness.adminToken).status == .ok)
            // An id with a slash and a space round-trips through the path.
            try await Self.ingest(h, [("x/y z", 1)])
            #expect(try await call(client, .get, SyncRoute.article(id: "x/y z"), token: alice).decode(ArticleDTO.self).id == "x/y z")
        }
    }
}
