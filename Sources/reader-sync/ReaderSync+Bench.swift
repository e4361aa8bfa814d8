import ArgumentParser
import Foundation
import ReaderSyncPostgres
import ReaderSyncSimulator

extension ReaderSync {
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure the reference sync workload end to end over a loopback socket (run it in a release build).",
            discussion: """
                S0 ingest, S1 initial sync into a real client store, S2 delta sync, S3 concurrent pushes, \
                S4 convergence, S5 every device pulling its user's states after a push burst, S7 the Google Reader API \
                (10,000 item ids, 150 items' contents), S8 a first sync with a 500-article window (newest first), \
                and the storage-only floors; \
                S6 (only when asked for) live updates: devices of one reader in live mode while a writer pushes one change at a time; \
                retention (only when asked for) 180 simulated days of publishing, reading and nightly compaction, \
                day by day in the JSON's series (docs/plots/retention.py draws them). The server runs as `reader-sync serve` in its \
                own process unless --in-process. Results: docs/PERFORMANCE.md.
                """)

        @Option(help: "Corpus as JSON Lines (default: generated, like ../shared/bench/gen_articles.py --count 20000 --seed 7).")
        var corpus: String?
        @Option(help: "Delta as JSON Lines (default: generated: 200 new, 100 updated, 20 deleted).")
        var delta: String?
        @Flag(help: "2,000 articles and 20 users: a smoke run in well under a minute.")
        var small = false
        @Option(name: .customLong("scenario"), help: "Run only these scenarios (S0…S8, floors, scale, retention, or all); repeatable. Default: all but scale (200,000 articles, minutes), S6 and retention (180 simulated days, minutes).")
        var scenarios: [String] = []
        @Flag(name: .customLong("in-process"), help: "Run the server in this process instead of its own.")
        var inProcess = false
        @Option(name: .customLong("work-dir"), help: "Where the databases go, kept afterwards (default: a new temporary directory, removed at the end).")
        var workDir: String?
        @Option(help: "The server's durability: normal (survives a process crash) or full (also a power loss).")
        var durability = "normal"
        @Option(name: .customLong("db"), help: "Run on PostgreSQL: a URL of any database on the server (default: $READER_SYNC_DB when it is a PostgreSQL URL, else SQLite files in the work directory). Each run creates a scratch database beside it (needs CREATEDB) and drops it at the end.")
        var database: String?
        @Option(help: "Server processes on the one database; the devices are spread over them in turn.")
        var servers = 1

        @Option(name: .customLong("live-devices"), help: "S6: devices of one reader holding live streams.")
        var liveDevices = 1_000
        @Option(name: .customLong("live-rounds"), help: "S6: changes the writer pushes, one at a time.")
        var liveRounds = 50

        @Flag(name: .customLong("no-history"), help: "Servers without the field history (serve --no-field-history): to measure its cost.")
        var noHistory = false

        @Flag(help: "Print the figures as one JSON object.")
        var json = false

        func validate() throws {
            let known = ["S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "floors", "scale", "retention", "all"]
            if let unknown = scenarios.first(where: { !known.contains($0) }) {
                throw ValidationError("unknown scenario \(unknown); choose from \(known.joined(separator: ", "))")
            }
            guard (1...5_000).contains(liveDevices), (1...10_000).contains(liveRounds) else {
                throw ValidationError("--live-devices must be from 1 to 5000 and --live-rounds from 1 to 10000")
            }
            if delta != nil && corpus == nil { throw ValidationError("--delta needs --corpus") }
            guard ["normal", "full"].contains(durability) else { throw ValidationError("--durability must be normal or full") }
            guard (1...16).contains(servers) else { throw ValidationError("--servers must be from 1 to 16") }
            if let postgresURL {
                do { _ = try PostgresDatabaseURL(postgresURL) } catch let error as PostgresURLError { throw ValidationError("--db: \(error.description)") }
                if inProcess { throw ValidationError("--in-process runs on SQLite only; leave it out with --db postgresql://…") }
            } else if let database {
                throw ValidationError("--db must be a PostgreSQL URL (postgresql://…); on SQLite the bench makes its own files, got \(database)")
            }
            if servers > 1 && inProcess { throw ValidationError("--servers needs server processes; leave out --in-process") }
        }

        func run() async throws {
            let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let directory = workDir.map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("reader-sync-bench-\(UUID().uuidString.prefix(8))")
            var options = BenchmarkOptions(serverExecutable: executable, workDirectory: directory)
            if small { options.applySmallPreset() }
            options.corpus = corpus.map { URL(fileURLWithPath: $0) }
            options.delta = delta.map { URL(fileURLWithPath: $0) }
            options.inProcess = inProcess
            options.durability = durability
            options.recordsHistory = !noHistory
            options.postgresURL = postgresURL
            options.servers = servers
            options.liveDevices = liveDevices
            options.liveRounds = liveRounds
            // S1–S4 build on S0; a scenario list selects what is reported beyond that.
            options.scenarios = Set(scenarios)
            let verbose = !json
            // A temporary work directory holds hundreds of MB of databases: removed at the end, also on
            // failure. One given with --work-dir is kept for inspection.
            defer { if workDir == nil { try? FileManager.default.removeItem(at: directory) } }
            let report = try await Benchmark.run(options) { line in if verbose { warn(line) } }
            say(json ? try prettyJSON(report) : report.text)
        }

        /// `--db`, else `READER_SYNC_DB` when it names PostgreSQL.
        var postgresURL: String? {
            if let database { return PostgresDatabaseURL.isPostgresURL(database) ? database : nil }
            let environment = ProcessInfo.processInfo.environment["READER_SYNC_DB"] ?? ""
            return PostgresDatabaseURL.isPostgresURL(environment) ? environment : nil
        }
    }
}
