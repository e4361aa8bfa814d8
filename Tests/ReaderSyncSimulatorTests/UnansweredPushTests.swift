import Foundation
import NIOHTTP1
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncService
@testable import ReaderSyncSimulator
import ReaderSyncTestSupport
import Synchronization
import Testing

/// The reference model learns a push whose answer never reached the device (a server SIGKILLed
/// after its commit) from the answers to the device's resend: the regression behind invariant 5
/// failing in the multi-server test.
@Suite("Reference model: pushes without an answer")
struct UnansweredPushTests {
    static let user = "ann"
    static let epoch = "e1"

    static func mutation(_ id: Int64, _ value: FieldValue, field: StateField = .read, wall: Int64, base: Int64) -> Mutation {
        Mutation(id: id, articleId: "a1", field: field, value: value, hlc: HLC(wall: wall, counter: 0), baseVersion: base)
    }

    static func state(read: Bool, version: Int64, writer: String, wall: Int64) -> StateDTO {
        StateDTO(articleId: "a1", read: read, bookmarked: false, progress: 0, version: version, hlc: HLC(wall: wall, counter: 0),
                 writers: StateWriters(read: FieldWriter(deviceId: writer, hlc: HLC(wall: wall, counter: 0))))
    }

    /// Records an answered push of `device`.
    static func answer(_ recorder: PushRecorder, _ device: String, _ mutations: [Mutation], _ outcomes: [MutationOutcome],
                       last: Int64, states: [StateDTO]) {
        let results = zip(mutations, outcomes).map { MutationResult(id: $0.id, outcome: $1) }
        recorder.record(user: user, request: PushRequest(deviceId: device, mutations: mutations, epoch: epoch),
                        response: PushResponse(lastMutationId: last, results: results, states: states, epoch: epoch), serverMillis: 10_000)
    }

    static func cut(_ recorder: PushRecorder, _ device: String, _ mutations: [Mutation]) {
        recorder.recordUnanswered(user: user, request: PushRequest(deviceId: device, mutations: mutations, epoch: epoch), serverMillis: 10_000)
    }

    @Test("a push without an answer whose resend is answered duplicate is replayed at its own place, before the writes that followed it")
    func committedAtItsPlace() throws {
        let recorder = PushRecorder()
        var model = ReferenceModel()
        // Given: the tablet marks a1 read (version 1).
        let tabletRead = Self.mutation(1, .bool(true), wall: 1_000, base: 0)
        Self.answer(recorder, "tablet", [tabletRead], [.applied], last: 1, states: [Self.state(read: true, version: 1, writer: "tablet", wall: 1_000)])
        // The phone, having seen version 1, marks it unread; the server commits (version 2) and is
        // killed before it answers.
        let phoneUnread = Self.mutation(1, .bool(false), wall: 2_000, base: 1)
        Self.cut(recorder, "phone", [phoneUnread])
        // The tablet, having pulled version 2, marks it read again with a clock behind the phone's.
        // Only after the phone's write does it count as having seen it (base 2 ≥ set at 2) and win;
        // replayed before the phone's write instead, the phone's would later win by its clock.
        let tabletReadAgain = Self.mutation(2, .bool(true), wall: 1_500, base: 2)
        Self.answer(recorder, "tablet", [tabletReadAgain], [.applied], last: 2,
                    states: [Self.state(read: true, version: 3, writer: "tablet", wall: 1_500)])

        // When the model catches up before the phone resends, it stops at the unanswered push.
        var position = model.catchUp(with: recorder, from: 0)
        #expect(position == 1)
        #expect(model.rows[Self.user]?["a1"]?.version == 1)

        // Then the resend is answered duplicate: the first attempt committed.
        Self.answer(recorder, "phone", [phoneUnread], [.duplicate], last: 1,
                    states: [Self.state(read: true, version: 3, writer: "tablet", wall: 1_500)])
        position = model.catchUp(with: recorder, from: position)
        #expect(position == 4)
        let row = try #require(model.rows[Self.user]?["a1"])
        #expect(row.read && row.version == 3, "the server's state is read at version 3; the model has \(row.read) at \(row.version)")
        guard case .committed(let commit) = recorder.all[1].answer else {
            Issue.record("the unanswered push is \(recorder.all[1].answer), not committed")
            return
        }
        #expect(commit.lastProcessedBefore == 0 && !commit.ambiguous && !commit.decidedAtEnd)
        #expect(recorder.all[1].results == [MutationResult(id: 1, outcome: .applied)])
        #expect(PushRecorder.fate(of: recorder.all[1].answer) == "committed")
    }

