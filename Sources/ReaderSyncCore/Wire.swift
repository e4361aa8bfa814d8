import Foundation

// The protocol v1 wire types, shared by server and client. Field names are the contract
// documented in Schema/openapi.json and docs/PROTOCOL.md.

/// The protocol version this code speaks.
public let protocolVersion = 1

/// `GET /v1/health`.
public struct HealthResponse: Sendable, Hashable, Codable {
    public var status: String
    public var protocolVersion: Int
    public init(status: String = "ok", protocolVersion: Int = ReaderSyncCore.protocolVersion) {
        self.status = status
        self.protocolVersion = protocolVersion
    }
}

/// An article as devices receive it. Dates are ISO-8601 UTC strings.
public struct ArticleDTO: Sendable, Hashable, Codable {
    public var id: String
    public var section: String
    public var title: String
    public var summary: String
    public var body: String
    public var author: String
    public var url: String
    public var publishedAt: String
    public var updatedAt: String
    public var version: Int64

    public init(id: String, section: String, title: String, summary: String, body: String,
                author: String, url: String, publishedAt: String, updatedAt: String, version: Int64) {
        self.id = id
        self.section = section
        self.title = title
        self.summary = summary
        self.body = body
        self.author = author
        self.url = url
        self.publishedAt = publishedAt
        self.updatedAt = updatedAt
        self.version = version
    }
}

/// Which device wrote a field's current value, and when by its HLC.
public struct FieldWriter: Sendable, Hashable, Codable {
    public var deviceId: String
    public var hlc: HLC

    public init(deviceId: String, hlc: HLC) {
        self.deviceId = deviceId
        self.hlc = hlc
    }
}

/// The writer of each field that has ever been written.
///
/// A device uses it after a server reset to give back exactly the values it wrote itself.
public struct StateWriters: Sendable, Hashable, Codable {
    public var read: FieldWriter?
    public var bookmarked: FieldWriter?
    public var progress: FieldWriter?

    public init(read: FieldWriter? = nil, bookmarked: FieldWriter? = nil, progress: FieldWriter? = nil) {
        self.read = read
        self.bookmarked = bookmarked
        self.progress = progress
    }

    public subscript(field: StateField) -> FieldWriter? {
        switch field {
        case .read: read
        case .bookmarked: bookmarked
        case .progress: progress
        }
    }
}

/// A user's state for one article as devices receive it.
public struct StateDTO: Sendable, Hashable, Codable {
    public var articleId: String
    public var read: Bool
    public var bookmarked: Bool
    public var progress: Double
    public var version: Int64
    /// The newest HLC among the fields.
    public var hlc: HLC
    /// Who wrote each field's current value.
    public var writers: StateWriters

    public init(articleId: String, read: Bool, bookmarked: Bool, progress: Double, version: Int64, hlc: HLC,
                writers: StateWriters = StateWriters()) {
        self.articleId = articleId
        self.read = read
        self.bookmarked = bookmarked
        self.progress = progress
        self.version = version
        self.hlc = hlc
        self.writers = writers
    }
}

/// `GET /v1/sync/pull`.
public struct PullResponse: Sendable, Hashable, Codable {
    public var articles: [ArticleDTO]
    /// Articles the publisher retracted: a device removes them.
    public var deletedArticleIds: [String]
    /// Articles that left the sync set because they are older than the server's retention
    /// (`serve --retention-days`): a device may drop them, and keeps those its reader bookmarked
    /// or has a pending change for. Absent (empty) from servers before retention.
    public var expiredArticleIds: [String]
    public var states: [StateDTO]
    public var cursor: String
    public var hasMore: Bool
    /// The server database's epoch: it changes when the database is reset or restored.
    public var epoch: String
    /// On the pages of a first sync (`order=newest`): `true` once every article of it has been
    /// sent; what follows are the user's states, then the changes since it began. A device that
    /// backfills a section it started following stops there. Absent (`nil`) on other pages.
    public var articlesComplete: Bool?

    /// Whether the page holds no change and nothing comes after it: the device is caught up
    /// (an empty long-poll answer).
    public var isCaughtUp: Bool {
        articles.isEmpty && deletedArticleIds.isEmpty && expiredArticleIds.isEmpty && states.isEmpty && !hasMore
    }

