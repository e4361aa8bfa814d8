-- ReaderSync client store, migration 2. Never edit once shipped.
-- Each article remembers when it arrived on the device: a counter in syncMeta, one value per
-- pulled page (or fetched article), so "mark all as read" stops at what the reader had on screen
-- (`ReaderStore.markAllRead(section:upTo:)` with a point from `arrivalPoint()`): an article that
-- arrives during or after the call, or a new version of one, is never marked. Articles stored
-- before this migration count as arrived at 0.
ALTER TABLE article ADD COLUMN arrival INTEGER NOT NULL DEFAULT 0;
ALTER TABLE syncMeta ADD COLUMN lastArrival INTEGER NOT NULL DEFAULT 0;
CREATE INDEX article_on_section_arrival ON article(section, arrival);
