import Foundation
import ReaderSyncCore

/// Splits JSON Lines into lines (without the newline, `\r\n` tolerated), keeping blank lines
/// so line numbers match what an editor shows.
struct JSONLinesReader<Bytes: BidirectionalCollection<UInt8>>: Sequence {
    let bytes: Bytes

    init(_ bytes: Bytes) { self.bytes = bytes }

    func makeIterator() -> AnyIterator<Bytes.SubSequence> {
        var start = bytes.startIndex
        var done = bytes.isEmpty
        return AnyIterator {
            guard !done else { return nil }
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
            var line = bytes[start..<end]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if end == bytes.endIndex {
                done = true
            } else {
                start = bytes.index(after: end)
                if start == bytes.endIndex { done = true }
            }
            return line
        }
    }
}

/// What was wrong with one ingest line.
struct LineProblem: Error {
    var message: String
}

/// One JSON Lines ingest line: an article, or `{"id": "…", "deleted": true}`.
enum ArticleLine {
    private struct Fields: Decodable {
        var id: String?
        var deleted: Bool?
        var section: String?
        var title: String?
        var summary: String?
        var body: String?
        var author: String?
        var url: String?
        var publishedAt: String?
        var updatedAt: String?
    }

    /// Longest article id accepted.
    static let maxIdLength = 200

    /// Whether `id` may name an article: at most ``maxIdLength`` bytes, no control characters.
    /// The one rule for ingested ids, from JSON Lines and from `.txt` file names alike.
    static func isValidId(_ id: String) -> Bool {
        id.utf8.count <= maxIdLength && !id.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    static func parse(_ line: some Collection<UInt8>, decoder: JSONDecoder = JSONDecoder()) -> Result<IngestItem, LineProblem> {
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) {
            return .failure(LineProblem(message: "empty line"))
        }
        let fields: Fields
        do {
            fields = try decoder.decode(Fields.self, from: Data(line))
        } catch let error as DecodingError {
            return .failure(LineProblem(message: describe(error)))
        } catch {
            return .failure(LineProblem(message: "not valid JSON"))
        }
        guard let id = fields.id, !id.allSatisfy(\.isWhitespace) else {
            return .failure(LineProblem(message: "missing id"))
        }
        guard isValidId(id) else {
            return .failure(LineProblem(message: "id must be at most \(maxIdLength) bytes with no control characters"))
        }
        if fields.deleted == true { return .success(.delete(id: id)) }
        guard let title = fields.title, !title.allSatisfy(\.isWhitespace) else {
            return .failure(LineProblem(message: "missing title"))
        }
        guard let publishedText = fields.publishedAt else {
            return .failure(LineProblem(message: "missing publishedAt"))
        }
        let publishedAt: String
        var updatedAt: String
        do {
            publishedAt = try canonicalDate(publishedText, field: "publishedAt")
            updatedAt = publishedAt
            if let updatedText = fields.updatedAt { updatedAt = try canonicalDate(updatedText, field: "updatedAt") }
        } catch {
            return .failure(error)
        }
        return .success(.upsert(ArticleContent(
            id: id, section: fields.section ?? "", title: title, summary: fields.summary ?? "",
            body: fields.body ?? "", author: fields.author ?? "", url: fields.url ?? "",
            publishedAt: publishedAt, updatedAt: updatedAt)))
    }

    /// `text` as a canonical date, parsed strictly (RFC 3339, see ``Timestamp/date(parsing:)``):
    /// an impossible date such as `2026-02-30` is refused with the reason, never rolled over.
    private static func canonicalDate(_ text: String, field: String) throws(LineProblem) -> String {
        do {
            return try Timestamp.canonical(parsing: text)
        } catch {
            // Quoted with escapes, so a control character in the input cannot reach a terminal.
            let quoted = (text.count > 40 ? String(text.prefix(40)) + "…" : text).debugDescription
            throw LineProblem(message: "\(field) \(quoted) is not a valid date-time: \(error.message)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context):
            let at = path(context)
            if at.isEmpty { return "expected a JSON object" }
            return "\(at): expected \(type == Bool.self ? "true or false" : "a string")"
        case .valueNotFound(_, let context):
            return "\(path(context)): must not be null"
        case .keyNotFound(let key, _):
            return "missing \(key.stringValue)"
        case .dataCorrupted:
            return "not valid JSON"
        @unknown default:
            return "not valid JSON"
        }
    }
}
