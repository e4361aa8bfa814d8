import Foundation
import Hummingbird
import Logging
import NIOCore
import ReaderSyncCore
import ReaderSyncSchema

/// Where and how the HTTP server listens.
package struct ServerConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 8080
    /// When set, `GET /metrics` needs `Authorization: Bearer <metricsToken>`.
    package var metricsToken: String?
    /// zlib level of gzip responses, 1 (fastest) … 9 (smallest).
    package var gzipLevel: Int32 = 4
    /// Requests handled at once; more get `503` with `Retry-After` (health and metrics are exempt).
    package var maxConcurrentRequests = 128
    /// How long a request body may take to arrive before `408`.
    package var requestTimeout: Duration = .seconds(30)
    /// A connection with no complete request (head or body part) for this long is closed; this also
    /// closes one that sends its headers byte by byte.
    package var idleTimeout: Duration = .seconds(30)

    package init(host: String = "127.0.0.1", port: Int = 8080, metricsToken: String? = nil, gzipLevel: Int32 = 4) {
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
    let idle = configuration.idleTimeout.components
    return Application(
        router: router,
        server: .http1(configuration: .init(idleTimeout: .seconds(idle.seconds) + .nanoseconds(idle.attoseconds / 1_000_000_000))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "reader-sync"),
        onServerRunning: onServerRunning,
        logger: logger
    )
}

/// The protocol v1 routes. See docs/PROTOCOL.md and Schema/openapi.json.
package func buildRouter(
    service: SyncService,
    configuration: ServerConfiguration = ServerConfiguration(),
    metrics: ServerMetrics = ServerMetrics(),
    logger: Logger
) -> Router<BasicRequestContext> {
    let router = Router()
    // Outermost: compress whatever the inner middleware and routes answered, errors included.
    router.add(middleware: ResponseCompressionMiddleware(level: min(max(configuration.gzipLevel, 1), 9), minimumBytes: 1024))
    router.add(middleware: APIErrorMiddleware(metrics: metrics, logger: logger))
    router.add(middleware: ConcurrencyLimitMiddleware(limit: configuration.maxConcurrentRequests,
                                                      exempt: [SyncRoute.health, "/metrics"]))
    // An access log at debug level; credentials are redacted (a test checks no token reaches the log).
    router.add(middleware: LogRequestsMiddleware(.debug, includeHeaders: .all(),
                                                 redactHeaders: [.authorization, .proxyAuthorization, .cookie]))
    let api = APIHandlers(service: service, metrics: metrics, metricsToken: configuration.metricsToken,
                          requestTimeout: configuration.requestTimeout)

    router.get(RouterPath(SyncRoute.health)) { _, _ in try jsonResponse(HealthResponse()) }
    router.get(RouterPath(SyncRoute.pullPath), use: api.pull)
    router.post(RouterPath(SyncRoute.push), use: api.push)
    router.get("/v1/conflicts", use: api.ownConflicts)
    router.get("/v1/admin/conflicts", use: api.adminConflicts)
    router.post("/v1/admin/users", use: api.createUser)
    router.post("/v1/admin/articles", use: api.ingest)
    router.delete("/v1/admin/articles/{id}", use: api.deleteArticle)
    router.get("/v1/openapi.json") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: ReaderSyncSchema.openAPIDocument)))
    }
    router.get("/metrics", use: api.metrics)
    return router
}

/// Encodes `value` as a JSON response.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    let data = try encoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
