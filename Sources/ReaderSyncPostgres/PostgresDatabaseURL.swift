import Foundation
import Logging
import PostgresNIO

/// A PostgreSQL connection URL as libpq reads it, reduced to what ReaderSync needs:
/// `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?host=/socket/dir&port=P&sslmode=M]`
/// (also `postgres://`).
///
/// - `host` in the query names a directory holding the server's Unix socket
///   (`<dir>/.s.PGSQL.<port>`), as in libpq; it wins over the URL's host.
/// - `sslmode`: `disable`, `prefer` (libpq's default: TLS when the server offers it) or `require`.
///   A Unix socket never uses TLS.
/// - User, password and database are percent-decoded.
///
/// Source: PostgreSQL 15 documentation, 34.1.1 "Connection Strings".
package struct PostgresDatabaseURL: Sendable, Hashable, CustomStringConvertible {
    package enum TLSMode: String, Sendable, Hashable {
        case disable, prefer, require
    }

    package var user: String
    package var password: String?
    package var host: String
    package var port: Int
    /// The directory of the server's Unix socket, when connecting through one.
    package var socketDirectory: String?
    package var database: String
    package var tls: TLSMode

    /// Whether `text` names a PostgreSQL database rather than a SQLite file.
    package static func isPostgresURL(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }

    /// - Throws: ``PostgresURLError`` saying what is wrong (never repeating the password).
    package init(_ text: String) throws {
        guard Self.isPostgresURL(text), let components = URLComponents(string: text) else {
            throw PostgresURLError("a PostgreSQL URL looks like postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
        }
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }), !user.isEmpty else {
            throw PostgresURLError("the PostgreSQL URL names no user (postgresql://USER@HOST/DATABASE)")
        }
        self.user = user
        password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let path = components.percentEncodedPath.dropFirst()
        guard !path.isEmpty, !path.contains("/"), let database = String(path).removingPercentEncoding else {
            throw PostgresURLError("the PostgreSQL URL names no database (postgresql://USER@HOST/DATABASE)")
        }
        self.database = database
        var port = components.port ?? 5432
        var socketDirectory: String?
        var tls = TLSMode.prefer
        for item in components.queryItems ?? [] {
            switch item.name {
            case "host":
                guard let value = item.value, value.hasPrefix("/") else {
                    throw PostgresURLError("?host= must be the absolute path of the directory holding the server's Unix socket")
                }
                socketDirectory = value
            case "port":
                guard let value = item.value.flatMap(Int.init), (1...65535).contains(value) else {
                    throw PostgresURLError("?port= must be a port number from 1 to 65535")
                }
                port = value
            case "sslmode":
                guard let value = item.value.flatMap(TLSMode.init(rawValue:)) else {
                    throw PostgresURLError("?sslmode= must be disable, prefer or require")
                }
                tls = value
            default:
                throw PostgresURLError("the PostgreSQL URL parameter '\(item.name)' is not supported (host, port, sslmode are)")
            }
        }
        let host = components.host ?? ""
        guard !host.isEmpty || socketDirectory != nil else {
            throw PostgresURLError("the PostgreSQL URL names no host: give one (@HOST) or a socket directory (?host=/path)")
        }
        self.host = host
        self.port = port
        self.socketDirectory = socketDirectory
        self.tls = tls
    }

    /// The URL with the password hidden, for logs and error messages.
    package var description: String {
        let credentials = password == nil ? user : "\(user):***"
        if let socketDirectory { return "postgresql://\(credentials)@/\(database)?host=\(socketDirectory)&port=\(port)" }
        return "postgresql://\(credentials)@\(host):\(port)/\(database)"
    }

    /// The client configuration: the socket or host, credentials and TLS, with `options` applied.
    package func clientConfiguration(_ options: PostgresStoreOptions) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user,
                                  password: password, database: database)
        } else {
            let tlsSetting: PostgresClient.Configuration.TLS = switch tls {
            case .disable: .disable
            case .prefer: .prefer(.makeClientConfiguration())
            case .require: .require(.makeClientConfiguration())
            }
            configuration = .init(host: host, port: port, username: user, password: password, database: database, tls: tlsSetting)
        }
        configuration.options.maximumConnections = options.poolSize
        configuration.options.minimumConnections = 0
        // Sent in the startup packet, so every pooled connection has them from its first statement.
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "\(options.statementTimeoutMillis)"),
            ("idle_in_transaction_session_timeout", "\(options.idleInTransactionTimeoutMillis)"),
            ("application_name", options.applicationName),
        ]
        return configuration
    }
}

