import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// The support console through the real router (the browser test is ConsoleBrowserTests).
@Suite("Support console: admin login, session cookie, pages, escaping")
struct ConsoleTests {
    static let t0: Int64 = 1_764_000_000_000  // 2025-11-24 16:00:00 UTC

    /// Posts the login form; returns the response.
    static func login(_ client: any TestClientProtocol, token: String) async throws -> TestResponse {
        let body = "token=" + (token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        return try await client.executeRequest(uri: "/console/login", method: .post,
                                               headers: [.contentType: "application/x-www-form-urlencoded"],
                                               body: ByteBuffer(string: body))
    }

    /// The session cookie's `name=value` from a login's `Set-Cookie`.
    static func sessionCookie(_ response: TestResponse) throws -> String {
        let header = try #require(response.headers[.setCookie])
        return String(try #require(header.split(separator: ";").first))
    }

    static func get(_ client: any TestClientProtocol, _ uri: String, cookie: String?) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let cookie { headers[.cookie] = cookie }
        return try await client.executeRequest(uri: uri, method: .get, headers: headers, body: nil)
    }

    static func html(_ response: TestResponse) -> String { String(buffer: response.body) }

    @Test("the admin token opens an HttpOnly, SameSite=Strict session cookie of 8 hours; a user token, a wrong token and no token do not",
          arguments: Backend.available)
    func login(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, aliceToken) = try await h.createUser("alice")
        try await h.withClient { client in
            let unsigned = try await Self.get(client, "/console/users", cookie: nil)
            #expect(unsigned.status == .seeOther && unsigned.headers[.location] == "/console/login")
            #expect(try await Self.get(client, "/console/", cookie: nil).headers[.location] == "/console/users")
            let form = try await Self.get(client, "/console/login", cookie: nil)
            #expect(form.status == .ok && Self.html(form).contains(#"<input id="token" name="token" type="password""#))

            let wrong = try await Self.login(client, token: "not-the-admin-token")
            #expect(wrong.status == .unauthorized && wrong.headers[.setCookie] == nil)
            #expect(Self.html(wrong).contains("That token is not the admin token."))
            let user = try await Self.login(client, token: aliceToken)
            #expect(user.status == .forbidden && user.headers[.setCookie] == nil)
            #expect(Self.html(user).contains("That is a reader&#39;s token."))
            #expect(!Self.html(user).contains(aliceToken), "the page never shows the token it was given")
            #expect(try await Self.login(client, token: "").status == .badRequest)
            let huge = try await Self.login(client, token: String(repeating: "x", count: 20_000))
            #expect(huge.status == .contentTooLarge && Self.html(huge).contains("<h1>Cannot sign in</h1>"), "a login form over 16 KB")

            let admin = try await Self.login(client, token: Harness.adminToken)
            #expect(admin.status == .seeOther && admin.headers[.location] == "/console/users")
            let setCookie = try #require(admin.headers[.setCookie])
            let attributes = Set(setCookie.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.dropFirst())
            #expect(attributes == ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"])
            #expect(!setCookie.contains(Harness.adminToken))
            let cookie = try Self.sessionCookie(admin)
            let users = try await Self.get(client, "/console/users", cookie: cookie)
            #expect(users.status == .ok)
            #expect(users.headers[.init("Content-Security-Policy")!]?.hasPrefix("default-src 'none'; style-src 'sha256-") == true)
            #expect(users.headers[.cacheControl] == "no-store")
            // The policy allows exactly the page's stylesheet: the hash of the text between the tags.
            let page = Self.html(users)
            let css = try #require(page.range(of: "<style>").flatMap { start in
                page.range(of: "</style>").map { String(page[start.upperBound..<$0.lowerBound]) } })
            let hash = Data(SHA256.hash(data: Array(css.utf8))).base64EncodedString()
            #expect(users.headers[.init("Content-Security-Policy")!]?.contains("style-src 'sha256-\(hash)'") == true)
            #expect(page.contains("<p>No user.</p>") == false && page.contains("alice"))

