"""Which key an entry uses, who holds it, and what a member can open
(spec/12-encryption.md sections 12.9 to 12.12).

Theory of operation
-------------------
A group is *encrypted* when its genesis carries a key block with a rekey: the founder's
first epoch secret, sealed to the founder. From then on, secrets ride in **key blocks**
(:class:`KeyBlock`), the optional last field of GENESIS, JOIN, REMOVE and BAN bodies and
the only field of KEYS (kind 11). A block may publish its author's X25519 *receive key*,
and may carry one new secret sealed in slots (12.5):

* a **rekey** (no ``to`` list) seals a new epoch secret to the *implicit* recipients: the
  members effective at the operation's cut, minus the target of a REMOVE or BAN and the
  ids in ``exclude``, each with its latest receive key, in member-id order. Its pointers
  (12.6) carry the secrets of the epoch before it.
* a **forward** (a ``to`` list) seals a fresh wrapper secret to the members it names; its
  pointers carry the secrets of the epoch at its cut, or of the past epoch its ``epoch``
  names (12.9 KB8: what a block *carries*, :meth:`EpochView.covered`). It hands a member
  the current epoch (a welcome after a join, a secret someone missed) or one that
  pointers cannot reach, without starting a new epoch.

The **frontier** of a cut ``K`` (the operations in an entry's causal past) is the set of
rekeys in ``K`` that no other rekey in ``K`` follows; the entry's key is the epoch key
(12.7) of its frontier's secrets. It needs every one of them, so k concurrent removals
each exclude their target without any extra message. The frontier is a function of ``K``
and the key blocks alone, never of which operations turn out void by entries their
author could not see: such a void rekey still counts, which can only shrink who holds
the key. Only a rekey whose operation is void *at its own cut* (the resolution of its
past alone, ``_Core.local_reason``: a member banning an admin, a removed member
rekeying after it saw its removal) counts for nothing, since its author had no right to
write it whatever else arrives: it would otherwise lock out members it could not
remove, for good once everyone it reached is gone.

The **holders** of a frontier are public: for each of its rekeys, the author, the first
``n`` implicit recipients (``n`` slots), and the author and every recipient of a forward
in ``K`` that carries it, member or not (a void welcome makes the epoch stale); the
holders are those in all of these sets. **X1**: encrypted content
whose holders include someone who is not a member at its cut is void, ``stale-epoch``
(relays check it without any key); the writer rekeys first.

:class:`EpochView` computes all this from the membership resolution (its ``K`` bit sets
and its world); :class:`GroupKeys` is one member's side: it opens the slots addressed to
it, walks pointers, and seals and opens bodies. Both are pure: no clock, no I/O, and the
only randomness (new secrets, receive keys, nonces) comes from the caller.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..errors import DecodeError, ErrorCode, SealError, ValidationError
from . import crypto
from .encoding import Limits, decode_canonical, encode, expect_array, expect_bytes, expect_uint
from .membership.kinds import FIRST_APP_KIND, Kind, Reason
from .membership.ops import Ban, GenesisBody, Join, KeysOp, RemoveMember
from .membership.world import _bits
from .seal import (
    SECRET_SIZE,
    SLOT_SIZE,
    TAG_SIZE,
    X25519_SIZE,
    AadContext,
    Rekey,
    decode_envelope,
    epoch_id,
    epoch_key,
    open_envelope,
    open_pointers,
    open_slot,
    pad,
    seal_body,
    seal_pointers,
    seal_slots,
    unpad,
)

if TYPE_CHECKING:
    from .membership.resolve import _Core
    from .membership.world import _Op

__all__ = [
    "ENCRYPTED_KINDS",
    "KEY_BLOCK_VERSION",
    "EpochView",
    "GroupKeys",
    "KeyBlock",
    "Opened",
    "block_of",
    "build_block",
    "HISTORY_FULL",
    "HISTORY_SINCE_JOIN",
    "decode_fields",
    "decode_fields_and_mode",
    "encode_fields",
    "encrypted_kind",
    "open_genesis_fields",
    "seal_genesis_fields",
    "slot_context",
]

KEY_BLOCK_VERSION: Final = 1
_ID: Final = 32
_LIMITS: Final = Limits(max_size=49152, max_bytes=49152, max_array=8, max_depth=1)
#: Content kinds whose bodies are envelopes in an encrypted group (and every kind from
#: 256 on). DELETE stays readable, so that relays can drop the bodies it names.
ENCRYPTED_KINDS: Final = frozenset(
    {Kind.POST, Kind.REPLY, Kind.REACT, Kind.RETRACT, Kind.HIDE, Kind.UNHIDE}
)
#: The kinds whose bodies may carry a key block.
_CARRIERS: Final = frozenset({Kind.GENESIS, Kind.JOIN, Kind.REMOVE, Kind.BAN, Kind.KEYS})
_PROBE: Final = bytes(31) + b"\x01"


def encrypted_kind(kind: int) -> bool:
    """Whether a content entry of ``kind`` has an envelope for a body in an encrypted
    group (12.10 C1)."""
    return kind in ENCRYPTED_KINDS or kind >= FIRST_APP_KIND


def slot_context(author: bytes, seq: int, kind: int) -> bytes:
    """The context of the slots in an entry's key block (12.9 KB5): ``author || u64(seq)
    || u16(kind)`` of the entry that carries them."""
    return author + seq.to_bytes(8, "big") + kind.to_bytes(2, "big")


def _ids(data: bytes, what: str) -> tuple[bytes, ...]:
    if len(data) % _ID:
        raise DecodeError(
            ErrorCode.WRONG_LENGTH,
            f"{what}: {len(data)} bytes is not a multiple of {_ID}",
            found=len(data),
        )
    return tuple(data[i : i + _ID] for i in range(0, len(data), _ID))


def _check_ids(ids: tuple[bytes, ...], what: str) -> None:
    if any(len(i) != _ID for i in ids):
        raise DecodeError(ErrorCode.WRONG_LENGTH, f"{what}: member ids are {_ID} bytes")
    if any(a >= b for a, b in itertools.pairwise(ids)):
        raise DecodeError(ErrorCode.MALFORMED, f"{what}: member ids must be strictly ascending")


def _weak(public: bytes) -> bool:
    """A receive key that yields the all-zero shared secret (12.5 SK4)."""
    try:
        return crypto.x25519_dh(_PROBE, public) == bytes(32)
    except ValueError:
        return True


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """``[1, receive, exclude, to, epoch, eph_pub, slots, pointers]`` (12.9 KB1 to KB4)."""

    #: The author's new X25519 receive public key, or empty.
    receive: bytes = b""
    #: A rekey's recipients leave these members out (ascending ids).
    exclude: tuple[bytes, ...] = ()
    #: A forward's recipients (ascending ids); empty for a rekey.
    to: tuple[bytes, ...] = ()
    #: A forward of a past epoch: the entry ids of its rekeys (ascending); empty: the
    #: epoch at the forward's cut.
    epoch: tuple[bytes, ...] = ()
    #: The slots' ephemeral public key; empty when the block carries no secret.
    eph_pub: bytes = b""
    slots: bytes = b""
    #: The previous epoch's secrets, sealed under the new secret (12.6), or empty.
    pointers: bytes = b""

    def __post_init__(self) -> None:
        # Checked here, not only when decoding: a block built by hand encodes to bytes
        # that decode to it again.
        _check_ids(self.exclude, "keys.exclude")
        _check_ids(self.to, "keys.to")
        _check_ids(self.epoch, "keys.epoch")
        if self.epoch and not self.to:
            raise DecodeError(ErrorCode.MALFORMED, "keys: an epoch is forwarded to someone")
        if len(self.receive) not in (0, X25519_SIZE) or (self.receive and _weak(self.receive)):
            raise DecodeError(
                ErrorCode.WRONG_LENGTH, "keys.receive: a 32-byte x25519 key of full order"
            )
        if len(self.eph_pub) not in (0, X25519_SIZE):
            raise DecodeError(ErrorCode.WRONG_LENGTH, "keys.eph_pub: 0 or 32 bytes")
        if len(self.slots) % SLOT_SIZE:
            raise DecodeError(
                ErrorCode.WRONG_LENGTH, f"keys.slots: not a multiple of {SLOT_SIZE} bytes"
            )
        p = len(self.pointers)
        if p and (p < TAG_SIZE or (p - TAG_SIZE) % SECRET_SIZE):
            raise DecodeError(ErrorCode.WRONG_LENGTH, "keys.pointers: 0 or 16 + 32m bytes")
        if not self.eph_pub and (self.slots or self.pointers or self.to or self.exclude):
            raise DecodeError(
                ErrorCode.MALFORMED, "keys: slots, pointers, to and exclude need an eph_pub"
            )
        if self.to and self.exclude:
            raise DecodeError(ErrorCode.MALFORMED, "keys: a forward excludes nobody")
        if not self.receive and not self.eph_pub:
            raise DecodeError(ErrorCode.MALFORMED, "keys: an empty key block")

    @property
    def is_rekey(self) -> bool:
        return bool(self.eph_pub) and not self.to

    @property
    def is_forward(self) -> bool:
        return bool(self.to)

    @property
    def rekey(self) -> Rekey:
        return Rekey(self.eph_pub, self.slots)

    @property
    def slot_count(self) -> int:
        return len(self.slots) // SLOT_SIZE

    def encode(self) -> bytes:
        return encode(
            [
                KEY_BLOCK_VERSION,
                self.receive,
                b"".join(self.exclude),
                b"".join(self.to),
                b"".join(self.epoch),
                self.eph_pub,
                self.slots,
                self.pointers,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> KeyBlock:
        """Raises :class:`DecodeError` for anything but the canonical encoding of a
        block that KB1 to KB4 allow."""
        items = decode_canonical(data, _LIMITS)
        if items and isinstance(items[0], int) and items[0] != KEY_BLOCK_VERSION:
            raise DecodeError(
                ErrorCode.UNKNOWN_VERSION, f"key block version {items[0]} is not supported"
            )
        expect_array(items, "keys", length=8)
        expect_uint(items[0], "keys.version", minimum=1, maximum=1)
        f = [expect_bytes(v, f"keys.{n}") for v, n in zip(items[1:], _FIELDS, strict=True)]
        return cls(
            receive=f[0],
            exclude=_ids(f[1], "keys.exclude"),
            to=_ids(f[2], "keys.to"),
            epoch=_ids(f[3], "keys.epoch"),
            eph_pub=f[4],
            slots=f[5],
            pointers=f[6],
        )


_FIELDS: Final = ("receive", "exclude", "to", "epoch", "eph_pub", "slots", "pointers")


def block_of(o: _Op) -> KeyBlock | None:
    """The key block an operation carries, None if none or if it does not decode."""
    body = o.body
    if not isinstance(body, GenesisBody | Join | RemoveMember | Ban | KeysOp) or not body.keys:
        return None
    try:
        return KeyBlock.decode(body.keys)
    except DecodeError:
        return None


class EpochView:
    """Frontiers, recipients, holders and X1 for one group's membership resolution.

    Reads the resolver's operations, their ``K`` sets and its current world; results are
    cached until the world or the set of operations changes."""

    def __init__(self, core: _Core) -> None:
        self.core = core
        self._world: object = None
        self._nops = -1
        self._blocks: dict[int, KeyBlock | None] = {}
        self._rekeys = 0
        #: The rekeys that count in frontiers (12.10 F1): not void at their own cut.
        self._counting = 0
        self._forwards = 0
        self._keyed = 0
        self._scanned = 0
        self._frontier: dict[int, tuple[_Op, ...]] = {}
        self._members: dict[int, frozenset[bytes]] = {}
        self._recipients: dict[int, tuple[tuple[bytes, bytes], ...]] = {}
        self._stale: dict[int, bool] = {}
        self._covered: dict[int, tuple[_Op, ...]] = {}
        self._epoch: dict[int, tuple[bytes, tuple[bytes, ...]]] = {}
        self._encrypted: tuple[object, bool] | None = None

    # -- bookkeeping

    def _sync(self) -> None:
        core = self.core
        if core.world is not self._world:
            self._world = core.world
            self._blocks.clear()
            self._rekeys = self._counting = self._forwards = self._keyed = 0
            self._scanned = 0
            self._members.clear()
            self._recipients.clear()
            self._stale.clear()
            self._frontier.clear()
            self._covered.clear()
            self._epoch.clear()
        ops = core.ops
        if self._scanned < len(ops):
            for o in ops[self._scanned :]:
                b = block_of(o) if o.kind in _CARRIERS else None
                self._blocks[o.idx] = b
                if b is not None:
                    self._keyed |= o.bit
                    if b.is_rekey:
                        self._rekeys |= o.bit
                        if o.kind == Kind.GENESIS or core.local_reason(o) is Reason.OK:
                            self._counting |= o.bit
                    elif b.is_forward:
                        self._forwards |= o.bit
            self._scanned = len(ops)

    def block(self, o: _Op) -> KeyBlock | None:
        self._sync()
        return self._blocks.get(o.idx)

    def counts(self, o: _Op) -> bool:
        """Whether ``o`` carries a rekey that counts in frontiers (12.10 F1): its
        operation is not void in the resolution of its own cut, whatever arrives
        later (a rekey its author had no right to write at all starts no epoch)."""
        self._sync()
        return bool((self._counting >> o.idx) & 1)

    @property
    def encrypted(self) -> bool:
        """Whether the group's genesis carries a rekey (12.10 C1)."""
        g = self.core.genesis
        if g is None:
            return False
        if self._encrypted is not None and self._encrypted[0] is g.body:
            return self._encrypted[1]  # asked per entry: the answer changes with the body
        b = self.block(g)
        answer = b is not None and b.is_rekey
        self._encrypted = (g.body, answer)
        return answer

    # -- membership at a cut

    def members(self, K: int) -> frozenset[bytes]:
        """Members effective at cut ``K`` (level reader or above)."""
        self._sync()
        got = self._members.get(K)
        if got is None:
            w = self.core.world
            got = frozenset(who for who, m in w.mask.items() if m & K and w.level(who, K)[0] >= 1)
            self._members[K] = got
        return got

    def receive_key(self, member: bytes, K: int) -> bytes | None:
        """The member's receive key at cut ``K``: from its latest operation in ``K``
        whose key block publishes one."""
        self._sync()
        rec = self.core.authors.get(member)
        if rec is None:
            return None
        best: tuple[int, bytes] | None = None
        ops = self.core.ops
        for i in _bits(rec.mops & K & self._keyed):
            b = self._blocks[i]
            if b is not None and b.receive and (best is None or ops[i].seq > best[0]):
                best = (ops[i].seq, b.receive)
        return None if best is None else best[1]

    def recipients(self, o: _Op) -> tuple[tuple[bytes, bytes], ...]:
        """``(member, receive key)`` of each slot of ``o``'s key block, in slot order
        (12.9 KB6, KB7); empty when it carries no secret."""
        self._sync()
        got = self._recipients.get(o.idx)
        if got is not None:
            return got
        b = self._blocks.get(o.idx)
        out: list[tuple[bytes, bytes]] = []
        if b is not None and b.eph_pub:
            if o.kind == Kind.GENESIS:
                names: Iterable[bytes] = [o.author]
            elif b.to:
                names = b.to
            else:
                before = self.core.local_members(o.K & ~o.bit)
                gone = set(b.exclude)
                if o.kind in (Kind.REMOVE, Kind.BAN) and o.target is not None:
                    gone.add(o.target)
                names = sorted(before - gone)
            for m in names:
                key = self.receive_key(m, o.K)
                if key is not None:
                    out.append((m, key))
        got = tuple(out)
        self._recipients[o.idx] = got
        return got

    def covered(self, o: _Op) -> tuple[_Op, ...]:
        """The rekeys whose secrets a key block's pointers carry, in entry-id order
        (12.9 KB8): a rekey's, the frontier of its cut without itself; a forward's, its
        ``epoch`` if it names one (every id a rekey in its cut; else nothing), else the
        same frontier."""
        self._sync()
        got = self._covered.get(o.idx)
        if got is not None:
            return got
        b = self._blocks.get(o.idx)
        K = o.K & ~o.bit
        if b is None:
            got = ()
        elif b.epoch:
            by_id = self.core.by_id
            named = [by_id.get(i) for i in b.epoch]
            ok = all(
                p is not None and (K >> p.idx) & 1 and (self._counting >> p.idx) & 1
                for p in named
            )
            got = tuple(p for p in named if p is not None) if ok else ()
        else:
            got = self.frontier(K)
        self._covered[o.idx] = got
        return got

    # -- frontier and holders

    def frontier(self, K: int) -> tuple[_Op, ...]:
        """The rekeys in ``K`` that no other rekey in ``K`` follows, by entry id (12.10
        F1)."""
        self._sync()
        got = self._frontier.get(K)
        if got is not None:
            return got
        ops = self.core.ops
        inK = _bits(K & self._counting)
        below = 0
        for i in inK:
            below |= ops[i].K & ~ops[i].bit
        got = tuple(sorted((ops[i] for i in inK if not (below >> i) & 1), key=lambda o: o.id))
        self._frontier[K] = got
        return got

    def holders(self, K: int) -> frozenset[bytes]:
        """Who can derive the key of cut ``K``'s frontier from entries in ``K`` (12.10
        H1): the members every one of its secrets reached."""
        return self.holders_of(self.frontier(K), K)

    def holders_of(self, epoch: Iterable[_Op], K: int) -> frozenset[bytes]:
        """Who can derive every secret of ``epoch`` (rekeys in ``K``) from entries in
        ``K``: for each, its author, its first ``n`` recipients (``n`` slots) and the
        author and recipients of every forward in ``K`` whose pointers carry it."""
        self._sync()  # before reading the forwards' bits
        common: set[bytes] | None = None
        ops = self.core.ops
        forwards = [ops[i] for i in _bits(K & self._forwards)]
        for s in epoch:
            b = self._blocks[s.idx]
            assert b is not None
            h = {s.author}
            h.update(m for m, _ in self.recipients(s)[: b.slot_count])
            for f in forwards:
                if s in self.covered(f):
                    fb = self._blocks[f.idx]
                    assert fb is not None
                    h.add(f.author)
                    h.update(m for m, _ in self.recipients(f)[: fb.slot_count])
            common = h if common is None else common & h
        return frozenset(common or ())

    def stale(self, K: int) -> bool:
        """X1: the key of cut ``K`` reaches someone who is not a member at ``K``."""
        self._sync()
        got = self._stale.get(K)
        if got is None:
            got = not self.holders(K) <= self.members(K) or not self.frontier(K)
            self._stale[K] = got
        return got

    def epoch(self, K: int) -> tuple[bytes, tuple[bytes, ...]]:
        """``(epoch id, frontier entry ids)`` of cut ``K``."""
        got = self._epoch.get(K)
        if got is not None and self._world is self.core.world:
            return got
        ids = tuple(o.id for o in self.frontier(K))
        if not ids:
            raise ValidationError(ErrorCode.BAD_OPERATION, "the group has no epoch")
        assert self.core.group is not None
        got = self._epoch[K] = (epoch_id(self.core.group, ids), ids)
        return got

    def key_ops(self) -> list[_Op]:
        """The operations with a key block that carries a secret, in arrival order."""
        self._sync()
        ops = self.core.ops
        return [ops[i] for i in _bits(self._rekeys | self._forwards)]


