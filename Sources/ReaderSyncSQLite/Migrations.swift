import GRDB
import ReaderSyncSchema

extension Array where Element == Migration {
    /// A GRDB migrator running these migrations in order, each registered under its file name.
    package var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in self {
            migrator.registerMigration(migration.name) { db in try db.execute(sql: migration.sql) }
        }
        return migrator
    }
}
