"""A member's keys for encrypted groups, kept in the store's sealed keyring
(spec/12-encryption.md sections 12.8 and 12.11).

A :class:`Keychain` holds one identity's receive private keys and the secrets it has
opened, for every group of a store, in memory; :meth:`Keychain.save` seals them into the
store (:class:`~p2pcomm.store.keyrings.KeyringStore`) under a key derived from the
identity's seed, merging with what another handle of the same identity saved meanwhile.
It satisfies :class:`~p2pcomm.core.encryptor.MemberKeys`, which the content machines use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from .core.identity import KeyPair
from .core.keyring import Keyring
from .store.base import Store
from .store.keyrings import KeyringStore

__all__ = ["Keychain"]

_NONCE = 12


class Keychain:
    """One identity's keys on one store (see the module docstring). Thread-safe."""

    def __init__(
        self,
        store: Store,
        identity: KeyPair,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.me = identity.public_key
        self._seed = identity.seed()
        self._random = random_bytes
        self._lock = threading.RLock()
        self._store = store
        with KeyringStore(store) as rings:
            ring = rings.load(self.me, self._seed)
        self.receive: dict[bytes, bytes] = dict(ring.receive_keys())
        self.secrets: dict[bytes, bytes] = dict(ring.epoch_secrets())
        self._saved = (len(self.receive), len(self.secrets))

    def random_bytes(self, n: int) -> bytes:
        return self._random(n)

    def save(self) -> None:
        """Seal the keys into the store if they changed since the last save, keeping
        whatever another handle of this identity saved meanwhile."""
        with self._lock:
            if (len(self.receive), len(self.secrets)) == self._saved:
                return
            # A connection for each load and save, closed at once: an open one would
            # keep the store's file from checkpointing when the store closes.
            with KeyringStore(self._store) as rings:
                ring = rings.load(self.me, self._seed)
                for public, private in ring.receive_keys():
                    self.receive.setdefault(public, private)
                for eid, secret in ring.epoch_secrets():
                    self.secrets.setdefault(eid, secret)
                merged = Keyring(dict(self.receive), dict(self.secrets))
                rings.save(self.me, self._seed, merged, self._random(_NONCE))
            self._saved = (len(self.receive), len(self.secrets))
