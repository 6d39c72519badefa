"""Shared by the gossip state machine tests: peer ids and the messages an input sent."""

from __future__ import annotations

from p2pcomm.core.gossip import SendTo


def pid(n: int) -> bytes:
    return bytes([n]) * 32


def sends(effects: list[object]) -> list[tuple[bytes, object]]:
    """``(peer, message)`` of every SendTo among ``effects``, in order."""
    return [(e.peer, e.msg) for e in effects if isinstance(e, SendTo)]
