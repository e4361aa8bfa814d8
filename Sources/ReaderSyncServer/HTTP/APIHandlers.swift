import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ReaderSyncCore
import ReaderSyncService
import ServiceLifecycle

/// The route handlers: decode, authorize, call ``SyncService``, encode. No sync rules here.
struct APIHandlers: Sendable {
    let service: SyncService
    let metrics: ServerMetrics
    /// The SHA-256 of `--metrics-token`, when set; compared in constant time (``Tokens/matches(_:hash:)``).
    let metricsTokenHash: [UInt8]?
    let requestTimeout: Duration
    let logger: Logger

    init(service: SyncService, metrics: ServerMetrics, metricsToken: String?, requestTimeout: Duration, logger: Logger) {
        self.service = service
        self.metrics = metrics
        self.logger = logger
        self.metricsTokenHash = metricsToken.map(Tokens.hash)
        self.requestTimeout = requestTimeout
    }

    func pull(_ request: Request, parameters: URLParameters) async throws -> Response {
        let user = try await requireUser(request)
        let limit = try parameters.query("limit").map { try Self.integer($0, name: "limit") }
        let cursor = try parameters.query("cursor").flatMap { $0.isEmpty ? nil : $0 }
        let wait = try parameters.query("wait").map { try Self.integer($0, name: "wait") } ?? 0
        // `section=A&section=B`: only these sections' articles (none: every section).
        let sections = try parameters.queryAll("section")
        let maxWait = service.configuration.live.maxWait.components.seconds
        guard (0...maxWait).contains(wait) else {
            throw SyncError(.invalidRequest, "wait must be from 0 to \(maxWait) seconds, got \(wait)")
        }
        if let order = try parameters.query("order") {
            guard order == "newest" else { throw SyncError(.invalidRequest, "order must be newest, got \(order.prefix(40))") }
            guard cursor == nil, wait == 0 else {
                throw SyncError(.invalidRequest, "order=newest starts a first sync: send it without cursor and wait, then pull on with the cursor it returns")
            }
            let window = try parameters.query("window").map { try Self.integer($0, name: "window") }
            let since = try parameters.query("since").map { text in
                guard let date = Timestamp.parse(text) else {
                    throw SyncError(.invalidRequest, "since must be an RFC 3339 date-time, got \(text.prefix(40).debugDescription)")
                }
                return date
            }
            let page = try await service.pullNewestFirst(user: user, limit: limit.map(Int.init), window: window.map(Int.init),
                                                         since: since, sections: sections)
            metrics.pulled(changes: page.articles.count + page.states.count)
            return jsonResponse(bytes: ResponseEncoder.encode(page))
        } else if try parameters.query("window") != nil || parameters.query("since") != nil {
            throw SyncError(.invalidRequest, "window and since go with order=newest (a first sync)")
        }
        let page: PullResponse
        do {
            let notifier = service.notifier
            page = try await withGracefulShutdownHandler {
                try await service.pull(user: user, cursor: cursor, limit: limit.map(Int.init), sections: sections, wait: .seconds(wait))
            } onGracefulShutdown: {
                notifier.close()
            }
        } catch let error as SyncError where error.code == .unavailable {
            throw RetryLater(error: error, seconds: Self.streamRetryAfterSeconds)
        }
        metrics.pulled(changes: page.articles.count + page.deletedArticleIds.count + page.expiredArticleIds.count + page.states.count)
        return jsonResponse(bytes: ResponseEncoder.encode(page))
    }

    func push(_ request: Request, parameters: URLParameters) async throws -> Response {
        let user = try await requireUser(request)
        let body = try await collect(request)
        let push = try Self.decode(PushRequest.self, from: body)
        let (response, rules) = try await service.pushWithDetails(user: user, request: push)
        metrics.pushed(response, rules: rules)
        return jsonResponse(bytes: ResponseEncoder.encode(response))
    }

