/// The rule recorded with an entry of the conflict log.
public enum ConflictRule: String, Sendable, Hashable, Codable, CaseIterable {
    /// Two concurrent writes of `read` or `progress`: the newer HLC `(wall, counter, deviceId)` wins.
    case lastWriterWins = "last_writer_wins"
    /// Two concurrent writes of `bookmarked`: a bookmark beats an un-bookmark, whatever the clocks.
    case addWins = "add_wins"
    /// A write stamped too far ahead of the server's clock: applied with its HLC clamped to server time.
    case clockSkew = "clock_skew"
    /// A write to the state of a deleted article: kept, so it returns if the article is restored.
    case articleDeleted = "article_deleted"
    /// A change a device gives back after the server's database was reset or restored: what it
    /// had seen is gone with the old database, so it is ordered by its HLC alone (a write that
    /// saw another always has the later HLC), whatever the field's rule.
    case restoreReplay = "restore_replay"
}

/// One write of one field: what it set, when, from which device and mutation.
public struct FieldWrite: Sendable, Hashable, Codable {
    public var value: FieldValue
    public var hlc: HLC
    public var deviceId: String
    public var mutationId: Int64

    public init(value: FieldValue, hlc: HLC, deviceId: String, mutationId: Int64) {
        self.value = value
        self.hlc = hlc
        self.deviceId = deviceId
        self.mutationId = mutationId
    }
}

/// A field's current value with the write that set it and the row version it was set at.
public struct FieldCell: Sendable, Hashable {
    public var write: FieldWrite
    /// The state row's `version` right after this write was applied.
    public var setAtVersion: Int64

    public init(write: FieldWrite, setAtVersion: Int64) {
        self.write = write
        self.setAtVersion = setAtVersion
    }
}

/// The merge rules, one row per rule: the single place that decides between writes.
///
/// A write that has seen the field's current value (its `baseVersion` is at or above the
/// version that value was set at, or the same device set it) is causally later and simply
/// applies. Two writes that have not seen each other are concurrent and the field's rule decides.
public enum MergeRules {
    /// One row of the rule table, for docs, the CLI and tests.
    public struct Row: Sendable {
        public var rule: ConflictRule
        public var fields: [StateField]
        public var summary: String
    }

    /// The rule table.
    public static let table: [Row] = [
        Row(rule: .lastWriterWins, fields: [.read, .progress],
            summary: "concurrent writes: the newer HLC (wall, counter, device id) wins"),
        Row(rule: .addWins, fields: [.bookmarked],
            summary: "concurrent writes: a bookmark wins over an un-bookmark, whatever the clocks"),
        Row(rule: .clockSkew, fields: StateField.allCases,
            summary: "an HLC too far ahead of the server is clamped to server time, then merged; the write is never refused"),
        Row(rule: .articleDeleted, fields: StateField.allCases,
            summary: "state written for a deleted article is kept, and returns if the article is restored"),
        Row(rule: .restoreReplay, fields: StateField.allCases,
            summary: "a change given back after a server reset is ordered by its HLC alone, whatever the field"),
    ]

    /// The rule that decides between concurrent writes of `field`.
    public static func concurrentRule(for field: StateField) -> ConflictRule {
        switch field {
        case .read, .progress: return .lastWriterWins
        case .bookmarked: return .addWins
        }
    }

    /// What happens when `incoming`, made by a device that had seen row version `baseVersion`,
    /// meets the field's `current` cell. A `restored` write (given back after a server reset) is
    /// ordered by HLC alone.
    public static func decide(
        field: StateField,
        current: FieldCell?,
        incoming: FieldWrite,
        baseVersion: Int64,
        restored: Bool = false
    ) -> MergeDecision {
        guard let current else { return MergeDecision(applies: true, conflict: nil, basis: .firstWrite) }
        let incomingIsNewer = HLC.orders(
            current.write.hlc, before: incoming.hlc, current.write.deviceId, incoming.deviceId)
        if restored {
            if current.write.value == incoming.value { return MergeDecision(applies: incomingIsNewer, conflict: nil, basis: .agreeing) }
            return MergeDecision(applies: incomingIsNewer, conflict: MergeConflict(
                rule: .restoreReplay,
                winner: incomingIsNewer ? incoming : current.write,
                loser: incomingIsNewer ? current.write : incoming), basis: .restoreReplay)
        }
        let seen = baseVersion >= current.setAtVersion || current.write.deviceId.isExactly(incoming.deviceId)
        if seen { return MergeDecision(applies: true, conflict: nil, basis: .causallyLater) }

        let rule = concurrentRule(for: field)
        if current.write.value == incoming.value {
            // Agreeing writes are no conflict; keep the newer stamp so later writes compare against it.
            return MergeDecision(applies: incomingIsNewer, conflict: nil, basis: .agreeing)
        }
        let incomingWins: Bool
        switch rule {
        case .addWins: incomingWins = incoming.value == .bool(true)
        default: incomingWins = incomingIsNewer
        }
        let conflict = MergeConflict(
            rule: rule,
            winner: incomingWins ? incoming : current.write,
            loser: incomingWins ? current.write : incoming)
        return MergeDecision(applies: incomingWins, conflict: conflict, basis: rule == .addWins ? .addWins : .lastWriterWins)
    }
}

/// The outcome of ``MergeRules/decide(field:current:incoming:baseVersion:)``.
public struct MergeDecision: Sendable, Hashable {
    /// Whether the incoming write becomes the field's value.
    public var applies: Bool
    /// The conflict to log, when two concurrent writes disagreed.
    public var conflict: MergeConflict?
    /// What decided it, for the field's history.
    public var basis: HistoryRule

    public init(applies: Bool, conflict: MergeConflict?, basis: HistoryRule) {
        self.applies = applies
        self.conflict = conflict
        self.basis = basis
    }
}

/// Two writes that disagreed, and which one the rule kept.
public struct MergeConflict: Sendable, Hashable {
    public var rule: ConflictRule
    public var winner: FieldWrite
    /// The write that lost; absent for notices (`article_deleted`) that overrode nothing.
    public var loser: FieldWrite?

    public init(rule: ConflictRule, winner: FieldWrite, loser: FieldWrite?) {
        self.rule = rule
        self.winner = winner
        self.loser = loser
    }
}
