"""Storage: the :class:`Store` protocol and its two implementations."""

from .base import BodyState as BodyState
from .base import Store as Store
from .memory import MemoryStore as MemoryStore
from .sqlite import SqliteStore as SqliteStore

__all__ = ["BodyState", "MemoryStore", "SqliteStore", "Store"]
