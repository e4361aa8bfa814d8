import Foundation
import ReaderSyncClient
import ReaderSyncCore
import Synchronization
import Testing
@testable import ReaderSyncServer

@Suite("Busy servers: the SDK honours 503 Retry-After with backoff and jitter")
struct RetryTests {
    @Test("Retry-After is read from a 503 (seconds form), and only from a 503 or 429")
    func parsing() {
        let body = Array(#"{"error":{"code":"unavailable","message":"busy"}}"#.utf8)
        #expect(ReaderSyncError.answer(status: 503, body: body, request: "GET /x", retryAfter: "2").retryAfter == .seconds(2))
        #expect(ReaderSyncError.answer(status: 503, body: body, request: "GET /x", retryAfter: "Wed, 21 Oct 2026 07:28:00 GMT").retryAfter == .zero)
        #expect(ReaderSyncError.answer(status: 503, body: body, request: "GET /x", retryAfter: nil).retryAfter == .zero)
        #expect(ReaderSyncError.answer(status: 429, body: body, request: "GET /x", retryAfter: "99999").retryAfter == .seconds(300))
        #expect(ReaderSyncError.answer(status: 500, body: body, request: "GET /x", retryAfter: "2").retryAfter == nil)
        #expect(ReaderSyncError.answer(status: 400, body: body, request: "GET /x", retryAfter: "2").retryAfter == nil)
    }

    @Test("a busy push and a busy pull are retried after Retry-After plus jittered exponential backoff, then the sync completes")
    func retriesThenSucceeds() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(3)
        let token = try await h.createUser("ann")
        let busy = BusyTransport(h.transport(token: token), busyPushes: 2, busyPulls: 1)
        let sleeps = Recorded<Duration>()
        let store = try ReaderStore(path: h.directory.appendingPathComponent("phone.sqlite").path, deviceId: "phone")
        let policy = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(200), maxDelay: .seconds(5))
        let engine = SyncEngine(store: store, transport: busy, pushBatchSize: 10, pageSize: 10, retryPolicy: policy,
                                sleep: { sleeps.append($0) }, jitter: { 0.5 })
        try store.markRead("art-1")
        let report = try await engine.sync()
        #expect(report.busyRetries == 3)
        #expect(report.acknowledged == 1)
        #expect(try store.pendingChangeCount() == 0)
        let state = try await h.serverState(user: "ann", article: "art-1")
        #expect(state?.wire.read == true)
        // Push: 1 s + 0.5 × 200 ms, then 1 s + 0.5 × 400 ms; the pull's first retry starts over.
        #expect(sleeps.values == [.milliseconds(1100), .milliseconds(1200), .milliseconds(1100)])
    }

    @Test("after the policy's attempts the busy error ends the sync, and the change stays in the outbox")
    func givesUp() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(1)
        let token = try await h.createUser("ann")
        let sleeps = Recorded<Duration>()
        let store = try ReaderStore(path: h.directory.appendingPathComponent("phone.sqlite").path, deviceId: "phone")
        let engine = SyncEngine(store: store, transport: BusyTransport(h.transport(token: token), busyPushes: 100, busyPulls: 0),
                                pushBatchSize: 10, pageSize: 10, retryPolicy: RetryPolicy(maxAttempts: 3),
                                sleep: { sleeps.append($0) }, jitter: { 1 })
        try store.setBookmarked("art-1", true)
        await #expect(throws: ReaderSyncError.self) { try await engine.sync() }
        #expect(sleeps.values.count == 2)
        #expect(sleeps.values.allSatisfy { $0 >= .seconds(1) })
        #expect(try store.pendingChangeCount() == 1)
    }

    @Test("failures without Retry-After are not retried by the engine")
    func otherFailuresNotRetried() async throws {
        let h = try await ClientHarness()
        let store = try ReaderStore(path: h.directory.appendingPathComponent("phone.sqlite").path, deviceId: "phone")
        let sleeps = Recorded<Duration>()
        try store.markRead("art-1")
        let engine = SyncEngine(store: store, transport: BusyTransport(FailingTransport(), busyPushes: 0, busyPulls: 0),
                                pushBatchSize: 10, pageSize: 10, retryPolicy: RetryPolicy(),
                                sleep: { sleeps.append($0) }, jitter: { 0 })
        await #expect(throws: ReaderSyncError.self) { try await engine.sync() }
        #expect(sleeps.values.isEmpty)
    }
}

/// Answers `503 Retry-After: 1` to the first pushes and pulls, then lets requests through.
final class BusyTransport: SyncTransport {
    let inner: any SyncTransport
    private let remaining: Mutex<(pushes: Int, pulls: Int)>

    init(_ inner: any SyncTransport, busyPushes: Int, busyPulls: Int) {
        self.inner = inner
        remaining = Mutex((busyPushes, busyPulls))
    }

    private static let busy = ReaderSyncError.answer(
        status: 503, body: Array(#"{"error":{"code":"unavailable","message":"busy"}}"#.utf8), request: "test", retryAfter: "1")

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        if remaining.withLock({ r in defer { r.pushes -= 1 }; return r.pushes > 0 }) { throw Self.busy }
        return try await inner.push(request)
    }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        if remaining.withLock({ r in defer { r.pulls -= 1 }; return r.pulls > 0 }) { throw Self.busy }
        return try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }
}

struct FailingTransport: SyncTransport {
    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        throw ReaderSyncError(.transportFailed, "connection refused")
    }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        throw ReaderSyncError(.transportFailed, "connection refused")
    }
}

final class Recorded<Value: Sendable>: Sendable {
    private let items = Mutex<[Value]>([])
    func append(_ value: Value) { items.withLock { $0.append(value) } }
    var values: [Value] { items.withLock { $0 } }
}

/// Answers the first pull page from `inner`; every later one waits until its task is cancelled,
/// telling `hanging` when it starts to wait.
struct HangingAfterFirstPageTransport: SyncTransport {
    let inner: any SyncTransport
    let hanging: AsyncStream<Void>.Continuation

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        try await inner.push(request)
    }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        guard cursor != nil else { return try await inner.pull(cursor: cursor, limit: limit, sections: sections) }
        hanging.yield()
        // Ends by cancellation, as the test expects; else it fails the sync after 20 s.
        try await Task.sleep(for: .seconds(20))
        throw ReaderSyncError(.transportFailed, "the hanging page was never cancelled")
    }
}
