import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncServer
import ReaderSyncService

extension Benchmark {
    static func admin(_ client: HTTPClient, _ server: BenchServer, _ method: HTTPMethod, _ path: String, body: Data) async throws -> Data {
        var request = HTTPClientRequest(url: server.url + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(server.adminToken)")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: .seconds(300))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw SimulationError("\(method) \(path) answered \(response.status.code): \(String(buffer: bytes))")
        }
        return Data(bytes.readableBytesView)
    }

    static func ingest(_ lines: [String], client: HTTPClient, server: BenchServer) async throws -> IngestReport {
        var total = IngestReport()
        var index = 0
        while index < lines.count {
            let body = Data(lines[index..<min(index + 500, lines.count)].joined(separator: "\n").utf8)
            total.add(try JSONDecoder().decode(IngestReport.self, from: try await admin(client, server, .POST, "/v1/admin/articles", body: body)))
            index += 500
        }
        return total
    }

    static func fileSize(_ path: String) -> Int {
        [path, path + "-wal"].reduce(0) { total, p in
            total + ((try? FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0)
        }
    }

    static func workload(corpus: [String], delta: [String], options: BenchmarkOptions, server: BenchServer, client: HTTPClient,
                         into report: inout BenchmarkReport, log: @Sendable (String) -> Void) async throws {
        let clock = ContinuousClock()
        let me = ProcessMeter(pid: getpid())
        // CPU seconds of the server and of this process: a mark now, and what each used since one.
        func cpuMark() -> (server: Double, client: Double) { (server.meter.cpuSeconds ?? 0, me.cpuSeconds ?? 0) }
        func recordCPU(since mark: (server: Double, client: Double), server serverKey: String, client clientKey: String?) {
            let now = cpuMark()
            report.figures[serverKey] = now.server - mark.server
            if let clientKey { report.figures[clientKey] = now.client - mark.client }
        }
        let workloadCPU = cpuMark()

        // S0: ingest through the admin API in batches of 500.
        log("S0: ingest \(corpus.count) articles")
        var start = clock.now
        let loaded = try await ingest(corpus, client: client, server: server)
        report.figures["S0.seconds"] = seconds(clock.now - start)
        report.figures["S0.articlesPerSecond"] = Double(loaded.inserted + loaded.updated + loaded.unchanged) / seconds(clock.now - start)
        if loaded.rejected > 0 { report.notes.append("S0: \(loaded.rejected) corpus lines rejected, e.g. \(loaded.errors.first?.message ?? "")") }

        // S1: a fresh device pulls everything into a real client store.
        let userBody = try JSONEncoder().encode(CreateUserRequest(name: "reader"))
        let reader = try JSONDecoder().decode(CreateUserResponse.self, from: try await admin(client, server, .POST, "/v1/admin/users", body: userBody))
        let devicePath = options.workDirectory.appendingPathComponent("bench-device.sqlite").path
        let store = try ReaderStore(path: devicePath, deviceId: "bench-device")
        let engine = SyncEngine(store: store, transport: HTTPSyncTransport(baseURL: server.url, token: reader.token, client: client),
                                pageSize: 500)
        server.meter.resetPeak()
        me.resetPeak()
        log("S1: initial sync")
        var cpu = cpuMark()
        start = clock.now
        let initial = try await engine.sync()
        let s1 = seconds(clock.now - start)
        recordCPU(since: cpu, server: "S1.serverCPUSeconds", client: options.inProcess ? nil : "S1.clientCPUSeconds")
        report.figures["S1.seconds"] = s1
        report.figures["S1.articlesPerSecond"] = Double(initial.pulledArticles) / s1
        report.figures["S1.requests"] = Double(initial.requests)
        report.figures["S1.wireBytesGzip"] = Double(initial.bytesReceived)
        report.figures["S1.clientStoreBytes"] = Double(fileSize(devicePath))
        report.figures["S1.serverPeakRSSBytes"] = Double(server.meter.peakResidentBytes ?? 0)
        if !options.inProcess { report.figures["S1.clientPeakRSSBytes"] = Double(me.peakResidentBytes ?? 0) }
        report.figures["S1.wireBytesPlain"] = Double(try await plainPullBytes(server: server, token: reader.token, client: client))
        if let plain = report.figures["S1.wireBytesPlain"], initial.bytesReceived > 0 {
            report.figures["S1.gzipRatio"] = plain / Double(initial.bytesReceived)
        }

        if options.runs("S8") {
            try await firstSync(token: reader.token, options: options, server: server, client: client, into: &report, log: log)
        }

        // S2: the delta, then a caught-up device pulls it.
        let beforeDelta = try store.cursor()
        if !delta.isEmpty {
            log("S2: delta of \(delta.count) changes")
            _ = try await ingest(delta, client: client, server: server)
            // The scale run's measure of the same delta pull, without the client store.
            let (rawMs, _, _) = try await timedPull(server: server, token: reader.token, cursor: beforeDelta, client: client)
            report.figures["scale.base.deltaPullMilliseconds"] = rawMs
            start = clock.now
            let caughtUp = try await engine.sync()
            report.figures["S2.milliseconds"] = seconds(clock.now - start) * 1000
            report.figures["S2.wireBytes"] = Double(caughtUp.bytesReceived)
            report.figures["S2.changes"] = Double(caughtUp.pulledArticles + caughtUp.pulledDeletions)
            report.figures["S2.deletions"] = Double(caughtUp.pulledDeletions)
            let expectedDeletions = delta.filter { $0.contains(#""deleted":true"#) || $0.contains(#""deleted": true"#) }.count
            if caughtUp.pulledArticles + caughtUp.pulledDeletions != delta.count || caughtUp.pulledDeletions != expectedDeletions {
                report.notes.append("S2: expected \(delta.count) changes (\(expectedDeletions) deletions), got "
                    + "\(caughtUp.pulledArticles + caughtUp.pulledDeletions) (\(caughtUp.pulledDeletions))")
            }
        }
        let afterDelta = try store.cursor()

        // S3: many devices push concurrently.
        if options.runs("S3") || options.runs("S4") {
            log("S3: \(options.users) users × \(options.devicesPerUser) devices push")
            let articleIds = (try store.articleVersions()).keys.sorted().map(\.string)
            var tokens: [String] = []
            for u in 0..<options.users {
                let body = try JSONEncoder().encode(CreateUserRequest(name: "bench\(u)"))
                tokens.append(try JSONDecoder().decode(CreateUserResponse.self, from: try await admin(client, server, .POST, "/v1/admin/users", body: body)).token)
            }
            var batches: [(user: Int, device: String, request: PushRequest)] = []
            var rng = SeededRandom(seed: 7)
            let now = Timestamp.millis(Date())
            for u in 0..<options.users {
                // Devices of a user work on an overlapping pool of articles, so concurrent writes meet.
                let pool = (0..<100).map { _ in rng.pick(articleIds) }
                for d in 0..<options.devicesPerUser {
                    let device = "bench\(u)-d\(d)"
                    var mutations: [Mutation] = []
                    for i in 1...options.mutationsPerDevice {
                        let field = rng.pick(StateField.allCases)
                        let value: FieldValue = field == .progress ? .number(Double(rng.int(in: 0...100)) / 100) : .bool(rng.chance(0.6))
                        mutations.append(Mutation(id: Int64(i), articleId: rng.pick(pool), field: field, value: value,
                                                  hlc: HLC(wall: now - Int64(rng.int(in: 0...600_000)), counter: 0), baseVersion: 0))
                    }
                    var index = 0
                    while index < mutations.count {
                        batches.append((u, device, PushRequest(deviceId: device, mutations: Array(mutations[index..<min(index + options.pushBatch, mutations.count)]))))
                        index += options.pushBatch
                    }
                }
            }
            // Batches of one device go in order; devices run concurrently, `concurrency` at a time.
            let byDevice = Dictionary(grouping: batches, by: \.device).values.map { $0 }.sorted { $0[0].device < $1[0].device }
            server.meter.resetPeak()
            let tokenList = tokens
            let devices = byDevice.enumerated().map { (index: $0.offset, batches: $0.element) }
            cpu = cpuMark()
            start = clock.now
            let results = try await map(devices, concurrency: options.concurrency) { device in
                var out: [(Double, PushResponse, String)] = []
                let url = server.url(forDevice: device.index)
                for batch in device.batches {
                    let transport = HTTPSyncTransport(baseURL: url, token: tokenList[batch.user], client: client)
                    let t0 = ContinuousClock.now
                    let response = try await transport.push(batch.request)
                    out.append((seconds(ContinuousClock.now - t0) * 1000, response.value, batch.device))
                }
                return out
            }.flatMap { $0 }
            let s3 = seconds(clock.now - start)
            recordCPU(since: cpu, server: "S3.serverCPUSeconds", client: options.inProcess ? nil : "S3.clientCPUSeconds")
            let mutationCount = batches.reduce(0) { $0 + $1.request.mutations.count }
            report.figures["S3.mutationsPerSecond"] = Double(mutationCount) / s3
            report.figures["S3.batchLatencyP50Milliseconds"] = percentile(results.map(\.0), 0.5)
            report.figures["S3.batchLatencyP99Milliseconds"] = percentile(results.map(\.0), 0.99)
            report.figures["S3.conflictsLogged"] = Double(Set(results.flatMap { $0.1.results.compactMap(\.conflictId) }).count)
            report.figures["S3.serverPeakRSSBytes"] = Double(server.meter.peakResidentBytes ?? 0)

            // S4: every device syncs; its states must equal the server's for its user.
            if options.runs("S4") {
                log("S4: convergence")
                var mismatches = 0
                var devicesByUser: [Int: [[String: StateDTO]]] = [:]
                let responsesByDevice = Dictionary(grouping: results, by: \.2)
                for (index, device) in byDevice.enumerated() {
                    // What the device knows: the states its pushes returned, then a pull from where it was
                    // after S2, never going back to an older version.
                    var states: [String: StateDTO] = [:]
                    func take(_ s: StateDTO) { if (states[s.articleId]?.version ?? -1) <= s.version { states[s.articleId] = s } }
                    for (_, response, _) in responsesByDevice[device[0].device] ?? [] { response.states.forEach(take) }
                    let user = device[0].user
                    let transport = HTTPSyncTransport(baseURL: server.url(forDevice: index), token: tokens[user], client: client)
                    _ = try await transport.pullUntilCaughtUp(from: afterDelta, limit: 1000) { $0.states.forEach(take) }
                    devicesByUser[user, default: []].append(states)
                }
                for (user, views) in devicesByUser {
                    let serverView = try await userStates(user: user, after: afterDelta, tokens: tokens, server: server, client: client)
                    mismatches += views.filter { view in view.mapValues(\.version) != serverView.mapValues(\.version)
                        || view.mapValues { [$0.read, $0.bookmarked] } != serverView.mapValues { [$0.read, $0.bookmarked] }
                        || view.mapValues(\.progress) != serverView.mapValues(\.progress) }.count
                }
                report.figures["S4.devices"] = Double(byDevice.count)
                report.figures["S4.mismatches"] = Double(mismatches)

                // One user's state pull among this run's history, as the scale run measures it.
                let probe = try await createUser("probe", client: client, server: server)
                var probeRandom = SeededRandom(seed: 4242)
                let probeMutations = (1...200).map { i in
                    Mutation(id: Int64(i), articleId: probeRandom.pick(articleIds), field: .progress, value: .number(Double(i % 100) / 100),
                             hlc: HLC(wall: 1_764_000_000_000 + Int64(i), counter: 0), baseVersion: 0)
                }
                _ = try await HTTPSyncTransport(baseURL: server.url, token: probe, client: client).push(PushRequest(deviceId: "probe-d", mutations: probeMutations))
                let (stateMs, _, _) = try await timedPull(server: server, token: probe, cursor: afterDelta, client: client)
                report.figures["scale.base.statePullMilliseconds"] = stateMs
            }
        }

        // S5: after a burst of pushes, every device of every user pulls its user's states.
        if options.runs("S5") {
            try await statePulls(articleIds: (try store.articleVersions()).keys.sorted().map(\.string), from: afterDelta, options: options,
                                 server: server, client: client, into: &report, log: log)
        }
        if options.runs("S7") {
            try await readerAPI(options: options, server: server, client: client, into: &report, log: log)
        }
        recordCPU(since: workloadCPU, server: "cpu.serverSeconds", client: "cpu.clientSeconds")
    }

    /// S8: a new device with a 500-article window syncs for the first time, newest first, five
    /// times (a new store each): when its first page (30 articles) is stored, when it is caught
    /// up, and how large its store is.
    static func firstSync(token: String, options: BenchmarkOptions, server: BenchServer, client: HTTPClient,
                          into report: inout BenchmarkReport, log: @Sendable (String) -> Void) async throws {
        log("S8: first sync with a 500-article window, five devices")
        var firstPage: [Double] = []
        var caughtUp: [Double] = []
        var storeBytes = 0
        var walBytes = 0
        var articles = 0
        var requests = 0
        /// A new device keeping the newest 500 articles, following `sections`: its store, engine and file.
        func device(_ name: String, sections: Set<String>? = nil) throws -> (ReaderStore, SyncEngine, String) {
            let path = options.workDirectory.appendingPathComponent("\(name).sqlite").path
            let store = try ReaderStore(path: path, deviceId: name, options: .init(window: StorageWindow(newest: 500)))
            try store.follow(sections: sections)
            let engine = SyncEngine(store: store, transport: HTTPSyncTransport(baseURL: server.url, token: token, client: client),
                                    pageSize: 500, firstPageSize: 30)
            return (store, engine, path)
        }
        for run in 0..<5 {
            let (store, engine, path) = try device("window-device-\(run)")
            let start = ContinuousClock.now
            let sync = try await engine.sync()
            caughtUp.append(seconds(ContinuousClock.now - start) * 1000)
            firstPage.append(sync.firstPageStored.map { seconds($0) * 1000 } ?? .nan)
            articles = try store.articleCount()
            requests = sync.requests
            // The WAL counted too: what the device holds on disk.
            storeBytes = fileSize(path) + fileSize(path + "-wal")
            walBytes = fileSize(path + "-wal")
        }
        report.figures["S8.firstPageMillisecondsP50"] = percentile(firstPage, 0.5)
        report.figures["S8.firstPageMillisecondsMax"] = firstPage.max() ?? .nan
        report.figures["S8.caughtUpMillisecondsP50"] = percentile(caughtUp, 0.5)
        report.figures["S8.caughtUpMillisecondsMax"] = caughtUp.max() ?? .nan
        report.figures["S8.storeBytes"] = Double(storeBytes)
        report.figures["S8.storeWALBytes"] = Double(walBytes)
        report.figures["S8.articles"] = Double(articles)
        report.figures["S8.requests"] = Double(requests)

        // The same with two of the corpus's eight sections followed, then a third one followed:
        // its newest articles backfilled within the window, then the pull on from the cursor.
        log("S8: the same, following world and sport, then also tech")
        let sections: Set<String> = ["world", "sport"]
        var sectionFirstPage: [Double] = []
        var sectionCaughtUp: [Double] = []
        var backfill: [Double] = []
        for run in 0..<5 {
            let (store, engine, path) = try device("section-device-\(run)", sections: sections)
            let start = ContinuousClock.now
            let sync = try await engine.sync()
            sectionCaughtUp.append(seconds(ContinuousClock.now - start) * 1000)
            sectionFirstPage.append(sync.firstPageStored.map { seconds($0) * 1000 } ?? .nan)
            try store.follow(sections: sections.union(["tech"]))
            let followed = ContinuousClock.now
            let widened = try await engine.sync()
            backfill.append(seconds(ContinuousClock.now - followed) * 1000)
            report.figures["S8.sections.backfilledArticles"] = Double(widened.backfilledArticles)
            report.figures["S8.sections.articles"] = Double(try store.articleCount())
            report.figures["S8.sections.storeBytes"] = Double(fileSize(path) + fileSize(path + "-wal"))
        }
        report.figures["S8.sections.firstPageMillisecondsP50"] = percentile(sectionFirstPage, 0.5)
        report.figures["S8.sections.caughtUpMillisecondsP50"] = percentile(sectionCaughtUp, 0.5)
        report.figures["S8.sections.backfillMillisecondsP50"] = percentile(backfill, 0.5)
    }

    /// A user's states as the server has them: a fresh pull from `after` (the bench users have no
    /// state before it, and starting there spares pulling the whole corpus once per user).
    static func userStates(user: Int, after: String?, tokens: [String], server: BenchServer, client: HTTPClient) async throws -> [String: StateDTO] {
        let transport = HTTPSyncTransport(baseURL: server.url, token: tokens[user], client: client)
        var states: [String: StateDTO] = [:]
        _ = try await transport.pullUntilCaughtUp(from: after, limit: 1000) { page in
            for s in page.states { states[s.articleId] = s }
        }
        return states
    }

    /// The bytes S1's pages take on the wire without compression.
    static func plainPullBytes(server: BenchServer, token: String, client: HTTPClient) async throws -> Int {
        var cursor: String?
        var total = 0
        while true {
            var request = HTTPClientRequest(url: server.url + SyncRoute.pull(cursor: cursor, limit: 500))
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let response = try await client.execute(request, timeout: .seconds(60))
            let body = try await response.body.collect(upTo: 256 << 20)
            total += body.readableBytes
            let page = try JSONDecoder().decode(PullResponse.self, from: Data(body.readableBytesView))
            cursor = page.cursor
            if !page.hasMore { return total }
        }
    }
}
