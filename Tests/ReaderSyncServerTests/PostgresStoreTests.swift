import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import PostgresNIO
import ReaderSyncCore
import ReaderSyncPostgres
@testable import ReaderSyncServer
@testable import ReaderSyncService
import ReaderSyncTestSupport
import Synchronization
import Testing

/// What only the PostgreSQL store has to prove: concurrent writers on many servers, a change
/// feed that never skips a change committed late, migrations raced by servers starting at once.
/// The behaviour both stores share is tested through the router on both (``Backend``).
@Suite("PostgreSQL store: concurrent writers, out-of-order commits, migrations", .enabled(if: Backend.available.contains(.postgres)))
struct PostgresStoreTests {
    static let logger: Logger = {
        var logger = Logger(label: "test.postgres")
        logger.logLevel = .error
        return logger
    }()

    /// One transaction takes a sequence value and is held open while a later one commits; a
    /// device pulls during that window and again after the held one commits. Returns the
    /// article versions the device ended with.
    static func outOfOrderCommit(feedOrder: PostgresSyncStore.FeedOrder) async throws -> [String: Int64] {
        let postgres = try await PostgresTestStore(feedOrder: feedOrder)
        let store = postgres.store
        let service = try await SyncService(store: store)
        _ = try await service.ingest([.upsert(Self.article("early", title: "v1"))])
        let user = try await store.createUser(name: "reader", tokenHash: Tokens.hash("t"), now: "2026-11-30T10:00:00Z")

        let (held, heldSignal) = AsyncStream<Void>.makeStream()
        let (release, releaseSignal) = AsyncStream<Void>.makeStream()
        var device: [String: Int64] = [:]
        var cursor: String?
        func pullAll() async throws {
            while true {
                let page = try await service.pull(user: user, cursor: cursor, limit: 1)
                for article in page.articles { device[article.id] = article.version }
                cursor = page.cursor
                if !page.hasMore { break }
            }
        }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // The slow writer: an ingest of a new version of "early" that takes its sequence
                // value now and commits only when told.
                try await store.client.withConnection { connection in
                    try await connection.query("BEGIN", logger: Self.logger)
                    try await connection.query("""
                        UPDATE article SET title = \(ByteBuffer(string: "v2")), version = version + 1,
                            seq = nextval('change_seq'), xid = pg_current_xact_id() WHERE id = 'early'
                        """, logger: Self.logger)
                    heldSignal.yield()
                    for await _ in release { break }
                    try await connection.query("COMMIT", logger: Self.logger)
                }
            }
            for await _ in held { break }
            // A later writer commits first: its sequence value is above the held one's.
            _ = try await service.ingest([.upsert(Self.article("late", title: "v1"))])
            try await pullAll()
            releaseSignal.yield()
            try await group.next()
        }
        try await pullAll()
        return device
    }

    @Test("a change whose transaction took its sequence value first and committed last is still pulled; a cursor on seq alone loses it")
    func outOfOrderCommitIsNeverSkipped() async throws {
        let device = try await Self.outOfOrderCommit(feedOrder: .transactionThenSequence)
        #expect(device == ["early": 2, "late": 1])
        // The negative control: the same scenario with the feed ordered by sequence alone, as
        // SQLite orders it, ends with the device holding the stale version of "early" forever.
        let control = try await Self.outOfOrderCommit(feedOrder: .sequenceAloneForTesting)
        #expect(control == ["early": 1, "late": 1], "the negative control no longer shows the skip: the test would not catch it either")
    }

    @Test("while a transaction is in flight, pulls stop below it and resume past it once it commits")
    func pullStopsAtTheHorizon() async throws {
        let postgres = try await PostgresTestStore()
        let service = try await SyncService(store: postgres.store)
        let user = try await postgres.store.createUser(name: "reader", tokenHash: Tokens.hash("t"), now: "2026-11-30T10:00:00Z")
        _ = try await service.ingest([.upsert(Self.article("a", title: "t"))])
        let before = try await service.pull(user: user, cursor: nil, limit: 100)
        #expect(before.articles.map(\.id) == ["a"])
        // An open transaction that has written (and so holds an xid) holds back the horizon.
        try await postgres.store.client.withConnection { connection in
            try await connection.query("BEGIN", logger: Self.logger)
            try await connection.query("SELECT pg_current_xact_id()", logger: Self.logger)
            _ = try await service.ingest([.upsert(Self.article("b", title: "t"))])
            let during = try await service.pull(user: user, cursor: before.cursor, limit: 100)
            #expect(during.articles.isEmpty && !during.hasMore)
            #expect(during.cursor == before.cursor)
            try await connection.query("ROLLBACK", logger: Self.logger)
        }
        let after = try await service.pull(user: user, cursor: before.cursor, limit: 100)
        #expect(after.articles.map(\.id) == ["b"])
    }

    @Test("the same push sent to two servers at once is applied once; the other answers duplicate")
    func samePushOnTwoServers() async throws {
        let postgres = try await PostgresTestStore()
        let url = try PostgresDatabaseURL(postgres.url)
        try await PostgresSyncStore.withStore(url: url, logger: Self.logger) { other in
            let serverA = try await SyncService(store: postgres.store)
            let serverB = try await SyncService(store: other)
            _ = try await serverA.ingest((1...20).map { .upsert(Self.article("a\($0)", title: "t")) })
            let user = try await postgres.store.createUser(name: "reader", tokenHash: Tokens.hash("t"), now: "2026-11-30T10:00:00Z")
            for round in 0..<20 {
                let first = Int64(round * 20 + 1)
                let request = PushRequest(deviceId: "phone", mutations: (0..<20).map { i in
                    Mutation(id: first + Int64(i), articleId: "a\(i + 1)", field: .read, value: .bool(round % 2 == 0),
                             hlc: HLC(wall: 1_764_000_000_000 + Int64(round), counter: 0), baseVersion: 0)
                })
                async let a = serverA.push(user: user, request: request)
                async let b = serverB.push(user: user, request: request)
                let outcomes = try await [a, b].map { Set($0.results.map(\.outcome)) }
                #expect(outcomes.contains([.applied]) && outcomes.contains([.duplicate]), "round \(round): \(outcomes)")
            }
            let state = try #require(try await other.state(userId: user.id, articleId: "a1"))
            #expect(state.version == 20)
        }
    }

    @Test("servers started at once on an empty database migrate it once, and reopening changes nothing")
    func concurrentMigrations() async throws {
        let cluster = try #require(try PostgresCluster.shared())
        let url = try PostgresDatabaseURL(try cluster.createDatabase())
        let epochs: Set<String>
        do {
            epochs = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await PostgresSyncStore.withStore(url: url, logger: Self.logger) { try await $0.identity().epoch }
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
        } catch {
            // PSQLError's description hides the server's message: say what failed.
            Issue.record("a server failed to start: \(PostgresSyncStore.describe(error))")
            return
        }
        #expect(epochs.count == 1)
        let database = String(url.database)
        #expect(try cluster.psql("SELECT string_agg(name, ',' ORDER BY name) FROM schema_migrations", database: database)
                == "m0001_postgres_initial,m0002_postgres_article_lz4,m0003_postgres_reader_api,m0004_postgres_retention,m0005_postgres_sections,m0006_postgres_history,m0007_postgres_history_no_user_check")
        let again = try await PostgresSyncStore.withStore(url: url, logger: Self.logger) { try await $0.identity().epoch }
        #expect(epochs == [again])
    }

    @Test("article bodies are stored compressed with lz4 where the server has it (this one does)")
    func bodiesCompressedWithLZ4() async throws {
        let postgres = try await PostgresTestStore()
        let service = try await SyncService(store: postgres.store)
        var long = Self.article("long", title: "t")
        long.body = String(repeating: "A paragraph that repeats, as article bodies do. ", count: 200)
        _ = try await service.ingest([.upsert(long)])
        let cluster = try #require(try PostgresCluster.shared())
        let database = try #require(URLComponents(string: postgres.url)?.path.dropFirst()).description
        #expect(try cluster.psql("SELECT pg_column_compression(body) FROM article WHERE id = 'long'", database: database) == "lz4")
        #expect(try await service.pull(user: postgres.store.createUser(name: "r", tokenHash: Tokens.hash("t"), now: "2026-11-30T10:00:00Z"),
                                       cursor: nil, limit: 10).articles.first?.body == long.body)
    }

    @Test("a database holding a migration this version does not know is refused, not written to")
    func unknownMigrationRefused() async throws {
        let cluster = try #require(try PostgresCluster.shared())
        let url = try PostgresDatabaseURL(try cluster.createDatabase())
        _ = try await PostgresSyncStore.withStore(url: url, logger: Self.logger) { try await $0.identity() }
        _ = try cluster.psql("INSERT INTO schema_migrations (name) VALUES ('m0099_postgres_future')", database: url.database)
        await #expect(throws: StoreError.self) {
            try await PostgresSyncStore.withStore(url: url, logger: Self.logger) { try await $0.identity() }
        }
    }

    @Test("pulls are index range scans in feed order, for articles and for one user's states")
    func pullUsesIndexes() async throws {
        let postgres = try await PostgresTestStore()
        let cluster = try #require(try PostgresCluster.shared())
        let database = try PostgresDatabaseURL(postgres.url).database
        let plans = try [
            "SELECT id FROM article WHERE (xid, seq) > ('5'::xid8, 5) AND xid < '100'::xid8 ORDER BY xid, seq LIMIT 10",
            "SELECT article_id FROM user_article_state WHERE user_id = 1 AND (xid, seq) > ('5'::xid8, 5) AND xid < '100'::xid8 ORDER BY xid, seq LIMIT 10",
        ].map { try cluster.psql("SET enable_seqscan = off; SET enable_bitmapscan = off; EXPLAIN \($0)", database: database) }
        #expect(plans[0].contains("Index Scan using article_on_feed"), "\(plans[0])")
        #expect(plans[1].contains("Index Scan using user_article_state_on_feed"), "\(plans[1])")
        #expect(!plans.joined().contains("Sort"), "\(plans)")
    }

    @Test("a 5,000-article ingest in one transaction while another device pushes: a device pulling all along with small pages ends with every article and every state")
    func bigIngestDuringPullsAndPushes() async throws {
        let postgres = try await PostgresTestStore(poolSize: 6)
        var configuration = SyncConfiguration()
        configuration.ingestBatchSize = 5_000
        let service = try await SyncService(store: postgres.store, configuration: configuration)
        _ = try await service.ingest((0..<50).map { .upsert(Self.article("seed-\($0)", title: "t")) })
        let user = try await postgres.store.createUser(name: "reader", tokenHash: Tokens.hash("t"), now: "2026-11-30T10:00:00Z")
        let ingestDone = Flag()

        var articles: [String: Int64] = [:]
        var states: [String: Int64] = [:]
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try await service.ingest((0..<5_000).map { .upsert(Self.article("big-\($0)", title: "t")) })
                ingestDone.set()
            }
            group.addTask {
                // Another device of the same reader marks the seed articles read, one push each.
                for i in 0..<50 {
                    _ = try await service.push(user: user, request: PushRequest(deviceId: "tablet", mutations: [
                        Mutation(id: Int64(i + 1), articleId: "seed-\(i)", field: .read, value: .bool(true),
                                 hlc: HLC(wall: 1_764_000_000_000 + Int64(i), counter: 0), baseVersion: 0),
                    ]))
                }
            }
            var cursor: String?
            var finished = false
            var quietPulls = 0
            // Pull with a small page until the ingest and the pushes are done and a pull finds nothing
            // more; bounded, so a store that never serves them fails instead of spinning.
            for pull in 0... {
                guard pull < 50_000 else {
                    Issue.record("still pulling after 50,000 pulls: \(articles.count) articles, \(states.count) states")
                    break
                }
                let page = try await service.pull(user: user, cursor: cursor, limit: 7)
                for article in page.articles { articles[article.id] = article.version }
                for state in page.states { states[state.articleId] = state.version }
                cursor = page.cursor
                if !finished, ingestDone.isSet, states.count == 50 { finished = true }
                if finished && !page.hasMore && page.articles.isEmpty && page.states.isEmpty {
                    quietPulls += 1
                    if quietPulls == 2 { break }
                }
                if !finished && page.articles.isEmpty && page.states.isEmpty { await Task.yield() }
            }
            try await group.waitForAll()
        }
        #expect(articles.count == 5_050)
        #expect(states.count == 50 && states.values.allSatisfy { $0 == 1 })
    }

    static func article(_ id: String, title: String) -> ArticleContent {
        ArticleContent(id: id, section: "world", title: title, summary: "", body: "Body", author: "", url: "",
                       publishedAt: "2026-11-20T09:00:00Z", updatedAt: "2026-11-20T09:00:00Z")
    }
}

