import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ReaderSyncCore
import ReaderSyncService

/// The Google Reader-compatible API's routes: decode, authenticate, call ``ReaderAPI``, encode.
/// Served at the root and under `/api/greader.php` (docs/GOOGLE-READER-API.md).
struct ReaderAPIHandlers: Sendable {
    let reader: ReaderAPI
    let api: APIHandlers

    /// The routes, each under every prefix clients are told to use.
    func routes() -> [Route] {
        let routes: [Route] = [
            // POST only: a password in a GET's query would reach access logs.
            Route(.post, "/accounts/ClientLogin", clientLogin),
            Route(.get, "/reader/api/0/token", token),
            Route(.get, "/reader/api/0/user-info", userInfo),
            Route(.get, "/reader/api/0/subscription/list", subscriptionList),
            Route(.get, "/reader/api/0/tag/list", tagList),
            Route(.get, "/reader/api/0/unread-count", unreadCount),
            Route(.get, "/reader/api/0/stream/items/ids", itemIds),
            Route(.post, "/reader/api/0/stream/items/ids", itemIds),
            Route(.get, "/reader/api/0/stream/items/contents", itemContents),
            Route(.post, "/reader/api/0/stream/items/contents", itemContents),
            Route(.get, "/reader/api/0/stream/contents", streamContents),
            Route(.get, "/reader/api/0/stream/contents/**", streamContents),
            Route(.post, "/reader/api/0/edit-tag", editTag),
            Route(.post, "/reader/api/0/mark-all-as-read", markAllAsRead),
            Route(.get, "/reader/atom", atom),
            Route(.get, "/reader/atom/**", atom),
        ]
        return Self.prefixes.flatMap { prefix in
            routes.map { Route($0.method, prefix + $0.path, $0.handler) }
        }
    }

    /// Where the API is served: the root (Google Reader's own paths) and FreshRSS's
    /// `/api/greader.php`, the address users are told to enter in FreshRSS-style apps.
    static let prefixes = ["", "/api/greader.php"]

    /// Most `xt` and `it` parameters one stream request may carry (each is a condition of its query).
    static let maxStreamFilters = 100

    // MARK: Sessions

    func clientLogin(_ request: Request, _ url: URLParameters) async throws -> Response {
        // The credentials from the form body only: a password in the URL would reach access logs.
        let parameters = try ReaderParameters(query: nil, form: String(buffer: try await api.collect(request)))
        guard let email = parameters.first("Email"), let password = parameters.first("Passwd") else {
            throw SyncError(.invalidRequest, "send Email=<user name> and Passwd=<app password>")
        }
        let token = try await reader.login(userName: email, password: password)
        let query = try ReaderParameters(query: request.uri.query)
        if parameters.first("output") == "json" || query.first("output") == "json" {
            return try jsonResponse(ReaderJSON.Login(SID: token, LSID: token, Auth: token))
        }
        return Self.text("SID=\(token)\nLSID=\(token)\nAuth=\(token)\n")
    }

    func token(_ request: Request, _ url: URLParameters) async throws -> Response {
        Self.text(try await session(request).actionToken)
    }

    func userInfo(_ request: Request, _ url: URLParameters) async throws -> Response {
        let user = try await session(request).user
        return try jsonResponse(ReaderJSON.UserInfo(userId: String(user.id), userName: user.name,
                                                    userProfileId: String(user.id), userEmail: ""))
    }

    // MARK: Lists

    func subscriptionList(_ request: Request, _ url: URLParameters) async throws -> Response {
        _ = try await session(request)
        let subscriptions = try await reader.subscriptions().map { section in
            let stream = ReaderStream.feed(section.id).id
            return ReaderJSON.Subscription(
                id: stream, title: section.name,
                categories: [ReaderJSON.Category(id: ReaderStream.label(section.name).id, label: section.name)],
                url: "reader/atom/" + stream, htmlUrl: "", iconUrl: "", sortid: String(format: "%08X", section.id),
                firstitemmsec: "0")
        }
        return try jsonResponse(ReaderJSON.SubscriptionList(subscriptions: subscriptions))
    }

    func tagList(_ request: Request, _ url: URLParameters) async throws -> Response {
        _ = try await session(request)
        var tags = [ReaderJSON.Tag(id: ReaderStream.starred.id, type: nil)]
        for section in try await reader.subscriptions() {
            tags.append(ReaderJSON.Tag(id: ReaderStream.label(section.name).id, type: "folder"))
        }
        return try jsonResponse(ReaderJSON.TagList(tags: tags))
    }

