-- ReaderSync server store on PostgreSQL, migration 7: the field history without its foreign key
-- to users. Its rows are written only by a push, for the user the push authenticated, in the
-- transaction that holds that user's lock, and users are never deleted; the per-row check was a
-- fifth of the cost of writing the history (docs/PERFORMANCE.md, "Field history"). Never edit
-- once shipped.
ALTER TABLE state_history DROP CONSTRAINT IF EXISTS state_history_user_id_fkey;
