import Crypto
import Foundation
import NIOHTTP1
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncServer
import ReaderSyncService
import Synchronization

/// Many users with several devices each — every device a real client store in its own file —
/// reading, bookmarking and going offline while the newsroom publishes, corrects and retracts,
/// under injected faults; then an oracle checks that everything converged and nothing was lost.
///
/// ```swift
/// var options = SimulationOptions(dataDirectory: tmp)
/// options.seed = 42
/// let report = try await Simulation.run(options)
/// print(report.text)
/// ```
public enum Simulation {
    /// Runs a simulation.
    ///
    /// - Parameter progress: called after each step with (step, total), for a progress line.
    /// - Throws: ``SimulationError`` when the simulation itself cannot run (a server that cannot be reached).
    ///   Invariant failures are not thrown: they are in the report.
    public static func run(_ options: SimulationOptions, progress: @Sendable (Int, Int) -> Void = { _, _ in }) async throws -> SimulationReport {
        let runner = try await Runner(options)
        return try await runner.run(progress: progress)
    }
}

/// What a user did on a device, as the oracle remembers it.
struct Intent: Sendable {
    var user: String
    var device: String
    var mutation: Mutation
}

final class IntentLog: Sendable {
    private let intents = Mutex<[Intent]>([])
    func append(_ intent: Intent) { intents.withLock { $0.append(intent) } }
    var all: [Intent] { intents.withLock { $0 } }
}

/// A device's clock offset, changed by clock-skew faults.
final class SkewBox: Sendable {
    let millis = Mutex<Int64>(0)
}

final class SimDevice {
    let name: String
    let user: String
    let path: String
    let link: DeviceLink
    let skew = SkewBox()
    var store: ReaderStore {
        didSet { observer = UnreadCountsObserver(store: store) }
    }
    var engine: SyncEngine
    /// What the app's badges show: the store's unread counts, observed.
    var observer: UnreadCountsObserver
    var online = true
    /// Whether the device's last sync ended in an error (a lost connection, a server that stayed busy).
    var lastSyncFailed = false

    init(name: String, user: String, path: String, link: DeviceLink, open: (String, SkewBox) throws -> ReaderStore) throws {
        self.name = name
        self.user = user
        self.path = path
        self.link = link
        store = try open(path, skew)
        engine = SyncEngine(store: store, transport: link, pushBatchSize: 50, pageSize: 100)
        observer = UnreadCountsObserver(store: store)
    }
}

/// A badge of the app: the unread counts as the store's observation (``ReaderStore/observeUnreadCounts()``,
/// called back on a queue of its own) last delivered them.
final class UnreadCountsObserver: Sendable {
    private final class Latest: Sendable {
        let value = Mutex<UnreadCounts?>(nil)
    }

    private let latest: Latest
    private let changes: AsyncStream<Void>
    private let cancellable: ObservationCancellable

    init(store: ReaderStore) {
        let latest = Latest()
        let (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        cancellable = store.observeUnreadCounts().start(on: DispatchQueue(label: "unread-counts-observer"), onError: { _ in
            continuation.finish()
        }, onChange: { counts in
            latest.value.withLock { $0 = counts }
            continuation.yield()
        })
        self.latest = latest
        self.changes = changes
    }

    deinit { cancellable.cancel() }

    /// What it shows now; `nil` before the first value.
    var shown: UnreadCounts? { latest.value.withLock { $0 } }

    /// Whether what it shows becomes what `held` reads from the store: at once, or with a value
    /// still on its way (the store read again with each, in case a write still landed). A change
    /// the observation missed never comes; after `patience` with none that matches, false.
    func settles(to held: @escaping @Sendable () throws -> UnreadCounts, patience: Duration = .seconds(10)) async -> Bool {
        if let shown, shown == (try? held()) { return true }
        let settled = await withTaskGroup(of: Bool.self) { group in
            group.addTask { [changes, latest] in
                for await _ in changes where latest.value.withLock({ $0 }) == (try? held()) { return true }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: patience)  // only how long a failure takes to show
                return false
            }
            let settled = await group.next() ?? false
            group.cancelAll()
            return settled
        }
        return settled || (shown != nil && shown == (try? held()))
    }
}

