-- ReaderSync server store, migration 7: the field history, which answers "why did my bookmark
-- vanish?" (docs/SUPPORT.md). Never edit once shipped.
-- One row per decision a push made about one field of one reader's article: applied, lost to a
-- concurrent write, or refused; written in the push's transaction. Duplicates and agreeing writes
-- older than the value are not recorded (they change nothing). Compaction removes rows older
-- than --history-days (default 30), oldest first.
CREATE TABLE stateHistory (
    id INTEGER PRIMARY KEY,
    userId INTEGER NOT NULL REFERENCES user(id),
    articleId TEXT NOT NULL,
    field TEXT NOT NULL,
    -- The write, its HLC as merged (the server's time when clamped).
    value TEXT NOT NULL,
    hlcWall INTEGER NOT NULL,
    hlcCounter INTEGER NOT NULL,
    deviceId TEXT NOT NULL,
    mutationId INTEGER NOT NULL,
    -- The HLC the device stamped, when it was clamped for clock skew.
    clampedWall INTEGER,
    clampedCounter INTEGER,
    baseVersion INTEGER NOT NULL,
    restored INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    rule TEXT NOT NULL,
    reason TEXT,
    -- The field's value the write met (replaced, beat or lost to).
    againstValue TEXT,
    againstHlcWall INTEGER,
    againstHlcCounter INTEGER,
    againstDeviceId TEXT,
    againstMutationId INTEGER,
    version INTEGER NOT NULL,
    articleDeleted INTEGER NOT NULL,
    conflictId INTEGER,
    receivedAt TEXT NOT NULL
);
-- One article's or one field's timeline as a range. A user's whole history is read through it too
-- (and sorted): a second index on (userId, id) cost S3 more than support's rare full listing gains.
CREATE INDEX stateHistory_on_user_article ON stateHistory(userId, articleId, field, id);
