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

    /// Replays one push as the server answered it: applied and superseded mutations are merged;
    /// duplicates and rejected ones changed nothing.
    mutating func replay(user: String, request: PushRequest, response: PushResponse, serverMillis: Int64) {
        let outcomes = Dictionary(response.results.map { ($0.id, $0.outcome) }, uniquingKeysWith: { first, _ in first })
        for mutation in request.mutations {
            guard let outcome = outcomes[mutation.id], outcome == .applied || outcome == .superseded else { continue }
            merge(user: user, device: request.deviceId, mutation: mutation, serverMillis: serverMillis)
        }
    }

    private mutating func merge(user: String, device: String, mutation m: Mutation, serverMillis: Int64) {
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
        guard wins else { return }
        row.version += 1
        row.cells[m.field] = Cell(value: m.value, wall: wall, counter: m.hlc.counter, device: device, setAt: row.version)
        rows[user, default: [:]][m.articleId] = row
    }
}
