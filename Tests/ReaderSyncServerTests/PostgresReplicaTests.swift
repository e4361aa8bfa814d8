import Foundation
import Logging
import PostgresNIO
import ReaderSyncCore
import ReaderSyncPostgres
@testable import ReaderSyncService
import ReaderSyncTestSupport
import Testing

/// Pulls served from a streaming replica (`serve --db-read`): a real hot standby of the test
/// cluster, fed by WAL streaming, never a second database posing as one.
@Suite("PostgreSQL: pulls from a streaming replica", .enabled(if: Backend.available.contains(.postgres)))
struct PostgresReplicaTests {
    @Test("pulls read the standby: never past what it has replayed, held back by a transaction in flight on the primary, complete once it has caught up")
    func pullsFromStandby() async throws {
        let primary = try #require(try PostgresCluster.shared())
        let standby = try #require(try PostgresCluster.standby())
        await PostgresTestLock.shared.acquire()
        defer { PostgresTestLock.shared.release() }
        let primaryURL = try primary.createDatabase()
        let name = try #require(URLComponents(string: primaryURL)?.path.dropFirst()).description
        let replicaURL = standby.url(database: name)
        try standby.waitForReplay(of: primary) // the CREATE DATABASE
        let logger = PostgresStoreTests.logger
        let article = PostgresStoreTests.article

        try await PostgresSyncStore.withStore(url: PostgresDatabaseURL(primaryURL), readURL: PostgresDatabaseURL(replicaURL), logger: logger) { store in
            let service = try await SyncService(store: store)
            let user = try await store.createUser(name: "reader", tokenHash: Tokens.hash("t"), now: "2026-11-30T10:00:00Z")
            // What the standby serves once caught up can still wait for a transaction with an id
            // elsewhere on the primary (autovacuum's analyze on another test database): ask again
            // until it is there, for at most 30 s. What it must not serve is asked once.
            func pull(after cursor: String?, until done: (PullResponse) -> Bool) async throws -> PullResponse {
                let deadline = ContinuousClock.now + .seconds(30)
                while true {
                    let page = try await service.pull(user: user, cursor: cursor, limit: 100)
                    if done(page) || ContinuousClock.now >= deadline { return page }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            _ = try await service.ingest([.upsert(article("a", "t"))])
            _ = try await service.push(user: user, request: PushRequest(deviceId: "phone", mutations: [
                Mutation(id: 1, articleId: "a", field: .read, value: .bool(true), hlc: HLC(wall: 1_764_000_000_000, counter: 0), baseVersion: 0),
            ]))
            try standby.waitForReplay(of: primary)
            let first = try await pull(after: nil) { !$0.articles.isEmpty && !$0.states.isEmpty }
            #expect(first.articles.map(\.id) == ["a"] && first.states.map(\.articleId) == ["a"])

            // Replay paused: what the primary commits now is not on the standby, and a pull
            // serves none of it (it reads the standby, and only what the standby has).
            _ = try standby.psql("SELECT pg_wal_replay_pause()", database: name)
            _ = try await service.ingest([.upsert(article("b", "t"))])
            let paused = try await service.pull(user: user, cursor: first.cursor, limit: 100)
            #expect(paused.articles.isEmpty && paused.cursor == first.cursor)
            // The lag gauge: above zero while the standby holds WAL it has not replayed.
            let deadline = ContinuousClock.now + .seconds(30)
            while try standby.psql("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()", database: name) != "t",
                  ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try await store.gauges().first { $0.name == "read_replica_lag" }.map { $0.value > 0 } == true)
            _ = try standby.psql("SELECT pg_wal_replay_resume()", database: name)
            try standby.waitForReplay(of: primary)
            let resumed = try await pull(after: first.cursor) { !$0.articles.isEmpty }
            #expect(resumed.articles.map(\.id) == ["b"])

            // A transaction in flight on the primary holds back the standby's horizon too: it
            // took its transaction id before "c" committed, so a pull stops below it, and serves
            // both once it has committed and the standby has replayed that.
            try await store.client.withConnection { connection in
                try await connection.query("BEGIN", logger: logger)
                try await connection.query("SELECT pg_current_xact_id()", logger: logger)
                _ = try await service.ingest([.upsert(article("c", "t"))])
                try standby.waitForReplay(of: primary)
                let during = try await service.pull(user: user, cursor: resumed.cursor, limit: 100)
                #expect(during.articles.isEmpty && during.cursor == resumed.cursor, "\(during.articles.map(\.id))")
                try await connection.query("""
                    INSERT INTO article (id, section, title, summary, body, author, url, published_at, updated_at, version, seq)
                    SELECT 'held', b, b, b, b, b, b, now(), now(), 1, nextval('change_seq') FROM convert_to('t', 'UTF8') AS b
                    """, logger: logger)
                try await connection.query("COMMIT", logger: logger)
            }
            try standby.waitForReplay(of: primary)
            // Feed order is (transaction, sequence): "held" took its transaction id first and its
            // sequence value last.
            let after = try await pull(after: resumed.cursor) { $0.articles.count >= 2 }
            #expect(after.articles.map(\.id) == ["held", "c"])
        }
    }

    @Test("a read database that is not a replica of --db is refused at start, naming both")
    func notAReplica() async throws {
        let primary = try #require(try PostgresCluster.shared())
        await PostgresTestLock.shared.acquire()
        defer { PostgresTestLock.shared.release() }
        let one = try PostgresDatabaseURL(try primary.createDatabase())
        let other = try PostgresDatabaseURL(try primary.createDatabase())
        try await PostgresSyncStore.withStore(url: other, logger: PostgresStoreTests.logger) { _ in }
        let error = await #expect(throws: StoreError.self) {
            try await PostgresSyncStore.withStore(url: one, readURL: other, logger: PostgresStoreTests.logger) { _ in }
        }
        #expect(error?.description.contains("is not a streaming replica") == true && error?.description.contains(other.database) == true, "\(String(describing: error))")
    }
}
