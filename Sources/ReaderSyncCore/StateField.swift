/// A field of a user's per-article state that devices write.
public enum StateField: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    case read
    case bookmarked
    case progress

    public var description: String { rawValue }

    /// The rule that decides between two concurrent writes of this field (see ``MergeRules``).
    public var concurrentRule: ConflictRule { MergeRules.concurrentRule(for: self) }

    /// Checks that `value` is of this field's type and range.
    ///
    /// - Returns: `nil` when the value fits, else the reason it does not (for a `rejected` outcome).
    public func validationFailure(for value: FieldValue) -> String? {
        switch (self, value) {
        case (.read, .bool), (.bookmarked, .bool):
            return nil
        case (.progress, .number(let x)):
            return (x.isFinite && x >= 0 && x <= 1) ? nil : "progress must be a number from 0 to 1, got \(x)"
        case (.progress, _):
            return "progress must be a number from 0 to 1, got \(value)"
        case (_, _):
            return "\(rawValue) must be true or false, got \(value)"
        }
    }
}

/// The value of a state field as it travels in JSON: a boolean or a number.
///
/// `unsupported` keeps any other JSON value (a string, null, an object) so that a push can
/// reject that one mutation with a reason instead of failing as a whole.
public enum FieldValue: Sendable, Hashable, Codable, CustomStringConvertible {
    case bool(Bool)
    case number(Double)
    case unsupported(String)

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? container.decode(Double.self) {
            self = .number(d)
        } else if container.decodeNil() {
            self = .unsupported("null")
        } else if let s = try? container.decode(String.self) {
            self = .unsupported("the string \"\(s.prefix(40))\"")
        } else {
            self = .unsupported("an array or object")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .bool(let b): try container.encode(b)
        case .number(let d): try container.encode(d)
        case .unsupported: try container.encodeNil()
        }
    }

    public var description: String {
        switch self {
        case .bool(let b): return b ? "true" : "false"
        case .number(let d): return Self.format(d)
        case .unsupported(let s): return s
        }
    }

    /// A compact, exact text for a number (`0.42`, `1`), used in logs and explanations.
    static func format(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return String(d)
    }

    /// Parses the text that ``description`` produces for a bool or number.
    public init?(storedText text: String) {
        switch text {
        case "true": self = .bool(true)
        case "false": self = .bool(false)
        default:
            guard let d = Double(text) else { return nil }
            self = .number(d)
        }
    }
}
