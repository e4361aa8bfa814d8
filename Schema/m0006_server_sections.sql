-- ReaderSync server store, migration 6: sections, for devices that follow some of them
-- (docs/PROTOCOL.md, "Sections"). Never edit once shipped.

-- A device that follows some sections pulls each one's changes as a range of this index, in feed
-- order, never by scanning the others; and every tombstone, of any section, as a range of the
-- next (it may keep a bookmarked article of a section it does not follow). From now on a
-- tombstone keeps its article's section; tombstones written before have none.
CREATE INDEX article_on_section_seq ON article(section, seq);
CREATE INDEX article_on_tombstone_seq ON article(seq) WHERE deletedAt IS NOT NULL;
-- Its first sync (and the backfill of a section it starts following) reads each section's live
-- articles newest first.
CREATE INDEX article_on_section_published ON article(section, publishedAt, id) WHERE deletedAt IS NULL AND expiredAt IS NULL;

-- An article that left a section (an update moved it, or a restore brought it back in another):
-- that section's followers pull it as an expiry ("may drop") at the sequence value of the change
-- that moved it, since its row no longer matches their filter. One row per section and article,
-- deleted when the article comes back to that section or compaction removes the article.
CREATE TABLE sectionExit (
    section TEXT NOT NULL,
    articleId TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (section, articleId)
) WITHOUT ROWID;
CREATE INDEX sectionExit_on_section_seq ON sectionExit(section, seq);
CREATE INDEX sectionExit_on_article ON sectionExit(articleId);