@dataclass(frozen=True, slots=True)
class Opened:
    """What :meth:`GroupKeys.open` makes of an encrypted body."""

    plaintext: bytes | None
    #: Why there is no plaintext: ``no-key`` (not derived yet), ``wrong-epoch`` (the
    #: envelope names another epoch than the entry's past), ``decrypt-failed``,
    #: ``bad-padding`` or ``malformed``.
    problem: str = ""


class GroupKeys:
    """One member's keys for one group: secrets by entry id, opened from the log.

    ``receive`` maps receive public keys to private keys (every one the member ever
    published); ``secrets`` maps key-op entry ids to their secrets, and grows as
    :meth:`learn` opens slots and pointers. Both dicts are the caller's (the keyring),
    so what is learnt is kept."""

    def __init__(
        self,
        view: EpochView,
        me: bytes,
        receive: Mapping[bytes, bytes],
        secrets: dict[bytes, bytes],
    ) -> None:
        self.view = view
        self.me = me
        self.receive = receive
        self.secrets = secrets
        self._tried: set[tuple[int, int]] = set()
        #: Frontier entry ids -> (epoch id, key): one HKDF per epoch, not per entry.
        self._keys: dict[tuple[bytes, ...], tuple[bytes, bytes]] = {}

    def learn(self) -> list[bytes]:
        """Open every slot addressed to this member and every pointer list whose key it
        holds; returns the entry ids whose secrets are new."""
        view = self.view
        core = view.core
        group = core.group
        assert group is not None
        new: list[bytes] = []
        progress = True
        while progress:
            progress = False
            for o in view.key_ops():
                b = view.block(o)
                assert b is not None
                s = self.secrets.get(o.id)
                if s is None:
                    s = self._open_slot(o, b, group)
                    if s is None:
                        continue
                    self.secrets[o.id] = s
                    new.append(o.id)
                    progress = True
                if b.pointers:
                    before = view.covered(o)
                    if all(p.id in self.secrets for p in before):
                        continue
                    try:
                        prev = open_pointers(s, b.pointers)
                    except (DecodeError, SealError):
                        continue
                    if len(prev) != len(before):
                        continue
                    for p, secret in zip(before, prev, strict=True):
                        if p.id not in self.secrets:
                            self.secrets[p.id] = secret
                            new.append(p.id)
                            progress = True
        return new

    def _open_slot(self, o: _Op, b: KeyBlock, group: bytes) -> bytes | None:
        rec = self.view.recipients(o)
        for i, (m, key) in enumerate(rec):
            if m != self.me:
                continue
            private = self.receive.get(key)
            if private is None or (o.idx, i) in self._tried:
                return None
            self._tried.add((o.idx, i))
            ctx = slot_context(o.author, o.seq, o.kind)
            g = bytes(32) if o.kind == Kind.GENESIS else group
            for index in (i, None):
                try:
                    return open_slot(private, index, b.rekey, g, ctx)
                except SealError:
                    continue
            return None
        return None

    def epoch_key(self, K: int) -> tuple[bytes, bytes] | None:
        """``(epoch id, key)`` for cut ``K``, None if a secret is missing."""
        view = self.view
        eid, ids = view.epoch(K)
        got = self._keys.get(ids)
        if got is not None:
            return got
        try:
            pairs = [(i, self.secrets[i]) for i in ids]
        except KeyError:
            return None
        assert view.core.group is not None
        got = self._keys[ids] = (eid, epoch_key(view.core.group, pairs))
        return got

    def seal(self, K: int, ctx: AadContext, plaintext: bytes, nonce: bytes) -> bytes:
        """The envelope of ``plaintext`` for an entry with cut ``K``; raises
        :class:`SealError` (``NO_KEY``) when this member cannot derive the key."""
        got = self.epoch_key(K)
        if got is None:
            raise SealError(ErrorCode.NO_KEY, "this member does not hold the group's key yet")
        eid, key = got
        return seal_body(key, eid, nonce, ctx, plaintext)

    def open(self, K: int, ctx: AadContext, body: bytes) -> Opened:
        """The plaintext of an encrypted body written at cut ``K``."""
        got = self.epoch_key(K)
        if got is None:
            return Opened(None, "no-key")  # before decoding: a relay's every entry
        try:
            env = decode_envelope(body)
        except DecodeError:
            return Opened(None, "malformed")
        eid, key = got
        if env.epoch_id != eid:
            return Opened(None, "wrong-epoch")
        try:
            return Opened(open_envelope(key, env, ctx))
        except SealError as exc:
            return Opened(None, exc.code.value)


