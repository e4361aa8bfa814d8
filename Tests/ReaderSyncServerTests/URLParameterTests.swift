import AsyncHTTPClient
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// Percent-encodes one path segment or query value as client libraries do for a component
/// (Python's `quote(s, safe="")`, JavaScript's `encodeURIComponent` plus `!'()*`): every UTF-8
/// byte outside the unreserved characters `A–Z a–z 0–9 - . _ ~`.
func percentEncodedSegment(_ text: String) -> String {
    let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    return text.utf8.map { unreserved.contains($0) ? String(UnicodeScalar($0)) : String(format: "%%%02X", $0) }.joined()
}

/// Issue 10, item 2: `DELETE /v1/admin/articles/with%20space` answered 404 for the article
/// `with space`, because the path parameter reached the handler still percent-encoded.
@Suite("Path and query parameters are percent-decoded exactly once")
struct URLParameterTests {
    /// Ids whose URL needs escapes, each with a decoy that a wrong decoding would hit instead.
    static let targets = ["with space", "a/b", "what?", "hash#tag", "100%", "a+b", "café", "%20"]
    static let decoys = [
        "with%20space",  // not decoded at all
        "a b",           // `+` taken for a space
        "a", "b",        // `%2F` split into two segments
        "what", "hash",  // `?` and `#` cut the path short
        "%2520",         // the id `%20` encoded twice
        "caf%C3%A9",
    ]

