import Foundation
import ReaderSyncSchema

/// A JSON value, decoded without Foundation's NSNumber ambiguity between booleans and numbers.
enum JSONValue: Decodable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    static func parse(_ data: Data) throws -> JSONValue { try JSONDecoder().decode(JSONValue.self, from: data) }

    subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    var string: String? { if case .string(let s) = self { s } else { nil } }
    var number: Double? { if case .number(let d) = self { d } else { nil } }
    var object: [String: JSONValue]? { if case .object(let o) = self { o } else { nil } }
    var array: [JSONValue]? { if case .array(let a) = self { a } else { nil } }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .number(let d): "\(d)"
        case .string(let s): "\"\(s)\""
        case .array(let a): "[\(a.count) items]"
        case .object(let o): "{\(o.keys.sorted().joined(separator: ","))}"
        }
    }
}

/// Checks JSON values against the schemas of Schema/openapi.json, so tests keep the document true.
///
/// Supports what the document uses: $ref, type, properties, required, additionalProperties: false,
/// items, enum, const, minimum, maximum, allOf.
struct OpenAPIValidator {
    let document: JSONValue

    init() throws {
        document = try JSONValue.parse(Data(ReaderSyncSchema.openAPIDocument.utf8))
    }

    var paths: [String: JSONValue] { document["paths"]?.object ?? [:] }

    /// The response schema of `method` `path` for `status`, if the document has one.
    func responseSchema(path: String, method: String, status: Int) -> JSONValue? {
        response(path: path, method: method, status: status)?["content"]?["application/json"]?["schema"]
    }

    /// The documented response, following a `$ref` into `components/responses`.
    func response(path: String, method: String, status: Int) -> JSONValue? {
        guard let response = paths[path]?[method.lowercased()]?["responses"]?[String(status)] else { return nil }
        if let ref = response["$ref"]?.string {
            return document["components"]?["responses"]?[String(ref.split(separator: "/").last ?? "")]
        }
        return response
    }

    /// Whether the document lists `status` for `method` `path`.
    func documents(path: String, method: String, status: Int) -> Bool {
        paths[path]?[method.lowercased()]?["responses"]?[String(status)] != nil
    }

    /// Problems found validating `value` against `schema` (empty when it conforms).
    func validate(_ value: JSONValue, against schema: JSONValue, at path: String = "$") -> [String] {
        if let ref = schema["$ref"]?.string {
            let name = String(ref.split(separator: "/").last ?? "")
            guard let target = document["components"]?["schemas"]?[name] else { return ["\(path): unknown $ref \(ref)"] }
            return validate(value, against: target, at: path)
        }
        var problems: [String] = []
        for sub in schema["allOf"]?.array ?? [] { problems += validate(value, against: sub, at: path) }
        if let type = schema["type"] {
            let types = type.array?.compactMap(\.string) ?? [type.string ?? ""]
            if !types.contains(where: { Self.matches(value, type: $0) }) {
                return ["\(path): expected \(types.joined(separator: " or ")), got \(value)"]
            }
        }
        if let options = schema["enum"]?.array, !options.contains(value) {
            problems.append("\(path): \(value) is not one of \(options)")
        }
        if let constant = schema["const"], constant != value {
            problems.append("\(path): expected \(constant), got \(value)")
        }
        if let minimum = schema["minimum"]?.number, let n = value.number, n < minimum {
            problems.append("\(path): \(n) below minimum \(minimum)")
        }
        if let maximum = schema["maximum"]?.number, let n = value.number, n > maximum {
            problems.append("\(path): \(n) above maximum \(maximum)")
        }
        if let object = value.object {
            let properties = schema["properties"]?.object ?? [:]
            for key in schema["required"]?.array?.compactMap(\.string) ?? [] where object[key] == nil {
                problems.append("\(path): missing required \(key)")
            }
            for (key, item) in object {
                if let sub = properties[key] {
                    problems += validate(item, against: sub, at: "\(path).\(key)")
                } else if schema["additionalProperties"] == .bool(false) {
                    problems.append("\(path): undocumented property \(key)")
                }
            }
        }
        if let array = value.array, let items = schema["items"] {
            for (i, item) in array.enumerated() { problems += validate(item, against: items, at: "\(path)[\(i)]") }
        }
        return problems
    }

    static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("object", .object), ("array", .array), ("string", .string), ("boolean", .bool), ("null", .null): return true
        case ("number", .number): return true
        case ("integer", .number(let d)): return d == d.rounded()
        default: return false
        }
    }
}
