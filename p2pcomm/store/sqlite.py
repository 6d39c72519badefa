"""``SqliteStore``: the embedded default :class:`~p2pcomm.store.base.Store`.

One SQLite file in WAL mode. Every write is one transaction (``BEGIN IMMEDIATE`` ...
``COMMIT``), so a process killed at any instant leaves either the whole write or none
of it. With ``durable=True`` (the default) the commit is fsynced before the call
returns (``synchronous=FULL``): an entry reported stored survives a power cut too.

The schema is created and upgraded by the numbered files in ``migrations/``; the file
records its version in ``PRAGMA user_version``. A file from a newer p2pcomm is refused
with ``STORE_VERSION``, a file that is not a p2pcomm database with ``STORE_CORRUPT``.

One connection is shared by all threads behind a lock, so the trio edge may call any
method from ``trio.to_thread.run_sync``. Large writes may instead go through
:meth:`SqliteStore.writer`, a child process with its own connection (see
:mod:`p2pcomm.store.writer`); reads here see its writes once they are committed.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import sqlite3
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from ..core.log import (
    Entry,
    EntryMeta,
    ForkProof,
    decode_fork_proof,
    encode_fork_proof,
    entry_from_parts,
)
from ..errors import DecodeError, ErrorCode, StoreError
from . import _sql
from .base import BodyState
from .writer import ProcessWriter

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteStore", "entry_row", "fork_row"]


def entry_row(e: Entry) -> _sql.Row:
    """The :mod:`_sql` row of a (validated) entry."""
    h = e.header
    return (
        e.id,
        h.author,
        h.seq,
        h.timestamp,
        h.kind,
        e.header_bytes,
        e.signature,
        e.body,
        h.prev,
        h.links,
    )


def fork_row(p: ForkProof) -> _sql.ForkRow:
    return (p.key(), p.author, p.seq, encode_fork_proof(p))


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

_T = TypeVar("_T")
_PAGE = 2000
#: Page size of new store files. Rows of a few hundred bytes and hash-keyed indexes
#: make fewer, fuller pages cheaper to write than SQLite's default 4 KiB.
PAGE_SIZE = 16384
#: ``PRAGMA application_id`` of p2pcomm stores: ASCII "p2pc".
APPLICATION_ID = 0x70327063


def _create_private(path: str) -> None:
    """Create a new store file with mode 0600 before SQLite opens it: it will hold the
    group's plaintext. SQLite gives a database's ``-wal``, ``-shm`` and ``-journal``
    files the mode of the database file, so they are 0600 too. An existing file keeps
    the mode its owner chose."""
    if path in ("", ":memory:") or path.startswith("file:") or os.path.lexists(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise StoreError(
            ErrorCode.NOT_FOUND,
            f"cannot create store {path}: directory {parent} does not exist",
            found=parent,
        )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # created meanwhile by someone else: theirs, with their mode
    except OSError as exc:
        raise StoreError(
            ErrorCode.STORE_CORRUPT, f"cannot create store {path}: {exc.strerror}"
        ) from None
    os.close(fd)


class SqliteStore:
    """A store in one SQLite file, created (mode 0600, in an existing directory) if
    missing."""

    def __init__(self, path: str | Path, *, durable: bool = True, offload: bool = True) -> None:
        self.path = str(path)
        self.durable = durable
        #: Whether large writes may go to a writer process (see :meth:`writer`).
        self.offload = (
            offload
            and self.path != ":memory:"
            and not self.path.startswith("file:")
            # A frozen application's executable is the application, not Python.
            and bool(sys.executable)
            and not getattr(sys, "frozen", False)
        )
        self._writer: ProcessWriter | None = None
        self._writer_failed: str | None = None
        self._writer_starting = False
        self._lock = threading.RLock()
        _create_private(self.path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(ErrorCode.STORE_CORRUPT, f"cannot open {self.path}: {exc}") from None
        try:
            if self._check_ownership():
                # Only a new file takes a page size (before anything is written).
                self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            _sql.configure(self._db, durable=durable)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(
                ErrorCode.STORE_CORRUPT, f"{self.path} is not a usable p2pcomm store: {exc}"
            ) from None
        self._closed = False
        self._gids: dict[bytes, int] = {}

    # -- lifecycle

    def _check_ownership(self) -> bool:
        """Refuse, before changing anything, a database that is not ours. Returns
        whether the file is new (empty)."""
        app = self._db.execute("PRAGMA application_id").fetchone()[0]
        if app == APPLICATION_ID:
            return False
        tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app != 0 or tables:
            self._db.close()
            raise StoreError(
                ErrorCode.STORE_CORRUPT,
                f"{self.path} is a database of another application, not a p2pcomm store",
                expected=f"application_id {APPLICATION_ID:#x}",
                found=f"application_id {app:#x} with {tables} schema objects",
            )
        return True

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
                writer, self._writer = self._writer, None
                if writer is not None:
                    writer.close()
                self._db.close()

    def writer(self) -> ProcessWriter | None:
        """The process that performs this store's bulk writes, started on first call;
        None when ``offload`` is off or it cannot run here (the caller then writes
        through this object). :class:`~p2pcomm.group.GroupLog` uses it for large
        ingests and appends, so that SQLite works on another core while this process
        validates or signs the next entries. It ends when the store closes. Starting
        it (about 0.15 s: a Python process importing the writer) holds no lock of this
        store: other calls go on meanwhile."""
        if not self.offload or self._writer_failed is not None:
            return None
        with self._lock:
            self._conn()
            if self._writer is not None and not self._writer.alive:
                self._writer.close()
                self._writer = None
            if self._writer is not None:
                return self._writer
        try:
            started = ProcessWriter(self.path, durable=self.durable)
        except StoreError as exc:
            self._writer_failed = str(exc)
            warnings.warn(
                f"p2pcomm: writing {self.path} in this process: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        with self._lock:
            if self._writer is None and not self._closed:
                self._writer = started
                return started
            current = self._writer
        started.close()  # another caller's won, or the store closed meanwhile
        return current

    def running_writer(self) -> ProcessWriter | None:
        """The writer process if it is running now; otherwise None, and it is started
        in the background (a daemon thread) for the next caller. Lets a caller that
        holds a lock write through this object once rather than wait for the start."""
        with self._lock:
            writer = self._writer
            if writer is not None and writer.alive:
                return writer
            if (
                self._writer_starting
                or self._closed
                or not self.offload
                or self._writer_failed is not None
            ):
                return None
            self._writer_starting = True

        def start() -> None:
            try:
                self.writer()
            except Exception:  # a closed store, say: the caller writes here instead
                pass
            finally:
                self._writer_starting = False

        threading.Thread(target=start, name="p2pcomm-writer-start", daemon=True).start()
        return None

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
        gid = _sql.gid_of(self._conn(), group, create=create)
        if gid != -1:
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
        self._write(lambda db: self._insert(db, group, entries, forks))

    def _insert(
        self,
        db: sqlite3.Connection,
        group: bytes,
        entries: Iterable[Entry],
        forks: Sequence[ForkProof],
    ) -> None:
        _sql.insert(
            db,
            self._gid(group, create=True),
            (entry_row(e) for e in entries),
            [fork_row(p) for p in forks],
        )

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in one transaction: all of it or, if it raises, nothing."""
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    out = work(db)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    self._gids.clear()  # a group created by ``work`` is gone again
                    raise
            except sqlite3.Error as exc:
                raise StoreError(
                    ErrorCode.STORE_CORRUPT, f"write failed, nothing stored: {exc}"
                ) from None
            return out

    def replace_signatures(self, group: bytes, signatures: Iterable[tuple[bytes, bytes]]) -> int:
        staged = list(signatures)
        if not staged:
            self._conn()
            return 0
        return self._write(lambda db: _sql.replace_signatures(db, self._gid(group), staged))

    def replace_fork_proofs(self, group: bytes, proofs: Sequence[ForkProof]) -> None:
        rows = [fork_row(p) for p in proofs]
        if not rows:
            self._conn()
            return
        self._write(lambda db: _sql.replace_forks(db, self._gid(group, create=True), rows))

    def put_body(self, group: bytes, entry_id: bytes, body: bytes) -> bool:
        with self._lock:
            return _sql.put_body(self._conn(), self._gid(group), entry_id, body)

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
