import AsyncHTTPClient
import Foundation
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import ReaderSyncCore
import Testing
@testable import ReaderSyncServer

@Suite("End to end on a loopback port")
struct LiveServerTests {
    @Test("two devices push and pull over real HTTP, with gzip, and converge on the server's state", arguments: Backend.available)
    func endToEnd(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(120)
        let (_, token) = try await h.createUser("alice")
        try await h.application().test(.live) { testClient in
            let port = try #require(testClient.port)
            let base = "http://127.0.0.1:\(port)"
            let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                    configuration: .init(decompression: .enabled(limit: .ratio(50))))
            let raw = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(decompression: .disabled))
            do {
                try await exercise(base: base, token: token, client: client, raw: raw)
            } catch {
                try await client.shutdown()
                try await raw.shutdown()
                throw error
            }
            try await client.shutdown()
            try await raw.shutdown()
        }
    }

    func exercise(base: String, token: String, client: HTTPClient, raw: HTTPClient) async throws {
        func send<T: Decodable>(_ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<String>.none, as: T.Type) async throws -> T {
            var request = HTTPClientRequest(url: base + path)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            request.headers.add(name: "Accept-Encoding", value: "gzip")
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
            }
            let response = try await client.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 64 << 20)
            #expect(response.status == .ok, "\(method) \(path): \(String(buffer: bytes))")
            return try JSONDecoder().decode(T.self, from: Data(bytes.readableBytesView))
        }

        // The phone reads and bookmarks; the tablet, offline and unaware, un-bookmarks later by its clock.
        let phone = try await send(.POST, "/v1/sync/push", body: PushRequest(deviceId: "phone", mutations: [
            mutation(1, "art-7", .read, .bool(true)), mutation(2, "art-7", .bookmarked, .bool(true)),
        ]), as: PushResponse.self)
        #expect(phone.results.map(\.outcome) == [.applied, .applied])
        let tablet = try await send(.POST, "/v1/sync/push", body: PushRequest(deviceId: "tablet", mutations: [
            mutation(1, "art-7", .bookmarked, .bool(false), wall: 1_764_000_000_000 - 1_000),
            mutation(2, "art-9", .progress, .number(0.8)),
        ]), as: PushResponse.self)
        #expect(tablet.results.map(\.outcome) == [.superseded, .applied])

        // Each device pulls everything in pages of 50 and ends with the same state.
        func pullAll() async throws -> (articles: Set<String>, states: [String: StateDTO], requests: Int) {
            var cursor: String?
            var articles = Set<String>()
            var states: [String: StateDTO] = [:]
            var requests = 0
            while true {
                let query = cursor.map { "&cursor=\($0)" } ?? ""
                let page = try await send(.GET, "/v1/sync/pull?limit=50" + query, as: PullResponse.self)
                requests += 1
                articles.formUnion(page.articles.map(\.id))
                for s in page.states { states[s.articleId] = s }
                cursor = page.cursor
                if !page.hasMore { break }
            }
            return (articles, states, requests)
        }
        let phoneView = try await pullAll()
        let tabletView = try await pullAll()
        #expect(phoneView.articles.count == 120 && phoneView.requests == 3)
        #expect(phoneView.states == tabletView.states)
        #expect(phoneView.states["art-7"]?.bookmarked == true && phoneView.states["art-7"]?.read == true)
        #expect(phoneView.states["art-9"]?.progress == 0.8)

        // The same page, raw: gzip when asked for, and much smaller than plain JSON.
        var request = HTTPClientRequest(url: base + "/v1/sync/pull?limit=100")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let plain = try await raw.execute(request, timeout: .seconds(30))
        let plainBytes = try await plain.body.collect(upTo: 64 << 20).readableBytes
        request.headers.add(name: "Accept-Encoding", value: "gzip")
        let zipped = try await raw.execute(request, timeout: .seconds(30))
        #expect(zipped.headers["Content-Encoding"].first == "gzip")
        let zippedBytes = try await zipped.body.collect(upTo: 64 << 20).readableBytes
        #expect(zippedBytes * 2 < plainBytes, "gzip: \(zippedBytes) bytes vs plain \(plainBytes)")
    }
}
