"""Encrypted group histories for tests (spec/12-encryption.md): a :class:`CryptReplica`
is a :class:`~p2pcomm.testing.history.Replica` that writes as a member of an encrypted
group does (the rules of :mod:`p2pcomm.core.encryptor`) and reads what it can open.

Deterministic like the rest of :mod:`p2pcomm.testing`: each replica's randomness (receive
keys, secrets, nonces) is a hash chain of its seed::

    history, alice = CryptReplica.found(keypair(0))
    bob = CryptReplica(history, keypair(1))
    alice.add(bob)
    bob.sync(alice)
    bob.publish()            # bob's receive key
    alice.sync(bob)
    alice.forward()          # alice hands bob the current epoch
    bob.sync(alice)
    assert bob.read(alice.post("hello")) is None   # not synced yet
"""

from __future__ import annotations

from ..core import crypto
from ..core.content import ContentBody, decode_content
from ..core.encryptor import MAX_DUTIES, Encryptor, genesis_body
from ..core.epochs import HISTORY_FULL, encrypted_kind
from ..core.identity import KeyPair
from ..core.log import Entry, create_genesis
from ..core.membership import MEMBERSHIP_KINDS, Kind, MembershipMachine
from ..core.seal import NONCE_SIZE, AadContext
from .history import T0, History, Replica

__all__ = ["CryptReplica", "SeededRandom"]


class SeededRandom:
    """``random_bytes(n)`` from a seed: BLAKE2b of the seed and a counter."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.counter += 1
            out += crypto.blake2b_256(self.seed + self.counter.to_bytes(8, "big"))
        return out[:n]


class CryptReplica(Replica):
    """A member's device in an encrypted group: its keys, its own resolution, and writes
    that follow W1 to W4."""

    def __init__(self, history: History, kp: KeyPair, *, learn_genesis: bool = True) -> None:
        super().__init__(history, kp)
        self.random = SeededRandom(b"crypt replica " + kp.public_key)
        self.receive: dict[bytes, bytes] = {}
        self.secrets: dict[bytes, bytes] = {}
        self.machine = MembershipMachine()
        self._fed: set[bytes] = set()
        self.enc = Encryptor(
            self.machine, self.id, self.receive, self.secrets, random_bytes=self.random
        )
        if learn_genesis:
            self.learn([history.genesis])
        #: Whether to rekey before content when W3 asks (off: write stale content).
        self.follow_rules = True

    @classmethod
    def found(
        cls,
        founder: KeyPair,
        *,
        name: str = "test group",
        timestamp: int = T0,
        history: int = HISTORY_FULL,
    ) -> tuple[History, CryptReplica]:
        """An encrypted group and its founder's replica; ``history`` is the group's
        history mode (12.11b: ``HISTORY_SINCE_JOIN`` for a since-join group)."""
        random = SeededRandom(b"crypt replica " + founder.public_key)
        receive: dict[bytes, bytes] = {}
        body, secret = genesis_body(
            name,
            founder=founder.public_key,
            receive=receive,
            random_bytes=random,
            history=history,
        )
        genesis = create_genesis(founder, timestamp=timestamp, body=body)
        log = History(genesis)
        r = cls(log, founder, learn_genesis=False)
        r.random = random
        r.enc._random = random
        r.receive.update(receive)
        r.secrets[genesis.id] = secret
        r.learn([genesis])
        r.seq, r.prev, r.last_ts = 1, genesis.id, timestamp
        return log, r

    # -- resolution

    def resolve(self) -> MembershipMachine:
        """Feed this replica's machine what it knows (in history order)."""
        pos = self.history.position
        fresh = sorted((i for i in self.known if i not in self._fed), key=lambda i: pos[i])
        if fresh:
            entries = self.history.entries
            self.machine.apply_many(entries[pos[i]] for i in fresh)
            self._fed.update(fresh)
        return self.machine

    def next_cut(self) -> int:
        self.resolve()
        parents = ([self.prev] if self.prev is not None else []) + self.links()
        return self.enc.cut(parents)

    # -- writing

    def append(self, kind: int, body: bytes, *, timestamp: int | None = None) -> Entry:
        self.resolve()
        secret = None
        if self.machine.group is not None and self.enc.encrypted:
            K = self.next_cut()
            if kind in MEMBERSHIP_KINDS:
                body, secret = self.enc.op_body(kind, body, seq=self.seq + 1, K=K)
            elif encrypted_kind(kind):
                if not self.follow_rules:
                    body = self._stale_body(kind, body, K)
                else:
                    if self.enc.needs_rekey(K):
                        self.rekey()
                        K = self.next_cut()
                    body = self.enc.content_body(kind, body, seq=self.seq + 1, K=K)
        entry = super().append(kind, body, timestamp=timestamp)
        self.enc.note(entry.id, secret)
        return entry

    def _stale_body(self, kind: int, plaintext: bytes, K: int) -> bytes:
        """The envelope under the key of cut ``K`` even if W3 asks for a rekey first
        (:meth:`Encryptor.content_body` refuses a stale cut): what a writer that breaks
        the rules puts in the log."""
        group = self.machine.group
        assert group is not None
        self.enc.learn()
        ctx = AadContext(group, self.id, self.seq + 1, kind)
        return self.enc.keys.seal(K, ctx, plaintext, self.random(NONCE_SIZE))

    def _keys(
        self, *, rekey: bool = False, to: tuple[bytes, ...] = (), epoch: tuple[bytes, ...] = ()
    ) -> Entry:
        K = self.next_cut()
        body, secret = self.enc.keys_body(seq=self.seq + 1, K=K, rekey=rekey, to=to, epoch=epoch)
        entry = Replica.append(self, Kind.KEYS, body)
        self.enc.note(entry.id, secret)
        return entry

    def publish(self) -> Entry:
        """W1: a KEYS with a fresh receive key."""
        K = self.next_cut()
        body, _ = self.enc.keys_body(seq=self.seq + 1, K=K, rotate=True)
        return Replica.append(self, Kind.KEYS, body)

    def rekey(self) -> Entry:
        """A KEYS with a new epoch secret for every member at this replica's cut."""
        return self._keys(rekey=True)

    def forward(self) -> Entry | None:
        """What a member's node writes for the others, as ``write_keys(forward=True)``
        of :mod:`p2pcomm.community` does: every duty of ``Encryptor.duty`` (HM2, W4,
        W5, HM4) until none is due. The last entry written, None if none was (or this
        replica cannot)."""
        last = None
        for _ in range(MAX_DUTIES):
            K = self.next_cut()
            duty = self.enc.duty(K)
            if duty is None:
                break
            kind, body, secret = self.enc.duty_entry(duty, seq=self.seq + 1, K=K)
            last = Replica.append(self, kind, body)
            self.enc.note(last.id, secret)
        return last

    # -- reading

    def read_bytes(self, entry: Entry) -> bytes | None:
        """The plaintext body of an encrypted content entry this replica knows, None if
        it cannot open it."""
        self.resolve()
        h = entry.header
        if entry.body is None:
            return None
        return self.enc.open(entry.id, h.author, h.seq, h.kind, entry.body)

    def read(self, entry: Entry) -> ContentBody | None:
        """The decoded content of ``entry``, None if this replica cannot open it."""
        raw = self.read_bytes(entry)
        return None if raw is None else decode_content(entry.header.kind, raw)