    public init(articles: [ArticleDTO], deletedArticleIds: [String], expiredArticleIds: [String] = [], states: [StateDTO],
                cursor: String, hasMore: Bool, epoch: String, articlesComplete: Bool? = nil) {
        self.articlesComplete = articlesComplete
        self.articles = articles
        self.deletedArticleIds = deletedArticleIds
        self.expiredArticleIds = expiredArticleIds
        self.states = states
        self.cursor = cursor
        self.hasMore = hasMore
        self.epoch = epoch
    }

    private enum CodingKeys: String, CodingKey {
        case articles, deletedArticleIds, expiredArticleIds, states, cursor, hasMore, epoch, articlesComplete
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        articles = try c.decode([ArticleDTO].self, forKey: .articles)
        deletedArticleIds = try c.decode([String].self, forKey: .deletedArticleIds)
        expiredArticleIds = try c.decodeIfPresent([String].self, forKey: .expiredArticleIds) ?? []
        states = try c.decode([StateDTO].self, forKey: .states)
        cursor = try c.decode(String.self, forKey: .cursor)
        hasMore = try c.decode(Bool.self, forKey: .hasMore)
        epoch = try c.decode(String.self, forKey: .epoch)
        articlesComplete = try c.decodeIfPresent(Bool.self, forKey: .articlesComplete)
    }
}

/// One change a device made offline.
public struct Mutation: Sendable, Hashable, Codable {
    /// Whether `id` can name an article or a device in a push: 1 to 200 Unicode scalars
    /// (counted as JSON Schema's `maxLength` counts, Schema/openapi.json) and no control
    /// character. The server refuses a whole push (`400 invalid_request`) that breaks this, so
    /// the SDK refuses such an id when the app passes it.
    public static func isValidIdentifier(_ id: String) -> Bool {
        !id.isEmpty && id.unicodeScalars.count <= 200 && !id.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// What the server requires of a device's id beyond ``isValidIdentifier(_:)``: the prefix
    /// of the Google Reader API's app passwords, which the server names itself.
    public static let reservedDevicePrefix = "reader-api:"

    /// Per device, increasing from 1.
    public var id: Int64
    public var articleId: String
    public var field: StateField
    public var value: FieldValue
    public var hlc: HLC
    /// The state version the device last saw for this article, 0 if none.
    public var baseVersion: Int64
    /// Whether this change is given back after a server reset (see ``ConflictRule/restoreReplay``):
    /// its causal context is gone with the old database, so it is ordered by its HLC alone.
    public var restored: Bool

    public init(id: Int64, articleId: String, field: StateField, value: FieldValue, hlc: HLC, baseVersion: Int64,
                restored: Bool = false) {
        self.id = id
        self.articleId = articleId
        self.field = field
        self.value = value
        self.hlc = hlc
        self.baseVersion = baseVersion
        self.restored = restored
    }

    private enum CodingKeys: String, CodingKey {
        case id, articleId, field, value, hlc, baseVersion, restored
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int64.self, forKey: .id)
        articleId = try c.decode(String.self, forKey: .articleId)
        field = try c.decode(StateField.self, forKey: .field)
        value = try c.decode(FieldValue.self, forKey: .value)
        hlc = try c.decode(HLC.self, forKey: .hlc)
        baseVersion = try c.decode(Int64.self, forKey: .baseVersion)
        restored = try c.decodeIfPresent(Bool.self, forKey: .restored) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(articleId, forKey: .articleId)
        try c.encode(field, forKey: .field)
        try c.encode(value, forKey: .value)
        try c.encode(hlc, forKey: .hlc)
        try c.encode(baseVersion, forKey: .baseVersion)
        if restored { try c.encode(true, forKey: .restored) }
    }
}

/// `POST /v1/sync/push` request body.
public struct PushRequest: Sendable, Hashable, Codable {
    public var deviceId: String
    public var mutations: [Mutation]
    /// The database epoch the device last saw in a response, if any. The server refuses the push
    /// with `410 reset_required` when it is not its own: the mutations' `baseVersion`s would refer
    /// to a database that is gone, and the device must first give back what that database held.
    public var epoch: String?

    public init(deviceId: String, mutations: [Mutation], epoch: String? = nil) {
        self.deviceId = deviceId
        self.mutations = mutations
        self.epoch = epoch
    }
}

