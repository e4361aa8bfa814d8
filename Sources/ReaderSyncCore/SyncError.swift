/// An error a sync request can end in, with a stable code that travels on the wire.
///
/// The server maps the code to an HTTP status; the client SDK decodes the same code
/// from the `{"error":{"code","message"}}` body.
public struct SyncError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, snake_case code.
    ///
    /// The codes the server sends are the cases of a private enum, listed by ``all``: a test holds
    /// that list equal to the code enum of `Schema/openapi.json`, so a code cannot be added without
    /// being documented. `init(rawValue:)` stays open so a client can decode a code it does not know.
    public struct Code: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Every code the server can put in an error body. Add a code here, never by calling
        // `init(rawValue:)` at a throw site (a test looks for such calls in the server's sources).
        private enum Known: String, CaseIterable {
            case unauthorized, forbidden
            case invalidRequest = "invalid_request", invalidJSON = "invalid_json", invalidCursor = "invalid_cursor"
            case badRequest = "bad_request"
            case resetRequired = "reset_required", cursorExpired = "cursor_expired", limitOutOfRange = "limit_out_of_range"
            case tooManyMutations = "too_many_mutations", payloadTooLarge = "payload_too_large"
            case notFound = "not_found", articleDeleted = "article_deleted", methodNotAllowed = "method_not_allowed", alreadyExists = "already_exists"
            case requestTimeout = "request_timeout", unavailable
            case internalError = "internal_error"
        }

        private init(_ known: Known) { self.rawValue = known.rawValue }

        /// Every code the server can send, in a stable order.
        public static let all: [Code] = Known.allCases.map(Code.init)

        public static let unauthorized = Code(.unauthorized)
        public static let forbidden = Code(.forbidden)
        public static let invalidRequest = Code(.invalidRequest)
        public static let invalidJSON = Code(.invalidJSON)
        public static let invalidCursor = Code(.invalidCursor)
        /// A request Hummingbird refused before a route saw it, for a reason no other code names (`400`).
        public static let badRequest = Code(.badRequest)
        public static let resetRequired = Code(.resetRequired)
        /// The cursor is older than the server's tombstone horizon (`410`): compaction removed
        /// deletions it would have to serve. The database lost nothing (same epoch): the device
        /// keeps its pending changes, drops its articles and pulls from the beginning.
        public static let cursorExpired = Code(.cursorExpired)
        public static let limitOutOfRange = Code(.limitOutOfRange)
        public static let tooManyMutations = Code(.tooManyMutations)
        public static let payloadTooLarge = Code(.payloadTooLarge)
        public static let notFound = Code(.notFound)
        /// The article was retracted by the publisher (`410`, `GET /v1/articles/{id}`).
        public static let articleDeleted = Code(.articleDeleted)
        public static let methodNotAllowed = Code(.methodNotAllowed)
        public static let alreadyExists = Code(.alreadyExists)
        public static let internalError = Code(.internalError)
        /// Too many requests in progress: `503` with `Retry-After`; the client SDK waits and retries.
        public static let unavailable = Code(.unavailable)
        /// The request body did not arrive within the server's request timeout (`408`).
        public static let requestTimeout = Code(.requestTimeout)
    }

    public var code: Code
    /// A sentence for humans; never contains tokens or stored content.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// The JSON body of every error response: `{"error":{"code":"…","message":"…"}}`.
public struct ErrorBody: Sendable, Hashable, Codable {
    public struct Detail: Sendable, Hashable, Codable {
        public var code: String
        public var message: String

        public init(_ error: SyncError) {
            self.code = error.code.rawValue
            self.message = error.message
        }
    }
    public var error: Detail

    public init(_ error: SyncError) {
        self.error = Detail(error)
    }
}
