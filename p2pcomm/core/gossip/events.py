"""Inputs and effects of the gossip core (spec/07-gossip.md section 7.5).

Frozen, slotted, keyword-free value types. Times are integer milliseconds from the
driver's clock; the core never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .messages import Message

__all__ = [
    "Bootstrap",
    "Broadcast",
    "Connect",
    "Deliver",
    "DialFailed",
    "Disconnect",
    "Effect",
    "Input",
    "Offer",
    "PeerDown",
    "PeerUp",
    "Received",
    "SendTo",
    "SetTimer",
    "TimerFired",
    "TimerKey",
    "Verdict",
]

#: Timers are values: ``("shuffle",)``, ``("ihave",)``, ``("graft", id)``.
TimerKey: TypeAlias = tuple[str | bytes, ...]


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class Received:
    """``msg`` arrived from the authenticated ``peer``."""

    peer: bytes
    msg: Message


@dataclass(frozen=True, slots=True)
class Broadcast:
    """This node wrote (and stored) entry ``id``; spread ``payload``."""

    id: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer set by :class:`SetTimer` is due. Stale timers are harmless."""

    key: TimerKey


@dataclass(frozen=True, slots=True)
class PeerUp:
    """A connection to ``peer`` is open (``outbound``: this node dialled it)."""

    peer: bytes
    outbound: bool


@dataclass(frozen=True, slots=True)
class PeerDown:
    """The connection to ``peer`` ended, whatever the reason."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class DialFailed:
    """A :class:`Connect` to ``peer`` did not produce a connection."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    """The node's answer to :class:`Offer`: ``ok`` (valid and now stored) or not.

    ``known``: valid, but the node already held it (it is not delivered or forwarded
    again). ``ok=False`` blames the peer the entry came from.
    """

    id: bytes
    ok: bool
    known: bool = False


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """Join the overlay through these contacts (``(peer, addr)`` pairs, tried in order)."""

    contacts: tuple[tuple[bytes, str], ...]


Input: TypeAlias = (
    Received | Broadcast | TimerFired | PeerUp | PeerDown | DialFailed | Verdict | Bootstrap
)


# ------------------------------------------------------------------ effects


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``msg`` to ``peer`` (over its connection; dial ``addr`` if there is none)."""

    peer: bytes
    msg: Message
    addr: str | None = None


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Feed ``TimerFired(key)`` at time ``at`` (ms). Setting a key again adds a timer."""

    key: TimerKey
    at: int


@dataclass(frozen=True, slots=True)
class Connect:
    """Dial ``peer`` at ``addr``; answer with :class:`PeerUp` or :class:`DialFailed`."""

    peer: bytes
    addr: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection to ``peer`` once what was sent before is flushed."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class Offer:
    """Verify and store entry ``id``; answer with :class:`Verdict`. Nothing is forwarded
    before the verdict."""

    id: bytes
    payload: bytes
    from_peer: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    """Entry ``id`` was accepted (after its :class:`Verdict`); ``hops`` from its author."""

    id: bytes
    from_peer: bytes
    hops: int


Effect: TypeAlias = SendTo | SetTimer | Connect | Disconnect | Offer | Deliver
