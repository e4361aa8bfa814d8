import Foundation
import ReaderSyncClient
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// The SDK against a server that compacts (docs/PROTOCOL.md, "Retention and compaction"). The
/// harness clock starts at 2025-11-24T16:00Z.
@Suite("Client SDK with retention and compaction")
struct RetentionClientTests {
    static let day: Int64 = 86_400

    /// Ingests articles published `daysAgo` days before the harness clock's start.
    static func ingest(_ h: ClientHarness, _ articles: [(id: String, daysAgo: Int)]) async throws {
        let lines = articles.map { article in
            let published = Timestamp.format(Date(timeIntervalSince1970: 1_764_000_000 - Double(article.daysAgo) * 86_400))
            return #"{"id":"\#(article.id)","section":"world","title":"Title \#(article.id)","body":"Body","publishedAt":"\#(published)"}"#
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.inserted == articles.count)
    }

    @Test("a device drops the articles the server expired, except those shown bookmarked or with a pending change, which go once nothing pins them; their states stay")
    func dropsExpired() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [("old-1", 100), ("old-2", 100), ("old-3", 100), ("new-1", 1)])
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try store.setBookmarked("old-1", true)
        try await engine.sync()
        #expect(try store.articleCount() == 4)
        try store.markRead("old-2")  // pending when the expiries arrive

        #expect(try await h.service.compact(RetentionPolicy(articleDays: 90)).expired == 3)
        // The server's page, stored as the engine stores it (a sync would push the pending change first).
        let alice = try await h.service.user(named: "alice")
        let page = try await h.service.pull(user: alice, cursor: try store.cursor(), limit: 100)
        #expect(page.expiredArticleIds.sorted() == ["old-1", "old-2", "old-3"])
        try store.apply(page)
        #expect(try store.articles().map(\.id).sorted() == ["new-1", "old-1", "old-2"])
        #expect(try store.state(articleId: "old-2").isRead)

        // Once acknowledged, nothing pins old-2: the eviction after the sync drops it.
        let report = try await engine.sync()
        #expect(report.acknowledged == 1)
        #expect(report.evicted == 1)
        #expect(try store.articles().map(\.id).sorted() == ["new-1", "old-1"])
        #expect(try store.state(articleId: "old-1").isBookmarked)

        // A second device of alice's pulls no expired content, but her bookmark's state, and
        // then fetches the bookmarked (pinned) article by id.
        let (laptop, laptopEngine) = try h.openDevice("laptop", token: token)
        let laptopReport = try await laptopEngine.sync()
        #expect(laptopReport.pulledExpiries == 3)
        #expect(laptopReport.pulledArticles == 1)
        #expect(laptopReport.fetchedArticles == 1)
        #expect(try laptop.articles().map(\.id) == ["new-1", "old-1"])
        #expect(try laptop.state(articleId: "old-1").isBookmarked)

        // Un-bookmarked, the expired article leaves both devices at their next sync, the one that
        // kept it when its expiry came and the one that fetched it.
        try store.setBookmarked("old-1", false)
        #expect(try await engine.sync().evicted == 1)
        #expect(try await laptopEngine.sync().evicted == 1)
        #expect(try store.articles().map(\.id) == ["new-1"])
        #expect(try laptop.articles().map(\.id) == ["new-1"])
    }

    @Test("after 410 cursor_expired a device pulls anew: its outbox is kept as it was (nothing re-queued, nothing marked restored), bookmarked articles stay, a deletion it missed takes effect, and every change it made offline reaches the server")
    func cursorExpired() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [("old-1", 100), ("new-1", 1), ("new-2", 1), ("new-3", 1)])
        let token = try await h.createUser("alice")
        let (phone, phoneEngine) = try h.openDevice("phone", token: token)
        try phone.setBookmarked("old-1", true)
        try await phoneEngine.sync()
        let (tablet, tabletEngine) = try h.openDevice("tablet", token: token)
        try await tabletEngine.sync()
        #expect(try tablet.articleCount() == 4)

        // The tablet goes away for a month; meanwhile new-3 is deleted and compaction runs.
        #expect(try await h.service.deleteArticle(id: "new-3"))
        _ = try await h.service.compact(RetentionPolicy(articleDays: 90))
        h.advance(seconds: 31 * Self.day)
        let report = try await h.service.compact(RetentionPolicy(articleDays: 90))
        #expect(report.removedTombstones == 1)

        // Offline changes, then the store-level start over: the outbox is untouched.
        try tablet.setBookmarked("new-1", true)
        try tablet.markRead("new-1")
        try tablet.setProgress("new-2", 0.5)
        let before = try tablet.outboxBatch(limit: 100).request
        try tablet.startOverAfterCursorExpired()
        #expect(try tablet.outboxBatch(limit: 100).request == before)
        #expect(before.mutations.allSatisfy { !$0.restored })
        #expect(try tablet.state(articleId: "new-1").isBookmarked)
        // No article stays (new-3's tombstone is gone: nothing else would delete it); the live
        // ones come back with the pull, the bookmarked old-1 after it. The changes still show.
        #expect(try tablet.articleCount() == 0)
        #expect(try tablet.state(articleId: "new-2").progress == 0.5)

        // Its cursor dropped, the next sync pushes the outbox and pulls from the beginning.
        let synced = try await tabletEngine.sync()
        #expect(synced.acknowledged == 3)
        #expect(try tablet.articles().map(\.id).sorted() == ["new-1", "new-2", "old-1"])
        #expect(try await h.serverState(user: "alice", article: "new-1")?.isBookmarked == true)
        #expect(try await h.serverState(user: "alice", article: "new-1")?.isRead == true)
        #expect(try await h.serverState(user: "alice", article: "new-2")?[.progress]?.write.value == .number(0.5))
    }

    @Test("an article published again under the id of one compaction removed starts with no state on the device, as on the server")
    func republishedAfterRemoval() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [("a", 1), ("b", 1)])
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try store.markRead("b")
        try store.setProgress("b", 0.5)
        try await engine.sync()
        #expect(try await h.service.deleteArticle(id: "b"))
        try await engine.sync()
        _ = try await h.service.compact(RetentionPolicy())
        h.advance(seconds: 31 * Self.day)
        #expect(try await h.service.compact(RetentionPolicy()).removedStates == 1)
        try await Self.ingest(h, [("b", 1)])  // a new article under the old id
        try await engine.sync()
        #expect(try await h.serverState(user: "alice", article: "b") == nil)
        let state = try store.state(articleId: "b")
        #expect(!state.isRead && state.progress == 0 && state.version == 0)
        #expect(try store.article(id: "b")?.isRead == false)
    }

    @Test("the engine meets 410 cursor_expired on its own: the report says so, nothing is re-queued, and the missed deletion takes effect")
    func engineCursorExpired() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [("a", 1), ("b", 1), ("c", 1)])
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()
        #expect(try await h.service.deleteArticle(id: "b"))
        _ = try await h.service.compact(RetentionPolicy())  // the checkpoint the next run removes up to
        h.advance(seconds: 31 * Self.day)
        #expect(try await h.service.compact(RetentionPolicy()).removedTombstones == 1)
        try store.markRead("a")
        let report = try await engine.sync()
        #expect(report.cursorExpired)
        #expect(!report.serverWasReset)
        #expect(report.requeuedAfterReset == 0)
        #expect(report.acknowledged == 1)
        #expect(try store.articles().map(\.id).sorted() == ["a", "c"])
        #expect(try store.state(articleId: "a").isRead)
        #expect(try await h.serverState(user: "alice", article: "a")?.isRead == true)
    }
}