    func unreadCount(_ request: Request, _ url: URLParameters) async throws -> Response {
        let counts = try await reader.unreadCounts(try await session(request))
        var entries: [ReaderJSON.UnreadCount] = []
        for count in counts {
            for stream in [ReaderStream.feed(count.section.id), .label(count.section.name)] {
                entries.append(.init(id: stream.id, count: count.count, newestItemTimestampUsec: String(count.newestArrival)))
            }
        }
        entries.append(.init(id: ReaderStream.readingList.id, count: counts.reduce(0) { $0 + $1.count },
                             newestItemTimestampUsec: String(counts.map(\.newestArrival).max() ?? 0)))
        return try jsonResponse(ReaderJSON.UnreadCounts(max: ReaderAPI.maxIdsPerPage, unreadcounts: entries))
    }

    // MARK: Streams

    func itemIds(_ request: Request, _ url: URLParameters) async throws -> Response {
        let session = try await session(request)
        let parameters = try await self.parameters(request)
        guard let stream = parameters.first("s") else {
            throw SyncError(.invalidRequest, "send s=<stream id>, e.g. s=user/-/state/com.google/reading-list")
        }
        let selection = try await self.selection(try ReaderStream(parsing: stream), parameters)
        let page = try await reader.page(session, of: selection, limit: try parameters.integer("n") ?? 20,
                                         maxLimit: ReaderAPI.maxIdsPerPage)
        let refs = page.refs.map { ReaderJSON.ItemRef(id: String($0.itemId), directStreamIds: [],
                                                      timestampUsec: String($0.position.arrivedAt)) }
        return try jsonResponse(ReaderJSON.ItemRefs(itemRefs: refs, continuation: page.continuation))
    }

    func itemContents(_ request: Request, _ url: URLParameters) async throws -> Response {
        let session = try await session(request)
        let parameters = try await self.parameters(request)
        let ids = try parameters.all("i").map(ReaderItemId.parse)
        let items = try await reader.items(session, ids: ids)
        return try jsonResponse(try await stream(id: ReaderStream.readingList.id, title: nil, items: items, continuation: nil))
    }

    func streamContents(_ request: Request, _ url: URLParameters) async throws -> Response {
        let session = try await session(request)
        let parameters = try await self.parameters(request)
        let stream = try ReaderStream(parsing: try Self.streamInPath(request, after: "/stream/contents") ?? parameters.first("s")
            ?? ReaderStream.readingList.id)
        let (items, continuation) = try await page(session, stream, parameters)
        let title = try await reader.section(of: stream)?.name
        return try jsonResponse(try await self.stream(id: stream.id, title: title, items: items, continuation: continuation))
    }