# --------------------------------------------------------------------------- writing


def build_block(
    view: EpochView | None,
    *,
    author: bytes,
    seq: int,
    kind: int,
    K: int,
    secrets: Mapping[bytes, bytes],
    random_bytes: Callable[[int], bytes],
    receive: bytes = b"",
    rekey: bool = False,
    exclude: Sequence[bytes] = (),
    target: bytes | None = None,
    to: Sequence[bytes] = (),
    epoch: Sequence[bytes] = (),
    pointers: bool = True,
) -> tuple[KeyBlock, bytes | None]:
    """A key block for an operation about to be written at ``(author, seq, kind)`` whose
    past is cut ``K`` (without itself): publishing ``receive``, and with a new secret when
    ``rekey`` or ``to``. Recipients are computed as every reader will (KB6, KB7).
    Returns the block and its new secret (None without one).
    """
    if not rekey and not to:
        return KeyBlock(receive=receive), None
    group = None if view is None else view.core.group
    if group is None and kind != Kind.GENESIS:
        raise ValidationError(ErrorCode.BAD_OPERATION, "no group to rekey")
    secret = random_bytes(SECRET_SIZE)
    if kind == Kind.GENESIS:
        names: list[bytes] = [author]
    elif to:
        names = sorted(to)
    else:
        assert view is not None
        gone = set(exclude)
        if target is not None:
            gone.add(target)
        names = sorted(view.core.local_members(K) - gone)
    keys: list[bytes] = []
    for m in names:
        if m == author and receive:
            key: bytes | None = receive
        else:
            assert view is not None
            key = view.receive_key(m, K)
        if key is not None:
            keys.append(key)
        elif to:
            raise ValidationError(
                ErrorCode.BAD_OPERATION, f"member {m.hex()[:16]} has no receive key"
            )
    ctx = slot_context(author, seq, kind)
    # A genesis's slots name the zero group: its id is the hash of its own body.
    g = bytes(32) if kind == Kind.GENESIS or group is None else group
    sealed = seal_slots(secret, keys, g, ctx)
    sealed_pointers = b""
    if K and view is not None and (pointers or to):
        carried = sorted(epoch) if epoch else [p.id for p in view.frontier(K)]
        if carried and all(i in secrets for i in carried):
            sealed_pointers = seal_pointers(secret, [secrets[i] for i in carried])
        elif epoch:
            raise ValidationError(ErrorCode.BAD_OPERATION, "this member lacks that epoch")
    block = KeyBlock(
        receive=receive,
        exclude=tuple(sorted(exclude)) if not to else (),
        to=tuple(sorted(to)),
        epoch=tuple(sorted(epoch)) if to else (),
        eph_pub=sealed.eph_pub,
        slots=sealed.slots,
        pointers=sealed_pointers,
    )
    return block, secret


