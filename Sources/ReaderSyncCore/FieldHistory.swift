import Foundation

/// How one write of a field was decided (``HistoryEntry/rule``): the basis of the outcome.
public enum HistoryRule: String, Sendable, Hashable, Codable, CaseIterable {
    /// The field had no value: the write applied.
    case firstWrite = "first_write"
    /// The device had seen the field's value (its base version at or after the version that
    /// value was set at, or it had written that value itself): the write applied.
    case causallyLater = "causally_later"
    /// Made without seeing the field's value, and the same value: no conflict; the newer of the
    /// two stamps is kept (an agreeing write older than the value is not recorded).
    case agreeing = "agreeing"
    /// Concurrent with the value, `read` or `progress`: the newer HLC won (``ConflictRule/lastWriterWins``).
    case lastWriterWins = "last_writer_wins"
    /// Concurrent with the value, `bookmarked`: a bookmark beat a removal (``ConflictRule/addWins``).
    case addWins = "add_wins"
    /// Given back after the server's database was reset or restored: ordered by HLC alone
    /// (``ConflictRule/restoreReplay``).
    case restoreReplay = "restore_replay"
    /// Refused (an article the server does not have, a value out of range): nothing changed;
    /// ``HistoryEntry/reason`` says why.
    case rejected = "rejected"
}

/// What became of one write (``HistoryEntry/outcome``).
public enum HistoryOutcome: String, Sendable, Hashable, Codable, CaseIterable {
    /// It became the field's value.
    case applied
    /// A concurrent write kept the field (the conflict log has the pair).
    case lost
    /// The server refused it.
    case rejected
}

/// One decision of a push about one field of one reader's article: the history support reads
/// to answer "why did my bookmark vanish?" (docs/SUPPORT.md). Every write that changed a field,
/// lost to another or was refused is recorded, in the push's transaction; duplicates and
/// agreeing writes older than the value are not (they change nothing).
public struct HistoryEntry: Sendable, Hashable, Codable {
    /// Increasing in the order the server decided; the page cursor.
    public var id: Int64
    public var user: String
    public var articleId: String
    public var field: StateField
    /// The write: value, HLC as merged (the server's time when clamped), device, mutation id.
    public var write: FieldWrite
    /// The HLC the device stamped, when it was ahead of the server's clock by more than the
    /// allowed skew and the server's time was used instead (``ConflictRule/clockSkew``).
    public var clampedFrom: HLC?
    /// The state version the device had seen when it made the change (0: none).
    public var baseVersion: Int64
    /// Whether the device gave it back after a server reset (``ConflictRule/restoreReplay``).
    public var restored: Bool
    public var outcome: HistoryOutcome
    public var rule: HistoryRule
    /// Why it was refused; `nil` unless ``outcome`` is ``HistoryOutcome/rejected``.
    public var reason: String?
    /// The field's value the write met: the one it replaced, beat or lost to; `nil` for a first
    /// write or a refusal.
    public var against: FieldWrite?
    /// The state row's version after the push's decision about this write.
    public var version: Int64
    /// Whether the article was deleted (the state is kept for when it returns).
    public var articleDeleted: Bool
    /// The conflict log entry of this decision, when there is one and the server still keeps it
    /// (`--conflict-days` may be shorter than `--history-days`).
    public var conflictId: Int64?
    /// When the server decided, ISO-8601 UTC (server clock).
    public var receivedAt: String

    public init(id: Int64, user: String, articleId: String, field: StateField, write: FieldWrite, clampedFrom: HLC?,
                baseVersion: Int64, restored: Bool, outcome: HistoryOutcome, rule: HistoryRule, reason: String?,
                against: FieldWrite?, version: Int64, articleDeleted: Bool, conflictId: Int64?, receivedAt: String) {
        self.id = id
        self.user = user
        self.articleId = articleId
        self.field = field
        self.write = write
        self.clampedFrom = clampedFrom
        self.baseVersion = baseVersion
        self.restored = restored
        self.outcome = outcome
        self.rule = rule
        self.reason = reason
        self.against = against
        self.version = version
        self.articleDeleted = articleDeleted
        self.conflictId = conflictId
        self.receivedAt = receivedAt
    }
}

/// A history entry a push will write, before the store gives it an id and a time.
public struct PlannedHistory: Sendable, Hashable {
    public var articleId: String
    public var field: StateField
    public var write: FieldWrite
    public var clampedFrom: HLC?
    public var baseVersion: Int64
    public var restored: Bool
    public var outcome: HistoryOutcome
    public var rule: HistoryRule
    public var reason: String?
    public var against: FieldWrite?
    public var version: Int64
    public var articleDeleted: Bool
    /// Index into ``PushPlan/conflicts`` of this decision's conflict log entry.
    public var conflictIndex: Int?

    /// `text` with control characters (NUL included) as U+FFFD and at most 200 characters: what
    /// a refused write's value and reason are recorded as.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(200).map {
            $0.properties.generalCategory == .control ? "\u{FFFD}" : $0
        }))
    }
}

extension HistoryEntry {
    /// One line of a timeline, oldest first in a listing: when, who, what, and how it was decided.
    ///
    /// `2026-12-01 14:03:05 UTC  laptop #12  removed the bookmark  applied (causally_later, had seen v3)`,
    /// or for a refusal `… rejected: unknown article a-9`.
    public var line: String {
        var decided: String
        switch rule {
        case .causallyLater: decided = "\(outcome.rawValue) (\(rule.rawValue), had seen v\(baseVersion))"
        case .rejected: decided = "rejected" + (reason.map { ": \($0)" } ?? "")
        default: decided = "\(outcome.rawValue) (\(rule.rawValue))"
        }
        if let clampedFrom { decided += ", clock clamped from \(ConflictDTO.clock(clampedFrom))" }
        if restored && rule != .restoreReplay { decided += ", given back after a reset" }
        if articleDeleted { decided += ", article deleted" }
        return "\(ConflictDTO.clock(write.hlc))  \(write.deviceId) #\(write.mutationId)  \(FieldExplanation.action(field, write.value))  \(decided)"
    }
}

