import Foundation
import GRDB
import ReaderSyncCore
@testable import ReaderSyncSQLiteStore
import ReaderSyncSchema
@testable import ReaderSyncServer
@testable import ReaderSyncService
import ReaderSyncTestSupport
import Testing

@Suite("Server store on a real SQLite file")
struct StoreTests {
    @Test("migrating an empty database gives the expected schema, and every Schema/ migration is registered")
    func schema() async throws {
        let h = try await Harness()
        let tables = try await h.sqlite.dbPool.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%' ORDER BY name")
        }
        #expect(tables == ["appPassword", "article", "changeSequence", "compactionCheckpoint", "conflict", "device", "meta", "section", "sectionExit", "stateHistory", "user", "userArticleState"])
        let applied = try await h.sqlite.dbPool.read { db in try SQLiteSyncStore.migrator.appliedIdentifiers(db) }
        let schemaDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Schema").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: schemaDirectory.path)
            .filter { $0.hasSuffix(".sql") && $0.contains("_server_") }.map { String($0.dropLast(4)) }
        #expect(Set(files) == Set(ReaderSyncSchema.serverMigrations.map(\.name)))
        #expect(applied == Set(files))
        let (journal, foreignKeys) = try await h.sqlite.dbPool.read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Bool.fetchOne(db, sql: "PRAGMA foreign_keys"))
        }
        #expect(journal == "wal" && foreignKeys == true)
    }

    @Test("reopening keeps the epoch and data; a new epoch changes it", arguments: Backend.available)
    func reopen(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(2)
        let before = try await h.store.identity()
        // A second store on the same SQLite file or PostgreSQL database, migrating it again.
        try await h.withReopenedStore { reopened in
            #expect(try await reopened.identity() == before)
            #expect(try await reopened.articleExists(id: "art-2"))
            try await reopened.startNewEpoch()
            #expect(try await reopened.identity().epoch != before.epoch)
        }
    }

    @Test("a pull is an index range scan over the change sequence, for articles and for the user's states")
    func pullUsesIndexes() async throws {
        let h = try await Harness()
        let details = try await h.sqlite.dbPool.read { db in
            try [
                "SELECT id FROM article WHERE seq > 5 ORDER BY seq LIMIT 10",
                "SELECT \(SQLiteSyncStore.stateColumns) FROM userArticleState WHERE userId = 1 AND seq > 5 ORDER BY seq LIMIT 10",
            ].map { sql in try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { $0["detail"] as String }.joined(separator: "; ") }
        }
        #expect(details[0].contains("SEARCH article USING INDEX article_on_seq (seq>?)"), "\(details[0])")
        #expect(details[1].contains("SEARCH userArticleState USING INDEX userArticleState_on_user_seq (userId=? AND seq>?)"), "\(details[1])")
        #expect(!details.joined().contains("TEMP B-TREE"))
    }

    @Test("the conflict log filtered by rule, for one user or everyone, is an index range scan newest first")
    func conflictRuleFilterUsesIndexes() async throws {
        let h = try await Harness()
        let details = try await h.sqlite.dbPool.read { db in
            try [
                "SELECT id FROM conflict WHERE userId = 1 AND rule IN ('clock_skew') ORDER BY id DESC LIMIT 10",
                "SELECT id FROM conflict WHERE rule IN ('clock_skew') ORDER BY id DESC LIMIT 10",
            ].map { sql in try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql).map { $0["detail"] as String }.joined(separator: "; ") }
        }
        #expect(details[0].contains("USING COVERING INDEX conflict_on_user_rule (userId=? AND rule=?)"), "\(details[0])")
        #expect(details[1].contains("USING COVERING INDEX conflict_on_rule (rule=?)"), "\(details[1])")
        #expect(!details.joined().contains("TEMP B-TREE"))
    }

    @Test("pages come in sequence order, each article at most once, with only the caller's states, until hasMore is false", arguments: Backend.available)
    func paging(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let ids = try await h.seedArticles(25)
        let (alice, _) = try await h.createUser("alice")
        let (bob, _) = try await h.createUser("bob")
        // Interleave state changes and article changes.
        for (i, id) in ids.enumerated() where i % 3 == 0 {
            _ = try await h.service.push(user: alice, request: PushRequest(deviceId: "a-phone", mutations: [mutation(Int64(i + 1), id, .read, .bool(true))]))
            _ = try await h.service.push(user: bob, request: PushRequest(deviceId: "b-phone", mutations: [mutation(Int64(i + 1), id, .bookmarked, .bool(true))]))
            _ = try await h.service.ingest(jsonLines: Array(Harness.articleLine(id: id, title: "Updated \(i)").utf8))
        }
        var cursor: String?
        var seenArticles: [String] = []
        var seenStates: [StateDTO] = []
        var pages = 0
        repeat {
            let page = try await h.service.pull(user: alice, cursor: cursor, limit: 7)
            #expect(page.articles.count + page.states.count + page.deletedArticleIds.count <= 7)
            #expect(Set(page.articles.map(\.id)).count == page.articles.count)
            seenArticles += page.articles.map(\.id)
            seenStates += page.states
            cursor = page.cursor
            pages += 1
            if !page.hasMore { break }
        } while pages < 100
        #expect(Set(seenArticles) == Set(ids))
        #expect(seenArticles.count == ids.count, "an article came twice across pages although it changed only before the pull")
        #expect(seenStates.count == 9 && seenStates.allSatisfy { $0.read && !$0.bookmarked })
        #expect(pages == 5)

        // The raw page is in ascending sequence order.
        let raw = try await h.store.changes(userId: alice.id, after: .start, limit: 1000)
        #expect(raw.changes.map(\.position) == raw.changes.map(\.position).sorted())
    }

    @Test("push effects, conflict entries and the device's last mutation id are written in one transaction", arguments: Backend.available)
    func pushIsAtomic(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let (alice, _) = try await h.createUser("alice")
        // A plan that throws after reading: nothing may be written, not even the device binding.
        await #expect(throws: SyncError.self) {
            _ = try await h.store.push(userId: alice.id, deviceId: "phone", articleIds: ["art-1"], now: "2026-11-28T00:00:00Z") { _ in
                throw SyncError(.internalError, "boom")
            }
        }
        // Read back through the store: the device is unbound and unknown, and the article has no state.
        #expect(try await h.store.users(UserQuery()).map(\.devices) == [0])
        let untouched = try await Self.pushContext(h, userId: alice.id, deviceId: "phone", articleIds: ["art-1"])
        #expect(untouched.deviceOwner == nil && untouched.lastMutationId == 0 && untouched.states.isEmpty)

        _ = try await h.service.push(user: alice, request: PushRequest(deviceId: "phone", mutations: [mutation(4, "art-1", .read, .bool(true))]))
        let written = try await Self.pushContext(h, userId: alice.id, deviceId: "phone", articleIds: ["art-1"])
        #expect(written.deviceOwner == alice.id && written.lastMutationId == 4)
        #expect(written.states[ExactText("art-1")]?.isRead == true)
        #expect(try await h.store.users(UserQuery()).map(\.devices) == [1])
    }

    /// What a push of `deviceId` would be planned on, read by a push whose plan throws (so it writes nothing).
    static func pushContext(_ h: Harness, userId: Int64, deviceId: String, articleIds: Set<ExactText>) async throws -> PushContext {
        struct Seen: Error { var context: PushContext }
        do {
            _ = try await h.store.push(userId: userId, deviceId: deviceId, articleIds: articleIds, now: "2026-11-28T00:00:00Z") { context in
                throw Seen(context: context)
            }
        } catch let seen as Seen {
            return seen.context
        }
        Issue.record("the plan was never asked for")
        throw CancellationError()
    }

    @Test("text is stored as TEXT, as BLOB only when it holds a NUL, and comes back exactly either way", arguments: Backend.available)
    func hostileStrings(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let nasty = "Robert'); DROP TABLE article;-- \u{1F4F0} \"quoted\" \\ back \u{7}"
        let lines = try [["id": "x'; --", "title": nasty, "body": nasty], ["id": "n", "title": "a\u{0}b", "body": "\u{0}"]].map { fields in
            var object = fields
            object["publishedAt"] = "2026-11-20T09:00:00Z"
            return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.inserted == 2)
        if backend == .sqlite {
            // How SQLite stores it (PostgreSQL's article text is always bytea).
            let types = try await h.sqlite.dbPool.read { db in
                try Row.fetchAll(db, sql: "SELECT id, typeof(title), typeof(body) FROM article ORDER BY id")
                    .map { "\($0[0] as String):\($0[1] as String),\($0[2] as String)" }
            }
            #expect(types == ["n:blob,blob", "x'; --:text,text"])
        }
        let (user, _) = try await h.createUser("eve")
        let page = try await h.service.pull(user: user, cursor: nil, limit: 10)
        #expect(page.articles.map(\.id) == ["x'; --", "n"])
        #expect(page.articles.map(\.title) == [nasty, "a\u{0}b"] && page.articles.map(\.body) == [nasty, "\u{0}"])
    }

    @Test("durability is a setting: WAL with synchronous NORMAL by default, FULL with .full, on writer and reader connections")
    func durability() async throws {
        let directory = try TestDirectory.make("durability")
        for (durability, expected) in [(SQLiteSyncStore.Durability.normal, 1), (.full, 2)] {
            let store = try SQLiteSyncStore(path: directory.appendingPathComponent("\(durability).sqlite").path, durability: durability)
            let written = try await store.dbPool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
            let read = try await store.dbPool.read { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
            let journal = try await store.dbPool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(written == expected && read == expected, "\(durability): writer \(String(describing: written)), reader \(String(describing: read))")
            #expect(journal == "wal")
        }
    }
}
