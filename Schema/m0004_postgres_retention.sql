-- ReaderSync server store on PostgreSQL, migration 4: bounded growth, as m0005_server_retention
-- does on SQLite (docs/PROTOCOL.md, "Retention and compaction"). Never edit once shipped.
ALTER TABLE article ADD COLUMN expired_at timestamptz;
ALTER TABLE article ADD CONSTRAINT article_expired_is_live CHECK (expired_at IS NULL OR deleted_at IS NULL);
CREATE INDEX article_on_published ON article (published_at) WHERE deleted_at IS NULL AND expired_at IS NULL;
CREATE INDEX article_on_deleted ON article (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX article_on_expired ON article (expired_at) WHERE expired_at IS NOT NULL;
CREATE INDEX user_article_state_on_article ON user_article_state (article_id, bookmarked_value);
-- The tombstone horizon (`xid/seq` of the newest row compaction removed; `0`: none yet). The row
-- always exists, so concurrent compactions lock it to raise it.
INSERT INTO meta (key, value) VALUES ('horizon', '0');
