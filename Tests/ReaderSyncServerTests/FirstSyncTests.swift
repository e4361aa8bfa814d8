import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// Newest-first first sync (`GET /v1/sync/pull?order=newest`, docs/PROTOCOL.md "First sync")
/// through the real router, on both stores.
@Suite("First sync, newest first")
struct FirstSyncTests {
    /// `art-1` … `art-<count>`, `art-n` published n hours after 2025-11-01 (the last is the newest).
    static func ingest(_ h: Harness, _ range: ClosedRange<Int>, title: String = "Title") async throws {
        let lines = range.map { n in
            let published = Timestamp.format(Date(timeIntervalSince1970: 1_761_955_200 + Double(n) * 3600))
            return Harness.articleLine(id: "art-\(n)", title: "\(title) \(n)", publishedAt: published, updatedAt: published)
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.rejected == 0)
    }

    @Test("pages come newest first within the window, then the user's states, then an ordinary cursor from where it began: an update, a deletion, a new article and a state made meanwhile each arrive once, after",
          arguments: Backend.available)
    func exactHandOver(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, 1...25)
        try await h.withClient { client in
            let wall = h.clock.nowMillis
            let pushed = try await RetentionTests.push(client, token: alice, device: "phone", [
                mutation(1, "art-25", .read, .bool(true), wall: wall),
                mutation(2, "art-3", .bookmarked, .bool(true), wall: wall),
            ])
            #expect(pushed.results.map(\.outcome) == [.applied, .applied])

            let first = try await call(client, .get, SyncRoute.pullNewestFirst(limit: 4, window: 10, since: nil), token: alice)
            #expect(first.status == .ok, "\(first.text)")
            var pages = [try first.decode(PullResponse.self)]
            #expect(pages[0].articles.map(\.id) == ["art-25", "art-24", "art-23", "art-22"])
            #expect(pages[0].hasMore)
            pages.append(try await RetentionTests.pull(client, token: alice, cursor: pages[0].cursor, limit: 4))
            #expect(pages[1].articles.map(\.id) == ["art-21", "art-20", "art-19", "art-18"])

            // Meanwhile: art-24 (sent) is corrected, art-17 (not sent yet) deleted, art-26 published,
            // and another device reads art-20.
            try await Self.ingest(h, 24...24, title: "Corrected")
            #expect(try await h.service.deleteArticle(id: "art-17"))
            try await Self.ingest(h, 26...26)
            _ = try await RetentionTests.push(client, token: alice, device: "laptop", [mutation(1, "art-20", .read, .bool(true), wall: wall + 1)])

            let last = pages.removeLast()
            pages += try await RetentionTests.pages(from: last, client, token: alice, limit: 4)
            let articles = pages.flatMap(\.articles)
            // The window's ten: newest first, art-17 (deleted meanwhile) skipped, so art-15 comes in.
            #expect(articles.prefix(10).map(\.id) == ["art-25", "art-24", "art-23", "art-22", "art-21", "art-20", "art-19", "art-18", "art-16", "art-15"])
            // Then the pull from where the first sync began: the correction, the deletion, the new
            // article and the state, each once; nothing older than the window.
            #expect(articles.dropFirst(10).map(\.id).sorted() == ["art-24", "art-26"])
            #expect(articles.filter { $0.id == "art-24" }.map(\.title) == ["Title 24", "Corrected 24"])
            #expect(pages.flatMap(\.deletedArticleIds) == ["art-17"])
            let states = pages.flatMap(\.states)
            // The snapshot's states (both, art-3's too though it is outside the window), then art-20's.
            #expect(states.map(\.articleId) == ["art-25", "art-3", "art-20"])
            #expect(!pages.last!.hasMore)
        }
    }

    @Test("since keeps only articles published at or after it; no window sends every live article; an empty database hands over at once",
          arguments: Backend.available)
    func sinceAndUnbounded(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        try await h.withClient { client in
            let empty = try await call(client, .get, SyncRoute.pullNewestFirst(limit: 10, window: nil, since: nil), token: alice)
            let emptyPage = try empty.decode(PullResponse.self)
            #expect(emptyPage.articles.isEmpty && emptyPage.hasMore)
            #expect(try await RetentionTests.pull(client, token: alice, cursor: emptyPage.cursor).isCaughtUp)

            try await Self.ingest(h, 1...6)
            // art-4 is published at 2025-11-01T04:00Z: since then, art-4 … art-6.
            let since = Date(timeIntervalSince1970: 1_761_955_200 + 4 * 3600)
            let recent = try await call(client, .get, SyncRoute.pullNewestFirst(limit: 10, window: nil, since: since), token: alice)
            #expect(try recent.decode(PullResponse.self).articles.map(\.id) == ["art-6", "art-5", "art-4"])
            let all = try await call(client, .get, SyncRoute.pullNewestFirst(limit: 100, window: nil, since: nil), token: alice)
            #expect(try all.decode(PullResponse.self).articles.map(\.id) == (1...6).reversed().map { "art-\($0)" })
        }
    }

    @Test("a first sync on a compacted database whose horizon is past the user's own feed (another user's removed states) hands over a cursor the next pull serves",
          arguments: Backend.available)
    func afterCompaction(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, alice) = try await h.createUser("alice")
        let (_, bob) = try await h.createUser("bob")
        try await Self.ingest(h, 1...3)
        try await h.withClient { client in
            #expect(try await h.service.deleteArticle(id: "art-2"))
            // Bob's state of the deleted article is the newest change: alice's feed ends before it.
            _ = try await RetentionTests.push(client, token: bob, device: "bob-phone", [mutation(1, "art-2", .read, .bool(true))])
            _ = try await h.service.compact(RetentionPolicy())
            h.clock.advance(millis: 31 * RetentionTests.day)
            #expect(try await h.service.compact(RetentionPolicy()).removedTombstones == 1)
            let first = try await call(client, .get, SyncRoute.pullNewestFirst(limit: 10, window: 5, since: nil), token: alice)
                .decode(PullResponse.self)
            let pages = try await RetentionTests.pages(from: first, client, token: alice, limit: 10)
            #expect(pages.flatMap(\.articles).map(\.id) == ["art-3", "art-1"])
            #expect(try await RetentionTests.pull(client, token: alice, cursor: pages.last!.cursor).isCaughtUp)
        }
    }

    @Test("bad input: another order, order=newest with a cursor or a wait, a window out of range, a since that is no date, a window without order, a forged first-sync cursor")
    func badInput() async throws {
        let h = try await Harness()
        let (_, alice) = try await h.createUser("alice")
        try await Self.ingest(h, 1...3)
        try await h.withClient { client in
            let page = try await call(client, .get, SyncRoute.pullNewestFirst(limit: 1, window: 2, since: nil), token: alice).decode(PullResponse.self)
            // The payload changed, the signature kept: the signature no longer matches.
            let forged = (page.cursor.hasPrefix("M") ? "N" : "M") + page.cursor.dropFirst()
            let cases: [(String, String)] = [
                ("/v1/sync/pull?order=oldest", "invalid_request"),
                ("/v1/sync/pull?order=newest&cursor=\(page.cursor)", "invalid_request"),
                ("/v1/sync/pull?order=newest&wait=5", "invalid_request"),
                ("/v1/sync/pull?order=newest&window=0", "invalid_request"),
                ("/v1/sync/pull?order=newest&window=1000001", "invalid_request"),
                ("/v1/sync/pull?order=newest&since=yesterday", "invalid_request"),
                ("/v1/sync/pull?window=10", "invalid_request"),
                ("/v1/sync/pull?order=newest&limit=0", "limit_out_of_range"),
                ("/v1/sync/pull?cursor=" + forged, "invalid_cursor"),
            ]
            for (uri, code) in cases {
                let response = try await call(client, .get, uri, token: alice)
                #expect(response.status == .badRequest, "\(uri)")
                #expect(response.errorCode == code, "\(uri): \(response.text)")
            }
        }
    }
}