/// What became of one mutation.
public enum MutationOutcome: String, Sendable, Hashable, Codable, CaseIterable {
    /// Its value is now the field's value (or already was, by an agreeing write).
    case applied
    /// A concurrent write won under the field's rule; see the conflict log entry.
    case superseded
    /// Its id was at or below the device's last processed id: nothing changed.
    case duplicate
    /// It cannot apply (unknown article, wrong value type, out of range): see `reason`.
    case rejected
}

/// One entry of ``PushResponse/results``.
public struct MutationResult: Sendable, Hashable, Codable {
    public var id: Int64
    public var outcome: MutationOutcome
    public var reason: String?
    public var conflictId: Int64?
    /// The change sequence number at which the state changed, when it did.
    public var seq: Int64?

    public init(id: Int64, outcome: MutationOutcome, reason: String? = nil, conflictId: Int64? = nil, seq: Int64? = nil) {
        self.id = id
        self.outcome = outcome
        self.reason = reason
        self.conflictId = conflictId
        self.seq = seq
    }
}

/// `POST /v1/sync/push` response body.
public struct PushResponse: Sendable, Hashable, Codable {
    /// The highest mutation id the server has processed for this device.
    public var lastMutationId: Int64
    public var results: [MutationResult]
    /// The state, after this push, of every known article the push named that has state: what the
    /// device shows for a field once none of its own changes to it are pending.
    public var states: [StateDTO]
    /// The server database's epoch (see ``PullResponse/epoch``).
    public var epoch: String

    public init(lastMutationId: Int64, results: [MutationResult], states: [StateDTO] = [], epoch: String) {
        self.lastMutationId = lastMutationId
        self.results = results
        self.states = states
        self.epoch = epoch
    }
}

/// One side of a conflict log entry on the wire.
public struct WriteDTO: Sendable, Hashable, Codable {
    public var value: FieldValue
    public var hlc: HLC
    public var deviceId: String
    public var mutationId: Int64

    public init(_ write: FieldWrite) {
        value = write.value
        hlc = write.hlc
        deviceId = write.deviceId
        mutationId = write.mutationId
    }

    public var write: FieldWrite { FieldWrite(value: value, hlc: hlc, deviceId: deviceId, mutationId: mutationId) }
}

/// What a conflict log entry records, which says whether it has a losing side.
public enum ConflictKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// Two writes disagreed and one was not applied (`last_writer_wins`, `add_wins`, `restore_replay`).
    case conflict
    /// One write arrived stamped too far ahead of the server's clock and was applied with the
    /// server's time instead (`clock_skew`): nothing was lost.
    case clockAdjustment = "clock_adjustment"
    /// One write was applied to the state of a deleted article and kept (`article_deleted`): nothing was lost.
    case notice
}

extension ConflictRule {
    /// Whether entries of this rule record a lost write, a clock adjustment or a notice.
    public var kind: ConflictKind {
        switch self {
        case .lastWriterWins, .addWins, .restoreReplay: return .conflict
        case .clockSkew: return .clockAdjustment
        case .articleDeleted: return .notice
        }
    }

    /// The rules named in `texts`, each a rule or a comma-separated list of rules
    /// (`["clock_skew", "add_wins,last_writer_wins"]`); an empty text names none (filters nothing).
    /// Exactly the grammar the OpenAPI document gives the `rule` parameter: no spaces, no empty
    /// item between commas.
    ///
    /// - Throws: ``SyncError`` `invalid_request` naming the unknown rule and listing the valid ones.
    public static func parseList(_ texts: [String]) throws(SyncError) -> Set<ConflictRule> {
        var rules: Set<ConflictRule> = []
        for text in texts where !text.isEmpty {
            for name in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let rule = ConflictRule(rawValue: String(name)) else {
                    let shown = name.isEmpty ? "(an empty item in \(text.prefix(40)))" : String(name.prefix(40))
                    throw SyncError(.invalidRequest, "unknown rule \(shown); valid rules are "
                                    + allCases.map(\.rawValue).joined(separator: ", "))
                }
                rules.insert(rule)
            }
        }
        return rules
    }
}

/// How the server adjusted a write stamped ahead of its clock (rule `clock_skew`).
public struct ClockAdjustment: Sendable, Hashable, Codable {
    /// The HLC as the device stamped it.
    public var deviceHlc: HLC
    /// The HLC the write was applied with: the server's clock, with the device's counter.
    public var serverHlc: HLC
    /// How far the device's wall clock was ahead of the server's, in milliseconds
    /// (`deviceHlc.wall - serverHlc.wall`, held within the `Int64` range).
    public var aheadMillis: Int64