final class Runner {
    let options: SimulationOptions
    var rng: SeededRandom
    let clock: VirtualClock
    let server: any SimulatedServer
    let recorder = PushRecorder()
    let pushOrder = PushOrder()
    let intents = IntentLog()
    var model = ReferenceModel()
    var modelPosition = 0
    var tokens: [String: String] = [:]
    var devices: [SimDevice] = []
    var report: SimulationReport
    var latencies: [Double] = []
    var snapshots: [(path: String, model: ReferenceModel)] = []
    var snapshotsTaken = 0
    var conflictLog: [ConflictDTO] = []
    var overlayViolation: String?
    /// The first time a device's badge (``UnreadCountsObserver``) did not come to show what its store holds.
    var observerViolation: String?
    var unexpectedErrors: [String] = []
    // The newsroom's view of the corpus.
    var liveArticles: [String] = []
    var retracted: [String] = []
    /// Retracted articles compaction removed with their states (some published again since).
    var removedArticles = Set<String>()
    /// What each partial device keeps (``SimulationOptions/partial``), by device name.
    var windows: [String: StorageWindow] = [:]
    /// With compaction, when each article was (last) published, in ms on the virtual clock: the
    /// articles before the run two hours apart, later ones when published or restored.
    var publishedMillis: [String: Int64] = [:]
    /// Per device, the articles it held when they were retracted or moved to another section
    /// since it last chose its sections (a windowed device then backfills every section it
    /// follows): each can leave a place in its window that no older article comes back to fill
    /// (``Oracle/partialHoldings(of:view:)``).
    var windowHoles: [String: Int] = [:]
    /// Articles a correction moved to another section, and the section they are in now.
    var movedSections: [String: String] = [:]
    static let sections = ["politics", "world", "economy", "sport", "culture", "tech"]
    /// The latest line the newsroom sent for each article, to send again after a restore.
    var currentLines: [String: String] = [:]
    var nextArticle = 1

    init(_ options: SimulationOptions) async throws {
        self.options = options
        rng = SeededRandom(seed: options.seed)
        try FileManager.default.createDirectory(at: options.dataDirectory, withIntermediateDirectories: true)
        var configuration = SyncConfiguration()
        switch options.defect {
        case .mergePicksWrongWinner?: configuration.defects = .wrongWinner
        case .serverAppliesDuplicates?: configuration.defects = .appliesDuplicates
        default: break
        }
        // In process, live mode converges by wake-ups alone: no heartbeat comes within a run.
        if options.live { configuration.live.heartbeat = .seconds(3600) }
        switch options.server {
        case .inProcess:
            clock = VirtualClock(startMillis: 1_764_547_200_000, real: false)  // 2025-12-01T00:00:00Z
            server = try await InProcessServer(directory: options.dataDirectory, clock: clock, configuration: configuration)
        case .remote(let urls, let adminToken):
            guard !urls.isEmpty else { throw SimulationError("a remote simulation needs at least one server URL") }
            clock = VirtualClock(startMillis: 0, real: true)
            // In live mode every device also holds a stream, beside its syncs and the oracle's reads.
            let connections = options.live ? options.concurrency + 2 * options.users * options.devicesPerUser + 4 : options.concurrency
            server = RemoteServer(baseURLs: urls, adminToken: adminToken, connections: connections)
        }
        let serverName: String
        switch options.server {
        case .inProcess: serverName = "in-process server"
        case .remote(let urls, _): serverName = urls.count == 1 ? "server \(urls[0])" : "servers \(urls.joined(separator: ", "))"
        }
        report = SimulationReport(seed: options.seed, server: serverName, users: options.users,
                                  devices: options.users * options.devicesPerUser, steps: options.steps, articles: options.articles)
    }

    var faults: [FaultKind] {
        FaultKind.allCases.filter { options.faults.contains($0) && ($0 != .serverRestored || server.canRestore) }
    }

