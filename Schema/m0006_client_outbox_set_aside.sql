-- ReaderSync client store, migration 6: pending changes a sync could not read are set aside,
-- not sent and not lost (docs/CLIENT.md, "Errors"). Never edit once shipped.
-- One such row (written by hand, or by a newer version of the app before a downgrade) used to
-- stop every sync before anything was sent, so every later change of the reader stayed on the
-- device. The row moves here, its columns copied as they were: no declared types, so SQLite
-- converts nothing.
CREATE TABLE outboxSetAside (
    id INTEGER PRIMARY KEY,
    articleId,
    field,
    value,
    hlcWall,
    hlcCounter,
    baseVersion,
    restored,
    createdAt,
    -- Why it could not be read, for support.
    reason TEXT NOT NULL,
    -- When the sync set it aside: milliseconds since 1970 on the device's clock.
    setAsideAtMillis INTEGER NOT NULL
);