    @Test("a push without an answer whose resend is answered applied did not commit: the model applies it once")
    func notCommittedAppliedOnce() throws {
        let recorder = PushRecorder()
        var model = ReferenceModel()
        let read = Self.mutation(1, .bool(true), wall: 1_000, base: 0)
        Self.cut(recorder, "phone", [read])
        #expect(model.catchUp(with: recorder, from: 0) == 0)
        Self.answer(recorder, "phone", [read], [.applied], last: 1, states: [Self.state(read: true, version: 1, writer: "phone", wall: 1_000)])
        #expect(model.catchUp(with: recorder, from: 0) == 2)
        let row = try #require(model.rows[Self.user]?["a1"])
        #expect(row.read && row.version == 1, "applied twice would be version 2; the model has \(row.version)")
        #expect(recorder.all[0].answer == .notCommitted)
        #expect(recorder.all[0].results.isEmpty)
    }

    @Test("of two attempts without an answer, the first is taken; ids it already processed are duplicates of the second")
    func twoAttempts() throws {
        let recorder = PushRecorder()
        var model = ReferenceModel()
        let read = Self.mutation(1, .bool(true), wall: 1_000, base: 0)
        let progress = Self.mutation(2, .number(0.5), field: .progress, wall: 1_001, base: 0)
        Self.cut(recorder, "phone", [read])
        Self.cut(recorder, "phone", [read, progress])
        // The resend: both ids were processed, so both attempts committed, the second only id 2.
        var after = Self.state(read: true, version: 2, writer: "phone", wall: 1_000)
        after.progress = 0.5
        Self.answer(recorder, "phone", [read, progress], [.duplicate, .duplicate], last: 2, states: [after])
        #expect(model.catchUp(with: recorder, from: 0) == 3)
        #expect(recorder.all[0].results == [MutationResult(id: 1, outcome: .applied)])
        #expect(recorder.all[1].results == [MutationResult(id: 1, outcome: .duplicate), MutationResult(id: 2, outcome: .applied)])
        let row = try #require(model.rows[Self.user]?["a1"])
        #expect(row.read && row.progress == 0.5 && row.version == 2)
    }

    @Test("an article the resend's answer names without state was unknown: the committed push's write to it was rejected")
    func unknownArticleRejected() throws {
        let recorder = PushRecorder()
        var model = ReferenceModel()
        let read = Self.mutation(1, .bool(true), wall: 1_000, base: 0)
        Self.cut(recorder, "phone", [read])
        Self.answer(recorder, "phone", [read], [.duplicate], last: 1, states: [])
        #expect(model.catchUp(with: recorder, from: 0) == 2)
        #expect(recorder.all[0].results.map(\.outcome) == [.rejected])
        #expect(model.rows[Self.user]?["a1"] == nil)
    }

    @Test("at the end, an undecided push is committed if its write is in the final state, else left out undecided")
    func settledAtEnd() throws {
        let recorder = PushRecorder()
        var model = ReferenceModel()
        let phoneRead = Self.mutation(1, .bool(true), wall: 1_000, base: 0)
        let tabletRead = Self.mutation(1, .bool(true), wall: 1_100, base: 0)
        Self.cut(recorder, "phone", [phoneRead])
        Self.cut(recorder, "tablet", [tabletRead])
        recorder.settleUnanswered(finalStates: [Self.user: ["a1": Self.state(read: true, version: 1, writer: "phone", wall: 1_000)]])
        #expect(model.catchUp(with: recorder, from: 0) == 2)
        #expect(recorder.all[1].answer == .undecided)
        guard case .committed(let commit) = recorder.all[0].answer else {
            Issue.record("the phone's push is \(recorder.all[0].answer), not committed")
            return
        }
        #expect(commit.decidedAtEnd)
        #expect(model.rows[Self.user]?["a1"]?.version == 1)
    }

