import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

@Suite("Bad input gets a clear 4xx and stores nothing")
struct BadInputTests {
    /// A harness with one article, one user and one applied mutation, to check nothing is lost.
    func prepared(_ backend: Backend, _ configuration: SyncConfiguration = SyncConfiguration()) async throws -> (Harness, UserRecord, String) {
        let h = try await Harness(backend: backend, configuration: configuration)
        try await h.seedArticles(2)
        let (user, token) = try await h.createUser("alice")
        _ = try await h.service.push(user: user, request: PushRequest(deviceId: "phone", mutations: [mutation(1, "art-1", .read, .bool(true))]))
        return (h, user, token)
    }

    func expectUnchanged(_ h: Harness, _ user: UserRecord, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let state = try await h.store.state(userId: user.id, articleId: "art-1")
        #expect(state?.isRead == true && state?.version == 1, sourceLocation: sourceLocation)
        #expect(try await h.store.state(userId: user.id, articleId: "art-2") == nil, sourceLocation: sourceLocation)
        let page = try await h.store.changes(userId: user.id, after: .start, limit: 100)
        #expect(page.changes.count == 3, sourceLocation: sourceLocation)
    }

    static let validPush = #"{"deviceId":"phone","mutations":[{"id":2,"articleId":"art-2","field":"read","value":true,"hlc":{"wall":1,"counter":0},"baseVersion":0}]}"#

    @Test("a missing or wrong token is 401", arguments: Backend.available, [nil, "Bearer nope", "Basic abc", "Bearer "])
    func unauthorized(backend: Backend, header: String?) async throws {
        let (h, user, _) = try await prepared(backend)
        try await h.withClient { client in
            var headers: HTTPFields = [:]
            if let header { headers[.authorization] = header }
            for (method, uri, body) in [(HTTPRequest.Method.get, "/v1/sync/pull", nil), (.post, "/v1/sync/push", Self.validPush),
                                        (.get, "/v1/conflicts", nil), (.get, "/v1/admin/conflicts", nil)] {
                let r = try await call(client, method, uri, body: body.map { ByteBuffer(string: $0) }, headers: headers)
                #expect(r.status == .unauthorized, "\(method) \(uri)")
                #expect(r.errorCode == "unauthorized")
            }
        }
        try await expectUnchanged(h, user)
    }

