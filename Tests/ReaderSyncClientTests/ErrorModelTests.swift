import Foundation
import GRDB
import ReaderSyncClient
import ReaderSyncCore
import ReaderSyncTestSupport
import Synchronization
import Testing

/// The SDK's one error type: what each public method throws when the store or the transport fails.
@Suite("Client SDK: errors")
struct ErrorModelTests {
    /// Every public method of the store and the engine that reads or writes the store.
    static func calls(_ store: ReaderStore, _ engine: SyncEngine) -> [(String, @Sendable () async throws -> Void)] {
        [
            ("articles", { _ = try store.articles(.unread) }),
            ("article(id:)", { _ = try store.article(id: "art-1") }),
            ("articleCount", { _ = try store.articleCount() }),
            ("state(articleId:)", { _ = try store.state(articleId: "art-1") }),
            ("allStates", { _ = try store.allStates() }),
            ("pendingChangeCount", { _ = try store.pendingChangeCount() }),
            ("markRead", { try store.markRead("art-1") }),
            ("setBookmarked", { try store.setBookmarked("art-1", true) }),
            ("setProgress", { try store.setProgress("art-1", 0.5) }),
            ("arrivalPoint", { _ = try store.arrivalPoint() }),
            ("markAllRead", { _ = try store.markAllRead(upTo: 10) }),
            ("follow(sections:)", { _ = try store.follow(sections: ["world"]) }),
            ("followedSections", { _ = try store.followedSections() }),
            ("search", { _ = try store.search("title") }),
            ("search(.expression)", { _ = try store.search(.expression("title OR body")) }),
            ("setAsideChanges", { _ = try store.setAsideChanges() }),
            ("observeArticles", { for try await _ in try store.observeArticles() { break } }),
            ("observeArticle(id:)", { for try await _ in store.observeArticle(id: "art-1") { break } }),
            ("observeUnreadCounts", { for try await _ in store.observeUnreadCounts() { break } }),
            ("observePendingChangeCount", { for try await _ in store.observePendingChangeCount() { break } }),
            ("observeSearch", { for try await _ in try store.observeSearch(.words("title")) { break } }),
            ("unreadCounts", { _ = try store.unreadCounts() }),
            ("start(on:onError:onChange:)", {
                let (errors, continuation) = AsyncStream.makeStream(of: ReaderSyncError.self)
                let cancellable = store.observeUnreadCounts().start(on: DispatchQueue(label: "observer"),
                                                                    onError: { continuation.yield($0) }, onChange: { _ in })
                for await error in errors {
                    cancellable.cancel()
                    throw error
                }
            }),
            ("engine.live", { for try await _ in engine.live() { break } }),
            ("engine.sync", { _ = try await engine.sync() }),
            ("engine.article(id:)", { _ = try await engine.article(id: "art-1") }),
        ]
    }

