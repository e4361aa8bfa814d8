-- ReaderSync server store, migration 3: the conflict log can be filtered by rule
-- (`reader-sync conflicts --rule clock_skew`, `GET /v1/conflicts?rule=`), newest first, for one
-- user or for everyone, as an index range scan instead of a scan of the whole log.
CREATE INDEX conflict_on_user_rule ON conflict(userId, rule, id);
CREATE INDEX conflict_on_rule ON conflict(rule, id);
