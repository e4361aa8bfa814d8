import Foundation
import Hummingbird
import Logging
import PostgresNIO
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncPostgres
@testable import ReaderSyncServer
@testable import ReaderSyncService
import ServiceLifecycle
import Synchronization
import Testing

/// Live updates across servers on one PostgreSQL database: `LISTEN`/`NOTIFY` after commits.
@Suite("Live updates across servers (PostgreSQL)", .enabled(if: Backend.available.contains(.postgres)))
struct LiveAcrossServersTests {
    @Test("a stream on server 1 hears a push through server 2 and an ingest through server 3, also after its listening connection is killed")
    func acrossServers() async throws {
        let database = try await PostgresTestStore()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        // Three servers, each with its own pool, announcer and listening connection.
        var stores: [PostgresSyncStore] = [database.store]
        var pools: [Task<Void, Never>] = []
        for index in 2...3 {
            var options = PostgresStoreOptions()
            options.poolSize = 2
            options.applicationName = "reader-sync test server \(index)"
            let store = PostgresSyncStore(url: try PostgresDatabaseURL(database.url), options: options, logger: logger)
            pools.append(Task { await store.client.run() })
            stores.append(store)
        }
        defer { for pool in pools { pool.cancel() } }
        var configuration = SyncConfiguration()
        configuration.live.heartbeat = .seconds(3600) // only wake-ups tell of changes here
        var started: [SyncService] = []
        for store in stores { started.append(try await SyncService(store: store, configuration: configuration)) }
        let services = started
        try await services[0].store.setAdminTokenHash(Tokens.hash(Harness.adminToken))

        let ports = Mutex([Int](repeating: 0, count: 3))
        let apps = services.enumerated().map { index, service in
            buildApplication(service: service, configuration: .init(port: 0), logger: logger) { channel in
                ports.withLock { $0[index] = channel.localAddress?.port ?? 0 }
            }
        }
        let group = ServiceGroup(configuration: .init(services: apps.map { $0 as any Service }, logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await LiveUpdatesTests.eventually { ports.withLock { !$0.contains(0) } }
            let bases = ports.withLock { $0 }.map { "http://127.0.0.1:\($0)" }

            let token = try await services[0].createUser(name: "alice").token
            _ = try await services[0].ingest(jsonLines: Array(Harness.articleLine(id: "art-1", title: "One").utf8))
            let phone = HTTPSyncTransport(baseURL: bases[0], token: token)
            let cursor = try await phone.pull(cursor: nil, limit: 100).value.cursor
            var phoneEvents = try await phone.events(cursor: cursor).makeAsyncIterator()
            let laptop = HTTPSyncTransport(baseURL: bases[1], token: token)
            var laptopEvents = try await laptop.events(cursor: cursor).makeAsyncIterator()
            try await LiveUpdatesTests.eventually { services[0].notifier.count == 1 && services[1].notifier.count == 1 }

            // The tablet pushes through server 2: the phone on server 1 is told, and pulls it from server 1.
            let tablet = HTTPSyncTransport(baseURL: bases[1], token: token)
            _ = try await tablet.push(PushRequest(deviceId: "tablet", mutations: [mutation(1, "art-1", .read, .bool(true))]))
            #expect(try await phoneEvents.nextChange(within: .seconds(60)) == .changes(ChangesEvent(epoch: services[0].epoch)))
            #expect(try await laptopEvents.nextChange(within: .seconds(60)) == .changes(ChangesEvent(epoch: services[0].epoch)))
            let afterPush = try await phone.pull(cursor: cursor, limit: 100).value
            #expect(afterPush.states.map(\.articleId) == ["art-1"])

            // The newsroom ingests through server 3: both streams are told.
            _ = try await services[2].ingest(jsonLines: Array(Harness.articleLine(id: "art-2", title: "Two").utf8))
            #expect(try await phoneEvents.nextChange(within: .seconds(60)) != nil)
            #expect(try await laptopEvents.nextChange(within: .seconds(60)) != nil)
            let afterIngest = try await phone.pull(cursor: afterPush.cursor, limit: 100).value
            #expect(afterIngest.articles.map(\.id) == ["art-2"])

            // Kill every listening connection, and push at once, before they are back: the
            // notification is lost, but a server that listens again wakes all its streams.
            let killed = try await stores[0].client.query("""
                SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                WHERE application_name LIKE '% listener' AND datname = current_database()
                """).collect().first?.decode(Int.self) ?? 0
            #expect(killed == 3)
            _ = try await tablet.push(PushRequest(deviceId: "tablet", mutations: [mutation(2, "art-2", .bookmarked, .bool(true))]))
            #expect(try await phoneEvents.nextChange(within: .seconds(60)) == .changes(ChangesEvent(epoch: services[0].epoch)))
            let afterKill = try await phone.pull(cursor: afterIngest.cursor, limit: 100).value
            #expect(afterKill.states.map(\.articleId) == ["art-2"])

            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("a change committed behind an older transaction still running is told once that transaction ends")
    func heldBack() async throws {
        let h = try await Harness(backend: .postgres, configuration: LiveUpdatesTests.configuration { $0.heartbeat = .seconds(3600) })
        try await h.seedArticles(2)
        let (alice, token) = try await h.createUser("alice")
        let store = try #require(h.postgres).store
        try await LiveUpdatesTests.withServer(h) { base in
            let phone = HTTPSyncTransport(baseURL: base, token: token)
            let cursor = try await phone.pull(cursor: nil, limit: 100).value.cursor
            var events = try await phone.events(cursor: cursor).makeAsyncIterator()
            try await LiveUpdatesTests.eventually { h.service.notifier.count == 1 }
            let before = try await store.feedHead(userId: alice.id)

            try await store.client.withConnection { blocker in
                // An older transaction takes an id and stays open: later commits wait behind it.
                _ = try await blocker.query("BEGIN", logger: blocker.logger).collect()
                _ = try await blocker.query("SELECT pg_current_xact_id()", logger: blocker.logger).collect()
                _ = try await HTTPSyncTransport(baseURL: base, token: token)
                    .push(PushRequest(deviceId: "tablet", mutations: [mutation(1, "art-1", .read, .bool(true))]))
                let held = try await store.feedHead(userId: alice.id)
                #expect(held.heldBack && held.position == before.position)
                #expect(try await phone.pull(cursor: cursor, limit: 100).value.states.isEmpty)
                // Its end commits nothing and announces nothing: only the stream's looking again can tell.
                _ = try await blocker.query("COMMIT", logger: blocker.logger).collect()
            }
            #expect(try await events.next(within: .seconds(60)) == .changes(ChangesEvent(epoch: h.service.epoch)))
            #expect(try await phone.pull(cursor: cursor, limit: 100).value.states.map(\.articleId) == ["art-1"])
        }
    }
}
