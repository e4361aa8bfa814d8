import Foundation
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncTestSupport
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Synchronization
import Testing

/// Observed queries of the store (``StoreObservation``).
@Suite("Client SDK: observed queries")
struct ObservationTests {
    /// The observer's next value (a value that never comes fails the test at its time limit).
    static func next<Value: Sendable & Equatable>(_ iterator: inout StoreObservation<Value>.AsyncIterator) async throws -> Value? {
        try await iterator.next()
    }

    @Test("an observer of the unread list sees exactly: the list, after a local markRead, after a pulled page marking another read, nothing for an acknowledgement that changes nothing shown, and the next real change", .timeLimit(.minutes(1)))
    func unreadList() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(3)
        let token = try await h.createUser("alice")
        let (tablet, tabletEngine) = try h.openDevice("tablet", token: token)
        let (phone, phoneEngine) = try h.openDevice("phone", token: token)
        try await tabletEngine.sync()
        try await phoneEngine.sync()
        let alice = try await h.service.user(named: "alice")

        var unread = try tablet.observeArticles(.unread).makeAsyncIterator()
        let ids = { (articles: [ReaderArticle]?) in articles?.map(\.id) }
        let all = ids(try await Self.next(&unread))
        #expect(all?.count == 3)
        let (first, second, third) = (all![0], all![1], all![2])

        try tablet.markRead(first)
        #expect(ids(try await Self.next(&unread)) == [second, third])

        try phone.markRead(second)
        try await phoneEngine.sync()
        try tablet.apply(try await h.service.pull(user: alice, cursor: try tablet.cursor(), limit: 100))
        #expect(ids(try await Self.next(&unread)) == [third])

        // The push of `first`'s read is acknowledged and its server state pulled: rows change,
        // what is shown does not, and no value comes for it.
        let report = try await tabletEngine.sync()
        #expect(report.acknowledged == 1)
        try tablet.markRead(third)
        #expect(ids(try await Self.next(&unread)) == [])
    }

    @Test("badges and one article: unread counts per section and the pending change count follow local actions, pulls and acknowledgements", .timeLimit(.minutes(1)))
    func countsAndOneArticle() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(4)  // art-1, art-3 in sport; art-2, art-4 in world
        let token = try await h.createUser("alice")
        let (tablet, engine) = try h.openDevice("tablet", token: token)
        var counts = tablet.observeUnreadCounts().makeAsyncIterator()
        var pending = tablet.observePendingChangeCount().makeAsyncIterator()
        var article = tablet.observeArticle(id: "art-2").makeAsyncIterator()
        #expect(try await Self.next(&counts) == UnreadCounts(bySection: [:], total: 0))
        #expect(try await Self.next(&pending) == 0)
        #expect(try await Self.next(&article) == .some(nil))

        try await engine.sync()
        #expect(try await Self.next(&counts) == UnreadCounts(bySection: ["sport": 2, "world": 2], total: 4))
        #expect(try await Self.next(&article)??.isRead == false)

        try tablet.markRead("art-2")
        #expect(try await Self.next(&counts) == UnreadCounts(bySection: ["sport": 2, "world": 1], total: 3))
        #expect(try await Self.next(&pending) == 1)
        #expect(try await Self.next(&article)??.isRead == true)

        try await engine.sync()
        #expect(try await Self.next(&pending) == 0)
        #expect(throws: ReaderSyncError.self) { _ = try tablet.observeArticles(limit: 0) }
    }

    @Test("the engine's status: idle, syncing, then the time of the success; a failure's error until the next success", .timeLimit(.minutes(1)))
    func syncStatus() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(2)
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("tablet", token: token)
        var statuses = await engine.observeStatus().makeAsyncIterator()
        #expect(await statuses.next() == SyncStatus())
        try await engine.sync()
        #expect(await statuses.next()?.isSyncing == true)
        let done = try #require(await statuses.next())
        #expect(!done.isSyncing && done.lastSuccess != nil && done.lastError == nil)
        #expect(await engine.status == done)

        let broken = SyncEngine(store: store, transport: FailingTransport())
        var failing = await broken.observeStatus().makeAsyncIterator()
        #expect(await failing.next() == SyncStatus())
        await #expect(throws: ReaderSyncError.self) { try await broken.sync() }
        #expect(await failing.next()?.isSyncing == true)
        let failed = try #require(await failing.next())
        #expect(!failed.isSyncing && failed.lastSuccess == nil && failed.lastError?.code == .transportFailed)
    }
}

