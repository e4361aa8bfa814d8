// swift-tools-version:6.1
import PackageDescription

// One settings array for every target, as Hummingbird does.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "reader-sync",
    platforms: [.macOS(.v14), .iOS(.v17)],
    products: [
        .library(name: "ReaderSyncCore", targets: ["ReaderSyncCore"]),
        .library(name: "ReaderSyncClient", targets: ["ReaderSyncClient"]),
        .library(name: "ReaderSyncService", targets: ["ReaderSyncService"]),
        .library(name: "ReaderSyncSQLiteStore", targets: ["ReaderSyncSQLiteStore"]),
        .library(name: "ReaderSyncPostgres", targets: ["ReaderSyncPostgres"]),
        .library(name: "ReaderSyncServer", targets: ["ReaderSyncServer"]),
        .executable(name: "reader-sync", targets: ["reader-sync"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // zlib inflate of whole buffers, for the bench's floor of what the client's HTTP stack does.
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // The support console's server-rendered pages (Sources/ReaderSyncServer/Console).
        .package(url: "https://github.com/hummingbird-project/swift-mustache", exact: "2.1.1"),
        // `swift package generate-documentation --target ReaderSyncClient` (CI builds it, warnings are errors).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", exact: "1.5.0"),
    ],
    targets: [
        // Numbered SQL migrations (server and client store) and the OpenAPI document, embedded in code.
        .target(
            name: "ReaderSyncSchema",
            path: "Schema",
            resources: [
                .embedInCode("m0001_server_initial.sql"),
                .embedInCode("m0002_server_token_revocation.sql"),
                .embedInCode("m0003_server_conflict_rule_index.sql"),
                .embedInCode("m0004_server_reader_api.sql"),
                .embedInCode("m0005_server_retention.sql"),
                .embedInCode("m0006_server_sections.sql"),
                .embedInCode("m0007_server_history.sql"),
                .embedInCode("m0001_client_initial.sql"),
                .embedInCode("m0002_client_arrival.sql"),
                .embedInCode("m0003_client_sections.sql"),
                .embedInCode("m0004_client_search.sql"),
                .embedInCode("m0005_client_observation.sql"),
                .embedInCode("m0006_client_outbox_set_aside.sql"),
                .embedInCode("m0001_postgres_initial.sql"),
                .embedInCode("m0002_postgres_article_lz4.sql"),
                .embedInCode("m0003_postgres_reader_api.sql"),
                .embedInCode("m0004_postgres_retention.sql"),
                .embedInCode("m0005_postgres_sections.sql"),
                .embedInCode("m0006_postgres_history.sql"),
                .embedInCode("m0007_postgres_history_no_user_check.sql"),
                .embedInCode("openapi.json"),
            ],
            swiftSettings: swiftSettings
        ),
        // The system's libdeflate, for the server's gzip responses (not needed by the client SDK).
        .systemLibrary(
            name: "CLibdeflate",
            pkgConfig: "libdeflate",
            providers: [.apt(["libdeflate-dev"]), .brew(["libdeflate"])]
        ),
        // Model and wire types, HLC, merge rules: pure, no I/O.
        .target(
            name: "ReaderSyncCore",
            swiftSettings: swiftSettings
        ),
        // What the server and the client store share about SQLite: migrations, exact text.
        .target(
            name: "ReaderSyncSQLite",
            dependencies: [
                "ReaderSyncSchema",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // The sync service: auth decisions, cursors, page assembly, ingest parsing and classification,
        // and the `SyncStore` protocol every store conforms to. No HTTP, no database.
        .target(
            name: "ReaderSyncService",
            dependencies: [
                "ReaderSyncCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // The server store on one SQLite file: the embedded default, with online backup and restore.
        .target(
            name: "ReaderSyncSQLiteStore",
            dependencies: [
                "ReaderSyncCore",
                "ReaderSyncSchema",
                "ReaderSyncService",
                "ReaderSyncSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                // SQLite's C API, for the field history's inserts (SQLiteSyncStore+Sync.swift).
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // The HTTP layer (Hummingbird): routes, errors, compression, limits, metrics.
        .target(
            name: "ReaderSyncServer",
            dependencies: [
                "CLibdeflate",
                "ReaderSyncCore",
                "ReaderSyncSchema",
                "ReaderSyncService",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            swiftSettings: swiftSettings
        ),
        // The server store on PostgreSQL, for many servers on one database.
        .target(
            name: "ReaderSyncPostgres",
            dependencies: [
                "ReaderSyncCore",
                "ReaderSyncSchema",
                "ReaderSyncService",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The SDK an app embeds: must never depend on the server or Hummingbird.
        .target(
            name: "ReaderSyncClient",
            dependencies: [
                "ReaderSyncCore",
                "ReaderSyncSchema",
                "ReaderSyncSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPCompression", package: "swift-nio-extras"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ReaderSyncSimulator",
            dependencies: [
                "ReaderSyncCore",
                "ReaderSyncServer",
                "ReaderSyncService",
                "ReaderSyncSQLiteStore",
                "ReaderSyncPostgres",
                "ReaderSyncClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTPCompression", package: "swift-nio-extras"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "reader-sync",
            dependencies: [
                "ReaderSyncCore",
                "ReaderSyncServer",
                "ReaderSyncService",
                "ReaderSyncSQLiteStore",
                "ReaderSyncPostgres",
                "ReaderSyncSimulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        // Test helpers shared by the test targets.
        .target(
            name: "ReaderSyncTestSupport",
            path: "Tests/ReaderSyncTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReaderSyncCoreTests",
            dependencies: ["ReaderSyncCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReaderSyncClientTests",
            dependencies: [
                "ReaderSyncTestSupport",
                "ReaderSyncClient",
                "ReaderSyncSchema",
                "ReaderSyncSQLite",
                "ReaderSyncSimulator",
                "ReaderSyncCore",
                "ReaderSyncServer",
                "ReaderSyncService",
                "ReaderSyncSQLiteStore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            // Stores written by earlier releases (Fixtures/README.md).
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReaderSyncSimulatorTests",
            dependencies: [
                "ReaderSyncTestSupport",
                "ReaderSyncSimulator",
                "ReaderSyncClient",
                "ReaderSyncServer",
                "ReaderSyncService",
                "ReaderSyncSQLiteStore",
                "ReaderSyncCore",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReaderSyncServerTests",
            dependencies: [
                "ReaderSyncTestSupport",
                "ReaderSyncServer",
                "ReaderSyncClient",
                "ReaderSyncService",
                "ReaderSyncSQLiteStore",
                "ReaderSyncPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                "ReaderSyncCore",
                "ReaderSyncSchema",
                "ReaderSyncSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPCompression", package: "swift-nio-extras"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ReaderSyncCLITests",
            dependencies: [
                "ReaderSyncTestSupport",
                "reader-sync",
                "ReaderSyncCore",
                "ReaderSyncClient",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            exclude: ["Clients"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
