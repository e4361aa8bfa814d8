import HTTPTypes
import Hummingbird
import Logging
import ReaderSyncCore
import ReaderSyncService

/// Turns every error into the protocol's `{"error":{"code","message"}}` body, and records metrics.
///
/// Errors a client can cause become 4xx; anything else is logged and becomes a 500 that leaks no internals.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    let logger: Logger
    /// Tells a known path asked with another method (`405` with `Allow`) from an unknown one (`404`).
    var allowedMethods: AllowedMethods?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as SyncError {
            response = try Self.response(error)
        } catch let error as RetryLater {
            var busy = try Self.response(error.error)
            busy.headers[.retryAfter] = String(error.seconds)
            response = busy
        } catch let error as BadActionToken {
            var refused = try Self.response(error.error)
            refused.headers[.readerBadToken] = "true"
            refused.headers[.googleBadToken] = "true"
            response = refused
        } catch let error as HTTPError where error.status == .notFound {
            if let methods = allowedMethods?.methods(for: request.uri.path), !methods.contains(request.method) {
                var notAllowed = try Self.response(SyncError(.methodNotAllowed, "\(request.uri.path) answers \(methods.map(\.rawValue).joined(separator: ", ")) only"))
                notAllowed.headers[.allow] = methods.map(\.rawValue).joined(separator: ", ")
                response = notAllowed
            } else {
                response = try Self.response(Self.translate(error))
            }
        } catch let error as HTTPError {
            response = try Self.response(Self.translate(error))
        } catch {
            logger.error("request failed", metadata: [
                "method": "\(request.method)", "path": "\(request.uri.path)", "error": "\(String(reflecting: error))",
            ])
            response = try Self.response(SyncError(.internalError, "the server failed to handle this request; it is logged"))
        }
        let route = context.endpointPath ?? "unmatched"
        metrics.request(route: route, method: request.method.rawValue, status: response.status.code,
                        duration: ContinuousClock.now - start)
        return response
    }

    static func status(for code: SyncError.Code) -> HTTPResponse.Status {
        switch code {
        case .unauthorized: return .unauthorized
        case .forbidden: return .forbidden
        case .notFound: return .notFound
        case .methodNotAllowed: return .methodNotAllowed
        case .resetRequired, .cursorExpired, .articleDeleted: return .gone
        case .payloadTooLarge: return .contentTooLarge
        case .alreadyExists: return .conflict
        case .unavailable: return .serviceUnavailable
        case .requestTimeout: return .requestTimeout
        case .internalError: return .internalServerError
        default: return .badRequest
        }
    }

    static func translate(_ error: HTTPError) -> SyncError {
        switch error.status {
        case .notFound: return SyncError(.notFound, "no such route; see /v1/openapi.json")
        case .contentTooLarge: return SyncError(.payloadTooLarge, "the request body is too large")
        case .methodNotAllowed: return SyncError(.methodNotAllowed, "this route does not take that method")
        case .unauthorized: return SyncError(.unauthorized, "missing or invalid token")
        default:
            if error.status.code < 500 {
                return SyncError(.badRequest, error.body ?? error.status.reasonPhrase)
            }
            return SyncError(.internalError, "the server failed to handle this request; it is logged")
        }
    }

    static func response(_ error: SyncError) throws -> Response {
        try jsonResponse(ErrorBody(error), status: status(for: error.code))
    }
}
