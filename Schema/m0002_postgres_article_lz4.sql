-- ReaderSync server store on PostgreSQL, migration 2. Never edit once shipped.
-- Article text is compressed with lz4 instead of pglz when it is stored out of line (bodies):
-- in the bench's ingest (S0, docs/PERFORMANCE.md) pglz compression took a fifth of the time.
-- Only new values change; a server built without lz4 (or older than PostgreSQL 14) keeps pglz.
-- Each DO block is one line: the store splits this file at lines ending in ";".
DO $$ BEGIN ALTER TABLE article ALTER COLUMN body SET COMPRESSION lz4, ALTER COLUMN summary SET COMPRESSION lz4; EXCEPTION WHEN feature_not_supported OR syntax_error THEN RAISE NOTICE 'lz4 is not available: article text stays compressed with pglz'; END $$;
