import ReaderSyncCore

/// How long a server keeps what it no longer serves (`serve` and `compact` take these as
/// `--retention-days`, `--tombstone-days`, `--conflict-days`, `--history-days`; docs/PROTOCOL.md, "Retention and
/// compaction").
package struct RetentionPolicy: Sendable, Hashable {
    /// Days after its `publishedAt` an article stays in the sync set; `nil` (the default) keeps
    /// every article for ever.
    package var articleDays: Int?
    /// Days a tombstone or an expiry stays servable (default 30): a device that syncs less often
    /// than that gets `410 cursor_expired` and pulls anew.
    package var tombstoneDays = 30
    /// Days the conflict log keeps an entry (default 90).
    package var conflictDays = 90
    /// Days the field history keeps an entry (default 30; docs/SUPPORT.md).
    package var historyDays = 30
    /// Rows per transaction (default 500): each step holds the write lock this long at most.
    package var batchSize = 500

    /// - Parameters: as the properties; each in days, checked by ``validate()``.
    package init(articleDays: Int? = nil, tombstoneDays: Int = 30, conflictDays: Int = 90, historyDays: Int = 30) {
        self.articleDays = articleDays
        self.tombstoneDays = tombstoneDays
        self.conflictDays = conflictDays
        self.historyDays = historyDays
    }

    /// The days of each setting must be from 1 to 36,500 (100 years).
    ///
    /// - Throws: ``SyncError`` `invalid_request` naming the setting.
    package func validate() throws(SyncError) {
        let settings: [(String, Int?)] = [("retention-days", articleDays), ("tombstone-days", tombstoneDays), ("conflict-days", conflictDays),
                                          ("history-days", historyDays)]
        for (name, days) in settings {
            if let days, !(1...36_500).contains(days) {
                throw SyncError(.invalidRequest, "\(name) must be from 1 to 36500, got \(days)")
            }
        }
        guard batchSize >= 1 else { throw SyncError(.invalidRequest, "the batch size must be at least 1") }
    }
}

/// What one ``SyncService/compact(_:)`` did.
package struct CompactionReport: Sendable, Hashable, Codable {
    /// Articles that left the sync set (older than the retention).
    package var expired = 0
    /// Tombstones removed (older than the tombstone horizon).
    package var removedTombstones = 0
    /// Expired articles removed (past the horizon and bookmarked by no one).
    package var removedExpired = 0
    /// User states removed with those articles.
    package var removedStates = 0
    /// Conflict log entries removed (older than the conflict days).
    package var removedConflicts = 0
    /// Field history entries removed (older than the history days).
    package var removedHistory = 0
    /// Write transactions run.
    package var transactions = 0

    package init() {}
}
