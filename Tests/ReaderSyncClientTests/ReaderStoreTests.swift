import Foundation
import ReaderSyncClient
import ReaderSyncCore
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

@Suite("Client SDK")
struct ReaderStoreTests {
    @Test("local actions are durable at once, visible offline, and survive reopening the store")
    func offlineActions() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(6)
        let token = try await h.createUser("alice")
        var (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()
        #expect(try store.articleCount() == 6)

        // Offline from here on: no transport is used.
        try store.markRead("art-1")
        try store.setBookmarked("art-2", true)
        try store.setProgress("art-2", 0.5)
        try store.markRead("art-1", false)
        try store.markRead("art-3")
        #expect(try store.pendingChangeCount() == 5)
        #expect(try store.articles(.unread, limit: 10).map(\.id).contains("art-1"))
        #expect(try store.articles(.bookmarked).map(\.id) == ["art-2"])
        #expect(try store.article(id: "art-2")?.progress == 0.5)
        #expect(try !store.articles(.unread, limit: 10).map(\.id).contains("art-3"))

        // Reopen from the file: the same state and the same outbox.
        (store, engine) = try h.openDevice("phone", token: token)
        #expect(store.deviceId == "phone")
        #expect(try store.pendingChangeCount() == 5)
        #expect(try store.state(articleId: "art-2").isBookmarked)
        #expect(try store.state(articleId: "art-1").isRead == false)

        let report = try await engine.sync()
        #expect(report.acknowledged == 5 && report.applied == 5)
        #expect(try store.pendingChangeCount() == 0)
        #expect(try await h.serverState(user: "alice", article: "art-2")?.isBookmarked == true)
        #expect(try await h.serverState(user: "alice", article: "art-1")?.isRead == false)
    }

