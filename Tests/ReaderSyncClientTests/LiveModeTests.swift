import Foundation
import HummingbirdTesting
import Logging
import ReaderSyncClient
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Synchronization
import Testing

@Suite("SDK live mode over HTTP")
struct LiveModeTests {
    /// No heartbeat within a test: only wake-ups can tell a device of a change.
    static var quiet: SyncConfiguration {
        var configuration = SyncConfiguration()
        configuration.live.heartbeat = .seconds(3600)
        return configuration
    }

    @Test("two devices in live mode converge with no sync() call: a local change is pushed, the other device is told and pulls it")
    func converges() async throws {
        let h = try await ClientHarness(configuration: Self.quiet)
        try await h.seedArticles(10)
        let token = try await h.createUser("alice")
        try await h.withHTTPServer { url in
            let phone = try h.openDevice("phone", token: token, transport: HTTPSyncTransport(baseURL: url, token: token))
            let tablet = try h.openDevice("tablet", token: token, transport: HTTPSyncTransport(baseURL: url, token: token))
            let phoneLive = LiveRun(phone.engine)
            let tabletLive = LiveRun(tablet.engine)
            // Both have made their first sync and hold a stream.
            try await eventually { phoneLive.reports >= 1 && tabletLive.reports >= 1 && h.service.notifier.count == 2 }
            #expect(phoneLive.error == nil && tabletLive.error == nil, "live mode ended: \(String(describing: phoneLive.error)), \(String(describing: tabletLive.error))")
            #expect(try phone.store.articleCount() == 10 && tablet.store.articleCount() == 10)

            try phone.store.setBookmarked("art-3", true)
            try phone.store.markRead("art-4", true)
            try await eventually { (try? tablet.store.article(id: "art-3")?.isBookmarked) == true && (try? tablet.store.article(id: "art-4")?.isRead) == true }
            try tablet.store.setBookmarked("art-3", false)
            try await eventually { (try? phone.store.article(id: "art-3")?.isBookmarked) == false }
            #expect(try phone.store.pendingChangeCount() == 0 && tablet.store.pendingChangeCount() == 0)

            // An article the newsroom publishes reaches both.
            _ = try await h.service.ingest(jsonLines: Array(#"{"id":"art-99","section":"world","title":"Late news","body":"B","publishedAt":"2026-11-30T09:00:00Z"}"#.utf8))
            try await eventually { (try? phone.store.article(id: "art-99")) != nil && (try? tablet.store.article(id: "art-99")) != nil }

            // Cancelling ends live mode promptly (the server lets go of each stream at its next
            // heartbeat's write, LiveUpdatesTests.lifetime).
            let cancelled = ContinuousClock.now
            await phoneLive.stop()
            await tabletLive.stop()
            #expect(ContinuousClock.now - cancelled < .seconds(5))
        }
    }

    @Test("a server without the event route: live mode long-polls and still converges")
    func fallsBackToLongPoll() async throws {
        let h = try await ClientHarness(configuration: Self.quiet)
        try await h.seedArticles(4)
        let token = try await h.createUser("alice")
        try await h.withHTTPServer { url in
            let phone = try h.openDevice("phone", token: token, transport: HTTPSyncTransport(baseURL: url, token: token))
            let tablet = try h.openDevice("tablet", token: token, transport: NoEventStream(inner: HTTPSyncTransport(baseURL: url, token: token)))
            let tabletLive = Task { for try await _ in tablet.engine.live(LiveOptions(longPollWait: 30, baseDelay: .milliseconds(10))) {} }
            defer { tabletLive.cancel() }
            // The tablet waits in a long-poll (counted among the streams) once its stream was refused.
            try await eventually { h.service.notifier.count == 1 }
            try phone.store.markRead("art-2", true)
            try await phone.engine.sync()
            try await eventually { (try? tablet.store.article(id: "art-2")?.isRead) == true }
        }
    }

    @Test("a server restored while a device long-polls: the device resets and stays live, and gives back what it wrote")
    func resetWhileLongPolling() async throws {
        let h = try await ClientHarness(configuration: Self.quiet)
        try await h.seedArticles(4)
        let token = try await h.createUser("alice")
        let phone = try h.openDevice("phone", token: token)
        let tablet = try h.openDevice("tablet", token: token, transport: NoEventStream(inner: h.transport(token: token)))
        let tabletLive = LiveRun(tablet.engine, LiveOptions(longPollWait: 1, baseDelay: .milliseconds(10)))
        try await eventually { tabletLive.reports >= 1 }
        let backup = try h.backup(named: "before.sqlite")
        try tablet.store.setBookmarked("art-1", true)
        try await eventuallyAsync { try await h.serverState(user: "alice", article: "art-1")?.isBookmarked == true }

        // The restore loses the tablet's bookmark and changes the epoch: its next long-poll gets 410.
        try await h.restore(from: backup)
        try await eventuallyAsync { try await h.serverState(user: "alice", article: "art-1")?.isBookmarked == true }
        try phone.store.markRead("art-2", true)
        try await phone.engine.sync()
        try await eventually { (try? tablet.store.article(id: "art-2")?.isRead) == true }
        #expect(tabletLive.error == nil, "live mode ended: \(String(describing: tabletLive.error))")
        await tabletLive.stop()
    }

    @Test("a refused token ends live mode with server_refused instead of retrying for ever")
    func refusedToken() async throws {
        let h = try await ClientHarness()
        try await h.withHTTPServer { url in
            let device = try h.openDevice("phone", token: "x", transport: HTTPSyncTransport(baseURL: url, token: "rs_unknown"))
            do {
                for try await _ in device.engine.live() { Issue.record("a sync with a bad token succeeded") }
                Issue.record("live mode ended without an error")
            } catch let error as ReaderSyncError {
                #expect(error.code == .serverRefused && error.httpStatus == 401)
            }
        }
    }
}

/// A transport whose event stream the server (or a proxy) does not know: `404`.
struct NoEventStream: SyncTransport {
    let inner: any SyncTransport
    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> { try await inner.pull(cursor: cursor, limit: limit, sections: sections) }
    func push(_ request: PushRequest) async throws -> Transported<PushResponse> { try await inner.push(request) }
    func pull(cursor: String?, limit: Int, wait: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, wait: wait, sections: sections)
    }
    func events(cursor: String?) async throws -> AsyncThrowingStream<SyncEvent, any Error> {
        throw ReaderSyncError(.serverRefused, "no such route", serverError: SyncError(.notFound, "no such route"), httpStatus: 404)
    }
}

/// ``eventually(_:sourceLocation:)`` for a condition that awaits.
func eventuallyAsync(_ condition: @Sendable () async throws -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("the condition did not come true within 60 s", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Waits, polling, until `condition` holds (a safety net of 60 s, not a timing assertion).
func eventually(_ condition: @Sendable () throws -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = ContinuousClock.now + .seconds(60)
    while try !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("the condition did not come true within 60 s", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// One `live()` sequence run in a task: its reports counted, the error it ended with kept.
final class LiveRun: Sendable {
    private let state = Mutex<(reports: Int, error: (any Error)?)>((0, nil))
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(_ engine: SyncEngine, _ options: LiveOptions = LiveOptions()) {
        task.withLock { $0 = Task { [self] in
            do {
                for try await _ in engine.live(options) { self.state.withLock { $0.reports += 1 } }
            } catch {
                self.state.withLock { $0.error = error }
            }
        } }
    }

    var reports: Int { state.withLock { $0.reports } }
    var error: (any Error)? { state.withLock { $0.error } }

    /// Cancels the sequence and waits for it to end.
    func stop() async {
        let task = task.withLock { $0 }
        task?.cancel()
        await task?.value
    }
}
