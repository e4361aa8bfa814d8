-- ReaderSync server store on PostgreSQL, migration 4: bounded growth, as m0005_server_retention
-- does on SQLite (docs/PROTOCOL.md, "Retention and compaction"). Never edit once shipped.
ALTER TABLE article ADD COLUMN expired_at timestamptz;
-- Migrations run in one transaction: the check's scan and the index builds hold their tables'
-- locks (article: no reads or writes; user_article_state: no writes) until it commits. On a
-- large database, run this upgrade in a quiet hour.
ALTER TABLE article ADD CONSTRAINT article_expired_is_live CHECK (expired_at IS NULL OR deleted_at IS NULL);
CREATE INDEX article_on_published ON article (published_at, id) WHERE deleted_at IS NULL AND expired_at IS NULL;
CREATE INDEX article_on_gone ON article (seq) WHERE deleted_at IS NOT NULL OR expired_at IS NOT NULL;
CREATE INDEX user_article_state_on_article ON user_article_state (article_id, bookmarked_value);
-- Where the change sequence stood at each compaction (see m0005_server_retention).
CREATE TABLE compaction_checkpoint (
    taken_at timestamptz NOT NULL,
    seq bigint NOT NULL
);
-- The tombstone horizon (`xid/seq` of the newest row compaction removed; `0`: none yet). The row
-- always exists, so concurrent compactions lock it to raise it.
INSERT INTO meta (key, value) VALUES ('horizon', '0');
