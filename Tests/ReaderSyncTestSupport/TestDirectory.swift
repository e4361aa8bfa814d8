import Foundation

/// Temporary directories for tests: all under one directory per test process, removed when the
/// process exits, so test runs do not fill the disk. Set `READER_SYNC_KEEP_TEST_DIRS=1` to keep them.
public enum TestDirectory {
    /// A new, empty directory whose name starts with `prefix`.
    public static func make(_ prefix: String) throws -> URL {
        let url = path(prefix)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A path for a new directory (not created), for code that creates its own.
    public static func path(_ prefix: String) -> URL {
        root.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    }

    static let root: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("reader-sync-test-run-\(ProcessInfo.processInfo.processIdentifier)")
        if ProcessInfo.processInfo.environment["READER_SYNC_KEEP_TEST_DIRS"] == nil {
            atexit { try? FileManager.default.removeItem(at: TestDirectory.root) }
        }
        return url
    }()
}
