import ReaderSyncCore
import ReaderSyncService

/// Writes the sync responses, pull pages and push results, as JSON straight into bytes: the
/// document `JSONEncoder` would write (same keys, slashes unescaped, absent values omitted),
/// without its per-value boxing, which was most of the time a page took to serve and a fifth of a
/// push's (docs/PERFORMANCE.md). A test decodes what it writes for hostile values and compares it
/// with `JSONEncoder`'s output.
package struct ResponseEncoder {
    private var bytes: [UInt8] = []

    package static func encode(_ response: PushResponse) -> [UInt8] {
        var encoder = ResponseEncoder()
        encoder.bytes.reserveCapacity(128 + response.results.count * 64 + response.states.count * 320)
        encoder.push(response)
        return encoder.bytes
    }

    /// One article as `GET /v1/articles/{id}` answers it: the object a pull's `articles` holds.
    package static func encode(_ article: ArticleDTO) -> [UInt8] {
        var encoder = ResponseEncoder()
        encoder.bytes.reserveCapacity(article.body.utf8.count + article.summary.utf8.count + 512)
        encoder.article(article)
        return encoder.bytes
    }

    package static func encode(_ page: PullResponse) -> [UInt8] {
        var encoder = ResponseEncoder()
        encoder.bytes.reserveCapacity(page.articles.reduce(256) { $0 + $1.body.utf8.count + $1.summary.utf8.count + 512 }
            + page.states.count * 320 + (page.deletedArticleIds.count + page.expiredArticleIds.count) * 40)
        encoder.page(page)
        return encoder.bytes
    }

    private mutating func page(_ page: PullResponse) {
        raw("{\"articles\":")
        array(page.articles) { $0.article($1) }
        raw(",\"deletedArticleIds\":")
        array(page.deletedArticleIds) { $0.string($1) }
        raw(",\"expiredArticleIds\":")
        array(page.expiredArticleIds) { $0.string($1) }
        raw(",\"states\":")
        array(page.states) { $0.state($1) }
        raw(",\"cursor\":")
        string(page.cursor)
        raw(",\"hasMore\":")
        raw(page.hasMore ? "true" : "false")
        raw(",\"epoch\":")
        string(page.epoch)
        if let complete = page.articlesComplete { raw(complete ? ",\"articlesComplete\":true" : ",\"articlesComplete\":false") }
        byte(UInt8(ascii: "}"))
    }

    private mutating func push(_ response: PushResponse) {
        raw("{\"lastMutationId\":")
        integer(response.lastMutationId)
        raw(",\"results\":")
        array(response.results) { encoder, result in
            encoder.raw("{\"id\":"); encoder.integer(result.id)
            encoder.raw(",\"outcome\":"); encoder.string(result.outcome.rawValue)
            if let reason = result.reason { encoder.raw(",\"reason\":"); encoder.string(reason) }
            if let conflictId = result.conflictId { encoder.raw(",\"conflictId\":"); encoder.integer(conflictId) }
            if let seq = result.seq { encoder.raw(",\"seq\":"); encoder.integer(seq) }
            encoder.byte(UInt8(ascii: "}"))
        }
        raw(",\"states\":")
        array(response.states) { $0.state($1) }
        raw(",\"epoch\":")
        string(response.epoch)
        byte(UInt8(ascii: "}"))
    }

    /// `[element,element,…]`, each written by `element`.
    private mutating func array<Element>(_ elements: [Element], _ element: (inout Self, Element) -> Void) {
        byte(UInt8(ascii: "["))
        for (index, value) in elements.enumerated() {
            if index > 0 { byte(UInt8(ascii: ",")) }
            element(&self, value)
        }
        byte(UInt8(ascii: "]"))
    }

    private mutating func article(_ a: ArticleDTO) {
        raw("{\"id\":"); string(a.id)
        raw(",\"section\":"); string(a.section)
        raw(",\"title\":"); string(a.title)
        raw(",\"summary\":"); string(a.summary)
        raw(",\"body\":"); string(a.body)
        raw(",\"author\":"); string(a.author)
        raw(",\"url\":"); string(a.url)
        raw(",\"publishedAt\":"); string(a.publishedAt)
        raw(",\"updatedAt\":"); string(a.updatedAt)
        raw(",\"version\":"); integer(a.version)
        byte(UInt8(ascii: "}"))
    }

    private mutating func state(_ s: StateDTO) {
        raw("{\"articleId\":"); string(s.articleId)
        raw(",\"read\":"); raw(s.read ? "true" : "false")
        raw(",\"bookmarked\":"); raw(s.bookmarked ? "true" : "false")
        raw(",\"progress\":"); raw(s.progress.description)
        raw(",\"version\":"); integer(s.version)
        raw(",\"hlc\":"); hlc(s.hlc)
        raw(",\"writers\":{")
        var first = true
        writer("read", s.writers.read, first: &first)
        writer("bookmarked", s.writers.bookmarked, first: &first)
        writer("progress", s.writers.progress, first: &first)
        raw("}}")
    }

    /// `"name":{"deviceId":…,"hlc":…}`, after a comma unless it is the `first` written.
    private mutating func writer(_ name: StaticString, _ writer: FieldWriter?, first: inout Bool) {
        guard let writer else { return }
        if !first { byte(UInt8(ascii: ",")) }
        first = false
        byte(UInt8(ascii: "\"")); raw(name); raw("\":{\"deviceId\":")
        string(writer.deviceId)
        raw(",\"hlc\":"); hlc(writer.hlc)
        byte(UInt8(ascii: "}"))
    }

    private mutating func hlc(_ h: HLC) {
        raw("{\"wall\":"); integer(h.wall)
        raw(",\"counter\":"); integer(h.counter)
        byte(UInt8(ascii: "}"))
    }

    private mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func raw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    private mutating func byte(_ value: UInt8) {
        bytes.append(value)
    }

    /// Decimal digits written straight into the buffer (`String(value)` allocated a string per
    /// number: eight a state).
    private mutating func integer(_ value: Int64) {
        if value < 0 { byte(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        // UInt64.max has 20 digits.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                count += 1
                buffer[24 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: buffer[(24 - count)...])
        }
    }

    /// A JSON string: `"` and `\` escaped, control characters as short escapes or `\u00XX`;
    /// everything else, `/` and non-ASCII included, copied as UTF-8 in runs.
    private mutating func string(_ text: String) {
        byte(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let unit = utf8[index]
                guard unit < 0x20 || unit == UInt8(ascii: "\"") || unit == UInt8(ascii: "\\") else { continue }
                if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index])) }
                runStart = index + 1
                switch unit {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                case 0x08: raw("\\b")
                case 0x0C: raw("\\f")
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    raw("\\u00")
                    byte(hex[Int(unit >> 4)])
                    byte(hex[Int(unit & 0x0F)])
                }
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        byte(UInt8(ascii: "\""))
    }
}
