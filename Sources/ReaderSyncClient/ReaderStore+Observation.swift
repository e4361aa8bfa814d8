import Foundation
import GRDB
import ReaderSyncSQLite

/// What a query of the store returns, as it changes: the current value as soon as iteration
/// starts, then a new one after each committed change that alters it — local actions, pulled
/// pages, acknowledgements, evictions, made through this ``ReaderStore`` — and never the same
/// value twice in a row. Built on GRDB's `ValueObservation`; each value is read in one snapshot.
///
/// ```swift
/// for try await unread in store.observeArticles(.unread, limit: 50) {
///     list.show(unread)   // SwiftUI: assign to an @Observable model's property
/// }
/// ```
///
/// Iteration ends when its task is cancelled; it throws ``ReaderSyncError`` `store_corrupt` or
/// `store_failed` when the store cannot be read.
///
/// For UIKit or Combine code, ``start(onError:onChange:)`` calls back on the main actor instead
/// (a Combine subject can be fed from it), and ``start(on:onError:onChange:)`` on a queue.
public struct StoreObservation<Value: Sendable & Equatable>: AsyncSequence, Sendable {
    /// The query's result.
    public typealias Element = Value
    private let observation: ValueObservation<ValueReducers.RemoveDuplicates<ValueReducers.Fetch<Value>>>
    private let pool: DatabasePool

    init(_ store: ReaderStore, fetch: @escaping @Sendable (Database) throws -> Value) {
        observation = store.defect == .observationMissesStates
            ? ValueObservation.tracking(regions: [Table("article")], fetch: fetch).removeDuplicates()
            : ValueObservation.tracking(fetch).removeDuplicates()
        pool = store.dbPool
    }

    /// Starts observing: each iterator is its own observation.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: observation.values(in: pool).makeAsyncIterator())
    }

    /// Calls `onChange` on the main actor with the current value, then after each change that
    /// alters it (the values iteration gives), until the returned ``ObservationCancellable`` is
    /// cancelled or released. The first value comes asynchronously, soon after this returns.
    /// `onError` is called at most once, when the
    /// store cannot be read (`store_corrupt`, `store_failed`, or `invalid_argument` for a
    /// malformed search expression); nothing is called after it.
    @MainActor
    public func start(onError: @escaping @MainActor (ReaderSyncError) -> Void,
                      onChange: @escaping @MainActor (Value) -> Void) -> ObservationCancellable {
        ObservationCancellable(observation.start(in: pool, scheduling: .mainActor, onError: { error in
            onError(Self.sdkError(error))
        }, onChange: onChange))
    }

    /// As ``start(onError:onChange:)``, calling back on `queue` (in order of change on a serial queue).
    public func start(on queue: DispatchQueue, onError: @escaping @Sendable (ReaderSyncError) -> Void,
                      onChange: @escaping @Sendable (Value) -> Void) -> ObservationCancellable {
        ObservationCancellable(observation.start(in: pool, scheduling: .async(onQueue: queue), onError: { error in
            onError(Self.sdkError(error))
        }, onChange: onChange))
    }

    static func sdkError(_ error: any Error) -> ReaderSyncError {
        ReaderSyncError.store(error, doing: "observe a query") as? ReaderSyncError
            ?? ReaderSyncError(.storeFailed, "the observation stopped: \(error)", cause: error)
    }

    /// Gives the values of one observation.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncValueObservation<Value>.Iterator

        /// The current value at first, then the next changed one; `nil` once the task is cancelled.
        ///
        /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed`; `invalid_argument`
        ///   for a malformed search expression.
        public mutating func next() async throws -> Value? {
            do {
                return try await base.next()
            } catch is CancellationError {
                return nil
            } catch {
                throw StoreObservation.sdkError(error)
            }
        }
    }
}

/// Stops a callback observation (``StoreObservation/start(onError:onChange:)``) when cancelled
/// or released: keep it as long as the screen shows the values.
public final class ObservationCancellable: Sendable {
    private let base: AnyDatabaseCancellable

    init(_ base: AnyDatabaseCancellable) { self.base = base }

    /// Stops the observation. Called on the callbacks' queue or actor, no callback runs after it
    /// returns; called elsewhere, one already scheduled may still run.
    public func cancel() { base.cancel() }
}

/// Unread articles on the device, by section and in all.
public struct UnreadCounts: Sendable, Hashable {
    /// Per section that has an unread article, by name.
    public var bySection: [String: Int]
    /// Unread articles on the device in all.
    public var total: Int

    /// Counts (for previews and tests of app code).
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
        StoreObservation(self, fetch: Self.unreadCountsFetch)
    }

    /// The unread articles on the device per section and in all, now.
    ///
    /// - Throws: ``ReaderSyncError`` `store_corrupt` or `store_failed` when the store cannot be read.
    public func unreadCounts() throws -> UnreadCounts {
        try read("count unread articles", Self.unreadCountsFetch)
    }

    /// The read of ``unreadCounts()``, for a read or an observation.
    @Sendable static func unreadCountsFetch(_ db: Database) throws -> UnreadCounts {
        var counts = UnreadCounts(bySection: [:], total: 0)
        for row in try Row.fetchAll(db, sql: """
            SELECT article.section, count(*) FROM article LEFT JOIN articleState ON articleState.articleId = article.id
            WHERE coalesce(articleState.read, 0) = 0 GROUP BY article.section
            """) {
            let count: Int = try row.decode(atIndex: 1)
            counts.bySection[try row.decodeExactText(0)] = count
            counts.total += count
        }
        return counts
    }

    /// How many local changes wait to be pushed (``pendingChangeCount()``), observed.
    public func observePendingChangeCount() -> StoreObservation<Int> {
        StoreObservation(self, fetch: Self.pendingChangeCountFetch)
    }
}