    public init(deviceHlc: HLC, serverHlc: HLC) {
        self.deviceHlc = deviceHlc
        self.serverHlc = serverHlc
        // Any two walls the store holds must give an answer, not a trap.
        let (difference, overflow) = deviceHlc.wall.subtractingReportingOverflow(serverHlc.wall)
        aheadMillis = overflow ? (deviceHlc.wall > serverHlc.wall ? .max : .min) : difference
    }
}

/// One entry of the conflict log.
///
/// On the wire it also carries `kind` (see ``ConflictKind``) and, for `clock_skew`, `clockAdjustment`:
/// both follow from the stored fields, so they are encoded but never read back.
public struct ConflictDTO: Sendable, Hashable, Codable {
    public var id: Int64
    public var user: String
    public var articleId: String
    public var field: StateField
    public var rule: ConflictRule
    /// The write that was applied (for `clock_skew`, with the server's time as its HLC).
    public var winner: WriteDTO
    /// The write that was not applied. For `clock_skew` the same write as the device stamped it, and
    /// for `article_deleted` the value it replaced (`null` when the field had none): neither lost
    /// anything, see ``kind``. Kept in this shape for clients that read it.
    public var loser: WriteDTO?
    public var baseVersion: Int64
    /// ISO-8601 UTC.
    public var detectedAt: String

    public init(id: Int64, user: String, articleId: String, field: StateField, rule: ConflictRule,
                winner: WriteDTO, loser: WriteDTO?, baseVersion: Int64, detectedAt: String) {
        self.id = id
        self.user = user
        self.articleId = articleId
        self.field = field
        self.rule = rule
        self.winner = winner
        self.loser = loser
        self.baseVersion = baseVersion
        self.detectedAt = detectedAt
    }

    /// Whether this entry records a lost write, a clock adjustment or a notice.
    public var kind: ConflictKind { rule.kind }

    /// For a `clock_skew` entry, the device's stamp against the server's time; `nil` for other rules.
    public var clockAdjustment: ClockAdjustment? {
        rule == .clockSkew ? stampedAdjustment : nil
    }

    /// The winner's applied stamp against the stamp it arrived with (the loser's, for `clock_skew`).
    var stampedAdjustment: ClockAdjustment {
        ClockAdjustment(deviceHlc: loser?.hlc ?? winner.hlc, serverHlc: winner.hlc)
    }

    /// The write that lost, only for entries of kind ``ConflictKind/conflict``.
    public var lostWrite: WriteDTO? { kind == .conflict ? loser : nil }

    private enum CodingKeys: String, CodingKey {
        case id, user, articleId, field, rule, winner, loser, baseVersion, detectedAt, kind, clockAdjustment
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int64.self, forKey: .id)
        user = try c.decode(String.self, forKey: .user)
        articleId = try c.decode(String.self, forKey: .articleId)
        field = try c.decode(StateField.self, forKey: .field)
        rule = try c.decode(ConflictRule.self, forKey: .rule)
        winner = try c.decode(WriteDTO.self, forKey: .winner)
        loser = try c.decodeIfPresent(WriteDTO.self, forKey: .loser)
        baseVersion = try c.decode(Int64.self, forKey: .baseVersion)
        detectedAt = try c.decode(String.self, forKey: .detectedAt)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(user, forKey: .user)
        try c.encode(articleId, forKey: .articleId)
        try c.encode(field, forKey: .field)
        try c.encode(rule, forKey: .rule)
        try c.encode(kind, forKey: .kind)
        try c.encode(winner, forKey: .winner)
        try c.encodeIfPresent(loser, forKey: .loser)
        try c.encodeIfPresent(clockAdjustment, forKey: .clockAdjustment)
        try c.encode(baseVersion, forKey: .baseVersion)
        try c.encode(detectedAt, forKey: .detectedAt)
    }
}

/// `GET /v1/conflicts` and `GET /v1/admin/conflicts`.
public struct ConflictsResponse: Sendable, Hashable, Codable {
    public var conflicts: [ConflictDTO]
    public init(conflicts: [ConflictDTO]) { self.conflicts = conflicts }
}

