import ReaderSyncCore

/// The storage a sync server runs on: SQLite today (``SQLiteSyncStore``), PostgreSQL later.
///
/// The sync rules stay outside: a push is planned by ``PushPlanner`` (Core) on what the store
/// read, and the store writes the plan in the same transaction. Every method is one transaction.
package protocol SyncStore: Sendable {
    /// Database-wide facts read once at open: the epoch and the cursor signing secret.
    func identity() async throws -> StoreIdentity

    /// The changes after sequence value `after`, in sequence order, read from one snapshot:
    /// articles and tombstones of everyone, states of `userId` only.
    func changes(userId: Int64, after: Int64, limit: Int) async throws -> ChangePage

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
    func ingest(_ items: [IngestItem], now: String) async throws -> IngestReport

    /// Whether an article with this id was ever ingested (live or tombstoned).
    func articleExists(id: String) async throws -> Bool

    func createUser(name: String, tokenHash: [UInt8], now: String) async throws -> UserRecord
    func user(named name: String) async throws -> UserRecord?
    func users() async throws -> [UserSummary]
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
    func conflict(id: Int64) async throws -> ConflictDTO?

    /// The user's current state of one article, with the write behind each field.
    func state(userId: Int64, articleId: String) async throws -> UserArticleState?
}

/// The database's epoch and cursor secret.
package struct StoreIdentity: Sendable, Hashable {
    /// Changes whenever the database is reset or restored; cursors of another epoch get `410`.
    package var epoch: String
    package var cursorSecret: [UInt8]
}

/// One change in a pull page.
package enum Change: Sendable, Hashable {
    case article(ArticleDTO)
    case tombstone(id: String)
    case state(UserArticleState)
}

/// A page of changes and where it ended.
package struct ChangePage: Sendable {
    /// Each change with its sequence value, ascending.
    package var changes: [(seq: Int64, change: Change)]
    /// The sequence value of the last change returned (or the requested `after` when none).
    package var lastSeq: Int64
    package var hasMore: Bool
}

/// A push as written: the plan with sequence values and conflict ids assigned.
package struct CommittedPush: Sendable {
    package var plan: PushPlan
    /// Sequence value each changed state row took, by article id.
    package var seqByArticle: [ExactText: Int64]
    /// The id each planned conflict got, in plan order.
    package var conflictIds: [Int64]
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
}

/// One line of an ingest.
package enum IngestItem: Sendable, Hashable {
    case upsert(ArticleContent)
    case delete(id: String)
}

package struct UserRecord: Sendable, Hashable {
    package var id: Int64
    package var name: String
}

package struct UserSummary: Sendable, Hashable, Codable {
    package var name: String
    package var createdAt: String
    package var devices: Int
    /// When the user's token was revoked; `nil` while it is valid.
    package var revokedAt: String?
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
