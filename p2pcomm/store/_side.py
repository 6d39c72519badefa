"""What the store's side tables share (the address book, the keyrings): whether a
store is a file (then a side table is a table of that file, on a connection of its
own), and otherwise one in-memory table per store object, alive as long as it."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from .sqlite import SqliteStore

__all__ = ["PerStore", "on_file"]

T = TypeVar("T")


def on_file(store: object) -> SqliteStore | None:
    """The store if it is a SQLite store on a file, else None."""
    if not isinstance(store, SqliteStore):
        return None
    path = store.path
    return None if path in ("", ":memory:") or "mode=memory" in path else store


class PerStore(Generic[T]):
    """One object made by ``factory`` per store object, shared by everyone who asks
    with that store, dropped with it. Thread-safe."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._made: weakref.WeakKeyDictionary[object, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, store: object) -> T:
        with self._lock:
            try:
                got = self._made.get(store)
                if got is None:
                    got = self._made[store] = self._factory()
                return got
            except TypeError:  # not weakly referenceable: one of its own
                return self._factory()
