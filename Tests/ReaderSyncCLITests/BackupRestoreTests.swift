import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ReaderSyncClient
import ReaderSyncCore
import Testing

extension ProcessTests {
    @Suite("Backup and restore of a real server", .serialized)
    struct BackupRestoreTests {
        @Test("a command on a database being restored is refused and writes nothing, so no token change lands in the replaced file")
        func commandDuringRestore() throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("r.sqlite").path
            #expect(try CLI.run(["users", "add", "ann", "--db", db]).status == 0)
            // What restore holds while it swaps the file: the database's lock, exclusively.
            let descriptor = open(db + ".lock", O_RDWR | O_CREAT, 0o644)
            #expect(descriptor >= 0 && flock(descriptor, LOCK_EX) == 0)
            let refused = try CLI.run(["users", "add", "ben", "--db", db])
            let ingest = try CLI.run(["users", "token", "ann", "--db", db])
            flock(descriptor, LOCK_UN)
            close(descriptor)
            #expect(refused.status != 0 && refused.stderr.contains("being restored"), "\(refused.stderr)")
            #expect(ingest.status != 0 && ingest.stderr.contains("being restored"), "\(ingest.stderr)")
            let list = try CLI.run(["users", "list", "--db", db])
            #expect(list.status == 0 && list.stdout.contains("ann") && !list.stdout.contains("ben"), "\(list.stdout)")
        }

        @Test("backup while serving; restore is refused while serving, then installs a new epoch; HTTP devices give back all the backup lacks")
        func backupAndRestore() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("live.sqlite").path
            let backup = dir.appendingPathComponent("backup.sqlite").path
            let (devices, server, serverArguments) = try RestoreDevices.serving(db: db, directory: dir)
            try devices.act(1)
            try await devices.syncAll()
            let made = try CLI.run(["backup", "--db", db, "--out", backup])
            #expect(made.status == 0 && made.stdout.contains("30 articles, 2 users"))
            let again = try CLI.run(["backup", "--db", db, "--out", backup])
            #expect(again.status != 0 && again.stderr.contains("already exists"))

            // After the backup: synced changes the backup lacks, and offline ones.
            try devices.act(2)
            try await devices.syncAll()
            try devices.act(3)

            let refused = try CLI.run(["restore", "--from", backup, "--db", db])
            #expect(refused.status != 0 && refused.stderr.contains("a server is running"))
            #expect(server.stop() == 0)
            let restored = try CLI.run(["restore", "--from", backup, "--db", db])
            #expect(restored.status == 0 && restored.stdout.contains("new epoch"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).contains { $0.hasPrefix("live.sqlite.before-restore-") })

            let restarted = try ServerProcess(arguments: serverArguments)
            _ = try restarted.baseURL()
            try await devices.expectEverythingGivenBack()
            #expect(restarted.stop() == 0)
        }
    }
}

/// Three HTTP devices of two users, each acting on its own ten articles, so what each device did
/// is the expected state: the devices of a restore test, on either store.
final class RestoreDevices {
    let url: String
    let tokens: [String]
    var devices: [(user: Int, store: ReaderStore, engine: SyncEngine)] = []
    var expected: [[String: (read: Bool, bookmarked: Bool, progress: Double)]] = [[:], [:]]

    /// - Parameter tokens: the tokens of the two users (devices 0 and 1 are the first's, 2 the second's).
    init(directory: URL, url: String, tokens: [String]) throws {
        self.url = url
        self.tokens = tokens
        for (n, user) in [0, 0, 1].enumerated() {
            let store = try ReaderStore(path: directory.appendingPathComponent("device\(n).sqlite").path, deviceId: "device\(n)")
            devices.append((user, store, SyncEngine(store: store, transport: HTTPSyncTransport(baseURL: url, token: tokens[user]), pushBatchSize: 4)))
        }
    }

    /// Every device sets all three fields of its ten articles (`art-1` … `art-30`), differently each round.
    func act(_ round: Int) throws {
        for (n, device) in devices.enumerated() {
            for k in 1...10 {
                let article = "art-\(n * 10 + k)"
                let value = (read: (k + round) % 2 == 0, bookmarked: (k + round) % 3 == 0, progress: Double(k * round % 10) / 10)
                try device.store.markRead(article, value.read)
                try device.store.setBookmarked(article, value.bookmarked)
                try device.store.setProgress(article, value.progress)
                expected[device.user][article] = value
            }
        }
    }

    func syncAll() async throws {
        for device in devices { _ = try await device.engine.sync() }
    }

    /// After the database went back in time under a new epoch: every device notices the reset
    /// once and gives back what it did, so the server and every device hold the expected state.
    func expectEverythingGivenBack(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var resets = 0
        for _ in 0..<2 {
            for device in devices where try await device.engine.sync().serverWasReset { resets += 1 }
        }
        #expect(resets == devices.count, "every device noticed the restore once", sourceLocation: sourceLocation)
        // A fresh pull of each user proves what the server holds, through the protocol.
        for (user, token) in tokens.enumerated() {
            var cursor: String?
            var states: [String: StateDTO] = [:]
            repeat {
                let page = try await HTTPSyncTransport(baseURL: url, token: token).pull(cursor: cursor, limit: 100).value
                for state in page.states { states[state.articleId] = state }
                cursor = page.hasMore ? page.cursor : nil
            } while cursor != nil
            #expect(states.count == expected[user].count, sourceLocation: sourceLocation)
            for (article, value) in expected[user] {
                let state = states[article]
                #expect(state?.read == value.read && state?.bookmarked == value.bookmarked && state?.progress == value.progress,
                        "\(article) of user \(user) after the restore", sourceLocation: sourceLocation)
            }
        }
        for device in devices {
            #expect(try device.store.pendingChangeCount() == 0, sourceLocation: sourceLocation)
            for state in try device.store.allStates() where expected[device.user][state.articleId] != nil {
                let value = expected[device.user][state.articleId]!
                #expect(state.isRead == value.read && state.isBookmarked == value.bookmarked && state.progress == value.progress,
                        sourceLocation: sourceLocation)
            }
        }
    }
}

extension RestoreDevices {
    /// A restore test's start on `db` (a SQLite path or a PostgreSQL URL): thirty articles
    /// ingested by the CLI, users ann and ben, a `serve` process on a free port, and their devices.
    ///
    /// - Returns: the devices, their running server, and the arguments that start a server on the
    ///   same port again after the restore.
    static func serving(db: String, directory: URL) throws -> (devices: RestoreDevices, server: ServerProcess, serverArguments: [String]) {
        let corpus = directory.appendingPathComponent("articles.jsonl")
        try (1...30).map { #"{"id":"art-\#($0)","title":"Title \#($0)","publishedAt":"2026-11-20T09:00:00Z"}"# }
            .joined(separator: "\n").write(to: corpus, atomically: true, encoding: .utf8)
        #expect(try CLI.run(["ingest", corpus.path, "--db", db]).status == 0)
        let tokens = try ["ann", "ben"].map { try CLI.run(["users", "add", $0, "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
        let arguments = { (port: Int) in ["--db", db, "--port", String(port), "--admin-token", "restore-test-admin-token"] }
        let server = try ServerProcess(arguments: arguments(0))
        let url = try server.baseURL()
        let port = try #require(Int(url.split(separator: ":").last ?? ""))
        return (try RestoreDevices(directory: directory, url: url, tokens: tokens), server, arguments(port))
    }
}
