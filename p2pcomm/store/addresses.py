"""The address book: where peers were reachable, or said to be (spec/08-discovery.md 8.10).

A node notes every address it learns (from the command line, its bootstrap list, an
invitation's hints, peer exchange, or an mDNS advert that matched one of its groups),
and the outcome of every dial. :meth:`AddressBook.to_dial` lists the addresses worth
dialling, best first; an address learned from the network is forgotten after
:data:`MAX_FAILURES` failed dials in a row, while those the user gave (``command-line``,
``bootstrap``) are kept and retried with backoff.

For a :class:`~p2pcomm.store.sqlite.SqliteStore` on a file, the book is the
``addresses`` table of that file (migration ``0002_addresses.sql``, applied when the
store opens), reached through a connection of its own, so a restarted node finds its
peers again. For any other store (a :class:`~p2pcomm.store.memory.MemoryStore`, or an
in-memory SQLite store) it lives in memory, shared by the books of one store object.

Times are passed in (``now_ms``, milliseconds since the Unix epoch): no clock here.
Methods may be called from any thread.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Final, Literal, Protocol, get_args

from ..errors import ErrorCode, StoreError
from . import _sql
from ._side import PerStore, on_file

__all__ = [
    "BACKOFF_BASE_MS",
    "BACKOFF_MAX_MS",
    "MAX_ADDRESSES",
    "MAX_FAILURES",
    "SOURCES",
    "STICKY_SOURCES",
    "Address",
    "AddressBook",
    "Source",
    "format_address",
    "normalise",
    "parse_address",
]

#: How an address was learned. ``SOURCES`` lists them best first (08 AB2).
Source = Literal["command-line", "bootstrap", "invitation", "exchange", "mdns"]
SOURCES: Final[tuple[Source, ...]] = get_args(Source)
#: Sources whose addresses are never forgotten for failing (08 AB4).
STICKY_SOURCES: Final[frozenset[Source]] = frozenset({"command-line", "bootstrap"})
#: Failed dials in a row after which an address of another source is forgotten.
MAX_FAILURES: Final = 5
#: The first retry delay after a failure; it doubles with every failure in a row...
BACKOFF_BASE_MS: Final = 10_000
#: ... up to this.
BACKOFF_MAX_MS: Final = 600_000
#: Addresses a book holds, sticky ones aside (08 AB7).
MAX_ADDRESSES: Final = 1024

_RANK: Final = {s: i for i, s in enumerate(SOURCES)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """One address of the book and what is known of it."""

    #: An IP address in its shortest text form, or a lower-case host name.
    host: str
    port: int
    #: The best source it was learned from (08 AB2).
    source: Source
    #: When it was first noted.
    first_seen_ms: int
    #: When it was last noted.
    last_seen_ms: int
    #: When a channel to it was last established; None if never.
    last_success_ms: int | None = None
    #: When a dial to it last failed; None if never.
    last_failure_ms: int | None = None
    #: Failed dials in a row since the last success.
    failures: int = 0

    @property
    def text(self) -> str:
        """``host:port``, with brackets around an IPv6 address."""
        return format_address(self.host, self.port)

    def retry_at_ms(self) -> int | None:
        """When it may be dialled again after its last failure; None if it has not
        failed since its last success."""
        if self.failures == 0 or self.last_failure_ms is None:
            return None
        delay = min(BACKOFF_BASE_MS << min(self.failures - 1, 32), BACKOFF_MAX_MS)
        return self.last_failure_ms + delay


def _order(a: Address) -> tuple[int, int, int, int, int, str, int]:
    """08 AB5: fewer failures, latest success (never last), source, latest seen."""
    success = a.last_success_ms
    return (
        a.failures,
        0 if success is not None else 1,
        -(success or 0),
        _RANK[a.source],
        -a.last_seen_ms,
        a.host,
        a.port,
    )


def normalise(host: str, port: int) -> tuple[str, int]:
    """``(host, port)`` as the book keys it: IP addresses in their shortest form
    (brackets removed), host names in lower case without a final dot. Raises
    ValueError for an empty or overlong host or a port outside 1 ..= 65535."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"a port is in 1 ..= 65535, not {port!r}")
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        return str(ipaddress.ip_address(h)), port
    except ValueError:
        pass
    h = h.lower().removesuffix(".")
    if not h or len(h) > 253 or any(c.isspace() or c in "/[]@" for c in h):
        raise ValueError(f"not a host name or IP address: {host!r}")
    return h, port


