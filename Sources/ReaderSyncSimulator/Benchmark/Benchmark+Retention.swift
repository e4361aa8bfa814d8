import Foundation
import ReaderSyncCore
import ReaderSyncService
import ReaderSyncSQLiteStore
import Synchronization

/// The retention scenario's size: a newsroom publishing every day for months.
public struct RetentionSimulation: Sendable, Hashable, Codable {
    /// Simulated days (the clock is moved, never waited for).
    public var days = 180
    public var articlesPerDay = 1_000
    public var readers = 2_000
    /// The share of readers who read on a given day (each marks a few of the day's articles).
    public var activeShare = 0.5
    /// Bookmarks a reader keeps (a read-later list): a new one beyond it removes the oldest.
    /// Without un-bookmarking, every bookmarked article would stay pinned for ever.
    public var bookmarksPerReader = 10
    /// `--retention-days`, `--tombstone-days` and `--conflict-days` of the daily compaction.
    public var retentionDays = 90
    public var tombstoneDays = 30
    public var conflictDays = 90

    public init() {}

    /// 40 days of 200 articles and 100 readers, kept 15 days: the same shape in seconds.
    public static let small: RetentionSimulation = {
        var s = RetentionSimulation()
        s.days = 40
        s.articlesPerDay = 200
        s.readers = 100
        s.retentionDays = 15
        s.tombstoneDays = 5
        s.conflictDays = 15
        return s
    }()
}

