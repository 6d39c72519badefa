"""Admission limits of a listener of secure channels (spec/05-channel.md 5.6.1).

Theory of operation
-------------------
Whatever a listener spends before a handshake completes, it spends on a stranger, and
a stranger's key costs nothing: a responder's handshake costs it three X25519
operations, an Ed25519 signature and a verification, and an attacker can make one from
a fresh key for each connection. What does cost the attacker is an address. So the
accepting side decides, from the peer's address alone and before reading a byte of the
handshake, whether to go on:

* **connections**: at most ``max_connections`` accepted connections at once
  (handshaking or established, until the handler returns), at most
  ``max_connections_per_address`` of them from one address;
* **handshakes**: at most ``max_handshakes`` in progress at once, at most
  ``max_handshakes_per_address`` of them from one address (so that slow handshakes from
  one address cannot take every slot);
* **rate**: per address, a token bucket of handshakes: ``handshake_rate`` a second, at
  most ``handshake_burst`` at once.

An IPv6 address counts by its /64 prefix (a host is usually given a whole /64); an
IPv4 address, and an IPv4 address mapped into IPv6, by itself. Over any limit the
connection is closed at once, without a byte sent (a handshake has no error messages,
5.4.8): the peer sees the end of the stream, as if the node were not there. Deadlines
(the handshake's, a frame's) are the transport's: :func:`p2pcomm.net.transport.serve_secure`.

This module is sans-IO: :class:`Admission` is told the time (``now``) and never
awaits; :func:`~p2pcomm.net.transport.serve_secure` drives it. It knows nothing of
members: a member and a stranger at the same address share its limits (only the
handshake says who is calling, and the handshake is what the limits protect).
"""

from __future__ import annotations

import enum
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "DEFAULT_LIMITS",
    "Admission",
    "AdmissionLimits",
    "AdmissionStatistics",
    "Refusal",
    "Ticket",
    "address_key",
]