    func run(progress: @Sendable (Int, Int) -> Void) async throws -> SimulationReport {
        let started = ContinuousClock.now
        do {
            try await setUp()
            for step in 1...max(options.steps, 1) where options.steps > 0 {
                if options.concurrency > 1 { try await round() } else { try await self.step() }
                progress(step, options.steps)
            }
            if options.live { try await liveFinish() } else { try await finalSync() }
            for device in devices { try await checkObserver(device, final: true) }
            var views: [String: ServerView] = [:]
            for user in tokens.keys.sorted() { views[user] = try await serverView(user: user) }
            // What no later answer decided is decided by the final state before the model's last replay.
            recorder.settleUnanswered(finalStates: views.mapValues { $0.states })
            replayNewPushes()
            report.invariants = try Oracle(runner: self).check(views)
            report.digest = try await digest()
        } catch {
            try? await server.shutdown()
            throw error
        }
        try await server.shutdown()
        report.replayCommand = options.replayCommand
        report.wallSeconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - started).components.seconds)
        let sorted = latencies.sorted()
        if !sorted.isEmpty {
            report.syncLatencyP50Millis = sorted[sorted.count / 2]
            report.syncLatencyP99Millis = sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
        }
        for entry in recorder.all {
            for result in entry.results { report.mutations[result.outcome.rawValue, default: 0] += 1 }
            if let fate = PushRecorder.fate(of: entry.answer) { report.unansweredPushes[fate, default: 0] += 1 }
        }
        for conflict in conflictLog { report.conflicts[conflict.rule.rawValue, default: 0] += 1 }
        return report
    }

    // MARK: Set-up

    func setUp() async throws {
        var lines: [String] = []
        for _ in 0..<options.articles { lines.append(publishLine(id: newArticleId(), revision: 0)) }
        try await ingest(lines)
        for u in 1...max(options.users, 1) where options.users > 0 {
            let name = "user\(u)"
            let body = try JSONEncoder().encode(CreateUserRequest(name: name))
            let created = try JSONDecoder().decode(CreateUserResponse.self, from: try await server.admin(.POST, "/v1/admin/users", body: body))
            tokens[name] = created.token
            for d in 1...max(options.devicesPerUser, 1) {
                try devices.append(makeDevice(name: "\(name)-d\(d)", user: name))
            }
        }
        if server.canRestore && faults.contains(.serverRestored) { try takeSnapshot() }
    }

    func makeDevice(name: String, user: String) throws -> SimDevice {
        let path = options.dataDirectory.appendingPathComponent("\(name).sqlite").path
        let link = DeviceLink(inner: server.transport(token: tokens[user]!), recorder: recorder, order: pushOrder, user: user,
                              serverMillis: { [server] in server.nowMillis })
        var followed: Set<String>?
        if options.partial {
            // Kept, windowed, following some sections, or both: a quarter each.
            let kind = rng.int(in: 0...3)
            if kind & 1 == 1 { windows[name] = StorageWindow(newest: rng.int(in: 4...12)) }
            if kind & 2 == 2 { followed = randomSections() }
        }
        let device = try SimDevice(name: name, user: user, path: path, link: link, open: openStore(name: name))
        if let followed { try device.store.follow(sections: followed) }
        return device
    }

    /// Two or three of the six sections.
    func randomSections() -> Set<String> {
        var pool = Self.sections
        var picked = Set<String>()
        for _ in 0..<rng.int(in: 2...3) { picked.insert(pool.remove(at: rng.int(in: 0...(pool.count - 1)))) }
        return picked
    }

    func openStore(name: String) -> (String, SkewBox) throws -> ReaderStore {
        let clock = self.clock
        let defect: ReaderStore.Defect? = switch options.defect {
        case .clientSkipsPendingOverlay?: .skipsPendingOverlay
        case .clientObservationMissesStates?: .observationMissesStates
        default: nil
        }
        let options = ReaderStore.Options(window: windows[name] ?? .unbounded)
        return { path, skew in
            try ReaderStore(path: path, deviceId: name, options: options,
                            now: { Timestamp.date(millis: clock.nowMillis + skew.millis.withLock { $0 }) },
                            defect: defect)
        }
    }

    // MARK: Steps

    func step() async throws {
        clock.advance(millis: Int64(rng.int(in: 500...15_000)))
        if rng.chance(options.churn) { try await newsroomEvent() }
        if options.compaction, rng.chance(0.01) { try await monthPasses() }
        guard !devices.isEmpty else { return }
        let device = rng.pick(devices)
        toggleOnline(device)
        if device.online && rng.chance(0.45) {
            try await sync(device, faultsAllowed: true)
        } else {
            try act(on: device)
        }
        try maybeTakeSnapshot()
    }

    /// A device goes offline, or comes back, now and then.
    func toggleOnline(_ device: SimDevice) {
        if device.online, rng.chance(options.offlineRate * 0.25) {
            device.online = false
        } else if !device.online, rng.chance((1 - options.offlineRate) * 0.25) {
            device.online = true
        }
    }

    /// Now and then (in process, with restores on), a snapshot a later `server_restored` may go back to.
    func maybeTakeSnapshot() throws {
        if server.canRestore && faults.contains(.serverRestored) && rng.chance(0.03) { try takeSnapshot() }
    }

    /// A reader's action on an article the device has (or, rarely, one it only heard of); on a
    /// partial device, now and then, a change of the sections it follows.
    func act(on device: SimDevice) throws {
        if options.partial, rng.chance(0.04) {
            let sections: Set<String>? = rng.chance(0.25) ? nil : randomSections()
            try device.store.follow(sections: sections)
            windowHoles[device.name] = 0
            report.newsroomEvents["sections followed anew", default: 0] += 1
            return
        }
        let count = try device.store.articleCount()
        let articleId: String
        if count > 0 {
            guard let article = try device.store.articles(limit: 1, offset: rng.int(in: 0...(count - 1))).first else { return }
            articleId = article.id
        } else if let any = liveArticles.first {
            articleId = any
        } else {
            return
        }
        let (field, value) = randomChange()
        let mutation = try device.store.record(articleId, field, value)
        intents.append(Intent(user: device.user, device: device.name, mutation: mutation))
        report.actions += 1
    }

    func randomChange() -> (StateField, FieldValue) {
        switch rng.int(in: 0...9) {
        case 0...3: return (.read, .bool(rng.chance(0.75)))
        case 4...6: return (.bookmarked, .bool(rng.chance(0.6)))
        default: return (.progress, .number(Double(rng.int(in: 0...100)) / 100))
        }
    }

    /// A round (concurrency above 1): every device may go offline or back and act; then every
    /// online device syncs, `concurrency` at a time.
    func round() async throws {
        clock.advance(millis: Int64(rng.int(in: 500...15_000)))
        if rng.chance(options.churn) { try await newsroomEvent() }
        if options.compaction, rng.chance(0.01) { try await monthPasses() }
        var syncing: [SimDevice] = []
        for device in devices {
            toggleOnline(device)
            for _ in 0..<rng.int(in: 0...2) { try act(on: device) }
            if device.online {
                try await prepareSync(device, faultsAllowed: true)
                syncing.append(device)
            }
        }
        try await syncConcurrently(syncing)
        try maybeTakeSnapshot()
    }

    /// Runs the prepared syncs of `syncing`, at most `concurrency` at once, then books their outcomes in order.
    func syncConcurrently(_ syncing: [SimDevice]) async throws {
        let engines = syncing.map(\.engine)
        let limit = max(options.concurrency, 1)
        var outcomes = [SyncOutcome?](repeating: nil, count: engines.count)
        var peak = 0
        await withTaskGroup(of: (Int, SyncOutcome).self) { group in
            var next = 0
            var running = 0
            while next < engines.count || running > 0 {
                while running < limit && next < engines.count {
                    let (index, engine) = (next, engines[next])
                    group.addTask { (index, await Runner.runSync(engine)) }
                    next += 1
                    running += 1
                    peak = max(peak, running)
                }
                if let (index, outcome) = await group.next() {
                    outcomes[index] = outcome
                    running -= 1
                }
            }
        }
        report.peakConcurrentSyncs = max(report.peakConcurrentSyncs, peak)
        for (device, outcome) in zip(syncing, outcomes) {
            if let outcome { try finishSync(device, outcome) }
        }
        for device in syncing { try await checkObserver(device) }
    }

    /// How one sync ended, and how long it took.
    struct SyncOutcome: Sendable {
        var result: Result<SyncReport, any Error>
        var millis: Double
    }

    static func runSync(_ engine: SyncEngine) async -> SyncOutcome {
        let started = ContinuousClock.now
        let result: Result<SyncReport, any Error>
        do { result = .success(try await engine.sync()) } catch { result = .failure(error) }
        let elapsed = ContinuousClock.now - started
        return SyncOutcome(result: result, millis: Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
    }

    func sync(_ device: SimDevice, faultsAllowed: Bool) async throws {
        try await prepareSync(device, faultsAllowed: faultsAllowed)
        try finishSync(device, await Self.runSync(device.engine))
        try await checkObserver(device)
    }

    /// Invariant 8: the device's badge, observed, comes to show the unread counts its store holds.
    /// In live mode, where the engines write the stores meanwhile, only once they stopped (`final`).
    func checkObserver(_ device: SimDevice, final: Bool = false) async throws {
        guard observerViolation == nil, final || !options.live else { return }
        let store = device.store
        if await !device.observer.settles(to: { try store.unreadCounts() }) {
            let shown = device.observer.shown.map { "\($0.total) unread" } ?? "nothing"
            observerViolation = "\(device.user) on \(device.name): its unread-count observer shows \(shown), "
                + "the store holds \(try store.unreadCounts().total) unread"
        }
    }

    /// The random choices of a sync, made before it runs: a fault to inject, an action during the pull.
    func prepareSync(_ device: SimDevice, faultsAllowed: Bool) async throws {
        if faultsAllowed && rng.chance(options.faultRate) && !faults.isEmpty {
            try await inject(rng.pick(faults), into: device)
        }
        if faultsAllowed && rng.chance(0.3) {
            // The reader acts while the pull is in flight: the pending overlay must keep this change showing.
            let (field, value) = randomChange()
            let store = device.store
            let intents = self.intents
            let (user, name) = (device.user, device.name)
            let fallback = liveArticles.first
            device.link.duringNextPull { page in
                guard let articleId = page.states.first?.articleId ?? page.articles.first?.id ?? fallback,
                      let mutation = try? store.record(articleId, field, value) else { return }
                intents.append(Intent(user: user, device: name, mutation: mutation))
            }
        }
        report.syncs += 1
    }

    /// Books what a sync did; a killed process reopens its store.
    func finishSync(_ device: SimDevice, _ outcome: SyncOutcome) throws {
        if case .failure = outcome.result { device.lastSyncFailed = true } else { device.lastSyncFailed = false }
        switch outcome.result {
        case .success(let result):
            report.bytesUp += result.bytesSent
            report.bytesDown += result.bytesReceived
            report.busyRetries += result.busyRetries
            if result.cursorExpired { report.cursorsExpired += 1 }
        case .failure(let error as ReaderSyncError) where error.cause is ProcessKilled:
            report.failedSyncs += 1
            report.reopenedStores += 1
            // The app starts again and opens its store from the file.
            device.store = try openStore(name: device.name)(device.path, device.skew)
            device.engine = SyncEngine(store: device.store, transport: device.link, pushBatchSize: 50, pageSize: 100)
        case .failure(let error as ReaderSyncError) where error.code == .transportFailed:
            report.failedSyncs += 1
            if let status = error.httpStatus, status >= 500 {
                report.serverErrors += 1
                unexpectedErrors.append("\(device.name): \(error)")
            }
        case .failure(let error):
            report.failedSyncs += 1
            unexpectedErrors.append("\(device.name): \(error)")
        }
        device.link.arm(nil)
        device.link.duringNextPull(nil)
        latencies.append(outcome.millis)
        replayNewPushes()
        if overlayViolation == nil, let violation = try device.store.pendingOverlayViolations().first {
            overlayViolation = "\(device.user) on \(device.name): article \(violation.articleId), field \(violation.field) "
                + "shows the server's value although the device's own change to it is still pending"
        }
    }

    func inject(_ kind: FaultKind, into device: SimDevice) async throws {
        report.faults[kind.rawValue, default: 0] += 1
        switch kind {
        case .clockSkew:
            let magnitudes: [Int64] = [2 * 60_000, 45 * 60_000, 6 * 3_600_000, 3 * 86_400_000]
            let offset = rng.pick(magnitudes) * (rng.chance(0.5) ? 1 : -1)
            device.skew.millis.withLock { $0 = $0 == 0 ? offset : 0 }
        case .serverRestored:
            guard let snapshot = snapshots.isEmpty ? nil : rng.pick(snapshots) else { return }
            conflictLog += try await fetchConflictLog()
            try await server.restore(from: snapshot.path)
            // The publisher's CMS sends its current corpus again: what the backup lacked comes back.
            try await ingest(liveArticles.compactMap { currentLines[$0] } + retracted.map { #"{"id":"\#($0)","deleted":true}"# })
            replayNewPushes()
            recorder.startNewIncarnation()
            model = snapshot.model
            modelPosition = recorder.count
        default:
            device.link.arm(DeviceLink.ArmedFault(kind: kind, atRequest: rng.int(in: 1...3), afterServer: rng.chance(0.5)))
        }
    }

    func takeSnapshot() throws {
        replayNewPushes()
        // The model must hold everything the server does: not while a push is undecided.
        guard modelPosition == recorder.count else { return }
        snapshotsTaken += 1
        let path = try server.snapshot(named: "snapshot-\(snapshotsTaken).sqlite")
        snapshots.append((path, model))
        if snapshots.count > 5 { snapshots.removeFirst() }
    }

    /// Feeds the reference model what the server processed since the last call, up to the first
    /// push whose outcome is not known yet (see ``ReferenceModel/catchUp(with:from:)``).
    func replayNewPushes() {
        modelPosition = model.catchUp(with: recorder, from: modelPosition)
    }

    // MARK: Newsroom

    func newArticleId() -> String {
        defer { nextArticle += 1 }
        let id = String(format: "sim-%06d", nextArticle)
        liveArticles.append(id)
        if options.compaction {
            publishedMillis[id] = nextArticle <= options.articles ? clock.nowMillis - Int64(nextArticle) * 7_200_000 : clock.nowMillis
        }
        return id
    }

    func publishLine(id: String, revision: Int) -> String {
        let line = makeLine(id: id, revision: revision)
        currentLines[id] = line
        return line
    }

    /// Counts a window hole for each partial device that holds `id`, which leaves its sections.
    func countWindowHoles(leaving id: String) throws {
        guard options.partial else { return }
        for device in devices where try device.store.article(id: id) != nil { windowHoles[device.name, default: 0] += 1 }
    }

    /// The section an article is in now.
    func section(of id: String) -> String {
        movedSections[id] ?? Self.sections[(Int(id.dropFirst(4)) ?? 0) % Self.sections.count]
    }

    private func makeLine(id: String, revision: Int) -> String {
        let number = Int(id.dropFirst(4)) ?? 0
        let published = Timestamp.format(Timestamp.date(millis: publishedMillis[id] ?? (1_764_547_200_000 - Int64(number) * 600_000)))
        let updated = revision == 0 ? published : Timestamp.format(clock.now)
        let fields: [String: String] = [
            "id": id, "section": section(of: id),
            "title": "Story \(number)" + (revision > 0 ? " (update \(revision))" : ""),
            "summary": "What happened in story \(number).",
            "body": String(repeating: "Paragraph of story \(number), revision \(revision). ", count: 8),
            "author": "Desk \(number % 7)", "url": "https://news.example/\(id)",
            "publishedAt": published, "updatedAt": updated,
        ]
        return String(decoding: try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self)
    }

    /// A month passes on the virtual clock (devices keep their offsets), then the server compacts
    /// with a retention of 45 days: older articles expire (devices drop them unless bookmarked);
    /// tombstones and unpinned expired articles older than a checkpoint of 30 days ago go with
    /// their states, which the model forgets too. Devices that were away since get
    /// `410 cursor_expired` at their next pull.
    func monthPasses() async throws {
        clock.advance(millis: 31 * 86_400_000)
        let (compaction, removed) = try await server.compact(RetentionPolicy(articleDays: 45, tombstoneDays: 30, conflictDays: 36_500),
                                                             candidates: retracted + liveArticles)
        replayNewPushes()
        for id in removed { model.removeArticle(id) }
        removedArticles.formUnion(removed)
        report.newsroomEvents["month passed", default: 0] += 1
        report.newsroomEvents["tombstones removed", default: 0] += compaction.removedTombstones
        report.newsroomEvents["articles expired", default: 0] += compaction.expired
        report.newsroomEvents["expired articles removed", default: 0] += compaction.removedExpired
    }

    func newsroomEvent() async throws {
        let roll = rng.int(in: 0...9)
        if roll < 4 || liveArticles.isEmpty {
            try await ingest([publishLine(id: newArticleId(), revision: 0)])
            report.newsroomEvents["published", default: 0] += 1
        } else if roll < 7 {
            let id = rng.pick(liveArticles)
            if options.partial, rng.chance(0.3) {
                try countWindowHoles(leaving: id)
                movedSections[id] = rng.pick(Self.sections)
                report.newsroomEvents["moved to another section", default: 0] += 1
            }
            try await ingest([publishLine(id: id, revision: rng.int(in: 1...1000))])
            report.newsroomEvents["corrected", default: 0] += 1
        } else if roll < 9 || retracted.isEmpty {
            let id = rng.pick(liveArticles)
            liveArticles.removeAll { $0 == id }
            retracted.append(id)
            try countWindowHoles(leaving: id)
            try await ingest([#"{"id":"\#(id)","deleted":true}"#])
            report.newsroomEvents["retracted", default: 0] += 1
        } else {
            let id = rng.pick(retracted)
            retracted.removeAll { $0 == id }
            liveArticles.append(id)
            // Published again now: a restore with its old date could be older than the retention.
            if options.compaction { publishedMillis[id] = clock.nowMillis }
            try await ingest([publishLine(id: id, revision: rng.int(in: 1001...2000))])
            report.newsroomEvents["restored", default: 0] += 1
        }
    }

    func ingest(_ lines: [String]) async throws {
        var start = 0
        while start < lines.count {
            let chunk = lines[start..<min(start + 500, lines.count)].joined(separator: "\n")
            let data = try await server.admin(.POST, "/v1/admin/articles", body: Data(chunk.utf8))
            let result = try JSONDecoder().decode(IngestReport.self, from: data)
            if result.rejected > 0 { throw SimulationError("the server rejected generated articles: \(result.errors)") }
            start += 500
        }
    }

    // MARK: End

    /// Every device back online with a true clock, synced until all have seen everyone's changes.
    func finalSync() async throws {
        for device in devices {
            device.online = true
            device.skew.millis.withLock { $0 = 0 }
            device.link.arm(nil)
        }
        // Two rounds in a row in which every sync succeeded: the first pushes everything left and
        // pulls, the second pulls what the others pushed. A sync can still fail without a fault
        // (a loaded server that stays busy past the SDK's retries); its device is not done, so the
        // rounds go on, at most 8 in all. Without failures this is exactly two rounds.
        var cleanRounds = 0
        var rounds = 0
        while cleanRounds < 2 && rounds < 8 {
            if options.concurrency > 1 {
                for device in devices { try await prepareSync(device, faultsAllowed: false) }
                try await syncConcurrently(devices)
            } else {
                for device in devices { try await sync(device, faultsAllowed: false) }
            }
            rounds += 1
            cleanRounds = devices.contains(where: \.lastSyncFailed) ? 0 : cleanRounds + 1
        }
        conflictLog += try await fetchConflictLog()
    }

    /// Live mode's end: faults off, every device in `SyncEngine.live()` and none calling `sync()`,
    /// until every device holds the server's state (the convergence invariant holds), at most 120 s.
    func liveFinish() async throws {
        for device in devices {
            device.online = true
            device.skew.millis.withLock { $0 = 0 }
            device.link.arm(nil)
        }
        let started = ContinuousClock.now
        let runs = devices.map { device in
            let engine = device.engine
            let name = device.name
            return Task {
                // Retries soon after an error: the run waits for convergence, not for backoff.
                do {
                    for try await _ in engine.live(LiveOptions(baseDelay: .milliseconds(50), maxDelay: .seconds(1))) {}
                    return nil as String?
                } catch {
                    return "\(name): \(error)"
                }
            }
        }
        defer { for run in runs { run.cancel() } }
        let deadline = started + .seconds(120)
        while true {
            var views: [String: ServerView] = [:]
            for user in tokens.keys.sorted() { views[user] = try await serverView(user: user) }
            // In step: nothing left to push, and every device holds the server's state.
            if try devices.allSatisfy({ try $0.store.pendingChangeCount() == 0 }), try Oracle(runner: self).convergence(views).passed { break }
            guard ContinuousClock.now < deadline else {
                var ended: [String] = []
                for run in runs { run.cancel(); if let error = await run.value { ended.append(error) } }
                throw SimulationError("live mode: the devices were not in step with the server after 120 s"
                    + (ended.isEmpty ? "" : "; live mode ended with \(ended.joined(separator: "; "))"))
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let elapsed = ContinuousClock.now - started
        report.liveConvergenceSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        for run in runs { run.cancel() }
        for run in runs { _ = await run.value }
        conflictLog += try await fetchConflictLog()
    }

    func fetchConflictLog() async throws -> [ConflictDTO] {
        var all: [ConflictDTO] = []
        var before: Int64?
        while true {
            let path = "/v1/admin/conflicts?limit=1000" + (before.map { "&before=\($0)" } ?? "")
            let page = try JSONDecoder().decode(ConflictsResponse.self, from: try await server.admin(.GET, path, body: nil))
            all += page.conflicts
            guard let last = page.conflicts.last, page.conflicts.count == 1000 else { return all }
            before = last.id
        }
    }

    /// A user's articles (live ones, by version) and states, as the server serves them.
    /// Each live article's version, section and publication time; each state.
    /// Each live article's version, section and publication time; the expired articles the server
    /// still has (kept for a bookmark, or not yet past the horizon); each state.
    typealias ServerView = (articles: [ExactText: Int64], details: [ExactText: (section: String, publishedAt: String)],
                            expired: Set<ExactText>, states: [String: StateDTO])

    /// The server's view of a user: a fresh pull from the beginning with the user's token, no faults.
    func serverView(user: String) async throws -> ServerView {
        let transport = server.transport(token: tokens[user]!)
        var articles: [ExactText: Int64] = [:]
        var details: [ExactText: (section: String, publishedAt: String)] = [:]
        var expired = Set<ExactText>()
        var states: [String: StateDTO] = [:]
        _ = try await transport.pullUntilCaughtUp(from: nil, limit: 1000) { page in
            for a in page.articles {
                articles[a.id.exact] = a.version
                details[a.id.exact] = (a.section, a.publishedAt)
            }
            for id in page.deletedArticleIds { articles[id.exact] = nil }
            for id in page.expiredArticleIds { expired.insert(id.exact) }
            for s in page.states { states[s.articleId] = s }
        }
        return (articles, details, expired, states)
    }

    func digest() async throws -> String {
        var text = ""
        for user in tokens.keys.sorted() {
            let view = try await serverView(user: user)
            text += "server \(user)\n"
            for (id, version) in view.articles.sorted(by: { $0.key < $1.key }) { text += "a \(id) \(version)\n" }
            for (id, s) in view.states.sorted(by: { $0.key < $1.key }) { text += "s \(id) \(s.read) \(s.bookmarked) \(s.progress) \(s.version)\n" }
        }
        for device in devices.sorted(by: { $0.name < $1.name }) {
            text += "device \(device.name)\n"
            for (id, version) in try device.store.articleVersions().sorted(by: { $0.key < $1.key }) { text += "a \(id) \(version)\n" }
            for s in try device.store.allStates() { text += "s \(s.articleId) \(s.isRead) \(s.isBookmarked) \(s.progress) \(s.version)\n" }
        }
        return SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
