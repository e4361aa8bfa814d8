import Foundation
import GRDB
import ReaderSyncCore
import Testing
@testable import ReaderSyncServer

@Suite("Ingest")
struct IngestTests {
    @Test("bad lines are reported with their line number and skipped; good lines are stored")
    func perLineErrors() async throws {
        let h = try await Harness()
        let lines = [
            Harness.articleLine(id: "a", title: "A"),                                           // 1 ok
            "{not json",                                                                         // 2
            #"{"title":"No id","publishedAt":"2026-11-20T09:00:00Z"}"#,                          // 3
            #"{"id":"b","publishedAt":"2026-11-20T09:00:00Z"}"#,                                 // 4 missing title
            #"{"id":"c","title":5,"publishedAt":"2026-11-20T09:00:00Z"}"#,                       // 5 wrong type
            #"{"id":"d","title":"D","publishedAt":"last tuesday"}"#,                            // 6 bad date
            #"{"id":"e","title":"E","publishedAt":"2026-11-20T09:00:00Z","updatedAt":"soon"}"#, // 7 bad date
            "",                                                                                  // 8 blank
            #"["an","array"]"#,                                                                  // 9
            #"{"id":"f","title":"F"}"#,                                                          // 10 missing date
            Harness.articleLine(id: "g", title: "G"),                                           // 11 ok
            #"{"id":"a","deleted":true}"#,                                                      // 12 delete a
        ]
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\r\n").utf8))
        #expect(report.inserted == 2 && report.deleted == 1 && report.rejected == 9)
        let byLine = Dictionary(uniqueKeysWithValues: report.errors.map { ($0.line, $0.message) })
        #expect(byLine.keys.sorted() == [2, 3, 4, 5, 6, 7, 8, 9, 10])
        #expect(byLine[2] == "not valid JSON")
        #expect(byLine[3] == "missing id")
        #expect(byLine[4] == "missing title")
        #expect(byLine[5] == "title: expected a string")
        #expect(byLine[6]?.hasPrefix("publishedAt is not an ISO-8601 date-time") == true)
        #expect(byLine[7]?.hasPrefix("updatedAt is not") == true)
        #expect(byLine[9] == "expected a JSON object")
        #expect(byLine[10] == "missing publishedAt")
        #expect(try await h.store.articleExists(id: "g"))
    }

    @Test("ingesting the same articles again changes nothing and takes no sequence value")
    func identicalReingest() async throws {
        let h = try await Harness()
        let (user, _) = try await h.createUser("alice")
        let lines = Array((1...50).map { Harness.articleLine(id: "art-\($0)", title: "T\($0)") }.joined(separator: "\n").utf8)
        let first = try await h.service.ingest(jsonLines: lines)
        #expect(first.inserted == 50)
        let cursor = try await h.service.pull(user: user, cursor: nil, limit: 1000).cursor
        let second = try await h.service.ingest(jsonLines: lines)
        #expect(second.unchanged == 50 && second.inserted == 0 && second.updated == 0)
        let after = try await h.service.pull(user: user, cursor: cursor, limit: 1000)
        #expect(after.articles.isEmpty && after.deletedArticleIds.isEmpty)
        #expect(after.cursor == cursor)
    }

