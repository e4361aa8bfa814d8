import Crypto
import Foundation
import ReaderSyncCore

/// The Google Reader-compatible API's operations, free of HTTP: sessions from app passwords,
/// streams of items, and marks written through the same merge rules, conflict log, change feed
/// and live updates as any device's push (docs/GOOGLE-READER-API.md).
///
/// Each app password is one device of its user (``ReaderSession/deviceId``): its marks carry
/// that device id, mutation ids following the device's last, and HLCs from the server's clock.
package struct ReaderAPI: Sendable {
    package let service: SyncService

    /// Most ids `stream/items/ids` answers at once; more come with `continuation`.
    package static let maxIdsPerPage = 10_000
    /// Most items `stream/contents` and the Atom feed answer at once; more come with `continuation`.
    package static let maxItemsPerPage = 1_000
    /// Most item ids one `edit-tag` or `stream/items/contents` request may name.
    package static let maxItemIdsPerRequest = 1_000
    /// Items marked read per transaction by `mark-all-as-read`.
    static let markAllBatch = 500

    package init(service: SyncService) {
        self.service = service
    }

    private var store: any SyncStore { service.store }

    // MARK: App passwords and sessions

    /// Creates (or replaces) the app password labelled `label` of the user named `userName`
    /// and returns it; it is shown only this once and stored as its SHA-256.
    ///
    /// - Throws: ``SyncError`` `invalid_request` for a label that is not 1 to 64 letters, digits,
    ///   `.`, `_` or `-`; `not_found` when no user has this name.
    package func createAppPassword(userName: String, label: String) async throws -> String {
        guard SyncService.isValidName(label, punctuation: "._-") else {
            throw SyncError(.invalidRequest, "an app password label is 1 to 64 letters, digits and . _ -")
        }
        let password = Self.generatePassword()
        guard try await store.createAppPassword(userName: userName, label: label, passwordHash: Tokens.hash(password),
                                                now: Timestamp.format(service.now())) != nil else {
            throw SyncError(.notFound, "no user named \(userName)")
        }
        return password
    }

    /// Removes an app password: every session opened with it ends at its next request.
    ///
    /// - Throws: ``SyncError`` `not_found` when the user has no app password with this label.
    package func revokeAppPassword(userName: String, label: String) async throws {
        guard try await store.revokeAppPassword(userName: userName, label: label) else {
            throw SyncError(.notFound, "\(userName) has no app password labelled \(label)")
        }
    }

    /// The user's app passwords (hashes only), by label.
    ///
    /// - Throws: ``SyncError`` `not_found` when no user has this name.
    package func appPasswords(userName: String) async throws -> [AppPasswordRecord] {
        guard let records = try await store.appPasswords(userName: userName) else {
            throw SyncError(.notFound, "no user named \(userName)")
        }
        return records
    }

    /// `ClientLogin`: the session token for a user name and app password.
    ///
    /// - Throws: ``SyncError`` `unauthorized` when the pair is not one the server issued.
    package func login(userName: String, password: String) async throws -> String {
        let trimmed = password.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 256,
              let record = try await store.appPassword(userName: userName, passwordHash: Tokens.hash(trimmed)),
              CursorCodec.constantTimeEqual(record.passwordHash, Tokens.hash(trimmed))
        else {
            throw SyncError(.unauthorized, "the user name or app password is wrong (create one with "
                + "'reader-sync users app-password NAME')")
        }
        return sessionToken(for: record)
    }

    /// The session of an `Authorization: GoogleLogin auth=<token>` header value.
    ///
    /// - Throws: ``SyncError`` `unauthorized` when the header is missing or the token was not
    ///   issued for a password that still exists.
    package func authenticate(authorization: String?) async throws -> ReaderSession {
        guard let authorization, let range = authorization.range(of: "auth=", options: [.caseInsensitive]),
              authorization.lowercased().hasPrefix("googlelogin ")
        else {
            throw SyncError(.unauthorized, "send 'Authorization: GoogleLogin auth=<token>' with the token ClientLogin gave")
        }
        let token = authorization[range.upperBound...].trimmingCharacters(in: .whitespaces)
        let parts = token.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let id = Int64(parts[0]), token.utf8.count <= 256,
              let record = try await store.appPassword(id: id),
              CursorCodec.constantTimeEqual(Array(token.utf8), Array(sessionToken(for: record).utf8))
        else {
            throw SyncError(.unauthorized, "the session token is not valid (its app password was removed or replaced); log in again")
        }
        return ReaderSession(record: record, actionToken: sign("action/\(record.id)/\(Hex.string(record.passwordHash))").prefix(40).description)
    }

    /// `<id>/<HMAC>`: names the password and proves the server issued it for that password's hash.
    private func sessionToken(for record: AppPasswordRecord) -> String {
        "\(record.id)/" + sign("session/\(record.id)/\(Hex.string(record.passwordHash))")
    }

    private func sign(_ message: String) -> String {
        Hex.string(Array(HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: SymmetricKey(data: service.readerKey))))
    }

    /// 20 characters of a 32-letter alphabet without look-alikes (100 bits), in groups of 5, to
    /// be typed into an app: e.g. `k7m2q-x9p4t-…`.
    static func generatePassword() -> String {
        let alphabet = Array("abcdefghjkmnpqrstuvwxyz23456789".utf8) + [UInt8(ascii: "0")]
        var rng = SystemRandomNumberGenerator()
        let characters = (0..<20).map { _ in Character(UnicodeScalar(alphabet[Int.random(in: 0..<32, using: &rng)])) }
        return stride(from: 0, to: 20, by: 5).map { String(characters[$0..<$0 + 5]) }.joined(separator: "-")
    }

    // MARK: Reading

    /// The sections with live articles, as subscriptions.
    package func subscriptions() async throws -> [Section] {
        try await store.sections()
    }

    /// The session user's unread items per section.
    package func unreadCounts(_ session: ReaderSession) async throws -> [UnreadCount] {
        try await store.unreadCounts(userId: session.user.id)
    }

    /// One page of a stream: at most `limit` items (at most `maxLimit`, the rest by the
    /// continuation), and where the next page starts when more remain.
    ///
    /// - Throws: ``SyncError`` `limit_out_of_range` for a limit below 1; `not_found` for a feed or
    ///   label no article was ever in.
    package func page(_ session: ReaderSession, of selection: StreamSelection, limit requested: Int, maxLimit: Int)
        async throws -> (refs: [ItemRef], continuation: String?)
    {
        guard requested >= 1 else {
            throw SyncError(.limitOutOfRange, "n must be at least 1, got \(requested)")
        }
        let limit = min(requested, maxLimit)
        guard var query = try await itemQuery(selection, limit: limit + 1) else { return ([], nil) }
        query.limit = limit + 1
        var refs = try await store.itemRefs(userId: session.user.id, query: query)
        guard refs.count > limit else { return (refs, nil) }
        refs.removeLast()
        return (refs, refs.last.map { ReaderContinuation.encode($0.position) })
    }

    /// The live items with these numbers, with their content and the user's marks, in the order
    /// asked; unknown and deleted items are left out.
    package func items(_ session: ReaderSession, ids: [Int64]) async throws -> [Item] {
        guard ids.count <= Self.maxItemIdsPerRequest else {
            throw SyncError(.invalidRequest, "at most \(Self.maxItemIdsPerRequest) item ids a request, got \(ids.count)")
        }
        let found = try await store.items(userId: session.user.id, ids: ids)
        let byId = Dictionary(found.map { ($0.ref.itemId, $0) }, uniquingKeysWith: { a, _ in a })
        var seen = Set<Int64>()
        return ids.compactMap { seen.insert($0).inserted ? byId[$0] : nil }
    }

    /// The section a feed or label stream names.
    ///
    /// - Throws: ``SyncError`` `not_found` when no article was ever in it.
    package func section(of stream: ReaderStream) async throws -> Section? {
        switch stream {
        case .feed(let number):
            guard let section = try await store.section(id: number) else {
                throw SyncError(.notFound, "no subscription feed/\(number)")
            }
            return section
        case .label(let name):
            guard let section = try await store.section(named: name) else {
                throw SyncError(.notFound, "no label '\(name)'")
            }
            return section
        default:
            return nil
        }
    }

    /// The store query of a selection, or `nil` when it can hold nothing (a stream excluded from
    /// itself, two different sections required).
    private func itemQuery(_ selection: StreamSelection, limit: Int) async throws -> ItemQuery? {
        var query = ItemQuery(limit: limit)
        query.arrivedSince = selection.arrivedSince
        query.arrivedBefore = selection.arrivedBefore
        query.newestFirst = selection.newestFirst
        query.after = selection.after
        func require<T: Equatable>(_ keyPath: WritableKeyPath<ItemQuery, T?>, _ value: T) -> Bool {
            if let current = query[keyPath: keyPath], current != value { return false }
            query[keyPath: keyPath] = value
            return true
        }
        for stream in [selection.stream] + selection.included {
            let fits: Bool
            switch stream {
            case .readingList: fits = true
            case .read: fits = require(\.read, true)
            case .keptUnread: fits = require(\.read, false)
            case .starred: fits = require(\.starred, true)
            case .feed, .label: fits = require(\.section, try await section(of: stream)?.name ?? "")
            }
            guard fits else { return nil }
        }
        for stream in selection.excluded {
            let fits: Bool
            switch stream {
            case .readingList: fits = false
            case .read: fits = require(\.read, false)
            case .keptUnread: fits = require(\.read, true)
            case .starred: fits = require(\.starred, false)
            case .feed, .label:
                query.excludedSections.append(try await section(of: stream)?.name ?? "")
                fits = query.section.map { !query.excludedSections.contains($0) } ?? true
            }
            guard fits else { return nil }
        }
        return query
    }

    // MARK: Writing

    /// `edit-tag`: adds and removes `read`, `kept-unread` and `starred` on items, as one push
    /// of the session's device. Unknown and deleted items are left alone; tags Google Reader
    /// clients send alongside (`tracking-*`, `fresh`) are ignored.
    ///
    /// - Throws: ``SyncError`` `invalid_request` for no or too many items, a tag this server does
    ///   not keep, or a request that both sets and clears one mark.
    package func editTags(_ session: ReaderSession, itemIds: [Int64], add: [String], remove: [String]) async throws {
        guard !itemIds.isEmpty else { throw SyncError(.invalidRequest, "name at least one item with i=") }
        guard itemIds.count <= Self.maxItemIdsPerRequest else {
            throw SyncError(.invalidRequest, "at most \(Self.maxItemIdsPerRequest) items an edit-tag, got \(itemIds.count)")
        }
        let change = try MarkChange(add: add, remove: remove)
        guard change.read != nil || change.starred != nil else { return }
        var query = ItemQuery(limit: itemIds.count)
        query.itemIds = Array(Set(itemIds))
        let refs = try await store.itemRefs(userId: session.user.id, query: query)
        try await mark(session, refs: refs, change)
    }

    /// `mark-all-as-read`: marks read the unread items of `stream` that arrived at or before
    /// `arrivedAtOrBefore` (µs since 1970; now when `nil`), in transactions of 500: an item that
    /// arrived after the reader's list was loaded stays unread.
    ///
    /// - Returns: how many items it marked.
    package func markAllAsRead(_ session: ReaderSession, stream: ReaderStream, arrivedAtOrBefore: Int64?) async throws -> Int {
        let until = arrivedAtOrBefore ?? Timestamp.millis(service.now()) * 1000
        var selection = StreamSelection(stream: stream)
        selection.excluded = [.read]
        selection.arrivedBefore = until == .max ? .max : until + 1
        selection.newestFirst = false
        var marked = 0
        while true {
            guard let query = try await itemQuery(selection, limit: Self.markAllBatch) else { return marked }
            let refs = try await store.itemRefs(userId: session.user.id, query: query)
            try await mark(session, refs: refs, MarkChange(read: true))
            marked += refs.count
            guard refs.count == Self.markAllBatch, let last = refs.last else { return marked }
            selection.after = last.position
        }
    }

    /// Writes the marks that change something, as one push of the session's device, in one
    /// transaction. Mutation ids follow the device's last, each write's HLC is the server's
    /// clock after the state's newest, and its base version the state's current one: the write
    /// is made online, having seen what the server holds. What changes is decided on the states
    /// read in that transaction, never on `refs`' marks (read before it, maybe on a replica).
    private func mark(_ session: ReaderSession, refs: [ItemRef], _ change: MarkChange) async throws {
        let wanted = refs
        guard !wanted.isEmpty else { return }
        let userId = session.user.id
        let deviceId = session.deviceId
        let nowMillis = Timestamp.millis(service.now())
        let configuration = service.configuration
        let committed = try await store.push(
            userId: userId, deviceId: deviceId, articleIds: Set(wanted.map(\.articleId.exact)), now: Timestamp.format(service.now())
        ) { context in
            var mutations: [Mutation] = []
            var nextId = context.lastMutationId
            for ref in wanted {
                let state = context.states[ref.articleId.exact] ?? UserArticleState(articleId: ref.articleId)
                var clock = HybridClock()
                clock.observe(state.newestHLC)
                for (field, value) in [(StateField.read, change.read), (.bookmarked, change.starred)] {
                    let current = state[field].map { $0.write.value == .bool(true) } ?? false
                    guard let value, value != current else { continue }
                    nextId += 1
                    mutations.append(Mutation(id: nextId, articleId: ref.articleId, field: field, value: .bool(value),
                                              hlc: clock.tick(physicalMillis: nowMillis), baseVersion: state.version))
                }
            }
            var plan = try PushPlanner.plan(userId: userId, deviceId: deviceId, mutations: mutations, context: context,
                                            nowMillis: nowMillis, maxClockSkewMillis: configuration.maxClockSkewMillis)
            if !configuration.recordsHistory { plan.history = [] }
            return plan
        }
        if !committed.seqByArticle.isEmpty { service.committed(.user(userId)) }
    }
}

