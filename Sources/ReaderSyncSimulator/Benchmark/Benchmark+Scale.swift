import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncServer

/// Only `cursor` and `hasMore` of a page: catching up over a large corpus without building articles.
private struct PageCursor: Decodable {
    var cursor: String
    var hasMore: Bool
}

extension Benchmark {
    /// The two pulls the scale run repeats: a delta to a caught-up device, and one user's states
    /// among many users' history. Measured the same way on both servers.
    struct ScaleProbe {
        var deltaPullMilliseconds: Double
        var deltaChanges: Int
        var statePullMilliseconds: Double
        var states: Int
    }

    /// Pulls from `cursor` until caught up, with gzip, decoding each page in full; returns (ms, changes, cursor).
    /// A pull from `cursor` until caught up, timed: the median of `repeats` runs (pulls change
    /// nothing, so each run reads the same pages), since one run on this machine varies by a fifth.
    static func timedPull(server: BenchServer, token: String, cursor: String?, client: HTTPClient,
                          repeats: Int = 7) async throws -> (Double, Int, String?) {
        let transport = HTTPSyncTransport(baseURL: server.url, token: token, client: client)
        var times: [Double] = []
        var changes = 0
        var end: String?
        for _ in 0..<max(repeats, 1) {
            changes = 0
            let start = ContinuousClock.now
            end = try await transport.pullUntilCaughtUp(from: cursor, limit: 500) { page in
                changes += page.articles.count + page.deletedArticleIds.count + page.states.count
            }
            times.append(seconds(ContinuousClock.now - start) * 1000)
        }
        return (times.sorted()[times.count / 2], changes, end)
    }

    /// The cursor at the end of everything, read page by page (1,000 at a time) without keeping the pages.
    static func catchUp(server: BenchServer, token: String, client: HTTPClient) async throws -> String? {
        var cursor: String?
        while true {
            var request = HTTPClientRequest(url: server.url + SyncRoute.pull(cursor: cursor, limit: 1000))
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let response = try await client.execute(request, timeout: .seconds(120))
            let body = try await response.body.collect(upTo: 512 << 20)
            let page = try JSONDecoder().decode(PageCursor.self, from: Data(body.readableBytesView))
            cursor = page.cursor
            if !page.hasMore { return cursor }
        }
    }

    static func createUser(_ name: String, client: HTTPClient, server: BenchServer) async throws -> String {
        let body = try JSONEncoder().encode(CreateUserRequest(name: name))
        return try JSONDecoder().decode(CreateUserResponse.self, from: try await admin(client, server, .POST, "/v1/admin/users", body: body)).token
    }

    /// Loads `articles` articles and `users` users' history (`perUser` state changes each), then
    /// measures the delta pull (200 new, 100 updated, 20 deleted) and one user's state pull.
    static func scaleProbe(articles: Int, users: Int, perUser: Int, server: BenchServer, client: HTTPClient,
                           concurrency: Int, log: @Sendable (String) -> Void) async throws -> ScaleProbe {
        log("scale: \(articles) articles")
        var index = 1
        while index <= articles {
            let count = min(20_000, articles - index + 1)
            let lines = (index..<index + count).map { BenchCorpus.line(index: $0, revision: 0, seed: 7) }
            _ = try await ingest(lines, client: client, server: server)
            index += count
        }
        let reader = try await createUser("scale-reader", client: client, server: server)
        let caughtUp = try await catchUp(server: server, token: reader, client: client)
        let delta = BenchCorpus.delta(count: articles, new: 200, updated: 100, deleted: 20, seed: 7)
        _ = try await ingest(delta, client: client, server: server)
        let (deltaMs, deltaChanges, afterDelta) = try await timedPull(server: server, token: reader, cursor: caughtUp, client: client)

        log("scale: \(users) users' history")
        var tokens: [String] = []
        for u in 0..<users { tokens.append(try await createUser("history\(u)", client: client, server: server)) }
        let probeToken = try await createUser("probe", client: client, server: server)
        let ids = (1...articles).map { String(format: "art-%06d", $0) }
        let url = server.url
        let history = tokens
        try await forEach(Array(history.indices), concurrency: concurrency) { u in
            var rng = SeededRandom(seed: UInt64(u) &+ 99)
            let mutations = (1...perUser).map { i in
                Mutation(id: Int64(i), articleId: rng.pick(ids), field: .read, value: .bool(true),
                         hlc: HLC(wall: 1_764_000_000_000 + Int64(i), counter: 0), baseVersion: 0)
            }
            _ = try await HTTPSyncTransport(baseURL: url, token: history[u], client: client)
                .push(PushRequest(deviceId: "history\(u)-d", mutations: mutations))
        }
        // The probe user's own states, after everyone's history.
        var rng = SeededRandom(seed: 4242)
        let probeMutations = (1...200).map { i in
            Mutation(id: Int64(i), articleId: rng.pick(ids), field: .progress, value: .number(Double(i % 100) / 100),
                     hlc: HLC(wall: 1_764_000_000_000 + Int64(i), counter: 0), baseVersion: 0)
        }
        _ = try await HTTPSyncTransport(baseURL: url, token: probeToken, client: client).push(PushRequest(deviceId: "probe-d", mutations: probeMutations))

        let (stateMs, states, _) = try await timedPull(server: server, token: probeToken, cursor: afterDelta, client: client)
        return ScaleProbe(deltaPullMilliseconds: deltaMs, deltaChanges: deltaChanges, statePullMilliseconds: stateMs, states: states)
    }
}