    @Test("a user's token on admin routes is 403, and the admin token cannot sync", arguments: Backend.available)
    func forbidden(backend: Backend) async throws {
        let (h, user, token) = try await prepared(backend)
        try await h.withClient { client in
            let routes: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/v1/admin/conflicts", nil), (.post, "/v1/admin/users", #"{"name":"mallory"}"#),
                (.post, "/v1/admin/articles", Harness.articleLine(id: "x", title: "X")), (.delete, "/v1/admin/articles/art-1", nil),
            ]
            for (method, uri, body) in routes {
                let r = try await call(client, method, uri, token: token, body: body.map { ByteBuffer(string: $0) })
                #expect(r.status == .forbidden, "\(method) \(uri)")
                #expect(r.errorCode == "forbidden")
            }
            let adminPull = try await call(client, .get, "/v1/sync/pull", token: Harness.adminToken)
            #expect(adminPull.status == .forbidden)
        }
        try await expectUnchanged(h, user)
        #expect(try await h.store.user(named: "mallory") == nil)
        #expect(try await h.store.articleExists(id: "x") == false)
    }

    @Test("malformed pushes are 400 with a code that says which", arguments: Backend.available, [
        ("{\"deviceId\":", "invalid_json"),
        ("[]", "invalid_request"),
        (#"{"deviceId":"phone"}"#, "invalid_request"),
        (#"{"deviceId":7,"mutations":[]}"#, "invalid_request"),
        (#"{"deviceId":"phone","mutations":[{"id":"2","articleId":"art-2","field":"read","value":true,"hlc":{"wall":1,"counter":0},"baseVersion":0}]}"#, "invalid_request"),
        (#"{"deviceId":"phone","mutations":[{"id":2,"articleId":"art-2","field":"starred","value":true,"hlc":{"wall":1,"counter":0},"baseVersion":0}]}"#, "invalid_request"),
        (#"{"deviceId":"phone","mutations":[{"id":2,"articleId":"art-2","field":"read","value":true,"hlc":{"wall":1},"baseVersion":0}]}"#, "invalid_request"),
        (#"{"deviceId":"","mutations":[]}"#, "invalid_request"),
        (#"{"deviceId":"phone","mutations":[{"id":3,"articleId":"art-2","field":"read","value":true,"hlc":{"wall":1,"counter":0},"baseVersion":0},{"id":2,"articleId":"art-2","field":"read","value":false,"hlc":{"wall":1,"counter":0},"baseVersion":0}]}"#, "invalid_request"),
        (#"{"deviceId":"phone","mutations":[{"id":2,"articleId":"art-2","field":"read","value":true,"hlc":{"wall":-5,"counter":0},"baseVersion":0}]}"#, "invalid_request"),
    ])
    func malformedPush(backend: Backend, push: (body: String, code: String)) async throws {
        let (body, code) = push
        let (h, user, token) = try await prepared(backend)
        try await h.withClient { client in
            let r = try await call(client, .post, "/v1/sync/push", token: token, body: ByteBuffer(string: body))
            #expect(r.status == .badRequest)
            #expect(r.errorCode == code)
            let message = try r.decode(ErrorBody.self).error.message
            #expect(!message.isEmpty)
        }
        try await expectUnchanged(h, user)
    }

    @Test("a push of more than 1000 mutations is 400 too_many_mutations, and none of it is applied", arguments: Backend.available)
    func tooManyMutations(backend: Backend) async throws {
        let (h, user, token) = try await prepared(backend)
        let mutations = (2...1002).map { mutation(Int64($0), "art-2", .progress, .number(0.5)) }
        try await h.withClient { client in
            let r = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(PushRequest(deviceId: "phone", mutations: mutations)))
            #expect(r.status == .badRequest && r.errorCode == "too_many_mutations")
        }
        try await expectUnchanged(h, user)
    }

    @Test("a body over the size limit is 413 payload_too_large", arguments: Backend.available)
    func bodyTooLarge(backend: Backend) async throws {
        var configuration = SyncConfiguration()
        configuration.maxBodyBytes = 2048
        let (h, user, token) = try await prepared(backend, configuration)
        let mutations = (2...100).map { mutation(Int64($0), "art-2", .progress, .number(0.5)) }
        try await h.withClient { client in
            let r = try await call(client, .post, "/v1/sync/push", token: token, body: try jsonBody(PushRequest(deviceId: "phone", mutations: mutations)))
            #expect(r.status == .contentTooLarge && r.errorCode == "payload_too_large")
            let ingest = try await call(client, .post, "/v1/admin/articles", token: Harness.adminToken,
                                        body: ByteBuffer(string: String(repeating: Harness.articleLine(id: "big", title: "Big") + "\n", count: 20)))
            #expect(ingest.status == .contentTooLarge)
        }
        try await expectUnchanged(h, user)
        #expect(try await h.store.articleExists(id: "big") == false)
    }

    @Test("a limit out of range or not a number is 400", arguments: Backend.available, [
        "/v1/sync/pull?limit=0", "/v1/sync/pull?limit=1001", "/v1/sync/pull?limit=ten", "/v1/sync/pull?limit=-3",
        "/v1/conflicts?limit=0", "/v1/conflicts?limit=5000", "/v1/conflicts?before=yesterday",
    ])
    func badLimits(backend: Backend, uri: String) async throws {
        let (h, _, token) = try await prepared(backend)
        try await h.withClient { client in
            let r = try await call(client, .get, uri, token: token)
            #expect(r.status == .badRequest)
            #expect(r.errorCode == "limit_out_of_range" || r.errorCode == "invalid_request")
        }
    }

    @Test("a garbled or forged cursor is 400 invalid_cursor", arguments: Backend.available)
    func invalidCursor(backend: Backend) async throws {
        let (h, _, token) = try await prepared(backend)
        try await h.withClient { client in
            let good = try await call(client, .get, "/v1/sync/pull?limit=1", token: token).decode(PullResponse.self).cursor
            // Forged: same version and epoch, sequence 0, signature copied from the real one. The
            // version is the store's: `1:<epoch>:<seq>` on SQLite, `2:<epoch>:<transaction>:<seq>`
            // on PostgreSQL; a payload of the other version, otherwise the same, is forged too.
            let payload = String(decoding: CursorCodec.unbase64url(good.split(separator: ".")[0])!, as: UTF8.self)
            let parts = payload.split(separator: ":").map(String.init)
            try #require(parts.first == (backend == .sqlite ? "1" : "2") && parts.count == (backend == .sqlite ? 3 : 4), "\(payload)")
            #expect(parts.last != "0", "the real cursor must sit past sequence 0 for the forgery to differ")
            let signature = good.split(separator: ".")[1]
            let sameVersion = (parts.dropLast() + ["0"]).joined(separator: ":")
            let otherVersion = backend == .sqlite ? "2:\(parts[1]):1:\(parts[2])" : "1:\(parts[1]):\(parts[3])"
            let forged = [sameVersion, otherVersion].map { CursorCodec.base64url(Array($0.utf8)) + "." + signature }
            var flipped = Array(good)
            flipped[flipped.count - 2] = flipped[flipped.count - 2] == "A" ? "B" : "A"
            for cursor in ["garbage", "", "a.b.c", String(flipped), good + "x", "v2.\(good)"] + forged {
                guard !cursor.isEmpty else { continue }
                let escaped = cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor
                let r = try await call(client, .get, "/v1/sync/pull?cursor=\(escaped)", token: token)
                #expect(r.status == .badRequest, "cursor \(cursor)")
                #expect(r.errorCode == "invalid_cursor")
            }
            // The genuine cursor still works.
            #expect(try await call(client, .get, "/v1/sync/pull?cursor=\(good)", token: token).status == .ok)
        }
    }

    @Test("a cursor from another database epoch is 410 reset_required", arguments: Backend.available)
    func otherEpoch(backend: Backend) async throws {
        let (h, user, token) = try await prepared(backend)
        let cursor = try await h.service.pull(user: user, cursor: nil, limit: nil).cursor
        try await h.store.startNewEpoch()
        // A server started on the restored database (new epoch).
        let restarted = try await SyncService(store: h.store)
        let app = buildApplication(service: restarted, configuration: .init(port: 0), logger: .init(label: "test"))
        try await app.test(.router) { client in
            let r = try await call(client, .get, "/v1/sync/pull?cursor=\(cursor)", token: token)
            #expect(r.status == .gone)
            #expect(r.errorCode == "reset_required")
            // Starting over works.
            let fresh = try await call(client, .get, "/v1/sync/pull", token: token).decode(PullResponse.self)
            #expect(fresh.articles.count == 2)
        }
        try await expectUnchanged(h, user)
    }

    @Test("an unknown route is 404 with the error body", arguments: Backend.available)
    func unknownRoute(backend: Backend) async throws {
        let (h, _, token) = try await prepared(backend)
        try await h.withClient { client in
            for (method, uri) in [(HTTPRequest.Method.get, "/v2/sync/pull"), (.get, "/nothing"), (.get, "/v1/admin/articles/x/y")] {
                let r = try await client.executeRequest(uri: uri, method: method, headers: .bearer(token), body: nil)
                #expect(r.status == .notFound, "\(method) \(uri)")
                #expect(r.errorCode == "not_found")
            }
        }
    }

    @Test("a known route asked with another method is 405 with Allow and the error body", arguments: Backend.available)
    func wrongMethod(backend: Backend) async throws {
        let (h, _, token) = try await prepared(backend)
        try await h.withClient { client in
            for (method, uri, allow) in [(HTTPRequest.Method.put, "/v1/sync/push", "POST"), (.trace, "/v1/sync/pull", "GET"),
                                         (.get, "/v1/admin/articles/some-id", "DELETE"), (.delete, "/metrics", "GET")] {
                let r = try await client.executeRequest(uri: uri, method: method, headers: .bearer(token), body: nil)
                #expect(r.status == .methodNotAllowed, "\(method) \(uri)")
                #expect(r.headers[.allow] == allow)
                #expect(r.errorCode == "method_not_allowed")
            }
        }
    }

    @Test("mutations that cannot apply are rejected with a reason and do not block the rest", arguments: Backend.available)
    func rejectedMutations(backend: Backend) async throws {
        let (h, user, token) = try await prepared(backend)
        let body = #"{"deviceId":"phone","mutations":[{"id":2,"articleId":"ghost","field":"read","value":true,"hlc":{"wall":1,"counter":0},"baseVersion":0},{"id":3,"articleId":"art-2","field":"read","value":0.5,"hlc":{"wall":1,"counter":0},"baseVersion":0},{"id":4,"articleId":"art-2","field":"progress","value":2,"hlc":{"wall":1,"counter":0},"baseVersion":0},{"id":5,"articleId":"art-2","field":"bookmarked","value":"yes","hlc":{"wall":1,"counter":0},"baseVersion":0},{"id":6,"articleId":"art-2","field":"progress","value":0.25,"hlc":{"wall":1,"counter":0},"baseVersion":0}]}"#
        try await h.withClient { client in
            let r = try await call(client, .post, "/v1/sync/push", token: token, body: ByteBuffer(string: body))
            #expect(r.status == .ok)
            let response = try r.decode(PushResponse.self)
            #expect(response.results.map(\.outcome) == [.rejected, .rejected, .rejected, .rejected, .applied])
            #expect(response.results.prefix(4).allSatisfy { ($0.reason ?? "").isEmpty == false })
            #expect(response.lastMutationId == 6)
        }
        #expect(try await h.store.state(userId: user.id, articleId: "art-2")?.progressValue == 0.25)
    }
}

@Suite("The OpenAPI checker itself")
struct OpenAPIValidatorTests {
    @Test("it catches missing, undocumented and mistyped properties")
    func catchesMismatches() throws {
        let schema = try #require(openAPI.responseSchema(path: "/v1/health", method: "GET", status: 200))
        #expect(openAPI.validate(try JSONValue.parse(Data(#"{"status":"ok","protocolVersion":1}"#.utf8)), against: schema).isEmpty)
        #expect(!openAPI.validate(try JSONValue.parse(Data(#"{"status":"ok"}"#.utf8)), against: schema).isEmpty)
        #expect(!openAPI.validate(try JSONValue.parse(Data(#"{"status":"ok","protocolVersion":1,"extra":2}"#.utf8)), against: schema).isEmpty)
        #expect(!openAPI.validate(try JSONValue.parse(Data(#"{"status":"ok","protocolVersion":"1"}"#.utf8)), against: schema).isEmpty)
        let pull = try #require(openAPI.responseSchema(path: "/v1/sync/pull", method: "GET", status: 200))
        let badState = #"{"articles":[],"deletedArticleIds":[],"states":[{"articleId":"a","read":1,"bookmarked":false,"progress":0,"version":1,"hlc":{"wall":1,"counter":0}}],"cursor":"c","hasMore":false}"#
        #expect(!openAPI.validate(try JSONValue.parse(Data(badState.utf8)), against: pull).isEmpty)
    }

    /// Issue 10, item 8: `bad_request`, `unavailable` and `request_timeout` were sent but not documented.
    @Test("every error code the server can send is in the document's list and PROTOCOL.md's table, with its status")
    func errorCodesDocumented() throws {
        let codeSchema = openAPI.document["components"]?["schemas"]?["Error"]?["properties"]?["error"]?["properties"]?["code"]
        let documented = try #require(codeSchema?["enum"]?.array).compactMap(\.string)
        let sent = SyncError.Code.all.map(\.rawValue)
        #expect(Set(sent).count == sent.count && Set(documented).count == documented.count)
        #expect(Set(sent).subtracting(documented).isEmpty, "sent but not in Schema/openapi.json: \(Set(sent).subtracting(documented))")
        #expect(Set(documented).subtracting(sent).isEmpty, "documented but never sent: \(Set(documented).subtracting(sent))")

        // Hummingbird's own errors become one of those codes, whatever their status.
        for status in 400...599 {
            let code = APIErrorMiddleware<BasicRequestContext>.translate(HTTPError(.init(code: status))).code
            #expect(SyncError.Code.all.contains(code), "HTTP \(status) becomes the unlisted code \(code)")
        }

        // PROTOCOL.md's table has a row per code, with the status the server answers it with.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let protocolText = try String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        var table: [String: Int] = [:]
        for line in protocolText.split(separator: "\n") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard cells.count >= 3, let status = Int(cells[0]), cells[1].hasPrefix("`"), cells[1].hasSuffix("`") else { continue }
            table[String(cells[1].dropFirst().dropLast())] = status
        }
        for code in SyncError.Code.all {
            #expect(table[code.rawValue] == Int(APIErrorMiddleware<BasicRequestContext>.status(for: code).code),
                    "docs/PROTOCOL.md's error table: \(code) is \(table[code.rawValue].map(String.init) ?? "missing")")
        }
        #expect(Set(table.keys) == Set(sent))

        // The only way to send a code outside the list is `init(rawValue:)`; the server never calls it.
        var minted: [String] = []
        for folder in ["Sources/ReaderSyncServer", "Sources/ReaderSyncCore"] {
            let files = FileManager.default.enumerator(at: root.appendingPathComponent(folder), includingPropertiesForKeys: nil)
            while let file = files?.nextObject() as? URL {
                guard file.pathExtension == "swift" else { continue }
                let text = try String(contentsOf: file, encoding: .utf8)
                if text.contains("Code(rawValue:") || text.contains(".init(rawValue: \"") { minted.append(file.lastPathComponent) }
            }
        }
        #expect(minted.isEmpty, "add the code to SyncError.Code's list instead of Code(rawValue:) in \(minted)")
    }

    @Test("every route the router serves is in the document, and every documented path is served", arguments: Backend.available)
    func routesMatch(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let documented = Set(openAPI.paths.keys)
        let served: Set<String> = ["/v1/health", "/v1/sync/pull", "/v1/sync/events", "/v1/sync/push", "/v1/conflicts", "/v1/admin/conflicts",
                                   "/v1/history", "/v1/admin/history", "/v1/admin/users", "/v1/admin/articles", "/v1/admin/articles/{id}", "/v1/articles/{id}",
                                   "/v1/openapi.json", "/metrics"]
        #expect(documented == served)
        try await h.withClient { client in
            for path in documented {
                let uri = path.replacingOccurrences(of: "{id}", with: "x")
                for method in openAPI.paths[path]?.object?.keys ?? [:].keys {
                    let r = try await client.executeRequest(uri: uri, method: HTTPRequest.Method(method.uppercased())!, headers: [:], body: nil)
                    #expect(r.status != .notFound || path.contains("{id}"), "\(method) \(path) is documented but not routed")
                }
            }
            let doc = try await call(client, .get, "/v1/openapi.json")
            #expect(try JSONValue.parse(Data(doc.body.readableBytesView))["openapi"] == .string("3.1.0"))
        }
    }
}
