/// Whether an article can take state.
public enum ArticleAvailability: Sendable, Hashable {
    case live
    /// Tombstoned: state is still kept (rule `article_deleted`).
    case deleted
}

/// What the store read, in the push's transaction, before the push is planned.
public struct PushContext: Sendable {
    /// The user the device is bound to, `nil` for a device never seen.
    public var deviceOwner: Int64?
    /// The highest mutation id already processed for the device (0 for a new device).
    public var lastMutationId: Int64
    /// The articles the push names that exist; an id absent here is unknown. Keyed by exact
    /// bytes, as the store compares ids (see ``ExactText``).
    public var articles: [ExactText: ArticleAvailability]
    /// The user's current state rows for the articles the push names.
    public var states: [ExactText: UserArticleState]

    public init(deviceOwner: Int64?, lastMutationId: Int64, articles: [ExactText: ArticleAvailability],
                states: [ExactText: UserArticleState]) {
        self.deviceOwner = deviceOwner
        self.lastMutationId = lastMutationId
        self.articles = articles
        self.states = states
    }
}

/// A conflict log entry to write, before the store gives it an id.
public struct PlannedConflict: Sendable, Hashable {
    public var articleId: String
    public var field: StateField
    public var conflict: MergeConflict
    public var baseVersion: Int64
}

/// The result of one mutation, before the store assigns sequence numbers and conflict ids.
public struct PlannedResult: Sendable, Hashable {
    public var id: Int64
    public var outcome: MutationOutcome
    public var reason: String?
    /// Index into ``PushPlan/conflicts`` of the entry this result points to.
    public var conflictIndex: Int?
    /// The article whose state row this mutation changed, if it changed one.
    public var changedArticleId: String?
}

/// Everything a push does, decided before anything is written: the store writes it in the
/// same transaction it read the ``PushContext`` in.
public struct PushPlan: Sendable {
    public var results: [PlannedResult] = []
    /// The final state of every row the push changed, keyed by article id.
    public var changedStates: [ExactText: UserArticleState] = [:]
    /// Article ids of `changedStates` in the order they first changed (the order they take sequence numbers).
    public var changeOrder: [ExactText] = []
    public var conflicts: [PlannedConflict] = []
    /// The field history entries to write, in decision order (docs/SUPPORT.md).
    public var history: [PlannedHistory] = []
    /// The state after the push of every named article that has state (changed or not), by article id.
    public var finalStates: [ExactText: UserArticleState] = [:]
    /// The device's last processed mutation id after this push.
    public var lastMutationId: Int64
    /// Whether the device row must be created (first push with this device id).
    public var bindsDevice: Bool
}

/// The sync rules of a push, free of storage and HTTP.
public enum PushPlanner {
    /// Deliberate bugs, switched on only by the simulator's tests to prove its oracle catches them.
    package struct Defects: OptionSet, Sendable, Hashable {
        package let rawValue: Int
        package init(rawValue: Int) { self.rawValue = rawValue }
        /// Concurrent writes: the rule's loser wins.
        package static let wrongWinner = Defects(rawValue: 1)
        /// Mutation ids at or below the device's last are applied again.
        package static let appliesDuplicates = Defects(rawValue: 2)
    }

