import Foundation
import Hummingbird
import Logging
import ReaderSyncServer
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Resident memory and CPU time of a process, read from /proc (Linux).
struct ProcessMeter: Sendable {
    let pid: Int32

    /// Peak resident set size since the last reset, in bytes (`VmHWM`).
    var peakResidentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Int(line.split(whereSeparator: \.isWhitespace)[1])
        else { return nil }
        return kb * 1024
    }

    /// Resets the peak to the current resident size (writes 5 to clear_refs; needs permission).
    func resetPeak() {
        try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)
    }

    /// User + system CPU seconds so far.
    var cpuSeconds: Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Fields after the command: state is [0], utime [11], stime [12].
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// The server the benchmark measures: the real `reader-sync serve` in its own process, or in this one.
final class BenchServer: Sendable {
    let url: String
    let adminToken: String
    let meter: ProcessMeter
    private let stopAction: @Sendable () async -> Void

    private init(url: String, adminToken: String, meter: ProcessMeter, stop: @escaping @Sendable () async -> Void) {
        self.url = url
        self.adminToken = adminToken
        self.meter = meter
        stopAction = stop
    }

    func stop() async { await stopAction() }

    /// Starts `executable serve` on a free loopback port with a new database at `databasePath`.
    static func process(executable: String, databasePath: String, adminToken: String, durability: String) throws -> BenchServer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["serve", "--db", databasePath, "--port", "0", "--admin-token", adminToken, "--durability", durability]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Read until the banner names the URL (or the process exits).
        var text = ""
        let handle = output.fileHandleForReading
        while !text.contains("database:") {
            let chunk = handle.availableData
            if chunk.isEmpty { throw SimulationError("the server process exited before it was ready: \(text)") }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first(where: { $0.contains("http://") }),
              let url = line.split(separator: " ").last.map(String.init)
        else { throw SimulationError("cannot find the server's URL in: \(text)") }
        let box = ProcessBox(process)
        return BenchServer(url: url, adminToken: adminToken, meter: ProcessMeter(pid: process.processIdentifier)) {
            box.process.terminate()
            box.process.waitUntilExit()
        }
    }

    /// Starts the server in this process (`--in-process`): one process shares the cores.
    static func inProcess(databasePath: String, adminToken: String, durability: String) async throws -> BenchServer {
        let store = try SQLiteSyncStore(path: databasePath, durability: SQLiteSyncStore.Durability(rawValue: durability) ?? .normal)
        try await store.setAdminTokenHash(Tokens.hash(adminToken))
        let service = try await SyncService(store: store)
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = buildApplication(service: service, configuration: .init(host: "127.0.0.1", port: 0), logger: logger,
                                   onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        let task = Task { try await group.run() }
        var port = 0
        for await p in ports {
            port = p
            break
        }
        return BenchServer(url: "http://127.0.0.1:\(port)", adminToken: adminToken, meter: ProcessMeter(pid: getpid())) {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
        }
    }
}

/// Holds a `Process` for a `Sendable` closure; it is only terminated and awaited once.
private final class ProcessBox: @unchecked Sendable {
    // @unchecked: used from one task at a time (start, then stop).
    let process: Process
    init(_ process: Process) { self.process = process }
}
