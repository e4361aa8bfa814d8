import Foundation
import GRDB
import ReaderSyncCore
import ReaderSyncSQLite

/// What to look for in the articles on the device (``ReaderStore/search(_:limit:offset:)-(SearchQuery,_,_)``).
public enum SearchQuery: Sendable, Hashable {
    /// What a reader types: every space-separated word must match, each as the start of a word
    /// ("eco" finds "economy"), case and diacritics folded ("cafe" finds "Café"); a word with
    /// punctuation inside ("don't", "O'Brien", "3.5") matches its parts side by side. No input is
    /// an error; one without letters or digits finds nothing. Scripts written without spaces
    /// (Chinese, Japanese) match from the start of a run of characters only.
    case words(String)
    /// SQLite FTS5 query syntax, for apps that offer it: `AND`, `OR`, `NOT`, `"a phrase"`,
    /// `prefix*`, `NEAR(a b, 5)`, `title: word` (columns `title`, `summary`, `body`). See
    /// https://www.sqlite.org/fts5.html#full_text_query_syntax. A malformed expression (an empty
    /// one, or one starting with `*`, which FTS5 reads as an internal command) throws
    /// `invalid_argument`; it is never SQL.
    case expression(String)
}

/// One article found by a search, with the passage that matched.
public struct SearchHit: Sendable, Hashable {
    /// The article, with the reader's state as shown.
    public var article: ReaderArticle
    /// The best passage of the title, summary or body: up to 16 words around the matches, with
    /// `…` where it was cut (and nothing after a NUL character, which FTS5 stops at).
    public var snippet: String
    /// The matched words in ``snippet``, in order, for the app to mark.
    public var matches: [Range<String.Index>]
}

extension ReaderStore {
    /// The articles on the device that match `query`, best first (BM25 weighted title ×10,
    /// summary ×4, body ×1) among the matches first stored on this device most recently
    /// (``Options/searchRankingLimit``, 2,000 by default; a correction keeps its article's
    /// place), from the store's full-text index
    /// (SQLite FTS5, kept in step with every article stored, updated, evicted or dropped).
    ///
    /// - Parameters:
    ///   - query: the reader's words (``SearchQuery/words(_:)``) or an FTS5 expression.
    ///   - limit: page size, 1…1000; default 20.
    ///   - offset: how many to skip, for the next pages; default 0.
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for a malformed expression or a page out
    ///   of range; `store_corrupt` or `store_failed` when the store cannot be read.
    public func search(_ query: SearchQuery, limit: Int = 20, offset: Int = 0) throws -> [SearchHit] {
        try read("search", try searchFetch(query, limit: limit, offset: offset))
    }

    /// ``search(_:limit:offset:)-(SearchQuery,_,_)``, observed (``StoreObservation``): the hits
    /// again after each change of the articles or of their shown states, for a results list
    /// that stays true while a sync lands.
    ///
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for a page out of range or an expression
    ///   starting with `*`; iteration throws it for an otherwise malformed expression.
    public func observeSearch(_ query: SearchQuery, limit: Int = 20, offset: Int = 0) throws -> StoreObservation<[SearchHit]> {
        StoreObservation(self, fetch: try searchFetch(query, limit: limit, offset: offset))
    }

