import Testing

/// Every suite of this target, one test at a time: each runs other programs (reader-sync,
/// psql, newsboat…) and waits for them, some with blocking calls. Swift's cooperative pool has
/// one thread per core (two here); two such tests at once held both, and the in-process servers
/// of the other targets' tests (live streams, timeouts) stalled until their clients gave up.
/// Serialized, they hold one thread at most.
@Suite("Programs run as processes", .serialized)
enum ProcessTests {}
