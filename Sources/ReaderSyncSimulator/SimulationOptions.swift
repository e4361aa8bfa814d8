import Foundation

/// A kind of fault the simulator injects.
public enum FaultKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// The request never reaches the server.
    case requestLost = "request_lost"
    /// The server applies the request, and the response never reaches the device.
    case responseLost = "response_lost"
    /// The request reaches the server twice.
    case duplicateRequest = "duplicate_request"
    /// The server fails with a 5xx in the middle of a sync.
    case serverError = "server_error"
    /// The device's clock jumps ahead or behind by minutes to days.
    case clockSkew = "clock_skew"
    /// The device's process dies mid-sync and the app reopens its store from the file.
    case processKilled = "process_killed"
    /// The server's database is restored from an earlier snapshot under a new epoch.
    case serverRestored = "server_restored"
}

/// Which server the devices talk to.
public enum SimulationServer: Sendable, Hashable {
    /// A server in this process on a temporary database, driven through its real router, on a virtual clock.
    case inProcess
    /// Running `reader-sync serve` processes on one database, over HTTP: each device sends its
    /// requests to the servers in turn, as a load balancer without affinity would; users are
    /// created and articles published through the first server's admin API.
    case remote(urls: [String], adminToken: String)

    /// One running server.
    public static func remote(url: String, adminToken: String) -> Self {
        .remote(urls: [url], adminToken: adminToken)
    }
}

/// Deliberately broken variants, to prove the oracle catches what it claims to.
package enum SimulationDefect: String, Sendable, Hashable, CaseIterable {
    /// The client lets a pulled value overwrite a pending local change.
    case clientSkipsPendingOverlay = "client_skips_pending_overlay"
    /// The client's observations miss changes of the reader's state (as they did while that
    /// table was WITHOUT ROWID, which SQLite's update hook does not report).
    case clientObservationMissesStates = "client_observation_misses_states"
    /// The server's merge picks the wrong winner between concurrent writes.
    case mergePicksWrongWinner = "merge_picks_wrong_winner"
    /// The server applies a duplicate push again.
    case serverAppliesDuplicates = "server_applies_duplicates"
}

/// Everything that shapes a simulation run.
public struct SimulationOptions: Sendable {
    public var users = 5
    public var devicesPerUser = 3
    public var steps = 500
    /// Probability that an online device goes offline at a step (it comes back with the same probability reversed).
    public var offlineRate = 0.3
    /// Probability that a sync meets a fault.
    public var faultRate = 0.05
    public var articles = 200
    /// Probability per step that the newsroom publishes, corrects or retracts an article.
    public var churn = 0.05
    public var seed: UInt64 = 1
    /// Where device stores (and the in-process server database) live.
    public var dataDirectory: URL
    public var server: SimulationServer = .inProcess
    /// The faults that may be injected (`serverRestored` only in process).
    public var faults: Set<FaultKind> = Set(FaultKind.allCases)
    /// Devices syncing at once. 1: one device acts or syncs per step. More: each step is a round in
    /// which every device may act and every online device syncs, this many at a time.
    public var concurrency = 1
    /// Live mode: after the steps, no device calls `sync()`; each runs `SyncEngine.live()` and the
    /// run waits until every device holds the server's state (the server's event streams telling
    /// them when to pull), then the oracle checks as usual.
    public var live = false
    /// In process: now and then a month passes on the virtual clock and the server compacts
    /// (articles kept 45 days, tombstones 30), so articles expire (bookmarked ones stay pinned)
    /// and devices away meanwhile meet `410 cursor_expired`.
    public var compaction = false
    /// Partial devices: some devices keep a storage window of their newest 4 to 12 articles, some
    /// follow two or three of the six sections (and now and then change which, or follow all
    /// again), some both; corrections sometimes move an article to another section. The oracle
    /// checks that each holds what its window and sections call for, plus its bookmarks.
    public var partial = false
    package var defect: SimulationDefect?

    public init(dataDirectory: URL) {
        self.dataDirectory = dataDirectory
    }

    /// The `reader-sync simulate` command that runs these options again (the admin token elided).
    public var replayCommand: String {
        var parts = ["reader-sync simulate", "--seed \(seed)", "--users \(users)", "--devices \(devicesPerUser)", "--steps \(steps)",
                     "--offline-rate \(offlineRate)", "--fault-rate \(faultRate)", "--articles \(articles)", "--churn \(churn)"]
        if concurrency > 1 { parts.append("--concurrency \(concurrency)") }
        if live { parts.append("--live") }
        if compaction { parts.append("--compaction") }
        if partial { parts.append("--partial") }
        if case .remote(let urls, _) = server { parts.append(urls.map { "--server \($0)" }.joined(separator: " ") + " --admin-token …") }
        return parts.joined(separator: " ")
    }
}
