import AsyncHTTPClient
import Foundation
import GRDB
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncSQLiteStore
import ReaderSyncServer
import ReaderSyncService
import Synchronization

/// The server side of a simulation: how devices and the newsroom reach it.
protocol SimulatedServer: Sendable {
    /// A transport for a user's device (no faults: the simulator wraps it).
    func transport(token: String) -> any SyncTransport
    /// An admin request; returns the body of a 2xx answer.
    func admin(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> Data
    /// Whether the database can be snapshotted and restored (only in process).
    var canRestore: Bool { get }
    /// Takes a consistent copy of the database.
    func snapshot(named name: String) throws -> String
    /// Replaces the database by a snapshot, under a new epoch.
    func restore(from path: String) async throws
    /// The server's clock, in milliseconds.
    var nowMillis: Int64 { get }
    /// Compacts the database (only in process), and says which of `candidates` it no longer
    /// holds at all.
    func compact(_ policy: RetentionPolicy, candidates: [String]) async throws -> (report: CompactionReport, removed: [String])
    /// Releases connections; called once at the end of a run.
    func shutdown() async throws
}

/// A server in this process on a database file, reached through its real router.
final class InProcessServer: SimulatedServer {
    private struct Current {
        var store: SQLiteSyncStore
        var responder: RouterResponder<BasicRequestContext>
    }

    private let current: Mutex<Current>
    private let clock: VirtualClock
    private let configuration: SyncConfiguration
    private let directory: URL
    static let adminToken = "simulator-admin-token"

    init(directory: URL, clock: VirtualClock, configuration: SyncConfiguration) async throws {
        self.clock = clock
        self.configuration = configuration
        self.directory = directory
        let store = try SQLiteSyncStore(path: directory.appendingPathComponent("server.sqlite").path)
        try await store.setAdminTokenHash(Tokens.hash(Self.adminToken))
        current = Mutex(Current(store: store, responder: try await Self.responder(store, clock, configuration)))
    }

    private static func responder(_ store: SQLiteSyncStore, _ clock: VirtualClock, _ configuration: SyncConfiguration) async throws
        -> RouterResponder<BasicRequestContext>
    {
        let service = try await SyncService(store: store, configuration: configuration, now: { clock.now })
        var logger = Logger(label: "simulated-server")
        logger.logLevel = .critical
        return buildRouter(service: service, logger: logger).buildResponder()
    }

    private var router: RouterClient {
        RouterClient(responder: { [self] in self.current.withLock { $0.responder } })
    }

    func transport(token: String) -> any SyncTransport {
        InProcessTransport(client: router, token: token)
    }

    func admin(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> Data {
        let (status, data) = try await router.send(.init(method.rawValue)!, path, body: body, token: Self.adminToken)
        guard (200..<300).contains(status) else {
            throw SimulationError("admin \(method) \(path) answered \(status): \(String(decoding: data, as: UTF8.self))")
        }
        return data
    }

    var canRestore: Bool { true }
    var nowMillis: Int64 { Timestamp.millis(clock.now) }
    func shutdown() async throws {}

    func snapshot(named name: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        let store = current.withLock { $0.store }
        try store.dbPool.backup(to: try DatabaseQueue(path: path))
        return path
    }

    func compact(_ policy: RetentionPolicy, candidates: [String]) async throws -> (report: CompactionReport, removed: [String]) {
        let store = current.withLock { $0.store }
        let clock = self.clock
        let report = try await SyncService(store: store, configuration: configuration, now: { clock.now }).compact(policy)
        var removed: [String] = []
        for id in candidates where try await store.article(id: id) == nil { removed.append(id) }
        return (report, removed)
    }

    func restore(from path: String) async throws {
        // Work on a copy, so the snapshot can be restored again later.
        let target = directory.appendingPathComponent("restored-\(UUID().uuidString).sqlite").path
        try DatabaseQueue(path: path).backup(to: try DatabaseQueue(path: target))
        let store = try SQLiteSyncStore(path: target)
        try store.startNewEpoch()
        let responder = try await Self.responder(store, clock, configuration)
        current.withLock { $0 = Current(store: store, responder: responder) }
    }
}

/// Running `reader-sync serve` processes on one database, over real HTTP.
final class RemoteServer: SimulatedServer {
    /// Where admin requests go: the first server.
    let baseURL: String
    let baseURLs: [String]
    let adminToken: String
    /// Its own client, with a connection for every device that may sync at once.
    let client: HTTPClient

    init(baseURLs: [String], adminToken: String, connections: Int) {
        self.baseURLs = baseURLs.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        baseURL = self.baseURLs[0]
        self.adminToken = adminToken
        var configuration = HTTPClient.Configuration(
            timeout: .init(connect: .seconds(10), read: .seconds(120)),
            decompression: .enabled(limit: .ratio(100)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(connections, 8))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func transport(token: String) -> any SyncTransport {
        let transports = baseURLs.map { HTTPSyncTransport(baseURL: $0, token: token, client: client) }
        return transports.count == 1 ? transports[0] : RoundRobinTransport(transports)
    }

    func shutdown() async throws {
        try await client.shutdown()
    }

    func compact(_ policy: RetentionPolicy, candidates: [String]) async throws -> (report: CompactionReport, removed: [String]) {
        throw SimulationError("compaction runs only on the in-process server")
    }

    func admin(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> Data {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(adminToken)")
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 256 << 20)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw SimulationError("admin \(method) \(path) answered \(response.status.code): \(String(buffer: bytes))")
        }
        return Data(bytes.readableBytesView)
    }

    var canRestore: Bool { false }
    var nowMillis: Int64 { Timestamp.millis(Date()) }

    func snapshot(named name: String) throws -> String {
        throw SimulationError("a remote server cannot be snapshotted by the simulator")
    }

    func restore(from path: String) async throws {
        throw SimulationError("a remote server cannot be restored by the simulator")
    }
}

/// A failure of the simulation itself (not an invariant).
public struct SimulationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The simulation's clock: virtual in process (advanced by the steps), the real one against a remote server.
final class VirtualClock: Sendable {
    private let millis: Mutex<Int64>
    private let real: Bool

    init(startMillis: Int64, real: Bool) {
        millis = Mutex(startMillis)
        self.real = real
    }

    var now: Date { real ? Date() : Timestamp.date(millis: millis.withLock { $0 }) }
    var nowMillis: Int64 { Timestamp.millis(now) }

    func advance(millis delta: Int64) {
        millis.withLock { $0 += delta }
    }
}

/// Sends each request to the next of several servers in turn, as a load balancer without
/// session affinity does: a device's pull may go to one server and its next push to another.
final class RoundRobinTransport: SyncTransport {
    private let transports: [any SyncTransport]
    private let next = Mutex(0)

    init(_ transports: [any SyncTransport]) {
        self.transports = transports
    }

    private func pick() -> any SyncTransport {
        transports[next.withLock { index in
            defer { index = (index + 1) % transports.count }
            return index
        }]
    }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await pick().pull(cursor: cursor, limit: limit, sections: sections)
    }

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        try await pick().push(request)
    }

    func pull(cursor: String?, limit: Int, wait: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await pick().pull(cursor: cursor, limit: limit, wait: wait, sections: sections)
    }

    func events(cursor: String?) async throws -> AsyncThrowingStream<SyncEvent, any Error> {
        try await pick().events(cursor: cursor)
    }

    func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await pick().pullNewestFirst(limit: limit, window: window, since: since, sections: sections)
    }

    func article(id: String) async throws -> Transported<ArticleDTO>? {
        try await pick().article(id: id)
    }
}