    func ingest(_ h: Harness, _ ids: [String]) async throws {
        let lines = ids.map { Harness.articleLine(id: $0, title: "Story \($0)") }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.inserted == ids.count && report.rejected == 0)
    }

    /// The ids a user's pull shows as live and as deleted.
    func liveAndDeleted(_ client: any TestClientProtocol, token: String) async throws -> (live: Set<String>, deleted: Set<String>) {
        let page = try await call(client, .get, "/v1/sync/pull?limit=1000", token: token).decode(PullResponse.self)
        return (Set(page.articles.map(\.id)), Set(page.deletedArticleIds))
    }

    @Test("each id is deleted through the URL a client library builds for it, and no other article is touched", arguments: Backend.available)
    func deleteByEncodedId(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await ingest(h, Self.targets + Self.decoys)
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            for id in Self.targets {
                let uri = "/v1/admin/articles/" + percentEncodedSegment(id)
                let r = try await call(client, .delete, uri, token: Harness.adminToken)
                #expect(r.status == .ok, "DELETE \(uri) answered \(r.status)")
                let body = try r.decode(DeleteArticleResponse.self)
                #expect(body.id == id && body.deleted && body.changed, "DELETE \(uri) answered \(body)")
            }
            let (live, deleted) = try await liveAndDeleted(client, token: token)
            #expect(live == Set(Self.decoys))
            #expect(deleted == Set(Self.targets))
        }
    }

    @Test("lower-case hex escapes are the same id, and an encoded slash does not split the path", arguments: Backend.available)
    func escapesAreCaseInsensitive(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await ingest(h, ["café", "a/b/c"])
        try await h.withClient { client in
            let cafe = try await call(client, .delete, "/v1/admin/articles/caf%c3%a9", token: Harness.adminToken)
            #expect(try cafe.decode(DeleteArticleResponse.self).id == "café")
            let slashes = try await call(client, .delete, "/v1/admin/articles/a%2fb%2Fc", token: Harness.adminToken)
            #expect(try slashes.decode(DeleteArticleResponse.self).id == "a/b/c")
            // Unencoded, the slash is a path separator: no such route.
            #expect(try await call(client, .delete, "/v1/admin/articles/a/b", token: Harness.adminToken).status == .notFound)
        }
    }

    @Test("a malformed escape or bytes that are not UTF-8 are 400 invalid_request and delete nothing",
          arguments: Backend.available, ["100%", "%zz", "%2", "abc%", "%FF", "%C3", "%C3%28", "%ED%A0%80"])
    func malformedPathParameter(backend: Backend, segment: String) async throws {
        let h = try await Harness(backend: backend)
        try await ingest(h, ["100%", "abc%", "%2", "\u{FFFD}"])
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            let r = try await call(client, .delete, "/v1/admin/articles/\(segment)", token: Harness.adminToken)
            #expect(r.status == .badRequest && r.errorCode == "invalid_request")
            // Authentication still comes first.
            #expect(try await call(client, .delete, "/v1/admin/articles/\(segment)").status == .unauthorized)
            #expect(try await liveAndDeleted(client, token: token).deleted.isEmpty)
        }
    }

    @Test("an id or name holding NUL (%00) names nothing: 404 for the article and the user, an empty conflict log",
          arguments: Backend.available)
    func nulNamesNothing(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await ingest(h, ["a"])
        let (_, token) = try await h.createUser("alice")
        try await h.withClient { client in
            for id in ["%00", "x%00y"] {
                let r = try await call(client, .delete, "/v1/admin/articles/\(id)", token: Harness.adminToken)
                #expect(r.status == .notFound && r.errorCode == "not_found", "DELETE \(id) answered \(r.status)")
            }
            let user = try await call(client, .get, "/v1/admin/conflicts?user=al%00ice", token: Harness.adminToken)
            #expect(user.status == .notFound && user.errorCode == "not_found")
            for (path, auth) in [("/v1/conflicts?article=%00", token), ("/v1/admin/conflicts?article=a%00", Harness.adminToken)] {
                let r = try await call(client, .get, path, token: auth)
                #expect(r.status == .ok, "\(path) answered \(r.status)")
                #expect(try r.decode(ConflictsResponse.self).conflicts.isEmpty)
            }
            #expect(try await liveAndDeleted(client, token: token) == (live: ["a"], deleted: []))

            // `a` followed by NUL is not `a`: on SQLite, GRDB binds a String as a C string (length
            // -1), so the id would reach SQLite as `a` and delete article a (canBeStoredName).
            let r = try await call(client, .delete, "/v1/admin/articles/a%00", token: Harness.adminToken)
            #expect(r.status == .notFound && r.errorCode == "not_found", "DELETE a%00 answered \(r.status)")
            #expect(try await liveAndDeleted(client, token: token) == (live: ["a"], deleted: []))
        }
    }

    @Test("query values are decoded once too, strictly", arguments: Backend.available)
    func queryParameters(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.createUser("alice")
        try await h.withClient { client in
            let found = try await call(client, .get, "/v1/admin/conflicts?user=al%69ce&limit=%31%30", token: Harness.adminToken)
            #expect(found.status == .ok)
            let missing = try await call(client, .get, "/v1/admin/conflicts?user=b%6Fb", token: Harness.adminToken)
            #expect(missing.status == .notFound)
            #expect(try missing.decode(ErrorBody.self).error.message.contains("no user named bob"))
            for query in ["user=%zz", "article=%FF", "article=50%", "limit=1%"] {
                let r = try await call(client, .get, "/v1/admin/conflicts?\(query)", token: Harness.adminToken)
                #expect(r.status == .badRequest && r.errorCode == "invalid_request", "?\(query) answered \(r.status)")
            }
        }
    }

    @Test("the decoder turns every escape into its byte, keeps + as a plus, and refuses what is not UTF-8")
    func decoder() throws {
        #expect(try URLParameters.percentDecode("a+b%20c%2Bd%25e%2F", what: "x") == "a+b c+d%e/")
        #expect(try URLParameters.percentDecode("%2520", what: "x") == "%20")
        #expect(try URLParameters.percentDecode("caf%C3%A9", what: "x") == "café")
        #expect(try URLParameters.percentDecode("café", what: "x") == "café")
        #expect(try URLParameters.percentDecode("", what: "x") == "")
        for bad in ["%", "%a", "%ag", "%%41", "%C0%80", "%FE"] {
            #expect(throws: SyncError.self, "\(bad)") { try URLParameters.percentDecode(bad[...], what: "x") }
        }
        // Every id round-trips through the client's encoding.
        for id in URLParameterTests.targets + URLParameterTests.decoys + ["😀 ∑ \u{0301}", "~-._"] {
            #expect(try URLParameters.percentDecode(percentEncodedSegment(id)[...], what: "x") == id)
        }
    }

    @Test("over real HTTP, an AsyncHTTPClient request keeps the encoded id intact", arguments: Backend.available)
    func overRealHTTP(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await ingest(h, ["a/b c+d%", "a"])
        try await h.application().test(.live) { testClient in
            let port = try #require(testClient.port)
            let client = HTTPClient(eventLoopGroupProvider: .singleton)
            do {
                var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/admin/articles/" + percentEncodedSegment("a/b c+d%"))
                request.method = .DELETE
                request.headers.add(name: "Authorization", value: "Bearer \(Harness.adminToken)")
                let response = try await client.execute(request, timeout: .seconds(30))
                let body = try await response.body.collect(upTo: 1 << 20)
                #expect(response.status == .ok)
                #expect(try JSONDecoder().decode(DeleteArticleResponse.self, from: Data(body.readableBytesView)).id == "a/b c+d%")
            } catch {
                try await client.shutdown()
                throw error
            }
            try await client.shutdown()
        }
    }
}
