import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import ReaderSyncCore
import ReaderSyncPostgres
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import ReaderSyncTestSupport
import Synchronization
import Testing

/// A settable clock for the server under test.
final class TestClock: Sendable {
    private let millis: Mutex<Int64>
    init(millis: Int64 = 1_764_000_000_000) { self.millis = Mutex(millis) }
    var now: Date { Timestamp.date(millis: millis.withLock { $0 }) }
    var nowMillis: Int64 { millis.withLock { $0 } }
    func advance(millis delta: Int64) { millis.withLock { $0 += delta } }
}

/// The stores a test runs on: SQLite always, PostgreSQL when its server binaries are installed
/// (CI installs them; elsewhere one line says the PostgreSQL cases are skipped).
enum Backend: String, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// Every backend this machine can run (``PostgresCluster/isInstalled``).
    static let available: [Backend] = PostgresCluster.isInstalled ? [.sqlite, .postgres] : [.sqlite]
}

/// A PostgreSQL store on a fresh database of the test cluster, its pool running until this
/// object goes away (the harness that holds it).
final class PostgresTestStore: Sendable {
    let store: PostgresSyncStore
    let url: String
    private let pool: Task<Void, Never>

    init(feedOrder: PostgresSyncStore.FeedOrder = .transactionThenSequence, poolSize: Int = 4) async throws {
        guard let cluster = try PostgresCluster.shared() else { throw PostgresUnavailable() }
        await PostgresTestLock.shared.acquire()
        do {
            url = try cluster.createDatabase()
        } catch {
            PostgresTestLock.shared.release()
            throw error
        }
        var options = PostgresStoreOptions()
        options.poolSize = poolSize
        var logger = Logger(label: "test.postgres")
        logger.logLevel = .error
        let store = PostgresSyncStore(url: try! PostgresDatabaseURL(url), options: options, logger: logger, feedOrder: feedOrder)
        self.store = store
        pool = Task { await store.client.run() }
        try await store.migrate()
    }

    deinit {
        pool.cancel()
        PostgresTestLock.shared.release()
    }
}

/// PostgreSQL was asked for on a machine without it (``Backend/available`` never does that).
struct PostgresUnavailable: Error {}

/// A real server stack on a real store: a SQLite file in a temporary directory, or a fresh
/// database on the test PostgreSQL cluster.
struct Harness {
    static let adminToken = "test-admin-token-0123456789"

    let backend: Backend
    let directory: URL
    let store: any SyncStore
    let service: SyncService
    let clock: TestClock
    /// Keeps the PostgreSQL pool running as long as the harness lives.
    let postgres: PostgresTestStore?

    /// - Parameter trace: receives the SQL of every statement the store runs (SQLite only).
    init(backend: Backend = .sqlite, configuration: SyncConfiguration = SyncConfiguration(),
         trace: (@Sendable (String) -> Void)? = nil) async throws {
        self.backend = backend
        directory = try TestDirectory.make("server")
        switch backend {
        case .sqlite:
            store = try SQLiteSyncStore(path: directory.appendingPathComponent("server.sqlite").path, trace: trace)
            postgres = nil
        case .postgres:
            let postgres = try await PostgresTestStore()
            store = postgres.store
            self.postgres = postgres
        }
        try await store.setAdminTokenHash(Tokens.hash(Self.adminToken))
        let clock = TestClock()
        self.clock = clock
        service = try await SyncService(store: store, configuration: configuration, now: { clock.now })
    }

    /// The SQLite store, for tests of SQLite itself (its file, its query plans).
    var sqlite: SQLiteSyncStore {
        guard let store = store as? SQLiteSyncStore else { preconditionFailure("a SQLite-only test ran on \(backend)") }
        return store
    }

    var databasePath: String { sqlite.path }

    func application(_ configuration: ServerConfiguration = ServerConfiguration(host: "127.0.0.1", port: 0)) -> some ApplicationProtocol {
        buildApplication(service: service, configuration: configuration, logger: Logger(label: "test"))
    }

    /// Runs `body` against the real router, without a socket.
    func withClient(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await application().test(.router) { client in try await body(client) }
    }

