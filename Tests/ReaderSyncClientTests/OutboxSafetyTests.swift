import Foundation
import GRDB
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncTestSupport
import Synchronization
import Testing

/// No silent loss: a pending change survives every way a push can fail and is applied exactly once.
@Suite("Client SDK: the outbox through failures")
struct OutboxSafetyTests {
    enum Fault: Sendable {
        /// Delivers every push.
        case none
        /// The network fails before the server sees the push.
        case beforeServer
        /// The server commits the push; its answer is lost on the way back.
        case answerLost
        /// The server commits and answers; the app is killed before it stores the answer (the
        /// acknowledgement's transaction never commits).
        case killedAfterAnswer
    }

    struct KilledError: Error {}

    /// Pushes through the real router with `fault`, recording every answer the server gave.
    final class FaultyTransport: SyncTransport {
        let inner: any SyncTransport
        let fault = Mutex(Fault.none)
        let answers = Mutex<[MutationResult]>([])

        init(_ inner: any SyncTransport) { self.inner = inner }

        func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
            try await inner.pull(cursor: cursor, limit: limit, sections: sections)
        }

        func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
            let fault = self.fault.withLock { $0 }
            if fault == .beforeServer { throw ReaderSyncError(.transportFailed, "connection refused") }
            let response = try await inner.push(request)
            answers.withLock { $0 += response.value.results }
            switch fault {
            case .none, .beforeServer: return response
            case .answerLost: throw ReaderSyncError(.transportFailed, "connection reset after the server answered")
            case .killedAfterAnswer: throw KilledError()
            }
        }
    }

    @Test("a change survives an unreadable neighbour, a network failure, a refusal, a lost answer and a kill before the acknowledgement, and is applied exactly once", .timeLimit(.minutes(1)))
    func everyFailurePath() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(6)
        let token = try await h.createUser("alice")
        let path = h.directory.appendingPathComponent("phone.sqlite").path
        let transport = FaultyTransport(h.transport(token: token))
        let clock = h.clock
        var store: ReaderStore? = try ReaderStore(path: path, deviceId: "phone", now: { clock.now })
        var engine = SyncEngine(store: store!, transport: transport)

        try store!.markRead("art-1")
        try store!.setBookmarked("art-2", true)
        try store!.markRead("art-5")  // damaged below: set aside, never sent
        try store!.setProgress("art-3", 0.4)
        try await store!.dbPool.write { db in try db.execute(sql: "UPDATE outbox SET value = 'maybe' WHERE articleId = 'art-5'") }
        func pendingIds() throws -> [String] {
            try store!.dbPool.read { db in try String.fetchAll(db, sql: "SELECT articleId FROM outbox ORDER BY id") }
        }

        // 1. The network fails before the server sees anything.
        transport.fault.withLock { $0 = .beforeServer }
        await #expect(throws: ReaderSyncError.self) { try await engine.sync() }
        #expect(try pendingIds() == ["art-1", "art-2", "art-3"])
        #expect(try store!.setAsideChanges().map(\.articleId) == ["art-5"])

        // 2. The server refuses (a revoked or wrong token).
        let refused = SyncEngine(store: store!, transport: h.transport(token: "not-a-token"))
        await #expect { try await refused.sync() } throws: { ($0 as? ReaderSyncError)?.httpStatus == 401 }
        #expect(try pendingIds() == ["art-1", "art-2", "art-3"])
        #expect(try await h.serverState(user: "alice", article: "art-1") == nil)

        // 3. The server commits; the answer is lost.
        transport.fault.withLock { $0 = .answerLost }
        await #expect(throws: ReaderSyncError.self) { try await engine.sync() }
        #expect(try pendingIds() == ["art-1", "art-2", "art-3"], "unacknowledged: kept")
        #expect(try await h.serverState(user: "alice", article: "art-1")?.isRead == true)

        // 4. A new change; the server commits and answers; the app is killed before it stores
        //    the answer. It starts again from the file.
        try store!.markRead("art-4")
        transport.fault.withLock { $0 = .killedAfterAnswer }
        await #expect { try await engine.sync() } throws: { ($0 as? ReaderSyncError)?.cause is KilledError }
        store = nil
        engine = SyncEngine(store: try ReaderStore(path: path, now: { clock.now }), transport: transport)
        store = engine.store
        #expect(try pendingIds() == ["art-1", "art-2", "art-3", "art-4"])

        // 5. The network is back.
        transport.fault.withLock { $0 = .none }
        let report = try await engine.sync()
        #expect(report.duplicates == 4)
        #expect(try pendingIds().isEmpty)

        // Each change was applied once, and only duplicates came after.
        let answers = transport.answers.withLock { $0 }
        for id in Set(answers.map(\.id)) {
            let outcomes = answers.filter { $0.id == id }.map(\.outcome)
            #expect(outcomes.first == .applied && outcomes.dropFirst().allSatisfy { $0 == .duplicate }, "mutation \(id): \(outcomes)")
        }
        #expect(Set(answers.map(\.id)).count == 4)
        for article in ["art-1", "art-2", "art-3", "art-4"] {
            #expect(try await h.serverState(user: "alice", article: article)?.version == 1, "\(article) applied once")
        }
        #expect(try await h.serverState(user: "alice", article: "art-2")?.isBookmarked == true)
        #expect(try await h.serverState(user: "alice", article: "art-5") == nil)
        #expect(try store!.setAsideChanges().map(\.articleId) == ["art-5"], "kept, though ids around it were acknowledged")
        #expect(try store!.state(articleId: "art-5").isRead == false, "shown as the server has it")
    }
}
