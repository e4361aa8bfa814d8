import Foundation
import Logging
import PostgresNIO
import ReaderSyncCore
import ReaderSyncService
import Synchronization

extension PostgresSyncStore {
    /// The `LISTEN`/`NOTIFY` channel servers on one database announce their commits on.
    static let changeChannel = "readersync_changes"

    /// Reads the end of `userId`'s feed below the horizon (``horizonCTE``), in one statement, on
    /// the pool pulls read from; `heldBack` when rows are committed at or above the horizon.
    package func feedHead(userId: Int64) async throws -> FeedHead {
        let query: PostgresQuery
        switch feedOrder {
        case .transactionThenSequence:
            // Backward scans of article_on_feed and user_article_state_on_feed; rows at or above
            // the horizon that this snapshot sees are committed, and wait for an older transaction.
            query = """
                \(unescaped: Self.horizonCTE)
                SELECT a.xid::text, a.seq, s.xid::text, s.seq,
                       EXISTS (SELECT 1 FROM article WHERE xid >= h.horizon)
                           OR EXISTS (SELECT 1 FROM user_article_state WHERE user_id = \(userId) AND xid >= h.horizon),
                       pg_is_in_recovery()
                FROM h
                LEFT JOIN LATERAL (SELECT xid, seq FROM article WHERE xid < h.horizon
                                   ORDER BY xid DESC, seq DESC LIMIT 1) a ON true
                LEFT JOIN LATERAL (SELECT xid, seq FROM user_article_state WHERE user_id = \(userId) AND xid < h.horizon
                                   ORDER BY xid DESC, seq DESC LIMIT 1) s ON true
                """
        case .sequenceAloneForTesting:
            query = """
                SELECT '0', (SELECT max(seq) FROM article), '0',
                       (SELECT max(seq) FROM user_article_state WHERE user_id = \(userId)), false, pg_is_in_recovery()
                """
        }
        var head = FeedHead(position: .start, mayLag: readURL != nil)
        for try await row in try await readClient.query(query, logger: logger) {
            let cells = row.makeRandomAccess()
            try checkReadReplica(inRecovery: try cells[5].decode(Bool.self))
            for offset in [0, 2] {
                guard let transaction = try cells[offset].decode(String?.self),
                      let seq = try cells[offset + 1].decode(Int64?.self) else { continue }
                head.position = max(head.position, try Self.position(transaction: transaction, seq: seq))
            }
            head.heldBack = try cells[4].decode(Bool.self)
        }
        return head
    }

    /// Queues `scope` for the next `NOTIFY readersync_changes`, which ``listenForChanges(_:)``
    /// sends (or ``flushAnnouncements()``): the commit's caller never waits for it.
    package func announce(_ scope: ChangeScope) {
        announcer.add(scope)
    }

    package func flushAnnouncements() async {
        while let payload = announcer.nextPayload() {
            guard await notify(payload) else { return }
        }
    }

    /// Sends one payload on ``changeChannel``, or, when that fails, logs it and queues word to
    /// every stream instead (what the payload named is lost with it).
    ///
    /// - Returns: whether it was sent.
    private func notify(_ payload: String) async -> Bool {
        do {
            let rows = try await client.query("SELECT pg_notify(\(Self.changeChannel), \(payload))", logger: logger)
            for try await _ in rows {}
            return true
        } catch {
            announcer.add(.everyone)
            if !Task.isCancelled {
                logger.warning("could not announce a change to other servers; will try again", metadata: ["error": "\(String(reflecting: error))"])
            }
            return false
        }
    }