    func ownConflicts(_ request: Request, parameters: URLParameters) async throws -> Response {
        let user = try await requireUser(request)
        var query = try Self.conflictQuery(parameters)
        query.userId = user.id
        return try jsonResponse(ConflictsResponse(conflicts: try await service.conflicts(query)))
    }

    func adminConflicts(_ request: Request, parameters: URLParameters) async throws -> Response {
        try await requireAdmin(request)
        var query = try Self.conflictQuery(parameters)
        if let name = try parameters.query("user"), !name.isEmpty {
            query.userId = try await service.user(named: name).id
        }
        return try jsonResponse(ConflictsResponse(conflicts: try await service.conflicts(query)))
    }

    func ownHistory(_ request: Request, parameters: URLParameters) async throws -> Response {
        let user = try await requireUser(request)
        let query = try Self.historyQuery(parameters, userId: user.id)
        return try jsonResponse(try await service.history(query, userName: user.name))
    }

    func adminHistory(_ request: Request, parameters: URLParameters) async throws -> Response {
        try await requireAdmin(request)
        guard let name = try parameters.query("user"), !name.isEmpty else {
            throw SyncError(.invalidRequest, "give the user whose history to read: user=NAME")
        }
        let user = try await service.user(named: name)
        return try jsonResponse(try await service.history(try Self.historyQuery(parameters, userId: user.id), userName: user.name))
    }

    func createUser(_ request: Request, parameters: URLParameters) async throws -> Response {
        try await requireAdmin(request)
        let body = try Self.decode(CreateUserRequest.self, from: try await collect(request))
        return try jsonResponse(try await service.createUser(name: body.name), status: .created)
    }

    func ingest(_ request: Request, parameters: URLParameters) async throws -> Response {
        try await requireAdmin(request)
        let body = try await collect(request)
        guard body.readableBytes > 0 else {
            throw SyncError(.invalidRequest, "the body is empty; send JSON Lines, one article per line")
        }
        let report = try await service.ingest(jsonLines: body.readableBytesView)
        return try jsonResponse(report)
    }

    func deleteArticle(_ request: Request, parameters: URLParameters) async throws -> Response {
        try await requireAdmin(request)
        let id = try parameters.path("id")
        let changed = try await service.deleteArticle(id: id)
        return try jsonResponse(DeleteArticleResponse(id: id, deleted: true, changed: changed))
    }

    /// `GET /v1/articles/{id}`: one article, live or expired while its content is kept, for a
    /// user (or the admin). `404` for an unknown or compacted id, `410 article_deleted` for a
    /// retracted one.
    func article(_ request: Request, parameters: URLParameters) async throws -> Response {
        _ = try await service.authenticate(authorization: request.headers[.authorization])
        return jsonResponse(bytes: ResponseEncoder.encode(try await service.article(id: try parameters.path("id"))))
    }

    func metrics(_ request: Request, parameters: URLParameters) async throws -> Response {
        if let metricsTokenHash {
            guard let token = Tokens.bearer(request.headers[.authorization]), !token.isEmpty,
                  Tokens.matches(token, hash: metricsTokenHash) else {
                throw SyncError(.unauthorized, "this server's metrics need 'Authorization: Bearer <metrics token>'")
            }
        }
        metrics.record(try await service.gauges())
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                        body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
    }

    // MARK: Helpers

    func requireUser(_ request: Request) async throws -> UserRecord {
        switch try await service.authenticate(authorization: request.headers[.authorization]) {
        case .user(let user): return user
        case .admin: throw SyncError(.forbidden, "the admin token cannot sync; create a user and use its token")
        }
    }

    private func requireAdmin(_ request: Request) async throws {
        guard case .admin = try await service.authenticate(authorization: request.headers[.authorization]) else {
            throw SyncError(.forbidden, "this route needs the admin token")
        }
    }

