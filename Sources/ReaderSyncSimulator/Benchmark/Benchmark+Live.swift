import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncServer
import ReaderSyncService
import Synchronization

extension Benchmark {
    /// S6, live updates: `liveDevices` devices of one reader in `SyncEngine.live()` hold event
    /// streams (spread over the servers) while a writer device of the same reader pushes one
    /// change at a time; each change's latency is the time from the writer's push response to
    /// each device having the change in its store.
    static func live(options: BenchmarkOptions, adminToken: String, databases: BenchDatabases,
                     into report: inout BenchmarkReport, log: @Sendable (String) -> Void) async throws {
        let devices = options.liveDevices
        let rounds = options.liveRounds
        // The devices' streams, and the bare streams opened after them while the server may still
        // hold the devices' (it notices a closed stream at its next heartbeat).
        let server = try await databases.startServers(name: "bench-live", adminToken: adminToken, maxStreamsPerUser: 2 * devices + 10)
        // One connection per stream, plus the syncs: AsyncHTTPClient's default is 8 per host.
        var configuration = HTTPClient.Configuration(decompression: .enabled(limit: .ratio(100)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 3 * devices + 16)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            try await liveRounds(devices: devices, rounds: rounds, options: options, server: server, client: client,
                                 into: &report, log: log)
        } catch {
            try? await client.shutdown()
            await server.stop()
            throw error
        }
        try await client.shutdown()
        await server.stop()
    }