class Refusal(enum.Enum):
    """Why a connection was refused at accept (the value is what logs say)."""

    CONNECTIONS = "too-many-connections"
    """``max_connections`` accepted connections are open."""
    ADDRESS_CONNECTIONS = "too-many-connections-from-address"
    """``max_connections_per_address`` connections from this address are open."""
    HANDSHAKES = "too-many-handshakes"
    """``max_handshakes`` handshakes are in progress."""
    ADDRESS_HANDSHAKES = "too-many-handshakes-from-address"
    """``max_handshakes_per_address`` handshakes from this address are in progress."""
    RATE = "handshake-rate"
    """This address started handshakes faster than ``handshake_rate`` (its bucket is
    empty)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionLimits:
    """The limits of :class:`Admission` (module docstring). ``None`` means no limit."""

    max_connections: int | None = 128
    """Accepted connections open at once (handshaking or established)."""
    max_connections_per_address: int | None = 32
    """Of them, from one address (an IPv6 /64)."""
    max_handshakes: int | None = 16
    """Handshakes in progress at once."""
    max_handshakes_per_address: int | None = 4
    """Of them, from one address."""
    handshake_rate: float | None = 10.0
    """Handshakes a second one address may start, on average."""
    handshake_burst: int = 30
    """Handshakes one address may start at once (the bucket's size)."""
    tracked_addresses: int = 4096
    """Addresses whose buckets are remembered; the least recently seen is forgotten
    first (forgetting gives it a full bucket again)."""

    def __post_init__(self) -> None:
        for name in (
            "max_connections",
            "max_connections_per_address",
            "max_handshakes",
            "max_handshakes_per_address",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, found {value}")
        if self.handshake_rate is not None and not self.handshake_rate > 0:
            raise ValueError(
                f"handshake_rate must be positive or None, found {self.handshake_rate}"
            )
        if self.handshake_burst < 1:
            raise ValueError(f"handshake_burst must be at least 1, found {self.handshake_burst}")
        if self.tracked_addresses < 1:
            raise ValueError(
                f"tracked_addresses must be at least 1, found {self.tracked_addresses}"
            )


DEFAULT_LIMITS = AdmissionLimits()
"""The limits :func:`~p2pcomm.net.transport.serve_secure` applies unless told others."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionStatistics:
    """A snapshot of an :class:`Admission`."""

    connections: int
    """Accepted connections open now."""
    handshakes: int
    """Handshakes in progress now."""
    admitted: int
    """Connections admitted so far."""
    refused: dict[Refusal, int]
    """Connections refused so far, by reason."""


def address_key(host: str) -> str:
    """What the limits count ``host`` as: an IPv6 address's /64 prefix, an IPv4 address
    (mapped into IPv6 or not) itself, anything else (a name, ``""``) as it is."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Ticket:
    """An admitted connection's hold on the limits: :meth:`handshake_done` when its
    handshake ended (completed or failed), :meth:`close` when the connection did. Both
    are idempotent; :meth:`close` also ends the handshake."""

    __slots__ = ("_admission", "_closed", "_handshaking", "key")

    def __init__(self, admission: Admission, key: str) -> None:
        self._admission = admission
        self.key = key
        """The address as the limits count it (:func:`address_key`)."""
        self._handshaking = True
        self._closed = False

    def handshake_done(self) -> None:
        if self._handshaking:
            self._handshaking = False
            self._admission._end_handshake(self.key)

    def close(self) -> None:
        self.handshake_done()
        if not self._closed:
            self._closed = True
            self._admission._end_connection(self.key)


class Admission:
    """Decides which connections a listener accepts (module docstring)."""

    def __init__(self, limits: AdmissionLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._connections = 0
        self._handshakes = 0
        self._by_address: dict[str, list[int]] = {}  # key -> [connections, handshakes]
        #: key -> (tokens, when counted); least recently seen first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._admitted = 0
        self._refused: dict[Refusal, int] = {}

    def admit(self, host: str, now: float) -> Ticket | Refusal:
        """A connection from ``host`` arrived at time ``now`` (seconds, any monotonic
        clock): a :class:`Ticket` if it may go on, or why not."""
        limits = self.limits
        key = address_key(host)
        held = self._by_address.get(key, [0, 0])
        refusal: Refusal | None = None
        if limits.max_connections is not None and self._connections >= limits.max_connections:
            refusal = Refusal.CONNECTIONS
        elif (
            limits.max_connections_per_address is not None
            and held[0] >= limits.max_connections_per_address
        ):
            refusal = Refusal.ADDRESS_CONNECTIONS
        elif limits.max_handshakes is not None and self._handshakes >= limits.max_handshakes:
            refusal = Refusal.HANDSHAKES
        elif (
            limits.max_handshakes_per_address is not None
            and held[1] >= limits.max_handshakes_per_address
        ):
            refusal = Refusal.ADDRESS_HANDSHAKES
        elif not self._take_token(key, now):
            refusal = Refusal.RATE
        if refusal is not None:
            self._refused[refusal] = self._refused.get(refusal, 0) + 1
            return refusal
        self._admitted += 1
        self._connections += 1
        self._handshakes += 1
        self._by_address[key] = [held[0] + 1, held[1] + 1]
        return Ticket(self, key)

    def tokens(self, host: str, now: float) -> float:
        """Handshakes ``host`` could start at ``now`` before its bucket is empty."""
        limits = self.limits
        if limits.handshake_rate is None:
            return float("inf")
        got = self._buckets.get(address_key(host))
        if got is None:
            return float(limits.handshake_burst)
        tokens, then = got
        return min(float(limits.handshake_burst), tokens + (now - then) * limits.handshake_rate)

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            connections=self._connections,
            handshakes=self._handshakes,
            admitted=self._admitted,
            refused=dict(self._refused),
        )

    # -- internals

    def _take_token(self, key: str, now: float) -> bool:
        limits = self.limits
        if limits.handshake_rate is None:
            return True
        burst = float(limits.handshake_burst)
        got = self._buckets.pop(key, None)
        if got is None:
            tokens = burst
        else:
            tokens = min(burst, got[0] + max(0.0, now - got[1]) * limits.handshake_rate)
        taken = tokens >= 1.0
        if taken:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)  # now the most recently seen
        while len(self._buckets) > limits.tracked_addresses:
            self._buckets.popitem(last=False)
        return taken

    def _end_handshake(self, key: str) -> None:
        self._handshakes -= 1
        self._by_address[key][1] -= 1

    def _end_connection(self, key: str) -> None:
        self._connections -= 1
        held = self._by_address[key]
        held[0] -= 1
        if held == [0, 0]:
            del self._by_address[key]