    /// Plans a push of `mutations` from `deviceId` of user `userId`.
    ///
    /// - Parameters:
    ///   - nowMillis: the server's clock, for clamping skewed HLCs.
    ///   - maxClockSkewMillis: how far ahead of `nowMillis` an HLC may be before it is clamped.
    /// - Throws: ``SyncError`` `forbidden` when the device is bound to another user.
    package static func plan(
        userId: Int64,
        deviceId: String,
        mutations: [Mutation],
        context: PushContext,
        nowMillis: Int64,
        maxClockSkewMillis: Int64,
        defects: Defects = []
    ) throws(SyncError) -> PushPlan {
        if let owner = context.deviceOwner, owner != userId {
            throw SyncError(.forbidden, "device \(deviceId) belongs to another user")
        }
        var plan = PushPlan(lastMutationId: context.lastMutationId, bindsDevice: context.deviceOwner == nil)
        var states = context.states

        for mutation in mutations {
            guard mutation.id > plan.lastMutationId || defects.contains(.appliesDuplicates) else {
                plan.results.append(PlannedResult(id: mutation.id, outcome: .duplicate, reason: nil,
                                                  conflictIndex: nil, changedArticleId: nil))
                continue
            }
            plan.lastMutationId = max(plan.lastMutationId, mutation.id)
            func reject(_ reason: String) {
                plan.results.append(PlannedResult(id: mutation.id, outcome: .rejected, reason: reason,
                                                  conflictIndex: nil, changedArticleId: nil))
                // What the device sent, as printable text: a value of another type is the client's
                // (a string may hold a NUL, which PostgreSQL's text refuses).
                var value = mutation.value
                if case .unsupported(let text) = value { value = .unsupported(PlannedHistory.printable(text)) }
                plan.history.append(PlannedHistory(
                    articleId: mutation.articleId, field: mutation.field,
                    write: FieldWrite(value: value, hlc: mutation.hlc, deviceId: deviceId, mutationId: mutation.id),
                    clampedFrom: nil, baseVersion: mutation.baseVersion, restored: mutation.restored, outcome: .rejected,
                    rule: .rejected, reason: PlannedHistory.printable(reason), against: nil,
                    version: states[mutation.articleId.exact]?.version ?? 0,
                    articleDeleted: context.articles[mutation.articleId.exact] == .deleted, conflictIndex: nil))
            }
            let articleKey = mutation.articleId.exact
            guard let availability = context.articles[articleKey] else {
                reject("unknown article \(mutation.articleId)")
                continue
            }
            if let reason = mutation.field.validationFailure(for: mutation.value) {
                reject(reason)
                continue
            }

            var write = FieldWrite(value: mutation.value, hlc: mutation.hlc, deviceId: deviceId, mutationId: mutation.id)
            var noticeIndex: Int?
            // Saturating: a server clock or skew bound near Int64.max must not trap.
            let (bound, overflow) = nowMillis.addingReportingOverflow(maxClockSkewMillis)
            if mutation.hlc.wall > (overflow ? .max : bound) {
                let stamped = write
                write.hlc = HLC(wall: nowMillis, counter: mutation.hlc.counter)
                plan.conflicts.append(PlannedConflict(
                    articleId: mutation.articleId, field: mutation.field,
                    conflict: MergeConflict(rule: .clockSkew, winner: write, loser: stamped),
                    baseVersion: mutation.baseVersion))
                noticeIndex = plan.conflicts.count - 1
            }

            var state = states[articleKey] ?? UserArticleState(articleId: mutation.articleId)
            let previous = state[mutation.field]
            var decision = MergeRules.decide(
                field: mutation.field, current: previous, incoming: write, baseVersion: mutation.baseVersion,
                restored: mutation.restored)
            if defects.contains(.wrongWinner), let conflict = decision.conflict, let loser = conflict.loser {
                decision = MergeDecision(applies: !decision.applies,
                                         conflict: MergeConflict(rule: conflict.rule, winner: loser, loser: conflict.winner),
                                         basis: decision.basis)
            }
            var conflictIndex: Int?
            if let conflict = decision.conflict {
                plan.conflicts.append(PlannedConflict(
                    articleId: mutation.articleId, field: mutation.field, conflict: conflict,
                    baseVersion: mutation.baseVersion))
                conflictIndex = plan.conflicts.count - 1
            }
            if decision.applies {
                state.version += 1
                state[mutation.field] = FieldCell(write: write, setAtVersion: state.version)
                states[articleKey] = state
                if plan.changedStates.updateValue(state, forKey: articleKey) == nil {
                    plan.changeOrder.append(articleKey)
                }
                if availability == .deleted {
                    plan.conflicts.append(PlannedConflict(
                        articleId: mutation.articleId, field: mutation.field,
                        conflict: MergeConflict(rule: .articleDeleted, winner: write, loser: previous?.write),
                        baseVersion: mutation.baseVersion))
                    noticeIndex = noticeIndex ?? plan.conflicts.count - 1
                }
            }
            let lost = !decision.applies && decision.conflict != nil
            // An agreeing write older than the value changes nothing, and the value explains itself.
            if decision.applies || lost {
                plan.history.append(PlannedHistory(
                    articleId: mutation.articleId, field: mutation.field, write: write,
                    clampedFrom: write.hlc == mutation.hlc ? nil : mutation.hlc, baseVersion: mutation.baseVersion,
                    restored: mutation.restored, outcome: lost ? .lost : .applied, rule: decision.basis, reason: nil,
                    against: previous?.write, version: state.version, articleDeleted: availability == .deleted,
                    conflictIndex: conflictIndex ?? noticeIndex))
            }
            plan.results.append(PlannedResult(
                id: mutation.id,
                outcome: lost ? .superseded : .applied,
                reason: lost ? "a concurrent write won under rule \(decision.conflict!.rule.rawValue)" : nil,
                conflictIndex: conflictIndex ?? noticeIndex,
                changedArticleId: decision.applies ? mutation.articleId : nil))
        }
        plan.finalStates = states
        return plan
    }
}