    private static func liveRounds(devices count: Int, rounds: Int, options: BenchmarkOptions, server: BenchServer, client: HTTPClient,
                                   into report: inout BenchmarkReport, log: @Sendable (String) -> Void) async throws {
        let articles = 20
        _ = try await ingest((1...articles).map { BenchCorpus.line(index: $0, revision: 0, seed: 6) }, client: client, server: server)
        let userBody = try JSONEncoder().encode(CreateUserRequest(name: "live-reader"))
        let reader = try JSONDecoder().decode(CreateUserResponse.self, from: try await admin(client, server, .POST, "/v1/admin/users", body: userBody))
        let directory = options.workDirectory.appendingPathComponent("bench-live-devices")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        let tally = LiveTally()
        log("S6: \(count) devices of one reader open live streams on \(options.servers) server(s)")
        let stores = try (0..<count).map { index in
            try ReaderStore(path: directory.appendingPathComponent("device-\(index).sqlite").path, deviceId: "live-\(index)")
        }
        let writerStore = try ReaderStore(path: directory.appendingPathComponent("writer.sqlite").path, deviceId: "live-writer")
        let pushes = PushTimer(HTTPSyncTransport(baseURL: server.url, token: reader.token, client: client))
        let writer = SyncEngine(store: writerStore, transport: pushes)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, store) in stores.enumerated() {
                let engine = SyncEngine(store: store, transport: HTTPSyncTransport(baseURL: server.url(forDevice: index + 1),
                                                                                   token: reader.token, client: client))
                group.addTask {
                    var first = true
                    for try await _ in engine.live() {
                        if first {
                            first = false
                            tally.caughtUp.withLock { $0 += 1 }
                        }
                        let want = tally.round.withLock { $0 }
                        guard want.number > 0, try store.article(id: want.article)?.progress == want.progress else { continue }
                        tally.arrived(index, inRound: want.number)
                    }
                }
            }
            _ = try await writer.sync()
            try await waitUntil(seconds: 120, "every device's first sync") { tally.caughtUp.withLock { $0 } == count }
            // Every stream open: the first sync of each is followed by its stream.
            try await Task.sleep(for: .seconds(2))
            server.meter.resetPeak()
            let cpuStart = server.meter.cpuSeconds ?? 0
            let clock = ContinuousClock()
            let start = clock.now
            var missed = 0
            var latencies: [Double] = []
            for round in 1...rounds {
                let article = String(format: "art-%06d", 1 + round % articles)
                let progress = Double(round) / Double(rounds + 1)
                try writerStore.setProgress(article, progress)
                // Known before the push, so no arrival can come before it is looked for.
                tally.begin(round: round, article: article, progress: progress)
                _ = try await writer.sync()
                let (arrived, lacking) = try await tally.collect(count, answeredAt: pushes.lastAnswer)
                latencies += arrived
                missed += lacking
                // Past the coalescing interval, so rounds do not share an event.
                try await Task.sleep(for: .milliseconds(100))
            }
            let wall = seconds(clock.now - start)
            report.figures["S6.devices"] = Double(count)
            report.figures["S6.rounds"] = Double(rounds)
            report.figures["S6.latencyP50Milliseconds"] = percentile(latencies, 0.5)
            report.figures["S6.latencyP99Milliseconds"] = percentile(latencies, 0.99)
            report.figures["S6.latencyMaxMilliseconds"] = latencies.max() ?? 0
            if options.inProcess {
                report.notes.append("S6: server memory and CPU not reported in process (they would include the 1,000 devices)")
            } else {
                report.figures["S6.serverPeakRSSBytes"] = Double(server.meter.peakResidentBytes ?? 0)
                report.figures["S6.serverCPUSecondsPerRound"] = ((server.meter.cpuSeconds ?? 0) - cpuStart) / Double(rounds)
                report.figures["S6.serverCPUShare"] = ((server.meter.cpuSeconds ?? 0) - cpuStart) / wall
            }
            if missed > 0 { report.notes.append("S6: \(missed) device arrivals missing after 30 s (counted as 30 s)") }
            if options.postgresURL == nil && options.servers > 1 {
                report.notes.append("S6: on SQLite, servers do not wake each other's streams: devices on other servers learn of a change at their next heartbeat")
            }
            group.cancelAll()
        }
        try await eventRounds(streams: count, rounds: rounds, server: server, token: reader.token, client: client,
                              writer: writer, pushes: pushes, writerStore: writerStore, articles: articles, into: &report, log: log)
    }

    /// The server's part alone: `streams` event streams with no client store behind them; each
    /// change's latency is the time from the writer's push response to each stream's `changes`
    /// event (what a device would then pull).
    private static func eventRounds(streams count: Int, rounds: Int, server: BenchServer, token: String, client: HTTPClient,
                                    writer: SyncEngine, pushes: PushTimer, writerStore: ReaderStore, articles: Int,
                                    into report: inout BenchmarkReport, log: @Sendable (String) -> Void) async throws {
        log("S6: \(count) bare event streams (no client store)")
        let tally = LiveTally()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                let transport = HTTPSyncTransport(baseURL: server.url(forDevice: index + 1), token: token, client: client)
                group.addTask {
                    var opened = false
                    // From the beginning: the first event comes at once, telling that the stream is open.
                    for try await event in try await transport.events(cursor: nil) {
                        if !opened {
                            opened = true
                            tally.caughtUp.withLock { $0 += 1 }
                        }
                        let round = tally.round.withLock { $0.number }
                        guard case .changes = event, round > 0 else { continue }
                        tally.arrived(index, inRound: round)
                    }
                }
            }
            try await waitUntil(seconds: 120, "every stream open") { tally.caughtUp.withLock { $0 } == count }
            var latencies: [Double] = []
            var missed = 0
            for round in 1...rounds {
                try writerStore.setProgress(String(format: "art-%06d", 1 + round % articles), Double(round) / Double(rounds + 2))
                tally.begin(round: round, article: "", progress: 0)
                _ = try await writer.sync()
                let (arrived, lacking) = try await tally.collect(count, answeredAt: pushes.lastAnswer)
                latencies += arrived
                missed += lacking
                try await Task.sleep(for: .milliseconds(100))
            }
            report.figures["S6.eventLatencyP50Milliseconds"] = percentile(latencies, 0.5)
            report.figures["S6.eventLatencyP99Milliseconds"] = percentile(latencies, 0.99)
            if missed > 0 { report.notes.append("S6: \(missed) stream events missing after 30 s (counted as 30 s)") }
            group.cancelAll()
        }
    }

    /// Waits, polling every 2 ms, until `condition` holds.
    ///
    /// - Throws: ``SimulationError`` after `seconds`.
    private static func waitUntil(seconds limit: Double, _ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(limit * 1000))
        while !condition() {
            guard ContinuousClock.now < deadline else { throw SimulationError("S6: \(what) did not happen within \(limit) s") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// What S6's devices and writer share: the round being measured and who has its change.
private final class LiveTally: Sendable {
    struct Round: Sendable {
        var number = 0
        /// The article and progress value the writer pushed in this round.
        var article = ""
        var progress = 0.0
        /// When each device (by index) had this round's change.
        var arrivals: [Int: ContinuousClock.Instant] = [:]
    }

    let round = Mutex(Round())
    /// Devices (or streams) that are up.
    let caughtUp = Mutex(0)

    func begin(round number: Int, article: String, progress: Double) {
        round.withLock { $0 = Round(number: number, article: article, progress: progress) }
    }

    /// Records device `index`'s arrival, if `number` is still the round being measured.
    func arrived(_ index: Int, inRound number: Int) {
        let now = ContinuousClock.now
        round.withLock { if $0.number == number, $0.arrivals[index] == nil { $0.arrivals[index] = now } }
    }

    /// Waits (30 s at most) for `count` arrivals, and returns each one's latency after
    /// `answeredAt` in milliseconds (one the server told before the writer had its answer counts
    /// 0; one missing counts 30 s) and how many were missing.
    func collect(_ count: Int, answeredAt: ContinuousClock.Instant) async throws -> (latencies: [Double], missing: Int) {
        let deadline = ContinuousClock.now + .seconds(30)
        while round.withLock({ $0.arrivals.count }) < count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
        }
        let arrivals = round.withLock { Array($0.arrivals.values) }
        let missing = count - arrivals.count
        return (arrivals.map { max(0, Benchmark.seconds($0 - answeredAt) * 1000) } + Array(repeating: 30_000, count: missing), missing)
    }
}

/// The writer's transport, noting when each push's answer came (its sync pulls after it).
private final class PushTimer: SyncTransport {
    private let inner: any SyncTransport
    private let answered = Mutex(ContinuousClock.now)

    init(_ inner: any SyncTransport) { self.inner = inner }

    /// When the last push's answer came.
    var lastAnswer: ContinuousClock.Instant { answered.withLock { $0 } }

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        let response = try await inner.push(request)
        let now = ContinuousClock.now
        answered.withLock { $0 = now }
        return response
    }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }
}
