-- ReaderSync server store, migration 1. Never edit once shipped: add m0002_… instead.

-- Database-wide facts: the epoch (new on every reset or restore), the cursor signing secret,
-- the admin token's hash.
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- The one monotonic change sequence shared by articles and user states. Every change takes
-- the next value in the transaction that makes it.
CREATE TABLE changeSequence (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO changeSequence (id, value) VALUES (1, 0);

-- Articles, live or tombstoned (deletedAt set, content purged). `seq` is the sequence value of
-- the latest change, so a pull is a range scan of article_on_seq.
CREATE TABLE article (
    id TEXT PRIMARY KEY NOT NULL,
    section TEXT,
    title TEXT,
    summary TEXT,
    body TEXT,
    author TEXT,
    url TEXT,
    publishedAt TEXT,
    updatedAt TEXT,
    version INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    deletedAt TEXT,
    CHECK ((deletedAt IS NULL) = (title IS NOT NULL))
);
CREATE UNIQUE INDEX article_on_seq ON article(seq);

CREATE TABLE user (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    tokenHash BLOB NOT NULL UNIQUE,
    createdAt TEXT NOT NULL
);

-- A device is bound to the first user that pushes with it. lastMutationId is written in the
-- same transaction as the mutations' effects, so a retried push is recognised as duplicate.
CREATE TABLE device (
    id TEXT PRIMARY KEY NOT NULL,
    userId INTEGER NOT NULL REFERENCES user(id),
    lastMutationId INTEGER NOT NULL,
    firstSeenAt TEXT NOT NULL,
    lastSeenAt TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX device_on_user ON device(userId);

-- A user's state per article. Each field keeps the write that set it (HLC, device, mutation)
-- and the row version it was set at; `version` grows on every applied write.
CREATE TABLE userArticleState (
    userId INTEGER NOT NULL REFERENCES user(id),
    articleId TEXT NOT NULL REFERENCES article(id),
    version INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    readValue INTEGER,
    readHlcWall INTEGER,
    readHlcCounter INTEGER,
    readDeviceId TEXT,
    readMutationId INTEGER,
    readVersion INTEGER,
    bookmarkedValue INTEGER,
    bookmarkedHlcWall INTEGER,
    bookmarkedHlcCounter INTEGER,
    bookmarkedDeviceId TEXT,
    bookmarkedMutationId INTEGER,
    bookmarkedVersion INTEGER,
    progressValue REAL,
    progressHlcWall INTEGER,
    progressHlcCounter INTEGER,
    progressDeviceId TEXT,
    progressMutationId INTEGER,
    progressVersion INTEGER,
    PRIMARY KEY (userId, articleId)
) WITHOUT ROWID;
-- A user's pull scans only that user's changes, in sequence order.
CREATE UNIQUE INDEX userArticleState_on_user_seq ON userArticleState(userId, seq);

-- The conflict log. Values are stored as JSON scalars ("true", "0.42").
CREATE TABLE conflict (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    userId INTEGER NOT NULL REFERENCES user(id),
    articleId TEXT NOT NULL,
    field TEXT NOT NULL,
    rule TEXT NOT NULL,
    winnerValue TEXT NOT NULL,
    winnerHlcWall INTEGER NOT NULL,
    winnerHlcCounter INTEGER NOT NULL,
    winnerDeviceId TEXT NOT NULL,
    winnerMutationId INTEGER NOT NULL,
    loserValue TEXT,
    loserHlcWall INTEGER,
    loserHlcCounter INTEGER,
    loserDeviceId TEXT,
    loserMutationId INTEGER,
    baseVersion INTEGER NOT NULL,
    detectedAt TEXT NOT NULL
);
CREATE INDEX conflict_on_user ON conflict(userId, id);
CREATE INDEX conflict_on_article ON conflict(articleId, id);
