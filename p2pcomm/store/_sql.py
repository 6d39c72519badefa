"""The SQL that writes a p2pcomm SQLite store, shared by :class:`SqliteStore` and its
writer process (:mod:`p2pcomm.store.writer`).

This module imports nothing of p2pcomm's core, so the writer process starts quickly:
it works on plain rows, which the parent builds from validated entries.

* A *row* is ``(id, author, seq, ts, kind, header, sig, body, prev, links)``, where
  ``body`` and ``prev`` may be None and ``links`` is a list of ids.
* A *fork row* is ``(key, author, seq, proof)`` with the encoded fork proof.
* A *signature* is ``(id, sig)``: a verifying signature to keep in place of a stored
  one that does not verify (checked by the caller).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ForkRow",
    "Row",
    "configure",
    "gid_of",
    "insert",
    "put_body",
    "replace_forks",
    "replace_signatures",
]

Row = tuple[bytes, bytes, int, int, int, bytes, bytes, "bytes | None", "bytes | None", Any]
ForkRow = tuple[bytes, bytes, int, bytes]


def configure(db: sqlite3.Connection, *, durable: bool) -> None:
    """Per-connection settings (the journal mode is stored in the file)."""
    db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    db.execute("PRAGMA busy_timeout=10000")
    # The id index is keyed by hashes, so inserts touch random pages: give SQLite room
    # (64 MiB) before it has to evict them.
    db.execute("PRAGMA cache_size=-65536")


def gid_of(db: sqlite3.Connection, group: bytes, *, create: bool) -> int:
    """The local key of ``group``; -1 (matches nothing) for an unknown group."""
    row = db.execute("SELECT gid FROM groups WHERE id=?", (group,)).fetchone()
    if row is not None:
        return int(row[0])
    if not create:
        return -1
    return int(db.execute("INSERT INTO groups (id) VALUES (?)", (group,)).lastrowid or 0)


def insert(
    db: sqlite3.Connection, gid: int, rows: Iterable[Row], forks: Sequence[ForkRow] = ()
) -> None:
    """Insert entries (dependencies first) and fork proofs; keeps heads and tips.

    Runs inside the caller's transaction. Rows already stored are skipped."""
    seen: list[Row] = []

    def values() -> Iterable[tuple[object, ...]]:
        for r in rows:
            seen.append(r)
            yield (r[0], gid, r[1], r[2], r[3], r[4], r[5], r[6], r[7], 0 if r[7] is None else 1)

    cur = db.executemany(
        "INSERT OR IGNORE INTO entries (id, gid, author, seq, ts, kind, header, sig, body, body_state)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        values(),
    )
    new = seen
    if cur.rowcount != len(seen):
        # Some were stored already. This transaction's rows have the highest
        # positions, so anything at or below ``before`` was there earlier.
        before = int(db.execute("SELECT MAX(pos) FROM entries").fetchone()[0] or 0) - cur.rowcount
        old = set()
        for r in seen:
            found = db.execute("SELECT pos FROM entries WHERE id=?", (r[0],)).fetchone()
            if found is not None and found[0] <= before:
                old.add(r[0])
        new = [r for r in seen if r[0] not in old]
    referenced: set[bytes] = set()
    followed: set[bytes] = set()
    for r in new:
        if r[8] is not None:
            referenced.add(r[8])
            followed.add(r[8])
        referenced.update(r[9])
    added = {r[0] for r in new}
    gone = referenced - added
    if gone:
        db.executemany("DELETE FROM heads WHERE gid=? AND id=?", [(gid, x) for x in gone])
    db.executemany(
        "INSERT OR IGNORE INTO heads (gid, id, author) VALUES (?,?,?)",
        [(gid, r[0], r[1]) for r in new if r[0] not in referenced],
    )
    db.executemany("DELETE FROM tips WHERE gid=? AND id=?", [(gid, x) for x in followed - added])
    db.executemany(
        "INSERT OR IGNORE INTO tips (gid, id, author, seq) VALUES (?,?,?,?)",
        [(gid, r[0], r[1], r[2]) for r in new if r[0] not in followed],
    )
    if forks:
        db.executemany(
            "INSERT OR IGNORE INTO forks (key, gid, author, seq, proof) VALUES (?,?,?,?,?)",
            [(f[0], gid, f[1], f[2], f[3]) for f in forks],
        )


def put_body(db: sqlite3.Connection, gid: int, entry_id: bytes, body: bytes) -> bool:
    """Store a body if the entry's is MISSING (see ``Store.put_body``)."""
    cur = db.execute(
        "UPDATE entries SET body=?, body_state=1 WHERE id=? AND gid=? AND body_state=0",
        (body, entry_id, gid),
    )
    return cur.rowcount == 1


def replace_signatures(db: sqlite3.Connection, gid: int, sigs: Iterable[Sequence[bytes]]) -> int:
    """Put signatures in place of stored ones (see ``Store.replace_signatures``);
    returns how many rows changed. Runs inside the caller's transaction."""
    cur = db.executemany(
        "UPDATE entries SET sig=? WHERE id=? AND gid=? AND sig IS NOT ?",
        [(s[1], s[0], gid, s[1]) for s in sigs],
    )
    return max(cur.rowcount, 0)


def replace_forks(db: sqlite3.Connection, gid: int, forks: Sequence[ForkRow]) -> None:
    """Store fork proofs, each in place of the stored one with its key (see
    ``Store.replace_fork_proofs``). Runs inside the caller's transaction."""
    db.executemany(
        "INSERT INTO forks (key, gid, author, seq, proof) VALUES (?,?,?,?,?)"
        " ON CONFLICT (key) DO UPDATE SET proof=excluded.proof WHERE gid=excluded.gid",
        [(f[0], gid, f[1], f[2], f[3]) for f in forks],
    )
