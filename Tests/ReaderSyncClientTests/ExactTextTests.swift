import Foundation
import GRDB
import ReaderSyncClient
import ReaderSyncCore
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// SQL is always bound, never interpolated, and text survives every hop byte for byte:
/// JSON Lines ingest → server store → pull through the router → client store → the app.
@Suite("Hostile strings round-trip exactly")
struct ExactTextTests {
    static let hostile: [String] = [
        "Robert'); DROP TABLE article;--",
        "\"double\" 'single' `back` \\ backslash ; semicolon -- comment /* block */",
        "NUL in the middle: a\u{0}b, and at the end\u{0}",
        "\u{0}",
        "emoji \u{1F4F0}\u{1F469}\u{200D}\u{1F4BB} flags \u{1F1EB}\u{1F1F7} combining e\u{301} RTL \u{5E9}\u{5DC}\u{5D5}\u{5DD}",
        "controls \u{7}\u{1B}[31m\t\r\n and U+FFFF \u{FFFF} U+2028 \u{2028}",
        "% _ LIKE wildcards ? ?1 :name @name $name",
        String(repeating: "1 MB of text, with a NUL at the end. ", count: 1 << 20 / 37) + "\u{0}",
    ]

    @Test("every article text field, on the server store and the client store, including NUL and 1 MB values")
    func articleText() async throws {
        let h = try await ClientHarness()
        var lines: [String] = []
        for (i, text) in Self.hostile.enumerated() {
            let object: [String: String] = [
                "id": "hostile-\(i)", "section": text, "title": "T " + text, "summary": text, "body": text,
                "author": text, "url": text, "publishedAt": "2026-11-20T09:00:\(String(format: "%02d", i))Z",
            ]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.inserted == Self.hostile.count && report.rejected == 0)
        // Ingesting the same lines again finds every article unchanged: stored text compares equal.
        let again = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(again.unchanged == Self.hostile.count)

        let token = try await h.createUser("reader")
        let device = try h.openDevice("phone", token: token)
        _ = try await device.engine.sync()
        for (i, text) in Self.hostile.enumerated() {
            let article = try #require(try device.store.article(id: "hostile-\(i)"))
            #expect(article.section == text && article.title == "T " + text && article.summary == text)
            #expect(article.body == text && article.author == text && article.url == text)
            #expect(article.body.utf8.count == text.utf8.count)
        }
        #expect(try device.store.articles(.section(Self.hostile[0])).map(\.id) == ["hostile-0"])

        // Nothing was interpreted as SQL: the tables are all there and hold what they should.
        let count = try await h.store.dbPool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM article") }
        #expect(count == Self.hostile.count)
    }

    @Test("article and device ids with quotes, semicolons and emoji round-trip through push, pull and the conflict log")
    func identifiers() async throws {
        let h = try await ClientHarness()
        let ids = ["x'); DROP TABLE userArticleState;--", "quote\"s and \\ back", "emoji \u{1F4F0} \u{5E9}\u{5DC}\u{5D5}\u{5DD}"]
        let lines = try ids.map { id in
            String(decoding: try JSONSerialization.data(withJSONObject: ["id": id, "title": id, "publishedAt": "2026-11-20T09:00:00Z"]), as: UTF8.self)
        }
        #expect(try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8)).inserted == ids.count)
        let token = try await h.createUser("reader")
        let devices = try ["phone'; --", "tablet \u{1F4F1}"].map { try h.openDevice($0, token: token) }
        for (n, device) in devices.enumerated() {
            for id in ids { try device.store.setBookmarked(id, n == 0) }
            _ = try await device.engine.sync()
        }
        _ = try await devices[0].engine.sync()
        let user = try #require(try await h.store.user(named: "reader"))
        let conflicts = try await h.store.conflicts(ConflictQuery(userId: user.id))
        #expect(Set(conflicts.map(\.articleId)) == Set(ids))
        #expect(Set(conflicts.flatMap { [$0.winner.deviceId, $0.loser?.deviceId ?? ""] }) == ["phone'; --", "tablet \u{1F4F1}"])
        for device in devices {
            #expect(Set(try device.store.allStates().map(\.articleId)) == Set(ids))
        }
    }

    @Test("a JSON Lines line that is not UTF-8 is refused with its line number; the other lines are stored")
    func invalidUTF8() async throws {
        let h = try await ClientHarness()
        var bytes = Array(#"{"id":"good-1","title":"Fine","publishedAt":"2026-11-20T09:00:00Z"}"#.utf8) + [0x0A]
        bytes += Array(#"{"id":"bad","title":"caf"#.utf8) + [0xC3, 0x28, 0xFF] + Array(#"","publishedAt":"2026-11-20T09:00:00Z"}"#.utf8) + [0x0A]
        bytes += Array(#"{"id":"good-2","title":"Fine too","publishedAt":"2026-11-20T09:00:00Z"}"#.utf8)
        let report = try await h.service.ingest(jsonLines: bytes)
        #expect(report.inserted == 2 && report.rejected == 1)
        #expect(report.errors.first?.line == 2)
        #expect(try await !h.store.articleExists(id: "bad"))
    }
}