def format_address(host: str, port: int) -> str:
    """``host:port``, or ``[host]:port`` for an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT`` (as in ``--bootstrap`` and the ``bootstrap``
    list of config.json), normalised; ValueError if it is not one."""
    t = text.strip()
    if t.startswith("["):
        host, sep, port = t[1:].partition("]:")
    else:
        host, sep, port = t.rpartition(":")
        if ":" in host:
            raise ValueError(f"an IPv6 address needs brackets: [{host}]:{port}")
    if not sep or not port.isdigit() or not port.isascii():
        raise ValueError(f"not HOST:PORT: {text!r}")
    return normalise(host, int(port))


class _Backend(Protocol):
    def transaction(self) -> AbstractContextManager[None]: ...
    def get(self, host: str, port: int) -> Address | None: ...
    def put(self, a: Address) -> None: ...
    def delete(self, host: str, port: int) -> bool: ...
    def all(self) -> list[Address]: ...
    def close(self) -> None: ...


class _MemoryBackend:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], Address] = {}
        self.lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            saved = dict(self.rows)
            try:
                yield
            except BaseException:
                self.rows = saved
                raise

    def get(self, host: str, port: int) -> Address | None:
        return self.rows.get((host, port))

    def put(self, a: Address) -> None:
        self.rows[(a.host, a.port)] = a

    def delete(self, host: str, port: int) -> bool:
        return self.rows.pop((host, port), None) is not None

    def all(self) -> list[Address]:
        return list(self.rows.values())

    def close(self) -> None:
        pass


_COLUMNS: Final = "host, port, source, first_seen, last_seen, last_success, last_failure, failures"


def _row(r: tuple[str, int, Source, int, int, int | None, int | None, int]) -> Address:
    return Address(
        host=r[0],
        port=r[1],
        source=r[2],
        first_seen_ms=r[3],
        last_seen_ms=r[4],
        last_success_ms=r[5],
        last_failure_ms=r[6],
        failures=r[7],
    )


class _SqliteBackend:
    def __init__(self, path: str, *, durable: bool) -> None:
        self.lock = threading.RLock()
        try:
            self.db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, uri=path.startswith("file:")
            )
            _sql.configure(self.db, durable=durable)
            found = self.db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='addresses'"
            ).fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(ErrorCode.STORE_CORRUPT, f"cannot open {path}: {exc}") from None
        if not found:
            self.db.close()
            raise StoreError(
                ErrorCode.STORE_VERSION,
                f"{path} has no address book: open it with SqliteStore first (migration 0002)",
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(
                    ErrorCode.STORE_CORRUPT, f"address book write failed: {exc}"
                ) from None

    def get(self, host: str, port: int) -> Address | None:
        r = self.db.execute(
            f"SELECT {_COLUMNS} FROM addresses WHERE host=? AND port=?", (host, port)
        ).fetchone()
        return None if r is None else _row(r)

    def put(self, a: Address) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO addresses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a.host,
                a.port,
                a.source,
                a.first_seen_ms,
                a.last_seen_ms,
                a.last_success_ms,
                a.last_failure_ms,
                a.failures,
            ),
        )

    def delete(self, host: str, port: int) -> bool:
        cur = self.db.execute("DELETE FROM addresses WHERE host=? AND port=?", (host, port))
        return cur.rowcount > 0

    def all(self) -> list[Address]:
        with self.lock:
            try:
                return [_row(r) for r in self.db.execute(f"SELECT {_COLUMNS} FROM addresses")]
            except sqlite3.Error as exc:
                raise StoreError(
                    ErrorCode.STORE_CORRUPT, f"address book read failed: {exc}"
                ) from None

    def close(self) -> None:
        with self.lock:
            self.db.close()


