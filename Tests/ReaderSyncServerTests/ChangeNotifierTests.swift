import Foundation
import ReaderSyncCore
@testable import ReaderSyncPostgres
@testable import ReaderSyncService
import Synchronization
import Testing

@Suite("Wake-ups: the notifier, its caps, and the announcements between servers")
struct ChangeNotifierTests {
    @Test("a user's wake-up reaches that user's streams only; everyone's reaches all; many wake-ups are one")
    func scoping() async throws {
        let notifier = ChangeNotifier()
        let alice = try notifier.subscribe(userId: 1)
        let alicesTablet = try notifier.subscribe(userId: 1)
        let bob = try notifier.subscribe(userId: 2)
        let past = ContinuousClock.now

        func woken(_ subscriptions: ChangeNotifier.Subscription...) async -> [Bool] {
            var result: [Bool] = []
            for subscription in subscriptions { result.append(await subscription.signal.wait(until: past)) }
            return result
        }
        notifier.wake(.user(2))
        #expect(await woken(alice, alicesTablet, bob) == [false, false, true])

        for _ in 0..<1000 { notifier.wake(.user(1)) }
        #expect(await woken(alice, alicesTablet, bob) == [true, true, false])
        #expect(await woken(alice) == [false], "a thousand wake-ups before a look are one")

        notifier.wake(.everyone)
        #expect(await woken(alice, alicesTablet, bob) == [true, true, true])
    }

    @Test("a waiting stream is woken at once; its wait ends at the deadline or on cancellation otherwise")
    func waiting() async throws {
        let notifier = ChangeNotifier()
        let stream = try notifier.subscribe(userId: 1)
        async let woken = stream.signal.wait(until: .now + .seconds(60))
        try await Task.sleep(for: .milliseconds(20))
        notifier.wake(.user(1))
        #expect(await woken)
        #expect(await !stream.signal.wait(until: .now + .milliseconds(30)))
        let cancelled = ContinuousClock.now
        let waiter = Task { await stream.signal.wait(until: .now + .seconds(60)) }
        waiter.cancel()
        #expect(await !waiter.value)
        #expect(ContinuousClock.now - cancelled < .seconds(30), "a cancelled wait ends then, not at its deadline")
    }

    @Test("caps per server and per user, places given back when a stream ends or is released, none after close")
    func caps() throws {
        let notifier = ChangeNotifier(maxStreams: 3, maxStreamsPerUser: 2)
        let first = try notifier.subscribe(userId: 1)
        var second: ChangeNotifier.Subscription? = try notifier.subscribe(userId: 1)
        #expect(throws: SyncError.self) { try notifier.subscribe(userId: 1) }
        let third = try notifier.subscribe(userId: 2)
        #expect(throws: SyncError.self) { try notifier.subscribe(userId: 3) }
        #expect(notifier.count == 3)
        second = nil
        #expect(notifier.count == 2 && second == nil)
        first.cancel()
        first.cancel()
        #expect(notifier.count == 1)
        notifier.close()
        #expect(third.signal.isClosed)
        do {
            _ = try notifier.subscribe(userId: 4)
            Issue.record("a closed notifier took a stream")
        } catch {
            #expect(error.code == .unavailable)
        }
    }

    @Test("announcements: batched into one payload, a server ignores its own, an oversized or unreadable one wakes everyone")
    func announcements() {
        let one = ChangeAnnouncer(serverId: "aaaa")
        let other = ChangeAnnouncer(serverId: "bbbb")
        one.add(.user(7))
        one.add(.user(3))
        one.add(.user(7))
        let payload = one.nextPayload()
        #expect(payload == "aaaa u 3,7")
        #expect(one.nextPayload() == nil)
        #expect(other.scopes(in: payload!) == [.user(3), .user(7)])
        #expect(one.scopes(in: payload!) == nil)

        one.add(.user(1))
        one.add(.everyone)
        #expect(one.nextPayload() == "aaaa *")
        #expect(other.scopes(in: "aaaa *") == [.everyone])

        for id in 1...2000 { one.add(.user(Int64(id))) }
        #expect(one.nextPayload() == "aaaa *", "over 7,000 bytes is sent as everyone")
        for garbled in ["", "aaaa", "aaaa u", "aaaa u 1,x", "aaaa q 1"] {
            #expect(other.scopes(in: garbled) == [.everyone], "\(garbled)")
        }
    }

    @Test("the streams of one user woken together share one read of the feed's end")
    func sharedHead() async throws {
        let reads = Mutex(0)
        let h = try await Harness(configuration: LiveUpdatesTests.configuration { $0.heartbeat = .seconds(3600) }) { sql in
            if sql.contains("FROM userArticleState WHERE userId = ?") && sql.contains("max(seq)") { reads.withLock { $0 += 1 } }
        }
        try await h.seedArticles(3)
        let (alice, _) = try await h.createUser("alice")
        let events = Counter()
        let streams = 20
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<streams {
                let stream = try h.service.openLiveStream(user: alice, cursor: nil)
                group.addTask {
                    try await stream.run(life: .seconds(60)) { event in
                        if case .changes = event { events.add() }
                        return true
                    }
                }
            }
            // Each stream's first look reads for itself and tells of the articles.
            try await LiveUpdatesTests.eventually { events.value == streams }
            let before = reads.withLock { $0 }
            #expect(before >= streams)

            _ = try await h.service.push(user: alice, request: PushRequest(deviceId: "phone", mutations: [mutation(1, "art-1", .read, .bool(true))]))
            try await LiveUpdatesTests.eventually { events.value == 2 * streams }
            #expect(reads.withLock { $0 } - before == 1, "\(reads.withLock { $0 } - before) reads for one wake-up of \(streams) streams")
            h.service.notifier.close()
        }
    }
}

/// A count shared by tasks.
final class Counter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add() { count.withLock { $0 += 1 } }
}
