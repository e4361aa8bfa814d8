import AsyncHTTPClient
import CompressNIO
import Foundation
import GRDB
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncSQLiteStore
import ReaderSyncServer
import ReaderSyncService

/// What `reader-sync bench` runs.
public struct BenchmarkOptions: Sendable {
    /// JSON Lines corpus; generated when `nil`.
    public var corpus: URL?
    /// JSON Lines delta; generated when `nil` (200 new, 100 updated, 20 deleted).
    public var delta: URL?
    /// Articles to generate when there is no corpus file.
    public var articles = 20_000
    public var users = 200
    public var devicesPerUser = 3
    public var mutationsPerDevice = 200
    public var pushBatch = 50
    public var concurrency = 32
    /// Run the server in this process instead of as `reader-sync serve` in its own.
    public var inProcess = false
    /// The server's `--durability`: `normal` survives a process crash, `full` also a power loss.
    public var durability = "normal"
    /// Whether the servers record the field history (`serve --no-field-history` when not): to
    /// measure its cost.
    public var recordsHistory = true
    /// A PostgreSQL server to run on instead of SQLite files: its URL (any database on it; the
    /// bench creates a scratch database beside it for each run and drops it afterwards).
    public var postgresURL: String?
    /// Server processes on the one database; devices are spread over them in turn.
    public var servers = 1
    /// The `reader-sync` binary to start the server with.
    public var serverExecutable: String
    public var workDirectory: URL
    /// Scenarios to run (S0…S7, floors, scale); all but scale and S6 when empty.
    public var scenarios: Set<String> = []
    /// Articles and users of the scale run.
    public var scaleArticles = 200_000
    public var scaleUsers = 2_000
    /// S6: devices of one reader holding live streams, and the changes the writer pushes one at a time.
    public var liveDevices = 1_000
    public var liveRounds = 50

    public init(serverExecutable: String, workDirectory: URL) {
        self.serverExecutable = serverExecutable
        self.workDirectory = workDirectory
    }

    /// 2,000 articles and 20 users: a smoke run of every scenario in well under a minute.
    public mutating func applySmallPreset() {
        articles = 2_000
        users = 20
        retention = .small
    }

    /// The retention scenario's size (``applySmallPreset()`` makes it small too).
    public var retention = RetentionSimulation()

    func runs(_ scenario: String) -> Bool {
        ["scale", "S6", "retention"].contains(scenario) ? scenarios.contains(scenario) || scenarios.contains("all")
            : scenarios.isEmpty || scenarios.contains(scenario) || scenarios.contains("all")
    }

    /// Whether only S6 and the retention scenario were asked for: they need none of the
    /// reference workload (S0…S5).
    var runsLiveOnly: Bool { !scenarios.isEmpty && scenarios.isSubset(of: ["S6", "retention"]) }
}

/// Every figure of a benchmark run, with its parameters and the machine.
public struct BenchmarkReport: Sendable, Codable {
    public struct Parameters: Sendable, Codable {
        public var articles: Int
        public var corpusBytes: Int
        public var deltaLines: Int
        public var users: Int
        public var devices: Int
        public var mutationsPerDevice: Int
        public var pushBatch: Int
        public var concurrency: Int
        public var serverInProcess: Bool
        public var durability: String
        public var corpusSource: String
    }

    public struct Machine: Sendable, Codable {
        public var cores: Int
        public var memoryBytes: UInt64
        public var os: String
        public var build: String
    }

    public var parameters: Parameters
    public var machine: Machine
    /// name → value, e.g. "S0.articlesPerSecond".
    public var figures: [String: Double] = [:]
    /// Figures over time, e.g. "retention" → one row per simulated day (`docs/plots/retention.py`).
    public var series: [String: [[String: Double]]] = [:]
    public var notes: [String] = []

