-- ReaderSync server store, migration 2: tokens can be revoked (`reader-sync users revoke NAME`).
-- A revoked user keeps its devices, state and conflicts; its token gets 401 until a new one is
-- issued (`reader-sync users token NAME`), which clears revokedAt.
ALTER TABLE user ADD COLUMN revokedAt TEXT;