    /// Ingests `count` generated articles `art-1` … and returns their ids.
    @discardableResult
    func seedArticles(_ count: Int, from start: Int = 1) async throws -> [String] {
        let lines = (start..<start + count).map { i in Self.articleLine(id: "art-\(i)", title: "Title \(i)") }
        let report = try await service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.rejected == 0)
        return (start..<start + count).map { "art-\($0)" }
    }

    static func articleLine(id: String, title: String, body: String = "Body text.", publishedAt: String = "2026-11-20T09:00:00Z",
                            updatedAt: String = "2026-11-20T10:00:00Z", section: String = "world") -> String {
        let object: [String: String] = [
            "id": id, "section": section, "title": title, "summary": "Summary of \(title)", "body": body,
            "author": "Ann Author", "url": "https://news.example/\(id)", "publishedAt": publishedAt,
            "updatedAt": updatedAt,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    func createUser(_ name: String) async throws -> (user: UserRecord, token: String) {
        let created = try await service.createUser(name: name)
        let user = try #require(try await store.user(named: name))
        return (user, created.token)
    }
}

extension HTTPFields {
    static func bearer(_ token: String) -> HTTPFields {
        [.authorization: "Bearer \(token)"]
    }
}

extension TestResponse {
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    }

    var errorCode: String? {
        (try? decode(ErrorBody.self))?.error.code
    }

    var json: Any? {
        try? JSONSerialization.jsonObject(with: Data(body.readableBytesView), options: [.fragmentsAllowed])
    }
}

func jsonBody(_ value: some Encodable) throws -> ByteBuffer {
    ByteBuffer(bytes: try JSONEncoder().encode(value))
}

func mutation(_ id: Int64, _ article: String, _ field: StateField, _ value: FieldValue,
              wall: Int64 = 1_764_000_000_000 - 60_000, counter: Int64 = 0, base: Int64 = 0) -> Mutation {
    Mutation(id: id, articleId: article, field: field, value: value, hlc: HLC(wall: wall, counter: counter), baseVersion: base)
}

/// Sends a request through `client` and checks the response against Schema/openapi.json:
/// the status is documented for the route, and a JSON body matches its schema.
@discardableResult
func call(
    _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String,
    token: String? = nil, body: ByteBuffer? = nil, headers: HTTPFields = [:],
    sourceLocation: SourceLocation = #_sourceLocation
) async throws -> TestResponse {
    var headers = headers
    if let token { headers[.authorization] = "Bearer \(token)" }
    let response = try await client.executeRequest(uri: uri, method: method, headers: headers, body: body)
    checkAgainstDocument(method: method, uri: uri, response: response, sourceLocation: sourceLocation)
    return response
}

let openAPI = try! OpenAPIValidator()

func checkAgainstDocument(method: HTTPRequest.Method, uri: String, response: TestResponse, sourceLocation: SourceLocation) {
    let path = String(uri.split(separator: "?", maxSplits: 1)[0])
    guard let template = openAPI.paths.keys.first(where: { templateMatches($0, path) }) else {
        // Unknown routes answer 404 with the error body.
        #expect(response.status == .notFound, "undocumented path \(path)", sourceLocation: sourceLocation)
        return
    }
    let status = Int(response.status.code)
    guard openAPI.documents(path: template, method: method.rawValue, status: status) else {
        if !(status == 404 && openAPI.paths[template]?[method.rawValue.lowercased()] == nil) {
            Issue.record("\(method) \(template) answered \(status), which Schema/openapi.json does not document", sourceLocation: sourceLocation)
        }
        return
    }
    guard let schema = openAPI.responseSchema(path: template, method: method.rawValue, status: status) else { return }
    guard let body = try? JSONValue.parse(Data(response.body.readableBytesView)) else {
        Issue.record("\(method) \(path) → \(status): body is not JSON", sourceLocation: sourceLocation)
        return
    }
    let problems = openAPI.validate(body, against: schema)
    #expect(problems.isEmpty, "\(method) \(path) → \(status) does not match Schema/openapi.json: \(problems)", sourceLocation: sourceLocation)
}

func templateMatches(_ template: String, _ path: String) -> Bool {
    let t = template.split(separator: "/", omittingEmptySubsequences: false)
    let p = path.split(separator: "/", omittingEmptySubsequences: false)
    guard t.count == p.count else { return false }
    return zip(t, p).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
}
