"""Helpers shared by the node tests over loopback TCP (tests/net/test_node.py,
tests/net/test_failures.py): waiting for events, and log-level replicas."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import trio

from p2pcomm.core.crypto import Ed25519Signer
from p2pcomm.core.sync import GroupState, SharedGroups, SyncSession
from p2pcomm.group import GroupLog
from p2pcomm.net.node import EntriesAdded, GroupSynced, NodeEvent, PeerDown, PeerUp
from p2pcomm.net.node import open_node as _open_node
from p2pcomm.net.transport import SecureStream
from p2pcomm.store import SqliteStore
from tests.sync_helpers import key, replica

#: These tests are about replication of the log (catch-up, live push, flow control,
#: failures, hostile peers); their histories' authors are not members of anything, so
#: the nodes run without the membership view, which serves the log to any peer.
#: Members-only service is tested in tests/net/test_access.py.
open_node = functools.partial(_open_node, membership=False)

#: Upper bound for anything a test waits for; a healthy run takes a fraction of it.
PATIENCE = 20.0
LOCALHOST = "127.0.0.1"


def signer(n: int) -> Ed25519Signer:
    return Ed25519Signer(key(n).seed())


async def expect(
    events: trio.MemoryReceiveChannel[NodeEvent], pred: Callable[[NodeEvent], bool]
) -> NodeEvent:
    """The next event matching ``pred`` (others are skipped)."""
    async for ev in events:
        if pred(ev):
            return ev
    raise AssertionError("event channel closed")


async def expect_all(
    events: trio.MemoryReceiveChannel[NodeEvent], *preds: Callable[[NodeEvent], bool]
) -> None:
    """Wait until each predicate has matched some event, in any order."""
    left = list(preds)
    async for ev in events:
        left = [p for p in left if not p(ev)]
        if not left:
            return
    raise AssertionError("event channel closed")


def synced_with(peer: bytes) -> Callable[[NodeEvent], bool]:
    return lambda ev: isinstance(ev, GroupSynced) and ev.peer_id == peer


def up(peer: bytes) -> Callable[[NodeEvent], bool]:
    return lambda ev: isinstance(ev, PeerUp) and ev.peer_id == peer


def down(peer: bytes) -> Callable[[NodeEvent], bool]:
    return lambda ev: isinstance(ev, PeerDown) and ev.peer_id == peer


def has_entry(eid: bytes) -> Callable[[NodeEvent], bool]:
    return lambda ev: isinstance(ev, EntriesAdded) and any(e.id == eid for e in ev.entries)


def sqlite(tmp_path: Path, name: str) -> SqliteStore:
    return SqliteStore(tmp_path / f"{name}.db", durable=False)


def follower(tmp_path: Path, name: str, source: GroupLog) -> GroupLog:
    """A new SQLite replica holding only ``source``'s genesis."""
    genesis = source.get(source.group)
    assert genesis is not None
    return replica([genesis], sqlite(tmp_path, name))


async def reconciling(stream: SecureStream, group: bytes) -> SyncSession:
    """Play an honest peer holding nothing of ``group`` until both sides are
    reconciling (TIPS exchanged): from then on RUN, WANT and DONE are in order."""
    session = SyncSession(initiator=True, session_hash=stream.handshake_hash, groups=[group])
    session.start()
    await stream.send_all(session.data_to_send())
    while session.state(group) is not GroupState.RECONCILING:
        data = await stream.receive_some()
        assert data, "node closed the connection early"
        session.receive_data(data)
        for ev in session.events():
            if isinstance(ev, SharedGroups):
                session.offer_tips(group, [])
        if out := session.data_to_send():
            await stream.send_all(out)
    return session
