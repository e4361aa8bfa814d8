import Foundation

/// A throwaway PostgreSQL server for tests: started at most once per test process, on first use, and
/// shared by every test. It listens only on a Unix socket in its own temporary directory (no TCP),
/// runs with fsync off, and is stopped (immediate shutdown) and deleted when the process exits; servers
/// left by crashed test processes are removed on the next start. As root it runs as the `postgres` user
/// (via `runuser`), since initdb and postgres refuse to run as root.
package enum PostgresCluster {
    /// The shared server, started on the first call; nil when PostgreSQL's server binaries (initdb and
    /// postgres, on PATH or under /usr/lib/postgresql/*/bin) are not installed, or when running
    /// as root without a `postgres` user: then one "PostgreSQL tests skipped: …" line is printed, once.
    /// Throws `PostgresClusterError` when the server cannot be set up; every later call throws it again.
    package static func shared() throws -> Server? { try started.get() }

    /// False only where PostgreSQL is not installed (``shared()`` prints one line saying so): a
    /// server that is installed but fails to start counts as installed, so its tests fail with the
    /// start's error (printed here) instead of being skipped unseen.
    package static let isInstalled: Bool = {
        do {
            return try shared() != nil
        } catch {
            print("PostgreSQL test server failed to start: \(error)")
            return true
        }
    }()

    /// A running server. Connect through `socketPath` (or `socketDirectory` and `port`) as `user`.
    package final class Server: @unchecked Sendable {
        /// The directory holding the socket file, `data/` and `log`.
        package let socketDirectory: String
        /// The port; it only names the socket file, nothing listens on TCP.
        package let port: Int
        /// The superuser to connect as; authentication is `trust`.
        package let user = "postgres"
        /// The Unix socket: `<socketDirectory>/.s.PGSQL.<port>`.
        package var socketPath: String { "\(socketDirectory)/.s.PGSQL.\(port)" }
        /// The server's log file.
        package var logPath: String { "\(socketDirectory)/log" }
        let bin: String
        let runuser: String?
        private let lock = NSLock()
        private var databases = 0

        init(socketDirectory: String, port: Int, bin: String, runuser: String?) {
            (self.socketDirectory, self.port, self.bin, self.runuser) = (socketDirectory, port, bin, runuser)
        }

        /// Creates an empty database with a new name (`t_<n>_<hex>`) and returns its URL,
        /// `postgresql://postgres@/<name>?host=<socketDirectory>&port=<port>`.
        package func createDatabase() throws -> String {
            let name = lock.withLock {
                databases += 1
                return "t_\(databases)_" + String(UInt32.random(in: .min ... .max), radix: 16)
            }
            _ = try psql("CREATE DATABASE \"\(name)\"", database: "postgres")
            return url(database: name)
        }

        /// Runs a client program of this PostgreSQL installation (`pg_dump`, `pg_restore`, …)
        /// against this server, as the current user: `-h`, `-p` and `-U` are given before
        /// `arguments`. Returns its standard output; throws `PostgresClusterError` with its
        /// stderr when it fails.
        package func runClient(_ tool: String, _ arguments: [String]) throws -> String {
            try PostgresCluster.run("\(bin)/\(tool)", ["-h", socketDirectory, "-p", "\(port)", "-U", user] + arguments, in: socketDirectory)
        }

        /// Runs `sql` in `database` with `psql -X -q -At -v ON_ERROR_STOP=1` and returns its standard
        /// output (rows only, `|` between columns, no command tags) without the final newline. Throws
        /// `PostgresClusterError` with psql's stderr when psql fails.
        package func psql(_ sql: String, database: String) throws -> String {
            let psql = FileManager.default.isExecutableFile(atPath: "\(bin)/psql") ? "\(bin)/psql" : PostgresCluster.onPath("psql") ?? "psql"
            var out = try PostgresCluster.run(psql, ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", socketDirectory, "-p", "\(port)",
                                                     "-U", user, "-d", database, "-c", sql], in: socketDirectory)
            if out.hasSuffix("\n") { out.removeLast() }
            return out
        }

        /// For a standby (``PostgresCluster/standby()``): waits until it has replayed all the WAL
        /// `primary` had inserted when called (its insert position: with `synchronous_commit` off,
        /// a commit is inserted before it is written), for at most 60 s.
        package func waitForReplay(of primary: Server) throws {
            // Less a page header when just past one: replay of a record ending on a page boundary stops there.
            let lsn = try primary.psql("""
                SELECT CASE WHEN (l - '0/0'::pg_lsn) % 8192 IN (24, 40) THEN l - ((l - '0/0'::pg_lsn) % 8192) ELSE l END
                FROM pg_current_wal_insert_lsn() AS l
                """, database: "postgres")
            let deadline = Date(timeIntervalSinceNow: 60)
            while try psql("SELECT pg_last_wal_replay_lsn() >= '\(lsn)'::pg_lsn", database: "postgres") != "t" {
                guard Date() < deadline else { throw PostgresClusterError(message: "the standby has not replayed \(lsn) after 60 s") }
                usleep(5_000)
            }
        }

        /// The URL of `database` on this server, as ``createDatabase()`` returns it.
        package func url(database: String) -> String {
            let host = socketDirectory.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? socketDirectory
            return "postgresql://\(user)@/\(database)?host=\(host)&port=\(port)"
        }

        /// The command line for a server binary (initdb, postgres): through runuser as `postgres` when we are root.
        func command(_ tool: String, _ arguments: [String]) -> (String, [String]) {
            guard let runuser else { return ("\(bin)/\(tool)", arguments) }
            return (runuser, ["-u", user, "--", "\(bin)/\(tool)"] + arguments)
        }
    }

    /// A streaming replica (hot standby) of ``shared()``, started on first call: a base backup
    /// (`pg_basebackup -R`) in a `standby` directory inside the primary's, its own socket and
    /// port, stopped and deleted with the primary. Databases created on the primary appear on it.
    /// `nil` where ``shared()`` is; throws `PostgresClusterError` when it cannot be set up.
    package static func standby() throws -> Server? { try standbyStarted.get() }

    private static let started = Result<Server?, any Error> { try start() }
    private static let standbyStarted = Result<Server?, any Error> { try shared().map { try startStandby(of: $0) } }

    private static func startStandby(of primary: Server) throws -> Server {
        let dir = "\(primary.socketDirectory)/standby"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        if primary.runuser != nil, let owner = getpwnam(primary.user), chown(dir, owner.pointee.pw_uid, owner.pointee.pw_gid) != 0 {
            throw PostgresClusterError(message: "chown \(dir) to postgres failed: \(String(cString: strerror(errno)))")
        }
        let standby = Server(socketDirectory: dir, port: primary.port + 1, bin: primary.bin, runuser: primary.runuser)
        running.lock.withLock { running.standby = standby }
        let (basebackup, arguments) = primary.command("pg_basebackup", [
            "-h", primary.socketDirectory, "-p", "\(primary.port)", "-U", primary.user, "-D", "\(dir)/data", "-R", "-X", "stream", "-c", "fast",
        ])
        _ = try run(basebackup, arguments, in: dir)
        try launch(standby, settings: """

            unix_socket_directories = '\(dir)'
            port = \(standby.port)
            hot_standby = on

            """)
        return standby
    }
    private static let running = Running()

    /// The server atexit must stop and delete, set once its directory exists.
    private final class Running: @unchecked Sendable {
        let lock = NSLock()
        var server: Server?
        var standby: Server?
    }

    private static func start() throws -> Server? {
        func skip(_ reason: String) -> Server? {
            print("PostgreSQL tests skipped: \(reason)")
            return nil
        }
        guard let bin = binDirectory() else { return skip("no initdb found (install postgresql, e.g. apt-get install postgresql)") }
        var runuser: String?
        var owner: passwd?
        if geteuid() == 0 {
            guard let pw = getpwnam("postgres") else { return skip("running as root and there is no postgres user to run the server as") }
            guard let path = onPath("runuser", extra: ["/usr/sbin", "/sbin"]) else { return skip("running as root and no runuser found") }
            (runuser, owner) = (path, pw.pointee)
        }
        // /tmp when root (the postgres user must be able to reach it) or when TMPDIR is long: socket paths
        // are limited to about 100 bytes. The name holds our pid, for removeStale.
        let temp = NSTemporaryDirectory()
        let base = owner != nil || temp.count > 60 ? "/tmp" : temp
        removeStale(in: base)
        let dir = URL(fileURLWithPath: base).appendingPathComponent("reader-sync-pg-\(getpid())-\(UUID().uuidString.prefix(8).lowercased())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let server = Server(socketDirectory: dir, port: 5433 + Int.random(in: 0..<50000), bin: bin, runuser: runuser)
        running.lock.withLock { running.server = server }
        atexit { PostgresCluster.stopAtExit() }
        do {
            if let owner, chown(dir, owner.pw_uid, owner.pw_gid) != 0 {
                throw PostgresClusterError(message: "chown \(dir) to postgres failed: \(String(cString: strerror(errno)))")
            }
            let (initdb, initdbArguments) = server.command("initdb", ["-D", "\(dir)/data", "-U", server.user, "-A", "trust", "--encoding=UTF8", "--locale=C", "-N"])
            _ = try run(initdb, initdbArguments, in: dir)
            let settings = """

                listen_addresses = ''
                unix_socket_directories = '\(dir)'
                port = \(server.port)
                fsync = off
                synchronous_commit = off
                full_page_writes = off
                max_connections = 300
                shared_buffers = 128MB

                """
            try launch(server, settings: settings)
            return server
        } catch var error as PostgresClusterError {
            let log = (try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? ""
            if !log.isEmpty { error.message += "\nserver log (tail):\n" + log.split(separator: "\n").suffix(20).joined(separator: "\n") }
            stopAtExit()
            throw error
        } catch {
            stopAtExit()
            throw error
        }
    }

    /// Appends `settings` to the server's postgresql.conf and starts it, waiting until it takes
    /// connections ("ready", or "standby" for a hot standby).
    private static func launch(_ server: Server, settings: String) throws {
        let dir = server.socketDirectory
        let conf = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(dir)/data/postgresql.conf"))
        try conf.seekToEnd()
        try conf.write(contentsOf: Data(settings.utf8))
        try conf.close()
        // postgres itself, not `pg_ctl start`: Foundation's Process reports an exit only once every holder
        // of the child's status socket has exited, and pg_ctl's daemonized postmaster would hold it.
        _ = FileManager.default.createFile(atPath: server.logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: server.logPath))
        let (postgres, postgresArguments) = server.command("postgres", ["-D", "\(dir)/data"])
        let process = configured(Process(), postgres, postgresArguments, in: dir)
        (process.standardOutput, process.standardError) = (log, log)
        try process.run()
        try log.close()
        let command = ([postgres] + postgresArguments).joined(separator: " "), deadline = Date(timeIntervalSinceNow: 60)
        while !["ready", "standby"].contains(postmasterStatus(dir)) {
            guard process.isRunning else { throw PostgresClusterError(message: "\(command) exited with status \(process.terminationStatus)") }
            guard Date() < deadline else { throw PostgresClusterError(message: "\(command): not ready after 60 s") }
            usleep(20_000)
        }
    }

    /// Stops the server, if started, and deletes its directory. Called by atexit, so captures nothing.
    private static func stopAtExit() {
        guard let server = running.lock.withLock({ () -> Server? in
            defer { running.server = nil }
            return running.server
        }) else { return }
        if let standby = running.lock.withLock({ running.standby }) { stop(standby.socketDirectory) }
        stop(server.socketDirectory)
        try? FileManager.default.removeItem(atPath: server.socketDirectory)
    }

    /// Immediate shutdown (SIGQUIT) of the postmaster of `<directory>/data`, waiting up to 10 s for it to go.
    private static func stop(_ directory: String) {
        guard let pid = postmasterPID(directory) else { return }
        kill(pid, SIGQUIT)
        let deadline = Date(timeIntervalSinceNow: 10)
        while postmasterPID(directory) != nil, Date() < deadline { usleep(20_000) }
    }

    /// Stops and deletes the servers of test processes that died without running atexit (crash, SIGKILL).
    /// A live postmaster is only stopped when /proc shows it runs on that directory.
    private static func removeStale(in base: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where name.hasPrefix("reader-sync-pg-") {
            let parts = name.split(separator: "-")
            guard parts.count == 5, let owner = pid_t(parts[3]), kill(owner, 0) != 0, errno == ESRCH else { continue }
            let dir = "\(base)/\(name)"
            if let pid = postmasterPID(dir), kill(pid, 0) == 0 || errno == EPERM {
                let commandLine = FileHandle(forReadingAtPath: "/proc/\(pid)/cmdline")?.readDataToEndOfFile() ?? Data()
                guard String(decoding: commandLine, as: UTF8.self).contains(dir) else { continue }
                stop("\(dir)/standby")
                stop(dir)
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// Line 1 of `<directory>/data/postmaster.pid`: the postmaster's pid, while it runs.
    private static func postmasterPID(_ directory: String) -> pid_t? {
        postmasterFile(directory).first.flatMap { pid_t($0) }
    }

    /// Line 8 of postmaster.pid: "starting", "ready", "stopping" (PostgreSQL 10 and later).
    private static func postmasterStatus(_ directory: String) -> String? {
        let lines = postmasterFile(directory)
        return lines.count > 7 ? lines[7].trimmingCharacters(in: .whitespaces) : nil
    }

    private static func postmasterFile(_ directory: String) -> [String] {
        let text = (try? String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// The directory of the first initdb found (symlinks resolved) with postgres beside it:
    /// PATH first, then /usr/lib/postgresql/<version>/bin, highest version first.
    private static func binDirectory() -> String? {
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
            .sorted { $0.compare($1, options: .numeric) == .orderedDescending }
        let candidates = searchPath() + versions.map { "/usr/lib/postgresql/\($0)/bin" }
        let fm = FileManager.default
        for dir in candidates where fm.isExecutableFile(atPath: "\(dir)/initdb") {
            let bin = URL(fileURLWithPath: "\(dir)/initdb").resolvingSymlinksInPath().deletingLastPathComponent().path
            if ["initdb", "postgres"].allSatisfy({ fm.isExecutableFile(atPath: "\(bin)/\($0)") }) { return bin }
        }
        return nil
    }

    private static func searchPath() -> [String] {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
    }

    static func onPath(_ name: String, extra: [String] = []) -> String? {
        (searchPath() + extra).map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `process` set to run `executable` in `directory`, stdin /dev/null, PG* variables removed, LC_ALL=C.
    static func configured(_ process: Process, _ executable: String, _ arguments: [String], in directory: String) -> Process {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") }.merging(["LC_ALL": "C"]) { $1 }
        process.standardInput = FileHandle.nullDevice
        return process
    }

    /// Runs a command (see `configured`) and returns its stdout.
    /// Throws `PostgresClusterError` (command, status, stderr) when it exits non-zero.
    static func run(_ executable: String, _ arguments: [String], in directory: String) throws -> String {
        let process = configured(Process(), executable, arguments, in: directory)
        let (out, err) = (Pipe(), Pipe())
        (process.standardOutput, process.standardError) = (out, err)
        let command = ([executable] + arguments).joined(separator: " ")
        do { try process.run() } catch { throw PostgresClusterError(message: "\(command): \(error)") }
        // stdout on another thread, so neither pipe can fill up while we wait on the other.
        final class Box: @unchecked Sendable { var data = Data() }
        let stdout = Box()
        let group = DispatchGroup()
        let reader = out.fileHandleForReading
        DispatchQueue.global().async(group: group) { stdout.data = reader.readDataToEndOfFile() }
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PostgresClusterError(message: "\(command) exited with status \(process.terminationStatus):\n"
                + String(decoding: stderr, as: UTF8.self))
        }
        return String(decoding: stdout.data, as: UTF8.self)
    }
}

/// Why the test PostgreSQL server could not be started or a command failed: the command line, its
/// exit status and stderr, and for a failed start the tail of the server log.
package struct PostgresClusterError: Error, CustomStringConvertible {
    /// The whole explanation.
    package var message: String
    package var description: String { message }
}

/// Lets one PostgreSQL test at a time write to the shared test cluster.
///
/// Pulls on PostgreSQL serve only changes below the cluster-wide horizon: a transaction still
/// open in *any* database of the cluster holds back every pull (docs/ARCHITECTURE.md, "The change
/// sequence"). Tests running side by side on one cluster would hold back each other's pulls, and a
/// test expecting its own change in the next pull would see it only once the other test's
/// transaction ended. Each test that writes and then pulls holds this lock from its start to its
/// end, so its pulls meet only its own transactions.
package actor PostgresTestLock {
    package static let shared = PostgresTestLock()
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Waits until no other test holds the lock, then holds it.
    package func acquire() async {
        guard held else {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Hands the lock to the next waiting test (callable from `deinit`).
    package nonisolated func release() {
        Task { await self.handOver() }
    }

    private func handOver() {
        if waiters.isEmpty { held = false } else { waiters.removeFirst().resume() }
    }
}