/// `GET /v1/history` and `GET /v1/admin/history`: a page of a user's field history, oldest first.
public struct HistoryResponse: Sendable, Hashable, Codable {
    public var entries: [HistoryEntry]
    /// Pass as `after` for the next page; `nil` on the last page.
    public var nextAfter: Int64?
    /// Why the field is what it is now (``FieldExplanation``): on the first page of one
    /// article's one field, else `nil`.
    public var why: String?

    public init(entries: [HistoryEntry], nextAfter: Int64?, why: String?) {
        self.entries = entries
        self.nextAfter = nextAfter
        self.why = why
    }
}

/// `POST /v1/admin/users` request body.
public struct CreateUserRequest: Sendable, Hashable, Codable {
    public var name: String
    public init(name: String) { self.name = name }
}

/// `POST /v1/admin/users` response body. The token is shown this once; only its hash is stored.
public struct CreateUserResponse: Sendable, Hashable, Codable {
    public var name: String
    public var token: String
    public init(name: String, token: String) {
        self.name = name
        self.token = token
    }
}

/// The counts of an ingest, with the lines that were rejected.
public struct IngestReport: Sendable, Hashable, Codable {
    public struct LineError: Sendable, Hashable, Codable {
        public var line: Int
        public var message: String
        public init(line: Int, message: String) {
            self.line = line
            self.message = message
        }
    }
    public var inserted = 0
    public var updated = 0
    public var unchanged = 0
    public var deleted = 0
    public var rejected = 0
    /// New articles (or deleted ones ingested again) published before the server's retention
    /// (`--retention-days` of its last compaction): not stored, as they would only expire again.
    /// Absent (0) from servers before retention.
    public var expired = 0
    /// The first rejected lines (at most 100), with what was wrong.
    public var errors: [LineError] = []

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case inserted, updated, unchanged, deleted, rejected, expired, errors
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inserted = try c.decode(Int.self, forKey: .inserted)
        updated = try c.decode(Int.self, forKey: .updated)
        unchanged = try c.decode(Int.self, forKey: .unchanged)
        deleted = try c.decode(Int.self, forKey: .deleted)
        rejected = try c.decode(Int.self, forKey: .rejected)
        expired = try c.decodeIfPresent(Int.self, forKey: .expired) ?? 0
        errors = try c.decode([LineError].self, forKey: .errors)
    }

    public static let maxReportedErrors = 100

    public mutating func reject(line: Int, _ message: String) {
        rejected += 1
        if errors.count < Self.maxReportedErrors { errors.append(LineError(line: line, message: message)) }
    }

    public mutating func add(_ other: IngestReport) {
        inserted += other.inserted
        updated += other.updated
        unchanged += other.unchanged
        deleted += other.deleted
        rejected += other.rejected
        expired += other.expired
        errors.append(contentsOf: other.errors.prefix(Self.maxReportedErrors - errors.count))
    }
}

/// The data of a live stream's `event: changes`: something after the stream's cursor can be
/// pulled now. It never carries the changes themselves; the device pulls them.
public struct ChangesEvent: Sendable, Hashable, Codable {
    /// The server database's epoch, as in ``PullResponse/epoch``.
    public var epoch: String

    public init(epoch: String) {
        self.epoch = epoch
    }
}

/// The data of a live stream's `event: reset`: the cursor is of another epoch, so the device
/// resets as on `410 reset_required`; the stream ends after it.
public struct ResetEvent: Sendable, Hashable, Codable {
    /// The server database's epoch now.
    public var epoch: String
    /// The same error as a pull's `410` body: code `reset_required` and a message.
    public var error: ErrorBody.Detail

    public init(epoch: String, error: ErrorBody.Detail) {
        self.epoch = epoch
        self.error = error
    }
}

/// The protocol's paths, defined once for the server's router and every client.
public enum SyncRoute {
    public static let health = "/v1/health"
    public static let push = "/v1/sync/push"
    public static let pullPath = "/v1/sync/pull"
    /// The live stream of a user's feed: server-sent events (docs/PROTOCOL.md, live updates).
    public static let eventsPath = "/v1/sync/events"