    /// The Atom 1.0 feed of a stream, as newsboat's `feedhq` mode reads items.
    func atom(_ request: Request, _ url: URLParameters) async throws -> Response {
        let session = try await session(request)
        let parameters = try await self.parameters(request)
        let stream = try ReaderStream(parsing: try Self.streamInPath(request, after: "/reader/atom") ?? parameters.first("s")
            ?? ReaderStream.readingList.id)
        let (items, continuation) = try await page(session, stream, parameters)
        let title = try await reader.section(of: stream)?.name ?? stream.id
        let xml = ReaderAtom.feed(streamId: stream.id, title: title, items: items, sections: try await sectionsByName(),
                                  continuation: continuation, updated: Date())
        return Response(status: .ok, headers: [.contentType: "application/atom+xml; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: xml)))
    }

    private func page(_ session: ReaderSession, _ stream: ReaderStream, _ parameters: ReaderParameters)
        async throws -> (items: [ReaderSyncService.Item], continuation: String?)
    {
        let selection = try await self.selection(stream, parameters)
        let page = try await reader.page(session, of: selection, limit: try parameters.integer("n") ?? 20,
                                         maxLimit: ReaderAPI.maxItemsPerPage)
        return (try await reader.items(session, ids: page.refs.map(\.itemId)), page.continuation)
    }

    private func stream(id: String, title: String?, items: [ReaderSyncService.Item], continuation: String?) async throws -> ReaderJSON.Stream {
        let sections = try await sectionsByName()
        return ReaderJSON.Stream(id: id, title: title, updated: Int64(Date().timeIntervalSince1970),
                                 items: items.map { ReaderJSON.item($0, sections: sections) }, continuation: continuation)
    }

    private func sectionsByName() async throws -> [String: Section] {
        Dictionary(try await reader.subscriptions().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// `xt`, `it`, `ot`, `nt`, `r` and `c` of a stream request.
    private func selection(_ stream: ReaderStream, _ parameters: ReaderParameters) async throws -> StreamSelection {
        var selection = StreamSelection(stream: stream)
        selection.excluded = try parameters.all("xt").filter { !$0.isEmpty }.map(ReaderStream.init(parsing:))
        selection.included = try parameters.all("it").filter { !$0.isEmpty }.map(ReaderStream.init(parsing:))
        guard selection.excluded.count + selection.included.count <= Self.maxStreamFilters else {
            throw SyncError(.invalidRequest, "at most \(Self.maxStreamFilters) xt and it parameters a request")
        }
        if let ot = parameters.first("ot"), !ot.isEmpty { selection.arrivedSince = try ReaderTime.micros(parsing: ot, name: "ot") }
        if let nt = parameters.first("nt"), !nt.isEmpty { selection.arrivedBefore = try ReaderTime.micros(parsing: nt, name: "nt") }
        switch parameters.first("r") ?? "" {
        case "o": selection.newestFirst = false
        case "", "n", "d": selection.newestFirst = true
        case let other: throw SyncError(.invalidRequest, "r must be o (oldest first) or n (newest first), got '\(other.prefix(20))'")
        }
        if let c = parameters.first("c"), !c.isEmpty { selection.after = try ReaderContinuation.decode(c) }
        // Fails here, with its 404, for a feed or label that never existed.
        for stream in [stream] + selection.included + selection.excluded { _ = try await reader.section(of: stream) }
        return selection
    }

    // MARK: Writes

    func editTag(_ request: Request, _ url: URLParameters) async throws -> Response {
        let (session, parameters) = try await writeSession(request)
        let ids = try parameters.all("i").map(ReaderItemId.parse)
        try await reader.editTags(session, itemIds: ids, add: parameters.all("a").filter { !$0.isEmpty },
                                  remove: parameters.all("r").filter { !$0.isEmpty })
        return Self.text("OK")
    }

    func markAllAsRead(_ request: Request, _ url: URLParameters) async throws -> Response {
        let (session, parameters) = try await writeSession(request)
        guard let stream = parameters.first("s"), !stream.isEmpty else {
            throw SyncError(.invalidRequest, "send s=<stream id> of the stream to mark read")
        }
        let parsed = try ReaderStream(parsing: stream)
        _ = try await reader.section(of: parsed)
        let until = try parameters.first("ts").flatMap { $0.isEmpty ? nil : $0 }.map { try ReaderTime.micros(parsing: $0, name: "ts") }
        _ = try await reader.markAllAsRead(session, stream: parsed, arrivedAtOrBefore: until)
        return Self.text("OK")
    }

    // MARK: Helpers

    private func session(_ request: Request) async throws -> ReaderSession {
        try await reader.authenticate(authorization: request.headers[.authorization])
    }

    /// The session of a write, which must carry its action token `T`.
    private func writeSession(_ request: Request) async throws -> (ReaderSession, ReaderParameters) {
        let session = try await session(request)
        let parameters = try await self.parameters(request)
        // newsboat sends the token as it read it, with whatever line end it had. Reeder sends the
        // placeholder `x` (FreshRSS accepts it too): the session already travels in a header,
        // never in a cookie, so `T` guards against no cross-site request, and a named client works.
        let token = parameters.first("T")?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token == "x" || session.isActionToken(token) else {
            throw BadActionToken()
        }
        return (session, parameters)
    }

    /// The query's parameters and, for a POST, the form body's.
    private func parameters(_ request: Request) async throws -> ReaderParameters {
        guard request.method == .post else { return try ReaderParameters(query: request.uri.query) }
        let body = try await api.collect(request)
        return try ReaderParameters(query: request.uri.query, form: String(buffer: body))
    }

    /// The percent-decoded stream id in the path after `marker` (`/reader/atom/feed%2F3` → `feed/3`),
    /// or `nil` when the path ends there.
    static func streamInPath(_ request: Request, after marker: String) throws -> String? {
        let path = request.uri.path
        guard let range = path.range(of: marker + "/") else { return nil }
        let raw = path[range.upperBound...]
        guard !raw.isEmpty else { return nil }
        return try URLParameters.percentDecode(raw, what: "the stream id in the path")
    }

    static func text(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// A write without the session's action token `T`, or with another: `401` with
/// `X-Reader-Google-Bad-Token: true` (Google's and Miniflux's spelling) and `Google-Bad-Token: true`
/// (FreshRSS's), which tell a client to fetch a new one and try again.
struct BadActionToken: Error {
    var error: SyncError {
        SyncError(.unauthorized, "the write's action token T is missing or not this session's; get one from /reader/api/0/token")
    }
}

extension HTTPField.Name {
    /// Google Reader's answer to a write with a stale action token: fetch a new `T` and retry.
    static let readerBadToken = HTTPField.Name("X-Reader-Google-Bad-Token")!
    /// The same, as FreshRSS spells it.
    static let googleBadToken = HTTPField.Name("Google-Bad-Token")!
}
