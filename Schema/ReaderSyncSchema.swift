/// A numbered SQL migration embedded in the binary.
package struct Migration: Sendable {
    /// The file name without extension, e.g. `m0001_server_initial`: the identifier GRDB records.
    package var name: String
    package var sql: String
}

/// The SQL files of `Schema/`, embedded with `.embedInCode` so no resource bundle ships beside the binary.
package enum ReaderSyncSchema {
    /// The server store's migrations, in the order they run. Register new files here and in Package.swift.
    package static let serverMigrations: [Migration] = [
        Migration(name: "m0001_server_initial", sql: text(PackageResources.m0001_server_initial_sql)),
        Migration(name: "m0002_server_token_revocation", sql: text(PackageResources.m0002_server_token_revocation_sql)),
        Migration(name: "m0003_server_conflict_rule_index", sql: text(PackageResources.m0003_server_conflict_rule_index_sql)),
        Migration(name: "m0004_server_reader_api", sql: text(PackageResources.m0004_server_reader_api_sql)),
        Migration(name: "m0005_server_retention", sql: text(PackageResources.m0005_server_retention_sql)),
        Migration(name: "m0006_server_sections", sql: text(PackageResources.m0006_server_sections_sql)),
        Migration(name: "m0007_server_history", sql: text(PackageResources.m0007_server_history_sql)),
    ]

    /// The PostgreSQL server store's migrations, in the order they run (see `Schema/m0001_postgres_initial.sql`).
    package static let postgresMigrations: [Migration] = [
        Migration(name: "m0001_postgres_initial", sql: text(PackageResources.m0001_postgres_initial_sql)),
        Migration(name: "m0002_postgres_article_lz4", sql: text(PackageResources.m0002_postgres_article_lz4_sql)),
        Migration(name: "m0003_postgres_reader_api", sql: text(PackageResources.m0003_postgres_reader_api_sql)),
        Migration(name: "m0004_postgres_retention", sql: text(PackageResources.m0004_postgres_retention_sql)),
        Migration(name: "m0005_postgres_sections", sql: text(PackageResources.m0005_postgres_sections_sql)),
        Migration(name: "m0006_postgres_history", sql: text(PackageResources.m0006_postgres_history_sql)),
        Migration(name: "m0007_postgres_history_no_user_check", sql: text(PackageResources.m0007_postgres_history_no_user_check_sql)),
    ]

    /// The client store's migrations, in the order they run.
    package static let clientMigrations: [Migration] = [
        Migration(name: "m0001_client_initial", sql: text(PackageResources.m0001_client_initial_sql)),
        Migration(name: "m0002_client_arrival", sql: text(PackageResources.m0002_client_arrival_sql)),
        Migration(name: "m0003_client_sections", sql: text(PackageResources.m0003_client_sections_sql)),
        Migration(name: "m0004_client_search", sql: text(PackageResources.m0004_client_search_sql)),
        Migration(name: "m0005_client_observation", sql: text(PackageResources.m0005_client_observation_sql)),
        Migration(name: "m0006_client_outbox_set_aside", sql: text(PackageResources.m0006_client_outbox_set_aside_sql)),
    ]

    /// The protocol's OpenAPI 3.1 document.
    package static var openAPIDocument: String { text(PackageResources.openapi_json) }

    private static func text(_ bytes: [UInt8]) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