extension Benchmark {
    /// The `retention` scenario: day after simulated day, the newsroom publishes (and retracts
    /// 1 % of yesterday's), readers mark what they read on their phones, a daily reader's device
    /// pulls the day's changes, a new device makes its first sync (newest first, a 500-article
    /// window), and the server compacts. Every day's database size, row counts and pull times go
    /// into `series["retention"]`, which `docs/plots/retention.py` draws. In process, on a SQLite
    /// store: what is measured is growth, not HTTP.
    static func retention(_ simulation: RetentionSimulation, options: BenchmarkOptions, into report: inout BenchmarkReport,
                          log: @Sendable (String) -> Void) async throws {
        let path = options.workDirectory.appendingPathComponent("retention.sqlite").path
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        let store = try SQLiteSyncStore(path: path)
        let start = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00Z
        let millis = Mutex<Int64>(Timestamp.millis(start))
        let service = try await SyncService(store: store, now: { Timestamp.date(millis: millis.withLock { $0 }) })
        var readers: [UserRecord] = []
        for n in 0..<simulation.readers {
            _ = try await service.createUser(name: "reader-\(n)")
            readers.append(try await service.user(named: "reader-\(n)"))
        }
        var random = SeededRandom(seed: 14)
        var mutationIds = [Int64](repeating: 0, count: simulation.readers)
        var bookmarks = [[String]](repeating: [], count: simulation.readers)
        var dailyCursor: String?
        var rows: [[String: Double]] = []
        let policy = RetentionPolicy(articleDays: simulation.retentionDays, tombstoneDays: simulation.tombstoneDays,
                                     conflictDays: simulation.conflictDays)
        let clock = ContinuousClock()
        let sections = ["world", "politics", "business", "tech", "science", "sport", "culture", "opinion"]
        let words = ["the", "council", "vote", "market", "storm", "league", "minister", "report", "city", "season", "energy", "court"]
        for day in 0..<simulation.days {
            let dayStart = Timestamp.millis(start) + Int64(day) * 86_400_000
            millis.withLock { $0 = dayStart + 6 * 3_600_000 }
            // The day's articles, published through the day so far, and 1 % of yesterday's retracted.
            var items: [IngestItem] = (0..<simulation.articlesPerDay).map { i in
                let published = Timestamp.format(Timestamp.date(millis: dayStart + Int64(i) * 86_400_000 / Int64(simulation.articlesPerDay) / 4))
                let body = (0..<500).map { _ in random.pick(words) }.joined(separator: " ")
                return .upsert(ArticleContent(
                    id: "d\(day)-\(i)", section: random.pick(sections), title: "Story \(i) of day \(day)",
                    summary: String(body.prefix(200)), body: body, author: "Desk", url: "https://news.example/d\(day)/\(i)",
                    publishedAt: published, updatedAt: published))
            }
            if day > 0 {
                items += (0..<simulation.articlesPerDay / 100).map { _ in .delete(id: "d\(day - 1)-\(random.int(in: 0...simulation.articlesPerDay - 1))") }
            }
            _ = try await service.ingest(items)

            // Readers: a few of today's articles read, now and then one bookmarked (the oldest
            // bookmark then removed beyond the list's size) or half read.
            millis.withLock { $0 = dayStart + 18 * 3_600_000 }
            let wall = millis.withLock { $0 }
            for (n, reader) in readers.enumerated() where random.chance(simulation.activeShare) {
                var mutations: [Mutation] = []
                for _ in 0..<3 {
                    mutationIds[n] += 1
                    let article = "d\(day)-\(random.int(in: 0...simulation.articlesPerDay - 1))"
                    let (field, value): (StateField, FieldValue) = random.chance(0.1) ? (.bookmarked, .bool(true))
                        : random.chance(0.2) ? (.progress, .number(0.5)) : (.read, .bool(true))
                    mutations.append(Mutation(id: mutationIds[n], articleId: article, field: field, value: value,
                                              hlc: HLC(wall: wall, counter: Int64(mutations.count)), baseVersion: 0))
                    guard field == .bookmarked, !bookmarks[n].contains(article) else { continue }
                    bookmarks[n].append(article)
                    if bookmarks[n].count > simulation.bookmarksPerReader {
                        mutationIds[n] += 1
                        mutations.append(Mutation(id: mutationIds[n], articleId: bookmarks[n].removeFirst(), field: .bookmarked,
                                                  value: .bool(false), hlc: HLC(wall: wall, counter: Int64(mutations.count)), baseVersion: 0))
                    }
                }
                _ = try await service.push(user: reader, request: PushRequest(deviceId: "reader-\(n)-phone", mutations: mutations))
            }

            // Reader 0's phone syncs every evening; a new device of reader 1 makes its first sync.
            var begin = clock.now
            var changes = 0
            repeat {
                let page = try await service.pull(user: readers[0], cursor: dailyCursor, limit: 500)
                changes += page.articles.count + page.deletedArticleIds.count + page.expiredArticleIds.count + page.states.count
                dailyCursor = page.cursor
                if !page.hasMore { break }
            } while true
            let dailyPull = seconds(clock.now - begin) * 1000
            begin = clock.now
            var page = try await service.pullNewestFirst(user: readers[1], limit: 30, window: 500, since: nil)
            while page.hasMore { page = try await service.pull(user: readers[1], cursor: page.cursor, limit: 500) }
            let firstSync = seconds(clock.now - begin) * 1000

            // The nightly compaction.
            millis.withLock { $0 = dayStart + 23 * 3_600_000 }
            begin = clock.now
            let compaction = try await service.compact(policy)
            let compactMs = seconds(clock.now - begin) * 1000
            let stats = try await service.statistics()
            rows.append([
                "day": Double(day + 1), "databaseBytes": Double(stats.bytes), "freeBytes": Double(stats.freeBytes ?? 0),
                "liveArticles": Double(stats.liveArticles), "expiredArticles": Double(stats.expiredArticles),
                "tombstones": Double(stats.tombstones), "states": Double(stats.states), "conflicts": Double(stats.conflicts),
                "dailyPullMilliseconds": dailyPull, "dailyPullChanges": Double(changes),
                "firstSyncMilliseconds": firstSync, "compactionMilliseconds": compactMs,
                "expired": Double(compaction.expired), "removed": Double(compaction.removedTombstones + compaction.removedExpired),
            ])
            if (day + 1) % 10 == 0 || day + 1 == simulation.days {
                log("retention: day \(day + 1): \(stats.bytes / 1_000_000) MB, \(stats.liveArticles) live, \(stats.expiredArticles) expired, "
                    + "\(stats.states) states; daily pull \(Int(dailyPull)) ms, first sync \(Int(firstSync)) ms")
            }
        }
        report.series["retention"] = rows
        let last = rows.suffix(30)
        func mean(_ key: String, _ rows: ArraySlice<[String: Double]>) -> Double {
            rows.map { $0[key] ?? 0 }.reduce(0, +) / Double(max(rows.count, 1))
        }
        report.figures["retention.days"] = Double(simulation.days)
        report.figures["retention.finalDatabaseBytes"] = rows.last?["databaseBytes"] ?? 0
        report.figures["retention.maxDatabaseBytes"] = rows.map { $0["databaseBytes"] ?? 0 }.max() ?? 0
        report.figures["retention.last30.dailyPullMilliseconds"] = mean("dailyPullMilliseconds", last)
        report.figures["retention.last30.firstSyncMilliseconds"] = mean("firstSyncMilliseconds", last)
        report.figures["retention.last30.compactionMilliseconds"] = mean("compactionMilliseconds", last)
        report.figures["retention.finalLiveArticles"] = rows.last?["liveArticles"] ?? 0
        report.figures["retention.finalStates"] = rows.last?["states"] ?? 0
    }
}
