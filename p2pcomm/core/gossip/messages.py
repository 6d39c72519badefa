"""Gossip wire messages (spec/07-gossip.md section 7.2).

Every message is one canonical msgpack array ``[version = 1, kind, ...]``: one
:func:`encode_message` and one :func:`decode_message` for all of them, strict (01-encoding
D1 to D6), with the limits below. The peer that sent a message is the authenticated peer
of the connection it came on; no message names its own sender except where it must be
relayed (``FORWARD_JOIN``, ``SHUFFLE``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

from ...errors import DecodeError, ErrorCode
from ..encoding import (
    Limits,
    Value,
    decode_canonical,
    encode,
    expect_array,
    expect_bool,
    expect_bytes,
    expect_optional_bytes,
    expect_str,
    expect_uint,
)

__all__ = [
    "MAX_ADDR",
    "MAX_SEQ",
    "MAX_IHAVE",
    "MAX_MESSAGE",
    "MAX_PAYLOAD",
    "MAX_ROUND",
    "MAX_SHUFFLE_NODES",
    "MAX_TTL",
    "VERSION",
    "Beacon",
    "Disconnect",
    "ForwardJoin",
    "Gossip",
    "Graft",
    "IHave",
    "Join",
    "Kind",
    "Message",
    "Neighbor",
    "NodeInfo",
    "Prune",
    "Shuffle",
    "ShuffleReply",
    "decode_message",
    "encode_message",
]

VERSION = 1
#: Longest address text (``host:port``), in UTF-8 bytes.
MAX_ADDR = 255
#: Most node records in one SHUFFLE or SHUFFLE_REPLY.
MAX_SHUFFLE_NODES = 16
#: Largest walk length a message may carry.
MAX_TTL = 16
#: Most announcements in one IHAVE.
MAX_IHAVE = 256
#: Largest hop count.
MAX_ROUND = 65535
#: Largest GOSSIP payload (one encoded entry: 03's header and a body of at most 48 KiB).
MAX_PAYLOAD = 64 * 1024
#: Largest encoded message.
MAX_MESSAGE = MAX_PAYLOAD + 128
#: Largest beacon sequence number.
MAX_SEQ = 2**32 - 1
#: Time stamps (milliseconds) fit in 63 bits.
MAX_TIME = 2**63 - 1

_LIMITS = Limits(max_size=MAX_MESSAGE, max_bytes=MAX_PAYLOAD, max_array=MAX_IHAVE, max_depth=3)

PeerId: TypeAlias = bytes


class Kind(enum.IntEnum):
    """The second item of every message."""

    JOIN = 1
    FORWARD_JOIN = 2
    SHUFFLE = 3
    SHUFFLE_REPLY = 4
    NEIGHBOR = 5
    DISCONNECT = 6
    GOSSIP = 7
    IHAVE = 8
    GRAFT = 9
    PRUNE = 10
    BEACON = 11


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A peer and where it was reachable: ``[peer: bin(32), addr: str, seen: uint]``."""

    peer: PeerId
    addr: str
    #: When the sender last heard from it, in milliseconds (its own clock).
    seen: int


@dataclass(frozen=True, slots=True)
class Join:
    """A newcomer asks its contact into the active view; ``addr`` is where it listens."""

    addr: str


@dataclass(frozen=True, slots=True)
class ForwardJoin:
    """A random walk that spreads a newcomer's address (``ttl`` steps left)."""

    peer: PeerId
    addr: str
    ttl: int


@dataclass(frozen=True, slots=True)
class Shuffle:
    """A random walk carrying a sample of the origin's views."""

    origin: PeerId
    addr: str
    ttl: int
    nodes: tuple[NodeInfo, ...]


@dataclass(frozen=True, slots=True)
class ShuffleReply:
    """The walk's end answers the origin with a sample of its passive view."""

    nodes: tuple[NodeInfo, ...]


@dataclass(frozen=True, slots=True)
class Neighbor:
    """Asks to enter the receiver's active view; ``high`` when the sender has none."""

    high: bool
    addr: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Leaves the receiver's active view; ``alive``: the sender stays reachable."""

    alive: bool


@dataclass(frozen=True, slots=True)
class Gossip:
    """An entry pushed eagerly: its id (03 entry id), hops so far, the encoded entry."""

    id: bytes
    round: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class IHave:
    """Lazy announcements: ``(entry id, round)`` pairs."""

    items: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True, slots=True)
class Graft:
    """Makes the link eager again, and asks for ``id`` when it is not nil."""

    id: bytes | None
    round: int


@dataclass(frozen=True, slots=True)
class Prune:
    """Makes the link lazy: the receiver sends announcements only."""


@dataclass(frozen=True, slots=True)
class Beacon:
    """The tree's root, its beacon number, and the sender's distance (links) from it."""

    root: PeerId
    seq: int
    hops: int


Message: TypeAlias = (
    Join
    | ForwardJoin
    | Shuffle
    | ShuffleReply
    | Neighbor
    | Disconnect
    | Gossip
    | IHave
    | Graft
    | Prune
    | Beacon
)


def _node(n: NodeInfo) -> Value:
    return [n.peer, n.addr, n.seen]


