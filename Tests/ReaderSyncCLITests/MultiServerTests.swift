import Foundation
import ReaderSyncTestSupport
import Testing

extension ProcessTests {
    /// Many `reader-sync serve` processes on one PostgreSQL database, as a publisher runs them
    /// behind a load balancer.
    @Suite("Many servers on one PostgreSQL database, as processes", .enabled(if: PostgresCluster.isInstalled))
    struct MultiServerTests {
        static let adminToken = "multi-server-admin-token-0123"

        @Test("three servers started at once; devices spread their requests over them while the newsroom ingests through the CLI; one server is SIGKILLed while pushes commit, and restarted: every invariant holds")
        func threeServersOneKilled() async throws {
            let cluster = try #require(try PostgresCluster.shared())
            await PostgresTestLock.shared.acquire()
            defer { PostgresTestLock.shared.release() }
            let database = try cluster.createDatabase()
            let directory = try CLI.temporaryDirectory()
            let log = directory.appendingPathComponent("servers.log")
            // Started at once on an empty database: they race to migrate it (advisory lock).
            var servers = try (0..<3).map { _ in
                try ServerProcess(arguments: ["--db", database, "--port", "0", "--admin-token", Self.adminToken], stderr: log)
            }
            let urls = try servers.map { try $0.baseURL() }

            // The devices: 4 readers × 3 devices, every request to the next server in turn.
            let simulationDone = Mutexed(false)
            let simulation = Task.detached {
                defer { simulationDone.set(true) }
                return try CLI.run(["simulate", "--json", "--users", "4", "--devices", "3", "--steps", "80", "--concurrency", "6", "--seed", "11",
                                    "--articles", "60", "--churn", "0.1", "--fault-rate", "0.05", "--data-dir", directory.appendingPathComponent("devices").path,
                                    "--admin-token", Self.adminToken] + urls.flatMap { ["--server", $0] })
            }

            // The newsroom publishes through the CLI on the same database while the devices sync.
            let lines = (1...300).map { i in
                #"{"id":"wire-\#(i)","section":"wire","title":"Wire story \#(i)","body":"Body \#(i)","publishedAt":"2026-11-30T08:00:00Z"}"#
            }
            let feed = directory.appendingPathComponent("wire.jsonl")
            try lines.joined(separator: "\n").write(to: feed, atomically: true, encoding: .utf8)
            let ingest = try CLI.run(["ingest", "--db", database, feed.path])
            #expect(ingest.status == 0, "\(ingest.stderr)")
            #expect(ingest.stdout.contains("inserted 300"), "\(ingest.stdout)")

            // Kill the second server while pushes commit, then start it again on its port. A push
            // the server committed but never answered is the case the reference model must learn
            // from the device's resend (answered `duplicate`). To make it likely, a test-only deferred
            // trigger makes every push that processes new mutation ids wait 0.25 s inside its COMMIT:
            // PostgreSQL finishes a COMMIT it has received even when the server that sent it dies. A
            // kill cut such a commit when a backend still sleeping in it once the server is dead goes
            // away with that server (the other servers' pooled connections stay); up to 5 kills try
            // for one.
            let dbName = try #require(URLComponents(string: database)?.path.dropFirst()).description
            try await Self.waitUntil {
                simulationDone.value || Int((try? cluster.psql("SELECT count(*) FROM user_article_state", database: dbName)) ?? "0") ?? 0 >= 20
            }
            _ = try cluster.psql(Self.slowCommit, database: dbName)
            let port = try #require(URLComponents(string: urls[1])?.port)
            var cutCommits = 0
            for _ in 0..<5 where cutCommits == 0 && !simulationDone.value {
                // Kill while pushes commit: at least two sleeping, for a better chance that one is the second server's.
                _ = try Self.committingBackends(cluster, dbName, until: { simulationDone.value })
                servers[1].kill()
                let committing = try Self.backends(cluster, dbName, where: "wait_event = 'PgSleep'")
                try await Task.sleep(for: .seconds(1))
                cutCommits = committing.subtracting(try Self.backends(cluster, dbName)).count
                servers[1] = try ServerProcess(arguments: ["--db", database, "--port", String(port), "--admin-token", Self.adminToken], stderr: log)
                _ = try servers[1].baseURL()
            }
            _ = try cluster.psql(Self.dropSlowCommit, database: dbName)

            let result = try await simulation.value
            // Every invariant must hold, the reference model's included: it learns a push whose
            // response the SIGKILL took from the answer to the device's resend.
            struct Report: Decodable {
                struct Invariant: Decodable { var name: String; var passed: Bool; var detail: String? }
                var server: String
                var invariants: [Invariant]
                var unansweredPushes: [String: Int]
            }
            #expect(result.status == 0, "\(result.stderr)")
            let report = try JSONDecoder().decode(Report.self, from: Data(result.stdout.utf8))
            let failed = report.invariants.filter { !$0.passed }
            #expect(report.invariants.count == 8)
            #expect(failed.isEmpty, "\(failed)\n\(result.stderr)\nserver log: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            #expect(report.server == "servers \(urls.joined(separator: ", "))", "\(report.server)")
            // A cut commit is a push without an answer that the resend showed committed.
            if cutCommits > 0 {
                #expect((report.unansweredPushes["committed"] ?? 0) >= 1, "\(cutCommits) commit(s) cut, yet \(report.unansweredPushes)")
            }
            print("multi-server: the kill cut \(cutCommits) commit(s); pushes without an answer: \(report.unansweredPushes)")

            // Every server stops cleanly on SIGTERM: HTTP drains, then the pool closes.
            for server in servers { #expect(server.stop() == 0) }
        }

        /// A deferred trigger that makes the COMMIT of every push that processes new mutation ids (it
        /// raises the device's last id, or binds a new device) sleep 0.25 s. Test-only, dropped after the kills.
        static let slowCommit = """
            CREATE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.25); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER test_slow_commit_insert AFTER INSERT ON device DEFERRABLE INITIALLY DEFERRED
                FOR EACH ROW EXECUTE FUNCTION test_slow_commit();
            CREATE CONSTRAINT TRIGGER test_slow_commit_update AFTER UPDATE ON device DEFERRABLE INITIALLY DEFERRED
                FOR EACH ROW WHEN (NEW.last_mutation_id > OLD.last_mutation_id) EXECUTE FUNCTION test_slow_commit();
            """
        static let dropSlowCommit = """
            DROP TRIGGER test_slow_commit_insert ON device; DROP TRIGGER test_slow_commit_update ON device; DROP FUNCTION test_slow_commit();
            """

        /// The backends of the database (process ids).
        static func backends(_ cluster: PostgresCluster.Server, _ database: String, where condition: String = "true") throws -> Set<Int> {
            let rows = try cluster.psql("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND \(condition)", database: database)
            return Set(rows.split(separator: "\n").compactMap { Int($0) })
        }

        /// The backends sleeping in a push's COMMIT: waits up to 20 s for two, then takes what there
        /// is; stops early once `done`.
        static func committingBackends(_ cluster: PostgresCluster.Server, _ database: String, until done: () -> Bool) throws -> Set<Int> {
            let deadline = Date().addingTimeInterval(20)
            var sleeping: Set<Int> = []
            repeat {
                sleeping = try backends(cluster, database, where: "wait_event = 'PgSleep'")
                if sleeping.count >= 2 { break }
                Thread.sleep(forTimeInterval: 0.01)
            } while Date() < deadline && !done()
            return sleeping
        }

        /// Polls `condition` (a database query) until it holds, for at most a minute, sleeping
        /// between polls without holding a thread of the cooperative pool.
        static func waitUntil(_ condition: () -> Bool) async throws {
            let deadline = Date().addingTimeInterval(60)
            while !condition() {
                guard Date() < deadline else { throw CLIFailure("the condition did not hold within a minute") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }
}

extension ProcessTests {
    @Suite("pg_dump, pg_restore and reset-epoch on a real server", .enabled(if: PostgresCluster.isInstalled))
    struct PostgresRestoreTests {
        @Test("pg_dump while serving; pg_restore with the server stopped, then reset-epoch: HTTP devices give back all the dump lacks")
        func dumpRestoreResetEpoch() async throws {
            let cluster = try #require(try PostgresCluster.shared())
            await PostgresTestLock.shared.acquire()
            defer { PostgresTestLock.shared.release() }
            let db = try cluster.createDatabase()
            let dbName = try #require(URLComponents(string: db)?.path.dropFirst()).description
            let dir = try CLI.temporaryDirectory()
            let dump = dir.appendingPathComponent("nightly.dump").path
            let (devices, server, serverArguments) = try RestoreDevices.serving(db: db, directory: dir)
            try devices.act(1)
            try await devices.syncAll()
            // The documented backup (docs/RELIABILITY.md): pg_dump's custom format, while serving.
            _ = try cluster.runClient("pg_dump", ["-Fc", "-f", dump, "-d", dbName])
            let backup = try CLI.run(["backup", "--db", db, "--out", dir.appendingPathComponent("x.sqlite").path])
            #expect(backup.status != 0 && backup.stderr.contains("pg_dump"), "\(backup.stderr)")

            try devices.act(2)
            try await devices.syncAll()
            try devices.act(3)

            #expect(server.stop() == 0)
            _ = try cluster.runClient("pg_restore", ["--clean", "--if-exists", "--single-transaction", "-d", dbName, dump])
            let reset = try CLI.run(["reset-epoch", "--db", db])
            #expect(reset.status == 0 && reset.stdout.contains("new epoch"), "\(reset.stdout)\(reset.stderr)")

            let restarted = try ServerProcess(arguments: serverArguments)
            _ = try restarted.baseURL()
            try await devices.expectEverythingGivenBack()
            #expect(restarted.stop() == 0)
        }
    }
}

extension ProcessTests {
    @Suite("A PostgreSQL database that cannot be opened", .enabled(if: PostgresCluster.isInstalled))
    struct PostgresConnectErrorTests {
        @Test("a missing database, an unknown role and no server each get the reason in one line, and a non-zero exit")
        func reasons() throws {
            let cluster = try #require(try PostgresCluster.shared())
            let host = "host=\(cluster.socketDirectory)&port=\(cluster.port)"
            let cases: [(url: String, reason: String)] = [
                ("postgresql://postgres@/no_such_database?\(host)", #"database "no_such_database" does not exist"#),
                ("postgresql://nobody@/postgres?\(host)", #"role "nobody" does not exist"#),
                ("postgresql://postgres@/postgres?host=\(cluster.socketDirectory)/missing&port=\(cluster.port)", "No such file or directory"),
            ]
            for (url, reason) in cases {
                let result = try CLI.run(["users", "list", "--db", url])
                #expect(result.status != 0)
                #expect(result.stderr.contains("cannot open the PostgreSQL database") && result.stderr.contains(reason), "\(result.stderr)")
                #expect(!result.stderr.contains("CircuitBreaker"), "\(result.stderr)")
            }
        }
    }
}

extension ProcessTests {
    @Suite("serve --db-read", .enabled(if: PostgresCluster.isInstalled))
    struct ReadReplicaCLITests {
        @Test("--db-read needs a PostgreSQL --db, and a database that is not a replica of it is refused before serving")
        func refused() throws {
            let cluster = try #require(try PostgresCluster.shared())
            let primary = try cluster.createDatabase()
            let other = try cluster.createDatabase()
            let sqlite = try CLI.run(["serve", "--db", try CLI.temporaryDirectory().appendingPathComponent("x.sqlite").path, "--db-read", other, "--port", "0"])
            #expect(sqlite.status != 0 && sqlite.stderr.contains("--db-read needs a PostgreSQL --db"), "\(sqlite.stderr)")
            #expect(try CLI.run(["users", "add", "ann", "--db", other]).status == 0)
            let mismatch = try CLI.run(["serve", "--db", primary, "--db-read", other, "--port", "0"])
            #expect(mismatch.status != 0 && mismatch.stderr.contains("is not a streaming replica"), "\(mismatch.stderr)")
        }
    }
}
