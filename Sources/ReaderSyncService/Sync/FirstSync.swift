import Foundation
import ReaderSyncCore

/// What a newest-first first sync reads from a store (docs/PROTOCOL.md, "First sync"): live
/// articles and one user's states as they stood at a feed position `head`, so that pulling on
/// from `head` afterwards serves every later change exactly once.
package protocol SnapshotStore: Sendable {
    /// Live, unexpired articles whose feed position is at or before `head`, newest publication
    /// first (`publishedAt`, then id, both descending), after `key`, published at or after
    /// `publishedSince` when given, of `sections` only when given (distinct, sorted by their
    /// bytes, never empty; `nil`: every section); at most `limit`. An article changed after
    /// `head` is left out: the pull from `head` serves it.
    func newestArticles(through head: FeedPosition, after key: PublicationKey?, publishedSince: Date?,
                        sections: [String]?, limit: Int) async throws -> [(key: PublicationKey, article: ArticleDTO)]

    /// `userId`'s states whose feed position is after `after` and at or before `head`, in feed
    /// order, at most `limit`.
    func states(userId: Int64, after: FeedPosition, through head: FeedPosition,
                limit: Int) async throws -> [(position: FeedPosition, state: UserArticleState)]
}

/// Where an article sits in newest-first order.
package struct PublicationKey: Sendable, Hashable {
    /// As stored: canonical RFC 3339 (``Timestamp/format(_:)``).
    package var publishedAt: String
    package var id: String

    package init(publishedAt: String, id: String) {
        self.publishedAt = publishedAt
        self.id = id
    }
}

/// How far a first sync has come: the feed position it is exact at, what is left of the window,
/// and the next thing to read. Carried in the cursor (version 3, ``CursorCodec``).
package struct SnapshotCursor: Sendable, Hashable {
    package enum Phase: Sendable, Hashable {
        /// Articles, newest first, after this key (`nil`: from the newest).
        case articles(after: PublicationKey?)
        /// The user's states, in feed order after this position.
        case states(after: FeedPosition)
    }

    /// The feed position the first sync is a snapshot of; the device pulls on from here.
    package var head: FeedPosition
    /// The tombstone horizon when the first sync began: a compaction since then that removed a
    /// change after `head` makes the pulls that follow answer `410 cursor_expired`.
    package var horizonSeen: FeedPosition
    /// Articles still to send in the window; `nil` without a count limit.
    package var remaining: Int?
    /// Only articles published at or after this time, in ms since 1970.
    package var publishedSinceMillis: Int64?
    package var phase: Phase

    package init(head: FeedPosition, horizonSeen: FeedPosition, remaining: Int?, publishedSinceMillis: Int64?, phase: Phase) {
        self.head = head
        self.horizonSeen = horizonSeen
        self.remaining = remaining
        self.publishedSinceMillis = publishedSinceMillis
        self.phase = phase
    }
}

extension SyncService {

    /// The first page of a device's first sync, newest publication first (`GET
    /// /v1/sync/pull?order=newest`): live articles as they stood when it began, at most `window`
    /// of them and none published before `since`, then the user's states; its cursor continues the
    /// first sync, and the last page's is an ordinary cursor from where it began, so a device
    /// that pulls on until `hasMore` is false misses no change and gets none twice.
    ///
    /// With `sections`, only articles of these sections (docs/PROTOCOL.md, "Sections"): every
    /// page of the first sync, and the pulls after it, must name the same ones. A device that
    /// starts following a section backfills it this way and keeps its own cursor, keeping only
    /// the articles (the states, all at or before the snapshot's head, are its already or will
    /// be pulled from its cursor).
    ///
    /// - Throws: ``SyncError`` `limit_out_of_range`, `invalid_request` for a window out of range
    ///   or more than ``maxSections`` sections.
    package func pullNewestFirst(user: UserRecord, limit: Int?, window: Int?, since: Date?,
                                 sections: [String]? = nil) async throws -> PullResponse {
        let limit = try checkedLimit(limit)
        let sections = try checkedSections(sections)
        if let window, !(1...StorageWindow.maxNewest).contains(window) {
            throw SyncError(.invalidRequest, "window must be from 1 to \(StorageWindow.maxNewest), got \(window)")
        }
        // The horizon first: read before the head, it can only be as old or older than the head's.
        let horizon = try await store.tombstoneHorizon()
        let head = try await store.feedHead(userId: user.id).position
        let cursor = SnapshotCursor(head: head, horizonSeen: horizon, remaining: window,
                                    publishedSinceMillis: since.map(Timestamp.millis), phase: .articles(after: nil))
        return try await snapshotPage(user: user, cursor: cursor, limit: limit, sections: sections)
    }

    /// One page of a first sync from `cursor` (see ``pullNewestFirst(user:limit:window:since:sections:)``).
    func snapshotPage(user: UserRecord, cursor start: SnapshotCursor, limit: Int, sections: [String]?) async throws -> PullResponse {
        var cursor = start
        var articles: [ArticleDTO] = []
        var states: [StateDTO] = []
        var finished = false
        if case .articles(let key) = cursor.phase {
            let wanted = min(limit, cursor.remaining ?? limit)
            let rows = wanted > 0
                ? try await store.newestArticles(through: cursor.head, after: key,
                                                 publishedSince: cursor.publishedSinceMillis.map(Timestamp.date(millis:)),
                                                 sections: sections, limit: wanted)
                : []
            articles = rows.map(\.article)
            cursor.remaining = cursor.remaining.map { $0 - rows.count }
            if let last = rows.last, rows.count == wanted, cursor.remaining != 0 {
                cursor.phase = .articles(after: last.key)
            } else {
                cursor.phase = .states(after: .start)
            }
        }
        if case .states(let after) = cursor.phase, articles.count < limit {
            let wanted = limit - articles.count
            let rows = try await store.states(userId: user.id, after: after, through: cursor.head, limit: wanted)
            states = rows.map(\.state.wire)
            if let last = rows.last, rows.count == wanted {
                cursor.phase = .states(after: last.position)
            } else {
                finished = true
            }
        }
        // Always more: once the snapshot is sent, the device pulls on from its head (an empty page
        // when nothing changed meanwhile).
        var articlesComplete = true
        if case .articles = cursor.phase { articlesComplete = false }
        return PullResponse(articles: articles, deletedArticleIds: [], states: states,
                            cursor: finished ? cursors.encode(cursor.head, horizonSeen: cursor.horizonSeen) : cursors.encode(cursor),
                            hasMore: true, epoch: epoch, articlesComplete: articlesComplete)
    }
}
