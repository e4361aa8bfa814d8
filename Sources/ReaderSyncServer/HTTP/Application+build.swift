import Foundation
import Hummingbird
import Logging
import NIOCore
import ReaderSyncCore
import ReaderSyncService
import ReaderSyncSchema
import ServiceLifecycle

/// Where and how the HTTP server listens.
package struct ServerConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 8080
    /// When set, `GET /metrics` needs `Authorization: Bearer <metricsToken>`.
    package var metricsToken: String?
    /// libdeflate level of gzip responses, 1 (fastest) … 12 (smallest).
    package var gzipLevel: Int32 = Gzip.defaultLevel
    /// Requests handled at once; more get `503` with `Retry-After` (health and metrics are exempt).
    package var maxConcurrentRequests = 128
    /// How long a request body may take to arrive before `408`.
    package var requestTimeout: Duration = .seconds(30)
    /// A connection with no complete request (head or body part) for this long is closed; this also
    /// closes one that sends its headers byte by byte.
    package var idleTimeout: Duration = .seconds(30)
    /// A connection whose client has not taken its whole response after this long is closed.
    package var responseTimeout: Duration = .seconds(60)
    /// What the server's compaction keeps (``SyncService/compact(_:)``); the default expires no
    /// article and keeps tombstones 30 days and conflicts 90.
    package var retention = RetentionPolicy()
    /// How often compaction runs, the first time at start; `nil` never (tests, or a `compact`
    /// from cron instead).
    package var compactionInterval: Duration? = nil

    package init(host: String = "127.0.0.1", port: Int = 8080, metricsToken: String? = nil, gzipLevel: Int32 = Gzip.defaultLevel) {
        self.host = host
        self.port = port
        self.metricsToken = metricsToken
        self.gzipLevel = gzipLevel
    }
}

/// Builds the HTTP application around a sync service: the real thing, for `serve` and for tests.
///
/// ```swift
/// let app = buildApplication(service: service, configuration: .init(port: 8080), logger: logger)
/// try await app.runService()
/// ```
package func buildApplication(
    service: SyncService,
    configuration: ServerConfiguration,
    metrics: ServerMetrics = ServerMetrics(),
    logger: Logger,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = buildRouter(service: service, configuration: configuration, metrics: metrics, logger: logger)
    let responseTimeout = TimeAmount(configuration.responseTimeout)
    return Application(
        router: router,
        server: .http1(configuration: .init(
            additionalChannelHandlers: [ResponseWriteTimeoutHandler(timeout: responseTimeout)],
            idleTimeout: TimeAmount(configuration.idleTimeout))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "reader-sync"),
        services: [ChangeListenerService(service: service, logger: logger)] + (configuration.compactionInterval.map {
            [CompactionService(service: service, policy: configuration.retention, interval: $0, logger: logger)]
        } ?? []),
        onServerRunning: onServerRunning,
        logger: logger
    )
}

/// Hears the changes other servers commit (``SyncService/listenForChanges()``) until graceful
/// shutdown, waking this server's live streams.
struct ChangeListenerService: Service {
    let service: SyncService
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await service.listenForChanges()
        }
    }
}

