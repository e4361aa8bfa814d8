import Foundation
import GRDB
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncSchema
import ReaderSyncSQLite
import ReaderSyncTestSupport
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// Offline full-text search on the device (``ReaderStore/search(_:limit:offset:)``).
@Suite("Client SDK: offline search")
struct SearchTests {
    static func ingest(_ h: ClientHarness, _ articles: [(id: String, title: String, summary: String, body: String)]) async throws {
        let lines = articles.map { a in
            let object = ["id": a.id, "section": "world", "title": a.title, "summary": a.summary, "body": a.body,
                          "publishedAt": "2026-11-20T09:00:00Z"]
            return String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.rejected == 0)
    }

    static func ids(_ hits: [SearchHit]) -> [String] { hits.map(\.article.id) }

    @Test("search finds the reader's words in title, summary and body, case and diacritics folded, as prefixes, every word required, the title's matches first, with the matched words marked")
    func findsAndRanks() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [
            ("a1", "Café prices rise in the capital", "Coffee costs more.", "Owners blame the harvest."),
            ("a2", "Markets close higher", "A calm day.", "Traders met at the cafe on the corner before the bell."),
            ("a3", "Économie : la croissance revient", "The economy grows again.", "Economists are cautious."),
            ("a4", "Weather", "Rain.", "Nothing about coffee houses."),
        ])
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()

        let cafe = try store.search("cafe")
        #expect(Self.ids(cafe) == ["a1", "a2"])
        let first = try #require(cafe.first)
        #expect(first.matches.map { String(first.snippet[$0]) } == ["Café"])
        #expect(first.snippet.contains("Café prices rise"))
        let second = cafe[1]
        #expect(second.matches.map { String(second.snippet[$0]) } == ["cafe"])

        #expect(Self.ids(try store.search("ECO")) == ["a3"])          // Économie, economy, Economists
        #expect(Self.ids(try store.search("CAFÉ prices")) == ["a1"])  // every word
        #expect(Self.ids(try store.search("coffee")) == ["a1", "a4"]) // summary before body
        #expect(try store.search("nothing-here-zzz").isEmpty)
        #expect(try store.search("   ").isEmpty)
        #expect(try store.search("cafe", limit: 1, offset: 1).map(\.article.id) == ["a2"])
        // The hit carries the reader's state.
        try store.markRead("a2")
        #expect(try store.search("corner").first?.article.isRead == true)
    }

    @Test("words with punctuation inside match their parts side by side; a match before a combining mark or a keycap is marked on whole characters")
    func punctuationAndMarks() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [("a1", "Don't stop the press", "S", "B"), ("a2", "Stop donating", "S", "to the trees"),
                                  ("a3", "आज की हिन्दी खबर", "S", "B"), ("a4", "Score 1️⃣ today", "S", "B")])
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()
        #expect(Self.ids(try store.search("don't stop")) == ["a1"])
        let hindi = try #require(try store.search("हिन्दी").first)
        #expect(hindi.article.id == "a3")
        #expect(hindi.matches.map { String(hindi.snippet[$0]) } == ["हिन्दी"])
        #expect(!hindi.snippet.unicodeScalars.contains { $0.value == 0xE000 || $0.value == 0xE001 })
        let keycap = try #require(try store.search("1").first { $0.article.id == "a4" })
        #expect(keycap.matches.map { String(keycap.snippet[$0]) } == ["1️⃣"])
        #expect(!keycap.snippet.unicodeScalars.contains { $0.value == 0xE000 || $0.value == 0xE001 })
    }

    @Test("a search ranks only the most recently stored matches (searchRankingLimit), best first among them")
    func rankingLimit() async throws {
        let h = try await ClientHarness()
        // a1 matches best (its title) but arrives first; a2…a4 match in their bodies.
        try await Self.ingest(h, [("a1", "Harbour news", "S", "B")])
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token, options: .init(searchRankingLimit: 3))
        try await engine.sync()
        try await Self.ingest(h, (2...4).map { ("a\($0)", "Story \($0)", "S", "Ships at the harbour, \($0) of them.") })
        try await engine.sync()
        #expect(Set(Self.ids(try store.search("harbour"))) == ["a2", "a3", "a4"])
        let (all, allEngine) = try h.openDevice("tablet", token: token)
        try await allEngine.sync()
        #expect(Self.ids(try all.search("harbour")).first == "a1")
        #expect(throws: ReaderSyncError.self) {
            _ = try ReaderStore(path: h.directory.appendingPathComponent("bad.sqlite").path, options: .init(searchRankingLimit: 0))
        }
    }

    @Test("the index follows the articles: a correction replaces the old words, a deletion and a start over drop them, a pull brings them back")
    func followsTheArticles() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [("a1", "Old headline", "S", "B"), ("a2", "Another story", "S", "Budget vote")])
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()
        #expect(Self.ids(try store.search("headline")) == ["a1"])

        try await Self.ingest(h, [("a1", "Corrected title", "S", "B")])
        try await engine.sync()
        #expect(try store.search("headline").isEmpty)
        #expect(Self.ids(try store.search("corrected")) == ["a1"])

        _ = try await h.service.deleteArticle(id: "a1")
        try await engine.sync()
        #expect(try store.search("corrected").isEmpty)

        try store.startOverAfterCursorExpired()
        #expect(try store.search("budget").isEmpty)
        try await engine.sync()
        #expect(Self.ids(try store.search("budget")) == ["a2"])
    }

    @Test("bad input: a malformed FTS5 expression is invalid_argument, never SQL; the reader's words are never an error; a page out of range is refused")
    func badInput() async throws {
        let h = try await ClientHarness()
        try await Self.ingest(h, [("a1", "Café prices", "S", "Body"), ("a2", "Other \"quoted\" OR news", "S", "1 = 1")])
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()

        for malformed in ["AND OR (", "\"unterminated", "title: ", "NEAR(", "nosuchcolumn: cafe", "*", "*reads cafe", ""] {
            #expect {
                try store.search(.expression(malformed))
            } throws: { error in
                (error as? ReaderSyncError)?.code == .invalidArgument
            }
        }
        #expect(Self.ids(try store.search(.expression("title: cafe"))) == ["a1"])
        #expect(Self.ids(try store.search(.expression("cafe OR other"))).sorted() == ["a1", "a2"])
        // What looks like syntax or SQL in the reader's words is just words.
        #expect(Self.ids(try store.search("\") OR 1=1 --")) == ["a2"])  // the words "OR", "1 1"
        #expect(try store.search("'; DROP TABLE article; --").isEmpty)
        #expect(try store.articleCount() == 2)
        for (limit, offset) in [(0, 0), (1001, 0), (10, -1)] {
            #expect(throws: ReaderSyncError.self) { try store.search("cafe", limit: limit, offset: offset) }
        }
    }

    @Test("a store written before search (migration 3) keeps its articles and finds them after the upgrade")
    func upgradesAnOlderStore() async throws {
        let directory = try TestDirectory.make("search-upgrade")
        let path = directory.appendingPathComponent("old.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try ReaderSyncSchema.clientMigrations.migrator.migrate(queue, upTo: "m0003_client_sections")
        try await queue.write { db in
            try db.execute(sql: "INSERT INTO syncMeta (id, deviceId) VALUES (1, 'old-device')")
            try db.execute(sql: """
                INSERT INTO article (id, section, title, summary, body, author, url, publishedAt, updatedAt, version, arrival)
                VALUES ('kept', 'world', 'Harbour reopens', 'Ships return.', 'The harbour reopened today.', 'A', 'u',
                        '2026-11-20T09:00:00Z', '2026-11-20T09:00:00Z', 3, 1)
                """)
        }
        try queue.close()
        let store = try ReaderStore(path: path)
        #expect(store.deviceId == "old-device")
        #expect(try store.article(id: "kept")?.version == 3)
        #expect(Self.ids(try store.search("harb")) == ["kept"])
    }
}