def encode_message(msg: Message) -> bytes:
    """The canonical bytes of ``msg`` (07 section 7.2)."""
    body: list[Value]
    if isinstance(msg, Join):
        body = [Kind.JOIN, msg.addr]
    elif isinstance(msg, ForwardJoin):
        body = [Kind.FORWARD_JOIN, msg.peer, msg.addr, msg.ttl]
    elif isinstance(msg, Shuffle):
        body = [Kind.SHUFFLE, msg.origin, msg.addr, msg.ttl, [_node(n) for n in msg.nodes]]
    elif isinstance(msg, ShuffleReply):
        body = [Kind.SHUFFLE_REPLY, [_node(n) for n in msg.nodes]]
    elif isinstance(msg, Neighbor):
        body = [Kind.NEIGHBOR, msg.high, msg.addr]
    elif isinstance(msg, Disconnect):
        body = [Kind.DISCONNECT, msg.alive]
    elif isinstance(msg, Gossip):
        body = [Kind.GOSSIP, msg.id, msg.round, msg.payload]
    elif isinstance(msg, IHave):
        body = [Kind.IHAVE, [[i, r] for i, r in msg.items]]
    elif isinstance(msg, Graft):
        body = [Kind.GRAFT, msg.id, msg.round]
    elif isinstance(msg, Prune):
        body = [Kind.PRUNE]
    elif isinstance(msg, Beacon):
        body = [Kind.BEACON, msg.root, msg.seq, msg.hops]
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not a gossip message: {msg!r}")
    return encode([VERSION, *[int(b) if isinstance(b, Kind) else b for b in body]])


_ITEMS = {
    Kind.JOIN: 3,
    Kind.FORWARD_JOIN: 5,
    Kind.SHUFFLE: 6,
    Kind.SHUFFLE_REPLY: 3,
    Kind.NEIGHBOR: 4,
    Kind.DISCONNECT: 3,
    Kind.GOSSIP: 5,
    Kind.IHAVE: 3,
    Kind.GRAFT: 4,
    Kind.PRUNE: 2,
    Kind.BEACON: 5,
}


def _peer(v: Value, what: str) -> bytes:
    return expect_bytes(v, what, length=32)


def _addr(v: Value, what: str) -> str:
    return expect_str(v, what, max_length=MAX_ADDR)


def _nodes(v: Value, what: str) -> tuple[NodeInfo, ...]:
    out = []
    for i, item in enumerate(expect_array(v, what, max_length=MAX_SHUFFLE_NODES)):
        fields = expect_array(item, f"{what}[{i}]", length=3)
        out.append(
            NodeInfo(
                _peer(fields[0], f"{what}[{i}].peer"),
                _addr(fields[1], f"{what}[{i}].addr"),
                expect_uint(fields[2], f"{what}[{i}].seen", maximum=MAX_TIME),
            )
        )
    return tuple(out)


def decode_message(data: bytes) -> Message:
    """One gossip message that fills ``data`` exactly; :class:`DecodeError` otherwise.

    Order: 01 D1 to D3, then the version (``unknown-version``), the kind
    (``out-of-range``), the item count (``wrong-length``), then each item in order.
    """
    items = decode_canonical(data, _LIMITS)
    if not items:
        raise DecodeError(
            ErrorCode.WRONG_LENGTH, "gossip message: expected at least 2 items, found 0"
        )
    version = expect_uint(items[0], "gossip message version")
    if version != VERSION:
        raise DecodeError(
            ErrorCode.UNKNOWN_VERSION,
            f"gossip message: unknown version {version}",
            expected=VERSION,
            found=version,
        )
    if len(items) < 2:
        raise DecodeError(
            ErrorCode.WRONG_LENGTH, "gossip message: expected at least 2 items, found 1"
        )
    kind_n = expect_uint(items[1], "gossip message kind", minimum=1, maximum=len(Kind))
    kind = Kind(kind_n)
    expect_array(items, f"gossip {kind.name}", length=_ITEMS[kind])
    f = items[2:]
    if kind is Kind.JOIN:
        return Join(_addr(f[0], "join addr"))
    if kind is Kind.FORWARD_JOIN:
        return ForwardJoin(
            _peer(f[0], "forward_join peer"),
            _addr(f[1], "forward_join addr"),
            expect_uint(f[2], "forward_join ttl", maximum=MAX_TTL),
        )
    if kind is Kind.SHUFFLE:
        return Shuffle(
            _peer(f[0], "shuffle origin"),
            _addr(f[1], "shuffle addr"),
            expect_uint(f[2], "shuffle ttl", maximum=MAX_TTL),
            _nodes(f[3], "shuffle nodes"),
        )
    if kind is Kind.SHUFFLE_REPLY:
        return ShuffleReply(_nodes(f[0], "shuffle_reply nodes"))
    if kind is Kind.NEIGHBOR:
        return Neighbor(expect_bool(f[0], "neighbor high"), _addr(f[1], "neighbor addr"))
    if kind is Kind.DISCONNECT:
        return Disconnect(expect_bool(f[0], "disconnect alive"))
    if kind is Kind.GOSSIP:
        return Gossip(
            expect_bytes(f[0], "gossip id", length=32),
            expect_uint(f[1], "gossip round", maximum=MAX_ROUND),
            expect_bytes(f[2], "gossip payload", max_length=MAX_PAYLOAD),
        )
    if kind is Kind.IHAVE:
        pairs = []
        for i, item in enumerate(expect_array(f[0], "ihave items", max_length=MAX_IHAVE)):
            pair = expect_array(item, f"ihave items[{i}]", length=2)
            pairs.append(
                (
                    expect_bytes(pair[0], f"ihave items[{i}].id", length=32),
                    expect_uint(pair[1], f"ihave items[{i}].round", maximum=MAX_ROUND),
                )
            )
        return IHave(tuple(pairs))
    if kind is Kind.GRAFT:
        return Graft(
            expect_optional_bytes(f[0], "graft id", length=32),
            expect_uint(f[1], "graft round", maximum=MAX_ROUND),
        )
    if kind is Kind.BEACON:
        return Beacon(
            _peer(f[0], "beacon root"),
            expect_uint(f[1], "beacon seq", maximum=MAX_SEQ),
            expect_uint(f[2], "beacon hops", maximum=MAX_ROUND),
        )
    return Prune()
