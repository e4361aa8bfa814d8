import Foundation

/// One invariant the oracle checked.
public struct InvariantResult: Sendable, Hashable, Codable {
    public var name: String
    public var passed: Bool
    /// For a failure: the first case found, naming the user, article and field involved.
    public var detail: String?
}

/// What a simulation did and whether everything converged with nothing lost.
public struct SimulationReport: Sendable, Codable {
    public var seed: UInt64
    public var server: String
    public var users: Int
    public var devices: Int
    public var steps: Int
    public var articles: Int
    public var actions = 0
    public var syncs = 0
    public var failedSyncs = 0
    /// Stores opened again from their files after a `process_killed` fault (the app restarting).
    public var reopenedStores = 0
    /// Requests the server turned away as busy (503) that the SDK retried after waiting.
    public var busyRetries = 0
    /// Syncs that met `410 cursor_expired` (a device away while compaction removed changes after
    /// its cursor, `--compaction`) and pulled anew.
    public var cursorsExpired = 0
    /// Syncs that ended in a 5xx answer (injected `server_error` faults are not answers, and not counted).
    public var serverErrors = 0
    /// Devices syncing at once, at most (1 in step mode).
    public var peakConcurrentSyncs = 0
    public var newsroomEvents: [String: Int] = [:]
    public var faults: [String: Int] = [:]
    public var mutations: [String: Int] = [:]
    /// Pushes that got no answer (a connection cut, a server killed), by what the device's later
    /// answers or the server's final state showed: `committed`, `not_committed`, or `undecided`
    /// (left out of the reference model). Empty when every push was answered.
    public var unansweredPushes: [String: Int] = [:]
    public var conflicts: [String: Int] = [:]
    public var bytesUp = 0
    public var bytesDown = 0
    public var syncLatencyP50Millis = 0.0
    public var syncLatencyP99Millis = 0.0
    public var wallSeconds = 0.0
    /// Live mode: the seconds from every device entering `live()` to all holding the server's state.
    public var liveConvergenceSeconds: Double?
    public var invariants: [InvariantResult] = []
    /// A hash of the server's and every device's final state: equal for equal seeds (in process).
    public var digest = ""
    public var replayCommand = ""

    public var passed: Bool { invariants.allSatisfy(\.passed) }

    /// The first failing invariant, if any.
    public var firstFailure: InvariantResult? { invariants.first { !$0.passed } }

    /// A summary for people.
    public var text: String {
        func counts(_ d: [String: Int]) -> String {
            d.isEmpty ? "none" : d.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        var lines = [
            "ReaderSync simulation · seed \(seed) · \(server)",
            "  \(users) users × \(devices / max(users, 1)) devices, \(steps) steps, \(articles) articles to start",
            "  actions \(actions), syncs \(syncs) (\(failedSyncs) failed by injected faults), at most \(peakConcurrentSyncs) at once; "
                + "stores reopened after a kill \(reopenedStores)",
            "  5xx answers \(serverErrors); busy (503) answers retried by the SDK \(busyRetries); cursors expired \(cursorsExpired)",
            "  newsroom: \(counts(newsroomEvents))",
            "  faults: \(counts(faults))",
            "  mutations by outcome: \(counts(mutations))",
            "  pushes without an answer: \(counts(unansweredPushes))",
            "  conflicts by rule: \(counts(conflicts))",
            "  bytes up \(bytesUp), down \(bytesDown)",
            String(format: "  sync latency p50 %.1f ms, p99 %.1f ms; wall time %.2f s", syncLatencyP50Millis, syncLatencyP99Millis, wallSeconds),
        ]
        if let liveConvergenceSeconds {
            lines.append(String(format: "  live mode: every device in step %.2f s after entering live(), with no sync() call", liveConvergenceSeconds))
        }
        lines += [
            "Invariants:",
        ]
        for invariant in invariants {
            lines.append("  [\(invariant.passed ? "pass" : "FAIL")] \(invariant.name)" + (invariant.detail.map { ": \($0)" } ?? ""))
        }
        lines.append("digest \(digest)")
        lines.append("replay: \(replayCommand)")
        return lines.joined(separator: "\n")
    }
}
