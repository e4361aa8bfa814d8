-- ReaderSync server store, migration 5: bounded growth (docs/PROTOCOL.md, "Retention and
-- compaction"). Never edit once shipped.

-- An article older than the retention leaves the sync set: `expiredAt` is set and it takes a new
-- sequence value, so devices pull the expiry ("may drop", not "retracted"). Its content stays
-- while someone has it bookmarked (pinned) and until compaction removes the row.
ALTER TABLE article ADD COLUMN expiredAt TEXT;
-- Expiry finds live articles by publication time; compaction finds tombstones and expired rows
-- by when they were made. Partial indexes: only the rows each step looks at.
CREATE INDEX article_on_published ON article(publishedAt) WHERE deletedAt IS NULL AND expiredAt IS NULL;
CREATE INDEX article_on_deleted ON article(deletedAt) WHERE deletedAt IS NOT NULL;
CREATE INDEX article_on_expired ON article(expiredAt) WHERE expiredAt IS NOT NULL;
-- An article's states: whether anyone has it bookmarked, and removing them with the article (the
-- foreign key check of every deleted article row reads this index too).
CREATE INDEX userArticleState_on_article ON userArticleState(articleId, bookmarkedValue);

-- The tombstone horizon: the feed position of the newest tombstone or expiry compaction removed.
-- A cursor before it may have missed one, and gets `410 cursor_expired`. `0`: nothing removed yet.
INSERT INTO meta (key, value) VALUES ('horizon', '0');
