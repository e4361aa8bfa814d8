import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// A Google Reader API client on the test router: logs in with an app password and sends the
/// requests real clients send, raw (forms built by hand, as newsboat and NetNewsWire build them).
struct ReaderTestClient {
    let client: any TestClientProtocol
    /// `""` or `/api/greader.php`.
    var prefix: String
    var auth: String

    /// `POST <path>` (ClientLogin by default) with a raw form body.
    static func postForm(_ client: any TestClientProtocol, _ form: String, to path: String = "/accounts/ClientLogin") async throws -> TestResponse {
        try await client.executeRequest(uri: path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                        body: ByteBuffer(string: form))
    }

    /// Logs in with ClientLogin and returns a client holding the session token.
    static func login(_ client: any TestClientProtocol, user: String, password: String,
                      prefix: String = "/api/greader.php") async throws -> ReaderTestClient {
        let response = try await postForm(client, "Email=\(user)&Passwd=\(password)", to: prefix + "/accounts/ClientLogin")
        #expect(response.status == .ok, "\(String(buffer: response.body))")
        let auth = String(buffer: response.body).split(separator: "\n").first { $0.hasPrefix("Auth=") }?.dropFirst(5)
        return ReaderTestClient(client: client, prefix: prefix, auth: String(try #require(auth)))
    }

    var headers: HTTPFields { [.authorization: "GoogleLogin auth=\(auth)"] }

    func get(_ pathAndQuery: String) async throws -> TestResponse {
        try await client.executeRequest(uri: prefix + pathAndQuery, method: .get, headers: headers, body: nil)
    }

    func post(_ path: String, _ form: String) async throws -> TestResponse {
        var headers = headers
        headers[.contentType] = "application/x-www-form-urlencoded"
        return try await client.executeRequest(uri: prefix + path, method: .post, headers: headers, body: ByteBuffer(string: form))
    }

    func json(_ pathAndQuery: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
        let response = try await get(pathAndQuery)
        #expect(response.status == .ok, "\(pathAndQuery): \(String(buffer: response.body))", sourceLocation: sourceLocation)
        return try #require(response.json as? [String: Any], sourceLocation: sourceLocation)
    }

    /// The action token, as newsboat reads it before every write.
    func actionToken() async throws -> String {
        String(buffer: try await get("/reader/api/0/token").body)
    }

    /// Every id of a stream, following `continuation` (as NetNewsWire does), with the pages' sizes.
    func allIds(_ query: String, n: Int) async throws -> (ids: [String], pages: [Int]) {
        var ids: [String] = []
        var pages: [Int] = []
        var continuation: String?
        repeat {
            let page = try await json("/reader/api/0/stream/items/ids?\(query)&n=\(n)&output=json"
                + (continuation.map { "&c=\($0)" } ?? ""))
            let refs = try #require(page["itemRefs"] as? [[String: Any]])
            ids += refs.map { $0["id"] as? String ?? "?" }
            pages.append(refs.count)
            continuation = page["continuation"] as? String
        } while continuation != nil
        return (ids, pages)
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }
}

@Suite("Google Reader API through the real router")
struct ReaderAPITests {
    static let readingList = "user/-/state/com.google/reading-list"
    static let read = "user/-/state/com.google/read"
    static let starred = "user/-/state/com.google/starred"

    /// A harness with alice and bob, an app password each, and `count` articles in two sections.
    static func setUp(_ backend: Backend, articles count: Int = 6) async throws
        -> (h: Harness, alice: UserRecord, alicePassword: String, bobPassword: String, aliceToken: String)
    {
        let h = try await Harness(backend: backend)
        let (alice, aliceToken) = try await h.createUser("alice")
        _ = try await h.createUser("bob")
        let reader = ReaderAPI(service: h.service)
        let alicePassword = try await reader.createAppPassword(userName: "alice", label: "newsboat")
        let bobPassword = try await reader.createAppPassword(userName: "bob", label: "reeder")
        if count > 0 { try await ingest(h, (1...count).map { ("art-\($0)", $0 % 2 == 0 ? "Sports" : "World") }) }
        return (h, alice, alicePassword, bobPassword, aliceToken)
    }

    static func ingest(_ h: Harness, _ articles: [(id: String, section: String)]) async throws {
        let lines = articles.map { article in
            Harness.articleLine(id: article.id, title: "Title of \(article.id)")
                .replacingOccurrences(of: #""section":"world""#, with: #""section":"\#(article.section)""#)
        }
        let report = try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8))
        #expect(report.rejected == 0)
    }

    /// The item number of an article, as the API lists it.
    static func itemId(_ reader: ReaderTestClient, of articleId: String) async throws -> String {
        let page = try await reader.json("/reader/api/0/stream/contents?n=1000")
        let items = try #require(page["items"] as? [[String: Any]])
        let item = try #require(items.first { ($0["canonical"] as? [[String: String]])?.first?["href"] == "https://news.example/\(articleId)" })
        return try #require(item["id"] as? String)
    }

    @Test("ClientLogin with an app password, in text and JSON; a wrong password or a removed one is 401; served at /, /api/greader.php and with a doubled slash",
          arguments: Backend.available)
    func login(backend: Backend) async throws {
        let (h, _, password, _, _) = try await Self.setUp(backend)
        try await h.withClient { client in
            let form = "service=reader&Email=alice&Passwd=\(password)&source=newsboat0.000000&accountType=HOSTED_OR_GOOGLE&continue=http://www.google.com/"
            let text = try await ReaderTestClient.postForm(client, form, to: "/accounts/ClientLogin")
            #expect(text.status == .ok)
            let lines = text.text.split(separator: "\n")
            #expect(lines.map { $0.split(separator: "=", maxSplits: 1).first ?? "" } == ["SID", "LSID", "Auth"])
            // NetNewsWire keeps only lines that split on "=" into exactly two parts.
            #expect(lines.allSatisfy { $0.split(separator: "=").count == 2 })
            let json = try await ReaderTestClient.postForm(client, "Email=alice&Passwd=\(password)", to: "/accounts/ClientLogin?output=json")
            #expect((json.json as? [String: String])?["Auth"] != nil)

            for prefix in ["", "/api/greader.php", "/api/greader.php/"] {
                let reader = try await ReaderTestClient.login(client, user: "alice", password: password, prefix: prefix)
                #expect(try await reader.json("/reader/api/0/user-info")["userName"] as? String == "alice")
            }
            let wrong = try await ReaderTestClient.postForm(client, "Email=alice&Passwd=not-the-password", to: "/api/greader.php/accounts/ClientLogin")
            #expect(wrong.status == .unauthorized)
            #expect(wrong.errorCode == "unauthorized")
            // Another user's name with this password: refused too.
            let mixed = try await ReaderTestClient.postForm(client, "Email=bob&Passwd=\(password)", to: "/accounts/ClientLogin")
            #expect(mixed.status == .unauthorized)
            // Credentials only from the body: in the query they would reach access logs.
            let inQuery = try await ReaderTestClient.postForm(client, "", to: "/accounts/ClientLogin?Email=alice&Passwd=\(password)")
            #expect(inQuery.status == .badRequest)
            // A bearer token is not a session, and a session token is not a bearer token.
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let bearer = try await client.executeRequest(uri: "/reader/api/0/user-info", method: .get,
                                                         headers: [.authorization: "Bearer \(reader.auth)"], body: nil)
            #expect(bearer.status == .unauthorized)
            let forged = ReaderTestClient(client: client, prefix: "", auth: reader.auth.dropLast() + (reader.auth.hasSuffix("0") ? "1" : "0"))
            #expect(try await forged.get("/reader/api/0/user-info").status == .unauthorized)

            try await ReaderAPI(service: h.service).revokeAppPassword(userName: "alice", label: "newsboat")
            #expect(try await reader.get("/reader/api/0/user-info").status == .unauthorized)
            let again = try await ReaderTestClient.postForm(client, "Email=alice&Passwd=\(password)", to: "/accounts/ClientLogin")
            #expect(again.status == .unauthorized)
        }
    }

    @Test("newsboat 2.21 (feedhq mode): subscriptions, the Atom feed of feed%2F1 with read as a labelled category, edit-tag with the raw long id and a token ending in a newline, mark-all-as-read without ts",
          arguments: Backend.available)
    func newsboatShapes(backend: Backend) async throws {
        let (h, alice, password, _, _) = try await Self.setUp(backend)
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let subscriptions = try #require(try await reader.json("/reader/api/0/subscription/list?output=json")["subscriptions"] as? [[String: Any]])
            #expect(subscriptions.map { $0["id"] as? String } == ["feed/1", "feed/2"])
            #expect(subscriptions.map { $0["title"] as? String } == ["World", "Sports"])
            #expect((subscriptions[0]["categories"] as? [[String: String]]) == [["id": "user/-/label/World", "label": "World"]])

            let atom = try await reader.get("/reader/atom/feed%2F1?n=20")
            #expect(atom.status == .ok)
            #expect(atom.headers[.contentType]?.hasPrefix("application/atom+xml") == true)
            #expect(atom.text.contains(#"<feed xmlns="http://www.w3.org/2005/Atom""#))
            let entryIds = atom.text.components(separatedBy: "<id>tag:google.com,2005:reader/item/").dropFirst().map { String($0.prefix(16)) }
            #expect(entryIds.count == 3)
            #expect(!atom.text.contains(#"label="read""#))
            #expect(atom.text.contains(#"scheme="http://www.google.com/reader/" label="kept-unread""#))

            // newsboat's bodies are not form-encoded, and T ends with what the token's body ended with.
            let token = try await reader.actionToken()
            #expect(!token.hasSuffix("\n"))
            let guid = "tag:google.com,2005:reader/item/\(entryIds[0])"
            let read = try await reader.post("/reader/api/0/edit-tag",
                                             "i=\(guid)&a=user/-/state/com.google/read&r=user/-/state/com.google/kept-unread&ac=edit&T=\(token)\n")
            #expect(read.status == .ok)
            #expect(read.text == "OK")
            let after = try await reader.get("/reader/atom/feed%2F1?n=20").text
            #expect(after.components(separatedBy: #"label="read""#).count == 2)

            // Star, then unread again with the tracking tag newsboat adds.
            let star = try await reader.post("/reader/api/0/edit-tag", "i=\(guid)&a=user/-/state/com.google/starred&ac=edit&T=\(token)\n")
            #expect(star.text == "OK")
            let unread = try await reader.post("/reader/api/0/edit-tag",
                "i=\(guid)&r=user/-/state/com.google/read&a=user/-/state/com.google/kept-unread&a=user/-/state/com.google/tracking-kept-unread&a=user/-/state/com.google/tracking-anything-new&ac=edit&T=\(token)\n")
            #expect(unread.text == "OK")
            let number = try ReaderItemId.parse(guid)
            let refs = try await h.store.itemRefs(userId: alice.id, query: { var q = ItemQuery(limit: 10); q.itemIds = [number]; return q }())
            #expect(refs.map(\.read) == [false])
            #expect(refs.map(\.starred) == [true])

            let all = try await reader.post("/reader/api/0/mark-all-as-read", "s=feed/1&T=\(token)\n")
            #expect(all.text == "OK")
            let counts = try #require(try await reader.json("/reader/api/0/unread-count?output=json")["unreadcounts"] as? [[String: Any]])
            #expect(counts.first { $0["id"] as? String == "feed/1" } == nil)
            #expect(counts.first { $0["id"] as? String == "feed/2" }?["count"] as? Int == 3)
            #expect(counts.first { $0["id"] as? String == Self.readingList }?["count"] as? Int == 3)
        }
    }