#: In-memory books, one per store object, alive as long as the store.
_MEMORY: Final = PerStore(_MemoryBackend)


class AddressBook:
    """The address book of ``store`` (see the module docstring)."""

    def __init__(self, store: object, *, max_addresses: int = MAX_ADDRESSES) -> None:
        self.max_addresses = max_addresses
        self._backend: _Backend
        file = on_file(store)
        if file is not None:
            self._backend = _SqliteBackend(file.path, durable=file.durable)
        else:
            self._backend = _MEMORY.get(store)
        self._closed = False

    # -- lifecycle

    def close(self) -> None:
        """Close the book's own connection (the store stays open)."""
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> AddressBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> _Backend:
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "address book is closed")
        return self._backend

    # -- writing

    def note(self, host: str, port: int, *, source: Source, now_ms: int) -> Address:
        """Record that ``host:port`` was learned from ``source`` (08 AB1, AB2): a new
        address is added, a known one gets ``last_seen`` and keeps its better source."""
        if source not in _RANK:
            raise ValueError(f"unknown address source {source!r}; one of {SOURCES}")
        host, port = normalise(host, port)
        backend = self._check()
        with backend.transaction():
            old = backend.get(host, port)
            if old is None:
                self._make_room(backend, source)
                new = Address(
                    host=host, port=port, source=source, first_seen_ms=now_ms, last_seen_ms=now_ms
                )
            else:
                better = source if _RANK[source] < _RANK[old.source] else old.source
                new = replace(old, source=better, last_seen_ms=max(old.last_seen_ms, now_ms))
            backend.put(new)
        return new

    def _make_room(self, backend: _Backend, source: Source) -> None:
        """08 AB7: before adding an address, drop the worst learned one when full."""
        if source in STICKY_SOURCES:
            return
        learned = [a for a in backend.all() if a.source not in STICKY_SOURCES]
        if len(learned) >= self.max_addresses:
            worst = max(learned, key=_order)
            backend.delete(worst.host, worst.port)

    def note_success(self, host: str, port: int, *, now_ms: int) -> Address | None:
        """A channel to ``host:port`` was established (08 AB3). None if the address is
        not in the book (note it first)."""
        host, port = normalise(host, port)
        backend = self._check()
        with backend.transaction():
            old = backend.get(host, port)
            if old is None:
                return None
            new = replace(old, last_success_ms=now_ms, failures=0)
            backend.put(new)
        return new

    def note_failure(self, host: str, port: int, *, now_ms: int) -> Address | None:
        """A dial to ``host:port`` failed (08 AB3, AB4). Returns the address, or None if
        it is not in the book or was forgotten because it failed too often."""
        host, port = normalise(host, port)
        backend = self._check()
        with backend.transaction():
            old = backend.get(host, port)
            if old is None:
                return None
            new = replace(old, last_failure_ms=now_ms, failures=old.failures + 1)
            if new.failures >= MAX_FAILURES and new.source not in STICKY_SOURCES:
                backend.delete(host, port)
                return None
            backend.put(new)
        return new

    def forget(self, host: str, port: int) -> bool:
        """Remove ``host:port``; whether it was there."""
        host, port = normalise(host, port)
        backend = self._check()
        with backend.transaction():
            return backend.delete(host, port)

    # -- reading

    def get(self, host: str, port: int) -> Address | None:
        host, port = normalise(host, port)
        backend = self._check()
        with backend.transaction():
            return backend.get(host, port)

    def addresses(self) -> list[Address]:
        """Every address, in the order of 08 AB5 (backoff ignored)."""
        return sorted(self._check().all(), key=_order)

    def to_dial(self, *, now_ms: int | None = None, limit: int | None = None) -> list[Address]:
        """The addresses to dial, best first (08 AB5). With ``now_ms``, addresses still
        waiting out the backoff after a failure are left out."""
        out = [
            a
            for a in self.addresses()
            if now_ms is None or (retry := a.retry_at_ms()) is None or retry <= now_ms
        ]
        return out if limit is None else out[:limit]

    def __len__(self) -> int:
        return len(self._check().all())
