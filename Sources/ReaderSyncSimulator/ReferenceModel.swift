import ReaderSyncCore

/// An independent model of the server's merge, written apart from `MergeRules`/`PushPlanner`
/// from the rules as documented, and fed every mutation the server accepted, in server order.
/// At the end its state must equal the server's (invariant 5). Device ids compare by their
/// bytes, as the protocol documents (see `ExactText`).
struct ReferenceModel: Sendable {
    struct Cell: Sendable, Hashable {
        var value: FieldValue
        var wall: Int64
        var counter: Int64
        var device: String
        var setAt: Int64
    }

    struct Row: Sendable, Hashable {
        var version: Int64 = 0
        var cells: [StateField: Cell] = [:]

        var read: Bool { cells[.read]?.value == .bool(true) }
        var bookmarked: Bool { cells[.bookmarked]?.value == .bool(true) }
        var progress: Double { if case .number(let x)? = cells[.progress]?.value { x } else { 0 } }
    }

    /// user → article → row
    private(set) var rows: [String: [String: Row]] = [:]
    let skewBoundMillis: Int64

    init(skewBoundMillis: Int64 = 5 * 60 * 1000) {
        self.skewBoundMillis = skewBoundMillis
    }

    /// Forgets every user's state of an article compaction removed with its states.
    mutating func removeArticle(_ articleId: String) {
        for user in rows.keys { rows[user]?[articleId] = nil }
    }

    /// Replays one push as the server answered it: applied and superseded mutations are merged;
    /// duplicates and rejected ones changed nothing.
    mutating func replay(user: String, request: PushRequest, results: [MutationResult], serverMillis: Int64) {
        let outcomes = Dictionary(results.map { ($0.id, $0.outcome) }, uniquingKeysWith: { first, _ in first })
        for mutation in request.mutations {
            guard let outcome = outcomes[mutation.id], outcome == .applied || outcome == .superseded else { continue }
            merge(user: user, device: request.deviceId, mutation: mutation, serverMillis: serverMillis)
        }
    }

    /// Replays a push the server committed without its answer reaching the device (see
    /// ``PushRecorder``), and returns what the server would have answered, from the protocol's
    /// rules: an id at or below the device's last processed id is a `duplicate`; a mutation on an
    /// article that had no state after the push (unknown to the server), or with a value its field
    /// cannot take, is `rejected`; the rest merge, `applied` when the write won or met the same
    /// value, `superseded` when a different value won.
    mutating func replayUnanswered(user: String, request: PushRequest, commit: PushRecorder.UnansweredCommit,
                                   serverMillis: Int64) -> [MutationResult] {
        var lastProcessed = commit.lastProcessedBefore
        return request.mutations.map { mutation in
            guard mutation.id > lastProcessed else { return MutationResult(id: mutation.id, outcome: .duplicate) }
            lastProcessed = mutation.id
            if commit.articlesWithoutState.contains(mutation.articleId.exact) {
                return MutationResult(id: mutation.id, outcome: .rejected, reason: "unknown article \(mutation.articleId) (inferred)")
            }
            if !Self.fits(mutation.value, mutation.field) {
                return MutationResult(id: mutation.id, outcome: .rejected, reason: "\(mutation.field) cannot be \(mutation.value) (inferred)")
            }
            let won = merge(user: user, device: request.deviceId, mutation: mutation, serverMillis: serverMillis)
            return MutationResult(id: mutation.id, outcome: won ? .applied : .superseded)
        }
    }

    /// Whether a field can take a value: `read` and `bookmarked` a boolean, `progress` a number from 0 to 1.
    private static func fits(_ value: FieldValue, _ field: StateField) -> Bool {
        switch (field, value) {
        case (.read, .bool), (.bookmarked, .bool): true
        case (.progress, .number(let x)): x >= 0 && x <= 1
        default: false
        }
    }

    /// Merges one write; returns whether its value is the field's value now (it won, or met the same value).
    @discardableResult
    private mutating func merge(user: String, device: String, mutation m: Mutation, serverMillis: Int64) -> Bool {
        // A stamp too far ahead of the server counts as stamped at server time.
        let wall = m.hlc.wall > serverMillis + skewBoundMillis ? serverMillis : m.hlc.wall
        var row = rows[user]?[m.articleId] ?? Row()
        let wins: Bool
        if m.restored, let cell = row.cells[m.field] {
            // Given back after a reset: the later stamp wins, whatever the field.
            wins = (wall, m.hlc.counter, device.exact) > (cell.wall, cell.counter, cell.device.exact)
        } else if let cell = row.cells[m.field], m.baseVersion < cell.setAt, !cell.device.isExactly(device) {
            // Neither write had seen the other.
            let later = (wall, m.hlc.counter, device.exact) > (cell.wall, cell.counter, cell.device.exact)
            if cell.value == m.value {
                wins = later
            } else if m.field == .bookmarked {
                wins = m.value == .bool(true)
            } else {
                wins = later
            }
        } else {
            wins = true
        }
        guard wins else { return row.cells[m.field]?.value == m.value }
        row.version += 1
        row.cells[m.field] = Cell(value: m.value, wall: wall, counter: m.hlc.counter, device: device, setAt: row.version)
        rows[user, default: [:]][m.articleId] = row
        return true
    }
}
