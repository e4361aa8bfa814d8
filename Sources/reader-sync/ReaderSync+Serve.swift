import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ReaderSyncPostgres
import ReaderSyncSQLiteStore
import ReaderSyncServer
import ReaderSyncService

extension ReaderSync {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the sync server on a SQLite file or a PostgreSQL database (created and migrated if needed).",
            discussion: """
                On the first start an admin token is generated and printed once; give your own with \
                --admin-token or READER_SYNC_ADMIN_TOKEN. Stops cleanly on SIGINT or SIGTERM. \
                Many servers may run on one PostgreSQL database (--db postgresql://…) behind a load \
                balancer; on a SQLite file, one server. The support console is served at /console/ \
                (log in with the admin token; docs/SUPPORT.md).
                """)

        @OptionGroup var database: DatabaseOptions

        @Option(name: .customLong("db-read"), help: ArgumentHelp(
            "PostgreSQL: a streaming replica (hot standby) of --db that pulls read from.",
            discussion: "Pushes, ingest and everything else go to --db. Default: $READER_SYNC_DB_READ, else pulls read from --db."))
        var readReplica: String?

        /// What `--db-read` or `READER_SYNC_DB_READ` names, if anything.
        var readReplicaGiven: String? {
            readReplica ?? ProcessInfo.processInfo.environment["READER_SYNC_DB_READ"].flatMap { $0.isEmpty ? nil : $0 }
        }

        @Option(help: "Address to listen on.")
        var host = "127.0.0.1"

        @Option(help: "Port to listen on (0 picks a free one).")
        var port = 8080

        @Option(name: .customLong("admin-token"), help: "Admin token to use (default: $READER_SYNC_ADMIN_TOKEN, or one generated on first start).")
        var adminToken: String?

        @Option(name: .customLong("metrics-token"), help: "Require this bearer token on GET /metrics.")
        var metricsToken: String?

        @Option(name: .customLong("max-body-bytes"), help: "Largest request body accepted.")
        var maxBodyBytes = 16 * 1024 * 1024

        @Option(name: .customLong("max-clock-skew"), help: "Seconds a device clock may run ahead before its HLC is clamped.")
        var maxClockSkew = 300

        @Flag(name: .customLong("no-field-history"), help: ArgumentHelp(
            "Do not record the field history (support then has no `history` or `why` for new changes).",
            discussion: "For measuring its cost (bench --no-history); the history is on by default."))
        var noFieldHistory = false

        @Option(name: .customLong("gzip-level"), help: "libdeflate level of gzip responses: 1 (fastest) … 12 (smallest).")
        var gzipLevel: Int32 = Gzip.defaultLevel

        @Option(name: .customLong("max-concurrent-requests"), help: "Requests handled at once; more get 503 with Retry-After.")
        var maxConcurrentRequests = 128

        @Option(name: .customLong("request-timeout"), help: "Seconds a request body may take to arrive (then 408).")
        var requestTimeout = 30.0

        @Option(name: .customLong("idle-timeout"), help: "Seconds before closing a connection with no request activity (also one trickling its headers).")
        var idleTimeout = 30.0

        @Option(name: .customLong("response-timeout"), help: "Seconds a client may take to read a whole response before the connection is closed.")
        var responseTimeout = 60.0

        @Option(name: .customLong("events-heartbeat"), help: "Seconds between heartbeats of a quiet live stream (GET /v1/sync/events).")
        var eventsHeartbeat = 20.0

        @Option(name: .customLong("event-stream-life"), help: "Seconds a live stream lives before the server ends it (±20 % jitter); the device reconnects.")
        var eventStreamLife = 300.0

        @Option(name: .customLong("max-event-streams"), help: "Live streams and long-polls this server holds at once; more get 503 with Retry-After.")
        var maxEventStreams = 10_000

        @Option(name: .customLong("max-event-streams-per-user"), help: "Live streams and long-polls one user holds at once on this server.")
        var maxEventStreamsPerUser = 32

        @Option(name: .customLong("log-level"), help: "Log level on stderr: trace, debug (adds an access log), info, notice, warning, error, critical.")
        var logLevel = "info"

        @Option(help: "SQLite: normal survives a process crash; full also a power loss (slower writes).")
        var durability: String = "normal"

        @OptionGroup var retention: RetentionOptions

        @Option(name: .customLong("compact-interval"),
                help: "Seconds between compactions, the first at start (0: never; run `reader-sync compact` from cron instead).")
        var compactInterval = 3600.0

        func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
            guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
            guard (0...31_536_000).contains(maxClockSkew) else { throw ValidationError("--max-clock-skew must be from 0 to 31536000 seconds (a year)") }
            guard Gzip.levels.contains(gzipLevel) else {
                throw ValidationError("--gzip-level must be from \(Gzip.levels.lowerBound) to \(Gzip.levels.upperBound)")
            }
            guard SQLiteSyncStore.Durability(rawValue: durability) != nil else {
                throw ValidationError("--durability must be normal or full")
            }
            guard maxConcurrentRequests >= 1 else { throw ValidationError("--max-concurrent-requests must be at least 1") }
            // Ranges, not just "more than 0": each becomes whole milliseconds, so infinity or 1e300
            // would trap converting and 0.0001 would be no time at all.
            for (name, value) in [("--request-timeout", requestTimeout), ("--idle-timeout", idleTimeout),
                                  ("--response-timeout", responseTimeout)] where !(0.001...86_400).contains(value) {
                throw ValidationError("\(name) must be from 0.001 to 86400 seconds (a day)")
            }
            guard (0.1...3600).contains(eventsHeartbeat) else { throw ValidationError("--events-heartbeat must be from 0.1 to 3600 seconds") }
            guard (1...86_400).contains(eventStreamLife) else { throw ValidationError("--event-stream-life must be from 1 to 86400 seconds") }
            guard maxEventStreams >= 1, maxEventStreamsPerUser >= 1 else {
                throw ValidationError("--max-event-streams and --max-event-streams-per-user must be at least 1")
            }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if let readReplicaGiven {
                guard case .postgres = try database.location else {
                    throw ValidationError("--db-read needs a PostgreSQL --db (a replica of it)")
                }
                guard PostgresDatabaseURL.isPostgresURL(readReplicaGiven) else {
                    throw ValidationError("--db-read must be a PostgreSQL URL, postgresql://…")
                }
                do { _ = try PostgresDatabaseURL(readReplicaGiven) } catch let error as PostgresURLError {
                    throw ValidationError("--db-read: \(error.description)")
                }
            }
            guard compactInterval == 0 || (1...31_536_000).contains(compactInterval) else {
                throw ValidationError("--compact-interval must be 0 or from 1 to 31536000 seconds (a year)")
            }
            if let adminToken, adminToken.count < 16 {
                throw ValidationError("--admin-token must be at least 16 characters")
            }
        }

        func run() async throws {
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            var logger = Logger(label: "reader-sync")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info

            // On SQLite the database's lock is held shared until the process ends (`restore` refuses
            // to replace a database a server runs on); on PostgreSQL the pool closes after HTTP drained.
            let durability = SQLiteSyncStore.Durability(rawValue: durability) ?? .normal
            let readURL = try readReplicaGiven.map { try PostgresDatabaseURL($0) }
            try await database.withStore(create: true, durability: durability, readReplica: readURL, logger: logger) { store in
                let givenToken = adminToken ?? ProcessInfo.processInfo.environment["READER_SYNC_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
                var newToken: String?
                if let givenToken {
                    try await store.setAdminTokenHash(Tokens.hash(givenToken))
                } else if try await store.adminTokenHash() == nil {
                    let token = Tokens.generate()
                    try await store.setAdminTokenHash(Tokens.hash(token))
                    newToken = token
                }

                var syncConfiguration = SyncConfiguration()
                syncConfiguration.maxBodyBytes = maxBodyBytes
                syncConfiguration.maxClockSkewMillis = Int64(maxClockSkew) * 1000
                syncConfiguration.recordsHistory = !noFieldHistory
                syncConfiguration.live.heartbeat = .milliseconds(Int64(eventsHeartbeat * 1000))
                syncConfiguration.live.streamLife = .milliseconds(Int64(eventStreamLife * 1000))
                syncConfiguration.live.maxStreams = maxEventStreams
                syncConfiguration.live.maxStreamsPerUser = maxEventStreamsPerUser
                let service = try await SyncService(store: store, configuration: syncConfiguration)
                let host = self.host
                let shownToken = newToken
                let shown = database.shown
                var serverConfiguration = ServerConfiguration(host: host, port: port, metricsToken: metricsToken, gzipLevel: gzipLevel)
                serverConfiguration.maxConcurrentRequests = maxConcurrentRequests
                serverConfiguration.requestTimeout = .milliseconds(Int64(requestTimeout * 1000))
                serverConfiguration.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
                serverConfiguration.responseTimeout = .milliseconds(Int64(responseTimeout * 1000))
                serverConfiguration.retention = retention.policy
                serverConfiguration.compactionInterval = compactInterval > 0 ? .milliseconds(Int64(compactInterval * 1000)) : nil
                let app = buildApplication(
                    service: service,
                    configuration: serverConfiguration,
                    logger: logger,
                    onServerRunning: { channel in
                        let port = channel.localAddress?.port ?? 0
                        say("reader-sync serving protocol v1 at http://\(host):\(port)")
                        say("database: \(shown)")
                        say("support console: http://\(host):\(port)/console/")
                        if let readURL { say("pulls read from: \(readURL)") }
                        if let shownToken {
                            say("admin token (shown only this once; keep it safe): \(shownToken)")
                        }
                    })
                try await app.runService()
            }
            say("reader-sync stopped")
        }
    }
}
