import Foundation
import Hummingbird
import Logging
import ReaderSyncClient
import ReaderSyncCore
@testable import ReaderSyncServer
import ReaderSyncSchema
import ReaderSyncService
@testable import ReaderSyncSimulator
import ReaderSyncSQLiteStore
import ReaderSyncTestSupport
import Testing

/// Stores written by earlier releases (Fixtures/README.md), opened and synced by this one.
@Suite("Client SDK: stores of earlier releases")
struct UpgradeTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Copies of the fixture files named `name`, in a new directory: a test never opens the
    /// fixtures themselves (opening migrates them).
    static func copies(of names: [String]) throws -> [String] {
        let directory = try TestDirectory.make("upgrade")
        return try names.map { name in
            let copy = directory.appendingPathComponent(name)
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: copy)
            return copy.path
        }
    }

    @Test("a phone store and server database written by 6f69116 open, migrate, keep every article, state and pending change, and sync on")
    func release6f69116() async throws {
        let paths = try Self.copies(of: ["server-6f69116.sqlite", "phone-6f69116.sqlite"])
        let token = try String(contentsOf: Self.fixtures.appendingPathComponent("ann-6f69116.token"), encoding: .utf8)
        let clock = ManualClock()
        clock.advance(millis: 3_600_000)
        let service = try await SyncService(store: try SQLiteSyncStore(path: paths[0]), now: { clock.now })
        let store = try ReaderStore(path: paths[1], now: { clock.now })

        // What the phone had, as it was.
        #expect(store.deviceId == "phone")
        #expect(try store.articleCount() == 12)
        #expect(try store.pendingChangeCount() == 3)
        #expect(try store.state(articleId: "art-1").isRead)
        #expect(try store.state(articleId: "art-3").isRead, "pending")
        #expect(try store.state(articleId: "art-4").progress == 0.5, "pending")
        #expect(try !store.state(articleId: "art-2").isBookmarked, "the pending removal shows over the synced bookmark")
        #expect(try store.search("Title").count == 12, "the index written by m0004 answers")
        #expect(try store.setAsideChanges().isEmpty)

        let transport = InProcessTransport(responder: buildRouter(service: service, logger: Logger(label: "test")).buildResponder(),
                                           token: token.trimmingCharacters(in: .whitespacesAndNewlines))
        let report = try await SyncEngine(store: store, transport: transport).sync()
        #expect(!report.serverWasReset && !report.cursorExpired, "the same server, the same epoch: it syncs on from its cursor")
        #expect(report.applied == 3)
        #expect(try store.pendingChangeCount() == 0)
        #expect(try store.articleCount() == 15, "art-13…15 were published after its last sync")
        #expect(try store.state(articleId: "art-5").progress == 0.25, "the tablet's change, pulled")
        let ann = try #require(try await service.store.user(named: "ann"))
        #expect(try await service.store.state(userId: ann.id, articleId: "art-2")?.isBookmarked == false)
        #expect(try await service.store.state(userId: ann.id, articleId: "art-4")?.progressValue == 0.5)
        #expect(try store.search("Title 14").first?.article.id == "art-14", "new articles are indexed")
    }

    /// FNV-1a (64 bits) of each client migration as shipped: a store that ran a migration never
    /// runs it again, so an edit would leave devices updated from an earlier release with another
    /// schema than new installs. Add a migration instead; add its line here when it ships.
    static let shipped: [String: UInt64] = [
        "m0001_client_initial": 0x0cff_dad8_e443_319b,
        "m0002_client_arrival": 0x20d5_1692_6b51_02d7,
        "m0003_client_sections": 0x7bc1_9895_d93b_c08c,
        "m0004_client_search": 0xbda5_72c1_239d_a091,
        "m0005_client_observation": 0x0f29_874b_e0ee_71df,
        "m0006_client_outbox_set_aside": 0xe1d3_7a07_3b64_9b38,
    ]

    @Test("no shipped client migration was edited, and each one is listed")
    func migrationsUnedited() {
        for migration in ReaderSyncSchema.clientMigrations {
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in migration.sql.utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
            #expect(Self.shipped[migration.name] == hash, "\(migration.name) was edited, or is new and not listed")
        }
        #expect(ReaderSyncSchema.clientMigrations.count == Self.shipped.count)
    }
}
