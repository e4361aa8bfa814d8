import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ReaderSyncCore
import ReaderSyncSQLiteStore
import ReaderSyncServer
import ReaderSyncService
import ReaderSyncSimulator
import ServiceLifecycle
import UnixSignals

extension ReaderSync {
    struct Demo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "See it work: a temporary server, three readers with three devices each, faults, the report and the conflict log.")

        @Option(help: "Seed for the simulated readers (default: random, printed).") var seed: UInt64?
        @Option(help: "Simulation steps.") var steps = 300

        func run() async throws {
            let seed = self.seed ?? UInt64.random(in: 1...999_999)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("reader-sync-demo-\(seed)-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let databasePath = directory.appendingPathComponent("demo.sqlite").path
            let store = try SQLiteSyncStore(path: databasePath)
            let adminToken = Tokens.generate()
            try await store.setAdminTokenHash(Tokens.hash(adminToken))
            let service = try await SyncService(store: store)
            var logger = Logger(label: "reader-sync-demo")
            logger.logLevel = .error

            let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
            let app = buildApplication(
                service: service, configuration: ServerConfiguration(host: "127.0.0.1", port: 0), logger: logger,
                onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) })
            let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))

            let report: SimulationReport = try await withThrowingTaskGroup(of: SimulationReport?.self) { tasks in
                tasks.addTask {
                    try await group.run()
                    return nil
                }
                var port = 0
                for await p in ports {
                    port = p
                    break
                }
                guard port > 0 else { throw CLIError("the demo server did not start") }
                let url = "http://127.0.0.1:\(port)"
                say("ReaderSync demo")
                say("  server: \(url) (in this process), database \(databasePath)")
                say("  admin token of that database: \(adminToken)")
                say("  3 readers × 3 devices, \(steps) steps, faults on, seed \(seed)")
                say("")
                var options = SimulationOptions(dataDirectory: directory.appendingPathComponent("devices"))
                options.users = 3
                options.devicesPerUser = 3
                options.steps = steps
                options.articles = 150
                options.churn = 0.08
                options.faultRate = 0.1
                options.seed = seed
                options.server = .remote(url: url, adminToken: adminToken)
                let result: SimulationReport
                do {
                    result = try await Simulation.run(options)
                } catch {
                    await group.triggerGracefulShutdown()
                    throw error
                }
                await group.triggerGracefulShutdown()
                return result
            }

            say(report.text)
            say("")
            // Real conflicts first: they say most about the merge rules. Clock adjustments (the demo
            // skews device clocks) and notices follow, apart, so neither reads as the other.
            var real = ConflictQuery(limit: 10)
            real.rules = Set(ConflictRule.allCases.filter { $0.kind == .conflict })
            var adjustments = ConflictQuery(limit: 5)
            adjustments.rules = Set(ConflictRule.allCases.filter { $0.kind != .conflict })
            let conflicts = try await service.conflicts(real)
            let others = try await service.conflicts(adjustments)
            say("Conflicts (newest 10), as `reader-sync conflicts --rule last_writer_wins,add_wins,restore_replay` prints them:")
            say(conflicts.isEmpty ? "  (no conflicts this time)" : conflictTable(conflicts))
            say("")
            say("Clock adjustments and notices (newest 5), as `reader-sync conflicts --rule clock_skew,article_deleted` prints them:")
            say(others.isEmpty ? "  (none this time)" : conflictTable(others))
            let example = conflicts.first ?? others.first
            if let example {
                say("")
                say("\(conflictHeading(example)) in words:")
                say("  " + terminalSafe(example.explanation))
            }
            say("")
            say("Try next:")
            say("  reader-sync conflicts --db \(databasePath) --user user1")
            say("  reader-sync conflicts --db \(databasePath) --rule last_writer_wins,add_wins   # real conflicts only")
            if let example { say("  reader-sync conflicts show \(example.id) --db \(databasePath)") }
            say("  reader-sync serve --db \(databasePath)            # the demo's data, served on :8080")
            say("  reader-sync simulate --seed \(seed) --fault-rate 0.3    # in process, with server restores too")
            if let failure = report.firstFailure {
                throw CLIError("invariant failed: \(failure.name): \(failure.detail ?? "")")
            }
        }
    }
}