/// The protocol v1 routes. See docs/PROTOCOL.md and Schema/openapi.json.
package func buildRouter(
    service: SyncService,
    configuration: ServerConfiguration = ServerConfiguration(),
    metrics: ServerMetrics = ServerMetrics(),
    logger: Logger
) -> Router<BasicRequestContext> {
    let api = APIHandlers(service: service, metrics: metrics, metricsToken: configuration.metricsToken,
                          requestTimeout: configuration.requestTimeout, logger: logger)
    let routes: [Route] = [
        Route(.get, SyncRoute.health) { _, _ in try jsonResponse(HealthResponse()) },
        Route(.get, SyncRoute.pullPath, api.pull),
        Route(.get, SyncRoute.eventsPath, api.events),
        Route(.post, SyncRoute.push, api.push),
        Route(.get, "/v1/conflicts", api.ownConflicts),
        Route(.get, "/v1/admin/conflicts", api.adminConflicts),
        Route(.get, "/v1/history", api.ownHistory),
        Route(.get, "/v1/admin/history", api.adminHistory),
        Route(.post, "/v1/admin/users", api.createUser),
        Route(.post, "/v1/admin/articles", api.ingest),
        Route(.delete, "/v1/admin/articles/{id}", api.deleteArticle),
        Route(.get, "/v1/articles/{id}", api.article),
        Route(.get, "/v1/openapi.json") { _, _ in jsonResponse(bytes: ReaderSyncSchema.openAPIDocument.utf8) },
        Route(.get, "/metrics", api.metrics),
    ] + ReaderAPIHandlers(reader: ReaderAPI(service: service), api: api).routes()
        + ConsoleHandlers(service: service, api: api, logger: logger).routes()

    let router = Router()
    // Outermost: compress whatever the inner middleware and routes answered, errors included.
    router.add(middleware: ResponseCompressionMiddleware(level: configuration.gzipLevel, minimumBytes: 1024))
    router.add(middleware: APIErrorMiddleware(metrics: metrics, logger: logger, allowedMethods: AllowedMethods(routes)))
    // Live streams and long-polls are counted by their own caps (`SyncConfiguration.live`).
    router.add(middleware: ConcurrencyLimitMiddleware(limit: configuration.maxConcurrentRequests) { request in
        switch request.uri.path {
        case SyncRoute.health, "/metrics", SyncRoute.eventsPath: return true
        case SyncRoute.pullPath:
            // Read as the handler reads it, so the two never disagree on whether this is a long-poll.
            let wait = try? URLParameters(path: Parameters(), query: request.uri.query).query("wait")
            return wait.flatMap { Int64($0) }.map { $0 > 0 } ?? false
        default: return false
        }
    })
    // An access log at debug level; credentials are redacted (a test checks no token reaches the log).
    router.add(middleware: LogRequestsMiddleware(.debug, includeHeaders: .all(),
                                                 redactHeaders: [.authorization, .proxyAuthorization, .cookie]))
    for route in routes {
        let handler = route.handler
        // Handlers get the URL's parameters decoded, never the raw context (see URLParameters).
        router.on(RouterPath(route.path), method: route.method) { request, context in
            try await handler(request, URLParameters(path: context.parameters, query: request.uri.query))
        }
    }
    return router
}

/// One route of the protocol: method, path template, handler.
///
/// The handler reads path and query parameters from ``URLParameters``, which percent-decodes each
/// exactly once; it is not given the request context, whose parameters are still encoded.
struct Route: Sendable {
    var method: HTTPRequest.Method
    var path: String
    var handler: @Sendable (Request, URLParameters) async throws -> Response

    init(_ method: HTTPRequest.Method, _ path: String,
         _ handler: @escaping @Sendable (Request, URLParameters) async throws -> Response) {
        self.method = method
        self.path = path
        self.handler = handler
    }
}

/// The methods each path template answers, for `405 Method Not Allowed` with an `Allow` header.
struct AllowedMethods: Sendable {
    private let templates: [(segments: [Substring], methods: [HTTPRequest.Method])]

    init(_ routes: [Route]) {
        var byPath: [String: [HTTPRequest.Method]] = [:]
        for route in routes { byPath[route.path, default: []].append(route.method) }
        templates = byPath.map { (path, methods) in (path.split(separator: "/"), methods) }
    }

    /// The methods `path` answers, or `nil` when no route has this path.
    func methods(for path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/")
        return templates.first { template in
            template.segments.count == segments.count
                && zip(template.segments, segments).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
        }?.methods
    }
}

/// Encodes `value` as a JSON response.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    return jsonResponse(bytes: try encoder.encode(value), status: status)
}

/// A response whose body is the JSON document `bytes`.
func jsonResponse(bytes: some Sequence<UInt8>, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
}
