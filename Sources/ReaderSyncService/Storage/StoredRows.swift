import Foundation
import ReaderSyncCore

extension IngestItem {
    /// The id of the article this line writes or deletes.
    package var articleId: String {
        switch self {
        case .upsert(let content): content.id
        case .delete(let id): id
        }
    }
}

/// An article as a store holds it, for deciding what an ingest line does to it.
package enum StoredArticle: Sendable, Hashable {
    case live(ArticleContent)
    case tombstoned
}

/// What one ingest line does to the article stored under its id: the one classification every
/// store applies, so that SQLite and PostgreSQL count and write alike.
package enum IngestEffect: Sendable, Hashable {
    /// A new id.
    case insert
    /// A tombstoned id gets content again: new to every device, so counted as inserted.
    case restore
    /// Different content, compared byte for byte (see ``ExactText``): a title changed only in
    /// Unicode normalization is a change.
    case update
    /// A live article is deleted.
    case tombstone
    /// The same content again, or a delete of an id that is tombstoned or was never ingested.
    case unchanged
    /// A new (or tombstoned) id published before the retention: not stored, as it would only
    /// expire again (a compacted article ingested again by a full export).
    case tooOld

    /// - Parameter retentionBound: ``Timestamp/secondBound(_:)`` of the oldest publication time
    ///   the server keeps (`nil`: no retention); a new article published before it is ``tooOld``.
    package init(_ item: IngestItem, stored: StoredArticle?, retentionBound: String? = nil) {
        switch (item, stored) {
        case (.upsert(let new), nil) where retentionBound.map({ new.publishedAt < $0 }) ?? false: self = .tooOld
        case (.upsert(let new), .tombstoned) where retentionBound.map({ new.publishedAt < $0 }) ?? false: self = .tooOld
        case (.upsert, nil): self = .insert
        case (.upsert, .tombstoned): self = .restore
        case (.upsert(let new), .live(let old)): self = old.hasExactlyTheContent(of: new) ? .unchanged : .update
        case (.delete, .live): self = .tombstone
        case (.delete, _): self = .unchanged
        }
    }

    /// Whether the store writes the article (and so gives it a new sequence value).
    package var writes: Bool { self != .unchanged && self != .tooOld }
}

extension IngestReport {
    /// Counts one line's effect.
    package mutating func count(_ effect: IngestEffect) {
        switch effect {
        case .insert, .restore: inserted += 1
        case .update: updated += 1
        case .tombstone: deleted += 1
        case .unchanged: unchanged += 1
        case .tooOld: expired += 1
        }
    }
}

extension ArticleContent {
    /// Whether every text field holds exactly `other`'s bytes (the id is not compared).
    package func hasExactlyTheContent(of other: ArticleContent) -> Bool {
        section.isExactly(other.section) && title.isExactly(other.title) && summary.isExactly(other.summary)
            && body.isExactly(other.body) && author.isExactly(other.author) && url.isExactly(other.url)
            && publishedAt.isExactly(other.publishedAt) && updatedAt.isExactly(other.updatedAt)
    }
}

/// One side of a conflict log entry as stored: every column may be NULL in the database.
package struct StoredConflictWrite: Sendable {
    package var value: String?
    package var wall: Int64?
    package var counter: Int64?
    package var deviceId: String?
    package var mutationId: Int64?

    package init(value: String?, wall: Int64?, counter: Int64?, deviceId: String?, mutationId: Int64?) {
        self.value = value
        self.wall = wall
        self.counter = counter
        self.deviceId = deviceId
        self.mutationId = mutationId
    }
}

