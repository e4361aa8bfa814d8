-- ReaderSync server store, migration 4: what the Google Reader-compatible API needs
-- (docs/GOOGLE-READER-API.md). Never edit once shipped.

-- Each article gets a stable item number (the Reader API's item id, short form) and its time of
-- arrival in ReaderSync in microseconds since 1970 (`crawlTimeMsec`, `timestampUsec`, `ot`, `nt`,
-- and what mark-all-as-read's `ts` is compared with). A new article takes the sequence value of
-- its first write as item number: unique, increasing, far below 2^53. Articles stored before
-- this migration take their current sequence value, and their publication time (or the
-- migration's time when they have none) as arrival: when they arrived was not recorded.
ALTER TABLE article ADD COLUMN itemId INTEGER;
ALTER TABLE article ADD COLUMN arrivedAt INTEGER;
UPDATE article SET itemId = seq,
    arrivedAt = COALESCE(CAST(strftime('%s', publishedAt) AS INTEGER), CAST(strftime('%s', 'now') AS INTEGER)) * 1000000;
CREATE UNIQUE INDEX article_on_item ON article(itemId);
-- Streams are read in arrival order, of everything or of one section.
CREATE INDEX article_on_arrival ON article(arrivedAt, itemId);
CREATE INDEX article_on_section ON article(section, arrivedAt, itemId);

-- Every section an article was ever ingested into, numbered in order of first appearance: the
-- Reader API's subscriptions (`feed/<id>`). A number is never reused for another name.
CREATE TABLE section (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO section (name) SELECT section FROM article WHERE section IS NOT NULL GROUP BY section ORDER BY MIN(seq);

-- App passwords: what a reader types into a third-party app instead of their bearer token
-- (`reader-sync users app-password NAME --label L`). Only the SHA-256 of the password is kept.
-- Each is one device of its user (`reader-api:<label>#<id>`); removing it ends every session
-- opened with it. AUTOINCREMENT: an id is never given again, so no two passwords share a device.
CREATE TABLE appPassword (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    userId INTEGER NOT NULL REFERENCES user(id),
    label TEXT NOT NULL,
    passwordHash BLOB NOT NULL UNIQUE,
    createdAt TEXT NOT NULL,
    UNIQUE (userId, label)
);