/// The callback forms of an observation and the observed search.
@Suite("Client SDK: observation callbacks and search")
struct ObservationCallbackTests {
    @Test("start(on:) calls back on the queue with the value and each change, until cancelled", .timeLimit(.minutes(1)))
    func queueCallbacks() async throws {
        let h = try await ClientHarness()
        let token = try await h.createUser("alice")
        let (store, _) = try h.openDevice("tablet", token: token)
        let (values, continuation) = AsyncStream.makeStream(of: Int.self)
        let queue = DispatchQueue(label: "observer")
        let seen = Mutex<[Int]>([])
        let cancellable = store.observePendingChangeCount().start(on: queue, onError: { _ in }, onChange: { value in
            dispatchPrecondition(condition: .onQueue(queue))
            seen.withLock { $0.append(value) }
            continuation.yield(value)
        })
        var iterator = values.makeAsyncIterator()
        #expect(await iterator.next() == 0)
        try store.markRead("art-1")
        #expect(await iterator.next() == 1)
        try store.markRead("art-2")
        #expect(await iterator.next() == 2)
        queue.sync { cancellable.cancel() }  // on the callbacks' queue: nothing runs after it
        try store.markRead("art-3")
        // Another observation of the same queue sees 3; the cancelled one is told nothing.
        let (later, laterContinuation) = AsyncStream.makeStream(of: Int.self)
        let other = store.observePendingChangeCount().start(on: queue, onError: { _ in }, onChange: { laterContinuation.yield($0) })
        for await count in later where count == 3 { break }
        other.cancel()
        queue.sync {}
        #expect(seen.withLock { $0 } == [0, 1, 2])
    }

    @Test("start(onError:onChange:) calls back on the main actor", .timeLimit(.minutes(1)))
    @MainActor
    func mainActorCallbacks() async throws {
        let h = try await ClientHarness()
        let token = try await h.createUser("alice")
        let (store, _) = try h.openDevice("tablet", token: token)
        let (values, continuation) = AsyncStream.makeStream(of: Int.self)
        let cancellable = store.observePendingChangeCount().start(onError: { _ in }, onChange: { value in
            MainActor.assertIsolated()
            continuation.yield(value)
        })
        var iterator = values.makeAsyncIterator()
        #expect(await iterator.next() == 0)
        try store.setBookmarked("art-1", true)
        #expect(await iterator.next() == 1)
        cancellable.cancel()
    }

    @Test("a callback observation of a malformed search reports invalid_argument once", .timeLimit(.minutes(1)))
    func callbackError() async throws {
        let h = try await ClientHarness()
        let token = try await h.createUser("alice")
        let (store, _) = try h.openDevice("tablet", token: token)
        let (errors, continuation) = AsyncStream.makeStream(of: ReaderSyncError.self)
        let cancellable = try store.observeSearch(.expression("title AND")).start(on: DispatchQueue(label: "observer"),
                                                                                  onError: { continuation.yield($0) },
                                                                                  onChange: { _ in Issue.record("no value expected") })
        var iterator = errors.makeAsyncIterator()
        #expect(await iterator.next()?.code == .invalidArgument)
        cancellable.cancel()
    }

    @Test("an observed search gives its hits again when a pulled page brings a match and when a hit's state changes, not for an unrelated article", .timeLimit(.minutes(1)))
    func observedSearch() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(2)
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("tablet", token: token)
        try await engine.sync()
        var hits = try store.observeSearch(.words("budget")).makeAsyncIterator()
        #expect(try await hits.next()?.isEmpty == true)

        _ = try await h.service.ingest(jsonLines: Array(#"""
            {"id":"b-1","section":"world","title":"The budget vote","body":"Parliament votes on the budget.","publishedAt":"2026-11-29T09:00:00Z"}
            """#.utf8))
        try await engine.sync()
        let found = try await hits.next()
        #expect(found?.map(\.article.id) == ["b-1"])
        #expect(found?.first?.article.isRead == false)

        try store.markRead("art-1")  // not a hit: no value
        try store.markRead("b-1")
        #expect(try await hits.next()?.first?.article.isRead == true)
    }
}
