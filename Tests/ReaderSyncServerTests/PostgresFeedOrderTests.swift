import Foundation
import Logging
import PostgresNIO
import ReaderSyncCore
import ReaderSyncPostgres
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// The PostgreSQL feed is ordered by (transaction id, sequence) as numbers. The pull queries once
/// read the transaction id as text into an output column named `xid`, which `ORDER BY xid` then
/// sorted by, as text: a transaction id with one digit more (10000 after 9999) came first, the
/// cursor moved past it, and every change of the shorter ids behind it was never served.
@Suite("PostgreSQL feed order across transaction ids of different lengths", .enabled(if: Backend.available.contains(.postgres)))
struct PostgresFeedOrderTests {
    @Test("a change whose transaction id has one digit more comes after the older ones, in pages of one")
    func transactionIdsOrderAsNumbers() async throws {
        let h = try await Harness(backend: .postgres)
        let client = try #require(h.postgres).store.client
        let logger = Logger(label: "test.feed-order")
        /// The transaction id the next transaction will get (at least).
        func nextTransaction() async throws -> UInt64 {
            try await client.query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text", logger: logger)
                .collect().first.flatMap { UInt64(try $0.decode(String.self)) } ?? 0
        }
        /// Uses up transaction ids (one per subtransaction that writes) until the next one is `target` or more.
        func useTransactions(until target: UInt64) async throws {
            let next = try await nextTransaction()
            guard next < target else { return }
            try await client.query(PostgresQuery(unsafeSQL: """
                DO $$ BEGIN
                    CREATE TEMP TABLE burn (x int) ON COMMIT DROP;
                    FOR i IN 1..\(target - next + 1) LOOP
                        BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN others THEN NULL; END;
                    END LOOP;
                END $$
                """), logger: logger)
        }
        // The first two articles at an id from 5000…9999 (or 50000…99999, …), the last two at
        // 10000 or more: as text "10…" sorts before "5…".
        var power: UInt64 = 10
        while power <= (try await nextTransaction()) + 100 { power *= 10 }
        try await useTransactions(until: power / 2)
        try await h.seedArticles(2)
        try await useTransactions(until: power)
        try await h.seedArticles(2, from: 3)

        let raw = try await h.store.changes(userId: 0, after: .start, limit: 10)
        try #require(raw.changes.count == 4)
        try #require(raw.changes.map(\.position.transaction).sorted().map { $0 >= power } == [false, false, true, true],
                     "\(raw.changes.map(\.position)): the test needs two transaction ids below \(power) and two above")
        #expect(raw.changes.map(\.position) == raw.changes.map(\.position).sorted())

        let (user, _) = try await h.createUser("reader")
        var cursor: String?
        var seen: [String] = []
        for _ in 0..<10 {
            let page = try await h.service.pull(user: user, cursor: cursor, limit: 1)
            seen += page.articles.map(\.id)
            cursor = page.cursor
            if !page.hasMore { break }
        }
        #expect(seen == ["art-1", "art-2", "art-3", "art-4"])
    }
}
