import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

@Suite("Ingest")
struct IngestTests {
    @Test("bad lines are reported with their line number and skipped; good lines are stored", arguments: Backend.available)
    func perLineErrors(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
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
        #expect(byLine[6] == #"publishedAt "last tuesday" is not a valid date-time: expected an RFC 3339 date-time such as 2026-11-27T08:15:00Z or 2026-11-27T10:15:00.250+02:00"#)
        #expect(byLine[7]?.hasPrefix(#"updatedAt "soon" is not a valid date-time"#) == true)
        #expect(byLine[9] == "expected a JSON object")
        #expect(byLine[10] == "missing publishedAt")
        #expect(try await h.store.articleExists(id: "g"))
    }

    @Test("an impossible date (2026-02-30, issue 10 item 4) is refused with its line number, not rolled over to March", arguments: Backend.available)
    func impossibleDate(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let lines = [
            #"{"id":"d-1","title":"Budget vote","publishedAt":"2026-02-30T08:15:00Z"}"#,
            #"{"id":"d-2","title":"Leap day","publishedAt":"2024-02-29T08:15:00Z","updatedAt":"2026-04-31T00:00:00Z"}"#,
            #"{"id":"d-3","title":"Late","publishedAt":"2026-11-20T24:00:00Z"}"#,
            #"{"id":"d-4","title":"Fine","publishedAt":"2024-02-29T08:15:00Z","updatedAt":"2026-11-20T10:00:00+01:00"}"#,
        ]
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.inserted == 1 && report.rejected == 3)
        #expect(report.errors.map(\.line) == [1, 2, 3])
        #expect(report.errors.first?.message == #"publishedAt "2026-02-30T08:15:00Z" is not a valid date-time: February 2026 has 28 days, not 30"#)
        #expect(report.errors.dropFirst().first?.message == #"updatedAt "2026-04-31T00:00:00Z" is not a valid date-time: April 2026 has 30 days, not 31"#)
        #expect(report.errors.last?.message == #"publishedAt "2026-11-20T24:00:00Z" is not a valid date-time: hour 24 is not 00–23"#)
        for id in ["d-1", "d-2", "d-3"] { #expect(try await h.store.articleExists(id: id) == false, "\(id) was stored") }
        let (user, _) = try await h.createUser("alice")
        let page = try await h.service.pull(user: user, cursor: nil, limit: 100)
        #expect(page.articles.map(\.id) == ["d-4"])
        #expect(page.articles.first?.publishedAt == "2024-02-29T08:15:00Z" && page.articles.first?.updatedAt == "2026-11-20T09:00:00Z")
    }

