"""Reconciliation and live replication between two peers (spec/06-sync.md).

Theory of operation
-------------------
A replica never holds a gap in an author's chain: an entry is stored only after its
``prev``. So the entries a replica holds of a group are exactly described by its
*tips*: the stored entries that no stored entry of the same author follows (one per
author, more after a fork). Two replicas hold the same entries iff their tip sets are
equal, and a replica that knows the other's tips knows, per author, from which
sequence number on the other lacks entries.

One session runs per secure connection, symmetric for both peers:

1. ``HELLO``: each side sends a 16-byte *group token* per group it holds,
   ``BLAKE2b-128(key=group_id, "p2pcomm/1/group-token" || role || session_hash)``.
   Only someone who knows a group id can recognise its token, and tokens differ in
   every session, so a non-member learns nothing about which groups a peer is in
   (beyond their number). Both sides derive the same list of shared groups, sorted
   by group id; messages name a group by its index ``gi`` in that list.
2. ``SUMMARY``: per shared group, a 16-byte fingerprint of the tip set. Equal
   fingerprints end reconciliation at once: two replicas in sync exchange
   ``HELLO`` and ``SUMMARY`` only, a constant number of bytes whatever the group's size.
3. ``TIPS``: on a mismatch both send their tip lists; each then sends the entries the
   other lacks (``RUN`` messages, in causal order, compressed: the receiver rebuilds
   every header from the run, so ids and signatures are checked against what it
   rebuilt) and ``DONE``.
4. ``WANT``/``ENTRIES``: entries that arrived but wait for a dependency the other side
   may hold (fork branches, for instance) are asked for by id.
5. After both ``DONE``: *live* mode. New entries are pushed as ``RUN`` messages as soon
   as they are appended or accepted.

This module is the pure machine: it parses and builds messages, tracks per-group
state and raises :class:`RemoteProtocolError` for anything out of order or malformed.
Reading the store and ingesting entries is the caller's job, told by events.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, cast

import msgpack

from ..errors import DecodeError, ErrorCode, LocalProtocolError, RemoteProtocolError
from . import crypto
from .encoding import (
    Limits,
    Value,
    _raw_unpack,
    expect_array,
    expect_bool,
    expect_bytes,
    expect_uint,
)
from .log import (
    KIND_GENESIS,
    MAX_BODY_SIZE,
    MAX_KIND,
    MAX_LINKS,
    MAX_U63,
    ZERO_ID,
    Entry,
    Header,
    decode_entry,
    encode_entry,
    encode_header,
    entry_id,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "SYNC_VERSION",
    "EntriesReceived",
    "ForkProofsReceived",
    "GossipReceived",
    "GroupState",
    "GroupSynced",
    "Msg",
    "SharedGroups",
    "SyncEvent",
    "SyncSession",
    "TheirTips",
    "Tip",
    "Wanted",
    "build_runs",
    "decode_gossip_entry",
    "encode_gossip",
    "encode_gossip_entry",
    "group_token",
    "merge_by_position",
    "plan_send",
    "tips_fingerprint",
]

SYNC_VERSION: Final = 1
#: Largest message (after the 4-byte length prefix).
MAX_MESSAGE_SIZE: Final = 1 << 20
MAX_GROUPS: Final = 256
#: Tips in one TIPS message: 1 MiB holds about 14,000 (74 bytes each); groups are
#: small (a few hundred members), so this bounds forks rather than membership.
MAX_TIPS: Final = 10_000
MAX_RUN: Final = 4096
MAX_WANT: Final = 4096
#: Fork proofs in one FORKS message, and the bytes of proofs a sender puts in one
#: (under the message size, with room for the framing).
MAX_FORKS: Final = 64
FORKS_BYTES: Final = MAX_MESSAGE_SIZE - 1024
#: Invitation proofs in one HELLO (a node joining several groups at once).
MAX_PROOFS: Final = 4
#: A sender closes a RUN message once it reaches this many bytes of bodies.
RUN_BYTES: Final = 256 * 1024
#: Largest message before the peer's HELLO has arrived (M1, revision 3): a HELLO is at
#: at most 4,879 bytes (256 tokens and 4 proofs), so a peer cannot make a receiver buffer
#: 1 MiB before saying who it syncs with.
MAX_HELLO_SIZE: Final = 8192
#: Largest gossip message (07 7.2) carried in one GOSSIP message.
MAX_GOSSIP: Final = 65_664

_LIMITS: Final = Limits(
    max_size=MAX_MESSAGE_SIZE, max_bytes=MAX_MESSAGE_SIZE, max_array=MAX_TIPS, max_depth=4
)
_TOKEN_LABEL: Final = b"p2pcomm/1/group-token"

_packb = msgpack.packb


class Msg(enum.IntEnum):
    """Message type numbers (the first element of every message)."""

    HELLO = 0
    SUMMARY = 1
    TIPS = 2
    RUN = 3
    DONE = 4
    WANT = 5
    ENTRIES = 6
    FORKS = 7
    GOSSIP = 8


#: ``(author, seq, entry_id)``
Tip = tuple[bytes, int, bytes]


def group_token(group: bytes, session_hash: bytes, initiator: bool) -> bytes:
    """The 16-byte token naming ``group`` in this session, for the given sender role."""
    role = b"I" if initiator else b"R"
    return crypto.blake2b_keyed(group, _TOKEN_LABEL + role + session_hash, 16)


def tips_fingerprint(tips: Iterable[Tip]) -> bytes:
    """BLAKE2b-128 over the sorted tips, each ``author || u64be(seq) || id``."""
    data = b"".join(a + s.to_bytes(8, "big") + i for a, s, i in sorted(tips))
    return crypto.blake2b_keyed(b"", b"p2pcomm/1/tips" + data, 16)


def plan_send(mine: Sequence[Tip], theirs: Sequence[Tip]) -> dict[bytes, int]:
    """For each author, the sequence after which the other side lacks entries we hold.

    Authors whose tips the other side holds exactly are left out. Where our tip is on
    a branch the other does not hold (a fork), we send from that branch's sequence;
    anything still missing below it is asked for with ``WANT``.
    """
    their_ids = {t[2] for t in theirs}
    their_max: dict[bytes, int] = {}
    for author, seq, _ in theirs:
        if seq > their_max.get(author, 0):
            their_max[author] = seq
    plan: dict[bytes, int] = {}
    for author, seq, eid in mine:
        if eid in their_ids:
            continue
        known = their_max.get(author, 0)
        start = known if seq > known else seq - 1
        plan[author] = min(plan.get(author, start), start)
    return plan


def merge_by_position(streams: Iterable[Iterator[tuple[int, Entry]]]) -> Iterator[Entry]:
    """Merge per-author streams of ``(position, entry)`` into one causal order."""
    for _, e in heapq.merge(*streams, key=lambda pe: pe[0]):
        yield e


def build_runs(entries: Iterable[Entry], window: int = 2048) -> Iterator[list[Entry]]:
    """Group entries (in causal order) into runs: consecutive entries of one author's
    chain. Within each window of ``window`` entries, an author's entries are gathered
    into one run, so interleaved histories still make long runs; the receiver's pending
    set absorbs the reordering inside a window."""
    buf: list[Entry] = []

    def flush() -> Iterator[list[Entry]]:
        runs: dict[bytes, list[list[Entry]]] = {}
        order: list[list[Entry]] = []
        for e in buf:
            h = e.header
            chains = runs.setdefault(h.author, [])
            last = chains[-1] if chains else None
            if last is not None and last[-1].id == h.prev and len(last) < MAX_RUN:
                last.append(e)
            else:
                run = [e]
                chains.append(run)
                order.append(run)
        yield from order

    for e in entries:
        buf.append(e)
        if len(buf) >= window:
            yield from flush()
            buf = []
    if buf:
        yield from flush()


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedGroups:
    """The groups both peers hold were found. Offer each one's tips next."""

    #: Group ids, in the order that defines their indexes.
    groups: tuple[bytes, ...]
    #: Invitation proofs the peer presented in its HELLO (6.5.1; ``access.py``).
    proofs: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TheirTips:
    """Tips differ: send what ``plan_send(our_tips, tips)`` says, then ``send_done``."""

    group: bytes
    tips: tuple[Tip, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EntriesReceived:
    """Entries arrived: ingest them (``bulk`` runs may use chain authentication)."""

    group: bytes
    entries: tuple[Entry, ...]
    #: True for a ``RUN`` (one author's contiguous chain), False for ``ENTRIES``.
    bulk: bool
    #: True when pushed in live mode rather than during reconciliation.
    live: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Wanted:
    """The peer asks for entries by id: answer with ``send_entries``."""

    group: bytes
    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkProofsReceived:
    group: bytes
    proofs: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSynced:
    """Reconciliation of ``group`` finished; live mode from now on."""

    group: bytes
    #: True when the summaries matched at once (nothing was exchanged).
    already_equal: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class GossipReceived:
    """A gossip message (spec/07-gossip.md 7.2) for ``group``: hand it to the group's
    gossip state (a node that runs none ignores it)."""

    group: bytes
    message: bytes


SyncEvent = (
    SharedGroups
    | TheirTips
    | EntriesReceived
    | Wanted
    | ForkProofsReceived
    | GroupSynced
    | GossipReceived
)


def encode_gossip(gi: int, message: bytes) -> bytes:
    """A GOSSIP message ``[8, gi, message]`` with its length prefix (6.5.9). Pure: a
    driver may build it outside the session (it changes no session state)."""
    if len(message) > MAX_GOSSIP:
        raise LocalProtocolError(
            ErrorCode.TOO_LARGE, f"gossip message over {MAX_GOSSIP} bytes", found=len(message)
        )
    payload = cast(bytes, _packb((Msg.GOSSIP, gi, message), use_bin_type=True))
    return len(payload).to_bytes(4, "big") + payload


class GroupState(enum.Enum):
    """Where one shared group is in the session."""

    #: Waiting for our own tips (``offer_tips``) and/or the peer's SUMMARY.
    SUMMARY = "summary"
    #: Fingerprints differ; tip lists are being exchanged.
    TIPS = "tips"
    #: Sending and receiving the missing entries.
    RECONCILING = "reconciling"
    #: In sync; new entries are pushed as they come.
    LIVE = "live"


@dataclass(slots=True)
class _Group:
    gid: bytes
    state: GroupState = GroupState.SUMMARY
    our_fp: bytes | None = None
    our_tips: tuple[Tip, ...] = ()
    their_fp: bytes | None = None
    tips_sent: bool = False
    their_tips: tuple[Tip, ...] | None = None
    done_sent: bool = False
    done_received: bool = False
    wants_outstanding: int = 0
    wanted: set[bytes] = field(default_factory=set)


def _err(code: ErrorCode, message: str, **kw: object) -> RemoteProtocolError:
    return RemoteProtocolError(code, message, **kw)


class SyncSession:
    """One peer's side of a sync session (sans-IO, h11 style).

    Feed received bytes with :meth:`receive_data`, take events with
    :meth:`next_event`, and send what :meth:`data_to_send` returns. Commands
    (``offer_tips``, ``send_entries``, ``send_done``, ``want``, ``push``) queue
    outgoing messages.
    """

    def __init__(
        self,
        *,
        initiator: bool,
        session_hash: bytes,
        groups: Iterable[bytes],
        proofs: Sequence[bytes] = (),
    ) -> None:
        self.initiator = initiator
        self._session_hash = session_hash
        if len(proofs) > MAX_PROOFS or any(len(p) != 64 for p in proofs):
            raise LocalProtocolError(
                ErrorCode.TOO_LARGE,
                f"at most {MAX_PROOFS} invitation proofs of 64 bytes per session",
                found=len(proofs),
            )
        self._proofs = list(proofs)
        self._my_groups = sorted(set(groups))
        if len(self._my_groups) > MAX_GROUPS:
            raise LocalProtocolError(
                ErrorCode.TOO_LARGE,
                f"at most {MAX_GROUPS} groups per session",
                found=len(self._my_groups),
            )
        self._buf = bytearray()
        self._out: list[bytes] = []
        self._events: list[SyncEvent] = []
        self._hello_sent = False
        self._hello_received = False
        self.shared: tuple[bytes, ...] = ()
        self._groups: dict[bytes, _Group] = {}
        #: Counters for statistics and tests: payload bytes of sync messages.
        self.bytes_sent = 0
        self.bytes_received = 0
        self.messages_received = 0

    # -- bytes in and out

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> None:
        self._buf += data
        buf = self._buf
        offset = 0
        while len(buf) - offset >= 4:
            n = int.from_bytes(buf[offset : offset + 4], "big")
            limit = MAX_MESSAGE_SIZE if self._hello_received else MAX_HELLO_SIZE
            if n > limit:
                raise _err(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"sync message of {n} bytes exceeds {limit}"
                    + ("" if self._hello_received else " (before HELLO)"),
                    expected=limit,
                    found=n,
                )
            if len(buf) - offset - 4 < n:
                break
            payload = bytes(buf[offset + 4 : offset + 4 + n])
            offset += 4 + n
            self.bytes_received += 4 + n
            self.messages_received += 1
            self._on_message(payload)
        del buf[:offset]

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete message received so far (0 between messages)."""
        return len(self._buf)

    def next_event(self) -> SyncEvent | None:
        return self._events.pop(0) if self._events else None

    def events(self) -> list[SyncEvent]:
        ev, self._events = self._events, []
        return ev

    def _send(self, msg: Sequence[object]) -> None:
        payload = cast(bytes, _packb(msg, use_bin_type=True))
        if len(payload) > MAX_MESSAGE_SIZE:  # pragma: no cover - builders keep under
            raise LocalProtocolError(
                ErrorCode.TOO_LARGE, "sync message too large", found=len(payload)
            )
        self._out.append(len(payload).to_bytes(4, "big") + payload)
        self.bytes_sent += 4 + len(payload)

    # -- queries

    def state(self, group: bytes) -> GroupState | None:
        g = self._groups.get(group)
        return None if g is None else g.state

    def index(self, group: bytes) -> int | None:
        """The group index ``gi`` of a shared group (None before HELLO or if not
        shared). Read-only: safe beside a thread that feeds the session."""
        try:
            return self.shared.index(group)
        except ValueError:
            return None

    @property
    def all_live(self) -> bool:
        return bool(self._hello_received) and all(
            g.state is GroupState.LIVE for g in self._groups.values()
        )

    # -- commands

    def start(self) -> None:
        """Queue HELLO. Call once, first."""
        if self._hello_sent:
            raise LocalProtocolError(ErrorCode.BAD_STATE, "start() was already called")
        self._hello_sent = True
        tokens = [group_token(g, self._session_hash, self.initiator) for g in self._my_groups]
        if self._proofs:
            self._send((Msg.HELLO, SYNC_VERSION, tokens, self._proofs))
        else:
            self._send((Msg.HELLO, SYNC_VERSION, tokens))

    def _group(self, group: bytes) -> tuple[int, _Group]:
        g = self._groups.get(group)
        if g is None:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE, f"group {group.hex()[:16]} is not shared in this session"
            )
        return self.shared.index(group), g

    def offer_tips(self, group: bytes, tips: Sequence[Tip]) -> None:
        """Our tips of a shared group: queues SUMMARY (answer to :class:`SharedGroups`)."""
        gi, g = self._group(group)
        if g.our_fp is not None:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE, "tips were already offered for this group"
            )
        if len(tips) > MAX_TIPS:
            raise LocalProtocolError(
                ErrorCode.TOO_LARGE,
                f"group has {len(tips)} tips; a session carries at most {MAX_TIPS}",
                expected=MAX_TIPS,
                found=len(tips),
            )
        g.our_tips = tuple(sorted(tips))
        g.our_fp = tips_fingerprint(g.our_tips)
        self._send((Msg.SUMMARY, gi, g.our_fp))
        self._compare(g)

    def send_entries(
        self, group: bytes, entries: Iterable[Entry], *, as_runs: bool = True, more: bool = False
    ) -> None:
        """Queue entries for the peer. ``as_runs`` packs them as RUN messages (entries
        must be in causal order); otherwise as full encodings (answer to WANT), whose
        last ENTRIES message says ``more`` (True: a later call continues the answer)."""
        gi, _g = self._group(group)
        if as_runs:
            for run in build_runs(entries):
                self._send_run(gi, run)
        else:
            # A reply to WANT is one or more ENTRIES messages; ``more`` is true on
            # all but the last.
            batch: list[bytes] = []
            size = 0
            for e in entries:
                blob = encode_entry(e)
                if batch and (size + len(blob) > RUN_BYTES or len(batch) >= MAX_RUN):
                    self._send((Msg.ENTRIES, gi, batch, True))
                    batch, size = [], 0
                batch.append(blob)
                size += len(blob)
            self._send((Msg.ENTRIES, gi, batch, more))

    def _send_run(self, gi: int, run: list[Entry]) -> None:
        start = 0
        while start < len(run):
            items: list[list[object]] = []
            size = 0
            first = run[start]
            h0 = first.header
            ts = h0.timestamp
            i = start
            while i < len(run) and len(items) < MAX_RUN and size < RUN_BYTES:
                e = run[i]
                h = e.header
                items.append(_run_item(e, h.timestamp - ts))
                ts = h.timestamp
                size += 100 + 32 * len(h.links) + (0 if e.body is None else len(e.body))
                i += 1
            self._send((Msg.RUN, gi, h0.author, h0.seq, h0.prev, h0.timestamp, items))
            start = i

    def send_done(self, group: bytes) -> None:
        """We sent everything the peer lacked (answer to :class:`TheirTips`)."""
        gi, g = self._group(group)
        if g.state is not GroupState.RECONCILING or g.done_sent:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE, f"cannot send DONE in state {g.state.value}"
            )
        g.done_sent = True
        self._send((Msg.DONE, gi))
        self._maybe_live(g)

    def want(self, group: bytes, ids: Iterable[bytes], *, again: bool = False) -> int:
        """Ask for entries by id (dependencies still missing after ingest). Ids asked
        for before in this session are not asked again, unless ``again`` (asking for
        an entry we hold is how a replica learns that the peer holds it too: the
        reply carries the entries the peer holds). Returns how many were asked."""
        gi, g = self._group(group)
        fresh = [i for i in ids if again or i not in g.wanted][:MAX_WANT]
        if not fresh:
            return 0
        g.wanted.update(fresh)
        g.wants_outstanding += 1
        self._send((Msg.WANT, gi, fresh))
        return len(fresh)

    def push(self, group: bytes, entries: Sequence[Entry]) -> None:
        """Live mode: push new entries (causal order) to the peer."""
        gi, g = self._group(group)
        if g.state is not GroupState.LIVE:
            raise LocalProtocolError(ErrorCode.BAD_STATE, f"cannot push in state {g.state.value}")
        for run in build_runs(entries):
            self._send_run(gi, run)

    def send_fork_proofs(self, group: bytes, proofs: Sequence[bytes]) -> None:
        """Queue FORKS messages: as many as it takes to keep each within 64 proofs and
        the message size (6.5.8)."""
        gi, _ = self._group(group)
        batch: list[bytes] = []
        size = 0
        for p in proofs:
            if batch and (len(batch) >= MAX_FORKS or size + len(p) > FORKS_BYTES):
                self._send((Msg.FORKS, gi, batch))
                batch, size = [], 0
            batch.append(p)
            size += len(p) + 5
        if batch:
            self._send((Msg.FORKS, gi, batch))

    # -- receiving

    def _on_message(self, payload: bytes) -> None:
        try:
            value = _raw_unpack(payload, _LIMITS)
            msg = expect_array(value, "sync message")
            if not msg:
                raise _err(ErrorCode.MALFORMED, "empty sync message")
            kind = expect_uint(msg[0], "message type", maximum=len(Msg) - 1)
            if _packb(value, use_bin_type=True) != payload:
                raise _err(ErrorCode.NOT_CANONICAL, "sync message is not canonical msgpack")
            handler = self._handlers[Msg(kind)]
            handler(self, msg)
        except DecodeError as exc:
            raise _err(
                exc.code, f"bad sync message: {exc.message}", expected=exc.expected, found=exc.found
            ) from None

    def _require_hello(self, what: str) -> None:
        if not self._hello_received:
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, f"{what} before HELLO")

    def _gi(self, value: object) -> _Group:
        gi = expect_uint(value, "group index", maximum=MAX_GROUPS)
        if gi >= len(self.shared):
            raise _err(
                ErrorCode.UNEXPECTED_MESSAGE, f"group index {gi} is not a shared group", found=gi
            )
        return self._groups[self.shared[gi]]

    def on_hello(self, msg: list[Value]) -> None:
        if self._hello_received:
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, "second HELLO")
        if len(msg) != 4:
            expect_array(msg, "HELLO", length=3)
        version = expect_uint(msg[1], "sync version")
        if version != SYNC_VERSION:
            raise _err(
                ErrorCode.WRONG_PROTOCOL_VERSION,
                f"peer speaks sync version {version}, we speak {SYNC_VERSION}",
                expected=SYNC_VERSION,
                found=version,
            )
        tokens = expect_array(msg[2], "group tokens", max_length=MAX_GROUPS)
        theirs = {expect_bytes(t, "group token", length=16) for t in tokens}
        proofs: tuple[bytes, ...] = ()
        if len(msg) == 4:
            items = expect_array(msg[3], "invitation proofs", max_length=MAX_PROOFS)
            if not items:
                raise _err(ErrorCode.WRONG_LENGTH, "HELLO with an empty list of invitation proofs")
            proofs = tuple(expect_bytes(p, "invitation proof", length=64) for p in items)
        self._hello_received = True
        peer_is_initiator = not self.initiator
        self.shared = tuple(
            g
            for g in self._my_groups
            if group_token(g, self._session_hash, peer_is_initiator) in theirs
        )
        self._groups = {g: _Group(g) for g in self.shared}
        self._events.append(SharedGroups(groups=self.shared, proofs=proofs))

    def on_summary(self, msg: list[Value]) -> None:
        self._require_hello("SUMMARY")
        expect_array(msg, "SUMMARY", length=3)
        g = self._gi(msg[1])
        if g.their_fp is not None:
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, "second SUMMARY for a group")
        g.their_fp = expect_bytes(msg[2], "fingerprint", length=16)
        self._compare(g)

    def _compare(self, g: _Group) -> None:
        if g.our_fp is None or g.their_fp is None or g.state is not GroupState.SUMMARY:
            return
        if g.our_fp == g.their_fp:
            g.state = GroupState.LIVE
            self._events.append(GroupSynced(group=g.gid, already_equal=True))
            return
        g.state = GroupState.TIPS
        g.tips_sent = True
        gi = self.shared.index(g.gid)
        self._send((Msg.TIPS, gi, [list(t) for t in g.our_tips]))
        self._tips_ready(g)

    def on_tips(self, msg: list[Value]) -> None:
        self._require_hello("TIPS")
        expect_array(msg, "TIPS", length=3)
        g = self._gi(msg[1])
        if g.their_tips is not None:
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, "second TIPS for a group")
        if g.state not in (GroupState.SUMMARY, GroupState.TIPS) or g.their_fp is None:
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, f"TIPS in state {g.state.value}")
        raw = expect_array(msg[2], "tips", max_length=MAX_TIPS)
        tips: list[Tip] = []
        for item in raw:
            t = expect_array(item, "tip", length=3)
            tips.append(
                (
                    expect_bytes(t[0], "tip author", length=32),
                    expect_uint(t[1], "tip seq", minimum=1, maximum=MAX_U63),
                    expect_bytes(t[2], "tip id", length=32),
                )
            )
        g.their_tips = tuple(tips)
        if tips_fingerprint(g.their_tips) != g.their_fp:
            raise _err(ErrorCode.MALFORMED, "tips do not match the peer's own summary")
        self._tips_ready(g)

    def _tips_ready(self, g: _Group) -> None:
        if g.state is GroupState.TIPS and g.tips_sent and g.their_tips is not None:
            g.state = GroupState.RECONCILING
            self._events.append(TheirTips(group=g.gid, tips=g.their_tips))

    def on_run(self, msg: list[Value]) -> None:
        self._require_hello("RUN")
        expect_array(msg, "RUN", length=7)
        g = self._gi(msg[1])
        if g.state not in (GroupState.RECONCILING, GroupState.LIVE):
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, f"RUN in state {g.state.value}")
        entries = decode_run(g.gid, msg)
        self._events.append(
            EntriesReceived(
                group=g.gid, entries=tuple(entries), bulk=True, live=g.state is GroupState.LIVE
            )
        )

    def on_done(self, msg: list[Value]) -> None:
        self._require_hello("DONE")
        expect_array(msg, "DONE", length=2)
        g = self._gi(msg[1])
        if g.state is not GroupState.RECONCILING or g.done_received:
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, f"DONE in state {g.state.value}")
        g.done_received = True
        self._maybe_live(g)

    def _maybe_live(self, g: _Group) -> None:
        if g.done_sent and g.done_received and g.state is GroupState.RECONCILING:
            g.state = GroupState.LIVE
            self._events.append(GroupSynced(group=g.gid, already_equal=False))

    def on_want(self, msg: list[Value]) -> None:
        self._require_hello("WANT")
        expect_array(msg, "WANT", length=3)
        g = self._gi(msg[1])
        if g.state not in (GroupState.RECONCILING, GroupState.LIVE):
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, f"WANT in state {g.state.value}")
        ids = expect_array(msg[2], "wanted ids", max_length=MAX_WANT)
        self._events.append(
            Wanted(group=g.gid, ids=tuple(expect_bytes(i, "wanted id", length=32) for i in ids))
        )

    def on_entries(self, msg: list[Value]) -> None:
        self._require_hello("ENTRIES")
        expect_array(msg, "ENTRIES", length=4)
        g = self._gi(msg[1])
        if g.wants_outstanding <= 0:
            raise _err(ErrorCode.UNEXPECTED_MESSAGE, "ENTRIES without a WANT")
        blobs = expect_array(msg[2], "entries", max_length=MAX_RUN)
        more = expect_bool(msg[3], "more")
        entries = tuple(
            decode_entry(expect_bytes(b, "entry", max_length=MAX_MESSAGE_SIZE)) for b in blobs
        )
        if not more:
            g.wants_outstanding -= 1
        self._events.append(
            EntriesReceived(
                group=g.gid, entries=entries, bulk=False, live=g.state is GroupState.LIVE
            )
        )

    def on_forks(self, msg: list[Value]) -> None:
        self._require_hello("FORKS")
        expect_array(msg, "FORKS", length=3)
        g = self._gi(msg[1])
        proofs = expect_array(msg[2], "fork proofs", max_length=MAX_FORKS)
        self._events.append(
            ForkProofsReceived(
                group=g.gid,
                proofs=tuple(expect_bytes(p, "fork proof", max_length=65536) for p in proofs),
            )
        )

    def on_gossip(self, msg: list[Value]) -> None:
        self._require_hello("GOSSIP")
        expect_array(msg, "GOSSIP", length=3)
        g = self._gi(msg[1])
        message = expect_bytes(msg[2], "gossip message", max_length=MAX_GOSSIP)
        self._events.append(GossipReceived(group=g.gid, message=message))

    _handlers: ClassVar[dict[Msg, Callable[[SyncSession, list[Value]], None]]] = {
        Msg.HELLO: on_hello,
        Msg.SUMMARY: on_summary,
        Msg.TIPS: on_tips,
        Msg.RUN: on_run,
        Msg.DONE: on_done,
        Msg.WANT: on_want,
        Msg.ENTRIES: on_entries,
        Msg.FORKS: on_forks,
        Msg.GOSSIP: on_gossip,
    }


def _run_item(e: Entry, dt: int) -> list[object]:
    """One entry of a RUN (6.5.4): what the receiver cannot recompute."""
    h = e.header
    if e.body is not None:
        return [dt, h.kind, list(h.links), e.body, e.signature]
    return [dt, h.kind, list(h.links), h.body_hash, e.signature, h.body_size]


def encode_gossip_entry(entry: Entry) -> bytes:
    """An entry as the payload of a gossip message (07 N7, revision 4): the fields of a
    one-entry RUN, ``[author, seq, prev, timestamp, [item]]`` with a delta of 0. The
    group (known from the GOSSIP message's ``gi``), the body's hash and size are left
    out: the receiver recomputes them, and with them the entry id."""
    h = entry.header
    return cast(
        bytes,
        _packb([h.author, h.seq, h.prev, h.timestamp, [_run_item(entry, 0)]], use_bin_type=True),
    )


def decode_gossip_entry(group: bytes, payload: bytes) -> Entry:
    """The entry a gossip payload carries for ``group`` (07 N7); :class:`RemoteProtocolError`
    (``malformed``, ``not-canonical``, ...) if the payload is not exactly
    :func:`encode_gossip_entry`'s form. Headers are rebuilt as for a RUN: the id is
    computed here, and the signature is checked later, by ingest."""
    try:
        value = _raw_unpack(payload, _LIMITS)
        fields = expect_array(value, "gossip entry", length=5)
        item = expect_array(fields[4], "gossip entry items", length=1)[0]
        if type(item) is not list or not item or item[0] != 0:
            raise _err(ErrorCode.MALFORMED, "gossip entry: the timestamp delta must be 0")
        if _packb(value, use_bin_type=True) != payload:
            raise _err(ErrorCode.NOT_CANONICAL, "gossip entry is not canonical msgpack")
        return decode_run(group, [Msg.RUN, 0, *fields])[0]
    except DecodeError as exc:
        raise _err(
            exc.code, f"bad gossip entry: {exc.message}", expected=exc.expected, found=exc.found
        ) from None


def decode_run(group: bytes, msg: list[Value]) -> list[Entry]:
    """Rebuild the entries of a RUN message ``[3, gi, author, seq, prev, ts, items]``.

    Headers are reconstructed, so ids and the hash chain are computed here, never
    taken from the peer; the signatures are then checked against them by ingest.
    """
    author = expect_bytes(msg[2], "run author", length=32)
    seq = expect_uint(msg[3], "run seq", minimum=1, maximum=MAX_U63)
    prev_raw = msg[4]
    prev = None if prev_raw is None else expect_bytes(prev_raw, "run prev", length=32)
    ts = expect_uint(msg[5], "run timestamp", maximum=MAX_U63)
    items = expect_array(msg[6], "run items", max_length=MAX_RUN)
    if not items:
        raise _err(ErrorCode.MALFORMED, "empty RUN")
    out: list[Entry] = []
    blake = crypto.blake2b_256
    packb = _packb
    for raw in items:
        # Fast path: a well-formed item with a body and no links.
        if (
            type(raw) is list
            and len(raw) == 5
            and type(raw[0]) is int
            and 0 <= raw[0] <= MAX_U63
            and type(raw[1]) is int
            and 0 <= raw[1] <= MAX_KIND
            and raw[2] == []
            and type(raw[3]) is bytes
            and len(raw[3]) <= MAX_BODY_SIZE
            and type(raw[4]) is bytes
            and len(raw[4]) == 64
            and not (seq == 1 and raw[1] == KIND_GENESIS)
        ):
            ts += raw[0]
            fast_body: bytes = raw[3]
            if ts > MAX_U63:
                raise _err(ErrorCode.OUT_OF_RANGE, "timestamp out of range")
            header = Header(
                1, group, author, seq, prev, (), ts, raw[1], blake(fast_body), len(fast_body)
            )
            hb = packb(header, use_bin_type=True)
            eid = blake(hb)
            out.append(Entry(eid, header, hb, raw[4], fast_body))
            prev = eid
            seq += 1
            if seq > MAX_U63:
                raise _err(ErrorCode.OUT_OF_RANGE, "sequence out of range")
            continue
        if type(raw) is not list or len(raw) not in (5, 6):
            raise _err(ErrorCode.MALFORMED, "run item must be an array of 5 or 6")
        dt = expect_uint(raw[0], "timestamp delta", maximum=MAX_U63)
        ts += dt
        if ts > MAX_U63:
            raise _err(ErrorCode.OUT_OF_RANGE, "timestamp out of range")
        kind = expect_uint(raw[1], "kind", maximum=MAX_KIND)
        links_raw = expect_array(raw[2], "links", max_length=MAX_LINKS)
        links = tuple(expect_bytes(x, "link", length=32) for x in links_raw)
        sig = expect_bytes(raw[4], "signature", length=crypto.SIGNATURE_SIZE)
        body: bytes | None
        if len(raw) == 5:
            body = expect_bytes(raw[3], "body", max_length=MAX_BODY_SIZE)
            body_hash, body_size = blake(body), len(body)
        else:
            body = None
            body_hash = expect_bytes(raw[3], "body hash", length=32)
            body_size = expect_uint(raw[5], "body size", maximum=MAX_BODY_SIZE)
        grp = ZERO_ID if (seq == 1 and kind == KIND_GENESIS) else group
        header = Header(1, grp, author, seq, prev, links, ts, kind, body_hash, body_size)
        hb = encode_header(header)
        eid = entry_id(hb)
        out.append(Entry(eid, header, hb, sig, body))
        prev = eid
        seq += 1
        if seq > MAX_U63:
            raise _err(ErrorCode.OUT_OF_RANGE, "sequence out of range")
    return out
