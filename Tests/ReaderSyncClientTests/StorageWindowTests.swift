import Foundation
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncTestSupport
import Synchronization
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// A device that keeps a window of the newest articles (``ReaderStore/Options/window``). The
/// harness clock starts at 2025-11-24T16:00Z; `art-n` is published n hours after 2025-11-01.
@Suite("Client SDK with a storage window")
struct StorageWindowTests {
    static func ingest(_ h: ClientHarness, _ range: ClosedRange<Int>) async throws {
        let lines = range.map { n in
            let published = Timestamp.format(Date(timeIntervalSince1970: 1_761_955_200 + Double(n) * 3600))
            return #"{"id":"art-\#(n)","section":"world","title":"Title \#(n)","body":"Body \#(n)","publishedAt":"\#(published)"}"#
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.rejected == 0)
    }

    @Test("a first sync with a window stores the newest articles first, every state, and the content of bookmarked articles outside the window; later syncs evict what falls out, keeping bookmarked and pending ones")
    func newestFirstAndEviction() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, 1...20)
        let token = try await h.createUser("alice")
        let (phone, phoneEngine) = try h.openDevice("phone", token: token)
        try phone.setBookmarked("art-2", true)
        try phone.markRead("art-19")
        try await phoneEngine.sync()

        let (tablet, engine) = try h.openDevice("tablet", token: token, options: .init(window: StorageWindow(newest: 5)))
        let first = try await engine.sync()
        #expect(first.firstPageStored != nil)
        #expect(first.fetchedArticles == 1)  // art-2, bookmarked, far outside the window
        #expect(try tablet.articles(limit: 50).map(\.id) == ["art-20", "art-19", "art-18", "art-17", "art-16", "art-2"])
        #expect(try tablet.state(articleId: "art-19").isRead)
        #expect(try tablet.state(articleId: "art-2").isBookmarked)
        #expect(first.pulledArticles == 5)

        // Three newer articles: the three oldest of the window go; the bookmarked one stays.
        try await Self.ingest(h, 21...23)
        let second = try await engine.sync()
        #expect(second.evicted == 3)
        #expect(try tablet.articles(limit: 50).map(\.id) == ["art-23", "art-22", "art-21", "art-20", "art-19", "art-2"])
        // Its state stays when an article is evicted.
        #expect(try tablet.state(articleId: "art-18").isRead == false)

        // A pending change keeps an article outside the window until it is acknowledged: the
        // server's next page is stored as the engine stores it, with art-19's read still pending.
        try tablet.markRead("art-19")
        try await Self.ingest(h, 24...25)
        let alice = try await h.service.user(named: "alice")
        try tablet.apply(try await h.service.pull(user: alice, cursor: try tablet.cursor(), limit: 100))
        #expect(try tablet.evict() == 1)  // art-20; art-19 (pending) and art-2 (bookmarked) stay
        #expect(try tablet.article(id: "art-19") != nil)
        #expect(try tablet.article(id: "art-20") == nil)

        // A link to an old story: fetched, shown, kept until the next eviction.
        let old = try await engine.article(id: "art-7")
        #expect(old?.title == "Title 7")
        #expect(try tablet.article(id: "art-7") != nil)
        #expect(try await engine.article(id: "no-such-article") == nil)
        let third = try await engine.sync()
        #expect(third.acknowledged == 1)
        #expect(third.evicted == 2)  // art-19, acknowledged now, and art-7
        #expect(try tablet.articles(limit: 50).map(\.id) == ["art-25", "art-24", "art-23", "art-22", "art-21", "art-2"])
    }

    @Test("an article bookmarked on another device, outside this device's window, is fetched by the sync that pulls the bookmark; one the server has none of is asked for once")
    func bookmarkFromElsewhere() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, 1...10)
        let token = try await h.createUser("alice")
        let counting = CountingArticleFetches(h.transport(token: token))
        let (tablet, tabletEngine) = try h.openDevice("tablet", token: token, transport: counting,
                                                      options: .init(window: StorageWindow(newest: 3)))
        try await tabletEngine.sync()
        #expect(try tablet.articleCount() == 3)
        let (phone, phoneEngine) = try h.openDevice("phone", token: token)
        try await phoneEngine.sync()
        try phone.setBookmarked("art-2", true)
        try phone.setBookmarked("art-1", true)
        try await phoneEngine.sync()
        #expect(try await h.service.deleteArticle(id: "art-1"))

        let report = try await tabletEngine.sync()
        #expect(report.fetchedArticles == 1)  // art-2; art-1 is deleted
        #expect(counting.fetches.withLock { $0 } == ["art-1", "art-2"])
        #expect(try tablet.article(id: "art-2")?.isBookmarked == true)
        #expect(try tablet.article(id: "art-1") == nil)
        // Another pull with states: art-1 is not asked for again.
        try phone.setProgress("art-9", 0.5)
        try await phoneEngine.sync()
        #expect(try await tabletEngine.sync().fetchedArticles == 0)
        #expect(counting.fetches.withLock { $0 } == ["art-1", "art-2"])
    }

    @Test("a window of days keeps what was published in the last days, by the device's clock")
    func daysWindow() async throws {
        let h = try await ClientHarness()
        // 2025-11-24T16:00Z is hour 568 after 2025-11-01: art-520 … art-568 are within two days.
        try await Self.ingest(h, 500...560)
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("reader", token: token, options: .init(window: StorageWindow(days: 2)))
        try await engine.sync()
        #expect(try store.articles(limit: 100).map(\.id) == (520...560).reversed().map { "art-\($0)" })
        h.advance(seconds: 86_400)
        let report = try await engine.sync()
        #expect(report.evicted == 24)
        #expect(try store.articleCount() == 17)
    }

    @Test("a window keeps 1 to 1,000,000 articles and 1 to 36,500 days; others are refused at open, before the server would refuse every sync")
    func badWindow() throws {
        let dir = try TestDirectory.make("window")
        for (n, window) in [StorageWindow(newest: 0), StorageWindow(newest: 1_000_001), StorageWindow(days: -1),
                            StorageWindow(days: 36_501)].enumerated() {
            #expect(throws: ReaderSyncError.self) {
                try ReaderStore(path: dir.appendingPathComponent("\(n).sqlite").path, options: .init(window: window))
            }
        }
        _ = try ReaderStore(path: dir.appendingPathComponent("ok.sqlite").path,
                            options: .init(window: StorageWindow(newest: 1_000_000, days: 36_500)))
    }
}

