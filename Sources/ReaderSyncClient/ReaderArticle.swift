import Foundation
import ReaderSyncCore

/// An article as the app shows it: content and the reader's state.
public struct ReaderArticle: Sendable, Hashable, Identifiable {
    public var id: String
    public var section: String
    public var title: String
    public var summary: String
    public var body: String
    public var author: String
    public var url: String
    /// ISO-8601 UTC, as the server sent it.
    public var publishedAt: String
    public var updatedAt: String
    public var version: Int64
    public var isRead: Bool
    public var isBookmarked: Bool
    /// Reading position, 0…1.
    public var progress: Double

    /// `publishedAt` as a date.
    public var publishedDate: Date? { Timestamp.parse(publishedAt) }
}

/// Which articles to list.
public enum ArticleFilter: Sendable, Hashable {
    case all
    case unread
    case bookmarked
    case section(String)
}

/// The reader's state of one article, also for articles not (or no longer) on the device.
public struct ReaderState: Sendable, Hashable {
    public var articleId: String
    public var isRead: Bool
    public var isBookmarked: Bool
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
    public var field: String?
    public var value: String?
    /// Why it could not be read, e.g. `outbox row 7 cannot be read (read cannot be "maybe")`.
    public var reason: String
    /// When a sync set it aside, on the device's clock.
    public var setAsideAt: Date

    public init(mutationId: Int64, articleId: String?, field: String?, value: String?, reason: String, setAsideAt: Date) {
        self.mutationId = mutationId
        self.articleId = articleId
        self.field = field
        self.value = value
        self.reason = reason
        self.setAsideAt = setAsideAt
    }
}
