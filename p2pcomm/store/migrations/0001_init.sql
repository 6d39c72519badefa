-- 0001: entries, heads, fork proofs. Never edit a released migration; add 0002_*.sql.
CREATE TABLE groups (
    gid        INTEGER PRIMARY KEY,          -- small local key used in the other tables
    id         BLOB NOT NULL UNIQUE          -- group id (genesis entry id)
);

CREATE TABLE entries (
    pos        INTEGER PRIMARY KEY,          -- insertion order: a causal order per group
    id         BLOB NOT NULL UNIQUE,         -- BLAKE2b-256 of header
    gid        INTEGER NOT NULL,             -- groups.gid
    author     BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    header     BLOB NOT NULL,                -- canonical header encoding
    sig        BLOB NOT NULL,
    body       BLOB,                         -- NULL unless body_state = 1
    body_state INTEGER NOT NULL              -- 0 missing, 1 present, 2 dropped
);
CREATE INDEX entries_by_author ON entries (gid, author, seq);
CREATE INDEX entries_by_group ON entries (gid, pos);

CREATE TABLE heads (
    gid    INTEGER NOT NULL,
    id     BLOB NOT NULL,
    author BLOB NOT NULL,
    PRIMARY KEY (gid, id)
) WITHOUT ROWID;

CREATE TABLE tips (                          -- entries no entry of the same author follows
    gid    INTEGER NOT NULL,
    id     BLOB NOT NULL,
    author BLOB NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (gid, id)
) WITHOUT ROWID;

CREATE TABLE forks (
    key    BLOB PRIMARY KEY,                 -- ForkProof.key()
    gid    INTEGER NOT NULL,
    author BLOB NOT NULL,
    seq    INTEGER NOT NULL,
    proof  BLOB NOT NULL                     -- encode_fork_proof
);
CREATE INDEX forks_by_group ON forks (gid, author);
