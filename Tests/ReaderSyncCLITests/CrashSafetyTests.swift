import Foundation
import GRDB
import ReaderSyncClient
import ReaderSyncCore
import Synchronization
import Testing

extension ProcessTests {
    /// The real `reader-sync serve` binary, killed with SIGKILL again and again under concurrent pushes.
    @Suite("Crash safety of a real server process", .serialized)
    struct CrashSafetyTests {
        static let seed: UInt64 = 20_261_128
        static let kills = 24
        static let users = 6
        static let devicesPerUser = 2
        static let articles = (1...40).map { "art-\($0)" }

        @Test("SIGKILL at 24 seeded moments: every acknowledged push is whole, the database is intact, devices converge without duplicates")
        func killAndRestart() async throws {
            let dir = try CLI.temporaryDirectory()
            let db = dir.appendingPathComponent("crash.sqlite").path
            let corpus = dir.appendingPathComponent("articles.jsonl")
            try Self.articles.map { #"{"id":"\#($0)","title":"Title \#($0)","publishedAt":"2026-11-20T09:00:00Z"}"# }
                .joined(separator: "\n").write(to: corpus, atomically: true, encoding: .utf8)
            #expect(try CLI.run(["ingest", corpus.path, "--db", db]).status == 0)
            var tokens: [String] = []
            for u in 0..<Self.users {
                tokens.append(try CLI.run(["users", "add", "user\(u)", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            }

            let serverArguments = { (port: Int) in ["--db", db, "--port", String(port), "--admin-token", "crash-test-admin-token"] }
            var server = try ServerProcess(arguments: serverArguments(0))
            let url = try server.baseURL()
            let port = try #require(Int(url.split(separator: ":").last ?? ""))

            let acks = AsyncStream<Void>.makeStream()
            // Pushes about to be sent; only the next one after the killer starts waiting counts.
            let starts = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(0))
            let recorder = AckRecorder(onAck: { acks.continuation.yield() }, onStart: { starts.continuation.yield() })
            let gate = ServerGate()
            var devices: [CrashDevice] = []
            for u in 0..<Self.users {
                for d in 0..<Self.devicesPerUser {
                    let name = "user\(u)-device\(d)"
                    let store = try ReaderStore(path: dir.appendingPathComponent("\(name).sqlite").path, deviceId: name)
                    let transport = RecordingTransport(inner: HTTPSyncTransport(baseURL: url, token: tokens[u]), user: u, recorder: recorder)
                    devices.append(CrashDevice(user: u, store: store, engine: SyncEngine(store: store, transport: transport, pushBatchSize: 25, pageSize: 100)))
                }
            }

            // Devices: make a few changes, sync, again, until the killer is done. A failed sync keeps the outbox.
            let failedSyncs = Shared(0)
            let running = Shared(true)
            var killMoments: [Int] = []
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, device) in devices.enumerated() {
                    group.addTask {
                        var random = SeededRandom(seed: Self.seed &+ UInt64(index))
                        while running.withLock({ $0 }) {
                            for _ in 0..<random.int(in: 1...8) {
                                let article = random.pick(Self.articles)
                                switch random.int(in: 0...2) {
                                case 0: try device.store.markRead(article, random.chance(0.7))
                                case 1: try device.store.setBookmarked(article, random.chance(0.5))
                                default: try device.store.setProgress(article, Double(random.int(in: 0...100)) / 100)
                                }
                            }
                            await gate.waitUntilOpen()
                            do { _ = try await device.engine.sync() } catch { failedSyncs.withLock { $0 += 1 } }
                        }
                    }
                }
                // The killer: after a seeded number of acknowledged pushes, SIGKILL, restart on the same file and port.
                var random = SeededRandom(seed: Self.seed)
                var iterator = acks.stream.makeAsyncIterator()
                var startsIterator = starts.stream.makeAsyncIterator()
                for _ in 0..<Self.kills {
                    let after = random.int(in: 1...10)
                    killMoments.append(after)
                    for _ in 0..<after { _ = await iterator.next() }
                    // Then as the next push leaves a device, so most kills land on a request in flight.
                    _ = await startsIterator.next()
                    gate.close()
                    server.kill()
                    server = try ServerProcess(arguments: serverArguments(port))
                    _ = try server.baseURL()
                    gate.open()
                }
                running.withLock { $0 = false }
                try await group.waitForAll()
            }

            // Every device gives back what is left and pulls; twice, so every device sees the others' last pushes.
            for _ in 0..<2 {
                for device in devices { _ = try await device.engine.sync() }
            }
            #expect(server.stop() == 0)
            #expect(killMoments.count == Self.kills)

            let pool = try DatabaseQueue(path: db)
            let integrity = try await pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
            #expect(integrity == ["ok"])
            let foreignKeyProblems = try await pool.read { db in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").count }
            #expect(foreignKeyProblems == 0)
            let acked = recorder.all
            #expect(acked.count > Self.kills * 3, "enough pushes were acknowledged between kills to mean something")
            try await Self.checkAcknowledgedPushesAreWhole(acked, pool: pool)
            try await Self.checkNoDuplicates(pool: pool)
            try await Self.checkNothingHalfApplied(pool: pool)
            try await Self.checkConvergence(devices, acked: acked, pool: pool)
            // How many syncs a kill cut off depends on timing: reported, not asserted.
            let failures = failedSyncs.withLock { $0 }
            print("crash safety: \(Self.kills) kills, \(acked.count) acknowledged pushes, \(failures) syncs cut off by a kill")
        }

        /// Each push that got a 200: the device's last mutation id, each conflict entry, each resulting state are in the database.
        static func checkAcknowledgedPushesAreWhole(_ acked: [AckRecorder.Entry], pool: DatabaseQueue) async throws {
            try await pool.read { db in
                for entry in acked {
                    let last = try Int64.fetchOne(db, sql: "SELECT lastMutationId FROM device WHERE id = ?", arguments: [entry.request.deviceId])
                    #expect((last ?? 0) >= entry.response.lastMutationId, "device \(entry.request.deviceId) lost an acknowledged push")
                    let mutations = Dictionary(uniqueKeysWithValues: entry.request.mutations.map { ($0.id, $0) })
                    for result in entry.response.results {
                        guard let conflictId = result.conflictId, let mutation = mutations[result.id] else { continue }
                        let row = try Row.fetchOne(db, sql: """
                            SELECT articleId, field, winnerDeviceId, winnerMutationId, loserDeviceId, loserMutationId
                            FROM conflict WHERE id = ?
                            """, arguments: [conflictId])
                        #expect(row != nil, "conflict \(conflictId) of an acknowledged push is missing")
                        guard let row else { continue }
                        #expect(row["articleId"] == mutation.articleId && row["field"] == mutation.field.rawValue)
                        let sides = [(row["winnerDeviceId"] as String?, row["winnerMutationId"] as Int64?),
                                     (row["loserDeviceId"] as String?, row["loserMutationId"] as Int64?)]
                        #expect(sides.contains { $0.0 == entry.request.deviceId && $0.1 == mutation.id })
                    }
                    let userId = try Int64.fetchOne(db, sql: "SELECT id FROM user WHERE name = ?", arguments: ["user\(entry.user)"])
                    for state in entry.response.states {
                        let row = try Row.fetchOne(db, sql: """
                            SELECT version,
                                   readDeviceId, readHlcWall, readHlcCounter, readVersion,
                                   bookmarkedDeviceId, bookmarkedHlcWall, bookmarkedHlcCounter, bookmarkedVersion,
                                   progressDeviceId, progressHlcWall, progressHlcCounter, progressVersion
                            FROM userArticleState WHERE userId = ? AND articleId = ?
                            """, arguments: [userId, state.articleId])
                        #expect(row != nil, "the state of \(state.articleId) from an acknowledged push is missing")
                        guard let row else { continue }
                        #expect(row["version"] as Int64 >= state.version, "state of \(state.articleId) went back in version")
                        // Each field still holds the acknowledged write, or one set later (at a higher row version):
                        // a later write may carry a lower HLC (add-wins), so the version, not the stamp, tells.
                        for (writer, field) in [(state.writers.read, "read"), (state.writers.bookmarked, "bookmarked"),
                                                (state.writers.progress, "progress")] {
                            guard let writer else { continue }
                            let stored = FieldWriter(deviceId: row["\(field)DeviceId"] ?? "",
                                                     hlc: HLC(wall: row["\(field)HlcWall"] ?? 0, counter: row["\(field)HlcCounter"] ?? 0))
                            let setAt: Int64 = row["\(field)Version"] ?? 0
                            #expect(stored == writer || setAt > state.version,
                                    "\(state.articleId).\(field): the acknowledged write is gone and nothing replaced it later")
                        }
                    }
                }
            }
        }

        /// A retried push is never applied twice: no conflict entry is logged twice.
        static func checkNoDuplicates(pool: DatabaseQueue) async throws {
            let duplicates = try await pool.read { db in
                try Int.fetchOne(db, sql: """
                    SELECT COUNT(*) FROM (
                        SELECT 1 FROM conflict
                        GROUP BY userId, articleId, field, winnerDeviceId, winnerMutationId, loserDeviceId, loserMutationId
                        HAVING COUNT(*) > 1)
                    """) ?? -1
            }
            #expect(duplicates == 0)
        }

        /// A push's effects and its device's last mutation id are written together: no state field or
        /// conflict entry refers to a mutation beyond what its device is recorded to have pushed.
        static func checkNothingHalfApplied(pool: DatabaseQueue) async throws {
            let orphans = try await pool.read { db in
                try String.fetchAll(db, sql: """
                    SELECT 'state ' || s.articleId || ' ' || w.field FROM userArticleState s
                    JOIN (SELECT 'read' AS field UNION ALL SELECT 'bookmarked' UNION ALL SELECT 'progress') w
                    JOIN device ON device.id = CASE w.field WHEN 'read' THEN s.readDeviceId
                        WHEN 'bookmarked' THEN s.bookmarkedDeviceId ELSE s.progressDeviceId END
                    WHERE CASE w.field WHEN 'read' THEN s.readMutationId
                        WHEN 'bookmarked' THEN s.bookmarkedMutationId ELSE s.progressMutationId END > device.lastMutationId
                    UNION ALL
                    SELECT 'conflict ' || c.id FROM conflict c JOIN device d ON d.id = c.winnerDeviceId
                    WHERE c.winnerMutationId > d.lastMutationId
                    UNION ALL
                    SELECT 'conflict ' || c.id FROM conflict c JOIN device d ON d.id = c.loserDeviceId
                    WHERE c.loserMutationId > d.lastMutationId
                    """)
            }
            #expect(orphans.isEmpty, "written without their push's device progress: \(orphans.prefix(5))")
        }

        /// Every device: nothing pending, the server knows its last mutation, and it shows the server's state.
        static func checkConvergence(_ devices: [CrashDevice], acked: [AckRecorder.Entry], pool: DatabaseQueue) async throws {
            for device in devices {
                #expect(try device.store.pendingChangeCount() == 0)
                let sent = acked.filter { $0.request.deviceId == device.store.deviceId }.flatMap(\.request.mutations).map(\.id).max()
                let last = try await pool.read { db in
                    try Int64.fetchOne(db, sql: "SELECT lastMutationId FROM device WHERE id = ?", arguments: [device.store.deviceId])
                }
                #expect(sent != nil && last == sent, "the server has every mutation \(device.store.deviceId) made")
                let server = try await pool.read { db in
                    try Row.fetchAll(db, sql: """
                        SELECT articleId, coalesce(readValue, 0), coalesce(bookmarkedValue, 0), coalesce(progressValue, 0), version
                        FROM userArticleState JOIN user ON user.id = userId WHERE user.name = ? ORDER BY articleId
                        """, arguments: ["user\(device.user)"])
                        .map { "\($0[0] as String) read=\($0[1] as Bool) bookmarked=\($0[2] as Bool) progress=\($0[3] as Double) v\($0[4] as Int64)" }
                }
                let shown = try device.store.allStates().map {
                    "\($0.articleId) read=\($0.isRead) bookmarked=\($0.isBookmarked) progress=\($0.progress) v\($0.version)"
                }
                #expect(shown == server, "\(device.store.deviceId) shows the server's state")
            }
        }
    }
}

struct CrashDevice: Sendable {
    var user: Int
    var store: ReaderStore
    var engine: SyncEngine
}

/// Pushes that got a 200, as the device received them.
final class AckRecorder: Sendable {
    struct Entry: Sendable {
        var user: Int
        var request: PushRequest
        var response: PushResponse
    }

    private let entries = Mutex<[Entry]>([])
    private let onAck: @Sendable () -> Void
    private let onStart: @Sendable () -> Void

    init(onAck: @escaping @Sendable () -> Void, onStart: @escaping @Sendable () -> Void) {
        self.onAck = onAck
        self.onStart = onStart
    }

    /// A push is about to be sent.
    func starting() { onStart() }

    func record(_ entry: Entry) {
        entries.withLock { $0.append(entry) }
        onAck()
    }

    var all: [Entry] { entries.withLock { $0 } }
}

struct RecordingTransport: SyncTransport {
    let inner: any SyncTransport
    let user: Int
    let recorder: AckRecorder

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        recorder.starting()
        let response = try await inner.push(request)
        recorder.record(.init(user: user, request: request, response: response.value))
        return response
    }
}

/// A value shared between tasks.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// Devices wait here while the server restarts, instead of spinning on refused connections.
final class ServerGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((true, []))

    func close() { state.withLock { $0.open = false } }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func waitUntilOpen() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}
