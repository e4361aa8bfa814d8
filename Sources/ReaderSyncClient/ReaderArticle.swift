import Foundation
import ReaderSyncCore

/// An article as the app shows it: content and the reader's state.
public struct ReaderArticle: Sendable, Hashable, Identifiable {
    /// The publisher's id of the article (1–200 bytes), as the server sent it.
    public var id: String
    /// Its section (`""` when the publisher gives none); see ``ReaderStore/follow(sections:)``.
    public var section: String
    /// Plain text, as ingested (so too ``summary``, ``body`` and ``author``); empty where the
    /// publisher gave none.
    public var title: String
    /// The standfirst, plain text.
    public var summary: String
    /// The article's text, plain text.
    public var body: String
    /// The byline, plain text.
    public var author: String
    /// The article's web address, as ingested (not checked).
    public var url: String
    /// ISO-8601 UTC, as the server sent it, e.g. `2026-11-29T09:00:00Z`.
    public var publishedAt: String
    /// When the publisher last changed it (ISO-8601 UTC, as ``publishedAt``).
    public var updatedAt: String
    /// The server's version of the article: 1 when published, one more per correction.
    public var version: Int64
    /// The reader's state as shown: the device's latest pending change of each field, else the
    /// server's value (so a change shows at once and is never hidden by a pull).
    public var isRead: Bool
    /// Bookmarked, as shown (as ``isRead``).
    public var isBookmarked: Bool
    /// Reading position, 0…1.
    public var progress: Double

    /// `publishedAt` as a date.
    public var publishedDate: Date? { Timestamp.parse(publishedAt) }
}

/// Which articles to list.
public enum ArticleFilter: Sendable, Hashable {
    /// Every article on the device.
    case all
    /// Articles shown unread.
    case unread
    /// Articles shown bookmarked.
    case bookmarked
    /// The articles of one section (by exact name).
    case section(String)
}

/// The reader's state of one article, also for articles not (or no longer) on the device.
public struct ReaderState: Sendable, Hashable {
    /// The article the state is of.
    public var articleId: String
    /// As shown (``ReaderArticle/isRead``): the latest pending change, else the server's value.
    public var isRead: Bool
    /// Bookmarked, as shown.
    public var isBookmarked: Bool
    /// Reading position, 0…1.
    public var progress: Double
    /// The server's version of this state the device last saw (0: none).
    public var version: Int64
}

/// A pending change a sync could not read and set aside (``ReaderStore/setAsideChanges()``):
/// its columns as far as they are text, and why.
public struct SetAsideChange: Sendable, Hashable {
    /// The outbox row's id (the change's mutation id).
    public var mutationId: Int64
    /// The article id, field and value as stored; `nil` where the column is not UTF-8 text.
    public var articleId: String?
    /// `read`, `bookmarked` or `progress` when intact.
    public var field: String?
    /// The value as stored: `true`/`false` or a number 0…1 when intact.
    public var value: String?
    /// Why it could not be read, e.g. `outbox row 7 cannot be read (read cannot be "maybe")`.
    public var reason: String
    /// When a sync set it aside, on the device's clock.
    public var setAsideAt: Date

    /// A set-aside change (for tests of app code).
    public init(mutationId: Int64, articleId: String?, field: String?, value: String?, reason: String, setAsideAt: Date) {
        self.mutationId = mutationId
        self.articleId = articleId
        self.field = field
        self.value = value
        self.reason = reason
        self.setAsideAt = setAsideAt
    }
}
