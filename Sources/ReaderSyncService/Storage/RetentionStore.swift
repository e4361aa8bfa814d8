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
    package var tombstones = 0
    package var expired = 0
    /// User states removed with those articles.
    package var states = 0

    package init(tombstones: Int = 0, expired: Int = 0, states: Int = 0) {
        self.tombstones = tombstones
        self.expired = expired
        self.states = states
    }

    package var articles: Int { tombstones + expired }
}

/// An article row: live, expired (content kept) or a tombstone.
package enum StoredArticleRecord: Sendable, Hashable {
    case live(ArticleDTO)
    case expired(ArticleDTO, expiredAt: String)
    case tombstone(deletedAt: String)
}

/// What `reader-sync stats` prints: counts of each kind of row and the database's size.
package struct StoreStatistics: Sendable, Hashable, Codable {
    /// Articles in the sync set.
    package var liveArticles = 0
    /// Articles past the retention whose rows remain: pinned, or not yet past the tombstone horizon.
    package var expiredArticles = 0
    /// Expired articles someone has bookmarked: kept until the last bookmark goes.
    package var pinnedArticles = 0
    /// Retracted articles whose tombstones remain.
    package var tombstones = 0
    package var users = 0
    package var devices = 0
    /// User states (one row per user and article they touched).
    package var states = 0
    package var conflicts = 0
    /// The database's size in bytes: the file (SQLite, WAL not counted) or the database (PostgreSQL).
    package var bytes: Int64 = 0
    /// Of ``bytes``, pages free for reuse (SQLite; `nil` on PostgreSQL, whose vacuum reuses space in place).
    package var freeBytes: Int64?
    /// The tombstone horizon: cursors before it get `410 cursor_expired`; `nil` when compaction
    /// never removed a row.
    package var horizon: String?
    /// When the last compaction ended (RFC 3339), `nil` when none ran.
    package var compactedAt: String?

    package init() {}
}

extension FeedPosition {
    /// Reads ``description``'s form back: `seq` or `transaction/seq`.
    package init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        switch parts.count {
        case 1:
            guard let seq = Int64(parts[0]), seq >= 0 else { return nil }
            self.init(seq: seq)
        case 2:
            guard let transaction = UInt64(parts[0]), let seq = Int64(parts[1]), seq >= 0 else { return nil }
            self.init(transaction: transaction, seq: seq)
        default:
            return nil
        }
    }
}