    @Test("cancelling a sync cancels the page it waits for, a prefetched one too; the pages stored before stay")
    func cancelWhilePrefetching() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(10)
        let token = try await h.createUser("alice")
        let (hanging, signal) = AsyncStream<Void>.makeStream()
        let (store, engine) = try h.openDevice("phone", token: token,
                                               transport: HangingAfterFirstPageTransport(inner: h.transport(token: token), hanging: signal))
        let sync = Task { try await engine.sync() }
        var waits = hanging.makeAsyncIterator()
        _ = await waits.next()  // the second page is being fetched and will never come
        sync.cancel()
        await #expect(throws: CancellationError.self) { try await sync.value }
        // The first page (4 articles) and its cursor are stored; nothing of the second.
        #expect(try store.articleCount() == 4)
        #expect(try store.cursor() != nil)
    }

    @Test("listing: newest first, by section, paged")
    func listing() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(10)
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()
        let all = try store.articles(.all, limit: 100)
        #expect(all.count == 10)
        #expect(all.map(\.publishedAt) == all.map(\.publishedAt).sorted(by: >))
        #expect(try store.articles(.section("world"), limit: 100).allSatisfy { $0.section == "world" })
        let page1 = try store.articles(limit: 4)
        let page2 = try store.articles(limit: 4, offset: 4)
        #expect(Set(page1.map(\.id)).isDisjoint(with: page2.map(\.id)))
        #expect(throws: ReaderSyncError.self) { try store.setProgress("art-1", 1.5) }
        #expect(throws: ReaderSyncError.self) { try store.markRead("") }
        #expect(try store.pendingChangeCount() == 0)
    }

    @Test("a pulled value does not clobber a pending local change; once acknowledged the server's merged value shows")
    func pendingOverlay() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(3)
        let token = try await h.createUser("alice")
        let phone = try h.openDevice("phone", token: token)
        let tablet = try h.openDevice("tablet", token: token)
        try await phone.engine.sync()
        try await tablet.engine.sync()

        // The phone marks art-1 read (pending). Later the tablet marks it unread and syncs.
        try phone.store.markRead("art-1", true)
        h.advance(seconds: 60)
        try tablet.store.markRead("art-1", false)
        try await tablet.engine.sync()

        // The phone pulls only: the server says unread, but the phone's pending change still shows.
        let page = try await h.transport(token: token).pull(cursor: try phone.store.cursor(), limit: 100)
        #expect(page.value.states.contains { $0.articleId == "art-1" && !$0.read })
        try phone.store.apply(page.value)
        #expect(try phone.store.state(articleId: "art-1").isRead == true)
        #expect(try phone.store.pendingChangeCount() == 1)

        // Full sync: the phone's write had seen the tablet's? No: it was made before, so the rule
        // decides (newer HLC wins: the tablet's). The phone then shows the server's value.
        let report = try await phone.engine.sync()
        #expect(report.superseded == 1)
        let server = try #require(try await h.serverState(user: "alice", article: "art-1"))
        #expect(server.isRead == false)
        #expect(try phone.store.state(articleId: "art-1").isRead == server.isRead)
        #expect(try tablet.store.state(articleId: "art-1").isRead == server.isRead)
    }

    @Test("a push whose response was lost is retried: duplicate, acknowledged, nothing applied twice")
    func lostResponse() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(2)
        let token = try await h.createUser("alice")
        let lossy = LoseOnePushResponse(h.transport(token: token))
        let (store, engine) = try h.openDevice("phone", token: token, transport: lossy)
        try store.setBookmarked("art-1", true)
        try store.setProgress("art-1", 0.3)

        await #expect(throws: ReaderSyncError.self) { try await engine.sync() }
        #expect(try store.pendingChangeCount() == 2)
        let afterFirst = try #require(try await h.serverState(user: "alice", article: "art-1"))
        #expect(afterFirst.version == 2)

        let report = try await engine.sync()
        #expect(report.duplicates == 2 && report.acknowledged == 2)
        #expect(try store.pendingChangeCount() == 0)
        let afterRetry = try #require(try await h.serverState(user: "alice", article: "art-1"))
        #expect(afterRetry == afterFirst)
        #expect(try store.state(articleId: "art-1").isBookmarked && store.state(articleId: "art-1").progress == 0.3)
    }

    @Test("the device's clock moves past every HLC it observes")
    func clockAdvances() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(1)
        let token = try await h.createUser("alice")
        let slow = try h.openDevice("slow", token: token)
        // The fast device's clock is 2 minutes ahead (within the server's skew bound).
        _ = try await h.service.push(user: try #require(try await h.store.user(named: "alice")), request: PushRequest(
            deviceId: "fast", mutations: [Mutation(id: 1, articleId: "art-1", field: .read, value: .bool(true),
                                                   hlc: HLC(wall: Timestamp.millis(h.now) + 120_000, counter: 0), baseVersion: 0)]))
        try await slow.engine.sync()
        try slow.store.markRead("art-1", false)
        let pending = try slow.store.outboxBatch(limit: 10).request.mutations
        #expect(pending.first.map { $0.hlc.wall >= Timestamp.millis(h.now) + 120_000 } == true)
        try await slow.engine.sync()
        // The slow device saw the read and wrote after it: causal, it applies.
        #expect(try await h.serverState(user: "alice", article: "art-1")?.isRead == false)
    }

    @Test("after the server is restored from an older backup, devices give back everything they did")
    func resetKeepsOutboxAndGivesBack() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(5)
        let token = try await h.createUser("alice")
        let phone = try h.openDevice("phone", token: token)
        let tablet = try h.openDevice("tablet", token: token)
        try await phone.engine.sync()
        try await tablet.engine.sync()
        let backup = try h.backup(named: "backup.sqlite")

        // After the backup: acknowledged changes the backup will lack...
        try phone.store.setBookmarked("art-1", true)
        try phone.store.setProgress("art-2", 0.75)
        try await phone.engine.sync()
        h.advance(seconds: 10)
        try tablet.store.markRead("art-3")
        try await tablet.engine.sync()
        // ...and a change still pending when the server is restored.
        h.advance(seconds: 10)
        try phone.store.markRead("art-4")

        try await h.restore(from: backup)

        let phoneReport = try await phone.engine.sync()
        #expect(phoneReport.serverWasReset)
        // The push carrying the old epoch was refused before anything applied: the phone gives back
        // the two fields the lost database had from it (art-1 bookmarked, art-2 progress), and its
        // pending art-4 goes as it was.
        #expect(phoneReport.requeuedAfterReset == 2)
        let tabletReport = try await tablet.engine.sync()
        #expect(tabletReport.serverWasReset && tabletReport.requeuedAfterReset == 1)
        try await phone.engine.sync()

        #expect(try await h.serverState(user: "alice", article: "art-1")?.isBookmarked == true)
        #expect(try await h.serverState(user: "alice", article: "art-2")?.progressValue == 0.75)
        #expect(try await h.serverState(user: "alice", article: "art-3")?.isRead == true)
        #expect(try await h.serverState(user: "alice", article: "art-4")?.isRead == true)
        for device in [phone.store, tablet.store] {
            #expect(try device.pendingChangeCount() == 0)
            #expect(try device.articleCount() == 5)
            #expect(try device.state(articleId: "art-1").isBookmarked)
            #expect(try device.state(articleId: "art-3").isRead)
            #expect(try device.state(articleId: "art-4").isRead)
        }
    }
}
