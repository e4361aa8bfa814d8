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
        let server = try await databases.startServers(name: "bench-live", adminToken: adminToken, maxStreamsPerUser: devices + 10)
        // One connection per stream, plus the syncs: AsyncHTTPClient's default is 8 per host.
        var configuration = HTTPClient.Configuration(decompression: .enabled(limit: .ratio(100)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 2 * devices + 16)
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
                        guard let want = tally.expected.withLock({ $0 }),
                              try store.article(id: want.article)?.progress == want.progress else { continue }
                        let now = ContinuousClock.now
                        tally.arrivals.withLock { if $0[index] == nil { $0[index] = now } }
                    }
                }
            }
            let writerStore = try ReaderStore(path: directory.appendingPathComponent("writer.sqlite").path, deviceId: "live-writer")
            let writer = SyncEngine(store: writerStore, transport: HTTPSyncTransport(baseURL: server.url, token: reader.token, client: client))
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
                tally.arrivals.withLock { $0.removeAll() }
                try writerStore.setProgress(article, progress)
                // Known before the push, so no arrival can come before it is looked for.
                tally.expected.withLock { $0 = (article, progress) }
                _ = try await writer.sync()
                let answered = clock.now
                do {
                    try await waitUntil(seconds: 30, "round \(round)") { tally.arrivals.withLock { $0.count } == count }
                } catch {
                    missed += count - tally.arrivals.withLock { $0.count }
                }
                // A device the server woke before the writer had its response counts 0.
                latencies += tally.arrivals.withLock { $0.values.map { max(0, seconds($0 - answered) * 1000) } }
                // Past the coalescing interval, so rounds do not share an event.
                try await Task.sleep(for: .milliseconds(100))
            }
            let wall = seconds(clock.now - start)
            report.figures["S6.devices"] = Double(count)
            report.figures["S6.rounds"] = Double(rounds)
            report.figures["S6.latencyP50Milliseconds"] = percentile(latencies, 0.5)
            report.figures["S6.latencyP99Milliseconds"] = percentile(latencies, 0.99)
            report.figures["S6.latencyMaxMilliseconds"] = latencies.max() ?? 0
            report.figures["S6.serverPeakRSSBytes"] = Double(server.meter.peakResidentBytes ?? 0)
            report.figures["S6.serverCPUSecondsPerRound"] = ((server.meter.cpuSeconds ?? 0) - cpuStart) / Double(rounds)
            report.figures["S6.serverCPUShare"] = ((server.meter.cpuSeconds ?? 0) - cpuStart) / wall
            if missed > 0 { report.notes.append("S6: \(missed) device arrivals missing after 30 s") }
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

/// What S6's devices and writer share.
private final class LiveTally: Sendable {
    /// What the writer pushed last: the article and its progress value.
    let expected = Mutex<(article: String, progress: Double)?>(nil)
    /// When each device (by index) had the current round's change in its store.
    let arrivals = Mutex<[Int: ContinuousClock.Instant]>([:])
    /// Devices whose first sync is done.
    let caughtUp = Mutex(0)
}
