import Foundation
import ReaderSyncCore

extension SyncService {
    /// Compacts the database by `policy`, in transactions of ``RetentionPolicy/batchSize`` rows
    /// while the server goes on serving: expires articles older than the retention (waking live
    /// streams); removes tombstones, expired articles no one bookmarked and their states once
    /// they and every state of them are older than a checkpoint of a run at least the tombstone
    /// days ago (raising the tombstone horizon, so older cursors get `410 cursor_expired`);
    /// removes conflict log entries older than the conflict days; records this run's
    /// checkpoint. Nothing is removed before a checkpoint is that old: the first run after an
    /// upgrade removes no tombstone. Times come from the service's clock.
    ///
    /// - Throws: ``SyncError`` `invalid_request` for a policy out of range; what the store throws
    ///   (the steps done so far stay done: each is a transaction of its own).
    package func compact(_ policy: RetentionPolicy) async throws -> CompactionReport {
        try policy.validate()
        let now = self.now()
        func daysBefore(_ days: Int) -> Date { now.addingTimeInterval(-Double(days) * 86_400) }
        var report = CompactionReport()
        /// Runs `step` (one transaction of at most a batch, returning the rows it took) until it
        /// takes none. Not until one takes fewer than a batch: on PostgreSQL a step skips the rows
        /// a push holds (`SKIP LOCKED`), so a short batch does not mean that nothing is left.
        func inBatches(_ step: () async throws -> Int) async throws {
            var taken: Int
            repeat {
                taken = try await step()
                report.transactions += 1
            } while taken > 0
        }
        if let days = policy.articleDays {
            try await inBatches {
                let expired = try await store.expireArticles(publishedBefore: daysBefore(days), now: now, limit: policy.batchSize)
                report.expired += expired
                if expired > 0 { committed(.everyone) }
                return expired
            }
        }
        if let bound = try await store.removalBound(takenAtOrBefore: daysBefore(policy.tombstoneDays)) {
            try await inBatches {
                let removed = try await store.removeArticles(writtenThrough: bound, limit: policy.batchSize)
                report.removedTombstones += removed.tombstones
                report.removedExpired += removed.expired
                report.removedStates += removed.states
                return removed.found ?? removed.articles
            }
        }
        try await inBatches {
            let removed = try await store.removeConflicts(detectedBefore: daysBefore(policy.conflictDays), limit: policy.batchSize)
            report.removedConflicts += removed
            return removed
        }
        try await inBatches {
            let removed = try await store.removeHistory(receivedBefore: daysBefore(policy.historyDays), limit: policy.batchSize)
            report.removedHistory += removed
            return removed
        }
        // After this run's expiries: they are removed once this checkpoint is old enough.
        try await store.recordCheckpoint(at: now)
        try await store.recordCompaction(at: now, retentionDays: policy.articleDays)
        return report
    }

    /// What the database holds now (`reader-sync stats`).
    package func statistics() async throws -> StoreStatistics {
        try await store.statistics()
    }

    /// One article for `GET /v1/articles/{id}`: a live one, or an expired one whose content is
    /// still kept (pinned by a bookmark, or not yet removed by compaction).
    ///
    /// - Throws: ``SyncError`` `not_found` for an id never ingested or removed by compaction,
    ///   `article_deleted` for a retracted article.
    package func article(id: String) async throws -> ArticleDTO {
        switch try await store.article(id: id) {
        case .live(let article), .expired(let article, _):
            return article
        case .tombstone(let deletedAt):
            throw SyncError(.articleDeleted, "article \(id) was deleted at \(deletedAt)")
        case nil:
            throw SyncError(.notFound, "no article with id \(id)")
        }
    }

    /// The error of a pull whose cursor is before the tombstone horizon.
    static func cursorExpired(_ horizon: FeedPosition) -> SyncError {
        SyncError(.cursorExpired, "this cursor is older than the server's tombstone horizon (position \(horizon)): deletions it would need were compacted away; keep pending changes, drop local articles and pull from the beginning")
    }
}
