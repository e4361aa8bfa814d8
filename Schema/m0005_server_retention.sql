-- ReaderSync server store, migration 5: bounded growth (docs/PROTOCOL.md, "Retention and
-- compaction"). Never edit once shipped.

-- An article older than the retention leaves the sync set: `expiredAt` is set and it takes a new
-- sequence value, so devices pull the expiry ("may drop", not "retracted"). Its content stays
-- while someone has it bookmarked (pinned) and until compaction removes the row.
ALTER TABLE article ADD COLUMN expiredAt TEXT;
-- Expiry finds live articles by publication time, and a device's first sync reads them newest
-- first; compaction finds tombstones and expired rows by feed position. Partial indexes: only
-- the rows each reads.
CREATE INDEX article_on_published ON article(publishedAt, id) WHERE deletedAt IS NULL AND expiredAt IS NULL;
CREATE INDEX article_on_gone ON article(seq) WHERE deletedAt IS NOT NULL OR expiredAt IS NOT NULL;
-- An article's states: whether anyone has it bookmarked, and removing them with the article (the
-- foreign key check of every deleted article row reads this index too).
CREATE INDEX userArticleState_on_article ON userArticleState(articleId, bookmarkedValue);

-- The tombstone horizon: the feed position of the newest tombstone or expiry compaction removed.
-- A cursor before it may have missed one, and gets `410 cursor_expired`. `0`: nothing removed yet.
INSERT INTO meta (key, value) VALUES ('horizon', '0');

-- Where the change sequence stood at each compaction. A tombstone or expired article is removed
-- (with its states) only once it and every state of it took their sequence values before a
-- checkpoint at least --tombstone-days old: a device that synced since then has passed them all.
CREATE TABLE compactionCheckpoint (
    takenAt TEXT NOT NULL,
    seq INTEGER NOT NULL
);
