import ReaderSyncCore
import Synchronization

/// Every push the server may have processed, in the order it processed them: with what it
/// answered, or, when no answer came, as unanswered until the device's later answers tell
/// whether the server committed it. The reference model replays them in this order
/// (``ReferenceModel/catchUp(with:from:)``).
///
/// A push gets no answer when the connection breaks after the request left: a server SIGKILLed
/// after its commit and before its response, or before its commit, or a request that never got
/// through. The device keeps the mutations in its outbox and sends them again, and the server
/// answers `duplicate` for the ids it already processed.
///
/// ## How an unanswered push is decided
/// A push is one transaction, which also stores the device's last processed mutation id. The
/// pushes of one user reach the server one at a time (``PushOrder``), and the server commits one
/// user's pushes one at a time (SQLite has one writer; PostgreSQL holds the user's advisory lock
/// until the COMMIT ends, and finishes a COMMIT it received even when the server that sent it was
/// killed meanwhile). So an unanswered push, recorded at the place it held the user's turn, that
/// committed did so before every push of the user recorded after it. (A push the server still ran
/// after the device gave up waiting could commit later; the simulator waits 120 s for an answer.)
///
/// Let the *fresh* ids of an unanswered push `P` be those above the device's last processed id
/// before it (from the answers before it, and the unanswered pushes before it found committed).
/// `P` committed exactly when its fresh ids were processed by it. The next answer of the same
/// device, from the same database, that speaks of them tells:
/// - a fresh id answered `applied`, `superseded` or `rejected`: `P` did not commit (it would
///   have made that id a duplicate);
/// - fresh ids answered `duplicate` only: something processed them since the answer before `P`,
///   and only an unanswered push can have (an answered one would have answered them otherwise):
///   `P`, or a later unanswered resend that also carried them. The first is taken to have
///   committed them, and its results are what the server would have answered (the reference
///   model infers them when it replays the push). Resends of one device carry the same oldest
///   outbox entries, so the choice only matters if the user's other devices wrote between the
///   two attempts; such a choice is flagged ``UnansweredCommit/ambiguous``;
/// - no fresh id named, but a last processed id below them all: `P` did not commit.
///
/// An answer that names none of them and has a last processed id at or above one leaves `P`
/// unanswered. Whatever is still unanswered at the end of the run is decided by
/// ``settleUnanswered(finalStates:)``.
final class PushRecorder: Sendable {
    /// One push, at its place in the server's order.
    struct Entry: Sendable {
        var incarnation: Int
        var user: String
        var request: PushRequest
        /// The server's clock when the push was sent.
        var serverMillis: Int64
        var answer: Answer
        /// What the server did with each mutation: the answer's results; for an unanswered push
        /// found committed, the results the reference model inferred when it replayed it; empty
        /// until then, and for a push that did not commit or stayed undecided.
        var results: [MutationResult]
    }

    /// What became of a push.
    enum Answer: Sendable, Hashable {
        /// The server answered.
        case answered(PushResponse)
        /// No answer came, and nothing has told yet whether the server committed the push.
        case unanswered
        /// No answer came; a later answer, or the server's final state, shows the server committed it.
        case committed(UnansweredCommit)
        /// No answer came; a later answer shows the server did not commit it, or it could change
        /// nothing (every id in it had been processed before).
        case notCommitted
        /// No answer came, and nothing told before the run ended or its database was replaced:
        /// left out of the reference model.
        case undecided
    }

    /// For the report: what became of a push that got no answer (`committed`, `not_committed`,
    /// `undecided`, or `unanswered` if asked before the end); `nil` for an answered push.
    static func fate(of answer: Answer) -> String? {
        switch answer {
        case .answered: nil
        case .unanswered: "unanswered"
        case .committed: "committed"
        case .notCommitted: "not_committed"
        case .undecided: "undecided"
        }
    }