    /// A table for people.
    public var text: String {
        var lines = ["ReaderSync benchmark · \(parameters.articles) articles (\(parameters.corpusSource)), \(parameters.users) users × "
            + "\(parameters.devices / max(parameters.users, 1)) devices · server \(parameters.serverInProcess ? "in process" : "in its own process")",
                     "machine: \(machine.cores) cores, \(machine.memoryBytes / (1 << 30)) GiB, \(machine.os), \(machine.build) build", ""]
        let width = (figures.keys.map(\.count).max() ?? 10) + 2
        for key in figures.keys.sorted() {
            let value = figures[key]!
            let text = value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.2f", value)
            lines.append(key.padding(toLength: width, withPad: " ", startingAt: 0) + text)
        }
        lines += notes.map { "note: \($0)" }
        return lines.joined(separator: "\n")
    }
}

/// The reference sync workload, end to end over a real loopback socket (see docs/PERFORMANCE.md).
public enum Benchmark {
    public static func run(_ options: BenchmarkOptions, log: @Sendable (String) -> Void = { _ in }) async throws -> BenchmarkReport {
        try FileManager.default.createDirectory(at: options.workDirectory, withIntermediateDirectories: true)
        let corpus: [String]
        let delta: [String]
        let source: String
        if options.runsLiveOnly {
            // S6 and the retention scenario make their own articles.
            (corpus, delta, source) = ([], [], "none (\(options.scenarios.sorted().joined(separator: ", ")) only)")
        } else if let file = options.corpus {
            corpus = try lines(of: file)
            delta = try options.delta.map(lines(of:)) ?? []
            source = file.lastPathComponent
        } else {
            corpus = BenchCorpus.corpus(count: options.articles, seed: 7)
            delta = BenchCorpus.delta(count: corpus.count, new: 200, updated: 100, deleted: 20, seed: 7)
            source = "generated"
        }
        var report = BenchmarkReport(
            parameters: .init(articles: corpus.count, corpusBytes: corpus.reduce(0) { $0 + $1.utf8.count + 1 }, deltaLines: delta.count,
                              users: options.users, devices: options.users * options.devicesPerUser,
                              mutationsPerDevice: options.mutationsPerDevice, pushBatch: options.pushBatch,
                              concurrency: options.concurrency, serverInProcess: options.inProcess, durability: options.durability,
                              corpusSource: source),
            machine: .init(cores: ProcessInfo.processInfo.activeProcessorCount, memoryBytes: ProcessInfo.processInfo.physicalMemory,
                           os: ProcessInfo.processInfo.operatingSystemVersionString, build: isDebugBuild ? "debug" : "release"))
        if isDebugBuild { report.notes.append("debug build: figures are not representative; use swift run -c release") }

        let adminToken = Tokens.generate()
        let databases = try BenchDatabases(options)
        let server = try await databases.startServers(name: "bench-server", adminToken: adminToken)
        let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                configuration: .init(decompression: .enabled(limit: .ratio(100))))
        do {
            if !options.runsLiveOnly {
                try await workload(corpus: corpus, delta: delta, options: options, server: server, client: client, into: &report, log: log)
            }
            if options.runs("S6") {
                try await live(options: options, adminToken: adminToken, databases: databases, into: &report, log: log)
            }
            if options.runs("retention") {
                try await retention(options.retention, options: options, into: &report, log: log)
            }
        } catch {
            try? await client.shutdown()
            await server.stop()
            await databases.dropAll()
            throw error
        }
        if options.runs("scale") {
            let scaleServer = try await databases.startServers(name: "bench-scale", adminToken: adminToken)
            do {
                let probe = try await scaleProbe(articles: options.scaleArticles, users: options.scaleUsers, perUser: 50,
                                                 server: scaleServer, client: client, concurrency: options.concurrency, log: log)
                report.figures["scale.deltaPullMilliseconds"] = probe.deltaPullMilliseconds
                report.figures["scale.deltaChanges"] = Double(probe.deltaChanges)
                report.figures["scale.statePullMilliseconds"] = probe.statePullMilliseconds
                report.figures["scale.states"] = Double(probe.states)
                if let base = report.figures["scale.base.deltaPullMilliseconds"], base > 0 {
                    report.figures["scale.deltaPullRatio"] = probe.deltaPullMilliseconds / base
                }
                if let base = report.figures["scale.base.statePullMilliseconds"], base > 0 {
                    report.figures["scale.statePullRatio"] = probe.statePullMilliseconds / base
                }
            } catch {
                await scaleServer.stop()
                try? await client.shutdown()
                await server.stop()
                await databases.dropAll()
                throw error
            }
            await scaleServer.stop()
        }
        try await client.shutdown()
        await server.stop()
        await databases.dropAll()
        // Last, so that the pages they hold do not count in the workload's peak memory.
        if options.runsLiveOnly {
            // Nothing else was asked for.
        } else if options.postgresURL != nil, options.runs("floors") {
            report.notes.append("floors: measured on SQLite only (each storage step alone, without HTTP)")
        } else if options.runs("floors") {
            log("floors: each step alone, without HTTP")
            try await floors(corpus: corpus, options: options, into: &report)
        }
        return report
    }

    static var isDebugBuild: Bool {
        #if DEBUG
        true
        #else
        false
        #endif
    }

    static func lines(of file: URL) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: file.path) else { throw SimulationError("cannot read \(file.path)") }
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// Runs `body` on each element, at most `concurrency` at once.
    static func forEach<T: Sendable>(_ items: [T], concurrency: Int, _ body: @escaping @Sendable (T) async throws -> Void) async throws {
        _ = try await map(items, concurrency: concurrency) { try await body($0) }
    }

    /// `body` of each element, at most `concurrency` at once, in the elements' order.
    static func map<T: Sendable, R: Sendable>(_ items: [T], concurrency: Int,
                                               _ body: @escaping @Sendable (T) async throws -> R) async throws -> [R] {
        try await withThrowingTaskGroup(of: (Int, R).self) { group in
            var results = [R?](repeating: nil, count: items.count)
            var next = 0
            func addNext() {
                guard next < items.count else { return }
                let index = next
                let item = items[index]
                group.addTask { (index, try await body(item)) }
                next += 1
            }
            for _ in 0..<max(concurrency, 1) { addNext() }
            while let (index, result) = try await group.next() {
                results[index] = result
                addNext()
            }
            return results.map { $0! }
        }
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
    }

    /// The storage layer alone: the same rows written, the same pages read and encoded, without HTTP.
    static func floors(corpus: [String], options: BenchmarkOptions, into report: inout BenchmarkReport) async throws {
        let path = options.workDirectory.appendingPathComponent("bench-floor.sqlite").path
        let store = try SQLiteSyncStore(path: path)
        let service = try await SyncService(store: store)
        let clock = ContinuousClock()
        var start = clock.now
        var index = 0
        while index < corpus.count {
            let batch = corpus[index..<min(index + 500, corpus.count)].joined(separator: "\n")
            _ = try await service.ingest(jsonLines: Array(batch.utf8))
            index += 500
        }
        report.figures["floor.S0.articlesPerSecond"] = Double(corpus.count) / seconds(clock.now - start)

        let user = try await store.createUser(name: "floor", tokenHash: Tokens.hash("floor"), now: "2026-11-28T00:00:00Z")
        start = clock.now
        var cursor: String?
        var articles = 0
        var pages: [ByteBuffer] = []
        while true {
            let page = try await service.pull(user: user, cursor: cursor, limit: 500)
            // Encoded as the pull route does.
            pages.append(ByteBuffer(bytes: ResponseEncoder.encode(page)))
            articles += page.articles.count
            cursor = page.cursor
            if !page.hasMore { break }
        }
        report.figures["floor.S1.articlesPerSecond"] = Double(articles) / seconds(clock.now - start)
        report.figures["floor.S1.jsonBytes"] = Double(pages.reduce(0) { $0 + $1.readableBytes })
        try clientFloors(pages: pages, articles: articles, options: options, into: &report)
    }

    /// What each step after the server's read and encode costs on the same pages, alone: the
    /// server's gzip, and the client's gunzip, JSON decoding and store writes.
    static func clientFloors(pages: [ByteBuffer], articles: Int, options: BenchmarkOptions, into report: inout BenchmarkReport) throws {
        let clock = ContinuousClock()
        func rate(_ start: ContinuousClock.Instant) -> Double { Double(articles) / seconds(clock.now - start) }
        var start = clock.now
        var compressed: [ByteBuffer] = []
        for page in pages { compressed.append(Gzip.compress(page, level: Gzip.defaultLevel)) }
        report.figures["floor.S1.gzipArticlesPerSecond"] = rate(start)
        report.figures["floor.S1.gzipRatio"] = Double(pages.reduce(0) { $0 + $1.readableBytes })
            / Double(compressed.reduce(0) { $0 + $1.readableBytes })
        start = clock.now
        var plain: [Data] = []
        // zlib, as the client's HTTP stack inflates.
        for var page in compressed { plain.append(Data(try page.decompress(with: .gzip()).readableBytesView)) }
        report.figures["floor.S1.gunzipArticlesPerSecond"] = rate(start)
        start = clock.now
        let decoder = JSONDecoder()
        let decoded = try plain.map { try decoder.decode(PullResponse.self, from: $0) }
        report.figures["floor.S1.decodeArticlesPerSecond"] = rate(start)
        let path = options.workDirectory.appendingPathComponent("bench-floor-device.sqlite").path
        let store = try ReaderStore(path: path, deviceId: "floor-device")
        start = clock.now
        for page in decoded { try store.apply(page) }
        report.figures["floor.S1.storeArticlesPerSecond"] = rate(start)
        try searchFloor(store: store, articles: decoded.flatMap(\.articles), into: &report)
    }

    /// Offline search over the device store S1 filled: 200 queries made of the corpus's own
    /// title words (100 whole words, 50 three-letter prefixes, 50 pairs), 20 hits each with
    /// snippets; and the full-text index's size.
    static func searchFloor(store: ReaderStore, articles: [ArticleDTO], into report: inout BenchmarkReport) throws {
        let words = articles.enumerated().compactMap { index, article -> String? in
            let titleWords = ReaderStore.words(of: article.title).filter { $0.count >= 4 }
            return titleWords.isEmpty ? nil : titleWords[index % titleWords.count]
        }
        guard words.count >= 200 else { return }
        let step = words.count / 200
        var queries: [String] = []
        for i in 0..<200 {
            let word = words[i * step]
            switch i % 4 {
            case 0, 1: queries.append(word)
            case 2: queries.append(String(word.prefix(3)))
            default: queries.append(word + " " + words[(i * step + step / 2) % words.count])
            }
        }
        let clock = ContinuousClock()
        var times: [Double] = []
        var hits = 0
        for query in queries {
            let start = clock.now
            hits += try store.search(query, limit: 20).count
            times.append(seconds(clock.now - start) * 1000)
        }
        report.figures["floor.search.queryMillisecondsP50"] = percentile(times, 0.5)
        report.figures["floor.search.queryMillisecondsP95"] = percentile(times, 0.95)
        report.figures["floor.search.queryMillisecondsMax"] = times.max() ?? 0
        report.figures["floor.search.hitsPerQuery"] = Double(hits) / Double(queries.count)
        report.figures["floor.search.articles"] = Double(articles.count)
        let (index, total) = try store.dbPool.read { db in
            (try Int.fetchOne(db, sql: "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'articleSearch%'") ?? 0,
             try Int.fetchOne(db, sql: "SELECT sum(pgsize) FROM dbstat") ?? 0)
        }
        report.figures["floor.search.indexBytes"] = Double(index)
        report.figures["floor.search.storeBytes"] = Double(total)
    }
}