            // Behind an HTTPS proxy the cookie is also Secure.
            let proxied = try await client.executeRequest(
                uri: "/console/login", method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded", .init("X-Forwarded-Proto")!: "https"],
                body: ByteBuffer(string: "token=\(Harness.adminToken)"))
            #expect(proxied.headers[.setCookie]?.contains("; Secure") == true)

            // A changed signature, a bare expiry and garbage are no session.
            let value = cookie.split(separator: "=", maxSplits: 1)[1]
            let flipped = String(value.dropLast()) + (value.last == "0" ? "1" : "0")
            for forged in ["reader_sync_console=\(flipped)", "reader_sync_console=\(value.split(separator: ".")[0])",
                           "reader_sync_console=9999999999.00", "reader_sync_console="] {
                #expect(try await Self.get(client, "/console/users", cookie: forged).status == .seeOther, "\(forged)")
            }

            // Logging out clears the cookie.
            let out = try await client.executeRequest(uri: "/console/logout", method: .post, headers: [.cookie: cookie], body: nil)
            let cleared = try #require(out.headers[.setCookie])
            #expect(out.status == .seeOther && cleared.hasPrefix("reader_sync_console=;") && cleared.contains("Max-Age=0"),
                    "attributes come in any order")
        }
    }

    @Test("a session ends after 8 hours, and when the server is given a new admin token", arguments: Backend.available)
    func sessionEnds(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.withClient { client in
            let cookie = try Self.sessionCookie(try await Self.login(client, token: Harness.adminToken))
            #expect(Self.html(try await Self.get(client, "/console/users", cookie: cookie)).contains("<p>No user.</p>"),
                    "no users and no search: no empty quotes")
            h.clock.advance(millis: 8 * 3_600_000 - 1_000)
            #expect(try await Self.get(client, "/console/users", cookie: cookie).status == .ok)
            h.clock.advance(millis: 1_000)
            #expect(try await Self.get(client, "/console/users", cookie: cookie).status == .seeOther, "expired")

            let fresh = try Self.sessionCookie(try await Self.login(client, token: Harness.adminToken))
            #expect(try await Self.get(client, "/console/users", cookie: fresh).status == .ok)
            try await h.store.setAdminTokenHash(Tokens.hash("a-new-admin-token-0123456789"))
            #expect(try await Self.get(client, "/console/users", cookie: fresh).status == .seeOther, "signed under the old token")
        }
    }

    @Test("users, a user's devices and recent articles, an article's timeline with why, the conflict log and its filters",
          arguments: Backend.available)
    func pages(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(3)
        let (alice, _) = try await h.createUser("alice")
        _ = try await h.createUser("bob")
        func push(_ device: String, _ m: Mutation) async throws -> PushResponse {
            try await h.service.push(user: alice, request: PushRequest(deviceId: device, mutations: [m]))
        }
        let phone = try await push("phone", mutation(1, "art-1", .bookmarked, .bool(true), wall: Self.t0))
        _ = try await push("laptop", mutation(1, "art-1", .bookmarked, .bool(false), wall: Self.t0 + 5_000, base: phone.states[0].version))
        _ = try await push("phone", mutation(2, "art-2", .read, .bool(true), wall: Self.t0 + 6_000))
        // A concurrent older unread from the laptop loses (last_writer_wins), and is logged.
        _ = try await push("laptop", mutation(2, "art-2", .read, .bool(false), wall: Self.t0 + 1_000))
        _ = try await push("phone", mutation(3, "art-3", .progress, .number(0.4), wall: Self.t0 + 7_000))
        // A clock an hour ahead of the server's is clamped; the mark shows what the device said.
        let ahead = h.clock.nowMillis + 3_600_000
        _ = try await push("laptop", mutation(3, "art-3", .progress, .number(0.6), wall: ahead, base: 1))
        // A position far out of range is refused, and recorded: the page must still draw it.
        _ = try await push("laptop", mutation(4, "art-3", .progress, .number(1e300), wall: ahead + 1))

        try await h.withClient { client in
            let cookie = try Self.sessionCookie(try await Self.login(client, token: Harness.adminToken))
            let users = Self.html(try await Self.get(client, "/console/users", cookie: cookie))
            #expect(users.contains(#"<a href="/console/user?name=alice">alice</a>"#))
            #expect(users.contains(#"<span class="id">laptop</span>: "#) && users.contains(", #4</div>"), "the laptop's last mutation")
            #expect(users.contains(#"<a href="/console/user?name=bob">bob</a></td><td>valid</td>"#))
            let found = Self.html(try await Self.get(client, "/console/users?q=ALI", cookie: cookie))
            #expect(found.contains("name=alice") && !found.contains("name=bob"))
            #expect(Self.html(try await Self.get(client, "/console/users?q=zed", cookie: cookie)).contains("No user whose name contains “zed”."))

            let page = Self.html(try await Self.get(client, "/console/user?name=alice", cookie: cookie))
            #expect(page.contains(#"<td class="id">phone</td>"#) && page.contains(#"<td class="id">laptop</td>"#))
            // Newest first: art-3 (the last push), then art-2, then art-1.
            let order = ["art-3", "art-2", "art-1"].map { page.range(of: "id=\($0)\"")?.lowerBound }
            #expect(order.allSatisfy { $0 != nil } && order == order.sorted { $0! < $1! })
            #expect(page.contains(#"<a href="/console/article?user=alice&amp;id=art-1">Title 1</a>"#))

            let article = Self.html(try await Self.get(client, "/console/article?user=alice&id=art-1", cookie: cookie))
            #expect(article.contains(#"<h1 id="title">Title 1</h1>"#))
            #expect(article.contains(#"<g class="mark applied" data-device="phone">"#))
            #expect(article.contains(#"<g class="mark applied" data-device="laptop">"#))
            #expect(article.contains(#"<rect class="span on""#) && article.contains(#"<rect class="span off""#))
            #expect(article.contains("It is off because alice&#39;s laptop removed the bookmark at 2025-11-24 16:00:05 UTC, "
                + "after it had seen alice&#39;s phone&#39;s bookmark of 2025-11-24 16:00:00 UTC."))
            #expect(!article.contains(#"id="timeline-read""#), "a field no device changed has no picture")
            let position = try await Self.get(client, "/console/article?user=alice&id=art-3", cookie: cookie)
            #expect(position.status == .ok)
            let positionPage = Self.html(position)
            let deviceTime = Timestamp.displayText(millis: ahead).split(separator: " ")[1]
            #expect(positionPage.contains(#"text-anchor="middle">\#(deviceTime)</text>"#),
                    "the clamped write is marked at the device's time")
            #expect(positionPage.contains(#"<g class="mark rejected" data-device="laptop">"#) && positionPage.contains(">1e+300</text>"))
            let lost = Self.html(try await Self.get(client, "/console/article?user=alice&id=art-2", cookie: cookie))
            #expect(lost.contains(#"<g class="mark lost" data-device="laptop">"#))

            let log = Self.html(try await Self.get(client, "/console/conflicts", cookie: cookie))
            #expect(log.contains("<td>last_writer_wins</td>") && log.contains(#"class="id">art-2</a>"#))
            let byRule = Self.html(try await Self.get(client, "/console/conflicts?rule=add_wins", cookie: cookie))
            #expect(byRule.contains("No conflicts logged that match.") && byRule.contains(#"<option value="add_wins" selected>"#))
            #expect(Self.html(try await Self.get(client, "/console/conflicts?user=bob", cookie: cookie)).contains("No conflicts logged that match."))
            #expect(Self.html(try await Self.get(client, "/console/conflicts?user=alice&article=art-2", cookie: cookie)).contains("<td>last_writer_wins</td>"))
            #expect(Self.html(try await Self.get(client, "/console/conflicts?article=art-1", cookie: cookie)).contains("No conflicts logged that match."))

            // Bad input: a page saying what is wrong, with the API's status.
            let nobody = try await Self.get(client, "/console/user?name=nobody", cookie: cookie)
            #expect(nobody.status == .notFound && Self.html(nobody).contains("no user named nobody"))
            #expect(try await Self.get(client, "/console/article?user=alice", cookie: cookie).status == .badRequest)
            #expect(try await Self.get(client, "/console/conflicts?rule=bogus", cookie: cookie).status == .badRequest)
            #expect(try await Self.get(client, "/console/conflicts?before=x", cookie: cookie).status == .badRequest)
        }
    }

    @Test("article text and ids are shown as text: markup in a title, an id, a device id never becomes markup", arguments: Backend.available)
    func escaping(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let id = #"<b id="x">a&b</b>'"#
        let title = "<script>alert(1)</script>"
        let line = Harness.articleLine(id: id, title: title)
        #expect(try await h.service.ingest(jsonLines: Array(line.utf8)).rejected == 0)
        let (alice, _) = try await h.createUser("alice")
        let device = "<img src=x onerror=alert(2)>"
        _ = try await h.service.push(user: alice, request: PushRequest(deviceId: device, mutations: [mutation(1, id, .read, .bool(true), wall: Self.t0)]))
        // A quote with a combining mark is one Character that is not a quote: escaped all the same.
        let combining = "x\"\u{301} display=\"none"
        _ = try await h.service.push(user: alice, request: PushRequest(deviceId: combining, mutations: [mutation(1, id, .bookmarked, .bool(true), wall: Self.t0)]))
        try await h.withClient { client in
            let cookie = try Self.sessionCookie(try await Self.login(client, token: Harness.adminToken))
            let link = ConsoleHandlers.link("/console/article", ["user": "alice", "id": id])
            #expect(link == "/console/article?user=alice&id=%3Cb%20id%3D%22x%22%3Ea%26b%3C%2Fb%3E%27")
            for uri in ["/console/users", "/console/user?name=alice", link] {
                let page = Self.html(try await Self.get(client, uri, cookie: cookie))
                #expect(!page.contains("<script>alert") && !page.contains("<img src=x") && !page.contains(#"<b id="x">"#), "\(uri)")
            }
            let article = Self.html(try await Self.get(client, link, cookie: cookie))
            #expect(article.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(article.contains("&lt;img src=x onerror=alert(2)&gt;"))
            #expect(article.contains("article &lt;b id=&quot;x&quot;&gt;a&amp;b&lt;/b&gt;&#39;"))
            let scalars = Array(article.unicodeScalars)
            let rawQuoteBeforeMark = zip(scalars, scalars.dropFirst()).contains { $0 == "\"" && $1 == "\u{301}" }
            #expect(!rawQuoteBeforeMark, "no raw quote before the mark")
            let attribute = "data-device=\"x&quot;\u{301} display=&quot;none\""
            #expect(article.contains(attribute))
            let search = Self.html(try await Self.get(client, "/console/users?q=%22%CC%81%20x", cookie: cookie))
            let value = "value=\"&quot;\u{301} x\""
            #expect(search.contains(value))
        }
    }

    @Test("the users page reads only what it shows: the first 200 by name, saying when more match; the store's user search is literal, case-blind, exact or limited as asked",
          arguments: Backend.available)
    func manyUsers(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        _ = try await h.seedArticles(1)
        let names = (0...200).map { "reader-" + String(1000 + $0).dropFirst() }  // reader-000 … reader-200
        var records: [String: UserRecord] = [:]
        for name in names + ["a_b", "axb", "kim"] { records[name] = try await h.createUser(name).user }
        for (name, device) in [("reader-007", "phone"), ("reader-007", "tablet"), ("reader-150", "laptop")] {
            _ = try await h.service.push(user: records[name]!, request: PushRequest(deviceId: device, mutations: [
                mutation(1, "art-1", .read, .bool(true), wall: Self.t0)]))
        }

        #expect(try await h.store.users(UserQuery(name: "reader-007")).map { [$0.name, String($0.devices)] } == [["reader-007", "2"]])
        #expect(try await h.store.users(UserQuery(name: "READER-007")).isEmpty, "a name is exact")
        #expect(try await h.store.users(UserQuery(nameContains: "READER-00")).map(\.name) == (0...9).map { "reader-00\($0)" })
        #expect(try await h.store.users(UserQuery(nameContains: "_")).map(\.name) == ["a_b"], "`_` is no wildcard")
        #expect(try await h.store.users(UserQuery(nameContains: "%")).isEmpty, "`%` is no wildcard")
        #expect(try await h.store.users(UserQuery(limit: 2)).map(\.name) == ["a_b", "axb"])
        #expect(try await h.store.users(UserQuery()).count == 204)
        // Case is ASCII's alone, whatever the database's locale: the Kelvin sign is no K.
        #expect(try await h.store.users(UserQuery(nameContains: "KIM")).map(\.name) == ["kim"])
        #expect(try await h.store.users(UserQuery(nameContains: "\u{212A}im")).isEmpty)
        // No name holds a NUL (PostgreSQL's text refuses one): found nowhere, not an error.
        #expect(try await h.store.users(UserQuery(name: "kim\u{0}")).isEmpty)
        #expect(try await h.store.users(UserQuery(nameContains: "\u{0}")).isEmpty)
        let devices = try await h.store.devices(userNames: ["reader-150", "reader-007", "nobody"])
        #expect(devices.map { "\($0.userName)/\($0.id)" }.sorted() == ["reader-007/phone", "reader-007/tablet", "reader-150/laptop"])
        #expect(try await h.store.devices(userNames: []).isEmpty)

        try await h.withClient { client in
            let cookie = try Self.sessionCookie(try await Self.login(client, token: Harness.adminToken))
            let all = Self.html(try await Self.get(client, "/console/users", cookie: cookie))
            #expect(all.components(separatedBy: #"<a href="/console/user?name="#).count - 1 == 200)
            #expect(all.contains("Showing the first 200 by name; more match: narrow the search."))
            #expect(all.contains("name=a_b\"") && all.contains("name=reader-196\"") && !all.contains("name=reader-197\""))
            #expect(all.contains(#"<span class="id">phone</span>"#) && all.contains(#"<span class="id">laptop</span>"#))
            let narrow = Self.html(try await Self.get(client, "/console/users?q=reader-15", cookie: cookie))
            #expect(narrow.components(separatedBy: #"<a href="/console/user?name="#).count - 1 == 10)
            #expect(!narrow.contains("Showing the first") && narrow.contains(#"<span class="id">laptop</span>"#))
            #expect(!narrow.contains(#"<span class="id">phone</span>"#), "only the shown users' devices")
            let nul = try await Self.get(client, "/console/users?q=%00", cookie: cookie)
            #expect(nul.status == .ok && Self.html(nul).contains("No user whose name contains “\u{FFFD}”."))
            #expect(!Self.html(nul).unicodeScalars.contains("\u{0}"), "a NUL is never written into the page")
        }
    }

    @Test("a form's + is a space and %2B a plus; links encode every reserved character")
    func formEncoding() throws {
        let parameters = URLParameters(path: Parameters(), query: "q=a+b%2Bc&article=x%20y")
        #expect(try parameters.formQuery("q") == "a b+c")
        #expect(try parameters.formQuery("article") == "x y")
        #expect(try parameters.query("q") == "a+b+c", "the API's reading is unchanged")
        #expect(ConsoleHandlers.link("/p", ["a": "1+1 é/&", "b": ""]) == "/p?a=1%2B1%20%C3%A9%2F%26")
    }
}
