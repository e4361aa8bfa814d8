-- ReaderSync server store on PostgreSQL, migration 5: sections, as m0006_server_sections does on
-- SQLite (docs/PROTOCOL.md, "Sections"). Never edit once shipped.
-- Sections are indexed by their MD5 (see m0003_postgres_reader_api); queries compare md5(section)
-- and then the bytes. From now on a tombstone keeps its article's section. The index builds hold
-- the article table's write lock until the migration commits: on a large database, upgrade in a
-- quiet hour (as m0004).
CREATE INDEX article_on_section_feed ON article (md5(section), xid, seq);
-- Every tombstone, of any section, in feed order.
CREATE INDEX article_on_tombstone_feed ON article (xid, seq) WHERE deleted_at IS NOT NULL;
CREATE INDEX article_on_section_published ON article (md5(section), published_at, id) WHERE deleted_at IS NULL AND expired_at IS NULL;
-- An article that left a section: its followers pull it as an expiry at the position (xid, seq)
-- of the change that moved it. One row per section and article (by the section's MD5: a section
-- name's length is not bounded).
CREATE TABLE section_exit (
    section bytea NOT NULL,
    article_id text COLLATE "C" NOT NULL,
    seq bigint NOT NULL,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE UNIQUE INDEX section_exit_on_section_article ON section_exit (md5(section), article_id);
CREATE INDEX section_exit_on_section_feed ON section_exit (md5(section), xid, seq);
CREATE INDEX section_exit_on_article ON section_exit (article_id);
