import Foundation
import Hummingbird
import Logging
import ReaderSyncPostgres
import ReaderSyncSQLiteStore
import ReaderSyncServer
import ReaderSyncService
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Where the bench's server databases go: SQLite files in the work directory, or scratch
/// databases on a PostgreSQL server (created per run, dropped at the end).
final class BenchDatabases: Sendable {
    let options: BenchmarkOptions
    private let postgres: PostgresDatabaseURL?
    private let created = Mutex<[String]>([])
    private let logger: Logger = {
        var logger = Logger(label: "bench.postgres")
        logger.logLevel = .error
        return logger
    }()

    init(_ options: BenchmarkOptions) throws {
        self.options = options
        postgres = try options.postgresURL.map(PostgresDatabaseURL.init)
    }

    /// Starts the servers on a new database called `name` (a file `name.sqlite`, or a PostgreSQL
    /// database `readersync_name_<random>`).
    ///
    /// - Parameter maxStreamsPerUser: the servers' `--max-event-streams-per-user`, when not the default.
    func startServers(name: String, adminToken: String, maxStreamsPerUser: Int? = nil) async throws -> BenchServer {
        let arguments = (maxStreamsPerUser.map { ["--max-event-streams-per-user", String($0), "--max-event-streams", String(max($0, 10_000))] } ?? [])
            + (options.recordsHistory ? [] : ["--no-field-history"])
        if let postgres {
            let databaseName = "readersync_\(name.replacingOccurrences(of: "-", with: "_"))_\(String(UInt32.random(in: .min ... .max), radix: 16))"
            let url = try await PostgresSyncStore.createDatabase(named: databaseName, on: postgres, logger: logger)
            created.withLock { $0.append(databaseName) }
            return try BenchServer.processes(executable: options.serverExecutable, database: url.connectionString,
                                             count: options.servers, adminToken: adminToken, durability: options.durability,
                                             arguments: arguments)
        }
        let path = options.workDirectory.appendingPathComponent("\(name).sqlite").path
        return options.inProcess
            ? try await BenchServer.inProcess(databasePath: path, adminToken: adminToken, durability: options.durability,
                                              maxStreamsPerUser: maxStreamsPerUser, recordsHistory: options.recordsHistory)
            : try BenchServer.processes(executable: options.serverExecutable, database: path, count: options.servers,
                                        adminToken: adminToken, durability: options.durability, arguments: arguments)
    }

    /// Drops the scratch databases (servers stopped first).
    func dropAll() async {
        guard let postgres else { return }
        for name in created.withLock({ $0 }) {
            try? await PostgresSyncStore.dropDatabase(named: name, on: postgres, logger: logger)
        }
    }
}

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

/// The servers the benchmark measures: `reader-sync serve` in processes of their own (several on
/// one PostgreSQL database with `--servers`), or one in this process.
final class BenchServer: Sendable {
    /// Every server's base URL; admin requests and single devices use the first.
    let urls: [String]
    let adminToken: String
    /// The database the servers run on: a SQLite path or a PostgreSQL URL, as `--db` takes it.
    let database: String
    /// The CPU and memory of every server process together.
    let meter: ProcessGroupMeter
    private let stopAction: @Sendable () async -> Void

    private init(urls: [String], adminToken: String, database: String, meter: ProcessGroupMeter, stop: @escaping @Sendable () async -> Void) {
        self.urls = urls
        self.adminToken = adminToken
        self.database = database
        self.meter = meter
        stopAction = stop
    }

    var url: String { urls[0] }

    /// The server device number `index` talks to: the devices are spread over the servers in turn,
    /// as a load balancer without affinity would.
    func url(forDevice index: Int) -> String { urls[index % urls.count] }

    func stop() async { await stopAction() }