/// An authenticated Reader API client: the app password it logged in with, its user and device.
package struct ReaderSession: Sendable, Hashable {
    package var record: AppPasswordRecord
    /// The `T` token writes must carry (`GET /reader/api/0/token`).
    package var actionToken: String

    package var user: UserRecord { record.user }

    /// The device id its marks carry (``AppPasswordRecord/deviceId``).
    package var deviceId: String { record.deviceId }

    /// Whether `token` is this session's action token (compared in constant time).
    package func isActionToken(_ token: String?) -> Bool {
        guard let token else { return false }
        return CursorCodec.constantTimeEqual(Array(token.utf8), Array(actionToken.utf8))
    }
}

/// Which items of a stream: the stream, `it` (also in), `xt` (not in), `ot`/`nt` (arrived from /
/// before, µs), `r` (order) and `c` (continuation).
package struct StreamSelection: Sendable, Hashable {
    package var stream: ReaderStream
    package var included: [ReaderStream] = []
    package var excluded: [ReaderStream] = []
    package var arrivedSince: Int64?
    package var arrivedBefore: Int64?
    package var newestFirst = true
    package var after: ItemPosition?

    package init(stream: ReaderStream) {
        self.stream = stream
    }
}

/// What one `edit-tag` sets: `read` and `starred`, each on, off or untouched.
struct MarkChange: Sendable, Hashable {
    var read: Bool?
    var starred: Bool?

