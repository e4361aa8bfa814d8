import ReaderSyncCore

/// The storage a sync server runs on: SQLite today (``SQLiteSyncStore``), PostgreSQL later.
///
/// The sync rules stay outside: a push is planned by ``PushPlanner`` (Core) on what the store
/// read, and the store writes the plan in the same transaction. Every method is one transaction.
package protocol SyncStore: ItemStore, RetentionStore, SnapshotStore {
    /// Database-wide facts read once at open: the epoch and the cursor signing secret.
    func identity() async throws -> StoreIdentity

    /// Starts a new epoch: every cursor handed out before gets `410 reset_required`, and every
    /// device gives back what the database lacks (after a restore).
    func startNewEpoch() async throws

    /// The changes after `after`, in feed order, read from one snapshot: articles, tombstones
    /// and expiries of everyone, states of `userId` only, and the tombstone horizon
    /// (``ChangePage/horizon``) as that snapshot has it.
    ///
    /// **Never skips a change:** every change this method leaves out because it is not yet
    /// committed (or not yet past the store's horizon) must sort after the page's
    /// ``ChangePage/last`` once it is served, so a device that moves its cursor to `last` still
    /// gets it. A store whose sequence values are taken in commit order (one writer, SQLite) gives
    /// this by the sequence alone; one with concurrent writers orders by transaction first
    /// (``FeedPosition``).
    ///
    /// With `sections` (distinct, sorted by their bytes, never empty), the articles and expiries
    /// are those of these sections only, read through an index on (section, feed position),
    /// never by scanning the others; the tombstones are those of every section (a device keeps
    /// bookmarked articles of others); and each article that left one of them for a section not
    /// in the set since `after` comes as an expiry (docs/PROTOCOL.md, "Sections"). States stay
    /// `userId`'s, of every article. `nil`: every section.
    func changes(userId: Int64, after: FeedPosition, limit: Int, sections: [String]?) async throws -> ChangePage

    /// Where `userId`'s feed ends now: the position of the last change ``changes(userId:after:limit:)``
    /// would serve (articles of everyone, states of `userId`), read in one snapshot by the same
    /// rules, so a change past it is one a pull from it returns. What a live stream compares with
    /// the position it last told its device about.
    func feedHead(userId: Int64) async throws -> FeedHead

    /// Queues word to the other servers on this database that a commit changed `scope`'s feed;
    /// called after the commit, never inside its transaction, and never waits for the sending,
    /// which ``listenForChanges(_:)`` does (batching what queues up meanwhile) or
    /// ``flushAnnouncements()``. Stores with one server per database do nothing (the default).
    func announce(_ scope: ChangeScope)

    /// Sends what ``announce(_:)`` queued, now: for a process that commits without running
    /// ``listenForChanges(_:)`` (a CLI command), before it ends. Default: nothing.
    func flushAnnouncements() async

    /// Until the task is cancelled: hears other servers' announcements and calls `wake` for
    /// each, and sends this server's. After losing and regaining its connection it calls
    /// `wake(.everyone)`, since it may have missed some. Stores with one server per database
    /// wait for cancellation (the default).
    func listenForChanges(_ wake: @escaping @Sendable (ChangeScope) -> Void) async throws

    /// Reads the push's context, lets `plan` decide, then writes the plan, all in one transaction.
    /// If `plan` throws, nothing is written. Article ids are told apart by their exact bytes,
    /// as the database compares them (see ``ExactText``).
    func push(
        userId: Int64,
        deviceId: String,
        articleIds: Set<ExactText>,
        now: String,
        plan: @Sendable (PushContext) throws -> PushPlan
    ) async throws -> CommittedPush

    /// Applies a batch of article changes in one transaction.
    ///
    /// - Parameter now: the server's clock as RFC 3339 text, read once the transaction holds its
    ///   write locks (and again on a retry): new and restored articles arrive then (the Reader
    ///   API's arrival time), as close to their commit as the store can tell, so a reader's list
    ///   loaded before the commit rarely shows a time after their arrival.
    func ingest(_ items: [IngestItem], now: @escaping @Sendable () -> String) async throws -> IngestReport

    /// Whether an article with this id was ever ingested (live or tombstoned).
    func articleExists(id: String) async throws -> Bool

    func createUser(name: String, tokenHash: [UInt8], now: String) async throws -> UserRecord
    func user(named name: String) async throws -> UserRecord?
    /// The users ``UserQuery`` selects, by name, each with its device count and token dates.
    func users(_ query: UserQuery) async throws -> [UserSummary]
    /// Revokes the user's token; returns false when no user has this name.
    func revokeToken(userName: String, now: String) async throws -> Bool
    /// Gives the user a new token (clearing a revocation); returns false when no user has this name.
    func replaceToken(userName: String, tokenHash: [UInt8]) async throws -> Bool

    /// The admin token's hash, if one was set.
    func adminTokenHash() async throws -> [UInt8]?
    /// The admin token's hash and the user holding `tokenHash` (unless revoked), read in one
    /// transaction: what authenticating a request needs.
    func credentials(tokenHash: [UInt8]) async throws -> (adminTokenHash: [UInt8]?, user: UserRecord?)
    func setAdminTokenHash(_ hash: [UInt8]) async throws

    /// The conflict log, newest first.
    func conflicts(_ query: ConflictQuery) async throws -> [ConflictDTO]

    /// Field history entries (docs/SUPPORT.md) of ``HistoryQuery/userId``, oldest first, after
    /// ``HistoryQuery/after``, at most ``HistoryQuery/limit``. An entry's conflict id is `nil`
    /// once compaction removed that conflict log entry (`--conflict-days` shorter than
    /// `--history-days`): an id is never one that names nothing.
    func history(_ query: HistoryQuery) async throws -> [HistoryEntry]
    func conflict(id: Int64) async throws -> ConflictDTO?

    /// The user's current state of one article, with the write behind each field.
    func state(userId: Int64, articleId: String) async throws -> UserArticleState?

    /// Devices of the users named (none for an empty list): by user name, then most recently
    /// seen first (the support console's users and user pages).
    func devices(userNames: [String]) async throws -> [DeviceSummary]

    /// The user's states, most recently changed first (feed order, newest first), at most
    /// `limit`, each with its article's title (`nil` once the article is deleted).
    func recentStates(userId: Int64, limit: Int) async throws -> [RecentState]

    /// What the store reports about itself at `GET /metrics`, read at each scrape (none on SQLite).
    func gauges() async throws -> [StoreGauge]
}

