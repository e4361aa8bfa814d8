import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import ReaderSyncClient
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import ServiceLifecycle
import Synchronization
import Testing

/// Live updates over real sockets: `GET /v1/sync/events` read by the SDK's own HTTP transport,
/// and `pull?wait=`.
@Suite("Live updates: event streams and long-polls")
struct LiveUpdatesTests {
    /// Short timings, so heartbeats mark the passing of time in a test.
    static func configuration(_ change: (inout LiveConfiguration) -> Void = { _ in }) -> SyncConfiguration {
        var configuration = SyncConfiguration()
        configuration.live.heartbeat = .milliseconds(100)
        configuration.live.minimumEventInterval = .milliseconds(20)
        configuration.live.lifeJitter = 0
        change(&configuration.live)
        return configuration
    }

    /// Runs `body` with the server listening on a loopback port.
    static func withServer(_ h: Harness, _ server: ServerConfiguration = ServerConfiguration(host: "127.0.0.1", port: 0),
                           _ body: @escaping @Sendable (String) async throws -> Void) async throws {
        try await h.application(server).test(.live) { client in
            try await body("http://127.0.0.1:\(try #require(client.port))")
        }
    }

    @Test("the first event comes at once when the feed already holds changes", arguments: Backend.available)
    func firstEvent(backend: Backend) async throws {
        // No heartbeat in the test's time: only the opening look can send the event.
        let h = try await Harness(backend: backend, configuration: Self.configuration { $0.heartbeat = .seconds(3600) })
        try await h.seedArticles(3)
        let (_, token) = try await h.createUser("alice")
        try await Self.withServer(h) { base in
            var events = try await HTTPSyncTransport(baseURL: base, token: token).events(cursor: nil).makeAsyncIterator()
            #expect(try await events.next(within: .seconds(60)) == .changes(ChangesEvent(epoch: h.service.epoch)))
        }
    }

