-- 0003: sealed keyrings (spec/12-encryption.md 12.8 KR6). Never edit a released migration.
-- A rowid table, not WITHOUT ROWID: a blob may be megabytes.
CREATE TABLE keyrings (
    owner BLOB PRIMARY KEY,                  -- member id: the 32-byte Ed25519 public key
    blob  BLOB NOT NULL                      -- the sealed keyring of KR2, never its plaintext
);