extension SyncStore {
    /// The changes of every section (``changes(userId:after:limit:sections:)`` with `nil`).
    package func changes(userId: Int64, after: FeedPosition, limit: Int) async throws -> ChangePage {
        try await changes(userId: userId, after: after, limit: limit, sections: nil)
    }

    package func announce(_ scope: ChangeScope) {}

    package func flushAnnouncements() async {}

    package func listenForChanges(_ wake: @escaping @Sendable (ChangeScope) -> Void) async throws {
        // Nothing to hear: wait until the task is cancelled.
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }
}

/// The end of one user's feed, as ``SyncStore/feedHead(userId:)`` reads it.
package struct FeedHead: Sendable, Hashable {
    /// The last change a pull would serve now (``FeedPosition/start`` when none).
    package var position: FeedPosition
    /// Whether changes are committed past the store's horizon (held back by a transaction still
    /// running, PostgreSQL): a pull will serve them once it ends, so a stream looks again soon.
    package var heldBack: Bool
    /// Whether it was read from a replica that may not have replayed a change committed just
    /// now (PostgreSQL with `--db-read`): a stream woken for a change it does not see yet looks
    /// again for a while.
    package var mayLag: Bool

    package init(position: FeedPosition, heldBack: Bool = false, mayLag: Bool = false) {
        self.position = position
        self.heldBack = heldBack
        self.mayLag = mayLag
    }
}

/// One value a store reports at `GET /metrics`, as a Prometheus gauge `readersync_<name>_<unit>`.
package struct StoreGauge: Sendable, Hashable {
    /// The metric's name between `readersync_` and the unit, e.g. `oldest_writing_transaction`.
    package var name: String
    /// The unit, e.g. `seconds`.
    package var unit: String
    package var help: String
    package var value: Double

    package init(name: String, unit: String, help: String, value: Double) {
        self.name = name
        self.unit = unit
        self.help = help
        self.value = value
    }
}

/// The database's epoch and cursor secret.
package struct StoreIdentity: Sendable, Hashable {
    /// Changes whenever the database is reset or restored; cursors of another epoch get `410`.
    package var epoch: String
    package var cursorSecret: [UInt8]

    package init(epoch: String, cursorSecret: [UInt8]) {
        self.epoch = epoch
        self.cursorSecret = cursorSecret
    }
}

