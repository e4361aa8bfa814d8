import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
private let systemSend = Glibc.send
private let systemClose = Glibc.close
private let streamSocket = Int32(SOCK_STREAM.rawValue)
private let noSignal = Int32(MSG_NOSIGNAL)
#elseif canImport(Darwin)
import Darwin
private let systemSend = Darwin.send
private let systemClose = Darwin.close
private let streamSocket = SOCK_STREAM
private let noSignal: Int32 = 0  // SO_NOSIGPIPE is set on the socket instead
#endif

@Suite("Limits that keep one client from starving the others")
struct LimitsTests {
    @Test("past the concurrency limit a request gets 503 with Retry-After and the error body; health still answers; a freed slot serves again")
    func concurrencyLimit() async throws {
        let entered = AsyncStream<Void>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        let router = Router()
        router.add(middleware: APIErrorMiddleware(metrics: ServerMetrics(), logger: .init(label: "test")))
        router.add(middleware: ConcurrencyLimitMiddleware(limit: 1) { $0.uri.path == SyncRoute.health })
        router.get("/slow") { _, _ -> String in
            entered.continuation.yield()
            var iterator = release.stream.makeAsyncIterator()
            _ = await iterator.next()
            return "done"
        }
        router.get("/fast") { _, _ in "fast" }
        router.get(RouterPath(SyncRoute.health)) { _, _ in "healthy" }
        try await Application(router: router).test(.router) { client in
            async let slow = client.executeRequest(uri: "/slow", method: .get, headers: [:], body: nil)
            var enteredIterator = entered.stream.makeAsyncIterator()
            _ = await enteredIterator.next()

            let busy = try await client.executeRequest(uri: "/fast", method: .get, headers: [:], body: nil)
            #expect(busy.status == .serviceUnavailable)
            #expect(busy.headers[.retryAfter] == "1")
            #expect(busy.errorCode == "unavailable")
            let health = try await client.executeRequest(uri: SyncRoute.health, method: .get, headers: [:], body: nil)
            #expect(health.status == .ok)

            release.continuation.yield()
            #expect(try await slow.status == .ok)
            let fast = try await client.executeRequest(uri: "/fast", method: .get, headers: [:], body: nil)
            #expect(fast.status == .ok)
        }
    }

    @Test("a client sending its headers byte by byte is disconnected by the idle timeout before it finishes", arguments: Backend.available)
    func slowHeaders(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.idleTimeout = .milliseconds(300)
        try await h.application(configuration).test(.live) { client in
            let port = try #require(client.port)
            let head = "GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: a-very-slow-client-indeed\r\n\r\n"
            let outcome = try await onThread {
                let connection = try RawConnection(port: port)
                defer { connection.close() }
                // One byte every 50 ms: the whole head would take about 4 s.
                for (sent, byte) in head.utf8.enumerated() {
                    guard connection.send([byte]) else { return "closed after \(sent) of \(head.utf8.count) bytes" }
                    usleep(50_000)
                }
                return "sent everything; answer: \(connection.receiveAll().prefix(40))"
            }
            #expect(outcome.hasPrefix("closed after"), "\(outcome)")
        }
    }

    @Test("a body that does not arrive within the request timeout gets 408 request_timeout and frees its slot, the console's login form's too",
          arguments: Backend.available)
    func slowBody(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, token) = try await h.createUser("alice")
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.requestTimeout = .milliseconds(300)
        configuration.idleTimeout = .seconds(30)
        configuration.maxConcurrentRequests = 1
        try await h.application(configuration).test(.live) { client in
            let port = try #require(client.port)
            // The API answers with its JSON error, the console with a page.
            let starts = [
                ("POST /v1/sync/push HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"deviceId\":", "request_timeout"),
                ("POST /console/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ntoken=", "<h1>Cannot sign in</h1>"),
            ]
            for (head, says) in starts {
                let answer = try await onThread {
                    let connection = try RawConnection(port: port)
                    defer { connection.close() }
                    _ = connection.send(Array(head.utf8))
                    // Then nothing more: the server must answer on its own.
                    return connection.receiveAll()
                }
                #expect(answer.hasPrefix("HTTP/1.1 408"), "\(head.prefix(24)): \(answer.prefix(60))")
                #expect(answer.contains(says) && answer.contains("did not arrive"), "\(answer)")
                // The one slot is free again.
                let health = try await client.executeRequest(uri: "/v1/sync/pull", method: .get, headers: .bearer(token), body: nil)
                #expect(health.status == .ok)
            }
        }
    }
}

extension LimitsTests {
    @Test("a client that stops reading its large response is disconnected by the response timeout", arguments: Backend.available)
    func unreadResponse(backend: Backend) async throws {
        let h = try await Harness(backend: backend)
        let (_, token) = try await h.createUser("alice")
        let body = String(repeating: "A long article body that nobody will read. ", count: 12_000)  // about 500 KB
        let lines = (1...40).map { Harness.articleLine(id: "big-\($0)", title: "Big \($0)", body: body) }
        #expect(try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8)).inserted == 40)
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.responseTimeout = .milliseconds(300)
        try await h.application(configuration).test(.live) { client in
            let port = try #require(client.port)
            let (received, declared) = try await onThread { () -> (Int, Int) in
                // A 20 MB page, far more than the socket buffers hold. Once the response has begun
                // (its head is here, so the server's deadline runs) the client reads nothing for five
                // times the timeout (the slow client is the scenario), then reads what it can.
                let connection = try RawConnection(port: port)
                defer { connection.close() }
                _ = connection.send(Array("GET /v1/sync/pull?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\n\r\n".utf8))
                let start = connection.receive(until: "\r\n\r\n")
                usleep(1_500_000)
                let text = start + connection.receiveAll()
                let length = text.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                let headEnd = text.utf8.count - (text.range(of: "\r\n\r\n").map { text[$0.upperBound...].utf8.count } ?? 0)
                return (text.utf8.count - headEnd, length)
            }
            #expect(declared > 10_000_000)
            #expect(received < declared, "the server closed the connection before the client took the whole response")
        }
    }
}

/// Runs blocking socket work on a thread of its own, off the concurrency pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A plain blocking TCP connection to 127.0.0.1, for clients no HTTP library would be.
struct RawConnection: Sendable {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, streamSocket, 0)
        #if canImport(Darwin)
        var on: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CocoaError(.fileReadUnknown) }
        // A bound on how long a test can wait, not a timing assertion.
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Whether the bytes went out (false once the server closed the connection).
    func send(_ bytes: [UInt8]) -> Bool {
        var peek = [UInt8](repeating: 0, count: 1)
        // A closed connection reads as end of file without blocking.
        if recv(descriptor, &peek, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) == 0 { return false }
        return bytes.withUnsafeBytes { systemSend(descriptor, $0.baseAddress, $0.count, noSignal) } == bytes.count
    }

    /// What the server sends until `marker` has arrived (or the connection ends).
    func receive(until marker: String) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: received, as: UTF8.self).contains(marker) {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Everything the server sends until it closes the connection (or the safety bound passes).
    func receiveAll() -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    func close() {
        _ = systemClose(descriptor)
    }
}
