import Foundation
import HummingbirdTesting
import Logging
import ReaderSyncCore
@testable import ReaderSyncSQLiteStore
@testable import ReaderSyncServer
@testable import ReaderSyncService
@testable import ReaderSyncSimulator
import ReaderSyncTestSupport
import Testing

func options(seed: UInt64, steps: Int = 250, faults: Set<FaultKind> = Set(FaultKind.allCases), faultRate: Double = 0.2) -> SimulationOptions {
    var o = SimulationOptions(dataDirectory: TestDirectory.path("simulation"))  // the simulator creates it
    o.seed = seed
    o.steps = steps
    o.users = 3
    o.devicesPerUser = 3
    o.articles = 60
    o.churn = 0.1
    o.faultRate = faultRate
    o.faults = faults
    return o
}

func expectAllPass(_ report: SimulationReport, sourceLocation: SourceLocation = #_sourceLocation) {
    for invariant in report.invariants where !invariant.passed {
        Issue.record("seed \(report.seed): \(invariant.name) failed: \(invariant.detail ?? "")", sourceLocation: sourceLocation)
    }
    #expect(report.invariants.count == 8, sourceLocation: sourceLocation)
}

@Suite("Simulation: convergence under faults")
struct SimulationTests {
    @Test("all faults together, several seeds: every invariant holds", arguments: [1, 2, 3, 4] as [UInt64])
    func allFaults(seed: UInt64) async throws {
        let report = try await Simulation.run(options(seed: seed, steps: 350, faultRate: 0.3))
        expectAllPass(report)
        #expect(report.syncs > 50 && report.actions > 100)
        #expect(report.faults.values.reduce(0, +) > 5)
    }

    @Test("compaction among the events (months passing, articles expiring, tombstones and expired articles removed), with every fault: devices away meanwhile pull anew, bookmarked expired articles stay, and every invariant holds")
    func compaction() async throws {
        var removed = 0
        var expired = 0
        var expiredArticles = 0
        for seed in [2, 3, 12] as [UInt64] {
            var o = options(seed: seed, steps: 800)
            o.users = 4
            o.offlineRate = 0.5
            o.faultRate = 0.1
            o.compaction = true
            let report = try await Simulation.run(o)
            expectAllPass(report)
            #expect(report.newsroomEvents["month passed", default: 0] > 1)
            removed += report.newsroomEvents["tombstones removed", default: 0]
            expired += report.cursorsExpired
            expiredArticles += report.newsroomEvents["expired articles removed", default: 0]
        }
        #expect(removed > 0)
        #expect(expired > 0)
        #expect(expiredArticles > 0)
    }

    @Test("partial devices (windows, sections followed and changed, articles moved between sections) with compaction and every fault: each device holds what its window and sections call for, and every invariant holds")
    func partialDevices() async throws {
        var moved = 0
        var followedAnew = 0
        for seed in [3, 5, 21] as [UInt64] {
            var o = options(seed: seed, steps: 700)
            o.users = 4
            o.faultRate = 0.1
            o.churn = 0.1
            o.partial = true
            o.compaction = true
            let report = try await Simulation.run(o)
            expectAllPass(report)
            moved += report.newsroomEvents["moved to another section", default: 0]
            followedAnew += report.newsroomEvents["sections followed anew", default: 0]
        }
        #expect(moved > 0)
        #expect(followedAnew > 0)
    }

