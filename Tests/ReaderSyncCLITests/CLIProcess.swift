import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ReaderSyncTestSupport
import Testing

/// The built `reader-sync` binary, run as a user would.
enum CLI {
    /// The binary sits beside the test bundle in the build products directory.
    static let binary: URL = {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidates = [
            exe.deletingLastPathComponent().appendingPathComponent("reader-sync"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("reader-sync"),
            Bundle.main.bundleURL.appendingPathComponent("reader-sync"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the binary to completion.
    static func run(_ arguments: [String], in directory: URL? = nil) throws -> Result {
        try run(binary, arguments, in: directory)
    }

    /// Runs a program to completion, blocking the calling thread; SIGTERM after `timeout`.
    static func run(_ executable: URL, _ arguments: [String], in directory: URL? = nil, environment: [String: String]? = nil,
                    timeout: Duration? = nil) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let killer = DispatchWorkItem { process.terminate() }
        if let timeout {
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(Int(timeout.components.seconds)), execute: killer)
        }
        // Read both pipes to the end before waiting, so a full pipe cannot block the child.
        let errData = Mutexed(Data())
        let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        killer.cancel()
        let errBytes = errData.wait { _, written in written }
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errBytes, as: UTF8.self))
    }

    static func temporaryDirectory() throws -> URL {
        try TestDirectory.make("cli")
    }
}

/// A value that another thread updates; readers can wait for a condition on it without polling.
final class Mutexed<Value: Sendable>: @unchecked Sendable {
    // @unchecked: every access goes through `condition`.
    private let condition = NSCondition()
    private var stored: Value
    private var written = false
    init(_ value: Value) { stored = value }

    func set(_ value: Value) {
        condition.lock()
        stored = value
        written = true
        condition.broadcast()
        condition.unlock()
    }

    var value: Value {
        condition.lock()
        defer { condition.unlock() }
        return stored
    }

    /// Blocks until `predicate` holds for the value (checked on every `set`).
    func wait(until predicate: (Value, Bool) -> Bool) -> Value {
        condition.lock()
        defer { condition.unlock() }
        while !predicate(stored, written) { condition.wait() }
        return stored
    }
}

/// A `reader-sync serve` process, stopped with SIGTERM.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: `output` is only touched under `lock`; the Process is used from the test's task only.
    let process = Process()
    private let lock = NSLock()
    private var output = ""
    private let reader: Thread
    private let stdout = Pipe()

    /// - Parameter stderr: a file to append the server's log to (default: discarded).
    init(arguments: [String], stderr: URL? = nil) throws {
        process.executableURL = CLI.binary
        process.arguments = ["serve"] + arguments
        process.standardOutput = stdout
        if let stderr {
            if !FileManager.default.fileExists(atPath: stderr.path) {
                _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
            }
            let handle = try FileHandle(forWritingTo: stderr)
            handle.seekToEndOfFile()
            process.standardError = handle
        } else {
            process.standardError = FileHandle.nullDevice
        }
        let handle = stdout.fileHandleForReading
        let box = Mutexed("")
        reader = Thread {
            var text = ""
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                box.set(text)
            }
            box.set(text + "\u{4}")
        }
        self.box = box
        try process.run()
        reader.start()
    }

    private let box: Mutexed<String>

    /// Waits until stdout contains `needle` (or the process ends, which fails the wait).
    func waitForOutput(containing needle: String) throws -> String {
        let text = box.wait { text, _ in text.contains(needle) || text.hasSuffix("\u{4}") }
        guard text.contains(needle) else { throw CLIFailure("server exited before printing \(needle); output: \(text)") }
        return text
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would, and waits for it to end.
    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    var outputSoFar: String { box.value }

    /// The base URL printed in the banner (`http://host:port`).
    func baseURL() throws -> String {
        let banner = try waitForOutput(containing: "database:")
        guard let url = banner.split(separator: "\n").first(where: { $0.contains("http://") })?.split(separator: " ").last else {
            throw CLIFailure("no URL in the banner: \(banner)")
        }
        return String(url)
    }
}

/// Plain HTTP calls to a server under test.
struct Loopback {
    let client: HTTPClient
    let baseURL: String

    struct Answer {
        var status: UInt
        var body: String
        var headers: HTTPHeaders = [:]
    }

    func call(_ method: HTTPMethod, _ path: String, token: String?, body: String? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Answer(status: response.status.code, body: String(buffer: bytes), headers: response.headers)
    }

    /// Runs `body` with a client that is shut down afterwards, also when `body` throws.
    static func with<T>(_ baseURL: String, _ body: (Loopback) async throws -> T) async throws -> T {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let result = try await body(Loopback(client: client, baseURL: baseURL))
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

struct CLIFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
