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
    /// Users, revoked ones included.
    package var users = 0
    /// Devices that ever pushed (app passwords' included).
    package var devices = 0
    /// User states (one row per user and article they touched).
    package var states = 0
    /// Conflict log entries kept.
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