    @Test("each fault kind on its own: every invariant holds", arguments: FaultKind.allCases)
    func eachFault(kind: FaultKind) async throws {
        let report = try await Simulation.run(options(seed: 11, steps: 250, faults: [kind], faultRate: 0.5))
        expectAllPass(report)
        #expect((report.faults[kind.rawValue] ?? 0) > 0, "the fault \(kind) was never injected")
        #expect(Set(report.faults.keys) == [kind.rawValue])
        if kind == .processKilled { #expect(report.reopenedStores > 0, "a killed app opens its store again from the file") }
    }

    @Test("the same seed gives the same trace and the same digest; another seed another")
    func deterministic() async throws {
        let first = try await Simulation.run(options(seed: 77, steps: 200))
        let second = try await Simulation.run(options(seed: 77, steps: 200))
        #expect(first.digest == second.digest)
        #expect(first.actions == second.actions && first.syncs == second.syncs && first.faults == second.faults)
        #expect(first.mutations == second.mutations && first.conflicts == second.conflicts)
        let other = try await Simulation.run(options(seed: 78, steps: 200))
        #expect(other.digest != first.digest)
        #expect(first.replayCommand.contains("--seed 77"))
    }

    @Test("live mode: after the faults, every device in SyncEngine.live() with no sync() call, in process and over HTTP; every invariant holds")
    func live() async throws {
        var inProcess = options(seed: 21, steps: 200, faultRate: 0.3)
        inProcess.live = true
        let report = try await Simulation.run(inProcess)
        expectAllPass(report)
        #expect(report.liveConvergenceSeconds != nil && report.replayCommand.contains("--live"))

        try await withHTTPServer { url, adminToken in
            var overHTTP = options(seed: 22, steps: 150, faults: Set(FaultKind.allCases).subtracting([.serverRestored]))
            overHTTP.server = .remote(url: url, adminToken: adminToken)
            overHTTP.live = true
            let report = try await Simulation.run(overHTTP)
            expectAllPass(report)
            #expect(report.liveConvergenceSeconds != nil)
            // Every device held a stream to the end of the run; the server lets go of them at their next heartbeat.
        }
    }

    @Test("against the real HTTP server on a loopback port", .timeLimit(.minutes(3)))
    func overHTTP() async throws {
        try await withHTTPServer { url, adminToken in
            var o = options(seed: 5, steps: 150, faults: Set(FaultKind.allCases).subtracting([.serverRestored]))
            o.server = .remote(url: url, adminToken: adminToken)
            let report = try await Simulation.run(o)
            expectAllPass(report)
            #expect(report.bytesDown > 0 && report.syncs > 20)
            #expect(report.faults[FaultKind.serverRestored.rawValue] == nil)
        }
    }
}

/// Runs `body` with a real server (a fresh SQLite store) on a loopback port: its URL and admin token.
func withHTTPServer(_ body: @escaping @Sendable (_ url: String, _ adminToken: String) async throws -> Void) async throws {
    let directory = try TestDirectory.make("simulation-http")
    let store = try SQLiteSyncStore(path: directory.appendingPathComponent("server.sqlite").path)
    let adminToken = "http-simulation-admin-token"
    try await store.setAdminTokenHash(Tokens.hash(adminToken))
    let service = try await SyncService(store: store)
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    let app = buildApplication(service: service, configuration: .init(port: 0), logger: logger)
    try await app.test(.live) { client in
        try await body("http://127.0.0.1:\(try #require(client.port))", adminToken)
    }
}

@Suite("The oracle catches deliberately broken variants")
struct OracleTests {
    func failing(_ defect: SimulationDefect, faults: Set<FaultKind>, seeds: [UInt64]) async throws -> [String] {
        var failed: [String] = []
        for seed in seeds {
            var o = options(seed: seed, steps: 250, faults: faults, faultRate: 0.4)
            o.defect = defect
            let report = try await Simulation.run(o)
            failed += report.invariants.filter { !$0.passed }.map(\.name)
            if !failed.isEmpty { break }
        }
        return failed
    }

    @Test("a client that skips the pending overlay breaks 'pending changes stay visible'")
    func skipsOverlay() async throws {
        let failed = try await failing(.clientSkipsPendingOverlay, faults: [], seeds: [1, 2, 3])
        #expect(failed.contains("pending changes stay visible"))
    }

    @Test("observations that miss the reader's state break 'observers show what the store holds'")
    func observationMissesStates() async throws {
        let failed = try await failing(.clientObservationMissesStates, faults: [], seeds: [1, 2, 3])
        #expect(failed == ["observers show what the store holds"])
    }

    @Test("a merge that picks the wrong winner breaks 'server equals the reference model'")
    func wrongWinner() async throws {
        let failed = try await failing(.mergePicksWrongWinner, faults: [], seeds: [1, 2, 3])
        #expect(failed.contains("server equals the reference model"))
    }

    @Test("a server that applies a duplicate push again breaks 'exactly once'")
    func appliesDuplicates() async throws {
        let failed = try await failing(.serverAppliesDuplicates, faults: [.duplicateRequest, .responseLost], seeds: [1, 2, 3])
        #expect(failed.contains("exactly once"))
    }
}