    /// What the recorder knows of an unanswered push the server committed, for the reference model.
    struct UnansweredCommit: Sendable, Hashable {
        /// The device's last processed mutation id before the push: its ids up to there were duplicates.
        var lastProcessedBefore: Int64
        /// Articles the push named that had no state after it, as the evidence shows: the push's
        /// mutations on them were rejected (unknown article), since a merged one leaves state.
        var articlesWithoutState: Set<ExactText>
        /// Whether a later unanswered attempt of the device carried the same ids with writes of the
        /// user between the two, so that it, not this one, may have been the one that committed.
        var ambiguous = false
        /// Whether the server's final state decided it, rather than a later answer.
        var decidedAtEnd = false
    }

    /// One device's pushes within one server database.
    fileprivate struct DeviceKey: Hashable {
        var incarnation: Int
        var device: ExactText
    }

    fileprivate struct State {
        var entries: [Entry] = []
        /// The positions of each device's entries, in order.
        var positions: [DeviceKey: [Int]] = [:]
        /// The positions of each device's unanswered entries, in order.
        var unanswered: [DeviceKey: [Int]] = [:]
        var incarnation = 0
    }

    private let state = Mutex(State())

    /// The current server database: it changes when the in-process server is restored from a snapshot.
    var incarnation: Int { state.withLock { $0.incarnation } }

    /// Starts a new server database. Pushes to the old one that are still unanswered stay
    /// undecided: the reference model of the new database starts from a snapshot and never replays them.
    func startNewIncarnation() {
        state.withLock { s in
            for position in s.unanswered.values.joined() { s.entries[position].answer = .undecided }
            s.unanswered = [:]
            s.incarnation += 1
        }
    }

    /// Records a push the server answered, and decides the device's unanswered pushes it tells about.
    func record(user: String, request: PushRequest, response: PushResponse, serverMillis: Int64) {
        state.withLock { s in
            let position = s.append(Entry(incarnation: s.incarnation, user: user, request: request, serverMillis: serverMillis,
                                          answer: .answered(response), results: response.results))
            s.decideUnanswered(by: position)
        }
    }

    /// Records a push that got no answer: the server may or may not have committed it.
    func recordUnanswered(user: String, request: PushRequest, serverMillis: Int64) {
        state.withLock { s in
            let position = s.append(Entry(incarnation: s.incarnation, user: user, request: request, serverMillis: serverMillis,
                                          answer: .unanswered, results: []))
            s.unanswered[DeviceKey(incarnation: s.incarnation, device: request.deviceId.exact), default: []].append(position)
        }
    }

    /// Stores the results inferred for an unanswered push found committed, when the model replays it.
    func setResults(_ results: [MutationResult], at position: Int) {
        state.withLock { $0.entries[position].results = results }
    }

    /// Decides, at the end of the run, the unanswered pushes no later answer told about (a device
    /// whose last syncs failed), from the server's final state (user → article id → state).
    ///
    /// Sound only one way: a field whose final writer is the device with the HLC of a fresh
    /// mutation of the push was written by that push (no answered push processed that id, or it
    /// would have decided the push), so the push committed. A push that left no such trace — all
    /// its writes overwritten, lost, or stamped too far ahead and clamped — may have committed or
    /// not: it stays ``Answer/undecided`` and out of the model, and the oracle says so if the
    /// model and the server then differ. A device's outbox tells nothing more: the ids of an
    /// unanswered push leave it only through an answer, and that answer decides the push.
    func settleUnanswered(finalStates: [String: [String: StateDTO]]) {
        state.withLock { s in
            for (key, positions) in s.unanswered {
                for position in positions {
                    let entry = s.entries[position]
                    let before = s.lastProcessed(before: position, key)
                    let fresh = entry.request.mutations.filter { $0.id > before }
                    let states = finalStates[entry.user] ?? [:]
                    let device = entry.request.deviceId
                    if fresh.isEmpty {
                        s.entries[position].answer = .notCommitted
                    } else if fresh.contains(where: { m in
                        states[m.articleId]?.writers[m.field].map { $0.deviceId.isExactly(device) && $0.hlc == m.hlc } ?? false
                    }) {
                        let stateless = Set(fresh.filter { states[$0.articleId] == nil }.map(\.articleId.exact))
                        s.entries[position].answer = .committed(UnansweredCommit(
                            lastProcessedBefore: before, articlesWithoutState: stateless, decidedAtEnd: true))
                    } else {
                        s.entries[position].answer = .undecided
                    }
                }
            }
            s.unanswered = [:]
        }
    }

