import Foundation
import GRDB
import ReaderSyncClient
import ReaderSyncCore
@testable import ReaderSyncServer
@testable import ReaderSyncService
import Testing

/// Issue 10, items 1 and 10 on the device: ids are told apart by their bytes, and a pending
/// change is never skipped or dropped.
@Suite("Exact identity and a lossless outbox in the client SDK")
struct ExactIdentityClientTests {
    static let precomposed = "caf\u{E9}"
    static let decomposed = "cafe\u{301}"

    @Test("two canonically equivalent articles keep their own state on the device, on the server and on a second device")
    func canonicallyEquivalentArticles() async throws {
        let h = try await ClientHarness()
        let lines = [Self.precomposed, Self.decomposed].map {
            #"{"id":"\#($0)","title":"Caf\#u{E9}","publishedAt":"2026-11-20T09:00:00Z"}"#
        }
        #expect(try await h.service.ingest(jsonLines: Array(lines.joined(separator: "\n").utf8)).inserted == 2)
        let token = try await h.createUser("reader")
        let phone = try h.openDevice("phone", token: token)
        _ = try await phone.engine.sync()
        #expect(try phone.store.articleCount() == 2)
        #expect(try phone.store.articleVersions().count == 2, "two keys, not one merged (or a trap)")

        try phone.store.markRead(Self.precomposed)
        try phone.store.setBookmarked(Self.decomposed, true)
        let report = try await phone.engine.sync()
        #expect(report.applied == 2)
        #expect(try phone.store.pendingChangeCount() == 0)

        func check(_ store: ReaderStore) throws {
            let first = try store.state(articleId: Self.precomposed)
            let second = try store.state(articleId: Self.decomposed)
            #expect(first.isRead && !first.isBookmarked)
            #expect(second.isBookmarked && !second.isRead)
            #expect(try store.allStates().count == 2)
        }
        try check(phone.store)
        let serverFirst = try #require(try await h.serverState(user: "reader", article: Self.precomposed))
        let serverSecond = try #require(try await h.serverState(user: "reader", article: Self.decomposed))
        #expect(serverFirst.isRead && !serverFirst.isBookmarked && serverSecond.isBookmarked && !serverSecond.isRead)
        let tablet = try h.openDevice("tablet", token: token)
        _ = try await tablet.engine.sync()
        try check(tablet.store)
    }

    @Test("after a server reset a device gives back only its own writes, not those of a device whose id is canonically equal")
    func startOverComparesWriterBytes() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(2)
        let token = try await h.createUser("reader")
        let mine = try h.openDevice("d\u{E9}", token: token)
        let other = try h.openDevice("de\u{301}", token: token)
        try other.store.setBookmarked("art-1", true)
        _ = try await other.engine.sync()
        try mine.store.markRead("art-2")
        _ = try await mine.engine.sync()
        #expect(try mine.store.state(articleId: "art-1").isBookmarked)

        #expect(try mine.store.startOverAfterServerReset() == 1, "only mine's read of art-2, not the other device's bookmark")
        let batch = try mine.store.outboxBatch(limit: 10).request
        #expect(batch.mutations.map(\.articleId) == ["art-2"])
    }

    @Test("an outbox row that cannot be read is set aside with its reason, the rows around it are sent, and its article shows its value without it")
    func unreadableOutboxRowIsSetAside() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(6)
        let token = try await h.createUser("reader")
        let phone = try h.openDevice("phone", token: token)
        try phone.store.markRead("art-1")
        try phone.store.markRead("art-2")
        try phone.store.markRead("art-3")
        // The middle row is damaged (a value no version of the SDK writes for `read`).
        try await phone.store.dbPool.write { db in try db.execute(sql: "UPDATE outbox SET value = 'maybe' WHERE id = 2") }

        let report = try await phone.engine.sync()
        #expect(report.setAside == 1)
        #expect(report.applied == 2)
        #expect(try phone.store.pendingChangeCount() == 0)
        #expect(try await h.serverState(user: "reader", article: "art-1")?.isRead == true)
        #expect(try await h.serverState(user: "reader", article: "art-3")?.isRead == true)
        #expect(try await h.serverState(user: "reader", article: "art-2") == nil, "never sent")
        #expect(try phone.store.state(articleId: "art-2").isRead == false, "shown as the server has it")
        let kept = try phone.store.setAsideChanges()
        #expect(kept.map(\.mutationId) == [2])
        #expect(kept.first?.articleId == "art-2")
        #expect(kept.first?.field == "read")
        #expect(kept.first?.value == "maybe")
        #expect(kept.first?.reason.contains("read cannot be \"maybe\"") == true)

        // Each unreadable kind of column is set aside too, never a trap, a default or a stop.
        try phone.store.markRead("art-4")
        try phone.store.markRead("art-5")
        try phone.store.markRead("art-6")
        try await phone.store.dbPool.write { db in
            try db.execute(sql: "UPDATE outbox SET hlcWall = 'soon' WHERE id = 4")
            try db.execute(sql: "UPDATE outbox SET baseVersion = x'00' WHERE id = 5")
            try db.execute(sql: "UPDATE outbox SET articleId = x'ff' WHERE id = 6")
        }
        let again = try await phone.engine.sync()
        #expect(again.setAside == 3)
        #expect(again.pushed == 0)
        #expect(try phone.store.setAsideChanges().map(\.mutationId) == [2, 4, 5, 6])
        #expect(try phone.store.setAsideChanges().last?.articleId == nil, "not UTF-8: not shown as text")
        #expect(try phone.store.pendingChangeCount() == 0)
    }

    @Test("an acknowledgement removes only the changes that were sent, whatever lastMutationId the server states")
    func acknowledgeOnlyWhatWasSent() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(3)
        let token = try await h.createUser("reader")
        let phone = try h.openDevice("phone", token: token)
        try phone.store.markRead("art-1")
        let sent = try phone.store.outboxBatch(limit: 10).request
        try phone.store.markRead("art-2")
        try phone.store.markRead("art-3")
        // A server that counts ids 2 and 3 as seen (a device store copied back from an old backup).
        let response = PushResponse(lastMutationId: 3, results: [MutationResult(id: 1, outcome: .applied)], epoch: "e")
        try phone.store.acknowledge(response, pushed: sent)
        #expect(try phone.store.outboxBatch(limit: 10).request.mutations.map(\.id) == [2, 3])
    }
}