    /// Until cancelled: sends this server's announcements, batched (one `NOTIFY` carries what
    /// queued while the one before was sent), and listens on ``changeChannel`` on a connection of
    /// its own, outside the pool. The listening connection is pinged every 30 s (a half-open
    /// connection otherwise never fails); after losing it, it reconnects (0.1 s doubling to 5 s,
    /// with jitter) and then wakes every stream, since notifications sent meanwhile are lost.
    package func listenForChanges(_ wake: @escaping @Sendable (ChangeScope) -> Void) async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.sendAnnouncements() }
            group.addTask { await self.listen(wake) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Sends what is queued, as it queues; after a failure, tries again after 0.1 s doubling to
    /// 5 s. Stops at cancellation, leaving the queue to ``flushAnnouncements()`` (the CLI's and
    /// `serve`'s last call before the pool closes).
    private func sendAnnouncements() async {
        var retry: Duration = .milliseconds(100)
        while !Task.isCancelled {
            _ = await announcer.queued.wait(until: .now + .seconds(3600))
            if Task.isCancelled { return }
            while let payload = announcer.nextPayload() {
                if await notify(payload) {
                    retry = .milliseconds(100)
                    continue
                }
                try? await Task.sleep(for: retry)
                retry = min(retry * 2, .seconds(5))
                if Task.isCancelled { return }
            }
        }
    }

    private func listen(_ wake: @escaping @Sendable (ChangeScope) -> Void) async {
        var backoff: Duration = .milliseconds(100)
        var connectionId = 0
        let clock = ContinuousClock()
        while !Task.isCancelled {
            connectionId += 1
            let connected = clock.now
            do {
                let configuration = try url.connectionConfiguration(applicationName: options.applicationName + " listener")
                let connection = try await PostgresConnection.connect(configuration: configuration, id: connectionId, logger: logger)
                do {
                    try await connection.listen(on: Self.changeChannel) { notifications in
                        // Listening from here on: whatever was announced before may have been missed.
                        wake(.everyone)
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for try await notification in notifications {
                                    guard let scopes = self.announcer.scopes(in: notification.payload) else { continue }
                                    for scope in scopes { wake(scope) }
                                }
                            }
                            group.addTask { try await Self.ping(connection, every: .seconds(30), timeout: .seconds(10)) }
                            // Either ends only by an error (or cancellation): the connection is gone.
                            try await group.next()
                            group.cancelAll()
                        }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { return }
                // Back to a short wait only after a connection that held: one that a proxy drops at
                // once would otherwise be made again ten times a second, waking every stream each time.
                if clock.now - connected > .seconds(60) { backoff = .milliseconds(100) }
                logger.warning("lost the connection that hears other servers' changes; reconnecting",
                               metadata: ["error": "\(String(reflecting: error))", "retryIn": "\(backoff)"])
            }
            let jittered = backoff * Double.random(in: 0.5...1.0)
            try? await Task.sleep(for: jittered)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    /// Runs `SELECT 1` on `connection` every `interval`, throwing when one takes over `timeout`.
    private static func ping(_ connection: PostgresConnection, every interval: Duration, timeout: Duration) async throws {
        while true {
            try await Task.sleep(for: interval)
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for try await _ in try await connection.query("SELECT 1", logger: connection.logger) {}
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    // A query waiting on a half-open connection ignores cancellation: closing it fails the query.
                    try? await connection.close()
                    return false
                }
                defer { group.cancelAll() }
                guard try await group.next() == true else {
                    throw StoreError("the listening connection did not answer a ping within \(timeout)")
                }
            }
        }
    }

    /// Throws when the read replica answered that it is not in recovery: promoted, or never a
    /// standby, so not the feed the pushes write to.
    func checkReadReplica(inRecovery: Bool) throws {
        if let readURL, !inRecovery {
            throw StoreError("the read replica \(readURL) is no longer a standby (promoted?); pulls stop until --db-read is fixed")
        }
    }
}

/// Queues a server's announcements for ``PostgresSyncStore/listenForChanges(_:)`` to send:
/// what queues while one `NOTIFY` is being sent goes in the next, so a burst of commits is a few
/// notifications, and no commit waits for one.
///
/// Payload: `<server id> *` (every stream) or `<server id> u <user id>,<user id>…`; a server
/// ignores its own, having woken its streams already. Over ``maxPayloadBytes`` (PostgreSQL's
/// limit is 8,000 bytes) it is sent as `*`.
final class ChangeAnnouncer: Sendable {
    /// This server's id in payloads: random, per store.
    let serverId: String
    static let maxPayloadBytes = 7_000
    /// Set when something is queued.
    let queued = WakeSignal()
    private let state = Mutex(State())

    private struct State {
        var everyone = false
        var users: Set<Int64> = []
    }

    init(serverId: String = Hex.random(bytes: 8)) {
        self.serverId = serverId
    }

    /// Queues `scope` for the next payload.
    func add(_ scope: ChangeScope) {
        state.withLock { state in
            switch scope {
            case .everyone: state.everyone = true
            case .user(let id): state.users.insert(id)
            }
        }
        queued.wake()
    }

    /// The payload of what is queued, clearing it; `nil` when nothing is.
    func nextPayload() -> String? {
        state.withLock { state in
            defer {
                state.everyone = false
                state.users.removeAll(keepingCapacity: true)
            }
            if state.everyone { return "\(serverId) *" }
            if state.users.isEmpty { return nil }
            let payload = "\(serverId) u " + state.users.sorted().map(String.init).joined(separator: ",")
            return payload.utf8.count <= Self.maxPayloadBytes ? payload : "\(serverId) *"
        }
    }

    /// The scopes another server announced, or `nil` for this server's own. A payload that
    /// does not parse wakes every stream, to be safe.
    func scopes(in payload: String) -> [ChangeScope]? {
        let parts = payload.split(separator: " ", maxSplits: 2)
        if parts.first.map(String.init) == serverId { return nil }
        guard parts.count >= 2 else { return [.everyone] }
        if parts[1] == "*" { return [.everyone] }
        guard parts[1] == "u", parts.count == 3 else { return [.everyone] }
        var scopes: [ChangeScope] = []
        for id in parts[2].split(separator: ",") {
            guard let id = Int64(id) else { return [.everyone] }
            scopes.append(.user(id))
        }
        return scopes
    }
}
