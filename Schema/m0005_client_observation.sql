-- ReaderSync client store, migration 5: observed queries (`StoreObservation`). Never edit once shipped.
-- GRDB's observations learn of changes from SQLite's update hook, which WITHOUT ROWID tables do
-- not call: a list observing the reader's states never heard of a markRead. articleState becomes
-- a rowid table (the same columns, `articleId` unique), copied over once.
CREATE TABLE articleState_rowid (
    articleId TEXT NOT NULL UNIQUE,
    read INTEGER NOT NULL DEFAULT 0,
    bookmarked INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    serverRead INTEGER NOT NULL DEFAULT 0,
    serverBookmarked INTEGER NOT NULL DEFAULT 0,
    serverProgress REAL NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    readWriter TEXT,
    readHlcWall INTEGER,
    readHlcCounter INTEGER,
    bookmarkedWriter TEXT,
    bookmarkedHlcWall INTEGER,
    bookmarkedHlcCounter INTEGER,
    progressWriter TEXT,
    progressHlcWall INTEGER,
    progressHlcCounter INTEGER
);
INSERT INTO articleState_rowid SELECT articleId, read, bookmarked, progress, serverRead, serverBookmarked, serverProgress, version,
    readWriter, readHlcWall, readHlcCounter, bookmarkedWriter, bookmarkedHlcWall, bookmarkedHlcCounter,
    progressWriter, progressHlcWall, progressHlcCounter FROM articleState;
DROP TABLE articleState;
ALTER TABLE articleState_rowid RENAME TO articleState;
CREATE INDEX articleState_on_bookmarked ON articleState(bookmarked) WHERE bookmarked = 1;
