import Logging
import ReaderSyncService
import ServiceLifecycle

/// Runs ``SyncService/compact(_:)`` at start and then every `interval` until graceful shutdown
/// (`serve --compact-interval`). A failed run is logged and tried again at the next interval; it
/// never stops the server (each step is a transaction of its own, so what it did stays done).
struct CompactionService: Service {
    let service: SyncService
    let policy: RetentionPolicy
    let interval: Duration
    let logger: Logger

    func run() async {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let report = try await service.compact(policy)
                    logger.info("compaction done", metadata: [
                        "expired": "\(report.expired)", "removedTombstones": "\(report.removedTombstones)",
                        "removedExpired": "\(report.removedExpired)", "removedStates": "\(report.removedStates)",
                        "removedConflicts": "\(report.removedConflicts)",
                        "removedHistory": "\(report.removedHistory)",
                    ])
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("compaction failed; trying again at the next interval", metadata: ["error": "\(error)"])
                }
                // Shutdown cancels the sleep: a clean end, not a failure of the service.
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }
}