    @Test("an updated article comes again in its new version; a deleted one as a tombstone; a restored one as an article")
    func updateDeleteRestore() async throws {
        let h = try await Harness()
        let (user, _) = try await h.createUser("alice")
        try await h.seedArticles(3)
        let start = try await h.service.pull(user: user, cursor: nil, limit: 1000).cursor

        _ = try await h.service.ingest(jsonLines: Array(Harness.articleLine(id: "art-2", title: "Corrected", updatedAt: "2026-11-21T10:00:00Z").utf8))
        _ = try await h.service.ingest(jsonLines: Array(#"{"id":"art-3","deleted":true}"#.utf8))
        let delta = try await h.service.pull(user: user, cursor: start, limit: 1000)
        #expect(delta.articles.map(\.id) == ["art-2"])
        #expect(delta.articles.first?.title == "Corrected" && delta.articles.first?.version == 2)
        #expect(delta.articles.first?.updatedAt == "2026-11-21T10:00:00Z")
        #expect(delta.deletedArticleIds == ["art-3"])

        // The tombstone keeps no content.
        let purged = try await h.store.dbPool.read { db in
            try String.fetchOne(db, sql: "SELECT coalesce(title, '') || coalesce(body, '') FROM article WHERE id = 'art-3'")
        }
        #expect(purged == "")

        let restored = try await h.service.ingest(jsonLines: Array(Harness.articleLine(id: "art-3", title: "Back").utf8))
        #expect(restored.inserted == 1)
        let again = try await h.service.pull(user: user, cursor: delta.cursor, limit: 1000)
        #expect(again.articles.map(\.id) == ["art-3"] && again.articles[0].version == 3)
        #expect(again.deletedArticleIds.isEmpty)

        // From the beginning: each article once, in its latest version, no tombstone for a restored id.
        let full = try await h.service.pull(user: user, cursor: nil, limit: 1000)
        #expect(full.articles.map(\.id) == ["art-1", "art-2", "art-3"])
    }

    @Test("deleting twice is counted once, and deleting an unknown id is unchanged")
    func deletes() async throws {
        let h = try await Harness()
        try await h.seedArticles(1)
        let lines = [#"{"id":"art-1","deleted":true}"#, #"{"id":"art-1","deleted":true}"#, #"{"id":"zzz","deleted":true}"#]
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.deleted == 1 && report.unchanged == 2)
        #expect(try await h.service.deleteArticle(id: "art-1") == false)
        await #expect(throws: SyncError.self) { try await h.service.deleteArticle(id: "zzz") }
    }

    @Test("the generated benchmark corpus loads completely", .enabled(if: FileManager.default.fileExists(atPath: IngestTests.generator)))
    func benchCorpus() async throws {
        let h = try await Harness()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.generator, "--count", "300", "--seed", "7"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
        let report = try await h.service.ingest(jsonLines: data)
        #expect(report.inserted == 300 && report.rejected == 0)
    }

    static let generator = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared/bench/gen_articles.py").standardized.path
}

@Suite("Plain-text articles")
struct PlainTextArticleTests {
    let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/scraped-article.txt")

    @Test("the title, the paragraphs, and none of the site's boilerplate")
    func parsesFixture() throws {
        let text = try String(contentsOf: fixture, encoding: .utf8)
        let article = try PlainTextArticle.parse(text, date: Date(timeIntervalSince1970: 1_764_000_000.7), section: "travel")
        #expect(article.title == "Night Trains Return to the Carpathian Line After Three Years")
        #expect(article.id == "night-trains-return-to-the-carpathian-line-after-three-years")
        #expect(article.section == "travel")
        let paragraphs = article.body.components(separatedBy: "\n\n")
        #expect(paragraphs.count == 3)
        #expect(paragraphs[0].hasPrefix("The first overnight train") && paragraphs[0].hasSuffix("until the doors closed."))
        #expect(paragraphs[2] == "Passengers who booked early paid half the usual fare, according to the operator.")
        for junk in ["spot_img", "popular", "Share this post", "HERE", "More like this", "Bakery", "Museum", "..."] {
            #expect(!article.body.contains(junk), "body still contains \(junk)")
        }
        #expect(article.summary == paragraphs[0])
        #expect(article.publishedAt == "2025-11-24T16:00:00Z")
    }

    @Test("re-ingesting the same text is a no-op")
    func idempotent() async throws {
        let h = try await Harness()
        let text = try String(contentsOf: fixture, encoding: .utf8)
        let date = Date(timeIntervalSince1970: 1_764_000_000)
        let first = try await h.service.ingest([.upsert(try PlainTextArticle.parse(text, date: date))])
        let second = try await h.service.ingest([.upsert(try PlainTextArticle.parse(text, date: date))])
        #expect(first.inserted == 1 && second.unchanged == 1)
    }

    @Test("text with no title or no paragraphs is refused with a reason")
    func refusesEmpty() {
        #expect(throws: SyncError.self) { try PlainTextArticle.parse("\n\nspot_img\n", date: Date()) }
        #expect(throws: SyncError.self) { try PlainTextArticle.parse("Only a title\n\nMore like this\nTeaser\n", date: Date()) }
    }

    @Test("slugs are lowercase words joined by dashes")
    func slugs() {
        #expect(PlainTextArticle.slug("Kyiv's Bridges: 3 Rebuilt!") == "kyiv-s-bridges-3-rebuilt")
        #expect(PlainTextArticle.slug("  --  ") == "")
    }
}
