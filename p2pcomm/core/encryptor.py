"""One member's side of an encrypted group (spec/12-encryption.md section 12.11): what
to put in the key blocks of the operations it writes, when to rekey before writing
content, whom to forward the current epoch to, and opening what others wrote.

An :class:`Encryptor` sits beside a :class:`~p2pcomm.core.membership.MembershipMachine`
(whose resolution gives every entry's cut) and a member's keys: receive private keys by
public key, and secrets by the id of the entry that carries them, both the caller's
dicts (loaded from and saved to the sealed keyring, 12.8). It never reads a clock and
takes its randomness from the caller, so tests replay it exactly.

Writing follows five rules (12.11 W1 to W5):

* W1 a JOIN publishes a fresh receive key; so does a KEYS written by a member who has
  none in the group yet (an added member, or the founder of a group made without one);
* W2 a REMOVE or BAN in an encrypted group carries a rekey that leaves out its target
  (and every member whose log forked);
* W3 before encrypted content, if the writer's cut is stale (X1), or the writer cannot
  derive its key, or someone left or was removed at the cut by an operation that no
  rekey of the frontier has in its past, the writer first writes a KEYS rekey (the
  last: X1 counts only the forwards in the cut, and a forward written concurrently
  with a LEAVE may have handed the leaver the current epoch);
* W4 a member who holds the current key forwards it to members at the cut who do not
  (a welcome after a join or an add, a secret someone missed, a slot that does not
  open);
* W5 a member forwards, by name, the part of the current epoch it holds when it does
  not hold all of it, and the epoch before each rekey written without pointers, to the
  members who lack it (:meth:`Encryptor.repairs_due`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import replace
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

from ..errors import ErrorCode, SealError, ValidationError
from . import crypto
from .epochs import (
    HISTORY_FULL,
    HISTORY_SINCE_JOIN,
    EpochView,
    GroupKeys,
    KeyBlock,
    build_block,
    decode_fields_and_mode,
    encode_fields,
    encrypted_kind,
    open_genesis_fields,
    seal_genesis_fields,
    slot_context,
)
from .membership.kinds import Kind, Role
from .membership.machine import MembershipMachine
from .membership.ops import (
    Ban,
    GenesisBody,
    Join,
    KeysOp,
    RemoveMember,
    SetMetadata,
    decode_op,
)
from .membership.world import _bits
from .seal import NONCE_SIZE, AadContext, verify_slots

if TYPE_CHECKING:
    from .membership.world import _Op

__all__ = ["MAX_DUTIES", "Duty", "Encryptor", "MemberKeys", "genesis_keys", "new_receive_key"]

_RECEIVE_SIZE: Final = 32
#: The most duty entries one round writes (each makes itself not due: a guard only).
MAX_DUTIES: Final = 16


def new_receive_key(random_bytes: Callable[[int], bytes]) -> tuple[bytes, bytes]:
    """``(private, public)``: a fresh X25519 receive key pair."""
    private = random_bytes(_RECEIVE_SIZE)
    return private, crypto.x25519_public(private)


def genesis_keys(
    founder: bytes, receive_public: bytes, random_bytes: Callable[[int], bytes]
) -> tuple[bytes, bytes]:
    """The key block of an encrypted group's genesis (12.10 C1): the founder's receive
    key and the first epoch secret, sealed to it. Returns ``(block bytes, secret)``; the
    caller keeps the secret under the genesis id once the entry is made."""
    block, secret = build_block(
        None,
        author=founder,
        seq=1,
        kind=Kind.GENESIS,
        K=0,
        secrets={},
        random_bytes=random_bytes,
        receive=receive_public,
        rekey=True,
    )
    assert secret is not None
    return block.encode(), secret


class Duty(NamedTuple):
    """A key entry a member owes the others (:meth:`Encryptor.duty`)."""

    #: ``welcome`` (HM2), ``forward`` (W4), ``repair`` (W5) or ``reseal`` (HM4).
    what: str
    #: The members a forward names.
    to: tuple[bytes, ...] = ()
    #: The past epoch a repair hands over (entry ids), empty for the current one.
    epoch: tuple[bytes, ...] = ()


class MemberKeys(Protocol):
    """A member's keys as an :class:`Encryptor` uses them (the edge keeps them in the
    sealed keyring): receive private keys by public key, secrets by entry id, a source
    of randomness, and ``save`` to call when they change."""

    @property
    def me(self) -> bytes: ...

    @property
    def receive(self) -> MutableMapping[bytes, bytes]: ...

    @property
    def secrets(self) -> MutableMapping[bytes, bytes]: ...

    def random_bytes(self, n: int) -> bytes: ...

    def save(self) -> None: ...


class Encryptor:
    """Encryption for member ``me`` of the group ``machine`` resolves.

    ``on_receive_key`` is called as soon as a new receive key is made, before any entry
    publishes it: the caller must keep the private key first (or nothing sealed to it
    could ever be opened)."""

    def __init__(
        self,
        machine: MembershipMachine,
        me: bytes,
        receive: MutableMapping[bytes, bytes],
        secrets: MutableMapping[bytes, bytes],
        *,
        random_bytes: Callable[[int], bytes],
        on_receive_key: Callable[[], None] | None = None,
    ) -> None:
        self.machine = machine
        self.me = me
        self.receive = receive
        self.secrets = secrets
        self._random = random_bytes
        self._on_receive_key = on_receive_key
        self._fields_memo: (
            tuple[tuple[object, int, int], tuple[str, str, str, int] | None] | None
        ) = None
        self._keys: GroupKeys | None = None
        self._learnt = -1
        self._scanned = 0
        self._departure_bits = 0
        #: Rekey entry id -> the recipients whose slot does not hold its secret.
        self._verified: dict[bytes, tuple[tuple[tuple[bytes, bytes], ...], frozenset[bytes]]] = {}

    @property
    def view(self) -> EpochView:
        return self.machine._core.epochs

    @property
    def encrypted(self) -> bool:
        return self.machine.group is not None and self.view.encrypted

    @property
    def keys(self) -> GroupKeys:
        if self._keys is None or self._keys.view is not self.view:
            self._keys = GroupKeys(self.view, self.me, self.receive, self.secrets)  # type: ignore[arg-type]
        return self._keys

    # -- reading

    def cut(self, ids: Iterable[bytes]) -> int:
        """The cut of an entry whose ``prev`` and ``links`` are ``ids``."""
        K = 0
        Kd = self.machine._core.K
        for i in ids:
            got = Kd.get(i)
            if got is None:
                raise ValidationError(
                    ErrorCode.BAD_LINKS, f"entry {i.hex()[:16]} is not resolved yet"
                )
            K |= got
        return K

    def learn(self) -> list[bytes]:
        """Open what is newly addressed to this member; the ids of new secrets."""
        if not self.encrypted:
            return []
        n = len(self.machine._core.ops)
        if n == self._learnt:
            return []
        self._learnt = n
        return self.keys.learn()

    def open(
        self, entry_id: bytes, author: bytes, seq: int, kind: int, body: bytes
    ) -> bytes | None:
        """The plaintext of an encrypted content body, None if it cannot be opened
        (no key yet, another epoch than its past's, altered)."""
        core = self.machine._core
        K = core.K.get(entry_id)
        group = core.group
        if K is None or group is None:
            return None
        self.learn()
        got = self.keys.open(K, AadContext(group, author, seq, kind), body)
        return got.plaintext

    # -- writing

    def needs_rekey(self, K: int) -> bool:
        """W3: content at cut ``K`` must be preceded by a rekey."""
        if not self.encrypted:
            return False
        self.learn()
        return (
            self.view.stale(K)
            or self.keys.epoch_key(K) is None
            or self._departed(K)
            or (self.since_join and bool(self.newcomers(K)))
        )

    def newcomers(self, K: int) -> set[bytes]:
        """Members at ``K`` who were not members where some rekey of its frontier was
        written: in a since-join group they get the key of a rekey written after their
        arrival (HM2), never an earlier epoch's."""
        view = self.view
        members = view.members(K)
        out: set[bytes] = set()
        for s in view.frontier(K):
            if s.kind == Kind.GENESIS:
                before: frozenset[bytes] = frozenset({s.author})
            else:
                before = view.members(s.K)
            out |= members - before
        return out

    def _departed(self, K: int) -> bool:
        """Someone who is not a member at ``K`` left or was removed by an operation in
        ``K`` that none of the frontier's rekeys has in its past."""
        view = self.view
        core = view.core
        frontier = view.frontier(K)
        after = K & self._departures()
        for s in frontier:
            after &= ~s.K
        if not after:
            return False
        members = view.members(K)
        for i in _bits(after):
            o = core.ops[i]
            who = o.author if o.kind == Kind.LEAVE else o.target
            if who is not None and who not in members:
                return True
        return False

    def _departures(self) -> int:
        """Bits of the LEAVE, REMOVE and BAN operations among the resolution's."""
        ops = self.machine._core.ops
        for o in ops[self._scanned :]:
            if o.kind in (Kind.LEAVE, Kind.REMOVE, Kind.BAN):
                self._departure_bits |= o.bit
        self._scanned = len(ops)
        return self._departure_bits

    def has_receive_key(self, K: int) -> bool:
        return self.view.receive_key(self.me, K) in self.receive

    def _fresh_receive(self) -> bytes:
        private, public = new_receive_key(self._random)
        self.receive[public] = private
        if self._on_receive_key is not None:
            self._on_receive_key()
        return public

    def _forked_members(self, K: int) -> list[bytes]:
        core = self.machine._core
        members = self.view.members(K)
        return sorted(m for m, rec in core.authors.items() if rec.fork and m in members)

    def op_body(self, kind: int, body: bytes, *, seq: int, K: int) -> tuple[bytes, bytes | None]:
        """The body of an operation about to be written at ``seq`` with cut ``K``, with
        the key block W1 and W2 ask for. Returns ``(body, new secret or None)``; the
        caller records the secret under the entry's id with :meth:`note`."""
        if not self.encrypted or kind not in (Kind.JOIN, Kind.REMOVE, Kind.BAN, Kind.SET_METADATA):
            return body, None
        op = decode_op(kind, body)
        if isinstance(op, SetMetadata):
            # 12.11a SM2: the fields go sealed, as content is, under the epoch of the cut.
            if op.sealed:
                return body, None
            group = self.machine.group
            assert group is not None
            mode = HISTORY_SINCE_JOIN if self.since_join else HISTORY_FULL
            fields = encode_fields(op.name, op.description, op.rules, mode)
            ctx = AadContext(group, self.me, seq, kind)
            sealed = self.keys.seal(K, ctx, fields, self._random(NONCE_SIZE))
            return SetMetadata(name="", sealed=sealed).encode(), None
        if isinstance(op, Join):
            if op.keys:
                return body, None
            block, _ = self._block(seq=seq, kind=kind, K=K, receive=self._fresh_receive())
            return replace(op, keys=block.encode()).encode(), None
        assert isinstance(op, RemoveMember | Ban)
        receive = b"" if self.has_receive_key(K) else self._fresh_receive()
        block, secret = self._block(
            seq=seq,
            kind=kind,
            K=K,
            receive=receive,
            rekey=True,
            target=op.member,
            exclude=[m for m in self._forked_members(K) if m != op.member],
        )
        return replace(op, keys=block.encode()).encode(), secret

    def keys_body(
        self,
        *,
        seq: int,
        K: int,
        rekey: bool = False,
        to: Iterable[bytes] = (),
        rotate: bool = False,
        epoch: Iterable[bytes] = (),
    ) -> tuple[bytes, bytes | None]:
        """A KEYS body: a rekey (W3), a forward to ``to`` (W4), and the publication of
        a fresh receive key when this member has none at ``K`` or ``rotate`` (W1).
        Returns ``(body, new secret or None)``."""
        fresh = rotate or not self.has_receive_key(K)
        receive = self._fresh_receive() if fresh else b""
        block, secret = self._block(
            seq=seq,
            kind=Kind.KEYS,
            K=K,
            receive=receive,
            rekey=rekey,
            to=sorted(to),
            exclude=self._forked_members(K) if rekey else [],
            epoch=sorted(epoch),
        )
        return KeysOp(keys=block.encode()).encode(), secret

    def _block(
        self,
        *,
        seq: int,
        kind: int,
        K: int,
        receive: bytes = b"",
        rekey: bool = False,
        target: bytes | None = None,
        exclude: Iterable[bytes] = (),
        to: Iterable[bytes] = (),
        epoch: Iterable[bytes] = (),
    ) -> tuple[KeyBlock, bytes | None]:
        self.learn()
        return build_block(
            self.view,
            author=self.me,
            seq=seq,
            kind=kind,
            K=K,
            secrets=self.secrets,
            random_bytes=self._random,
            receive=receive,
            rekey=rekey,
            exclude=list(exclude),
            target=target,
            to=list(to),
            epoch=list(epoch),
            pointers=not self.since_join,  # HM2: no way back past a since-join rekey
        )

    def metadata(self) -> tuple[str, str, str] | None:
        got = self._fields()
        return None if got is None else got[:3]

    @property
    def since_join(self) -> bool:
        """Whether the group gives newcomers only what is written from their joining on
        (12.11b HM1; read from the sealed fields that count now, full if unknown)."""
        got = self._fields()
        return got is not None and got[3] == HISTORY_SINCE_JOIN

    def _fields(self) -> tuple[str, str, str, int] | None:
        core = self.machine._core
        stamp = (core.world.meta, len(self.secrets), len(core.ops))
        if self._fields_memo is not None and self._fields_memo[0] == stamp:
            return self._fields_memo[1]
        got = self._open_fields()
        self._fields_memo = (stamp, got)
        return got

    def _open_fields(self) -> tuple[str, str, str, int] | None:
        """The group's name, description and rules now, opened (12.11a SM1 to SM3): from
        the operation that sets them last (04's metadata rule); None if it is sealed and
        this member cannot open it, or if nothing is sealed (a plaintext group)."""
        core = self.machine._core
        o = core.world.meta
        if o is None:
            return None
        body = o.body
        if isinstance(body, GenesisBody) and body.sealed:
            secret = self.secrets.get(o.id)
            if secret is None:
                self.learn()
                secret = self.secrets.get(o.id)
            if secret is None:
                return None
            data = open_genesis_fields(secret, o.author, body.sealed)
        elif isinstance(body, SetMetadata) and body.sealed and core.group is not None:
            self.learn()
            ctx = AadContext(core.group, o.author, o.seq, o.kind)
            data = self.keys.open(o.K & ~o.bit, ctx, body.sealed).plaintext
        else:
            return None
        fields = None if data is None else decode_fields_and_mode(data)
        if fields is None:
            return None
        try:  # the limits of the fields in the clear (04): beyond them, unreadable
            SetMetadata(name=fields[0], description=fields[1], rules=fields[2]).encode()
        except ValidationError:
            return None
        return fields

    def note(self, entry_id: bytes, secret: bytes | None) -> None:
        """Keep the secret of an entry this member just wrote."""
        if secret is not None:
            self.secrets[entry_id] = secret

    def content_body(self, kind: int, plaintext: bytes, *, seq: int, K: int) -> bytes:
        """The envelope of a content body about to be written at ``seq`` with cut ``K``.
        Raises :class:`SealError` ``NO_KEY`` when the key is not derivable (the caller
        rekeys first: :meth:`needs_rekey`)."""
        group = self.machine.group
        assert group is not None
        if not encrypted_kind(kind):
            return plaintext
        if self.view.stale(K):
            raise SealError(ErrorCode.NO_KEY, "the epoch at this cut reaches a non-member")
        ctx = AadContext(group, self.me, seq, kind)
        return self.keys.seal(K, ctx, plaintext, self._random(NONCE_SIZE))

    def duty(self, K: int) -> Duty | None:
        """What this member owes the others at cut ``K``, the first that is due, in the
        order a member's node writes them (12.11, 12.11b): the rekey that welcomes a
        newcomer of a since-join group (HM2), the forward of the current epoch (W4),
        the forward of a past epoch or of the part of one this member holds (W5), the
        sealed fields again (HM4). None when nothing is. Writing one makes it not due,
        so a caller writes duties until this is None (:meth:`duty_entry`)."""
        if not self.encrypted or self.me not in self.view.members(K):
            return None
        if self.welcome_rekey_due(K):
            return Duty("welcome")
        due = self.forward_due(K)
        if due:
            return Duty("forward", tuple(due))
        repairs = self.repairs_due(K)
        if repairs:
            epoch, members = repairs[0]
            return Duty("repair", tuple(members), epoch)
        if self.reseal_due(K):
            return Duty("reseal")
        return None

    def duty_entry(self, duty: Duty, *, seq: int, K: int) -> tuple[int, bytes, bytes | None]:
        """``(kind, body, new secret or None)`` of the entry that does ``duty``, about
        to be written at ``seq`` with cut ``K``."""
        if duty.what == "welcome":
            body, secret = self.keys_body(seq=seq, K=K, rekey=True)
        elif duty.what == "reseal":
            name, description, rules = self.metadata() or ("", "", "")
            plain = SetMetadata(name=name, description=description, rules=rules).encode()
            return (Kind.SET_METADATA, *self.op_body(Kind.SET_METADATA, plain, seq=seq, K=K))
        else:
            body, secret = self.keys_body(seq=seq, K=K, to=duty.to, epoch=duty.epoch)
        return Kind.KEYS, body, secret

    def forward_due(self, K: int) -> list[bytes]:
        """W4: members at cut ``K`` with a receive key who do not hold its key, if this
        member does (empty otherwise), stale or not: a stale epoch is one the next
        writer replaces (W3), but the entries already written under it are for the
        members at their cut. Members whose log forked are left out, as W2 and W3 leave
        them out of rekeys: forwarding to them would undo that."""
        if not self.encrypted:
            return []
        self.learn()
        if self.keys.epoch_key(K) is None:
            return []
        view = self.view
        skip = set(view.holders(K)) - self._garbled(K)
        skip.add(self.me)
        skip.update(self._forked_members(K))
        if self.since_join:
            skip |= self.newcomers(K)  # HM2: a rekey welcomes them, not a forward
        return sorted(
            m for m in view.members(K) if m not in skip and view.receive_key(m, K) is not None
        )

    def reseal_due(self, K: int) -> bool:
        """HM4: in a since-join group, a member at ``K`` cannot open the sealed fields
        that count (sealed under an epoch from before it joined), and this member, an
        admin, can: it seals them again in a SET_METADATA under the current epoch."""
        if not (self.encrypted and self.since_join) or self._fields() is None:
            return False
        view = self.view
        core = self.machine._core
        o = core.world.meta
        if o is None:
            return False
        level = core.world.level(self.me, K)[0]
        if level < int(Role.ADMIN) or self.needs_rekey(K):
            return False
        epoch = view.frontier(o.K) if o.kind == Kind.GENESIS else view.frontier(o.K & ~o.bit)
        holders = view.holders_of(epoch, K)
        return any(m not in holders and view.receive_key(m, K) is not None for m in view.members(K))

    def welcome_rekey_due(self, K: int) -> bool:
        """HM2: in a since-join group, a newcomer at ``K`` waits for a rekey written
        after its arrival; a member's node writes one (any member can)."""
        return self.encrypted and self.since_join and bool(self.newcomers(K))

    def repairs_due(self, K: int) -> list[tuple[tuple[bytes, ...], list[bytes]]]:
        """W5: epochs, or parts of one, that members at cut ``K`` cannot reach, as
        ``(the rekeys' entry ids, members)``: the part of the current epoch this member
        holds when it does not hold all of it (so W4 cannot act), and the epoch before
        each rekey written without pointers (by someone who lacked it: W3 never waits,
        and nobody can walk back past such a rekey). For each, the members at ``K`` with
        a receive key who do not hold it (``holders_of``, less the slots that do not
        open). Forked members are left out, as in W4."""
        if not self.encrypted:
            return []
        self.learn()
        view = self.view
        members = view.members(K)
        skip = set(self._forked_members(K))
        skip.add(self.me)
        out: list[tuple[tuple[bytes, ...], list[bytes]]] = []
        seen: set[tuple[bytes, ...]] = set()

        def due_for(epoch: tuple[_Op, ...]) -> None:
            ids = tuple(p.id for p in epoch)
            if not ids or ids in seen or not all(i in self.secrets for i in ids):
                return
            seen.add(ids)
            have = view.holders_of(epoch, K) - self._garbled(K, epoch)
            eligible = members
            if self.since_join:  # HM3: only who was a member when that epoch began
                for s in epoch:
                    eligible = eligible & (
                        frozenset({s.author}) if s.kind == Kind.GENESIS else view.members(s.K)
                    )
            due = sorted(
                m
                for m in eligible
                if m not in have and m not in skip and view.receive_key(m, K) is not None
            )
            if due:
                out.append((ids, due))

        frontier = view.frontier(K)
        if frontier and self.keys.epoch_key(K) is None:
            # This member holds part of the current epoch only (W4 needs all of it):
            # it hands over the part it holds; another holder the rest.
            due_for(tuple(s for s in frontier if s.id in self.secrets))
        for u in view.key_ops():
            block = view.block(u)
            if (
                not (K >> u.idx) & 1
                or block is None
                or not view.counts(u)
                or block.pointers
                or u.kind == Kind.GENESIS
            ):
                continue
            due_for(view.frontier(u.K & ~u.bit))
        return out

    def _garbled(self, K: int, epoch: Iterable[_Op] | None = None) -> set[bytes]:
        """Recipients of ``epoch``'s rekeys (the frontier of ``K`` by default) whose
        slot does not open to the secret (a holder recomputes every slot, 12.5 SV1) and
        whom no forward in ``K`` reached: the public holder set counts them, but they
        cannot derive the key."""
        view = self.view
        out: set[bytes] = set()
        for s in view.frontier(K) if epoch is None else epoch:
            bad = self._bad_slots(s)
            if not bad:
                continue
            for f in view.key_ops():
                if bad and (K >> f.idx) & 1 and s in view.covered(f):
                    block = view.block(f)
                    assert block is not None
                    bad = bad - set(block.to)
            out |= bad
        return out

    def _bad_slots(self, o: _Op) -> frozenset[bytes]:
        secret = self.secrets.get(o.id)
        block = self.view.block(o)
        group = self.machine.group
        if secret is None or block is None or group is None:
            return frozenset()
        # The recipients follow the bodies held (a late body can change them, KB6).
        rec = self.view.recipients(o)[: block.slot_count]
        cached = self._verified.get(o.id)
        if cached is not None and cached[0] == rec:
            return cached[1]
        g = bytes(32) if o.kind == Kind.GENESIS else group
        ctx = slot_context(o.author, o.seq, o.kind)
        try:
            bad = verify_slots(secret, [key for _, key in rec], block.rekey, g, ctx)
        except (SealError, ValueError):
            bad = list(range(len(rec)))
        got = frozenset(rec[i][0] for i in bad if i < len(rec))
        self._verified[o.id] = (rec, got)
        return got


def genesis_body(
    name: str,
    *,
    founder: bytes,
    receive: MutableMapping[bytes, bytes],
    random_bytes: Callable[[int], bytes],
    description: str = "",
    rules: str = "",
    founder_name: str = "",
    history: int = HISTORY_FULL,
) -> tuple[bytes, bytes]:
    """The body of an encrypted group's genesis and its first secret. The name,
    description and rules are sealed (12.11a SM1): a relay or a stolen store sees the
    group's existence, not what it is called."""
    # The fields' limits, checked as a plaintext genesis is (ValidationError).
    GenesisBody(name=name, description=description, rules=rules, founder_name=founder_name).encode()
    private, public = new_receive_key(random_bytes)
    receive[public] = private
    keys, secret = genesis_keys(founder, public, random_bytes)
    sealed = seal_genesis_fields(
        secret,
        founder,
        encode_fields(name, description, rules, history),
        random_bytes(NONCE_SIZE),
    )
    body = GenesisBody(name="", founder_name=founder_name, keys=keys, sealed=sealed).encode()
    return body, secret


__all__ += ["genesis_body"]