/// A transport that notes the articles fetched one by one.
final class CountingArticleFetches: SyncTransport {
    let inner: any SyncTransport
    let fetches = Mutex<[String]>([])

    init(_ inner: any SyncTransport) { self.inner = inner }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }
    func push(_ request: PushRequest) async throws -> Transported<PushResponse> { try await inner.push(request) }
    func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pullNewestFirst(limit: limit, window: window, since: since, sections: sections)
    }
    func article(id: String) async throws -> Transported<ArticleDTO>? {
        fetches.withLock { $0.append(id) }
        return try await inner.article(id: id)
    }
}

/// "Mark all as read", bounded by what the reader had on screen.
@Suite("Client SDK: mark all as read")
struct MarkAllReadTests {
    static func ingest(_ h: ClientHarness, _ articles: [(id: String, section: String, title: String)]) async throws {
        let lines = articles.map { a in
            #"{"id":"\#(a.id)","section":"\#(a.section)","title":"\#(a.title)","body":"Body","publishedAt":"2025-11-20T09:00:00Z"}"#
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.rejected == 0)
    }

    @Test("marks the unread articles that had arrived by the point taken when the list was shown, by section or all; never one pulled since (nor a new version of one); durable offline, then pushed")
    func upToPoint() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, (1...6).map { ("art-\($0)", $0 % 2 == 0 ? "world" : "sport", "Title \($0)") })
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()
        try store.markRead("art-4")
        try await engine.sync()
        let shown = try store.arrivalPoint()

        // While the reader looks at the list: art-7 and art-8 arrive, art-2 is corrected.
        try await Self.ingest(h, [("art-7", "world", "Title 7"), ("art-8", "sport", "Title 8"), ("art-2", "world", "Title 2, corrected")])
        try await engine.sync()

        #expect(try store.markAllRead(section: "world", upTo: shown) == 1)  // art-6: art-4 was read, art-2 is new again
        #expect(try store.state(articleId: "art-6").isRead)
        #expect(try !store.state(articleId: "art-2").isRead)
        #expect(try !store.state(articleId: "art-7").isRead)
        #expect(try store.markAllRead(upTo: shown) == 3)  // art-1, art-3, art-5
        #expect(try !store.state(articleId: "art-8").isRead)
        #expect(try store.pendingChangeCount() == 4)

        // Durable: the store reopened holds the same changes; one sync pushes them.
        let (reopened, reopenedEngine) = try h.openDevice("phone", token: token)
        #expect(try reopened.pendingChangeCount() == 4)
        let report = try await reopenedEngine.sync()
        #expect(report.acknowledged == 4)
        for id in ["art-1", "art-3", "art-5", "art-6"] {
            #expect(try await h.serverState(user: "alice", article: id)?.isRead == true, "\(id)")
        }
        for id in ["art-2", "art-7", "art-8"] {
            #expect(try await h.serverState(user: "alice", article: id)?.isRead != true, "\(id)")
        }
        // Nothing left to mark by the old point.
        #expect(try reopened.markAllRead(upTo: shown) == 0)
    }
}
