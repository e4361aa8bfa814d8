-- ReaderSync client store, migration 3: sections the device follows (docs/CLIENT.md, "Sections").
-- Never edit once shipped.
-- What the reader chose (`ReaderStore.follow(sections:)`), and what the device's articles and
-- cursor were pulled under: JSON arrays of names, NULL for every section. When they differ, the
-- next sync first backfills the sections added.
ALTER TABLE syncMeta ADD COLUMN followedSections TEXT;
ALTER TABLE syncMeta ADD COLUMN pulledSections TEXT;
