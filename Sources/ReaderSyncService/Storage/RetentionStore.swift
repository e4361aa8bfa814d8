import Foundation
import ReaderSyncCore

/// What compaction asks of a store (docs/PROTOCOL.md, "Retention and compaction"): each method
/// is one short transaction over at most `limit` rows, so pulls and pushes go on meanwhile;
/// ``SyncService/compact(_:)`` calls them until there is nothing left to do.
package protocol RetentionStore: Sendable {
    /// Expires up to `limit` live articles published before `cutoff`: each takes a new feed
    /// position and is served as ``Change/expiry(id:)`` from then on, its content and every
    /// user's state kept.
    ///
    /// - Returns: how many articles expired.
    func expireArticles(publishedBefore cutoff: Date, now: Date, limit: Int) async throws -> Int

    /// Records where the change sequence stands now, at `time`: a checkpoint that
    /// ``removalBound(takenAtOrBefore:)`` hands out once it is old enough.
    func recordCheckpoint(at time: Date) async throws

    /// The sequence value of the newest checkpoint taken at or before `cutoff` (`nil` when none
    /// is that old), dropping the older ones it makes useless.
    func removalBound(takenAtOrBefore cutoff: Date) async throws -> Int64?

    /// Removes up to `limit` tombstones, and expired articles no user has bookmarked (pinned ones
    /// stay until they are un-bookmarked), whose row and every state took their sequence values
    /// at or below `bound`; their states go with them. Raises the tombstone horizon to the
    /// newest feed position removed (states' included), in the same transaction. Every removed
    /// change is older than the checkpoint `bound` came from, so a device that pulled after it
    /// was taken has passed them all.
    func removeArticles(writtenThrough bound: Int64, limit: Int) async throws -> RemovedArticles

    /// The tombstone horizon now (``FeedPosition/start`` before any removal).
    func tombstoneHorizon() async throws -> FeedPosition

    /// Removes up to `limit` of the oldest conflict log entries detected before `cutoff`.
    ///
    /// - Returns: how many entries were removed.
    func removeConflicts(detectedBefore cutoff: Date, limit: Int) async throws -> Int

    /// Removes up to `limit` of the oldest field history entries received before `cutoff`.
    ///
    /// - Returns: how many entries were removed.
    func removeHistory(receivedBefore cutoff: Date, limit: Int) async throws -> Int

    /// Records when a compaction ended (shown by ``statistics()``) and its retention, which
    /// ingest then applies to new articles (``IngestEffect/tooOld``); `nil` clears it.
    func recordCompaction(at time: Date, retentionDays: Int?) async throws

    /// What the database holds, counted now (a scan of each table: for operators, not for
    /// every request).
    func statistics() async throws -> StoreStatistics

    /// One article as the store holds it, or `nil` when no row has this id (never ingested, or
    /// removed by compaction).
    func article(id: String) async throws -> StoredArticleRecord?
}

/// What one ``RetentionStore/removeArticles(writtenThrough:limit:)`` call removed.
package struct RemovedArticles: Sendable, Hashable {
    /// Tombstones (retracted articles) removed.
    package var tombstones = 0
    /// Expired articles removed (bookmarked by no one).
    package var expired = 0
    /// User states removed with those articles.
    package var states = 0
    /// Articles the step found to remove, also those it then kept (a push wrote a state of them
    /// meanwhile); `nil`: the removed ones. Compaction goes on while a step finds any, so a batch
    /// kept whole does not end it.
    package var found: Int?

    package init(tombstones: Int = 0, expired: Int = 0, states: Int = 0, found: Int? = nil) {
        self.tombstones = tombstones
        self.expired = expired
        self.states = states
        self.found = found
    }

    /// Article rows removed, of both kinds.
    package var articles: Int { tombstones + expired }
}

/// An article row: live, expired (content kept) or a tombstone.
package enum StoredArticleRecord: Sendable, Hashable {
    case live(ArticleDTO)
    /// Past the retention; `expiredAt` is RFC 3339.
    case expired(ArticleDTO, expiredAt: String)
    /// Retracted; `deletedAt` is RFC 3339.
    case tombstone(deletedAt: String)
}

extension FeedPosition {
    /// The tombstone horizon as a store keeps it (meta `horizon`, ``FeedPosition/description``'s
    /// text); ``FeedPosition/start`` when unset.
    ///
    /// - Throws: ``StoreError`` when the text is not a feed position.
    package init(storedHorizon text: String?) throws {
        guard let text else {
            self = .start
            return
        }
        guard let horizon = FeedPosition(text) else { throw StoreError("the tombstone horizon (meta 'horizon') '\(text)' is not a feed position") }
        self = horizon
    }
}
