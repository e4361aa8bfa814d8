import ArgumentParser
import Foundation
import ReaderSyncSimulator

extension ReaderSync {
    struct Simulate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Simulate many readers' devices syncing under faults, then check that all converged and nothing was lost.",
            discussion: """
                Every device is a real client store in its own SQLite file. Faults: lost requests and \
                responses, duplicated requests, 5xx, clock skew, killed processes, and (in process) the \
                server's database restored from a snapshot. Exits 1 if an invariant fails.
                """)

        @Option(help: "Number of users.") var users = 5
        @Option(help: "Devices per user.") var devices = 3
        @Option(help: "Simulation steps.") var steps = 500
        @Option(name: .customLong("offline-rate"), help: "Fraction of time a device is offline (0…1).") var offlineRate = 0.3
        @Option(name: .customLong("fault-rate"), help: "Probability that a sync meets a fault (0…1).") var faultRate = 0.05
        @Option(help: "Articles published before the run.") var articles = 200
        @Option(help: "Probability per step of a newsroom publish, correction or retraction (0…1).") var churn = 0.05
        @Option(help: "Seed for the random choices (default: random, printed).") var seed: UInt64?
        @Option(name: .customLong("data-dir"), help: "Where device stores live (default: a new temporary directory).") var dataDir: String?
        @Option(help: "A running server's URL (default: an in-process server on a temporary database). Give it several times for several servers on one database: each device sends its requests to them in turn; the first one also takes the admin requests.") var server: [String] = []
        @Option(name: .customLong("admin-token"), help: "The admin token of --server (default: $READER_SYNC_ADMIN_TOKEN).") var adminToken: String?
        @Flag(help: "After the steps, every device runs in live mode (SyncEngine.live()) instead of calling sync(), until all hold the server's state.")
        var live = false
        @Flag(help: "In process: now and then a month passes and the server compacts (articles kept 45 days, tombstones 30); devices away meanwhile pull anew.")
        var compaction = false
        @Flag(help: "Partial devices: some keep a window of their newest 4-12 articles, some follow 2 or 3 of the six sections (changing them now and then), some both; corrections sometimes move an article to another section.")
        var partial = false
        @Option(help: "Devices syncing at once. 1: one device acts or syncs per step; more: each step is a round in which every online device syncs, this many at a time.") var concurrency = 1
        @Flag(help: "Print the report as JSON.") var json = false

        func validate() throws {
            guard users >= 1, devices >= 1 else { throw ValidationError("--users and --devices must be at least 1") }
            guard (1...10_000).contains(concurrency) else { throw ValidationError("--concurrency must be from 1 to 10000") }
            guard steps >= 0, articles >= 1 else { throw ValidationError("--steps must not be negative and --articles at least 1") }
            for (name, value) in [("--offline-rate", offlineRate), ("--fault-rate", faultRate), ("--churn", churn)] where !(0...1).contains(value) {
                throw ValidationError("\(name) must be from 0 to 1")
            }
            if compaction && !server.isEmpty { throw ValidationError("--compaction runs only on the in-process server (leave out --server)") }
            if !server.isEmpty && resolvedAdminToken == nil {
                throw ValidationError("--server needs --admin-token (or READER_SYNC_ADMIN_TOKEN)")
            }
        }

        var resolvedAdminToken: String? {
            adminToken ?? ProcessInfo.processInfo.environment["READER_SYNC_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        }

        func run() async throws {
            let seed = self.seed ?? UInt64.random(in: 1...999_999)
            let directory = dataDir.map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("reader-sync-sim-\(seed)-\(UUID().uuidString.prefix(8))")
            var options = SimulationOptions(dataDirectory: directory)
            options.users = users
            options.devicesPerUser = devices
            options.steps = steps
            options.offlineRate = offlineRate
            options.faultRate = faultRate
            options.articles = articles
            options.churn = churn
            options.seed = seed
            options.concurrency = concurrency
            options.live = live
            options.compaction = compaction
            options.partial = partial
            if !server.isEmpty, let token = resolvedAdminToken { options.server = .remote(urls: server, adminToken: token) }
            if !json { say("seed \(seed) · data in \(directory.path)") }

            let showProgress = isatty(STDERR_FILENO) == 1 && !json
            let report: SimulationReport
            do {
                report = try await Simulation.run(options) { step, total in
                    guard showProgress, step % 10 == 0 || step == total else { return }
                    FileHandle.standardError.write(Data("\r\u{1B}[K  step \(step)/\(total)".utf8))
                }
            } catch let error as SimulationError {
                throw CLIError("the simulation could not run: \(error)")
            }
            if showProgress { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            say(json ? try prettyJSON(report) : report.text)
            if let failure = report.firstFailure {
                throw CLIError("invariant failed: \(failure.name): \(failure.detail ?? "")")
            }
        }
    }
}