    var all: [Entry] { state.withLock { $0.entries } }
    var count: Int { state.withLock { $0.entries.count } }

    /// The entries from `position` on.
    func entries(from position: Int) -> ArraySlice<Entry> {
        state.withLock { s in s.entries[min(position, s.entries.count)...] }
    }
}

extension PushRecorder.State {
    mutating func append(_ entry: PushRecorder.Entry) -> Int {
        entries.append(entry)
        let position = entries.count - 1
        positions[PushRecorder.DeviceKey(incarnation: entry.incarnation, device: entry.request.deviceId.exact), default: []].append(position)
        return position
    }

    /// The device's last processed mutation id just before `position`: the last answer's, or the
    /// highest id of an unanswered push found committed since.
    func lastProcessed(before position: Int, _ key: PushRecorder.DeviceKey) -> Int64 {
        var committed: Int64 = 0
        for earlier in (positions[key] ?? []).reversed() where earlier < position {
            switch entries[earlier].answer {
            case .answered(let response): return max(committed, response.lastMutationId)
            case .committed: committed = max(committed, entries[earlier].request.mutations.map(\.id).max() ?? 0)
            case .unanswered, .notCommitted, .undecided: break
            }
        }
        return committed
    }

    /// Decides what the answer at `position` tells about the same device's unanswered pushes
    /// (the rules are in ``PushRecorder``'s documentation).
    mutating func decideUnanswered(by position: Int) {
        let answer = entries[position]
        guard case .answered(let response) = answer.answer else { return }
        let key = PushRecorder.DeviceKey(incarnation: answer.incarnation, device: answer.request.deviceId.exact)
        guard let waiting = unanswered[key], !waiting.isEmpty else { return }
        let outcomes = Dictionary(response.results.map { ($0.id, $0.outcome) }, uniquingKeysWith: { first, _ in first })
        // Articles the answer named and has no state for: they had none after any earlier push either.
        let stateless = Set(answer.request.mutations.map(\.articleId.exact)).subtracting(response.states.map(\.articleId.exact))
        var still: [Int] = []
        for candidate in waiting {
            let pushed = entries[candidate].request.mutations
            let before = lastProcessed(before: candidate, key)
            let fresh = pushed.filter { $0.id > before }
            let told = fresh.compactMap { outcomes[$0.id] }
            if fresh.isEmpty || told.contains(where: { $0 != .duplicate }) {
                entries[candidate].answer = .notCommitted
            } else if !told.isEmpty {
                let duplicates = Set(fresh.map(\.id).filter { outcomes[$0] == .duplicate })
                entries[candidate].answer = .committed(PushRecorder.UnansweredCommit(
                    lastProcessedBefore: before,
                    articlesWithoutState: stateless.intersection(fresh.map(\.articleId.exact)),
                    ambiguous: mayBeAnother(than: candidate, committed: duplicates, among: waiting, answer: position)))
            } else if let lowest = fresh.map(\.id).min(), response.lastMutationId < lowest {
                entries[candidate].answer = .notCommitted
            } else {
                still.append(candidate)
            }
        }
        unanswered[key] = still
    }

    /// Whether a later unanswered attempt (before the answer at `answer`) also carried `ids`, with
    /// a push of the same user between the two that the server processed.
    private func mayBeAnother(than candidate: Int, committed ids: Set<Int64>, among waiting: [Int], answer: Int) -> Bool {
        let user = entries[candidate].user
        for other in waiting where other > candidate && other < answer {
            guard entries[other].request.mutations.contains(where: { ids.contains($0.id) }) else { continue }
            let between = entries[(candidate + 1)..<other].contains { entry in
                guard entry.user == user, entry.incarnation == entries[candidate].incarnation else { return false }
                switch entry.answer {
                case .answered, .committed: return true
                case .unanswered, .notCommitted, .undecided: return false
                }
            }
            if between { return true }
        }
        return false
    }
}
