import Foundation
import GRDB
import ReaderSyncClient
import ReaderSyncSchema
import ReaderSyncSQLite
import ReaderSyncTestSupport
import Testing

@Suite("Client store migrations")
struct StoreMigrationTests {
    @Test("a store made by the first SDK is migrated in place: articles, states, outbox and cursor kept")
    func migratesFirstStore() throws {
        let path = try TestDirectory.make("old-store").appendingPathComponent("reader.sqlite").path
        do {
            let old = try DatabaseQueue(path: path)
            try Array(ReaderSyncSchema.clientMigrations.prefix(1)).migrator.migrate(old)
            try old.write { db in
                try db.execute(sql: "INSERT INTO syncMeta (id, deviceId, cursor, epoch, lastMutationId) VALUES (1, 'old-phone', 'c-1', 'e-1', 1)")
                try db.execute(sql: """
                    INSERT INTO article (id, section, title, summary, body, author, url, publishedAt, updatedAt, version)
                    VALUES ('art-1', 'tech', 'Title', 'Summary', ?, 'Ann', 'https://example.com/1',
                            '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', 3)
                    """, arguments: [String(repeating: "body ", count: 2000)])
                try db.execute(sql: "INSERT INTO articleState (articleId, read, bookmarked, serverRead, version) VALUES ('art-1', 1, 1, 1, 2)")
                try db.execute(sql: """
                    INSERT INTO outbox (id, articleId, field, value, hlcWall, hlcCounter, baseVersion, restored, createdAt)
                    VALUES (1, 'art-1', 'bookmarked', 'true', 1764000000000, 0, 2, 0, '2026-11-02T00:00:00Z')
                    """)
            }
        }

        let store = try ReaderStore(path: path)
        #expect(store.deviceId == "old-phone")
        let article = try #require(try store.article(id: "art-1"))
        #expect(article.title == "Title" && article.version == 3 && article.body == String(repeating: "body ", count: 2000))
        #expect(article.isRead && article.isBookmarked)
        #expect(try store.pendingChangeCount() == 1)
        #expect(try store.articles(.bookmarked).map(\.id) == ["art-1"])

        let (cursor, rowid, indexes, integrity) = try DatabaseQueue(path: path).read { db in
            (try String.fetchOne(db, sql: "SELECT cursor FROM syncMeta"),
             // A rowid table now (a WITHOUT ROWID table has no rowid column).
             try Int64.fetchOne(db, sql: "SELECT rowid FROM article WHERE id = 'art-1'"),
             try String.fetchAll(db, sql: """
                 SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'article' AND sql IS NOT NULL ORDER BY name
                 """),
             try String.fetchOne(db, sql: "PRAGMA integrity_check"))
        }
        #expect(cursor == "c-1" && rowid != nil && integrity == "ok")
        #expect(indexes == ["article_on_publishedAt", "article_on_section_publishedAt"])
    }

    @Test("a new store uses 8 KB pages; an existing one keeps its page size")
    func pageSize() throws {
        let directory = try TestDirectory.make("page-size")
        let fresh = directory.appendingPathComponent("fresh.sqlite").path
        _ = try ReaderStore(path: fresh, deviceId: "d")
        #expect(try DatabaseQueue(path: fresh).read { try Int.fetchOne($0, sql: "PRAGMA page_size") } == 8192)

        let older = directory.appendingPathComponent("older.sqlite").path
        try DatabaseQueue(path: older).write { try $0.execute(sql: "CREATE TABLE t (x)") }
        _ = try ReaderStore(path: older, deviceId: "d")
        #expect(try DatabaseQueue(path: older).read { try Int.fetchOne($0, sql: "PRAGMA page_size") } == 4096)
    }
}