    @Test("NetNewsWire's Reader API account: tag and subscription lists, unread and starred ids with continuation, 150-item contents by padded and unpadded hex, edit-tag with many ids; a stale T is 401 with the bad-token headers",
          arguments: Backend.available)
    func netNewsWireShapes(backend: Backend) async throws {
        let (h, _, password, _, _) = try await Self.setUp(backend, articles: 160)
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let tags = try #require(try await reader.json("/reader/api/0/tag/list?output=json")["tags"] as? [[String: String]])
            #expect(tags.contains(["id": "user/-/label/World", "type": "folder"]))
            let subscriptions = try #require(try await reader.json("/reader/api/0/subscription/list?output=json")["subscriptions"] as? [[String: Any]])
            #expect(subscriptions.allSatisfy { $0["categories"] is [Any] })

            let unread = try await reader.allIds("s=\(Self.readingList)&xt=\(Self.read)", n: 1000)
            #expect(unread.ids.count == 160)
            #expect(unread.ids.allSatisfy { Int64($0) != nil })
            let starred = try await reader.allIds("s=\(Self.starred)", n: 1000)
            #expect(starred.ids.isEmpty)
            let since = try await reader.allIds("s=\(Self.readingList)&ot=\(h.clock.nowMillis / 1000 - 90 * 86400)", n: 100)
            #expect(since.ids.count == 160)
            #expect(since.pages == [100, 60])

            let token = try await reader.actionToken()
            let padded = unread.ids.prefix(150).map { "i=" + ReaderItemId.long(Int64($0)!) }.joined(separator: "&")
            let contents = try await reader.post("/reader/api/0/stream/items/contents", "T=\(token)&output=json&\(padded)")
            #expect(contents.status == .ok)
            let body = try #require(contents.json as? [String: Any])
            #expect(body["id"] is String && body["updated"] is Int)
            let items = try #require(body["items"] as? [[String: Any]])
            #expect(items.count == 150)
            let itemNumbers: [String] = items.map { item in
                let id = item["id"] as? String ?? ""
                return (try? ReaderItemId.parse(id)).map { String($0) } ?? id
            }
            #expect(itemNumbers == Array(unread.ids.prefix(150)))
            let first = try #require(items.first)
            #expect(first["summary"] is [String: Any] && first["crawlTimeMsec"] is String && first["timestampUsec"] is String)
            #expect(first["published"] is Int)
            let origin = try #require(first["origin"] as? [String: Any])
            #expect(subscriptions.contains { $0["id"] as? String == origin["streamId"] as? String })

            // Before 7.1.3 the hex was unpadded.
            let unpadded = "i=tag:google.com,2005:reader/item/" + String(Int64(unread.ids[0])!, radix: 16)
            let old = try #require(try await reader.post("/reader/api/0/stream/items/contents", "T=\(token)&output=json&\(unpadded)").json as? [String: Any])
            #expect((old["items"] as? [Any])?.count == 1)

            let marked = unread.ids.prefix(40).map { "i=" + ReaderItemId.long(Int64($0)!) }.joined(separator: "&")
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=\(token)&\(marked)&a=\(Self.read)").text == "OK")
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=\(token)&i=\(ReaderItemId.long(Int64(unread.ids[0])!))&a=\(Self.starred)").text == "OK")
            #expect(try await reader.allIds("s=\(Self.readingList)&xt=\(Self.read)", n: 1000).ids.count == 120)
            #expect(try await reader.allIds("s=\(Self.starred)", n: 1000).ids == [unread.ids[0]])
            #expect(try await reader.allIds("s=\(Self.read)", n: 1000).ids.count == 40)

            for stale in ["", "&T=not-the-token"] {
                let refused = try await reader.post("/reader/api/0/edit-tag", "i=\(unread.ids[50])&a=\(Self.read)\(stale)")
                #expect(refused.status == .unauthorized)
                #expect(refused.headers[.readerBadToken] == "true")
                #expect(refused.headers[.googleBadToken] == "true")
            }
            #expect(try await reader.allIds("s=\(Self.read)", n: 1000).ids.count == 40)
        }
    }

    @Test("paging 2,500 items with n=1000 in both orders (items of one ingest share an arrival time): no duplicate, no gap, no continuation on the last page",
          arguments: Backend.available)
    func paging(backend: Backend) async throws {
        let (h, _, password, _, _) = try await Self.setUp(backend, articles: 0)
        // Five ingests of 500: page boundaries fall inside a run of equal arrival times.
        for batch in 0..<5 {
            try await Self.ingest(h, (1...500).map { ("p\(batch)-\($0)", "World") })
            h.clock.advance(millis: batch == 2 ? 0 : 1000)
        }
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let newest = try await reader.allIds("s=\(Self.readingList)", n: 1000)
            let oldest = try await reader.allIds("s=\(Self.readingList)&r=o", n: 1000)
            #expect(newest.pages == [1000, 1000, 500])
            #expect(oldest.pages == [1000, 1000, 500])
            #expect(Set(newest.ids).count == 2500)
            #expect(oldest.ids == newest.ids.reversed())
            let feed = try await reader.allIds("s=feed/1&r=o", n: 999)
            #expect(feed.ids == oldest.ids)
            // ot (from, inclusive) and nt (before) select by arrival: the batches arrived at the
            // harness clock's start T, T+1 s, T+2 s (two) and T+3 s.
            let start = 1_764_000_000
            #expect(try await reader.allIds("s=\(Self.readingList)&ot=\(start + 1)&nt=\(start + 2)", n: 1000).ids.count == 500)
            #expect(try await reader.allIds("s=\(Self.readingList)&ot=\(start + 2)", n: 1000).ids.count == 1500)
            #expect(try await reader.allIds("s=\(Self.readingList)&nt=\(start)", n: 1000).ids.isEmpty)
            // The caps: n over 10,000 ids (1,000 items) is answered with that many and a continuation.
            #expect(try await reader.allIds("s=\(Self.readingList)", n: 10_000).pages == [2500])
            #expect(try await reader.allIds("s=\(Self.readingList)", n: 50_000).pages == [2500])
            // stream/contents pages the same way, capped at 1,000.
            var seen: [String] = []
            var continuation: String?
            repeat {
                let page = try await reader.json("/reader/api/0/stream/contents/user%2F-%2Fstate%2Fcom.google%2Freading-list?n=1000&r=o"
                    + (continuation.map { "&c=\($0)" } ?? ""))
                seen += (page["items"] as? [[String: Any]] ?? []).map { String(try! ReaderItemId.parse($0["id"] as! String)) }
                continuation = page["continuation"] as? String
            } while continuation != nil
            #expect(seen == oldest.ids)
            let capped = try await reader.json("/reader/api/0/stream/contents?n=5000")
            #expect((capped["items"] as? [Any])?.count == 1000)
            #expect(capped["continuation"] is String)
        }
    }

    @Test("mark-all-as-read marks only what arrived at or before ts (s, ms, µs or ns): an article ingested after the list was loaded stays unread",
          arguments: Backend.available)
    func markAllAsReadRace(backend: Backend) async throws {
        let (h, _, password, _, _) = try await Self.setUp(backend, articles: 4)
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let token = try await reader.actionToken()
            // The reader loads the list; the newest item's arrival is what the list showed.
            let loaded = try await reader.json("/reader/api/0/stream/items/ids?s=\(Self.readingList)&n=100")
            let listedAt = try #require(((loaded["itemRefs"] as? [[String: Any]])?.first?["timestampUsec"] as? String).flatMap { Int64($0) })
            h.clock.advance(millis: 1500)
            try await Self.ingest(h, [("late", "World")])
            let late = try await Self.itemId(reader, of: "late")

            let spellings: [String] = [String(listedAt / 1_000_000), String(listedAt / 1000), String(listedAt), String(listedAt * 1000)]
            for (index, ts) in spellings.enumerated() {
                if index > 0 {
                    // Unread again, to mark again with the next spelling of the same time.
                    let ids = try await reader.allIds("s=\(Self.read)", n: 100).ids.map { "i=\($0)" }.joined(separator: "&")
                    #expect(try await reader.post("/reader/api/0/edit-tag", "T=\(token)&\(ids)&r=\(Self.read)").text == "OK")
                }
                #expect(try await reader.post("/reader/api/0/mark-all-as-read", "s=\(Self.readingList)&ts=\(ts)&T=\(token)").text == "OK")
                let unread = try await reader.allIds("s=\(Self.readingList)&xt=\(Self.read)", n: 100).ids
                #expect(unread == [String(try ReaderItemId.parse(late))], "ts=\(ts)")
            }
            // Without ts: everything up to now.
            #expect(try await reader.post("/reader/api/0/mark-all-as-read", "s=\(Self.readingList)&T=\(token)").text == "OK")
            #expect(try await reader.allIds("s=\(Self.readingList)&xt=\(Self.read)", n: 100).ids.isEmpty)
        }
    }

    @Test("a mark made through the API is a change of its own device: an SDK device pulls it with that writer, a concurrent offline write meets it in the conflict log, and the SDK's change shows in the API",
          arguments: Backend.available)
    func marksAreDeviceChanges(backend: Backend) async throws {
        let (h, alice, password, _, aliceToken) = try await Self.setUp(backend, articles: 2)
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let token = try await reader.actionToken()
            let phone = try await h.service.pull(user: alice, cursor: nil, limit: 100)
            let item = try await Self.itemId(reader, of: "art-1")
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=\(Self.read)&a=\(Self.starred)").text == "OK")

            let pulled = try await h.service.pull(user: alice, cursor: phone.cursor, limit: 100)
            let state = try #require(pulled.states.first { $0.articleId == "art-1" })
            #expect(state.read == true && state.bookmarked == true)
            let record = try #require(try await h.store.appPasswords(userName: "alice")?.first)
            #expect(state.writers.read?.deviceId == record.deviceId)
            #expect(record.deviceId.hasPrefix("reader-api:newsboat#"))
            #expect(try await h.store.users(UserQuery()).first { $0.name == "alice" }?.devices == 1)

            // The phone, offline since its first pull, un-bookmarks: concurrent with the API's
            // bookmark, which wins by add-wins; the conflict log names the API device.
            let push = PushRequest(deviceId: "alice-phone", mutations: [mutation(1, "art-1", .bookmarked, .bool(false), base: 0)])
            let response = try await h.service.push(user: alice, request: push)
            #expect(response.results.first?.outcome == .superseded)
            let conflicts = try await h.service.conflicts(ConflictQuery(userId: alice.id, limit: 10))
            #expect(conflicts.first?.winner.deviceId == record.deviceId)
            #expect(conflicts.first?.rule == .addWins)

            // The phone marks art-2 read through our protocol; the API shows it.
            let phonePush = PushRequest(deviceId: "alice-phone", mutations: [mutation(2, "art-2", .read, .bool(true), wall: h.clock.nowMillis)])
            _ = try await call(client, .post, SyncRoute.push, token: aliceToken, body: try jsonBody(phonePush))
            let read = try await reader.allIds("s=\(Self.read)", n: 10).ids
            let second = try await Self.itemId(reader, of: "art-2")
            let expected = try Set([item, second].map { String(try ReaderItemId.parse($0)) })
            #expect(Set(read) == expected)

            // A second edit-tag that changes nothing writes nothing: no new change in the feed.
            let head = try await h.store.feedHead(userId: alice.id)
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=\(Self.read)").text == "OK")
            #expect(try await h.store.feedHead(userId: alice.id) == head)
        }
    }

    @Test("Reeder's shapes: n=10000 with xt=read, contents by bare 16-digit hex ids, T=x on writes, feed/feed/<n>, r=starred",
          arguments: Backend.available)
    func reederShapes(backend: Backend) async throws {
        let (h, alice, password, _, _) = try await Self.setUp(backend)
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let unread = try await reader.json("/reader/api/0/stream/items/ids?n=10000&xt=user/-/state/com.google/read&output=json&s=user/-/state/com.google/reading-list")
            let ids = try #require((unread["itemRefs"] as? [[String: Any]])?.compactMap { $0["id"] as? String })
            #expect(ids.count == 6)
            let hex = ids.map { ReaderItemId.long(Int64($0)!).dropFirst(ReaderItemId.longPrefix.count) }
            #expect(hex.allSatisfy { $0.count == 16 && $0.hasPrefix("00") })
            let contents = try await reader.post("/reader/api/0/stream/items/contents", "T=x&" + hex.map { "i=\($0)" }.joined(separator: "&"))
            let items = try #require((contents.json as? [String: Any])?["items"] as? [[String: Any]])
            #expect(items.compactMap { $0["id"] as? String }.map { String($0.suffix(16)) } == hex.map(String.init))
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=x&i=\(hex[0])&a=\(Self.starred)&a=\(Self.read)").text == "OK")
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=x&i=\(hex[0])&r=\(Self.starred)").text == "OK")
            let state = try #require(try await h.store.itemRefs(userId: alice.id, query: {
                var query = ItemQuery(limit: 1)
                query.itemIds = [Int64(ids[0])!]
                return query
            }()).first)
            #expect(state.read && !state.starred)
            #expect(try await reader.allIds("s=feed/feed/1", n: 100).ids.count == 3)
            #expect(try await reader.post("/reader/api/0/mark-all-as-read", "T=x&s=feed/feed/1").text == "OK")
            // World's three are read now, and the newest item (art-6, in Sports) was read above.
            #expect(try await reader.allIds("s=\(Self.readingList)&xt=\(Self.read)", n: 100).ids.count == 2)
        }
    }

    @Test("a revoked user's apps are shut out; a restored article arrives again; the API's device ids are reserved; articles without a section are a label too",
          arguments: Backend.available)
    func edges(backend: Backend) async throws {
        let (h, alice, password, _, aliceToken) = try await Self.setUp(backend, articles: 3)
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let token = try await reader.actionToken()
            // Deleted before the reader's list was loaded, restored after: mark-all-as-read of that list leaves it unread.
            _ = try await h.service.deleteArticle(id: "art-1")
            h.clock.advance(millis: 1000)
            let loadedAt = h.clock.nowMillis * 1000
            h.clock.advance(millis: 1000)
            try await Self.ingest(h, [("art-1", "World")])
            #expect(try await reader.post("/reader/api/0/mark-all-as-read", "T=\(token)&s=\(Self.readingList)&ts=\(loadedAt)").text == "OK")
            let unread = try await reader.allIds("s=\(Self.readingList)&xt=\(Self.read)", n: 100).ids
            #expect(unread == [String(try ReaderItemId.parse(try await Self.itemId(reader, of: "art-1")))])

            // The sync protocol cannot take a Reader API device's name.
            let record = try #require(try await h.store.appPasswords(userName: "alice")?.first)
            let squat = PushRequest(deviceId: record.deviceId, mutations: [mutation(1, "art-2", .read, .bool(true))])
            let refused = try await call(client, .post, SyncRoute.push, token: aliceToken, body: try jsonBody(squat))
            #expect(refused.status == .badRequest)

            // Articles ingested without a section: a subscription and label with an empty name, listed and readable.
            try await Self.ingest(h, [("loose", "")])
            let subscriptions = try #require(try await reader.json("/reader/api/0/subscription/list")["subscriptions"] as? [[String: Any]])
            let loose = try #require(subscriptions.first { $0["title"] as? String == "" })
            #expect(try await reader.allIds("s=user/-/label/", n: 10).ids.count == 1)
            #expect(try await reader.allIds("s=\(loose["id"] as! String)", n: 10).ids.count == 1)

            // A section named "read": its unread item's Atom entry never says read to newsboat.
            try await Self.ingest(h, [("named-read", "read")])
            let feed = try #require(subscriptions.count + 1 == (try await reader.json("/reader/api/0/subscription/list")["subscriptions"] as? [Any])?.count ? "user%2F-%2Flabel%2Fread" : nil)
            let atom = try await reader.get("/reader/atom/\(feed)").text
            #expect(atom.contains(#"label="kept-unread""#))
            #expect(!atom.contains(#"scheme="http://www.google.com/reader/" label="read""#))
            #expect(atom.contains(#"<category term="user/-/label/read" label="read"/>"#))

            // users revoke shuts out the apps too: the session and a new login get 401.
            try await h.service.revokeToken(name: "alice")
            #expect(try await reader.get("/reader/api/0/user-info").status == .unauthorized)
            let login = try await ReaderTestClient.postForm(client, "Email=alice&Passwd=\(password)", to: "/accounts/ClientLogin")
            #expect(login.status == .unauthorized)
            _ = try await h.service.issueToken(name: "alice")
            #expect(try await reader.get("/reader/api/0/user-info").status == .ok)
            _ = alice
        }
    }

    @Test("an API mark wakes the user's live streams: a long-poll waiting for a change answers with it", arguments: Backend.available)
    func marksWakeLiveStreams(backend: Backend) async throws {
        let (h, alice, password, _, _) = try await Self.setUp(backend, articles: 2)
        let caughtUp = try await h.service.pull(user: alice, cursor: nil, limit: 100)
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let token = try await reader.actionToken()
            let item = try await Self.itemId(reader, of: "art-2")
            let service = h.service
            let poll = Task { try await service.pull(user: alice, cursor: caughtUp.cursor, limit: 100, wait: .seconds(60)) }
            // Marked only once the long-poll waits, so only a wake-up can answer it early.
            while service.notifier.count == 0 { try await Task.sleep(for: .milliseconds(5)) }
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=\(Self.starred)").text == "OK")
            let answer = try await poll.value
            #expect(answer.states.map(\.articleId) == ["art-2"])
            #expect(answer.states.first?.bookmarked == true)
        }
    }

    @Test("bad input is a clear 4xx and changes nothing: unknown stream, unknown feed or label, malformed id, conflicting a/r, a tag we do not keep, bad n, ts or c; unknown item ids are ignored",
          arguments: Backend.available)
    func badInput(backend: Backend) async throws {
        let (h, alice, password, _, _) = try await Self.setUp(backend)
        try await h.withClient { client in
            let reader = try await ReaderTestClient.login(client, user: "alice", password: password)
            let token = try await reader.actionToken()
            let head = try await h.store.feedHead(userId: alice.id)
            let item = try await Self.itemId(reader, of: "art-1")
            let cases: [(String, String?, HTTPResponse.Status)] = [
                ("/reader/api/0/stream/items/ids?s=user/-/state/com.google/like", nil, .badRequest),
                ("/reader/api/0/stream/items/ids?s=user//state/com.google/reading-list", nil, .badRequest),
                ("/reader/api/0/stream/items/ids?s=user/%C2%BD/state/com.google/reading-list", nil, .badRequest),
                ("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=user/-/state/com.google/broadcast", .badRequest),
                ("/reader/api/0/stream/items/ids?s=feed/99", nil, .notFound),
                ("/reader/api/0/stream/items/ids?s=user/-/label/Nope", nil, .notFound),
                ("/reader/api/0/stream/items/ids", nil, .badRequest),
                ("/reader/api/0/stream/items/ids?s=\(Self.readingList)&n=0", nil, .badRequest),
                ("/reader/api/0/stream/items/ids?s=\(Self.readingList)&n=ten", nil, .badRequest),
                ("/reader/api/0/stream/items/ids?s=\(Self.readingList)&c=garbage", nil, .badRequest),
                ("/reader/api/0/stream/items/ids?s=\(Self.readingList)&ot=yesterday", nil, .badRequest),
                ("/reader/api/0/stream/items/ids?s=\(Self.readingList)&r=x", nil, .badRequest),
                ("/reader/api/0/stream/items/ids?s=\(Self.readingList)" + String(repeating: "&xt=\(Self.starred)", count: 101), nil, .badRequest),
                ("/reader/atom/feed%2F99", nil, .notFound),
                ("/reader/api/0/edit-tag", "T=\(token)&i=not-an-id&a=\(Self.read)", .badRequest),
                ("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&i=tag:google.com,2005:reader/item/xyz&a=\(Self.read)", .badRequest),
                ("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=\(Self.read)&r=\(Self.read)", .badRequest),
                ("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=\(Self.read)&a=user/-/state/com.google/kept-unread", .badRequest),
                ("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=user/-/label/World", .badRequest),
                ("/reader/api/0/edit-tag", "T=\(token)&a=\(Self.read)", .badRequest),
                ("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=%ZZ", .badRequest),
                ("/reader/api/0/mark-all-as-read", "T=\(token)", .badRequest),
                ("/reader/api/0/mark-all-as-read", "T=\(token)&s=feed/99", .notFound),
                ("/reader/api/0/mark-all-as-read", "T=\(token)&s=\(Self.readingList)&ts=12.5", .badRequest),
                ("/reader/api/0/mark-all-as-read", "T=\(token)&s=\(Self.readingList)&ts=99999999999999999999", .badRequest),
            ]
            for (path, form, status) in cases {
                let response: TestResponse
                if let form { response = try await reader.post(path, form) } else { response = try await reader.get(path) }
                #expect(response.status == status, "\(path) \(form ?? ""): \(response.text)")
                #expect(response.errorCode != nil, "\(path): \(response.text)")
            }
            #expect(try await h.store.feedHead(userId: alice.id) == head)
            // Unknown and never-ingested item ids are ignored: OK, nothing changed.
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=\(token)&i=999999&i=0000000000abcdef&a=\(Self.read)").text == "OK")
            #expect(try await h.store.feedHead(userId: alice.id) == head)
            // A deleted article's item is gone from every stream and cannot be marked.
            _ = try await h.service.deleteArticle(id: "art-1")
            #expect(try await reader.post("/reader/api/0/edit-tag", "T=\(token)&i=\(item)&a=\(Self.read)").text == "OK")
            #expect(try await reader.allIds("s=\(Self.readingList)", n: 100).ids.count == 5)
            #expect(try await h.store.state(userId: alice.id, articleId: "art-1") == nil)
        }
    }

    @Test("isolation: bob's app password never reads or changes alice's marks", arguments: Backend.available)
    func isolation(backend: Backend) async throws {
        let (h, alice, alicePassword, bobPassword, _) = try await Self.setUp(backend)
        try await h.withClient { client in
            let aliceReader = try await ReaderTestClient.login(client, user: "alice", password: alicePassword)
            let bobReader = try await ReaderTestClient.login(client, user: "bob", password: bobPassword)
            let aliceToken = try await aliceReader.actionToken()
            let bobToken = try await bobReader.actionToken()
            #expect(aliceToken != bobToken)
            let item = try await Self.itemId(aliceReader, of: "art-1")
            #expect(try await aliceReader.post("/reader/api/0/edit-tag", "T=\(aliceToken)&i=\(item)&a=\(Self.read)&a=\(Self.starred)").text == "OK")
            #expect(try await bobReader.allIds("s=\(Self.read)", n: 100).ids.isEmpty)
            #expect(try await bobReader.allIds("s=\(Self.starred)", n: 100).ids.isEmpty)
            #expect((try await bobReader.json("/reader/api/0/stream/contents?n=100")["items"] as? [[String: Any]])?
                .allSatisfy { !(($0["categories"] as? [String]) ?? []).contains(Self.read) } == true)
            // Bob's token with alice's session, and bob's writes: his own marks only.
            let crossed = try await aliceReader.post("/reader/api/0/edit-tag", "T=\(bobToken)&i=\(item)&r=\(Self.read)")
            #expect(crossed.status == .unauthorized)
            #expect(try await bobReader.post("/reader/api/0/edit-tag", "T=\(bobToken)&i=\(item)&r=\(Self.read)&r=\(Self.starred)").text == "OK")
            #expect(try await bobReader.post("/reader/api/0/mark-all-as-read", "T=\(bobToken)&s=\(Self.readingList)").text == "OK")
            let state = try #require(try await h.store.state(userId: alice.id, articleId: "art-1"))
            #expect(state.isRead && state.isBookmarked)
            #expect(try await aliceReader.allIds("s=\(Self.readingList)&xt=\(Self.read)", n: 100).ids.count == 5)
            let bobInfo = try await bobReader.json("/reader/api/0/user-info")
            #expect(bobInfo["userName"] as? String == "bob")
        }
    }
}
