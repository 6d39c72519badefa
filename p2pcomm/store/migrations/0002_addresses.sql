-- 0002: the address book (spec/08-discovery.md 8.10). Never edit a released migration.
CREATE TABLE addresses (
    host         TEXT NOT NULL,              -- an IP address in its shortest form, or a lower-case host name
    port         INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    source       TEXT NOT NULL CHECK (source IN ('command-line', 'bootstrap', 'invitation', 'exchange', 'mdns')),
    first_seen   INTEGER NOT NULL,           -- milliseconds since the Unix epoch
    last_seen    INTEGER NOT NULL,
    last_success INTEGER,                    -- NULL: never
    last_failure INTEGER,                    -- NULL: never
    failures     INTEGER NOT NULL DEFAULT 0, -- failed dials in a row since the last success
    PRIMARY KEY (host, port)
) WITHOUT ROWID;
