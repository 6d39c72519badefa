"""``SqliteStore``: the embedded default :class:`~p2pcomm.store.base.Store`.

One SQLite file in WAL mode. Every write is one transaction (``BEGIN IMMEDIATE`` ...
``COMMIT``), so a process killed at any instant leaves either the whole write or none
of it. With ``durable=True`` (the default) the commit is fsynced before the call
returns (``synchronous=FULL``): an entry reported stored survives a power cut too.

The schema is created and upgraded by the numbered files in ``migrations/``; the file
records its version in ``PRAGMA user_version``. A file from a newer p2pcomm is refused
with ``STORE_VERSION``, a file that is not a p2pcomm database with ``STORE_CORRUPT``.

One connection is shared by all threads behind a lock, so the trio edge may call any
method from ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import importlib.resources
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..core.log import (
    Entry,
    EntryMeta,
    ForkProof,
    decode_fork_proof,
    encode_fork_proof,
    entry_from_parts,
)
from ..errors import DecodeError, ErrorCode, StoreError
from .base import BodyState

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteStore"]


def _migrations() -> list[tuple[int, str]]:
    found = []
    for item in importlib.resources.files("p2pcomm.store.migrations").iterdir():
        m = re.fullmatch(r"(\d{4})_[a-z0-9_]+\.sql", item.name)
        if m:
            found.append((int(m.group(1)), item.read_text()))
    found.sort()
    return found


_MIGRATIONS = _migrations()
SCHEMA_VERSION = _MIGRATIONS[-1][0]

_PAGE = 2000
#: ``PRAGMA application_id`` of p2pcomm stores: ASCII "p2pc".
APPLICATION_ID = 0x70327063


class SqliteStore:
    """A store in one SQLite file (created if missing)."""

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(ErrorCode.STORE_CORRUPT, f"cannot open {self.path}: {exc}") from None
        try:
            self._check_ownership()
            self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=10000")
            # The id index is keyed by hashes, so inserts touch random pages: give
            # SQLite room (64 MiB) before it has to evict them.
            self._db.execute("PRAGMA cache_size=-65536")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(
                ErrorCode.STORE_CORRUPT, f"{self.path} is not a usable p2pcomm store: {exc}"
            ) from None
        self._closed = False
        self._gids: dict[bytes, int] = {}

    # -- lifecycle

    def _check_ownership(self) -> None:
        """Refuse, before changing anything, a database that is not ours."""
        app = self._db.execute("PRAGMA application_id").fetchone()[0]
        if app == APPLICATION_ID:
            return
        tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app != 0 or tables:
            self._db.close()
            raise StoreError(
                ErrorCode.STORE_CORRUPT,
                f"{self.path} is a database of another application, not a p2pcomm store",
                expected=f"application_id {APPLICATION_ID:#x}",
                found=f"application_id {app:#x} with {tables} schema objects",
            )

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                ErrorCode.STORE_VERSION,
                f"store schema version {version} is newer than this p2pcomm supports ({SCHEMA_VERSION})",
                expected=SCHEMA_VERSION,
                found=version,
            )
        for number, sql in _MIGRATIONS:
            if number <= version:
                continue
            self._db.execute("BEGIN IMMEDIATE")
            try:
                code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
                for statement in code.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "store is closed")
        return self._db

    def _gid(self, group: bytes, *, create: bool = False) -> int:
        """The local key of ``group``; -1 (matches nothing) for an unknown group."""
        gid = self._gids.get(group)
        if gid is not None:
            return gid
        db = self._conn()
        row = db.execute("SELECT gid FROM groups WHERE id=?", (group,)).fetchone()
        if row is None:
            if not create:
                return -1
            gid = int(db.execute("INSERT INTO groups (id) VALUES (?)", (group,)).lastrowid or 0)
        else:
            gid = int(row[0])
        self._gids[group] = gid
        return gid

    def integrity_check(self) -> list[str]:
        """SQLite's own check of the file; ``[]`` when it is sound."""
        with self._lock:
            rows = self._conn().execute("PRAGMA integrity_check").fetchall()
        problems = [r[0] for r in rows]
        return [] if problems == ["ok"] else problems

    # -- writing

    def put_entries(
        self, group: bytes, entries: Iterable[Entry], forks: Sequence[ForkProof] = ()
    ) -> None:
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    self._insert(db, group, entries, forks)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    self._gids.clear()
                    raise
            except sqlite3.Error as exc:
                raise StoreError(
                    ErrorCode.STORE_CORRUPT, f"write failed, nothing stored: {exc}"
                ) from None

    def _insert(
        self,
        db: sqlite3.Connection,
        group: bytes,
        entries: Iterable[Entry],
        forks: Sequence[ForkProof],
    ) -> None:
        gid = self._gid(group, create=True)
        seen: list[Entry] = []

        def rows() -> Iterator[tuple[object, ...]]:
            for e in entries:
                seen.append(e)
                h = e.header
                yield (
                    e.id,
                    gid,
                    h.author,
                    h.seq,
                    h.timestamp,
                    h.kind,
                    e.header_bytes,
                    e.signature,
                    e.body,
                    1 if e.body is not None else 0,
                )

        cur = db.executemany(
            "INSERT OR IGNORE INTO entries (id, gid, author, seq, ts, kind, header, sig, body, body_state)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows(),
        )
        entries = seen
        if cur.rowcount != len(entries):
            # Some were stored already. This transaction's rows have the highest
            # positions, so anything at or below ``before`` was there earlier.
            before = (
                int(db.execute("SELECT MAX(pos) FROM entries").fetchone()[0] or 0) - cur.rowcount
            )
            old = set()
            for e in entries:
                row = db.execute("SELECT pos FROM entries WHERE id=?", (e.id,)).fetchone()
                if row is not None and row[0] <= before:
                    old.add(e.id)
            entries = [e for e in entries if e.id not in old]
        referenced: set[bytes] = set()
        for e in entries:
            if e.header.prev is not None:
                referenced.add(e.header.prev)
            referenced.update(e.header.links)
        added = {e.id for e in entries}
        gone = referenced - added
        if gone:
            db.executemany("DELETE FROM heads WHERE gid=? AND id=?", [(gid, x) for x in gone])
        db.executemany(
            "INSERT OR IGNORE INTO heads (gid, id, author) VALUES (?,?,?)",
            [(gid, e.id, e.header.author) for e in entries if e.id not in referenced],
        )
        followed = {e.header.prev for e in entries if e.header.prev is not None}
        db.executemany(
            "DELETE FROM tips WHERE gid=? AND id=?", [(gid, x) for x in followed - added]
        )
        db.executemany(
            "INSERT OR IGNORE INTO tips (gid, id, author, seq) VALUES (?,?,?,?)",
            [(gid, e.id, e.header.author, e.header.seq) for e in entries if e.id not in followed],
        )
        if forks:
            db.executemany(
                "INSERT OR IGNORE INTO forks (key, gid, author, seq, proof) VALUES (?,?,?,?,?)",
                [(p.key(), gid, p.author, p.seq, encode_fork_proof(p)) for p in forks],
            )

    def put_body(self, group: bytes, entry_id: bytes, body: bytes) -> bool:
        with self._lock:
            cur = self._conn().execute(
                "UPDATE entries SET body=?, body_state=1 WHERE id=? AND gid=? AND body_state=0",
                (body, entry_id, self._gid(group)),
            )
            return cur.rowcount == 1

    def drop_body(self, group: bytes, entry_id: bytes) -> bool:
        with self._lock:
            cur = self._conn().execute(
                "UPDATE entries SET body=NULL, body_state=2 WHERE id=? AND gid=?",
                (entry_id, self._gid(group)),
            )
            return cur.rowcount == 1

    # -- reading

    def groups(self) -> list[bytes]:
        with self._lock:
            return [
                r[0]
                for r in self._conn().execute(
                    "SELECT id FROM groups WHERE gid IN (SELECT DISTINCT gid FROM entries)"
                )
            ]

    def entry_meta(self, group: bytes, entry_id: bytes) -> EntryMeta | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT author, seq, ts FROM entries WHERE id=? AND gid=?",
                    (entry_id, self._gid(group)),
                )
                .fetchone()
            )
        return None if row is None else EntryMeta(row[0], row[1], row[2])

    def ids_at(self, group: bytes, author: bytes, seq: int) -> list[bytes]:
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT id FROM entries WHERE gid=? AND author=? AND seq=? ORDER BY id",
                    (self._gid(group), author, seq),
                )
                .fetchall()
            )
        return [r[0] for r in rows]

    def max_seq(self, group: bytes, author: bytes) -> int:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT MAX(seq) FROM entries WHERE gid=? AND author=?",
                    (self._gid(group), author),
                )
                .fetchone()
            )
        return row[0] or 0

    def get_signed_header(self, group: bytes, entry_id: bytes) -> tuple[bytes, bytes] | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT header, sig FROM entries WHERE id=? AND gid=?",
                    (entry_id, self._gid(group)),
                )
                .fetchone()
            )
        return None if row is None else (row[0], row[1])

    def _entry(self, header: bytes, sig: bytes, body: bytes | None) -> Entry:
        try:
            return entry_from_parts(header, sig, body)
        except DecodeError as exc:
            raise StoreError(
                ErrorCode.STORE_CORRUPT, f"stored header does not decode: {exc}"
            ) from None

    def get_entry(self, group: bytes, entry_id: bytes) -> Entry | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT header, sig, body FROM entries WHERE id=? AND gid=?",
                    (entry_id, self._gid(group)),
                )
                .fetchone()
            )
        return None if row is None else self._entry(row[0], row[1], row[2])

    def body_state(self, group: bytes, entry_id: bytes) -> BodyState | None:
        with self._lock:
            row = (
                self._conn()
                .execute(
                    "SELECT body_state FROM entries WHERE id=? AND gid=?",
                    (entry_id, self._gid(group)),
                )
                .fetchone()
            )
        return None if row is None else BodyState(row[0])

    def count(self, group: bytes) -> int:
        with self._lock:
            return int(
                self._conn()
                .execute("SELECT COUNT(*) FROM entries WHERE gid=?", (self._gid(group),))
                .fetchone()[0]
            )

    def iter_entries(
        self, group: bytes, *, after: int = 0, with_bodies: bool = True
    ) -> Iterator[tuple[int, Entry]]:
        body_col = "body" if with_bodies else "NULL"
        while True:
            with self._lock:
                rows = (
                    self._conn()
                    .execute(
                        f"SELECT pos, header, sig, {body_col} FROM entries WHERE gid=? AND pos>? ORDER BY pos LIMIT ?",
                        (self._gid(group), after, _PAGE),
                    )
                    .fetchall()
                )
            if not rows:
                return
            for pos, header, sig, body in rows:
                yield pos, self._entry(header, sig, body)
            after = rows[-1][0]

    def heads(self, group: bytes) -> dict[bytes, bytes]:
        with self._lock:
            return {
                r[0]: r[1]
                for r in self._conn().execute(
                    "SELECT id, author FROM heads WHERE gid=?", (self._gid(group),)
                )
            }

    def tips(self, group: bytes) -> list[tuple[bytes, int, bytes]]:
        with self._lock:
            rows = (
                self._conn()
                .execute("SELECT author, seq, id FROM tips WHERE gid=?", (self._gid(group),))
                .fetchall()
            )
        return sorted((r[0], r[1], r[2]) for r in rows)

    def iter_author(
        self, group: bytes, author: bytes, *, after_seq: int = 0, page: int = 2000
    ) -> Iterator[tuple[int, Entry]]:
        seq, last_id = after_seq, b"\xff" * 32  # keyset paging on (seq, id)
        while True:
            with self._lock:
                rows = (
                    self._conn()
                    .execute(
                        "SELECT pos, header, sig, body, seq, id FROM entries"
                        " WHERE gid=? AND author=? AND (seq>? OR (seq=? AND id>?))"
                        " ORDER BY seq, id LIMIT ?",
                        (self._gid(group), author, seq, seq, last_id, page),
                    )
                    .fetchall()
                )
            for pos, header, sig, body, _, _ in rows:
                yield pos, self._entry(header, sig, body)
            if len(rows) < page:
                return
            seq, last_id = rows[-1][4], rows[-1][5]

    def author_tips(self, group: bytes) -> dict[bytes, tuple[int, bytes, int]]:
        with self._lock:
            gid = self._gid(group)
            rows = (
                self._conn()
                .execute(
                    "SELECT e.author, e.seq, MIN(e.id), e.ts FROM entries e"
                    " JOIN (SELECT author, MAX(seq) AS s FROM entries WHERE gid=? GROUP BY author) m"
                    " ON e.author = m.author AND e.seq = m.s WHERE e.gid=? GROUP BY e.author",
                    (gid, gid),
                )
                .fetchall()
            )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def fork_proofs(self, group: bytes) -> list[ForkProof]:
        with self._lock:
            rows = (
                self._conn()
                .execute("SELECT proof FROM forks WHERE gid=? ORDER BY key", (self._gid(group),))
                .fetchall()
            )
        try:
            return [decode_fork_proof(r[0]) for r in rows]
        except DecodeError as exc:
            raise StoreError(
                ErrorCode.STORE_CORRUPT, f"stored fork proof does not decode: {exc}"
            ) from None