/// One change in a pull page.
package enum Change: Sendable, Hashable {
    case article(ArticleDTO)
    case tombstone(id: String)
    /// The article left the sync set (older than the retention): a device may drop it.
    case expiry(id: String)
    case state(UserArticleState)
}

/// Where a change sits in the change feed: ordered by the writing transaction, then by the
/// sequence value it took in that transaction.
///
/// On SQLite (one writer at a time, sequence values taken in commit order) `transaction` is
/// always 0 and the sequence alone orders the feed. On PostgreSQL, where a transaction can take
/// sequence value 10 and commit after another took 11, `transaction` is the writer's
/// transaction id (`xid8`) and only transactions below the snapshot's horizon are served, so a
/// change can never appear behind a cursor that already passed it (docs/PROTOCOL.md, cursors).
package struct FeedPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The writing transaction's id (PostgreSQL `xid8`); 0 on stores that order by `seq` alone.
    package var transaction: UInt64
    package var seq: Int64

    /// Before every change.
    package static let start = FeedPosition(transaction: 0, seq: 0)

    package init(transaction: UInt64 = 0, seq: Int64) {
        self.transaction = transaction
        self.seq = seq
    }

    package static func < (a: FeedPosition, b: FeedPosition) -> Bool {
        (a.transaction, a.seq) < (b.transaction, b.seq)
    }

    package var description: String { transaction == 0 ? "\(seq)" : "\(transaction)/\(seq)" }
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

/// A page of changes and where it ended.
package struct ChangePage: Sendable {
    /// Each change with its feed position, ascending.
    package var changes: [(position: FeedPosition, change: Change)]
    /// The position of the last change returned (or the requested `after` when none): the next cursor.
    package var last: FeedPosition
    package var hasMore: Bool
    /// The position of the newest change compaction removed (``FeedPosition/start`` when none),
    /// read in the page's snapshot: a cursor before it may have missed a removed tombstone.
    package var horizon: FeedPosition = .start
    /// With sections: the newest article change the page's snapshot holds, of any section (or
    /// `nil`). A page that ends the feed has read every change of its sections up to it, so the
    /// device's cursor passes the other sections' changes too, and is not left behind a horizon
    /// that compaction raises among them.
    package var passed: FeedPosition?

    package init(changes: [(position: FeedPosition, change: Change)], last: FeedPosition, hasMore: Bool) {
        self.changes = changes
        self.last = last
        self.hasMore = hasMore
    }

    /// Merges a store's two reads of one snapshot, each in feed order and each read with
    /// `limit + 1` rows, into one page of at most `limit` changes: what every store does with
    /// its article and state queries.
    package static func merging(
        articles: [(position: FeedPosition, change: Change)],
        states: [(position: FeedPosition, change: Change)],
        after: FeedPosition, limit: Int
    ) -> ChangePage {
        var changes: [(position: FeedPosition, change: Change)] = []
        changes.reserveCapacity(min(limit, articles.count + states.count))
        var a = 0
        var s = 0
        while changes.count < limit, a < articles.count || s < states.count {
            if s == states.count || (a < articles.count && articles[a].position < states[s].position) {
                changes.append(articles[a])
                a += 1
            } else {
                changes.append(states[s])
                s += 1
            }
        }
        let hasMore = a < articles.count || s < states.count
        return ChangePage(changes: changes, last: changes.last?.position ?? after, hasMore: hasMore)
    }
}

/// A push as written: the plan with sequence values and conflict ids assigned.
package struct CommittedPush: Sendable {
    package var plan: PushPlan
    /// Sequence value each changed state row took, by article id.
    package var seqByArticle: [ExactText: Int64]
    /// The id each planned conflict got, in plan order.
    package var conflictIds: [Int64]

    package init(plan: PushPlan, seqByArticle: [ExactText: Int64], conflictIds: [Int64]) {
        self.plan = plan
        self.seqByArticle = seqByArticle
        self.conflictIds = conflictIds
    }
}

/// An article's content as ingested.
package struct ArticleContent: Sendable, Hashable {
    package var id: String
    package var section: String
    package var title: String
    package var summary: String
    package var body: String
    package var author: String
    package var url: String
    package var publishedAt: String
    package var updatedAt: String

    package init(id: String, section: String, title: String, summary: String, body: String,
                 author: String, url: String, publishedAt: String, updatedAt: String) {
        self.id = id
        self.section = section
        self.title = title
        self.summary = summary
        self.body = body
        self.author = author
        self.url = url
        self.publishedAt = publishedAt
        self.updatedAt = updatedAt
    }
}