    @Test("POST /v1/admin/articles refuses 2026-02-30 with its line number and stores nothing for it", arguments: Backend.available)
    func impossibleDateOverHTTP(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let body = #"{"id":"d-1","title":"Budget vote","publishedAt":"2026-02-30T08:15:00Z"}"# + "\n"
            let response = try await call(client, .post, "/v1/admin/articles", token: Harness.adminToken, body: ByteBuffer(string: body))
            #expect(response.status == .ok)
            let report = try response.decode(IngestReport.self)
            #expect(report.inserted == 0 && report.rejected == 1)
            #expect(report.errors == [IngestReport.LineError(
                line: 1, message: #"publishedAt "2026-02-30T08:15:00Z" is not a valid date-time: February 2026 has 28 days, not 30"#)])
            let page = try await call(client, .get, "/v1/sync/pull", token: token).decode(PullResponse.self)
            #expect(page.articles.isEmpty)
        }
        #expect(try await h.store.articleExists(id: "d-1") == false)
    }

    @Test("ingesting the same articles again changes nothing and takes no sequence value", arguments: Backend.available)
    func identicalReingest(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
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

    @Test("an updated article comes again in its new version; a deleted one as a tombstone; a restored one as an article", arguments: Backend.available)
    func updateDeleteRestore(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
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

        // The tombstone keeps no content (each store's own row: no protocol method shows a tombstone's columns).
        #expect(try await h.rawTombstoneContent(id: "art-3") == "")

        let restored = try await h.service.ingest(jsonLines: Array(Harness.articleLine(id: "art-3", title: "Back").utf8))
        #expect(restored.inserted == 1)
        let again = try await h.service.pull(user: user, cursor: delta.cursor, limit: 1000)
        #expect(again.articles.map(\.id) == ["art-3"] && again.articles[0].version == 3)
        #expect(again.deletedArticleIds.isEmpty)

        // From the beginning: each article once, in its latest version, no tombstone for a restored id.
        let full = try await h.service.pull(user: user, cursor: nil, limit: 1000)
        #expect(full.articles.map(\.id) == ["art-1", "art-2", "art-3"])
    }

    @Test("deleting twice is counted once, and deleting an unknown id is unchanged", arguments: Backend.available)
    func deletes(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(1)
        let lines = [#"{"id":"art-1","deleted":true}"#, #"{"id":"art-1","deleted":true}"#, #"{"id":"zzz","deleted":true}"#]
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.deleted == 1 && report.unchanged == 2)
        #expect(try await h.service.deleteArticle(id: "art-1") == false)
        await #expect(throws: SyncError.self) { try await h.service.deleteArticle(id: "zzz") }
    }

    @Test("the generated benchmark corpus loads completely", .enabled(if: FileManager.default.fileExists(atPath: IngestTests.generator)),
          arguments: Backend.available)
    func benchCorpus(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
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
        let article = try PlainTextArticle.parse(text, fileName: fixture.path, date: Date(timeIntervalSince1970: 1_764_000_000.7), section: "travel")
        #expect(article.title == "Night Trains Return to the Carpathian Line After Three Years")
        #expect(article.id == "scraped-article.txt")
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

    @Test("re-ingesting the same text is a no-op", arguments: Backend.available)
    func idempotent(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let text = try String(contentsOf: fixture, encoding: .utf8)
        let date = Date(timeIntervalSince1970: 1_764_000_000)
        let first = try await h.service.ingest([.upsert(try PlainTextArticle.parse(text, fileName: "a.txt", date: date))])
        let second = try await h.service.ingest([.upsert(try PlainTextArticle.parse(text, fileName: "a.txt", date: date))])
        #expect(first.inserted == 1 && second.unchanged == 1)
    }

    @Test("text with no title or no paragraphs is refused with a reason")
    func refusesEmpty() {
        #expect(throws: SyncError.self) { try PlainTextArticle.parse("\n\nspot_img\n", fileName: "a.txt", date: Date()) }
        #expect(throws: SyncError.self) { try PlainTextArticle.parse("Only a title\n\nMore like this\nTeaser\n", fileName: "a.txt", date: Date()) }
    }

    @Test("the id is the file's name, exactly; a name that cannot be an id is refused")
    func ids() throws {
        #expect(try PlainTextArticle.id(fileName: "scraped/2026-11-03/Live election.txt") == "Live election.txt")
        #expect(try PlainTextArticle.id(fileName: "café.txt") == "café.txt")
        #expect(throws: SyncError.self) { try PlainTextArticle.id(fileName: String(repeating: "x", count: 197) + ".txt") }
        #expect(throws: SyncError.self) { try PlainTextArticle.id(fileName: "tab\there.txt") }
        #expect(throws: SyncError.self) { try PlainTextArticle.id(fileName: "/") }
    }

    static let monday = "Live: Election results\n\nPolls closed at 20:00; turnout was 61 percent.\n"
    static let tuesday = "Live: Election results\n\nThe coalition talks began this morning.\n"

    @Test("two files with the same headline are two stories (issue 10 item 6): reading Monday's does not mark Tuesday's read", arguments: Backend.available)
    func sameHeadlineTwoStories(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (user, _) = try await h.createUser("alice")
        let date = Date(timeIntervalSince1970: 1_764_000_000)
        let first = try await h.service.ingest([.upsert(try PlainTextArticle.parse(Self.monday, fileName: "scraped/election-monday.txt", date: date))])
        #expect(first.inserted == 1)
        _ = try await h.service.push(user: user, request: PushRequest(deviceId: "phone", mutations: [
            mutation(1, "election-monday.txt", .read, .bool(true)),
        ]))

        let second = try await h.service.ingest([.upsert(try PlainTextArticle.parse(Self.tuesday, fileName: "scraped/election-tuesday.txt", date: date + 86_400))])
        #expect(second.inserted == 1 && second.updated == 0)

        let page = try await h.service.pull(user: user, cursor: nil, limit: 100)
        #expect(page.articles.map(\.id).sorted() == ["election-monday.txt", "election-tuesday.txt"])
        let monday = try #require(page.articles.first { $0.id == "election-monday.txt" })
        #expect(monday.body == "Polls closed at 20:00; turnout was 61 percent." && monday.version == 1)
        #expect(page.states.map(\.articleId) == ["election-monday.txt"])
        #expect(page.states.first?.read == true)
    }

    @Test("re-ingesting a file is unchanged; a corrected file updates its own article and no other", arguments: Backend.available)
    func correction(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let date = Date(timeIntervalSince1970: 1_764_000_000)
        let tuesday = try PlainTextArticle.parse(Self.tuesday, fileName: "election-tuesday.txt", date: date)
        _ = try await h.service.ingest([.upsert(try PlainTextArticle.parse(Self.monday, fileName: "election-monday.txt", date: date)), .upsert(tuesday)])
        let again = try await h.service.ingest([.upsert(try PlainTextArticle.parse(Self.monday, fileName: "election-monday.txt", date: date))])
        #expect(again.unchanged == 1 && again.updated == 0 && again.inserted == 0)

        let corrected = Self.monday.replacingOccurrences(of: "61 percent", with: "64 percent")
        let fix = try await h.service.ingest([.upsert(try PlainTextArticle.parse(corrected, fileName: "election-monday.txt", date: date + 3600))])
        #expect(fix.updated == 1 && fix.inserted == 0)
        let (user, _) = try await h.createUser("alice")
        let page = try await h.service.pull(user: user, cursor: nil, limit: 100)
        #expect(page.articles.first { $0.id == "election-monday.txt" }?.body == "Polls closed at 20:00; turnout was 64 percent.")
        #expect(page.articles.first { $0.id == "election-tuesday.txt" }?.version == 1)
    }
}
