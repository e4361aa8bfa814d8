-- ReaderSync client store, migration 3: sections the device follows (docs/CLIENT.md, "Sections"),
-- and articles kept only while pinned. Never edit once shipped.
-- What the reader chose (`ReaderStore.follow(sections:)`), and what the device's articles and
-- cursor were pulled under: JSON arrays of names, NULL for every section. When they differ, the
-- next sync first backfills the sections added.
ALTER TABLE syncMeta ADD COLUMN followedSections TEXT;
ALTER TABLE syncMeta ADD COLUMN pulledSections TEXT;
-- An article the device keeps only while it is bookmarked or has a pending change: one the
-- server expired, or one fetched by id from outside what the device syncs (an old story, a
-- bookmark of another section). No pull brings news of it, so the eviction after each sync drops
-- it once nothing pins it. A pull that stores the article clears the mark.
ALTER TABLE article ADD COLUMN pinnedOnly INTEGER NOT NULL DEFAULT 0;
CREATE INDEX article_on_pinnedOnly ON article(pinnedOnly) WHERE pinnedOnly = 1;