    /// The whole body, within the size limit (`--max-body-bytes` unless `limit` is given) and the
    /// request timeout (a slow sender holds a slot).
    ///
    /// - Throws: ``SyncError`` `payload_too_large` (413) or `request_timeout` (408).
    func collect(_ request: Request, limit: Int? = nil) async throws -> ByteBuffer {
        let limit = limit ?? service.configuration.maxBodyBytes
        let tooLarge = SyncError(.payloadTooLarge, "the request body is over \(limit) bytes")
        let timeout = requestTimeout
        do {
            return try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
                group.addTask { try await request.body.collect(upTo: limit) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let body = try await group.next() ?? nil else {
                    throw SyncError(.requestTimeout, "the request body did not arrive within \(timeout)")
                }
                return body
            }
        } catch is NIOTooManyBytesError {
            throw tooLarge
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw tooLarge
        }
    }

    static func integer(_ text: String, name: String) throws -> Int64 {
        guard let value = Int64(text) else {
            throw SyncError(.invalidRequest, "\(name) must be an integer, got \(text.prefix(40))")
        }
        return value
    }

    /// `article`, `field`, `after` and `limit` (1…1000, default 100) of a history request.
    static func historyQuery(_ parameters: URLParameters, userId: Int64) throws -> HistoryQuery {
        var result = HistoryQuery(userId: userId)
        if let limit = try parameters.query("limit").map({ try integer($0, name: "limit") }) {
            guard (1...1000).contains(limit) else {
                throw SyncError(.limitOutOfRange, "limit must be from 1 to 1000, got \(limit)")
            }
            result.limit = Int(limit)
        }
        result.after = try parameters.query("after").map { try integer($0, name: "after") }
        result.articleId = try parameters.query("article").flatMap { $0.isEmpty ? nil : $0 }
        if let field = try parameters.query("field"), !field.isEmpty {
            guard let parsed = StateField(rawValue: field) else {
                throw SyncError(.invalidRequest, "field must be one of \(StateField.allCases.map(\.rawValue).joined(separator: ", ")), got \(field.prefix(40).debugDescription)")
            }
            result.field = parsed
        }
        return result
    }

    static func conflictQuery(_ parameters: URLParameters) throws -> ConflictQuery {
        var result = ConflictQuery()
        if let limit = try parameters.query("limit").map({ try integer($0, name: "limit") }) {
            guard (1...1000).contains(limit) else {
                throw SyncError(.limitOutOfRange, "limit must be from 1 to 1000, got \(limit)")
            }
            result.limit = Int(limit)
        }
        result.before = try parameters.query("before").map { try integer($0, name: "before") }
        result.articleId = try parameters.query("article").flatMap { $0.isEmpty ? nil : $0 }
        // `rule=a&rule=b` or `rule=a,b`; an unknown rule is a 400 listing the valid ones.
        result.rules = try ConflictRule.parseList(parameters.queryAll("rule"))
        return result
    }

    /// Decodes a JSON body, turning decoding failures into `400` errors that say what was wrong.
    static func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw SyncError(error.isMalformedJSON ? .invalidJSON : .invalidRequest, error.readableMessage)
        }
    }
}

/// `DELETE /v1/admin/articles/{id}` response body.
struct DeleteArticleResponse: Codable {
    var id: String
    var deleted: Bool
    /// False when the article was already deleted.
    var changed: Bool
}

extension DecodingError {
    var isMalformedJSON: Bool {
        if case .dataCorrupted(let context) = self, context.codingPath.isEmpty { return true }
        return false
    }

    /// Says where and what, never echoing the values sent.
    var readableMessage: String {
        func path(_ context: Context) -> String {
            let text = context.codingPath.map { key in
                key.intValue.map { "[\($0)]" } ?? ".\(key.stringValue)"
            }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : (text.isEmpty ? "body" : text)
        }
        switch self {
        case .typeMismatch(let type, let context):
            return "\(path(context)): expected \(Self.describe(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context)): expected \(Self.describe(type)), got null"
        case .keyNotFound(let key, let context):
            let at = path(context)
            return at == "body" ? "missing field \(key.stringValue)" : "\(at): missing field \(key.stringValue)"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context)): \(context.debugDescription)"
        @unknown default:
            return "the body does not match the expected shape"
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int64.Type, is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a value of type \(name)"
        }
    }
}