    /// The read of a search, for a read or an observation.
    ///
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for a page out of range or an expression
    ///   starting with `*` (the read throws it for other malformed expressions).
    func searchFetch(_ query: SearchQuery, limit: Int, offset: Int) throws -> @Sendable (Database) throws -> [SearchHit] {
        guard (1...1000).contains(limit), offset >= 0 else {
            throw ReaderSyncError(.invalidArgument, "limit must be from 1 to 1000 and offset not negative")
        }
        let expression: String
        switch query {
        case .words(let text):
            let words = Self.words(of: text)
            guard !words.isEmpty else { return { _ in [] } }
            // Each word a quoted string (never an operator; FTS5 splits it into adjacent tokens),
            // matched as a prefix.
            expression = words.map { "\"\($0.replacingOccurrences(of: "\"", with: "\"\""))\"*" }.joined(separator: " ")
        case .expression(let text):
            if text.first == "*" {
                throw ReaderSyncError(.invalidArgument, "the search expression \(text.prefix(80).debugDescription) is not valid: it starts with *")
            }
            expression = text
        }
        let rankingLimit = options.searchRankingLimit
        return { db in
            if case .expression(let text) = query {
                // Parsed alone first, so that only the expression's own faults are the caller's;
                // the index read first without it, so that a damaged store is not one of them.
                _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM articleSearch WHERE rowid = 0")
                do {
                    _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM articleSearch WHERE articleSearch MATCH ? AND rowid = 0",
                                         arguments: [expression])
                } catch let error as DatabaseError where error.resultCode == .SQLITE_ERROR {
                    throw ReaderSyncError(.invalidArgument, "the search expression \(text.prefix(80).debugDescription) is not valid: "
                                          + (error.message ?? "syntax error"))
                }
            }
            // The rowid of the oldest match ranked: rowids grow as articles first arrive, and
            // FTS5 walks its matches by rowid, newest first, without scoring them.
            let floor = try Int64.fetchOne(db, sql: """
                SELECT rowid FROM articleSearch WHERE articleSearch MATCH ? ORDER BY rowid DESC LIMIT 1 OFFSET ?
                """, arguments: [expression, rankingLimit - 1]) ?? 0
            return try Row.fetchAll(db, sql: """
                SELECT \(Self.articleColumns), snippet(articleSearch, -1, ?, ?, '…', 16)
                FROM articleSearch
                JOIN article ON article.rowid = articleSearch.rowid
                LEFT JOIN articleState ON articleState.articleId = article.id
                WHERE articleSearch MATCH ? AND articleSearch.rowid >= ?
                ORDER BY articleSearch.rank LIMIT ? OFFSET ?
                """, arguments: [Self.matchStart, Self.matchEnd, expression, floor, limit, offset]).map { row in
                let (snippet, matches) = Self.marked(try row.decodeExactText(13))
                return SearchHit(article: try Self.decodeArticle(row), snippet: snippet, matches: matches)
            }
        }
    }

    /// Searches the reader's words (``SearchQuery/words(_:)``).
    ///
    /// - Throws: as ``search(_:limit:offset:)-(SearchQuery,_,_)``.
    public func search(_ text: String, limit: Int = 20, offset: Int = 0) throws -> [SearchHit] {
        try search(.words(text), limit: limit, offset: offset)
    }

    /// The space-separated words of `text` that hold a letter or a digit.
    package static func words(of text: String) -> [String] {
        text.split(whereSeparator: \.isWhitespace).map(String.init).filter { $0.contains { $0.isLetter || $0.isNumber } }
    }

    /// Private-use characters that mark a match in a snippet; never in an article's text as
    /// shown (any there are dropped from the snippet).
    static let matchStart = "\u{E000}"
    static let matchEnd = "\u{E001}"

    /// The snippet without its marks, and where the marks were, widened to whole characters.
    ///
    /// Read scalar by scalar: FTS5 puts a mark between scalars, and one before a combining mark
    /// (a Hindi vowel sign, an emoji's keycap) would join it into one Swift `Character`.
    static func marked(_ text: String) -> (String, [Range<String.Index>]) {
        let (start, end) = (matchStart.unicodeScalars.first!, matchEnd.unicodeScalars.first!)
        var scalars = String.UnicodeScalarView()
        var open: Int?
        var ranges: [(Int, Int)] = []
        for scalar in text.unicodeScalars {
            switch scalar {
            case start: open = scalars.count
            case end: if let from = open { ranges.append((from, scalars.count)); open = nil }
            default: scalars.append(scalar)
            }
        }
        let plain = String(scalars)
        // The scalar offset where each character starts, and the end.
        var boundaries: [(offset: Int, index: String.Index)] = []
        var offset = 0
        for index in plain.indices {
            boundaries.append((offset, index))
            offset += plain[index].unicodeScalars.count
        }
        boundaries.append((offset, plain.endIndex))
        func down(_ o: Int) -> String.Index { boundaries.last { $0.offset <= o }?.index ?? plain.startIndex }
        func up(_ o: Int) -> String.Index { boundaries.first { $0.offset >= o }?.index ?? plain.endIndex }
        let matches = ranges.filter { $0.0 < $0.1 }.map { down($0.0)..<up($0.1) }
        return (plain, matches)
    }
}
