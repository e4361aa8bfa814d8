import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncServer

extension Benchmark {
    /// States each S5 user has after the push burst, and the fields written on each.
    static let statePullStatesPerUser = 400

    /// S5: `users` × `devicesPerUser` devices, caught up on articles, each pull their user's
    /// states after a burst of pushes (every state written by two of the user's devices: `read`
    /// by one, `progress` by another), `concurrency` pulls at a time, through the SDK's transport
    /// (gzip, JSON decoding). Figures: wall time of all pulls, per-pull latency, bytes per state,
    /// CPU seconds of both processes during the pulls only.
    static func statePulls(articleIds: [String], from cursor: String?, options: BenchmarkOptions, server: BenchServer,
                           client: HTTPClient, into report: inout BenchmarkReport, log: @Sendable (String) -> Void) async throws {
        let perUser = min(statePullStatesPerUser, articleIds.count)
        log("S5: \(options.users) users × \(options.devicesPerUser) devices pull \(perUser) states each")
        var tokens: [String] = []
        for u in 0..<options.users { tokens.append(try await createUser("pulls\(u)", client: client, server: server)) }

        var rng = SeededRandom(seed: 55)
        let now = Timestamp.millis(Date())
        // A user's pushes go in order (one device may write both fields); users run concurrently.
        var pushes: [[(token: String, request: PushRequest)]] = []
        for (u, token) in tokens.enumerated() {
            pushes.append([])
            let articles = Array(articleIds.shuffled(using: &rng).prefix(perUser))
            for (field, device) in [(StateField.read, 0), (.progress, 1 % max(options.devicesPerUser, 1))] {
                let mutations = articles.enumerated().map { i, id in
                    Mutation(id: Int64(i + 1) + (field == .read ? 0 : Int64(perUser)), articleId: id, field: field,
                             value: field == .read ? .bool(true) : .number(Double(i % 100) / 100),
                             hlc: HLC(wall: now - Int64(perUser - i), counter: 0), baseVersion: 0)
                }
                // One device may write both fields (devicesPerUser 1): ids keep increasing per device.
                pushes[u].append((token, PushRequest(deviceId: "pulls\(u)-d\(device)", mutations: mutations)))
            }
        }
        try await forEach(pushes, concurrency: options.concurrency) { userPushes in
            for push in userPushes {
                _ = try await HTTPSyncTransport(baseURL: server.url, token: push.token, client: client).push(push.request)
            }
        }

        // Every device pulls from the cursor after S2: exactly its user's states are new there.
        let devices = tokens.flatMap { token in Array(repeating: token, count: options.devicesPerUser) }.enumerated().map { (index: $0.offset, token: $0.element) }
        let me = ProcessMeter(pid: getpid())
        let cpu = (server: server.meter.cpuSeconds ?? 0, client: me.cpuSeconds ?? 0)
        let clock = ContinuousClock()
        let start = clock.now
        let pulls = try await map(devices, concurrency: options.concurrency) { device -> (milliseconds: Double, states: Int, bytes: Int) in
            let transport = HTTPSyncTransport(baseURL: server.url(forDevice: device.index), token: device.token, client: client)
            let t0 = ContinuousClock.now
            var states = 0
            var bytes = 0
            var next = cursor
            while true {
                let page = try await transport.pull(cursor: next, limit: 500)
                states += page.value.states.count
                bytes += page.bytesReceived
                next = page.value.cursor
                if !page.value.hasMore { break }
            }
            return (seconds(ContinuousClock.now - t0) * 1000, states, bytes)
        }
        let wall = seconds(clock.now - start)
        report.figures["S5.seconds"] = wall
        report.figures["S5.pulls"] = Double(pulls.count)
        report.figures["S5.pullsPerSecond"] = Double(pulls.count) / wall
        report.figures["S5.pullLatencyP50Milliseconds"] = percentile(pulls.map(\.milliseconds), 0.5)
        report.figures["S5.pullLatencyP99Milliseconds"] = percentile(pulls.map(\.milliseconds), 0.99)
        report.figures["S5.serverCPUSeconds"] = (server.meter.cpuSeconds ?? 0) - cpu.server
        if !options.inProcess { report.figures["S5.clientCPUSeconds"] = (me.cpuSeconds ?? 0) - cpu.client }
        let states = pulls.reduce(0) { $0 + $1.states }
        report.figures["S5.statesPerPull"] = Double(states) / Double(max(pulls.count, 1))
        report.figures["S5.wireBytesPerStateGzip"] = Double(pulls.reduce(0) { $0 + $1.bytes }) / Double(max(states, 1))
        if states != devices.count * perUser {
            report.notes.append("S5: expected \(devices.count * perUser) states pulled, got \(states)")
        }
        // The same page without compression, once: what a client that asks for no gzip receives.
        var request = HTTPClientRequest(url: server.url + SyncRoute.pull(cursor: cursor, limit: 500))
        request.headers.add(name: "Authorization", value: "Bearer \(tokens[0])")
        let body = try await client.execute(request, timeout: .seconds(60)).body.collect(upTo: 64 << 20)
        report.figures["S5.plainBytesPerState"] = Double(body.readableBytes) / Double(max(perUser, 1))
    }
}