/// A flag one task sets and another reads.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

extension PostgresStoreTests {
    @Test("rows restored from a cluster with higher transaction ids are served again after reset-epoch")
    func restoredFutureTransactionIds() async throws {
        let postgres = try await PostgresTestStore()
        let service = try await SyncService(store: postgres.store)
        _ = try await service.ingest((1...5).map { .upsert(Self.article("a\($0)", title: "t")) })
        let user = try await postgres.store.createUser(name: "reader", tokenHash: Tokens.hash("t"), now: "2026-11-30T10:00:00Z")
        _ = try await service.push(user: user, request: PushRequest(deviceId: "phone", mutations: [
            Mutation(id: 1, articleId: "a1", field: .read, value: .bool(true), hlc: HLC(wall: 1_764_000_000_000, counter: 0), baseVersion: 0),
        ]))
        // What pg_restore of a busier cluster's dump leaves: transaction ids this cluster has not reached.
        let cluster = try #require(try PostgresCluster.shared())
        let database = try PostgresDatabaseURL(postgres.url).database
        for table in ["article", "user_article_state"] {
            _ = try cluster.psql("UPDATE \(table) SET xid = (pg_current_xact_id()::text::bigint + 1000000)::text::xid8", database: database)
        }
        let hidden = try await service.pull(user: user, cursor: nil, limit: 100)
        #expect(hidden.articles.isEmpty && hidden.states.isEmpty)

        try await postgres.store.startNewEpoch()
        let service2 = try await SyncService(store: postgres.store)
        let page = try await service2.pull(user: user, cursor: nil, limit: 100)
        #expect(page.articles.map(\.id) == ["a1", "a2", "a3", "a4", "a5"])
        #expect(page.states.map(\.articleId) == ["a1"])
        #expect(page.epoch != hidden.epoch)
    }
}

extension PostgresStoreTests {
    @Test("GET /metrics reports how long the oldest writing transaction has held back pulls: 0 when none, more while one is open")
    func oldestWritingTransactionGauge() async throws {
        let h = try await Harness(backend: .postgres)
        let postgres = try #require(h.postgres)
        @Sendable func gauge(_ client: any TestClientProtocol) async throws -> Double? {
            let response = try await call(client, .get, "/metrics")
            let text = String(buffer: response.body)
            let line = text.split(separator: "\n").first { $0.hasPrefix("readersync_oldest_writing_transaction_seconds ") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        try await h.withClient { client in
            #expect(try await gauge(client) == 0)
            try await postgres.store.client.withConnection { connection in
                try await connection.query("BEGIN", logger: Self.logger)
                try await connection.query("SELECT pg_current_xact_id()", logger: Self.logger)
                let open = try #require(try await gauge(client))
                #expect(open > 0)
                try await connection.query("ROLLBACK", logger: Self.logger)
            }
            #expect(try await gauge(client) == 0)
        }
    }
}
