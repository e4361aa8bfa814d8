import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import ReaderSyncCore
@testable import ReaderSyncPostgres
@testable import ReaderSyncServer
@testable import ReaderSyncService
@testable import ReaderSyncSQLiteStore
import Testing

/// Pulls of some sections (docs/PROTOCOL.md, "Sections") through the real router, on both stores.
@Suite("Sections")
struct SectionsTests {
    static func ingest(_ h: Harness, _ articles: [(id: String, section: String, title: String)],
                       sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let lines = articles.map { Harness.articleLine(id: $0.id, title: $0.title, section: $0.section) }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.rejected == 0, sourceLocation: sourceLocation)
    }

    static func pull(_ client: any TestClientProtocol, token: String, cursor: String?, sections: Set<String>?, limit: Int = 1000,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> PullResponse {
        let response = try await call(client, .get, SyncRoute.pull(cursor: cursor, limit: limit, sections: sections), token: token,
                                      sourceLocation: sourceLocation)
        #expect(response.status == .ok, "\(response.text)", sourceLocation: sourceLocation)
        return try response.decode(PullResponse.self)
    }

    /// Every page from `cursor` until caught up, merged.
    static func pullAll(_ client: any TestClientProtocol, token: String, cursor: String?, sections: Set<String>?, limit: Int,
                        sourceLocation: SourceLocation = #_sourceLocation) async throws -> PullResponse {
        var merged = try await pull(client, token: token, cursor: cursor, sections: sections, limit: limit, sourceLocation: sourceLocation)
        while merged.hasMore {
            let page = try await pull(client, token: token, cursor: merged.cursor, sections: sections, limit: limit, sourceLocation: sourceLocation)
            merged.articles += page.articles
            merged.deletedArticleIds += page.deletedArticleIds
            merged.expiredArticleIds += page.expiredArticleIds
            merged.states += page.states
            merged.cursor = page.cursor
            merged.hasMore = page.hasMore
        }
        return merged
    }

    @Test("a pull of some sections brings their articles and moves out, the tombstones of every section, in feed order and in pages of any size, and the user's states of every article; an article moved in arrives as an article",
          arguments: Backend.available, [1, 2, 1000])
    func filtersBySection(backend: Backend, limit: Int) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, [("w1", "world", "W1"), ("s1", "sport", "S1"), ("t1", "tech", "T1"), ("w2", "world", "W2"),
                                  ("s2", "sport", "S2")])
        try await h.withClient { client in
            let both: Set<String> = ["world", "tech"]
            let first = try await Self.pullAll(client, token: alice, cursor: nil, sections: both, limit: limit)
            #expect(first.articles.map(\.id) == ["w1", "t1", "w2"])
            let sportFirst = try await Self.pullAll(client, token: alice, cursor: nil, sections: ["sport"], limit: limit)
            #expect(sportFirst.articles.map(\.id) == ["s1", "s2"])
            // A state of an article in no followed section still reaches the device.
            let pushed = try await call(client, .post, SyncRoute.push, token: alice, body: try jsonBody(PushRequest(
                deviceId: "phone", mutations: [mutation(1, "s1", .bookmarked, .bool(true), wall: h.clock.nowMillis)])))
            #expect(pushed.status == .ok)

            // w1 moves to sport, w2 is deleted, t1 changes, s2 moves to world, s3 is new in sport.
            try await Self.ingest(h, [("w1", "sport", "W1 moved"), ("t1", "tech", "T1 v2"), ("s2", "world", "S2 moved"),
                                      ("s3", "sport", "S3")])
            _ = try await h.service.deleteArticle(id: "w2")

            let next = try await Self.pullAll(client, token: alice, cursor: first.cursor, sections: both, limit: limit)
            #expect(next.articles.map(\.id) == ["t1", "s2"])
            #expect(next.articles.map(\.section) == ["tech", "world"])
            #expect(next.deletedArticleIds == ["w2"])
            #expect(next.expiredArticleIds == ["w1"])
            #expect(next.states.map(\.articleId) == ["s1"])

            let sport = try await Self.pullAll(client, token: alice, cursor: sportFirst.cursor, sections: ["sport"], limit: limit)
            #expect(sport.articles.map(\.id) == ["w1", "s3"])
            // Tombstones of every section: a device keeps bookmarked articles of others.
            #expect(sport.deletedArticleIds == ["w2"])
            #expect(sport.expiredArticleIds == ["s2"])

            // Followers of both sport and world get the move as the article only: no expiry to drop it again.
            let all3 = try await Self.pullAll(client, token: alice, cursor: first.cursor, sections: ["world", "sport", "tech"], limit: limit)
            #expect(all3.expiredArticleIds == [])
            #expect(Set(all3.articles.map(\.id)) == ["w1", "t1", "s2", "s3"])

            // Back where it was: the old followers get the article again, the move out is gone.
            try await Self.ingest(h, [("w1", "world", "W1 back")])
            let back = try await Self.pullAll(client, token: alice, cursor: first.cursor, sections: ["world"], limit: limit)
            #expect(back.articles.map(\.id) == ["s2", "w1"])
            #expect(back.expiredArticleIds == [])
            #expect(back.deletedArticleIds == ["w2"])

            // Without sections, nothing changed: every article change, no move-out.
            let everything = try await Self.pullAll(client, token: alice, cursor: first.cursor, sections: nil, limit: limit)
            #expect(everything.expiredArticleIds == [])
            #expect(Set(everything.articles.map(\.id)) == ["w1", "t1", "s2", "s3"])
        }
    }

    @Test("a first sync of some sections is theirs only, newest first, and hands over an exact cursor of the same sections",
          arguments: Backend.available)
    func firstSyncOfSections(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        let lines = (1...9).map { i in
            Harness.articleLine(id: "a\(i)", title: "A\(i)", publishedAt: "2026-11-2\(i)T09:00:00Z",
                                section: ["world", "sport", "tech"][i % 3])
        }
        _ = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        try await h.withClient { client in
            let uri = SyncRoute.pullNewestFirst(limit: 2, window: 3, since: nil, sections: ["world", "tech"])
            let response = try await call(client, .get, uri, token: alice)
            #expect(response.status == .ok, "\(response.text)")
            var page = try response.decode(PullResponse.self)
            var ids = page.articles.map(\.id)
            while page.hasMore {
                page = try await Self.pull(client, token: alice, cursor: page.cursor, sections: ["world", "tech"], limit: 2)
                ids += page.articles.map(\.id)
            }
            // world: a3, a6, a9; tech: a2, a5, a8: the newest three of both.
            #expect(ids == ["a9", "a8", "a6"])
            try await Self.ingest(h, [("a10", "tech", "A10"), ("a11", "sport", "A11")])
            let next = try await Self.pull(client, token: alice, cursor: page.cursor, sections: ["world", "tech"])
            #expect(next.articles.map(\.id) == ["a10"])
        }
    }

    @Test("a device of quiet sections is not left behind: its cursor passes the other sections' changes, so compaction removing one of them (an expired article) answers no 410",
          arguments: Backend.available)
    func quietSectionsPassTheHorizon(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        let old = Timestamp.format(Date(timeIntervalSince1970: 1_764_000_000 - 100 * 86_400))
        let lines = [Harness.articleLine(id: "t1", title: "T1", section: "tech"),
                     Harness.articleLine(id: "w1", title: "W1", publishedAt: old, updatedAt: old, section: "world")]
        _ = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        try await h.withClient { client in
            let first = try await Self.pull(client, token: alice, cursor: nil, sections: ["tech"])
            #expect(first.articles.map(\.id) == ["t1"])
            // w1 expires: a change in world, which the tech device neither gets nor needs.
            #expect(try await h.service.compact(RetentionPolicy(articleDays: 90)).expired == 1)
            let caughtUp = try await Self.pull(client, token: alice, cursor: first.cursor, sections: ["tech"])
            #expect(caughtUp.articles.isEmpty && caughtUp.expiredArticleIds.isEmpty)
            // Past the horizon, compaction removes the expired row.
            h.clock.advance(millis: 31 * 86_400_000)
            #expect(try await h.service.compact(RetentionPolicy(articleDays: 90)).removedExpired == 1)
            let after = try await call(client, .get, SyncRoute.pull(cursor: caughtUp.cursor, limit: 10, sections: ["tech"]), token: alice)
            #expect(after.status == .ok, "\(after.text)")
            // A cursor from before the expiry may have missed it: expired, as without sections.
            let stale = try await call(client, .get, SyncRoute.pull(cursor: first.cursor, limit: 10, sections: ["tech"]), token: alice)
            #expect(stale.status == .gone)
        }
    }

    @Test("each section is read through the (section, feed position) index, not by scanning the feed; a first sync of sections through (section, publication)")
    func usesTheSectionIndex() async throws {
        let h = try await Harness(backend: .sqlite)
        let (sql, arguments) = SQLiteSyncStore.articleChanges(after: 0, limit: 10, sections: ["sport", "world"])
        let plan = try await h.sqlite.dbPool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("USING INDEX article_on_section_seq (section=? AND seq>?)") }, "\(plan)")
        #expect(plan.contains { $0.contains("USING INDEX article_on_tombstone_seq (seq>?)") }, "\(plan)")
        #expect(plan.contains { $0.contains("USING COVERING INDEX sectionExit_on_section_seq (section=? AND seq>?)") }, "\(plan)")
        // Each name three times (its range, the exits' range, the exits' filter): far below SQLite's 32,766.
        #expect(sql.count(where: { $0 == "?" }) == 5 * 2 + 5)
        #expect(!plan.contains { $0.contains("SCAN article") }, "\(plan)")

        // A first sync of sections: each one a descending range in publication order, never a sort of the section.
        let key = PublicationKey(publishedAt: "2026-11-20T09:00:00Z", id: "a9")
        for after in [nil, key] {
            let (newest, newestArguments) = SQLiteSyncStore.newestArticles(through: 1000, after: after, publishedSince: nil,
                                                                           sections: ["sport", "world"], limit: 30)
            let newestPlan = try await h.sqlite.dbPool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + newest, arguments: newestArguments).map { $0["detail"] as String }
            }
            #expect(newestPlan.filter { $0.contains("USING INDEX article_on_section_published (section=?") }.count == 2, "\(newestPlan)")
            #expect(!newestPlan.contains { $0.contains("article_on_section_seq") }, "\(newestPlan)")
        }
    }

    @Test("on PostgreSQL, each section is read through article_on_section_feed", arguments: Backend.available.filter { $0 == .postgres })
    func usesTheSectionIndexOnPostgres(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await Self.ingest(h, (1...20).map { ("a\($0)", ["world", "sport", "tech", "culture"][$0 % 4], "A\($0)") })
        let store = try #require(h.postgres).store
        let query = store.sectionChanges(after: .start, limit: 10, sections: ["sport"])
        // On a few hundred rows a sequential scan is cheaper; with it priced out, the planner
        // shows which index the query's shape can use.
        let plan = try await store.transaction { connection in
            try await connection.query("SET LOCAL enable_seqscan = off", logger: store.logger)
            return try await connection.query(PostgresQuery(unsafeSQL: "EXPLAIN " + query.sql, binds: query.binds), logger: store.logger)
                .collect().map { try $0.decode(String.self) }.joined(separator: "\n")
        }
        #expect(plan.contains("Index Scan using article_on_section_feed"), "\(plan)")
        #expect(plan.contains("Index Scan using article_on_tombstone_feed"), "\(plan)")
        #expect(plan.contains("section_exit_on_section_feed"), "\(plan)")
    }

    @Test("bad input: more than 100 sections is refused with invalid_request", arguments: Backend.available)
    func tooManySections(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await h.withClient { client in
            let many = Set((0...100).map { "s\($0)" })
            // 101 names, also when they repeat one (the fuzzer's case: 101 empty `section=`).
            let repeated = "/v1/sync/pull?" + Array(repeating: "section=", count: 101).joined(separator: "&")
            for uri in [SyncRoute.pull(cursor: nil, limit: 10, sections: many),
                        SyncRoute.pullNewestFirst(limit: 10, window: nil, since: nil, sections: many), repeated] {
                let response = try await call(client, .get, uri, token: alice)
                #expect(response.status == .badRequest)
                #expect(response.text.contains("invalid_request") && response.text.contains("at most 100 sections"), "\(response.text)")
            }
        }
    }
}