    @Test("a caught-up stream stays quiet but for heartbeats")
    func heartbeats() async throws {
        let h = try await Harness(configuration: Self.configuration())
        try await h.seedArticles(3)
        let (_, token) = try await h.createUser("alice")
        try await Self.withServer(h) { base in
            let transport = HTTPSyncTransport(baseURL: base, token: token)
            let caughtUp = try await transport.pull(cursor: nil, limit: 100).value.cursor
            var quiet = try await transport.events(cursor: caughtUp).makeAsyncIterator()
            for _ in 0..<3 { #expect(try await quiet.next(within: .seconds(60)) == .heartbeat) }
        }
    }

    @Test("a stream wakes for the user's other device and for an ingest", arguments: Backend.available)
    func wakes(backend: Backend) async throws {
        // No heartbeat in the test's time (each looks at the feed): only wake-ups can tell.
        let h = try await Harness(backend: backend, configuration: Self.configuration { $0.heartbeat = .seconds(3600) })
        try await h.seedArticles(3)
        let (_, alice) = try await h.createUser("alice")
        let (_, bob) = try await h.createUser("bob")
        try await Self.withServer(h) { base in
            let phone = HTTPSyncTransport(baseURL: base, token: alice)
            let cursor = try await phone.pull(cursor: nil, limit: 100).value.cursor
            var events = try await phone.events(cursor: cursor).makeAsyncIterator()
            try await Self.eventually { h.service.notifier.count == 1 }

            // Bob's push is not in alice's feed; her tablet's push wakes her stream.
            _ = try await HTTPSyncTransport(baseURL: base, token: bob)
                .push(PushRequest(deviceId: "bob-phone", mutations: [mutation(1, "art-1", .read, .bool(true))]))
            let tablet = HTTPSyncTransport(baseURL: base, token: alice)
            _ = try await tablet.push(PushRequest(deviceId: "alice-tablet", mutations: [mutation(1, "art-2", .bookmarked, .bool(true))]))
            #expect(try await events.next(within: .seconds(60)) == .changes(ChangesEvent(epoch: h.service.epoch)))
            let page = try await phone.pull(cursor: cursor, limit: 100).value
            #expect(page.states.map(\.articleId) == ["art-2"] && page.articles.isEmpty)

            // So does an ingest.
            try await h.seedArticles(1, from: 50)
            #expect(try await events.next(within: .seconds(60)) == .changes(ChangesEvent(epoch: h.service.epoch)))
            #expect(try await phone.pull(cursor: page.cursor, limit: 100).value.articles.map(\.id) == ["art-50"])
        }
    }

    @Test("another user's pushes never give a stream an event (each heartbeat looks at the feed and finds nothing new)",
          arguments: Backend.available)
    func isolation(backend: Backend) async throws {
        let h = try await Harness(backend: backend, configuration: Self.configuration())
        try await h.seedArticles(3)
        let (_, alice) = try await h.createUser("alice")
        let (_, bob) = try await h.createUser("bob")
        try await Self.withServer(h) { base in
            let phone = HTTPSyncTransport(baseURL: base, token: alice)
            let cursor = try await phone.pull(cursor: nil, limit: 100).value.cursor
            var events = try await phone.events(cursor: cursor).makeAsyncIterator()
            #expect(try await events.next(within: .seconds(60)) == .heartbeat)
            let bobsPhone = HTTPSyncTransport(baseURL: base, token: bob)
            for id in 1...3 {
                _ = try await bobsPhone.push(PushRequest(deviceId: "bob-phone", mutations: [mutation(Int64(id), "art-\(id)", .read, .bool(true))]))
            }
            // Wake alice's streams too, as an article change would: her feed still holds nothing new.
            h.service.notifier.wake(.everyone)
            #expect(try await events.skippingHeartbeats(2) == [])
        }
    }

    @Test("the end of a user's feed moves with articles and that user's states only", arguments: Backend.available)
    func feedHeadIsolation(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        try await h.seedArticles(2)
        let (alice, _) = try await h.createUser("alice")
        let (bob, _) = try await h.createUser("bob")
        let start = try await h.store.feedHead(userId: alice.id)
        let full = try await h.service.pull(user: alice, cursor: nil, limit: 100)
        #expect(h.service.cursor(of: start.position) == full.cursor, "the head is where a full pull ends")

        _ = try await h.service.push(user: bob, request: PushRequest(deviceId: "bob-phone", mutations: [mutation(1, "art-1", .read, .bool(true))]))
        #expect(try await h.store.feedHead(userId: alice.id) == start)
        #expect(try await h.store.feedHead(userId: bob.id).position > start.position)

        _ = try await h.service.push(user: alice, request: PushRequest(deviceId: "alice-phone", mutations: [mutation(1, "art-2", .read, .bool(true))]))
        let afterHers = try await h.store.feedHead(userId: alice.id)
        #expect(afterHers.position > start.position && !afterHers.heldBack)
        let page = try await h.service.pull(user: alice, cursor: full.cursor, limit: 100)
        #expect(page.states.map(\.articleId) == ["art-2"] && h.service.cursor(of: afterHers.position) == page.cursor)
    }

    @Test("a burst of pushes is told by a few events, at most one per minimum interval", arguments: Backend.available)
    func coalescing(backend: Backend) async throws {
        let interval = Duration.milliseconds(200)
        let h = try await Harness(backend: backend, configuration: Self.configuration { $0.minimumEventInterval = interval })
        try await h.seedArticles(7)
        let (_, alice) = try await h.createUser("alice")
        try await Self.withServer(h) { base in
            let phone = HTTPSyncTransport(baseURL: base, token: alice)
            let tablet = HTTPSyncTransport(baseURL: base, token: alice)
            let cursor = try await phone.pull(cursor: nil, limit: 100).value.cursor
            var events = try await phone.events(cursor: cursor).makeAsyncIterator()
            #expect(try await events.next(within: .seconds(60)) == .heartbeat)

            let pushes = 200
            // The stream is read while the tablet pushes: left unread through a slow burst (a
            // loaded machine), the client's 60 s read timeout would end it.
            let pushed = Mutex(false)
            let pusher = Task {
                defer { pushed.withLock { $0 = true } }
                let start = ContinuousClock.now
                for id in 1...pushes {
                    _ = try await tablet.push(PushRequest(deviceId: "tablet", mutations: [mutation(Int64(id), "art-\(1 + id % 7)", .progress, .number(Double(id) / 1000))]))
                }
                return ContinuousClock.now - start
            }
            var told: [SyncEvent] = []
            var heartbeatsAfter = 0
            while heartbeatsAfter < 3, let event = try await events.next(within: .seconds(60)) {
                if event != .heartbeat {
                    told.append(event)
                } else if pushed.withLock({ $0 }) {
                    heartbeatsAfter += 1
                }
            }
            let elapsed = try await pusher.value
            // The rule: the first change at once, then at most one event per interval (how few
            // that is depends on how fast the pushes came; ChangeNotifierTests.scoping shows that
            // wake-ups before a look are one).
            let bound = Int((elapsed / interval).rounded(.up)) + 2
            #expect(!told.isEmpty && told.count <= bound, "\(told.count) events for \(pushes) pushes in \(elapsed)")
        }
    }

    @Test("a cursor of another epoch gets one reset event, and the stream ends")
    func reset() async throws {
        let other = try await Harness()
        let (_, otherToken) = try await other.createUser("alice")
        try await other.seedArticles(1)
        let foreignCursor = try await other.service.pull(user: try await other.service.user(named: "alice"), cursor: nil, limit: 10).cursor
        _ = otherToken

        let h = try await Harness(configuration: Self.configuration())
        let (_, token) = try await h.createUser("alice")
        try await Self.withServer(h) { base in
            var events = try await HTTPSyncTransport(baseURL: base, token: token).events(cursor: foreignCursor).makeAsyncIterator()
            guard case .reset(let reset) = try await events.next(within: .seconds(60)) else {
                Issue.record("no reset event")
                return
            }
            #expect(reset.epoch == h.service.epoch && reset.error.code == "reset_required")
            #expect(try await events.next(within: .seconds(60)) == nil)
        }
    }

    @Test("the wire: text/event-stream, never gzip-buffered, a retry hint first; errors before it are JSON")
    func wire() async throws {
        let h = try await Harness(configuration: Self.configuration { $0.reconnectDelay = .milliseconds(2500) })
        try await h.seedArticles(1)
        let (_, token) = try await h.createUser("alice")
        try await Self.withServer(h) { base in
            // The shared client does not decompress: the bytes are the server's.
            let client = HTTPClient.shared
            var request = HTTPClientRequest(url: base + "/v1/sync/events")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            request.headers.add(name: "Accept-Encoding", value: "gzip")
            let response = try await client.execute(request, timeout: .seconds(60))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "Content-Type") == "text/event-stream")
            #expect(response.headers.first(name: "Content-Encoding") == nil)
            #expect(response.headers.first(name: "Cache-Control") == "no-store")
            var text = ""
            for try await part in response.body {
                text += String(buffer: part)
                if text.contains("event: changes\n") && text.hasSuffix("\n\n") { break }
            }
            #expect(text == "retry: 2500\n\nevent: changes\ndata: {\"epoch\":\"\(h.service.epoch)\"}\n\n")

            var bad = HTTPClientRequest(url: base + "/v1/sync/events?cursor=nonsense")
            bad.headers.add(name: "Authorization", value: "Bearer \(token)")
            let refused = try await client.execute(bad, timeout: .seconds(60))
            #expect(refused.status == .badRequest)
            #expect(String(buffer: try await refused.body.collect(upTo: 4096)).contains("\"invalid_cursor\""))
        }
        try await h.withClient { client in
            let anonymous = try await call(client, .get, "/v1/sync/events")
            #expect(anonymous.status == .unauthorized && anonymous.errorCode == "unauthorized")
            let admin = try await call(client, .get, "/v1/sync/events", token: Harness.adminToken)
            #expect(admin.status == .forbidden)
        }
    }

    @Test("caps: past the per-user or per-server number of streams and long-polls, 503 with Retry-After")
    func caps() async throws {
        let h = try await Harness(configuration: Self.configuration {
            $0.maxStreams = 2
            $0.maxStreamsPerUser = 1
        })
        let (_, alice) = try await h.createUser("alice")
        let (_, bob) = try await h.createUser("bob")
        let (_, carol) = try await h.createUser("carol")
        try await Self.withServer(h) { base in
            var first = try await HTTPSyncTransport(baseURL: base, token: alice).events(cursor: nil).makeAsyncIterator()
            #expect(try await first.next(within: .seconds(60)) == .heartbeat)
            for (token, what) in [(alice, "a second stream of alice"), (alice, "a long-poll of alice")] {
                do {
                    if what.contains("long-poll") {
                        _ = try await HTTPSyncTransport(baseURL: base, token: token).pull(cursor: nil, limit: 10, wait: 5)
                    } else {
                        _ = try await HTTPSyncTransport(baseURL: base, token: token).events(cursor: nil)
                    }
                    Issue.record("\(what) was accepted")
                } catch let error as ReaderSyncError {
                    #expect(error.httpStatus == 503 && error.serverError?.code == .unavailable && error.retryAfter == .seconds(5), "\(what)")
                }
            }
            var second = try await HTTPSyncTransport(baseURL: base, token: bob).events(cursor: nil).makeAsyncIterator()
            #expect(try await second.next(within: .seconds(60)) == .heartbeat)
            do {
                _ = try await HTTPSyncTransport(baseURL: base, token: carol).events(cursor: nil)
                Issue.record("a third stream on a server capped at two was accepted")
            } catch let error as ReaderSyncError {
                #expect(error.httpStatus == 503 && error.message.contains("limit of 2 live streams"))
            }
            #expect(h.service.notifier.count == 2)
        }
    }

    @Test("long-poll: answers as soon as another device pushes; an empty page after the wait; wait over 60 is a 400")
    func longPoll() async throws {
        let h = try await Harness(configuration: Self.configuration { $0.heartbeat = .seconds(3600) })
        try await h.seedArticles(2)
        let (_, token) = try await h.createUser("alice")
        try await Self.withServer(h) { base in
            let phone = HTTPSyncTransport(baseURL: base, token: token)
            let cursor = try await phone.pull(cursor: nil, limit: 100).value.cursor

            let empty = try await phone.pull(cursor: cursor, limit: 100, wait: 1).value
            #expect(empty.states.isEmpty && empty.articles.isEmpty && empty.cursor == cursor && !empty.hasMore)

            // The push comes while the long-poll waits (a 30 s wait: only a wake-up answers it with the state).
            async let answered = phone.pull(cursor: cursor, limit: 100, wait: 30)
            while h.service.notifier.count == 0 { try await Task.sleep(for: .milliseconds(5)) }
            _ = try await HTTPSyncTransport(baseURL: base, token: token)
                .push(PushRequest(deviceId: "tablet", mutations: [mutation(1, "art-1", .read, .bool(true))]))
            let page = try await answered.value
            #expect(page.states.map(\.articleId) == ["art-1"])
        }
        try await h.withClient { client in
            for wait in ["61", "-1", "soon", "1.5"] {
                let response = try await call(client, .get, "/v1/sync/pull?wait=\(wait)", token: token)
                #expect(response.status == .badRequest && response.errorCode == "invalid_request", "wait=\(wait)")
            }
        }
    }

    @Test("a stream outlives the idle timeout, ends after its life, and leaves its place when its client goes")
    func lifetime() async throws {
        let h = try await Harness(configuration: Self.configuration { $0.streamLife = .seconds(3) })
        let (_, token) = try await h.createUser("alice")
        var server = ServerConfiguration(host: "127.0.0.1", port: 0)
        server.idleTimeout = .milliseconds(300)
        try await Self.withServer(h, server) { base in
            let opened = ContinuousClock.now
            var events = try await HTTPSyncTransport(baseURL: base, token: token).events(cursor: nil).makeAsyncIterator()
            // Heartbeats every 100 ms: some come after the 300 ms idle timeout; then the server ends it.
            var lastHeartbeat = opened
            while let event = try await events.next(within: .seconds(60)) {
                #expect(event == .heartbeat)
                lastHeartbeat = ContinuousClock.now
            }
            #expect(lastHeartbeat - opened > .milliseconds(300), "the stream was cut before the idle timeout had passed")
            try await Self.eventually { h.service.notifier.count == 0 }

            // A client that goes away: its place is freed at the next heartbeat's write.
            let reader = Task {
                var events = try await HTTPSyncTransport(baseURL: base, token: token).events(cursor: nil).makeAsyncIterator()
                while try await events.next() != nil {}
            }
            try await Self.eventually { h.service.notifier.count == 1 }
            reader.cancel()
            try await Self.eventually { h.service.notifier.count == 0 }
        }
    }

    @Test("graceful shutdown ends every stream, and the server stops")
    func shutdown() async throws {
        let h = try await Harness(configuration: Self.configuration { $0.heartbeat = .seconds(3600) })
        let (_, token) = try await h.createUser("alice")
        let port = Mutex(0)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let app = buildApplication(service: h.service, configuration: .init(port: 0), logger: logger) { channel in
            port.withLock { $0 = channel.localAddress?.port ?? 0 }
        }
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await Self.eventually { port.withLock { $0 } != 0 }
            let base = "http://127.0.0.1:\(port.withLock { $0 })"
            var events = try await HTTPSyncTransport(baseURL: base, token: token).events(cursor: nil).makeAsyncIterator()
            try await Self.eventually { h.service.notifier.count == 1 }
            await group.triggerGracefulShutdown()
            #expect(try await events.next(within: .seconds(60)) == nil)
            try await tasks.waitForAll()
        }
    }

    @Test("a stream whose client stops reading is closed once a write waits past the response timeout")
    func stalledReader() async throws {
        let channel = NIOEmbedded.EmbeddedChannel(handler: ResponseWriteTimeoutHandler(timeout: .seconds(60)))
        try await channel.connect(to: .init(ipAddress: "127.0.0.1", port: 1)).get()
        var head = HTTPResponse(status: .ok)
        head.headerFields[.contentType] = "text/event-stream"
        try channel.writeOutbound(HTTPResponsePart.head(head))
        // Heartbeats the socket takes (written and flushed) keep it open past the timeout…
        for _ in 0..<3 {
            channel.embeddedEventLoop.advanceTime(by: .seconds(50))
            try channel.writeOutbound(HTTPResponsePart.body(ByteBuffer(string: ": heartbeat\n\n")))
        }
        #expect(channel.isActive)
        // …one it cannot take (never flushed: the socket buffer is full) closes it.
        channel.write(HTTPResponsePart.body(ByteBuffer(string: ": heartbeat\n\n")), promise: nil)
        channel.embeddedEventLoop.advanceTime(by: .seconds(61))
        #expect(!channel.isActive)
    }

    /// Waits, polling, until `condition` holds (a safety net of 60 s, not a timing assertion).
    static func eventually(_ condition: @Sendable () -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("the condition did not come true within 60 s", sourceLocation: sourceLocation)
                return
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

extension AsyncThrowingStream<SyncEvent, any Error>.AsyncIterator {
    /// The next event, failing the test instead of hanging when none comes within `limit`.
    ///
    /// The tests give 60 s: a safety net, not a timing assertion. In the full suite, CLI tests
    /// block cooperative threads while their processes run (up to about 40 s for the 1,000-device
    /// load test), and on 2 cores that can hold every other task back that long.
    mutating func next(within limit: Duration) async throws -> SyncEvent? {
        let box = IteratorBox(self)
        defer { self = box.iterator }
        return try await withThrowingTaskGroup(of: SyncEvent?.self) { group in
            group.addTask { try await box.next() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw StreamTimeout(limit: limit)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// The next `changes` or `reset` event, skipping heartbeats.
    mutating func nextChange(within limit: Duration) async throws -> SyncEvent? {
        while true {
            let event = try await next(within: limit)
            if event != .heartbeat { return event }
        }
    }

    /// The events other than heartbeats that come before `count` heartbeats have (a marker of
    /// time passing: each heartbeat also looks at the feed).
    mutating func skippingHeartbeats(_ count: Int) async throws -> [SyncEvent] {
        var others: [SyncEvent] = []
        var heartbeats = 0
        while heartbeats < count, let event = try await next(within: .seconds(60)) {
            if event == .heartbeat { heartbeats += 1 } else { others.append(event) }
        }
        return others
    }
}

struct StreamTimeout: Error, CustomStringConvertible {
    var limit: Duration
    var description: String { "no event within \(limit)" }
}

/// Moves an iterator into a child task and back; only one task uses it at a time.
private final class IteratorBox: @unchecked Sendable {
    var iterator: AsyncThrowingStream<SyncEvent, any Error>.AsyncIterator
    init(_ iterator: AsyncThrowingStream<SyncEvent, any Error>.AsyncIterator) { self.iterator = iterator }
    func next() async throws -> SyncEvent? { try await iterator.next() }
}