    /// `/v1/sync/pull?limit=N[&cursor=C][&wait=S][&section=A&section=B…]`, with the cursor and
    /// the sections percent-encoded; `wait` (whole seconds, 1…60) makes it a long-poll;
    /// `sections` (`nil`: every section) are the only ones whose articles it brings
    /// (docs/PROTOCOL.md, "Sections"), sorted so the same set is always the same URL.
    public static func pull(cursor: String?, limit: Int, wait: Int? = nil, sections: Set<String>? = nil) -> String {
        var components = URLComponents()
        components.queryItems = [URLQueryItem(name: "limit", value: String(limit))]
        if let cursor { components.queryItems?.append(URLQueryItem(name: "cursor", value: cursor)) }
        if let wait { components.queryItems?.append(URLQueryItem(name: "wait", value: String(wait))) }
        components.queryItems? += sectionItems(sections)
        return pullPath + "?" + percentEncodedQuery(components)
    }

    /// `/v1/sync/pull?order=newest&limit=N[&window=W][&since=T][&section=A…]`: the first page of
    /// a device's first sync, newest publication first, within `window`, of `sections` only when
    /// given (docs/PROTOCOL.md, "First sync").
    public static func pullNewestFirst(limit: Int, window: Int?, since: Date?, sections: Set<String>? = nil) -> String {
        var components = URLComponents()
        components.queryItems = [URLQueryItem(name: "order", value: "newest"), URLQueryItem(name: "limit", value: String(limit))]
        if let window { components.queryItems?.append(URLQueryItem(name: "window", value: String(window))) }
        // Canonical text (UTC, `Z`): nothing URLComponents leaves unencoded that a server reads otherwise.
        if let since { components.queryItems?.append(URLQueryItem(name: "since", value: Timestamp.format(since))) }
        components.queryItems? += sectionItems(sections)
        return pullPath + "?" + percentEncodedQuery(components)
    }

    private static func sectionItems(_ sections: Set<String>?) -> [URLQueryItem] {
        (sections ?? []).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { URLQueryItem(name: "section", value: $0) }
    }

    /// The query with `+` encoded too: URLComponents leaves it as is, and servers that read `+`
    /// as a space (form encoding) would see another section name.
    private static func percentEncodedQuery(_ components: URLComponents) -> String {
        (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
    }

    /// `/v1/articles/{id}`, the id percent-encoded as one path segment: one article, fetched
    /// when it is outside what the device keeps.
    public static func article(id: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/;?#%")
        return "/v1/articles/" + (id.addingPercentEncoding(withAllowedCharacters: allowed) ?? id)
    }

    /// `/v1/sync/events[?cursor=C]`, with the cursor percent-encoded.
    public static func events(cursor: String?) -> String {
        guard let cursor else { return eventsPath }
        var components = URLComponents()
        components.queryItems = [URLQueryItem(name: "cursor", value: cursor)]
        return eventsPath + "?" + (components.percentEncodedQuery ?? "")
    }
}

/// Which articles a device keeps (``StorageWindow/unbounded`` by default): the newest `newest`
/// by publication, and only those published in the last `days` days; bookmarked articles and
/// those with a pending change stay whatever their age. A device with a window starts its first
/// sync newest first (`GET /v1/sync/pull?order=newest`).
public struct StorageWindow: Sendable, Hashable {
    /// At most this many articles (by `publishedAt`, newest first), 1…``maxNewest``; `nil` for no count limit.
    public var newest: Int?
    /// Only articles published in the last this many days (by the device's clock),
    /// 1…``maxDays``; `nil` for no age limit.
    public var days: Int?

    /// The largest ``newest`` (the server's largest first-sync window).
    public static let maxNewest = 1_000_000
    /// The largest ``days`` (100 years).
    public static let maxDays = 36_500

    /// - Parameters:
    ///   - newest: at most this many articles; `nil` (default) for no count limit.
    ///   - days: only those of the last this many days; `nil` (default) for no age limit.
    public init(newest: Int? = nil, days: Int? = nil) {
        self.newest = newest
        self.days = days
    }

    /// Every article, as before windows existed.
    public static let unbounded = StorageWindow()

    /// Whether neither limit is set: the device keeps every article.
    public var isUnbounded: Bool { newest == nil && days == nil }

    /// The oldest publication time kept at `now`, when ``days`` is set.
    public func publishedSince(now: Date) -> Date? {
        days.map { now.addingTimeInterval(-Double($0) * 86_400) }
    }
}