/// The sentence that explains a field's current value: what `reader-sync why`, the history API
/// and the console show.
public enum FieldExplanation {
    /// Why `field` of `articleId` is what it is for `user`.
    ///
    /// - Parameters:
    ///   - current: the field's value and the write that set it; `nil` when no device changed it.
    ///   - history: the field's entries, oldest first (those the server still keeps).
    /// - Returns: a short paragraph, e.g. "It is off because alice's laptop removed the bookmark at
    ///   2026-12-01 14:03:05 UTC, after it had seen alice's phone's bookmark of 2026-12-01 14:03:00 UTC."
    public static func why(user: String, articleId: String, field: StateField, current: FieldCell?,
                           history: [HistoryEntry]) -> String {
        guard let current else {
            return "It is \(shown(field, nil)): no device of \(user) has changed it."
        }
        let value = current.write
        let opening = "It is \(shown(field, value.value)) because \(user)'s \(value.deviceId) \(action(field, value.value)) at \(time(value.hlc))"
        guard let index = history.lastIndex(where: { $0.outcome == .applied && $0.write == value }) else {
            return opening + ". The server keeps no history of that change (it is older than the history's retention, "
                + "or was made before the history was recorded)."
        }
        let entry = history[index]
        var text = opening
        switch entry.rule {
        case .firstWrite, .rejected:
            text += "; no device had changed it before."
            if entry.restored { text += " It was given back by that device after the server's database was restored." }
        case .causallyLater:
            if let against = entry.against {
                text += against.deviceId.isExactly(value.deviceId)
                    ? ", after its own \(noun(field, against.value)) of \(time(against.hlc))."
                    : ", after it had seen \(user)'s \(against.deviceId)'s \(noun(field, against.value)) of \(time(against.hlc))."
            } else {
                text += "."
            }
        case .agreeing:
            text += entry.against.map { ", agreeing with \(user)'s \($0.deviceId)'s \(noun(field, $0.value)) of \(time($0.hlc)) (the later of the two counts)." } ?? "."
        case .lastWriterWins, .addWins, .restoreReplay:
            text += "."
            if let against = entry.against {
                text += " \(user)'s \(against.deviceId) had \(action(field, against.value)) at \(time(against.hlc)), "
                    + "and neither device had seen the other's change: " + ruleClause(entry.rule, field)
            }
        }
        if let clampedFrom = entry.clampedFrom {
            text += " Its clock was ahead of the server's, so its change counts as made at the server's time "
                + "(it said \(time(clampedFrom)))."
        }
        // Writes that came later and lost to this value.
        if let lost = history[(index + 1)...].last(where: { $0.outcome == .lost }) {
            text += " Later, \(user)'s \(lost.write.deviceId) \(action(field, lost.write.value)) at \(time(lost.write.hlc)) "
                + "without having seen it; " + ruleClause(lost.rule, field)
        }
        return text
    }

    /// Why the concurrent write lost, as a clause ending in a period.
    static func ruleClause(_ rule: HistoryRule, _ field: StateField) -> String {
        switch rule {
        case .addWins: return "a bookmark wins over a removal made at the same time, whatever the clocks (rule add_wins)."
        case .restoreReplay:
            return "after the server's database was restored, what each device had seen was lost, so the later clock counts (rule restore_replay)."
        default: return "of two changes made without seeing each other, the later one counts (rule last_writer_wins)."
        }
    }

    /// The field's value in a word or two: "on", "off", "read", "unread", "at 40%".
    public static func shown(_ field: StateField, _ value: FieldValue?) -> String {
        switch (field, value) {
        case (.bookmarked, .bool(true)?): return "on"
        case (.bookmarked, _): return "off"
        case (.read, .bool(true)?): return "read"
        case (.read, _): return "unread"
        case (.progress, .number(let x)?): return "at \(percent(x))"
        case (.progress, _): return "at 0%"
        }
    }

    /// What a write did: "bookmarked it", "removed the bookmark", "marked it read", "set the position to 40%".
    public static func action(_ field: StateField, _ value: FieldValue) -> String {
        switch (field, value) {
        case (.bookmarked, .bool(true)): return "bookmarked it"
        case (.bookmarked, _): return "removed the bookmark"
        case (.read, .bool(true)): return "marked it read"
        case (.read, _): return "marked it unread"
        case (.progress, .number(let x)): return "set the position to \(percent(x))"
        case (.progress, _): return "set the position to \(value)"
        }
    }

    /// A write as a thing: "bookmark", "removal of the bookmark", "read mark", "position 40%".
    static func noun(_ field: StateField, _ value: FieldValue) -> String {
        switch (field, value) {
        case (.bookmarked, .bool(true)): return "bookmark"
        case (.bookmarked, _): return "removal of the bookmark"
        case (.read, .bool(true)): return "read mark"
        case (.read, _): return "unread mark"
        case (.progress, .number(let x)): return "position \(percent(x))"
        case (.progress, _): return "position \(value)"
        }
    }

    /// A position as a percentage ("40%"); a value outside 0…1 (a refused write's) as the number
    /// it was, never converted to an integer (1e300 would trap).
    public static func percent(_ x: Double) -> String {
        (0...1).contains(x) ? "\(Int((x * 100).rounded()))%" : "\(x)"
    }

    static func time(_ hlc: HLC) -> String { Timestamp.displayText(millis: hlc.wall) }
}
