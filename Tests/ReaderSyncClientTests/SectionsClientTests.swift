import Foundation
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncTestSupport
import Synchronization
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// A device that follows some sections (``ReaderStore/follow(sections:)``). `n` of `art-n` is its
/// publication hour after 2025-11-01, so a higher n is newer.
@Suite("Client SDK following sections")
struct SectionsClientTests {
    static func ingest(_ h: ClientHarness, _ articles: [(n: Int, section: String)], title: String = "Title") async throws {
        let lines = articles.map { article in
            let published = Timestamp.format(Date(timeIntervalSince1970: 1_761_955_200 + Double(article.n) * 3600))
            return #"{"id":"art-\#(article.n)","section":"\#(article.section)","title":"\#(title) \#(article.n)","body":"Body","publishedAt":"\#(published)"}"#
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.rejected == 0)
    }

    static func ids(_ store: ReaderStore) throws -> [String] {
        try store.articles(limit: 100).map(\.id)
    }

    @Test("a device that follows some sections stores only theirs and every state; following one more backfills its newest articles within the window and loses no change made meanwhile; unfollowing evicts the section but its bookmarked and pending articles")
    func followBackfillAndUnfollow() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, (1...12).map { ($0, ["world", "sport", "tech"][$0 % 3]) })
        let token = try await h.createUser("alice")
        let (phone, phoneEngine) = try h.openDevice("phone", token: token)
        try phone.setBookmarked("art-1", true)  // sport
        try await phoneEngine.sync()

        let (tablet, engine) = try h.openDevice("tablet", token: token, options: .init(window: StorageWindow(newest: 4)))
        #expect(try tablet.followedSections() == nil)
        try tablet.follow(sections: ["world"])
        #expect(try tablet.followedSections() == ["world"])
        let first = try await engine.sync()
        #expect(first.backfilledArticles == 0)  // a first sync, not a backfill
        // The newest four of world, and art-1 (sport, bookmarked on the phone) fetched for its bookmark.
        #expect(try Self.ids(tablet) == ["art-12", "art-9", "art-6", "art-3", "art-1"])
        #expect(try tablet.state(articleId: "art-1").isBookmarked)

        // Meanwhile: art-11 (tech) changes, art-13 (tech) is new, art-12 moves from world to tech.
        try await Self.ingest(h, [(11, "tech"), (13, "tech"), (12, "tech")], title: "Changed")
        #expect(try tablet.follow(sections: ["world", "tech"]) == 0)
        let second = try await engine.sync()
        #expect(second.backfilledArticles == 4)  // the newest four of tech
        #expect(try tablet.article(id: "art-11")?.title == "Changed 11")
        #expect(try tablet.article(id: "art-12")?.section == "tech")
        // The window keeps the newest four of both, and the bookmarked one.
        #expect(try Self.ids(tablet) == ["art-13", "art-12", "art-11", "art-9", "art-1"])

        // art-13 moves from tech to sport, which the tablet does not follow: it leaves the tablet.
        try await Self.ingest(h, [(14, "world"), (15, "tech")])
        try await Self.ingest(h, [(13, "sport")], title: "Moved")
        let third = try await engine.sync()
        #expect(third.pulledExpiries == 1)
        #expect(try tablet.article(id: "art-13") == nil)
        #expect(try Self.ids(tablet) == ["art-15", "art-14", "art-12", "art-11", "art-1"])

        // Unfollowing tech evicts its articles at once, except a bookmarked or pending one.
        try tablet.setBookmarked("art-15", true)
        try tablet.markRead("art-11")
        #expect(try tablet.follow(sections: ["world"]) == 1)  // art-12
        #expect(try Self.ids(tablet) == ["art-15", "art-14", "art-11", "art-1"])
        // The window's places tech held go to world's older articles: a backfill of world, and
        // art-11, acknowledged, leaves with its section.
        let fourth = try await engine.sync()
        #expect(fourth.backfilledArticles == 4)
        #expect(try Self.ids(tablet) == ["art-15", "art-14", "art-9", "art-6", "art-3", "art-1"])
        _ = try await phoneEngine.sync()
        #expect(try phone.state(articleId: "art-15").isBookmarked)
        #expect(try phone.state(articleId: "art-11").isRead)

        // Following every section again backfills the newest of them all, within the window.
        try tablet.follow(sections: nil)
        let fifth = try await engine.sync()
        #expect(fifth.backfilledArticles == 4)
        #expect(try Self.ids(tablet) == ["art-15", "art-14", "art-13", "art-12", "art-1"])
    }

    @Test("without a window, following every section again backfills every article of the others, in pages")
    func backfillEverySection() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, (1...11).map { ($0, $0 % 2 == 0 ? "world" : "sport") })
        let token = try await h.createUser("alice")
        let (tablet, engine) = try h.openDevice("tablet", token: token)
        try tablet.follow(sections: ["world"])
        _ = try await engine.sync()
        #expect(try Self.ids(tablet).count == 5)
        try tablet.follow(sections: nil)
        let report = try await engine.sync()
        #expect(report.backfilledArticles == 11)
        #expect(try Self.ids(tablet).count == 11)

        // Narrowed and widened again between two syncs (found by `simulate --partial`): what
        // the narrowing evicted is backfilled.
        #expect(try tablet.follow(sections: ["world"]) == 6)
        try tablet.follow(sections: nil)
        #expect(try await engine.sync().backfilledArticles == 11)
        #expect(try Self.ids(tablet).count == 11)
    }

    @Test("deletions reach the device for followed sections, and for a bookmarked article it kept of a section it no longer follows; un-bookmarked, such an article is evicted")
    func deletions() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [(1, "world"), (2, "sport"), (3, "sport"), (4, "tech"), (5, "sport")])
        let token = try await h.createUser("alice")
        let (tablet, engine) = try h.openDevice("tablet", token: token)
        try tablet.follow(sections: ["world", "sport"])
        _ = try await engine.sync()
        #expect(try Self.ids(tablet) == ["art-5", "art-3", "art-2", "art-1"])
        try tablet.setBookmarked("art-2", true)
        try tablet.setBookmarked("art-5", true)
        #expect(try tablet.follow(sections: ["world"]) == 1)  // art-3
        _ = try await engine.sync()
        // Un-bookmarked, an article of a section not followed leaves at the next sync.
        try tablet.setBookmarked("art-5", false)
        #expect(try await engine.sync().evicted == 1)
        #expect(try Self.ids(tablet) == ["art-2", "art-1"])
        for id in ["art-1", "art-2", "art-4"] { _ = try await h.service.deleteArticle(id: id) }
        let report = try await engine.sync()
        #expect(report.pulledDeletions == 3)
        #expect(try Self.ids(tablet) == [])
        #expect(try tablet.state(articleId: "art-2").isBookmarked)
    }

    @Test("a follow made while a sync backfills is not overwritten: the next sync backfills again, and nothing of the section is lost")
    func followDuringBackfill() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, (1...10).map { ($0, $0 % 2 == 0 ? "world" : "sport") })
        let token = try await h.createUser("alice")
        let hooked = BeforeFirstSyncPage(h.transport(token: token))
        let (tablet, engine) = try h.openDevice("tablet", token: token, transport: hooked)
        try tablet.follow(sections: ["world"])
        _ = try await engine.sync()
        try tablet.follow(sections: ["world", "sport"])
        // While the backfill of sport runs, the reader drops sport again.
        hooked.once { _ = try? tablet.follow(sections: ["world"]) }
        _ = try await engine.sync()
        #expect(try Self.ids(tablet).count == 5)
        try tablet.follow(sections: ["world", "sport"])
        #expect(try await engine.sync().backfilledArticles == 5)
        #expect(try Self.ids(tablet).count == 10)
    }

    @Test("an article fetched for a bookmark, then brought by the backfill of its section, stays once un-bookmarked")
    func backfillAdoptsFetchedArticle() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [(1, "world"), (2, "sport")])
        let token = try await h.createUser("alice")
        let (phone, phoneEngine) = try h.openDevice("phone", token: token)
        try phone.setBookmarked("art-2", true)
        _ = try await phoneEngine.sync()
        let (tablet, engine) = try h.openDevice("tablet", token: token)
        try tablet.follow(sections: ["world"])
        #expect(try await engine.sync().fetchedArticles == 1)
        try tablet.follow(sections: ["world", "sport"])
        #expect(try await engine.sync().backfilledArticles == 1)
        try tablet.setBookmarked("art-2", false)
        #expect(try await engine.sync().evicted == 0)
        #expect(try Self.ids(tablet) == ["art-2", "art-1"])
    }

    @Test("through a transport without first syncs, a backfill falls back to a pull from the beginning and reads it to its end, past pages short of articles")
    func backfillThroughFallback() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [(1, "world"), (2, "world"), (3, "world"), (4, "sport"), (5, "sport"), (6, "sport")])
        for id in ["art-1", "art-2", "art-3"] { _ = try await h.service.deleteArticle(id: id) }
        try await Self.ingest(h, [(7, "sport"), (8, "sport"), (9, "world")])
        let token = try await h.createUser("alice")
        let (tablet, engine) = try h.openDevice("tablet", token: token, transport: PullAndPushOnly(h.transport(token: token)))
        try tablet.follow(sections: ["world"])
        _ = try await engine.sync()
        #expect(try Self.ids(tablet) == ["art-9"])
        try tablet.follow(sections: ["world", "sport"])
        // Pages of 4 from the beginning: three sport articles and a tombstone, then two tombstones, two sport articles...
        #expect(try await engine.sync().backfilledArticles == 5)
        #expect(try Self.ids(tablet) == ["art-9", "art-8", "art-7", "art-6", "art-5", "art-4"])
    }

    @Test("bad input: an empty set or more than 100 sections is refused, and what the device followed stays")
    func badInput() async throws {
        let h = try await ClientHarness()
        let token = try await h.createUser("alice")
        let (tablet, _) = try h.openDevice("tablet", token: token)
        try tablet.follow(sections: ["world"])
        for sections: Set<String> in [[], Set((0...100).map { "s\($0)" })] {
            #expect {
                try tablet.follow(sections: sections)
            } throws: { error in
                (error as? ReaderSyncError)?.code == .invalidArgument
            }
        }
        #expect(try tablet.followedSections() == ["world"])
    }
}

/// Runs an action once, just before the next first-sync (or backfill) page is asked for.
final class BeforeFirstSyncPage: SyncTransport {
    let inner: any SyncTransport
    private let action = Mutex<(@Sendable () -> Void)?>(nil)

    init(_ inner: any SyncTransport) { self.inner = inner }

    func once(_ body: @escaping @Sendable () -> Void) { action.withLock { $0 = body } }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }
    func push(_ request: PushRequest) async throws -> Transported<PushResponse> { try await inner.push(request) }
    func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse> {
        action.withLock { action in defer { action = nil }; return action }?()
        return try await inner.pullNewestFirst(limit: limit, window: window, since: since, sections: sections)
    }
    func article(id: String) async throws -> Transported<ArticleDTO>? { try await inner.article(id: id) }
}

/// A transport written before first syncs: pull and push only (the protocol's defaults for the rest).
struct PullAndPushOnly: SyncTransport {
    let inner: any SyncTransport

    init(_ inner: any SyncTransport) { self.inner = inner }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }
    func push(_ request: PushRequest) async throws -> Transported<PushResponse> { try await inner.push(request) }
}
