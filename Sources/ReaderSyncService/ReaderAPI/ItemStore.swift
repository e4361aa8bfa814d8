import ReaderSyncCore

/// What the Google Reader-compatible API reads from a store: articles as numbered items in
/// order of arrival, sections as subscriptions, and app passwords (docs/GOOGLE-READER-API.md).
///
/// Every method is one read or one transaction. Marks are written through
/// ``SyncStore/push(userId:deviceId:articleIds:now:plan:)`` like any device's.
package protocol ItemStore: Sendable {
    /// Every section an article was ever ingested into that holds a live, unexpired article now, by number.
    func sections() async throws -> [Section]

    /// The section with this number (live articles or not), or `nil` when none has it.
    func section(id: Int64) async throws -> Section?

    /// The section with this exact name, or `nil` when no article was ever in it.
    func section(named name: String) async throws -> Section?

    /// The live items `query` selects, with `userId`'s marks, in its order, at most `query.limit`:
    /// unexpired ones, and expired ones `userId` starred (pinned, ``RetentionStore``).
    func itemRefs(userId: Int64, query: ItemQuery) async throws -> [ItemRef]

    /// The live items with these numbers (expired ones too, while their rows remain), with their
    /// content and `userId`'s marks; numbers of tombstoned, removed or unknown items are left
    /// out. In no particular order.
    func items(userId: Int64, ids: [Int64]) async throws -> [Item]

    /// `userId`'s unread live, unexpired items per section (sections with none left out).
    func unreadCounts(userId: Int64) async throws -> [UnreadCount]

    /// Stores a new app password for the user named `userName`, replacing the one with the
    /// same label (whose sessions end).
    ///
    /// - Returns: the stored password, or `nil` when no user has this name.
    func createAppPassword(userName: String, label: String, passwordHash: [UInt8], now: String) async throws -> AppPasswordRecord?

    /// Removes the user's app password with this label; false when there is none.
    func revokeAppPassword(userName: String, label: String) async throws -> Bool

    /// The user's app passwords by label, or `nil` when no user has this name.
    func appPasswords(userName: String) async throws -> [AppPasswordRecord]?

    /// The app password whose hash is `passwordHash`, if it belongs to the user named `userName`
    /// and that user's token is not revoked (`users revoke` shuts out every app too).
    func appPassword(userName: String, passwordHash: [UInt8]) async throws -> AppPasswordRecord?

    /// The app password with this id, or `nil` when it was removed or its user's token is revoked.
    func appPassword(id: Int64) async throws -> AppPasswordRecord?
}

/// A section, as the Reader API's subscription `feed/<id>` and label `user/-/label/<name>`.
package struct Section: Sendable, Hashable {
    /// Given on the section's first article, never reused.
    package var id: Int64
    package var name: String

    package init(id: Int64, name: String) {
        self.id = id
        self.name = name
    }
}

/// Which items a stream holds, in which order, from where: what a Reader API stream id with its
/// `xt`, `it`, `ot`, `nt`, `r` and `c` parameters comes down to.
package struct ItemQuery: Sendable, Hashable {
    /// Only items of this section (`nil`: of every section).
    package var section: String?
    /// No item of these sections.
    package var excludedSections: [String] = []
    /// Only read (`true`) or only unread (`false`) items; `nil` for both.
    package var read: Bool?
    /// Only starred (`true`) or only unstarred (`false`) items; `nil` for both.
    package var starred: Bool?
    /// Only items that arrived at or after this time, in µs since 1970.
    package var arrivedSince: Int64?
    /// Only items that arrived before this time, in µs since 1970 (exclusive).
    package var arrivedBefore: Int64?
    /// Only items with these numbers (`nil`: any).
    package var itemIds: [Int64]?
    /// Newest arrival first (the Reader API's default), or oldest first (`r=o`).
    package var newestFirst = true
    /// Only items after this position in the query's order (a continuation).
    package var after: ItemPosition?
    package var limit: Int

    package init(limit: Int) {
        self.limit = limit
    }
}

/// Where an item sits in arrival order: by arrival time, then by number (items of one ingest
/// batch arrive at the same time).
package struct ItemPosition: Sendable, Hashable, Comparable {
    /// µs since 1970.
    package var arrivedAt: Int64
    package var itemId: Int64

    package init(arrivedAt: Int64, itemId: Int64) {
        self.arrivedAt = arrivedAt
        self.itemId = itemId
    }

    package static func < (a: ItemPosition, b: ItemPosition) -> Bool {
        (a.arrivedAt, a.itemId) < (b.arrivedAt, b.itemId)
    }
}

/// An item's number, arrival and the user's marks: what `stream/items/ids` lists.
package struct ItemRef: Sendable, Hashable {
    package var position: ItemPosition
    package var articleId: String
    package var read: Bool
    package var starred: Bool

    package var itemId: Int64 { position.itemId }

    package init(position: ItemPosition, articleId: String, read: Bool, starred: Bool) {
        self.position = position
        self.articleId = articleId
        self.read = read
        self.starred = starred
    }
}

/// An item with its content and the user's marks: what `stream/contents` and the Atom feed show.
package struct Item: Sendable, Hashable {
    package var ref: ItemRef
    package var article: ArticleContent

    package init(ref: ItemRef, article: ArticleContent) {
        self.ref = ref
        self.article = article
    }
}

/// A section's unread items.
package struct UnreadCount: Sendable, Hashable {
    package var section: Section
    package var count: Int
    /// The newest unread item's arrival, µs since 1970.
    package var newestArrival: Int64

    package init(section: Section, count: Int, newestArrival: Int64) {
        self.section = section
        self.count = count
        self.newestArrival = newestArrival
    }
}

/// A stored app password (its hash only) and whose it is.
package struct AppPasswordRecord: Sendable, Hashable {
    package var id: Int64
    package var user: UserRecord
    package var label: String
    /// SHA-256 of the password.
    package var passwordHash: [UInt8]
    package var createdAt: String

    /// The device id marks made with this password carry: `reader-api:<label>#<id>` (a new
    /// password, even with the same label, is a new device).
    package var deviceId: String { "\(Self.devicePrefix)\(label)#\(id)" }

    /// What every app password's device id starts with; the sync protocol refuses it (`push`).
    package static let devicePrefix = Mutation.reservedDevicePrefix

    package init(id: Int64, user: UserRecord, label: String, passwordHash: [UInt8], createdAt: String) {
        self.id = id
        self.user = user
        self.label = label
        self.passwordHash = passwordHash
        self.createdAt = createdAt
    }
}

/// Times of arrival, as the stores keep them: µs since 1970.
package enum ArrivalTime {
    /// The arrival time of an ingest that ran at `now` (an RFC 3339 timestamp, as stores get it),
    /// at the millisecond precision of the server's timestamps.
    ///
    /// - Throws: ``StoreError`` when `now` is not a timestamp.
    package static func micros(_ now: String) throws -> Int64 {
        guard let date = Timestamp.parse(now) else { throw StoreError("'\(now)' is not an RFC 3339 timestamp") }
        return Timestamp.millis(date) * 1000
    }
}