    @Test("through the in-process server: a connection cut after the commit is recorded unanswered, and the model ends equal to the server")
    func cutAfterCommitInProcess() async throws {
        // Given: a server with one article and one user; the phone's connection breaks after the
        // server answered its first push.
        let directory = try TestDirectory.make("unanswered")
        let clock = VirtualClock(startMillis: 1_764_547_200_000, real: false)
        let server = try await InProcessServer(directory: directory, clock: clock, configuration: SyncConfiguration())
        _ = try await server.admin(.POST, "/v1/admin/articles", body: Data(#"{"id":"a1","title":"A","publishedAt":"2025-12-01T00:00:00Z"}"#.utf8))
        let created = try JSONDecoder().decode(CreateUserResponse.self, from: try await server.admin(
            .POST, "/v1/admin/users", body: try JSONEncoder().encode(CreateUserRequest(name: Self.user))))
        let recorder = PushRecorder()
        let order = PushOrder()
        func device(_ name: String, cutting: Bool) throws -> (ReaderStore, SyncEngine) {
            let inner = server.transport(token: created.token)
            let link = DeviceLink(inner: cutting ? CutAfterServer(inner) : inner, recorder: recorder, order: order, user: Self.user,
                                  serverMillis: { server.nowMillis })
            let store = try ReaderStore(path: directory.appendingPathComponent("\(name).sqlite").path, deviceId: name,
                                        now: { clock.now }, defect: nil)
            return (store, SyncEngine(store: store, transport: link, pushBatchSize: 50, pageSize: 100))
        }
        let (phone, phoneSync) = try device("phone", cutting: true)
        let (tablet, tabletSync) = try device("tablet", cutting: false)

        // When the phone marks a1 read (committed, answer lost), the tablet pulls that and marks it
        // unread, and the phone syncs again (its resend is a duplicate).
        try phone.record("a1", .read, .bool(true))
        await #expect(throws: ReaderSyncError.self) { try await phoneSync.sync() }
        clock.advance(millis: 1_000)
        try await tabletSync.sync()
        try tablet.record("a1", .read, .bool(false))
        try await tabletSync.sync()
        try await phoneSync.sync()

        // Then the first push was found committed and replayed before the tablet's write.
        var model = ReferenceModel()
        #expect(model.catchUp(with: recorder, from: 0) == recorder.count)
        #expect(recorder.all.map { PushRecorder.fate(of: $0.answer) } == ["committed", nil, nil])
        var serverState: StateDTO?
        _ = try await server.transport(token: created.token).pullUntilCaughtUp(from: nil, limit: 100) { page in
            serverState = page.states.first { $0.articleId == "a1" } ?? serverState
        }
        let state = try #require(serverState)
        let row = try #require(model.rows[Self.user]?["a1"])
        #expect(!state.read && state.version == 2)
        #expect(row.read == state.read && row.version == state.version, "model \(row.read) at \(row.version), server \(state.read) at \(state.version)")
    }
}

/// A transport whose first push reaches the server and is committed, and whose answer is then
/// lost with the connection: what a device sees of a server SIGKILLed between commit and response.
private final class CutAfterServer: SyncTransport {
    private let inner: any SyncTransport
    private let cut = Mutex(true)

    init(_ inner: any SyncTransport) {
        self.inner = inner
    }

    func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
        let response = try await inner.push(request)
        if cut.withLock({ cut in defer { cut = false }; return cut }) {
            throw ReaderSyncError(.transportFailed, "connection reset by peer")
        }
        return response
    }

    func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
        try await inner.pull(cursor: cursor, limit: limit, sections: sections)
    }
}
