/// An error a sync request can end in, with a stable code that travels on the wire.
///
/// The server maps the code to an HTTP status; the client SDK decodes the same code
/// from the `{"error":{"code","message"}}` body.
public struct SyncError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, snake_case code.
    public struct Code: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let unauthorized = Code(rawValue: "unauthorized")
        public static let forbidden = Code(rawValue: "forbidden")
        public static let invalidRequest = Code(rawValue: "invalid_request")
        public static let invalidJSON = Code(rawValue: "invalid_json")
        public static let invalidCursor = Code(rawValue: "invalid_cursor")
        public static let resetRequired = Code(rawValue: "reset_required")
        public static let limitOutOfRange = Code(rawValue: "limit_out_of_range")
        public static let tooManyMutations = Code(rawValue: "too_many_mutations")
        public static let payloadTooLarge = Code(rawValue: "payload_too_large")
        public static let notFound = Code(rawValue: "not_found")
        public static let methodNotAllowed = Code(rawValue: "method_not_allowed")
        public static let alreadyExists = Code(rawValue: "already_exists")
        public static let internalError = Code(rawValue: "internal_error")
        /// Too many requests in progress: `503` with `Retry-After`; the client SDK waits and retries.
        public static let unavailable = Code(rawValue: "unavailable")
        /// The request body did not arrive within the server's request timeout (`408`).
        public static let requestTimeout = Code(rawValue: "request_timeout")
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
    }
    public var error: Detail

    public init(_ error: SyncError) {
        self.error = Detail(code: error.code.rawValue, message: error.message)
    }
}