    init(read: Bool? = nil, starred: Bool? = nil) {
        self.read = read
        self.starred = starred
    }

    /// - Throws: ``SyncError`` `invalid_request` for a tag this server does not keep, or one mark
    ///   both set and cleared.
    init(add: [String], remove: [String]) throws(SyncError) {
        for (tags, adding) in [(add, true), (remove, false)] {
            for tag in tags {
                let target: WritableKeyPath<MarkChange, Bool?>
                let value: Bool
                switch try Self.state(of: tag) {
                case "read": (target, value) = (\.read, adding)
                case "kept-unread": (target, value) = (\.read, !adding)
                case "starred": (target, value) = (\.starred, adding)
                default: continue
                }
                if let current = self[keyPath: target], current != value {
                    throw SyncError(.invalidRequest, "the request both sets and clears \(target == \.read ? "read" : "starred")")
                }
                self[keyPath: target] = value
            }
        }
    }

    /// The state a tag names (`read`, `kept-unread`, `starred`), or `ignored` for the tags clients
    /// send along that this server has no use for.
    private static func state(of tag: String) throws(SyncError) -> String {
        let parts = tag.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "user", ReaderStream.isUserPart(parts[1]), parts[2].hasPrefix("state/com.google/") {
            let name = String(parts[2].dropFirst("state/com.google/".count))
            switch name {
            case "read", "kept-unread", "starred": return name
            case "fresh": return "ignored"
            default: if name.hasPrefix("tracking-") { return "ignored" }
            }
        }
        throw SyncError(.invalidRequest, "tag '\(tag)' cannot be set here: use user/-/state/com.google/read, …/kept-unread "
            + "or …/starred (labels are sections and follow the publisher's articles)")
    }
}
