import Foundation
import GRDB
import ReaderSyncSQLite

/// What a query of the store returns, as it changes: the current value as soon as iteration
/// starts, then a new one after each committed change that alters it — local actions, pulled
/// pages, acknowledgements, evictions, from this process — and never the same value twice in a
/// row. Built on GRDB's `ValueObservation`; each value is read in one snapshot.
///
/// ```swift
/// for try await unread in store.observeArticles(.unread, limit: 50) {
///     list.show(unread)   // SwiftUI: assign to an @Observable model's property
/// }
/// ```
///
/// Iteration ends when its task is cancelled; it throws ``ReaderSyncError`` `store_corrupt` or
/// `store_failed` when the store cannot be read.
public struct StoreObservation<Value: Sendable & Equatable>: AsyncSequence, Sendable {
    public typealias Element = Value
    private let values: AsyncValueObservation<Value>

    init(_ store: ReaderStore, fetch: @escaping @Sendable (Database) throws -> Value) {
        values = ValueObservation.tracking(fetch).removeDuplicates().values(in: store.dbPool)
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: values.makeAsyncIterator())
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncValueObservation<Value>.Iterator

        public mutating func next() async throws -> Value? {
            do {
                return try await base.next()
            } catch is CancellationError {
                return nil
            } catch {
                throw ReaderSyncError.store(error, doing: "observe a query")
            }
        }
    }
}

/// Unread articles on the device, by section and in all.
public struct UnreadCounts: Sendable, Hashable {
    /// Per section that has an unread article, by name.
    public var bySection: [String: Int]
    public var total: Int

    public init(bySection: [String: Int], total: Int) {
        self.bySection = bySection
        self.total = total
    }
}

extension ReaderStore {
    /// ``articles(_:limit:offset:)``, observed (``StoreObservation``).
    ///
    /// - Throws: ``ReaderSyncError`` `invalid_argument` for a page out of range.
    public func observeArticles(_ filter: ArticleFilter = .all, limit: Int = 50, offset: Int = 0) throws -> StoreObservation<[ReaderArticle]> {
        StoreObservation(self, fetch: try Self.articlesFetch(filter, limit: limit, offset: offset))
    }

    /// One article with the reader's state as shown, observed; `nil` while it is not on the device.
    public func observeArticle(id: String) -> StoreObservation<ReaderArticle?> {
        StoreObservation(self, fetch: Self.articleFetch(id: id))
    }

    /// The unread articles on the device per section and in all, observed: for badges.
    public func observeUnreadCounts() -> StoreObservation<UnreadCounts> {
        StoreObservation(self) { db in
            var counts = UnreadCounts(bySection: [:], total: 0)
            for row in try Row.fetchAll(db, sql: """
                SELECT article.section, count(*) FROM article LEFT JOIN articleState ON articleState.articleId = article.id
                WHERE coalesce(articleState.read, 0) = 0 GROUP BY article.section
                """) {
                let count: Int = row[1]
                counts.bySection[row.exactText(0)] = count
                counts.total += count
            }
            return counts
        }
    }

    /// How many local changes wait to be pushed (``pendingChangeCount()``), observed.
    public func observePendingChangeCount() -> StoreObservation<Int> {
        StoreObservation(self) { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0 }
    }
}