extension PostgresDatabaseURL {
    /// The configuration of one connection made directly, outside the pool: the socket or host,
    /// credentials and TLS, a 10 s connect timeout, and `applicationName` when given.
    ///
    /// - Throws: when the TLS context cannot be made.
    package func connectionConfiguration(applicationName: String? = nil) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketDirectory {
            configuration = .init(unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        } else {
            let tlsSetting: PostgresConnection.Configuration.TLS = switch tls {
            case .disable: .disable
            case .prefer: .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            configuration = .init(host: host, port: port, username: user, password: password, database: database, tls: tlsSetting)
        }
        configuration.options.connectTimeout = .seconds(10)
        if let applicationName {
            configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        }
        return configuration
    }

    /// Why a connection to this database fails, from one connection made directly (the pool
    /// answers a failed connect only with "circuit breaker tripped"); `nil` when it succeeds.
    package func connectionFailure(logger: Logger) async -> (any Error)? {
        do {
            let connection = try await PostgresConnection.connect(configuration: try connectionConfiguration(), id: 0, logger: logger)
            try? await connection.close()
            return nil
        } catch {
            return error
        }
    }
}

/// A `--db` PostgreSQL URL that cannot be used; the message says why.
package struct PostgresURLError: Error, CustomStringConvertible, Sendable {
    package var description: String
    package init(_ description: String) { self.description = description }
}

/// How the PostgreSQL store uses its connections.
package struct PostgresStoreOptions: Sendable, Hashable {
    /// Most connections one process opens. Default 10: on this project's 2-core machine more
    /// connections only queue inside PostgreSQL (docs/PERFORMANCE.md).
    package var poolSize = 10
    /// `statement_timeout`, in milliseconds: a statement running longer is cancelled. Default 30 s.
    package var statementTimeoutMillis = 30_000
    /// `idle_in_transaction_session_timeout`, in milliseconds: a session idle inside an open
    /// transaction this long is ended, so a stuck client cannot hold back every pull's horizon.
    /// Default 60 s.
    package var idleInTransactionTimeoutMillis = 60_000
    /// `application_name`, shown in `pg_stat_activity`.
    package var applicationName = "reader-sync"
    /// Times a transaction that failed with a serialization failure or deadlock (SQLSTATE
    /// 40001, 40P01) or lost a race on a unique key (23505) is run again. Default 8.
    package var maxTransactionAttempts = 8

    package init() {}
}

extension PostgresDatabaseURL {
    /// The same server and credentials, another database.
    package func database(_ name: String) -> PostgresDatabaseURL {
        var url = self
        url.database = name
        return url
    }

    /// The URL as `--db` takes it, password included (for a child process this program starts).
    package var connectionString: String {
        func escaped(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed.subtracting([":", "@"])) ?? text }
        let credentials = escaped(user) + (password.map { ":" + escaped($0) } ?? "")
        let databaseName = database.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? database
        var query = ["sslmode=\(tls.rawValue)"]
        if let socketDirectory {
            query += ["host=\(socketDirectory.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(["&", "="])) ?? socketDirectory)",
                      "port=\(port)"]
            return "postgresql://\(credentials)@/\(databaseName)?" + query.joined(separator: "&")
        }
        return "postgresql://\(credentials)@\(host):\(port)/\(databaseName)?" + query.joined(separator: "&")
    }
}

extension PostgresSyncStore {
    /// Creates an empty database `name` on the server `url` points at (connecting to `url`'s
    /// database to do it; needs the `CREATEDB` privilege) and returns its URL: a scratch
    /// database for one benchmark run, never one that holds anything.
    ///
    /// - Throws: `PSQLError` (e.g. the database exists, or no privilege).
    package static func createDatabase(named name: String, on url: PostgresDatabaseURL, logger: Logger) async throws -> PostgresDatabaseURL {
        try await administer(url, logger: logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(name)\" TEMPLATE template0 ENCODING 'UTF8'"), logger: logger)
        }
        return url.database(name)
    }

    /// Drops database `name` on the server `url` points at, closing its sessions (PostgreSQL 13+).
    package static func dropDatabase(named name: String, on url: PostgresDatabaseURL, logger: Logger) async throws {
        try await administer(url, logger: logger) { client in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)"), logger: logger)
        }
    }

    private static func administer(_ url: PostgresDatabaseURL, logger: Logger, _ body: (PostgresClient) async throws -> Void) async throws {
        var options = PostgresStoreOptions()
        options.poolSize = 1
        let client = PostgresClient(configuration: url.clientConfiguration(options), backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await body(client)
        }
    }
}
