-- ReaderSync client store, migration 4: offline full-text search (docs/CLIENT.md, "Search").
-- Never edit once shipped.

-- FTS5 with external content indexes the article table in place, which needs an integer rowid:
-- the article table becomes a rowid table (the same columns, `id` unique), copied over once.
-- Nothing references it by key (states and the outbox name articles by id).
CREATE TABLE article_rowid (
    id TEXT NOT NULL UNIQUE,
    section TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    url TEXT NOT NULL,
    publishedAt TEXT NOT NULL,
    updatedAt TEXT NOT NULL,
    version INTEGER NOT NULL,
    arrival INTEGER NOT NULL DEFAULT 0,
    pinnedOnly INTEGER NOT NULL DEFAULT 0
);
INSERT INTO article_rowid (id, section, title, summary, body, author, url, publishedAt, updatedAt, version, arrival, pinnedOnly)
    SELECT id, section, title, summary, body, author, url, publishedAt, updatedAt, version, arrival, pinnedOnly FROM article
    ORDER BY arrival, publishedAt, id;  -- rowids in the order the articles arrived, as later ones
DROP TABLE article;
ALTER TABLE article_rowid RENAME TO article;
CREATE INDEX article_on_publishedAt ON article(publishedAt, id);
CREATE INDEX article_on_section_publishedAt ON article(section, publishedAt, id);
CREATE INDEX article_on_section_arrival ON article(section, arrival);
CREATE INDEX article_on_pinnedOnly ON article(pinnedOnly) WHERE pinnedOnly = 1;

-- Title, summary and body, as words: Unicode-aware, case and diacritics folded ("cafe" finds
-- "Café"), prefix queries. The triggers keep it in step with every write to the article table
-- (an article is stored by an upsert, so its rowid stays; never INSERT OR REPLACE, whose delete
-- fires no trigger).
CREATE VIRTUAL TABLE articleSearch USING fts5(
    title, summary, body,
    content = 'article', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER article_search_insert AFTER INSERT ON article BEGIN
    INSERT INTO articleSearch (rowid, title, summary, body) VALUES (new.rowid, new.title, new.summary, new.body);
END;
CREATE TRIGGER article_search_delete AFTER DELETE ON article BEGIN
    INSERT INTO articleSearch (articleSearch, rowid, title, summary, body) VALUES ('delete', old.rowid, old.title, old.summary, old.body);
END;
CREATE TRIGGER article_search_update AFTER UPDATE OF title, summary, body ON article BEGIN
    INSERT INTO articleSearch (articleSearch, rowid, title, summary, body) VALUES ('delete', old.rowid, old.title, old.summary, old.body);
    INSERT INTO articleSearch (rowid, title, summary, body) VALUES (new.rowid, new.title, new.summary, new.body);
END;
INSERT INTO articleSearch (articleSearch) VALUES ('rebuild');
-- Ranked by BM25, a word in the title counting as ten in the body and one in the summary as four.
INSERT INTO articleSearch (articleSearch, rank) VALUES ('rank', 'bm25(10.0, 4.0, 1.0)');