    @Test("on a damaged store every public method throws ReaderSyncError store_corrupt with SQLite's error as its cause, never a GRDB error", .timeLimit(.minutes(1)))
    func damagedStore() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(4)
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try await engine.sync()
        // Another program drops every table of the store under the app.
        try await store.dbPool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA foreign_keys = OFF")
            for trigger in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger'") {
                try db.execute(sql: "DROP TRIGGER \(trigger.quotedDatabaseIdentifier)")
            }
            try db.execute(sql: "DROP TABLE articleSearch")
            for table in try String.fetchAll(db, sql: """
                SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'grdb_migrations'
                """) {
                try db.execute(sql: "DROP TABLE \(table.quotedDatabaseIdentifier)")
            }
        }
        for (name, call) in Self.calls(store, engine) {
            do {
                try await call()
                Issue.record("\(name) did not throw")
            } catch let error as ReaderSyncError {
                #expect(error.code == .storeCorrupt, "\(name): \(error)")
                #expect(error.cause is DatabaseError, "\(name): the cause is SQLite's error")
            } catch {
                Issue.record("\(name) threw \(type(of: error)), not ReaderSyncError: \(error)")
            }
        }
        #expect { _ = try ReaderStore(path: h.directory.appendingPathComponent("phone.sqlite").path) } throws: { error in
            (error as? ReaderSyncError)?.code == .storeCorrupt && (error as? ReaderSyncError)?.cause != nil
        }
        // A file that is not a SQLite database cannot be opened at all.
        let notAStore = h.directory.appendingPathComponent("notes.txt").path
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: notAStore))
        #expect { _ = try ReaderStore(path: notAStore) } throws: { ($0 as? ReaderSyncError)?.code == .storeUnavailable }
    }

    @Test("a value of the wrong type in a damaged row is store_corrupt, never a crash", .timeLimit(.minutes(1)))
    func wrongTypes() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(2)
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try store.markRead("art-1")
        try await engine.sync()
        try await store.dbPool.write { db in
            try db.execute(sql: "UPDATE article SET version = 'two' WHERE id = 'art-2'")
            try db.execute(sql: "UPDATE articleState SET read = x'00' WHERE articleId = 'art-1'")
        }
        for (name, call) in [("articles", { _ = try store.articles() }), ("article(id:)", { _ = try store.article(id: "art-2") }),
                             ("state(articleId:)", { _ = try store.state(articleId: "art-1") }), ("allStates", { _ = try store.allStates() }),
                             ("search", { _ = try store.search("Title") })] as [(String, () throws -> Void)] {
            #expect(throws: ReaderSyncError.self, "\(name)") { try call() }
            do { try call() } catch let error as ReaderSyncError { #expect(error.code == .storeCorrupt, "\(name): \(error)") } catch {}
        }
    }

    @Test("a full disk is store_full: the sync stores nothing half, loses no change, and succeeds once there is room", .timeLimit(.minutes(1)))
    func fullDisk() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(60)
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        try store.markRead("art-1")
        // The store's one writer connection may grow the file no further (as on a full disk).
        try await store.dbPool.writeWithoutTransaction { db in
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            try db.execute(sql: "PRAGMA max_page_count = \(pages)")
        }
        await #expect { try await engine.sync() } throws: { error in
            guard let error = error as? ReaderSyncError else { return false }
            return error.code == .storeFull && (error.cause as? DatabaseError)?.resultCode == .SQLITE_FULL
        }
        #expect(try store.articleCount() < 60)
        #expect(try store.articleCount() % 4 == 0, "whole pages of 4 only: a page is stored in one transaction")
        #expect(await engine.status.lastError?.code == .storeFull)

        try await store.dbPool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1073741823") }
        try await engine.sync()
        #expect(try store.articleCount() == 60)
        #expect(try store.pendingChangeCount() == 0)
        #expect(try await h.serverState(user: "alice", article: "art-1")?.isRead == true)
        #expect(try await h.serverState(user: "alice", article: "art-1")?.version == 1, "applied once")
    }

    struct Offline: Error, Equatable {}

    /// A transport of the app's own that fails with its own error, or waits until cancelled.
    struct AppTransport: SyncTransport {
        let entered: AsyncStream<Void>.Continuation?

        func pull(cursor: String?, limit: Int, sections: Set<String>?) async throws -> Transported<PullResponse> {
            throw Offline()
        }

        func article(id: String) async throws -> Transported<ArticleDTO>? {
            throw Offline()
        }

        func push(_ request: PushRequest) async throws -> Transported<PushResponse> {
            guard let entered else { throw Offline() }
            entered.yield(())
            try await Task.sleep(for: .seconds(3_600))  // until cancelled
            throw Offline()
        }
    }

    @Test("ids the server would refuse are invalid_argument when the app passes them, and an outbox row holding one is set aside, not sent to block every push", .timeLimit(.minutes(1)))
    func identifiers() async throws {
        let h = try await ClientHarness()
        try await h.seedArticles(2)
        let token = try await h.createUser("alice")
        let (store, engine) = try h.openDevice("phone", token: token)
        for bad in ["", "a\nb", "nul\u{0}id", String(repeating: "é", count: 201)] {
            #expect { try store.markRead(bad) } throws: { ($0 as? ReaderSyncError)?.code == .invalidArgument }
        }
        try store.markRead(String(repeating: "é", count: 200))  // 400 bytes, 200 characters: the server takes it
        for bad in ["", "tab\there", "reader-api:mine"] {
            #expect { _ = try ReaderStore(path: h.directory.appendingPathComponent("other.sqlite").path, deviceId: bad) } throws: {
                ($0 as? ReaderSyncError)?.code == .invalidArgument
            }
        }
        try store.markRead("art-1")
        try store.markRead("art-2")
        try await store.dbPool.write { db in
            try db.execute(sql: "UPDATE outbox SET articleId = 'art' || char(10) || '1' WHERE articleId = 'art-1'")
            try db.execute(sql: "UPDATE outbox SET id = 0 WHERE articleId = 'art-2'")
        }
        let report = try await engine.sync()
        #expect(report.setAside == 2)
        #expect(report.pushed == 1, "the long id's change (an article the server does not know: rejected, not refused as a push)")
        #expect(try store.setAsideChanges().map(\.mutationId) == [0, 2])
    }

    @Test("a custom transport's own error comes out of sync() as transport_failed with it as cause; a cancelled sync throws CancellationError and is no failure in the status", .timeLimit(.minutes(1)))
    func transportErrors() async throws {
        let h = try await ClientHarness()
        let store = try ReaderStore(path: h.directory.appendingPathComponent("phone.sqlite").path)
        let failing = SyncEngine(store: store, transport: AppTransport(entered: nil))
        await #expect { try await failing.sync() } throws: { error in
            (error as? ReaderSyncError)?.code == .transportFailed && (error as? ReaderSyncError)?.cause as? Offline == Offline()
        }
        #expect(await failing.status.lastError?.code == .transportFailed)

        try store.markRead("art-1")
        let (entered, enteredContinuation) = AsyncStream.makeStream(of: Void.self)
        let waiting = SyncEngine(store: store, transport: AppTransport(entered: enteredContinuation))
        let sync = Task { try await waiting.sync() }
        for await _ in entered { break }
        sync.cancel()
        await #expect(throws: CancellationError.self) { try await sync.value }
        // A custom transport's own error out of a fetch of one article, as out of sync().
        await #expect { _ = try await failing.article(id: "art-9") } throws: { ($0 as? ReaderSyncError)?.cause is Offline }
        let status = await waiting.status
        #expect(!status.isSyncing)
        #expect(status.lastError == nil)
        #expect(try store.pendingChangeCount() == 1)
    }
}
