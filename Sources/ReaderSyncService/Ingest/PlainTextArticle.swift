import Foundation
import ReaderSyncCore

/// A scraped plain-text article: the title on the first line, then paragraphs separated by
/// blank lines, then the site's boilerplate, which is dropped.
///
/// Dropped: runs of image placeholders (`spot_imgspot_img`), the lines `popular`,
/// `Share this post:` and `HERE`, and everything from `More like this` on (teasers of other
/// articles).
///
/// The id is the file's name (``id(fileName:)``), not anything derived from the text: two stories
/// under the same headline (`Live: Election results` on Monday and on Tuesday) are two files and so
/// two articles, re-ingesting a file changes nothing, and an edited file (a correction) updates its
/// own article. A title slug as id merged the second story into the first, read state included.
package enum PlainTextArticle {
    /// Parses `text`, read from the file named `fileName`, into an article dated `date` in section `section`.
    ///
    /// ```swift
    /// let article = try PlainTextArticle.parse(text, fileName: "election-monday.txt", date: modified)
    /// article.id  // "election-monday.txt"
    /// ```
    ///
    /// - Parameter fileName: the file's name or path; its last component is the article's id.
    /// - Throws: ``SyncError`` `invalid_request` when there is no title or no body, or the file's
    ///   name cannot be an id.
    package static func parse(_ text: String, fileName: String, date: Date, section: String = "") throws -> ArticleContent {
        let id = try id(fileName: fileName)
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
        let stamp = Timestamp.format(Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down)))
        return ArticleContent(
            id: id, section: section, title: title, summary: summary(paragraphs[0]),
            body: paragraphs.joined(separator: "\n\n"), author: "", url: "",
            publishedAt: stamp, updatedAt: stamp)
    }

    /// The id of the article in the file at `path`: its last path component, exactly as spelled
    /// (`Live/election-monday.txt` → `election-monday.txt`).
    ///
    /// The name, unlike the title, is stable across corrections and differs between the files of
    /// one directory; files of the same name in different directories would share it, which
    /// `reader-sync ingest` refuses within one run.
    ///
    /// - Throws: ``SyncError`` `invalid_request` when the name is longer than an id may be or holds
    ///   a control character.
    package static func id(fileName path: String) throws -> String {
        let name = path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? ""
        guard !name.isEmpty else { throw SyncError(.invalidRequest, "the file has no name to make an id from") }
        guard ArticleLine.isValidId(name) else {
            throw SyncError(.invalidRequest,
                            "the file's name is its article's id, so it must be at most \(ArticleLine.maxIdLength) bytes with no control characters")
        }
        return name
    }

    private static let boilerplateLines: Set<String> = ["popular", "share this post:", "here", "more like this"]

    static func isBoilerplate(_ line: String) -> Bool {
        let lower = line.lowercased()
        if boilerplateLines.contains(lower) { return true }
        // Runs of image placeholders, possibly separated by spaces.
        let squeezed = lower.replacingOccurrences(of: " ", with: "")
        return !squeezed.isEmpty && squeezed.replacingOccurrences(of: "spot_img", with: "").isEmpty
    }

    /// The first paragraph, cut at a word boundary near 200 characters.
    static func summary(_ paragraph: String) -> String {
        guard paragraph.count > 220 else { return paragraph }
        let cut = paragraph.prefix(200)
        if let space = cut.lastIndex(of: " ") { return String(cut[..<space]) + "…" }
        return String(cut) + "…"
    }
}
