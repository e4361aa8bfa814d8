import Foundation
import GRDB
import ReaderSyncCore

extension ReaderStore {
    /// The most sections a device may follow (the server's limit on one pull).
    public static let maxFollowedSections = 100

    /// Follows only these sections (`nil`: every section, the default): pulls bring the articles
    /// of these sections only, and the articles of others leave the device now and after each
    /// sync, except bookmarked ones and those with a pending change. The reader's states of every article
    /// keep syncing. The next ``SyncEngine/sync()`` first backfills the sections added (their
    /// newest articles within the window), then pulls on from the device's cursor
    /// (docs/CLIENT.md, "Sections").
    ///
    /// The server compares section names by their exact bytes; on the device they are a
    /// `Set<String>`, so two spellings Swift holds equal (canonically equivalent Unicode) are one.
    ///
    /// - Returns: how many articles were evicted (also any outside the window).
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for an empty set (follow every section
    ///   with `nil`) or more than ``maxFollowedSections``; `store_corrupt`, `store_full` or
    ///   `store_failed` when the store cannot be written.
    @discardableResult
    public func follow(sections: Set<String>?) throws -> Int {
        if let sections {
            guard !sections.isEmpty else {
                throw ReaderSyncError(.invalidArgument, "follow at least one section, or every section with nil")
            }
            guard sections.count <= Self.maxFollowedSections else {
                throw ReaderSyncError(.invalidArgument, "a device follows at most \(Self.maxFollowedSections) sections, got \(sections.count)")
            }
        }
        let window = options.window
        return try write("change the followed sections") { db in
            // The sections whose articles the device still has in full: a section dropped now
            // and followed again later is backfilled then, its articles gone. With a count
            // window, none: dropping a section makes room that only a backfill of what stays
            // refills, and a new section competes with the others for the window.
            let row = try Row.fetchOne(db, sql: "SELECT followedSections, pulledSections FROM syncMeta WHERE id = 1")
            let (before, pulled) = (try Self.decodeSections(row?[0]), try Self.decodeSections(row?[1]))
            let kept: Set<String>? = switch (pulled, sections) {
            case _ where window.newest != nil && before != sections: []
            case (nil, _): sections
            case (let pulled?, nil): pulled
            case (let pulled?, let sections?): pulled.intersection(sections)
            }
            try db.execute(sql: "UPDATE syncMeta SET followedSections = ?, pulledSections = ? WHERE id = 1",
                           arguments: [Self.encodeSections(sections), Self.encodeSections(kept)])
            return try evict(db)
        }
    }

    /// The sections this device follows (``follow(sections:)``); `nil` for every section.
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func followedSections() throws -> Set<String>? {
        try read("read the followed sections") { db in try Self.followedSections(db) }
    }

    static func followedSections(_ db: Database) throws -> Set<String>? {
        try decodeSections(String.fetchOne(db, sql: "SELECT followedSections FROM syncMeta WHERE id = 1"))
    }

    /// What the device follows, and the sections whose articles (within the window) it has in
    /// full: they differ after ``follow(sections:)`` until the sync that backfills the others.
    package func sectionsToBackfill() throws -> (followed: Set<String>?, pulled: Set<String>?) {
        try read("read the sections to backfill") { db in
            let row = try Row.fetchOne(db, sql: "SELECT followedSections, pulledSections FROM syncMeta WHERE id = 1")
            return (try Self.decodeSections(row?[0]), try Self.decodeSections(row?[1]))
        }
    }

    /// Records that the device has the articles of `sections` in full, unless the reader chose
    /// other sections meanwhile (``follow(sections:)`` during the backfill): then the next sync
    /// backfills again.
    package func markBackfilled(sections: Set<String>?) throws {
        try write("record the backfilled sections") { db in
            let encoded = Self.encodeSections(sections)
            try db.execute(sql: "UPDATE syncMeta SET pulledSections = ? WHERE id = 1 AND followedSections IS ?",
                           arguments: [encoded, encoded])
        }
    }

    /// Stores the articles of a section backfill (a first sync's articles, without its cursor),
    /// never over a version the device has already or a newer one. The device's cursor stays: it
    /// brings every later change of these articles.
    package func storeBackfill(_ articles: [ArticleDTO]) throws {
        guard !articles.isEmpty else { return }
        try write("store backfilled articles") { db in
            var meta = try SyncMeta.fetch(db)
            meta.lastArrival += 1
            let stored = try db.cachedStatement(sql: "SELECT version FROM article WHERE id = ?")
            // A copy kept only while pinned (fetched by id) is now in what the device syncs.
            let synced = try db.cachedStatement(sql: "UPDATE article SET pinnedOnly = 0 WHERE id = ?")
            for article in articles {
                if let version = try Int64.fetchOne(stored, arguments: [article.id]), version >= article.version {
                    try synced.execute(arguments: [article.id])
                    continue
                }
                try Self.storeArticle(db, article, arrival: meta.lastArrival)
            }
            try meta.save(db)
        }
    }

    /// A JSON array of the names sorted by their bytes, or NULL for every section.
    private static func encodeSections(_ sections: Set<String>?) -> String? {
        guard let sections else { return nil }
        let sorted = sections.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return String(decoding: (try? JSONEncoder().encode(sorted)) ?? Data("[]".utf8), as: UTF8.self)
    }

    private static func decodeSections(_ text: String?) throws -> Set<String>? {
        guard let text else { return nil }
        do {
            return Set(try JSONDecoder().decode([String].self, from: Data(text.utf8)))
        } catch {
            throw ReaderSyncError(.storeCorrupt, "the followed sections in the store cannot be read: \(error)")
        }
    }
}
