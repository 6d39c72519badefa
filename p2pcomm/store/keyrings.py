"""Where a member's sealed keyring lives at rest (spec/12-encryption.md 12.8, KR6).

A member's receive private keys and epoch secrets open a group's content, so the store
never holds them in the clear: :class:`KeyringStore` keeps, per member id, only the blob
that :func:`~p2pcomm.core.keyring.seal_keyring` makes under
:func:`~p2pcomm.core.keyring.keyring_key` of the member's seed. Every change rewrites the
whole blob, sealed again with a fresh nonce the caller draws (no randomness here), in one
transaction. A stolen store file therefore shows ciphertext only; the seed that opens it
is in the key file (02 2.7), never in the store.

For a :class:`~p2pcomm.store.sqlite.SqliteStore` on a file, the blobs are the
``keyrings`` table of that file (migration ``0003_keyrings.sql``, applied when the store
opens), reached through a connection of its own; the file has the store's mode (0600
when the store created it). For any other store (a
:class:`~p2pcomm.store.memory.MemoryStore`, or an in-memory SQLite store) the blobs live
in memory, shared by the keyring stores of one store object, and are sealed all the same.

Failures: a blob that does not open raises the :class:`~p2pcomm.errors.SealError` of
:func:`~p2pcomm.core.keyring.open_keyring` (``decrypt-failed`` for the wrong seed or
altered bytes, ``keyring-corrupt`` or ``unknown-version`` otherwise); a failure of SQLite
is :class:`~p2pcomm.errors.StoreError` ``STORE_CORRUPT``. Methods may be called from any
thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Final, Protocol, TypeVar

from ..core import crypto
from ..core.encoding import Limits, decode_canonical
from ..core.keyring import Keyring, keyring_key, open_keyring, seal_keyring
from ..errors import DecodeError, ErrorCode, SealError, StoreError
from . import _sql
from ._side import PerStore, on_file

__all__ = ["KeyringStore"]

_ID: Final = 32
#: Enough to read the nonce of any blob seal_keyring makes (at most about 8 MiB).
_BLOB_LIMITS: Final = Limits(max_size=16 << 20, max_bytes=16 << 20, max_array=4, max_depth=1)

_T = TypeVar("_T")


class _Backend(Protocol):
    def transaction(self) -> AbstractContextManager[None]: ...
    def get(self, owner: bytes) -> object | None: ...
    def put(self, owner: bytes, blob: bytes) -> None: ...
    def delete(self, owner: bytes) -> bool: ...
    def owners(self) -> list[bytes]: ...
    def read(self, fn: Callable[[], _T]) -> _T: ...
    def close(self) -> None: ...


class _MemoryBackend:
    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}
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

    def read(self, fn: Callable[[], _T]) -> _T:
        with self.lock:
            return fn()

    def get(self, owner: bytes) -> object | None:
        return self.rows.get(owner)

    def put(self, owner: bytes, blob: bytes) -> None:
        self.rows[owner] = blob

    def delete(self, owner: bytes) -> bool:
        return self.rows.pop(owner, None) is not None

    def owners(self) -> list[bytes]:
        return sorted(self.rows)

    def close(self) -> None:
        pass


class _SqliteBackend:
    def __init__(self, path: str, *, durable: bool) -> None:
        self.lock = threading.RLock()
        try:
            self.db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, uri=path.startswith("file:")
            )
        except sqlite3.Error as exc:
            raise StoreError(ErrorCode.STORE_CORRUPT, f"cannot open {path}: {exc}") from None
        try:
            _sql.configure(self.db, durable=durable)
            # A replaced or deleted blob is overwritten with zeros in its page, not left
            # in free space (old WAL frames stay until the next checkpoint).
            self.db.execute("PRAGMA secure_delete=ON")
            found = self.db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='keyrings'"
            ).fetchone()[0]
        except sqlite3.Error as exc:
            self.db.close()
            raise StoreError(ErrorCode.STORE_CORRUPT, f"cannot open {path}: {exc}") from None
        if not found:
            self.db.close()
            raise StoreError(
                ErrorCode.STORE_VERSION,
                f"{path} has no keyrings table: open it with SqliteStore first (migration 0003)",
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
                raise StoreError(ErrorCode.STORE_CORRUPT, f"keyring write failed: {exc}") from None

    def read(self, fn: Callable[[], _T]) -> _T:
        with self.lock:
            try:
                return fn()
            except sqlite3.Error as exc:
                raise StoreError(ErrorCode.STORE_CORRUPT, f"keyring read failed: {exc}") from None

    def get(self, owner: bytes) -> object | None:
        row = self.db.execute("SELECT blob FROM keyrings WHERE owner=?", (owner,)).fetchone()
        return None if row is None else row[0]

    def put(self, owner: bytes, blob: bytes) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO keyrings (owner, blob) VALUES (?, ?)", (owner, blob)
        )

    def delete(self, owner: bytes) -> bool:
        return self.db.execute("DELETE FROM keyrings WHERE owner=?", (owner,)).rowcount > 0

    def owners(self) -> list[bytes]:
        return [bytes(r[0]) for r in self.db.execute("SELECT owner FROM keyrings ORDER BY owner")]

    def close(self) -> None:
        with self.lock:
            self.db.close()


#: In-memory tables, one per store object, alive as long as the store.
_MEMORY: Final = PerStore(_MemoryBackend)


def _check_owner(owner: bytes) -> bytes:
    if not isinstance(owner, bytes) or len(owner) != _ID:
        found = len(owner) if isinstance(owner, bytes) else type(owner).__name__
        raise ValueError(f"a member id is {_ID} bytes, found {found}")
    return bytes(owner)


def _key(owner: bytes, seed: bytes) -> bytes:
    """The keyring key of ``owner``, refusing a seed that is not its seed."""
    key = keyring_key(seed)  # ValueError for a seed of the wrong size
    if crypto.ed25519_public_from_seed(seed) != owner:
        raise ValueError(f"the seed given is not the seed of member {owner.hex()}")
    return key


def _nonce_of(blob: object) -> bytes | None:
    """The nonce of a stored blob, if it has the form of KR2."""
    if not isinstance(blob, bytes):
        return None
    try:
        fields = decode_canonical(blob, _BLOB_LIMITS)
    except DecodeError:
        return None
    nonce = fields[2] if len(fields) == 4 else None
    return nonce if isinstance(nonce, bytes) else None


class KeyringStore:
    """The sealed keyrings of the members whose data ``store`` holds (see the module
    docstring)."""

    def __init__(self, store: object) -> None:
        self._backend: _Backend
        file = on_file(store)
        if file is not None:
            self._backend = _SqliteBackend(file.path, durable=file.durable)
        else:
            self._backend = _MEMORY.get(store)
        self._closed = False

    # -- lifecycle

    def close(self) -> None:
        """Close the keyring store's own connection (the store stays open)."""
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> KeyringStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> _Backend:
        if self._closed:
            raise StoreError(ErrorCode.STORE_CLOSED, "keyring store is closed")
        return self._backend

    # -- reading

    def load(self, owner: bytes, seed: bytes) -> Keyring:
        """The ring of member ``owner``, opened with ``keyring_key(seed)``; an empty ring
        when none is stored. ValueError if ``seed`` is not the seed of ``owner``;
        :class:`SealError` if the stored blob does not open (KR4)."""
        owner = _check_owner(owner)
        key = _key(owner, seed)
        backend = self._check()
        blob = backend.read(lambda: backend.get(owner))
        if blob is None:
            return Keyring()
        if not isinstance(blob, bytes):
            raise SealError(
                ErrorCode.KEYRING_CORRUPT,
                f"the stored keyring of {owner.hex()} is not a blob",
                found=type(blob).__name__,
            )
        return open_keyring(blob, key)

    def owners(self) -> list[bytes]:
        """The member ids that have a stored keyring, in ascending order."""
        backend = self._check()
        return backend.read(backend.owners)

    # -- writing

    def save(self, owner: bytes, seed: bytes, ring: Keyring, nonce: bytes) -> None:
        """Seal ``ring`` under ``keyring_key(seed)`` with ``nonce`` and put it in place of
        the stored blob of ``owner``, in one transaction (KR6).

        ``nonce`` MUST be 12 fresh bytes from a cryptographically secure random source
        (KR5). As a guard against a caller that draws none, a nonce equal to the one of the
        stored blob is refused with ValueError unless the blob would not change."""
        owner = _check_owner(owner)
        blob = seal_keyring(ring, _key(owner, seed), nonce)
        backend = self._check()
        with backend.transaction():
            old = backend.get(owner)
            if old == blob:
                return
            if _nonce_of(old) == nonce:
                raise ValueError("nonce reused: the stored keyring was sealed with this nonce")
            backend.put(owner, blob)

    def delete(self, owner: bytes) -> bool:
        """Remove the stored keyring of ``owner``; whether there was one."""
        owner = _check_owner(owner)
        backend = self._check()
        with backend.transaction():
            return backend.delete(owner)