    /// Starts `count` processes of `executable serve` on free loopback ports, on the database
    /// `database` (a SQLite path, or a PostgreSQL URL passed through `READER_SYNC_DB` so its
    /// password never shows in a process list). The first is started alone, so it creates and
    /// migrates the database before the others open it.
    static func processes(executable: String, database: String, count: Int, adminToken: String, durability: String,
                          arguments: [String] = []) throws -> BenchServer {
        var processes: [Process] = []
        var urls: [String] = []
        do {
            for _ in 0..<max(count, 1) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = ["serve", "--port", "0", "--admin-token", adminToken, "--durability", durability] + arguments
                process.environment = ProcessInfo.processInfo.environment.merging(["READER_SYNC_DB": database]) { $1 }
                let output = Pipe()
                process.standardOutput = output
                process.standardError = FileHandle.nullDevice
                try process.run()
                processes.append(process)
                urls.append(try banner(output.fileHandleForReading))
            }
        } catch {
            for process in processes {
                process.terminate()
                process.waitUntilExit()
            }
            throw error
        }
        let box = ProcessBox(processes)
        return BenchServer(urls: urls, adminToken: adminToken, database: database, meter: ProcessGroupMeter(pids: processes.map(\.processIdentifier))) {
            for process in box.processes { process.terminate() }
            for process in box.processes { process.waitUntilExit() }
        }
    }

    /// Reads a starting server's stdout until the banner names its URL.
    private static func banner(_ handle: FileHandle) throws -> String {
        var text = ""
        while !text.contains("database:") {
            let chunk = handle.availableData
            if chunk.isEmpty { throw SimulationError("the server process exited before it was ready: \(text)") }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let line = text.split(separator: "\n").first(where: { $0.contains("http://") }),
              let url = line.split(separator: " ").last.map(String.init)
        else { throw SimulationError("cannot find the server's URL in: \(text)") }
        return url
    }

    /// Starts the server in this process (`--in-process`, SQLite only): one process shares the cores.
    static func inProcess(databasePath: String, adminToken: String, durability: String, maxStreamsPerUser: Int? = nil,
                          recordsHistory: Bool = true) async throws -> BenchServer {
        let store = try SQLiteSyncStore(path: databasePath, durability: SQLiteSyncStore.Durability(rawValue: durability) ?? .normal)
        try await store.setAdminTokenHash(Tokens.hash(adminToken))
        var configuration = SyncConfiguration()
        configuration.recordsHistory = recordsHistory
        if let maxStreamsPerUser {
            configuration.live.maxStreamsPerUser = maxStreamsPerUser
            configuration.live.maxStreams = max(maxStreamsPerUser, configuration.live.maxStreams)
        }
        let service = try await SyncService(store: store, configuration: configuration)
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
        return BenchServer(urls: ["http://127.0.0.1:\(port)"], adminToken: adminToken, database: databasePath, meter: ProcessGroupMeter(pids: [getpid()])) {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
        }
    }
}

/// Several processes measured as one: CPU seconds and peak resident memory summed.
struct ProcessGroupMeter: Sendable {
    let meters: [ProcessMeter]

    init(pids: [Int32]) {
        meters = pids.map(ProcessMeter.init(pid:))
    }

    /// The sum of each process's peak since its last reset (an upper bound of the peak of the sum).
    var peakResidentBytes: Int? {
        let peaks = meters.compactMap(\.peakResidentBytes)
        return peaks.isEmpty ? nil : peaks.reduce(0, +)
    }

    func resetPeak() { meters.forEach { $0.resetPeak() } }

    var cpuSeconds: Double? {
        let seconds = meters.compactMap(\.cpuSeconds)
        return seconds.isEmpty ? nil : seconds.reduce(0, +)
    }
}

/// Holds `Process`es for a `Sendable` closure; they are only terminated and awaited once.
private final class ProcessBox: @unchecked Sendable {
    // @unchecked: used from one task at a time (start, then stop).
    let processes: [Process]
    init(_ processes: [Process]) { self.processes = processes }
}
