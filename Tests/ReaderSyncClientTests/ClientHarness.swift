import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Logging
import ReaderSyncClient
import ReaderSyncCore
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
@testable import ReaderSyncSimulator
import ReaderSyncTestSupport
import Synchronization
import Testing

/// A real server store and router, and devices with real client stores, all on files in a temporary directory.
final class ClientHarness: Sendable {
    let directory: URL
    let serverPath: String
    private let server: Mutex<(store: SQLiteSyncStore, service: SyncService)>
    let clock = ManualClock()

    let configuration: SyncConfiguration

    init(configuration: SyncConfiguration = SyncConfiguration()) async throws {
        self.configuration = configuration
        directory = try TestDirectory.make("client")
        serverPath = directory.appendingPathComponent("server.sqlite").path
        let store = try SQLiteSyncStore(path: serverPath)
        let clock = self.clock
        let service = try await SyncService(store: store, configuration: configuration, now: { clock.now })
        server = Mutex((store, service))
    }

    var store: SQLiteSyncStore { server.withLock { $0.store } }
    var service: SyncService { server.withLock { $0.service } }
    var now: Date { clock.now }

    func advance(seconds: Int64) { clock.advance(millis: seconds * 1000) }

    /// Replaces the server by one on `path` under a new epoch, as `restore` would.
    func restore(from path: String) async throws {
        let store = try SQLiteSyncStore(path: path)
        try store.startNewEpoch()
        let clock = self.clock
        let service = try await SyncService(store: store, configuration: configuration, now: { clock.now })
        server.withLock { $0 = (store, service) }
    }

    /// A consistent copy of the server database, taken while it runs.
    func backup(named name: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try store.dbPool.backup(to: try DatabaseQueue(path: path))
        return path
    }

    func seedArticles(_ count: Int) async throws {
        let lines = (1...count).map { i in
            #"{"id":"art-\#(i)","section":"\#(i % 2 == 0 ? "world" : "sport")","title":"Title \#(i)","body":"Body \#(i)","publishedAt":"2026-11-\#(String(format: "%02d", 1 + i % 28))T09:00:00Z"}"#
        }
        let report = try await service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.inserted == count)
    }

    func createUser(_ name: String) async throws -> String {
        try await service.createUser(name: name).token
    }

    /// A transport into whatever server is current (so a restore is seen by existing devices).
    func transport(token: String) -> any SyncTransport {
        CurrentServerTransport(harness: self, token: token)
    }

    func openDevice(_ name: String, token: String, transport: (any SyncTransport)? = nil,
                    options: ReaderStore.Options = .init(), firstPageSize: Int = 2) throws -> (store: ReaderStore, engine: SyncEngine) {
        let path = directory.appendingPathComponent("\(name).sqlite").path
        let clock = self.clock
        let store = try ReaderStore(path: path, deviceId: name, options: options, now: { clock.now })
        return (store, SyncEngine(store: store, transport: transport ?? self.transport(token: token), pushBatchSize: 3, pageSize: 4,
                                  firstPageSize: firstPageSize))
    }

    /// Runs `body` with the harness's current service served on a loopback port: its base URL.
    func withHTTPServer(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let app = buildApplication(service: service, configuration: .init(port: 0), logger: logger)
        try await app.test(.live) { client in
            try await body("http://127.0.0.1:\(try #require(client.port))")
        }
    }

    func serverState(user: String, article: String) async throws -> UserArticleState? {
        let record = try #require(try await store.user(named: user))
        return try await store.state(userId: record.id, articleId: article)
    }
}

/// Routes each request to the harness's current server through the real router.
struct CurrentServerTransport: SyncTransport {
    let harness: ClientHarness
    let token: String

    private var inner: InProcessTransport {
        InProcessTransport(responder: buildRouter(service: harness.service, logger: Logger(label: "test")).buildResponder(), token: token)
    }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        try await inner.push(request)
    }

    func pull(cursor: String?, limit: Int, wait: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, wait: wait, sections: sections)
    }

    func events(cursor: String?) async throws -> AsyncThrowingStream<SyncEvent, any Error> {
        try await inner.events(cursor: cursor)
    }

    func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pullNewestFirst(limit: limit, window: window, since: since, sections: sections)
    }

    func article(id: String) async throws -> Transported<ArticleDTO>? {
        try await inner.article(id: id)
    }
}

/// Lets the server apply a push, then loses the response once.
final class LoseOnePushResponse: SyncTransport {
    let inner: any SyncTransport
    let armed = Mutex(true)

    init(_ inner: any SyncTransport) { self.inner = inner }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        let response = try await inner.push(request)
        if armed.withLock({ let was = $0; $0 = false; return was }) {
            throw ReaderSyncError(.transportFailed, "connection reset after the server answered")
        }
        return response
    }
}

/// A clock the test moves by hand.
final class ManualClock: Sendable {
    private let millis = Mutex<Int64>(1_764_000_000_000)
    var now: Date { Timestamp.date(millis: millis.withLock { $0 }) }
    func advance(millis delta: Int64) { millis.withLock { $0 += delta } }
}
