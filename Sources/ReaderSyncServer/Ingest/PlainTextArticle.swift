import Foundation
import ReaderSyncCore

/// A scraped plain-text article: the title on the first line, then paragraphs separated by
/// blank lines, then the site's boilerplate, which is dropped.
///
/// Dropped: runs of image placeholders (`spot_imgspot_img`), the lines `popular`,
/// `Share this post:` and `HERE`, and everything from `More like this` on (teasers of other
/// articles). The id is the title's slug, so re-ingesting the same text changes nothing.
package enum PlainTextArticle {
    /// Parses `text` into an article dated `date` in section `section`.
    ///
    /// - Throws: ``SyncError`` `invalid_request` when there is no title or no body.
    package static func parse(_ text: String, date: Date, section: String = "") throws -> ArticleContent {
        guard !text.contains("\u{0}") else {
            throw SyncError(.invalidRequest, "the text contains a NUL character; is it really a text file?")
        }
        var lines = text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard let titleIndex = lines.firstIndex(where: { !$0.isEmpty && !isBoilerplate($0) }) else {
            throw SyncError(.invalidRequest, "the text has no title line")
        }
        let title = lines[titleIndex]
        lines.removeSubrange(...titleIndex)
        if let end = lines.firstIndex(where: { $0.lowercased() == "more like this" }) {
            lines.removeSubrange(end...)
        }
        var paragraphs: [String] = []
        var current: [String] = []
        for line in lines {
            if line.isEmpty || isBoilerplate(line) {
                if !current.isEmpty { paragraphs.append(current.joined(separator: " ")) }
                current = []
            } else {
                current.append(line)
            }
        }
        if !current.isEmpty { paragraphs.append(current.joined(separator: " ")) }
        guard !paragraphs.isEmpty else { throw SyncError(.invalidRequest, "the text has a title but no paragraphs") }
        let id = slug(title)
        guard !id.isEmpty else { throw SyncError(.invalidRequest, "the title has no letters or digits to make an id from") }
        let stamp = Timestamp.format(Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down)))
        return ArticleContent(
            id: id, section: section, title: title, summary: summary(paragraphs[0]),
            body: paragraphs.joined(separator: "\n\n"), author: "", url: "",
            publishedAt: stamp, updatedAt: stamp)
    }

    private static let boilerplateLines: Set<String> = ["popular", "share this post:", "here", "more like this"]

    static func isBoilerplate(_ line: String) -> Bool {
        let lower = line.lowercased()
        if boilerplateLines.contains(lower) { return true }
        // Runs of image placeholders, possibly separated by spaces.
        let squeezed = lower.replacingOccurrences(of: " ", with: "")
        return !squeezed.isEmpty && squeezed.replacingOccurrences(of: "spot_img", with: "").isEmpty
    }

    /// `"Kyiv's Bridges: 3 Rebuilt"` → `"kyiv-s-bridges-3-rebuilt"`.
    package static func slug(_ title: String) -> String {
        var out = ""
        var pendingDash = false
        for scalar in title.lowercased().unicodeScalars {
            if CharacterSet.alphanumerics.contains(scalar) {
                if pendingDash && !out.isEmpty { out += "-" }
                pendingDash = false
                out.unicodeScalars.append(scalar)
            } else {
                pendingDash = true
            }
        }
        while out.utf8.count > ArticleLine.maxIdLength { out.removeLast() }
        return out
    }

    /// The first paragraph, cut at a word boundary near 200 characters.
    static func summary(_ paragraph: String) -> String {
        guard paragraph.count > 220 else { return paragraph }
        let cut = paragraph.prefix(200)
        if let space = cut.lastIndex(of: " ") { return String(cut[..<space]) + "…" }
        return String(cut) + "…"
    }
}