# --------------------------------------------------------------------------- sealed fields

#: HKDF info label of the key that seals a genesis's private fields (12.11a SM1).
LABEL_GENESIS_FIELDS: Final = "p2pcomm/1/genesis-fields"
_FIELD_LIMITS: Final = Limits(max_size=49152, max_bytes=49152, max_array=4, max_depth=1)


#: History modes (12.11b HM1): a newcomer reads the whole history, or only what is
#: written from its joining on.
HISTORY_FULL: Final = 0
HISTORY_SINCE_JOIN: Final = 1


def encode_fields(name: str, description: str, rules: str, history: int = HISTORY_FULL) -> bytes:
    """The plaintext of sealed metadata: ``encode([name, description, rules])``, with
    a fourth item ``1`` for a since-join group (absent for the default, full history)."""
    if history not in (HISTORY_FULL, HISTORY_SINCE_JOIN):
        raise ValueError(f"history mode is 0 or 1, found {history}")
    return encode([name, description, rules] + ([history] if history else []))


def decode_fields(data: bytes) -> tuple[str, str, str] | None:
    """The name, description and rules of :func:`encode_fields`; None for anything
    else."""
    got = decode_fields_and_mode(data)
    return None if got is None else got[:3]


def decode_fields_and_mode(data: bytes) -> tuple[str, str, str, int] | None:
    """Inverse of :func:`encode_fields`; None for anything else (a fourth item other
    than ``1`` included: the default is written by leaving it out)."""
    try:
        items = decode_canonical(data, _FIELD_LIMITS)
        expect_array(items, "fields")
    except DecodeError:
        return None
    if len(items) == 4 and items[3] == HISTORY_SINCE_JOIN and type(items[3]) is int:
        mode = HISTORY_SINCE_JOIN
    elif len(items) == 3:
        mode = HISTORY_FULL
    else:
        return None
    if not all(isinstance(v, str) for v in items[:3]):
        return None
    return str(items[0]), str(items[1]), str(items[2]), mode


def _genesis_fields_key(secret: bytes) -> bytes:
    return crypto.hkdf_sha256(b"", secret, LABEL_GENESIS_FIELDS.encode("ascii"))


def seal_genesis_fields(secret: bytes, founder: bytes, fields: bytes, nonce: bytes) -> bytes:
    """SM1: ``nonce || AEAD(HKDF("", S, "p2pcomm/1/genesis-fields"), nonce, founder,
    pad(fields))``, with ``S`` the genesis's epoch secret: the genesis cannot use an
    envelope, whose associated data names the group its own id is the hash of."""
    key = _genesis_fields_key(secret)
    return nonce + crypto.aead_seal(key, nonce, founder, pad(fields))


def open_genesis_fields(secret: bytes, founder: bytes, sealed: bytes) -> bytes | None:
    """Inverse of :func:`seal_genesis_fields`; None if it does not open."""
    if len(sealed) < 12 + TAG_SIZE + 1:
        return None
    try:
        padded = crypto.aead_open(_genesis_fields_key(secret), sealed[:12], founder, sealed[12:])
        return unpad(padded)
    except (crypto.AeadError, SealError):
        return None