/// One line of an ingest.
package enum IngestItem: Sendable, Hashable {
    case upsert(ArticleContent)
    case delete(id: String)
}

package struct UserRecord: Sendable, Hashable {
    package var id: Int64
    package var name: String

    package init(id: Int64, name: String) {
        self.id = id
        self.name = name
    }
}

package struct UserSummary: Sendable, Hashable, Codable {
    package var name: String
    package var createdAt: String
    package var devices: Int
    /// When the user's token was revoked; `nil` while it is valid.
    package var revokedAt: String?

    package init(name: String, createdAt: String, devices: Int, revokedAt: String?) {
        self.name = name
        self.createdAt = createdAt
        self.devices = devices
        self.revokedAt = revokedAt
    }
}

/// Which users ``SyncStore/users(_:)`` reads: every user by default.
package struct UserQuery: Sendable, Hashable {
    /// Only the user with exactly this name.
    package var name: String?
    /// Only users whose name contains this text, ignoring ASCII case (names are ASCII).
    package var nameContains: String?
    /// At most this many, the first by name; all when `nil`.
    package var limit: Int?

    package init(name: String? = nil, nameContains: String? = nil, limit: Int? = nil) {
        self.name = name
        self.nameContains = nameContains
        self.limit = limit
    }
}

/// A device as the server knows it: bound to its user by its first push.
package struct DeviceSummary: Sendable, Hashable {
    package var userName: String
    package var id: String
    /// RFC 3339, UTC: the device's first push.
    package var firstSeenAt: String
    /// RFC 3339, UTC: its last push (pulls name no device, so they are not counted).
    package var lastSeenAt: String
    /// The id of its last mutation the server has applied or answered: a push up to it is a duplicate.
    package var lastMutationId: Int64

    package init(userName: String, id: String, firstSeenAt: String, lastSeenAt: String, lastMutationId: Int64) {
        self.userName = userName
        self.id = id
        self.firstSeenAt = firstSeenAt
        self.lastSeenAt = lastSeenAt
        self.lastMutationId = lastMutationId
    }
}

/// One of a user's states with its article's title (``SyncStore/recentStates(userId:limit:)``).
package struct RecentState: Sendable, Hashable {
    package var state: UserArticleState
    /// `nil` when the article is deleted.
    package var title: String?

    package init(state: UserArticleState, title: String?) {
        self.state = state
        self.title = title
    }
}

/// One field's whole kept history, with its current value and the sentence that explains it
/// (``SyncService/fieldHistories(userId:userName:articleId:fields:)``).
package struct FieldHistory: Sendable {
    /// Oldest first.
    package var entries: [HistoryEntry]
    /// `nil` when no device has changed the field.
    package var current: FieldCell?
    package var why: String
}

/// A page of one user's field history: one field of one article, one article, or every article.
package struct HistoryQuery: Sendable, Hashable {
    package var userId: Int64
    package var articleId: String?
    /// Only this field (of ``articleId``, or of every article).
    package var field: StateField?
    /// Only entries with an id above this one (the previous page's last).
    package var after: Int64?
    package var limit: Int

    package init(userId: Int64, articleId: String? = nil, field: StateField? = nil, after: Int64? = nil, limit: Int = 100) {
        self.userId = userId
        self.articleId = articleId
        self.field = field
        self.after = after
        self.limit = limit
    }
}

/// A filter on the conflict log.
package struct ConflictQuery: Sendable, Hashable {
    package var userId: Int64?
    package var articleId: String?
    /// Only entries with an id below this one (for paging back in time).
    package var before: Int64?
    /// Only entries of these rules; empty for every rule.
    package var rules: Set<ConflictRule> = []
    package var limit: Int

    package init(userId: Int64? = nil, articleId: String? = nil, before: Int64? = nil, limit: Int = 100) {
        self.userId = userId
        self.articleId = articleId
        self.before = before
        self.limit = limit
    }
}

/// The database does not hold what the store expects (a row or value its migrations always
/// write is missing or malformed): the operation stops with this error, and nothing is written.
package struct StoreError: Error, CustomStringConvertible, Sendable {
    package var description: String

    package init(_ description: String) {
        self.description = description
    }
}