/// A conflict log entry as stored, before it is checked: what every store reads.
package struct StoredConflict: Sendable {
    package var id: Int64
    package var user: String
    package var articleId: String
    package var field: String
    package var rule: String
    package var winner: StoredConflictWrite
    package var loser: StoredConflictWrite
    package var baseVersion: Int64
    package var detectedAt: String

    package init(id: Int64, user: String, articleId: String, field: String, rule: String,
                 winner: StoredConflictWrite, loser: StoredConflictWrite, baseVersion: Int64, detectedAt: String) {
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

    /// The entry as shown. A row this version cannot read (an unknown rule or field, a value or
    /// side it cannot parse) fails the read: it is never shown as something it is not, nor skipped.
    ///
    /// - Throws: ``StoreError`` naming the entry and what is wrong, never the stored values.
    package func checked() throws -> ConflictDTO {
        func unreadable(_ what: String) -> StoreError { StoreError("conflict log entry \(id) is unreadable: \(what)") }
        func write(_ side: StoredConflictWrite, _ name: String) throws -> WriteDTO? {
            guard let text = side.value else {
                guard side.wall == nil, side.counter == nil, side.deviceId == nil, side.mutationId == nil else {
                    throw unreadable("its \(name) is partly empty")
                }
                return nil
            }
            guard let value = FieldValue(storedText: text) else { throw unreadable("its \(name)'s value is not a boolean or number") }
            guard let wall = side.wall, let counter = side.counter, let deviceId = side.deviceId, let mutationId = side.mutationId else {
                throw unreadable("its \(name) is partly empty")
            }
            return WriteDTO(FieldWrite(value: value, hlc: HLC(wall: wall, counter: counter), deviceId: deviceId, mutationId: mutationId))
        }
        guard let field = StateField(rawValue: field) else { throw unreadable("its field is not one this version knows") }
        guard let rule = ConflictRule(rawValue: rule) else { throw unreadable("its rule is not one this version knows") }
        guard let winner = try write(winner, "winner") else { throw unreadable("it has no winner") }
        return ConflictDTO(id: id, user: user, articleId: articleId, field: field, rule: rule,
                           winner: winner, loser: try write(loser, "loser"), baseVersion: baseVersion, detectedAt: detectedAt)
    }
}

/// Hexadecimal text of bytes, as `meta` stores hashes.
/// Lower-case hex text, as the stores keep hashes, the epoch and the cursor secret in `meta`.
package enum Hex {
    package static func string(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// `bytes` bytes from the system's random generator, as hex (an epoch, a cursor secret).
    package static func random(bytes: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        return string((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    /// The admin token's hash as stored in `meta`, or `nil` when no admin token is set.
    ///
    /// - Throws: ``StoreError`` when the stored text is not hex: that is damage to report, never
    ///   "no admin token".
    package static func adminTokenHash(stored text: String?) throws -> [UInt8]? {
        guard let text else { return nil }
        guard let hash = bytes(text), !hash.isEmpty else {
            throw StoreError("the stored admin token hash is not hex; set a new admin token with serve --admin-token")
        }
        return hash
    }

    package static func bytes(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let byte = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(byte)
            i += 2
        }
        return out
    }
}

/// Whether `text` can be a stored article id, device id or user name. None holds NUL (ingest and
/// user creation refuse control characters), and neither store can look one up by it: SQLite
/// reads a bound NUL as the end of the text (`a\u{0}x` would find `a`), PostgreSQL's `text`
/// refuses it. So a lookup by such text finds nothing without asking the database
/// (`%00` in `DELETE /v1/admin/articles/{id}`, `?user=`, `?article=`).
package func canBeStoredName(_ text: String) -> Bool {
    !text.utf8.contains(0)
}

/// A field history row as either store holds it, checked before it is shown.
package struct StoredHistoryRow: Sendable {
    package var id: Int64
    package var user: String
    package var articleId: String
    package var field: String
    package var value: String
    package var hlcWall: Int64
    package var hlcCounter: Int64
    package var deviceId: String
    package var mutationId: Int64
    package var clampedWall: Int64?
    package var clampedCounter: Int64?
    package var baseVersion: Int64
    package var restored: Bool
    package var outcome: String
    package var rule: String
    package var reason: String?
    package var againstValue: String?
    package var againstHlcWall: Int64?
    package var againstHlcCounter: Int64?
    package var againstDeviceId: String?
    package var againstMutationId: Int64?
    package var version: Int64
    package var articleDeleted: Bool
    package var conflictId: Int64?
    package var receivedAt: String

    package init(id: Int64, user: String, articleId: String, field: String, value: String, hlcWall: Int64, hlcCounter: Int64,
                 deviceId: String, mutationId: Int64, clampedWall: Int64?, clampedCounter: Int64?, baseVersion: Int64, restored: Bool,
                 outcome: String, rule: String, reason: String?, againstValue: String?, againstHlcWall: Int64?,
                 againstHlcCounter: Int64?, againstDeviceId: String?, againstMutationId: Int64?, version: Int64,
                 articleDeleted: Bool, conflictId: Int64?, receivedAt: String) {
        self.id = id
        self.user = user
        self.articleId = articleId
        self.field = field
        self.value = value
        self.hlcWall = hlcWall
        self.hlcCounter = hlcCounter
        self.deviceId = deviceId
        self.mutationId = mutationId
        self.clampedWall = clampedWall
        self.clampedCounter = clampedCounter
        self.baseVersion = baseVersion
        self.restored = restored
        self.outcome = outcome
        self.rule = rule
        self.reason = reason
        self.againstValue = againstValue
        self.againstHlcWall = againstHlcWall
        self.againstHlcCounter = againstHlcCounter
        self.againstDeviceId = againstDeviceId
        self.againstMutationId = againstMutationId
        self.version = version
        self.articleDeleted = articleDeleted
        self.conflictId = conflictId
        self.receivedAt = receivedAt
    }

    /// The entry as shown. A row this version cannot read (an unknown field, rule or outcome, a
    /// value it cannot parse, a half-written `against`) fails the read, as a conflict log entry does.
    ///
    /// - Throws: ``StoreError`` naming the entry and what is wrong.
    package func checked() throws -> HistoryEntry {
        func unreadable(_ what: String) -> StoreError { StoreError("field history entry \(id) is unreadable: \(what)") }
        guard let field = StateField(rawValue: field) else { throw unreadable("unknown field") }
        guard let outcome = HistoryOutcome(rawValue: outcome) else { throw unreadable("unknown outcome") }
        guard let rule = HistoryRule(rawValue: rule) else { throw unreadable("unknown rule") }
        // A refused write keeps what it sent, also a value of another type (shown as null).
        guard let value = FieldValue(storedText: value) ?? (outcome == .rejected ? .unsupported(value) : nil) else {
            throw unreadable("its value is not a boolean or number")
        }
        let clampedFrom: HLC?
        switch (clampedWall, clampedCounter) {
        case (nil, nil): clampedFrom = nil
        case (let wall?, let counter?): clampedFrom = HLC(wall: wall, counter: counter)
        default: throw unreadable("its clamped clock is partly empty")
        }
        let against: FieldWrite?
        switch (againstValue, againstHlcWall, againstHlcCounter, againstDeviceId, againstMutationId) {
        case (nil, nil, nil, nil, nil): against = nil
        case (let text?, let wall?, let counter?, let deviceId?, let mutationId?):
            guard let value = FieldValue(storedText: text) else { throw unreadable("the value it met is not a boolean or number") }
            against = FieldWrite(value: value, hlc: HLC(wall: wall, counter: counter), deviceId: deviceId, mutationId: mutationId)
        default: throw unreadable("the write it met is partly empty")
        }
        return HistoryEntry(
            id: id, user: user, articleId: articleId, field: field,
            write: FieldWrite(value: value, hlc: HLC(wall: hlcWall, counter: hlcCounter), deviceId: deviceId, mutationId: mutationId),
            clampedFrom: clampedFrom, baseVersion: baseVersion, restored: restored, outcome: outcome, rule: rule, reason: reason,
            against: against, version: version, articleDeleted: articleDeleted, conflictId: conflictId, receivedAt: receivedAt)
    }
}
