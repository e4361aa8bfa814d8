-- ReaderSync client store (one file per device), migration 1. Never edit once shipped.

-- The device's sync bookkeeping: one row.
CREATE TABLE syncMeta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    deviceId TEXT NOT NULL,
    -- Where the next pull starts; NULL pulls from the beginning.
    cursor TEXT,
    -- The server database's epoch last seen in a response; sent with pushes so that a push never
    -- lands in a reset or restored database before the device has given back what it lost.
    epoch TEXT,
    -- The device's hybrid logical clock: the newest stamp issued or observed.
    hlcWall INTEGER NOT NULL DEFAULT 0,
    hlcCounter INTEGER NOT NULL DEFAULT 0,
    -- The last mutation id handed to the outbox, and the last one the server acknowledged.
    lastMutationId INTEGER NOT NULL DEFAULT 0,
    lastAckedMutationId INTEGER NOT NULL DEFAULT 0
);

-- Article content, apart from state (a state may arrive before its article, or outlive it).
CREATE TABLE article (
    id TEXT PRIMARY KEY NOT NULL,
    section TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    url TEXT NOT NULL,
    publishedAt TEXT NOT NULL,
    updatedAt TEXT NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX article_on_publishedAt ON article(publishedAt, id);
CREATE INDEX article_on_section_publishedAt ON article(section, publishedAt, id);

-- The user's state per article. read/bookmarked/progress are what the app shows: the server's
-- values (server*) overlaid by the device's pending changes. The writer columns say who wrote
-- the server's value of each field, so that after a server reset the device gives back its own.
CREATE TABLE articleState (
    articleId TEXT PRIMARY KEY NOT NULL,
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
) WITHOUT ROWID;
CREATE INDEX articleState_on_bookmarked ON articleState(bookmarked) WHERE bookmarked = 1;

-- Changes made on this device and not yet acknowledged by the server, in order.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    articleId TEXT NOT NULL,
    field TEXT NOT NULL CHECK (field IN ('read', 'bookmarked', 'progress')),
    value TEXT NOT NULL,
    hlcWall INTEGER NOT NULL,
    hlcCounter INTEGER NOT NULL,
    baseVersion INTEGER NOT NULL,
    -- 1 for a change given back (or still pending) when the server was found reset: ordered by HLC alone.
    restored INTEGER NOT NULL DEFAULT 0,
    createdAt TEXT NOT NULL
);
CREATE INDEX outbox_on_article_field ON outbox(articleId, field);
