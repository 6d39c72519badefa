"""The trio node (p2pcomm/net/node.py) over real loopback TCP.

Nodes run on real time (their store work goes through ``trio.to_thread``), so these
tests wait on node events under generous ``trio.fail_after`` guards and never sleep.
Every store is a SqliteStore in ``tmp_path``; every listener binds 127.0.0.1 port 0.

Hostile peers connect with ``open_secure_stream`` (a real Noise handshake with their
own identity) and then write crafted sync bytes: ``u32be length || canonical msgpack``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from p2pcomm.core.channel import CloseCode, CloseReceived
from p2pcomm.core.log import create_entry
from p2pcomm.core.sync import (
    MAX_MESSAGE_SIZE,
    SYNC_VERSION,
    Msg,
    SyncSession,
    group_token,
)
from p2pcomm.errors import ErrorCode
from p2pcomm.group import GroupLog
from p2pcomm.net.node import EntriesAdded, GroupSynced, Node, NodeEvent, PeerDown, PeerUp
from p2pcomm.net.transport import SecureStream, open_secure_stream
from tests.helpers import bad_signature
from tests.net.node_helpers import (
    LOCALHOST,
    PATIENCE,
    down,
    expect,
    expect_all,
    follower,
    has_entry,
    open_node,
    reconciling,
    signer,
    sqlite,
    synced_with,
)
from tests.sync_helpers import (
    BASE_TS,
    KIND_POST,
    all_entries,
    frame,
    group_history,
    key,
    msg,
    replica,
    snapshot,
)

# --------------------------------------------------------------------------- honest nodes


async def test_two_nodes_converge_and_report_events(tmp_path: Path) -> None:
    a_log = group_history(
        authors=3, entries=300, seed=21, body_size=64, store=sqlite(tmp_path, "a")
    )
    b_log = follower(tmp_path, "b", a_log)
    b_own = b_log.append(key(7), KIND_POST, b"b was here", timestamp=BASE_TS + 10**6)
    with trio.fail_after(PATIENCE):
        async with open_node(a_log.store, key(50)) as na, open_node(b_log.store, key(51)) as nb:
            ev_a, ev_b = na.subscribe(), nb.subscribe()
            peer = await nb.connect(*na.address)
            assert peer == na.peer_id
            up = await expect(ev_b, lambda ev: isinstance(ev, PeerUp))
            assert isinstance(up, PeerUp) and up.peer_id == na.peer_id and up.outbound
            up_a = await expect(ev_a, lambda ev: isinstance(ev, PeerUp))
            assert isinstance(up_a, PeerUp) and not up_a.outbound and up_a.peer_id == nb.peer_id
            last = a_log.store.tips(a_log.group)[-1][2]
            await expect_all(
                ev_b,
                lambda ev: isinstance(ev, EntriesAdded) and ev.origin == na.peer_id,
                has_entry(last),
                synced_with(na.peer_id),
            )
            await expect_all(ev_a, has_entry(b_own.id), synced_with(nb.peer_id))
            assert snapshot(a_log) == snapshot(GroupLog(b_log.store, b_log.group))
            assert nb.is_synced(na.peer_id)
            stats = nb.statistics()
            assert stats.peers == (na.peer_id,)
            assert stats.entries_accepted == 300
            assert stats.wire_bytes_received > stats.bytes_received > 300 * 64
        # leaving the blocks closed both nodes
    assert GroupLog(b_log.store, b_log.group).verify().ok
    a_log.store.close()
    b_log.store.close()


async def test_in_sync_nodes_exchange_a_few_hundred_bytes(tmp_path: Path) -> None:
    """Two nodes holding the same 500 entries: 51 sync bytes each way (HELLO 26 +
    SUMMARY 25), each in its own DATA frame (+19), after the Noise handshake (35 + 163
    bytes from the initiator, 195 from the responder)."""
    a_log = group_history(authors=4, entries=500, seed=27, store=sqlite(tmp_path, "a"))
    b_log = replica(all_entries(a_log), sqlite(tmp_path, "b"))
    with trio.fail_after(PATIENCE):
        async with open_node(a_log.store, key(50)) as na, open_node(b_log.store, key(51)) as nb:
            ev_a, ev_b = na.subscribe(), nb.subscribe()
            await nb.connect(*na.address)
            await expect(ev_b, synced_with(na.peer_id))
            await expect(ev_a, synced_with(nb.peer_id))
            sa, sb = na.statistics(), nb.statistics()
    assert sa.bytes_sent == sa.bytes_received == sb.bytes_sent == sb.bytes_received == 51
    assert sb.wire_bytes_sent == 35 + 163 + 2 * (19 + 25) + 1  # HELLO 26 = 25 + 1
    assert sa.wire_bytes_sent == 195 + 2 * (19 + 25) + 1
    assert sa.wire_bytes_received == sb.wire_bytes_sent
    assert sa.entries_received == sb.entries_received == 0
    a_log.store.close()
    b_log.store.close()


async def test_peer_down_is_reported_when_the_other_node_closes(tmp_path: Path) -> None:
    a_log = group_history(authors=1, entries=5, seed=22, store=sqlite(tmp_path, "a"))
    b_log = follower(tmp_path, "b", a_log)
    with trio.fail_after(PATIENCE):
        async with open_node(b_log.store, key(51)) as nb:
            ev_b = nb.subscribe()
            async with open_node(a_log.store, key(50)) as na:
                await nb.connect(*na.address)
                await expect(ev_b, synced_with(na.peer_id))
            gone = await expect(ev_b, down(na.peer_id))
            assert isinstance(gone, PeerDown) and gone.reason == "closed"
            assert nb.peers() == []
    a_log.store.close()
    b_log.store.close()


async def test_live_push(tmp_path: Path) -> None:
    a_log = group_history(authors=2, entries=10, seed=23, store=sqlite(tmp_path, "a"))
    b_log = follower(tmp_path, "b", a_log)
    with trio.fail_after(PATIENCE):
        async with open_node(a_log.store, key(50)) as na, open_node(b_log.store, key(51)) as nb:
            ev_a, ev_b = na.subscribe(), nb.subscribe()
            await nb.connect(*na.address)
            await expect(ev_b, synced_with(na.peer_id))
            await expect(ev_a, synced_with(nb.peer_id))
            for i in range(3):
                e = await na.append(a_log.group, KIND_POST, b"live %d" % i)
                local = await expect(ev_a, has_entry(e.id))
                assert isinstance(local, EntriesAdded) and local.origin is None
                got = await expect(ev_b, has_entry(e.id))
                assert isinstance(got, EntriesAdded) and got.origin == na.peer_id
            back = await nb.append(b_log.group, KIND_POST, b"and back")
            await expect(ev_a, has_entry(back.id))
            assert snapshot(a_log) == snapshot(GroupLog(b_log.store, b_log.group))
    a_log.store.close()
    b_log.store.close()


async def test_store_and_forward_through_a_middle_node(tmp_path: Path) -> None:
    """
    ::

        A ----> B <---- C        (arrows: who dials; A and C never connect)

    1. A dials B, C dials B; both sessions reach live mode.
    2. A appends an entry: B stores it and pushes it to C.
    3. C appends one: it reaches A the same way.
    """
    a_log = group_history(authors=2, entries=20, seed=24, store=sqlite(tmp_path, "a"))
    b_log = follower(tmp_path, "b", a_log)
    c_log = follower(tmp_path, "c", a_log)
    with trio.fail_after(PATIENCE):
        async with (
            open_node(a_log.store, key(50)) as na,
            open_node(b_log.store, key(51)) as nb,
            open_node(c_log.store, key(52)) as nc,
        ):
            ev_a, ev_b, ev_c = na.subscribe(), nb.subscribe(), nc.subscribe()
            await na.connect(*nb.address)
            await expect(ev_b, synced_with(na.peer_id))
            await nc.connect(*nb.address)
            await expect(ev_c, synced_with(nb.peer_id))
            await expect(ev_a, synced_with(nb.peer_id))
            assert len(GroupLog(c_log.store, c_log.group)) == len(a_log)
            e = await na.append(a_log.group, KIND_POST, b"from a")
            got = await expect(ev_c, has_entry(e.id))
            assert isinstance(got, EntriesAdded) and got.origin == nb.peer_id
            f = await nc.append(c_log.group, KIND_POST, b"from c")
            got = await expect(ev_a, has_entry(f.id))
            assert isinstance(got, EntriesAdded) and got.origin == nb.peer_id
            assert na.peers() == [nb.peer_id] and nc.peers() == [nb.peer_id]
            assert snapshot(a_log) == snapshot(GroupLog(c_log.store, c_log.group))
    for log in (a_log, b_log, c_log):
        log.store.close()


async def test_nodes_dialling_each_other_at_once_stay_connected(tmp_path: Path) -> None:
    a_log = group_history(authors=2, entries=10, seed=28, store=sqlite(tmp_path, "a"))
    b_log = follower(tmp_path, "b", a_log)
    try:
        with trio.fail_after(PATIENCE):
            async with open_node(a_log.store, key(50)) as na, open_node(b_log.store, key(51)) as nb:
                ev_a, ev_b = na.subscribe(), nb.subscribe()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(na.connect, *nb.address)
                    nursery.start_soon(nb.connect, *na.address)
                with trio.fail_after(2.0):
                    await expect_all(ev_a, synced_with(nb.peer_id))
                    await expect_all(ev_b, synced_with(na.peer_id))
                assert na.peers() == [nb.peer_id] and nb.peers() == [na.peer_id]
    finally:
        a_log.store.close()
        b_log.store.close()


async def test_add_peer_reconnects_after_a_restart(tmp_path: Path) -> None:
    """B keeps a connection to A with ``add_peer``. A's node stops; entries are added
    to A's store meanwhile; A's node starts again on the same port (SO_REUSEADDR) and
    B's dial loop reconnects (backoff starts at 0.25 s) and catches up."""
    a_log = group_history(authors=2, entries=10, seed=25, store=sqlite(tmp_path, "a"))
    b_log = follower(tmp_path, "b", a_log)
    with trio.fail_after(PATIENCE):
        async with open_node(b_log.store, key(51)) as nb:
            ev_b = nb.subscribe()
            async with open_node(a_log.store, key(50)) as na:
                host, port = na.address
                nb.add_peer(host, port)
                await expect(ev_b, synced_with(na.peer_id))
            await expect(ev_b, down(key(50).public_key))
            offline = a_log.append_many(
                key(3), [(KIND_POST, b"while away %d" % i) for i in range(4)]
            )
            try:
                restarted = open_node(a_log.store, key(50), port=port)
                na2 = await restarted.__aenter__()
            except OSError:  # the port was taken meanwhile: a new one, dialled anew
                restarted = open_node(a_log.store, key(50))
                na2 = await restarted.__aenter__()
                nb.add_peer(*na2.address)
            try:
                up = await expect(ev_b, lambda ev: isinstance(ev, PeerUp))
                assert isinstance(up, PeerUp) and up.peer_id == key(50).public_key and up.outbound
                await expect_all(ev_b, has_entry(offline[-1].id), synced_with(key(50).public_key))
            finally:
                await restarted.__aexit__(None, None, None)
            assert snapshot(a_log) == snapshot(GroupLog(b_log.store, b_log.group))
    a_log.store.close()
    b_log.store.close()


# --------------------------------------------------------------------------- hostile peers


@dataclass
class Served:
    """A node serving a 40-entry group, its event channel and its state before."""

    node: Node
    log: GroupLog
    events: trio.MemoryReceiveChannel[NodeEvent]
    before: tuple[int, list[tuple[bytes, int, bytes]]]
    tmp_path: Path


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


@contextlib.asynccontextmanager
async def served(tmp_path: Path, *, stall_timeout: float = 5.0) -> AsyncIterator[Served]:
    """A node serving a group. A single error from the test body leaves the node's
    nursery as itself, not wrapped in an ExceptionGroup, so that tests (and xfail
    markers) can name it."""
    log = group_history(authors=3, entries=40, seed=26, store=sqlite(tmp_path, "served"))
    try:
        async with open_node(log.store, key(50), stall_timeout=stall_timeout) as node:
            yield Served(node, log, node.subscribe(), snapshot(log), tmp_path)
    except BaseExceptionGroup as group:
        found = leaves(group)
        if len(found) == 1:
            raise found[0] from None
        raise
    finally:
        log.store.close()


async def read_to_end(stream: SecureStream) -> tuple[bytes, CloseReceived | None]:
    """Everything the node sends until the stream ends (a reset counts as an end)."""
    data = bytearray()
    with contextlib.suppress(trio.BrokenResourceError):
        while chunk := await stream.receive_some():
            data += chunk
    return bytes(data), stream.close_received


def invalid_entry(group: bytes, genesis_id: bytes, n: int = 0) -> bytes:
    """A RUN with one well-formed entry of a new author whose signature is bad and that
    nothing vouches for."""
    e = create_entry(
        key(70),
        group=group,
        seq=1,
        prev=None,
        links=[genesis_id],
        timestamp=BASE_TS + n,
        kind=KIND_POST,
        body=b"forged %d" % n,
    )
    bad = bad_signature(e, key(70))
    h = bad.header
    return frame(
        msg(
            Msg.RUN,
            0,
            h.author,
            1,
            None,
            h.timestamp,
            [[0, h.kind, list(h.links), bad.body, bad.signature]],
        )
    )


async def malformed_frame(stream: SecureStream, s: Served) -> None:
    await stream.send_all(frame(b"\xc1"))  # 0xc1: reserved msgpack byte


async def oversized_length(stream: SecureStream, s: Served) -> None:
    await stream.send_all((MAX_MESSAGE_SIZE + 1).to_bytes(4, "big") + b"\x93")


async def out_of_state(stream: SecureStream, s: Served) -> None:
    await stream.send_all(frame(msg(Msg.DONE, 0)))  # before HELLO


async def wrong_version(stream: SecureStream, s: Served) -> None:
    token = group_token(s.log.group, stream.handshake_hash, True)
    await stream.send_all(frame(msg(Msg.HELLO, SYNC_VERSION + 1, [token])))


async def truncated_then_close(stream: SecureStream, s: Served) -> None:
    token = group_token(s.log.group, stream.handshake_hash, True)
    hello = frame(msg(Msg.HELLO, SYNC_VERSION, [token]))
    await stream.send_all(hello[:-5])
    await stream.aclose()


async def finish(stream: SecureStream, session: SyncSession, group: bytes) -> None:
    """Send our DONE, as an honest peer that lacks nothing to send would: the group
    goes live on the node's side once its own bulk job ends."""
    session.send_done(group)
    await stream.send_all(session.data_to_send())


async def invalid_entry_in_run(stream: SecureStream, s: Served) -> None:
    session = await reconciling(stream, s.log.group)
    await stream.send_all(invalid_entry(s.log.group, s.log.group))
    await finish(stream, session, s.log.group)


async def stall(stream: SecureStream, s: Served) -> None:
    session = SyncSession(initiator=True, session_hash=stream.handshake_hash, groups=[s.log.group])
    session.start()
    await stream.send_all(session.data_to_send())  # HELLO naming the group, then nothing
    # ... but keepalives: alive and not syncing is a stall (silence would be a fault).

    async def keepalives() -> None:
        # Ends when the stream does; BusyResourceError: the test is closing it (aclose
        # sends a CLOSE) while a keepalive goes out.
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError
        ):
            while True:
                await stream.send_keepalive()
                await trio.sleep(0.1)  # the peer's behaviour, not a wait

    s.node._nursery.start_soon(keepalives)


async def junk_wants(stream: SecureStream, s: Served) -> None:
    session = await reconciling(stream, s.log.group)
    await finish(stream, session, s.log.group)
    junk = b"".join(
        frame(msg(Msg.WANT, 0, [hashlib.blake2b(b"%d" % i, digest_size=32).digest()]))
        for i in range(5000)
    )
    with contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(junk)


async def repeated_invalid_runs(stream: SecureStream, s: Served) -> None:
    session = await reconciling(stream, s.log.group)
    await finish(stream, session, s.log.group)
    with contextlib.suppress(trio.BrokenResourceError):
        for i in range(2000):
            await stream.send_all(invalid_entry(s.log.group, s.log.group, i))


@dataclass(frozen=True)
class Hostile:
    attack: Callable[[SecureStream, Served], Awaitable[None]]
    code: ErrorCode
    close: CloseCode


HOSTILE = [
    pytest.param(
        Hostile(malformed_frame, ErrorCode.MALFORMED, CloseCode.PROTOCOL_ERROR),
        id="malformed-frame",
    ),
    pytest.param(
        Hostile(oversized_length, ErrorCode.FRAME_TOO_LARGE, CloseCode.PROTOCOL_ERROR),
        id="oversized-length",
    ),
    pytest.param(
        Hostile(out_of_state, ErrorCode.UNEXPECTED_MESSAGE, CloseCode.PROTOCOL_ERROR),
        id="out-of-state",
    ),
    pytest.param(
        Hostile(wrong_version, ErrorCode.WRONG_PROTOCOL_VERSION, CloseCode.PROTOCOL_ERROR),
        id="wrong-version",
    ),
    pytest.param(Hostile(stall, ErrorCode.TIMEOUT, CloseCode.TIMEOUT), id="stall"),
    pytest.param(
        Hostile(truncated_then_close, ErrorCode.TRUNCATED, CloseCode.PROTOCOL_ERROR),
        id="truncated-then-close",
    ),
    pytest.param(
        Hostile(invalid_entry_in_run, ErrorCode.BAD_SIGNATURE, CloseCode.PROTOCOL_ERROR),
        id="invalid-entry",
    ),
    pytest.param(
        Hostile(repeated_invalid_runs, ErrorCode.BAD_SIGNATURE, CloseCode.PROTOCOL_ERROR),
        id="flood-invalid-runs",
    ),
    pytest.param(
        Hostile(junk_wants, ErrorCode.FLOOD, CloseCode.PROTOCOL_ERROR),
        id="flood-wants",
    ),
]

#: How long a hostile case may take to be noticed: three times the node's
#: stall_timeout of 0.5 s (the stall case needs one); the others are immediate. (pytest-trio
#: reports every failure inside an ExceptionGroup, so the xfail markers of the cases
#: below that fail today cannot name the exception: the cases that hit a bug fail at the
#: PeerDown wait or reason check, everything before it passes for every case.)
NOTICE = 1.5


@pytest.mark.parametrize("case", HOSTILE)
async def test_hostile_peer_is_closed_banned_and_harmless(tmp_path: Path, case: Hostile) -> None:
    """For each way of misbehaving over an authenticated channel:

    1. the node ends the connection with a CLOSE whose reason names the error code,
       and emits PeerDown with that reason;
    2. the store is unchanged (entry count and tips);
    3. the same identity is refused when it comes back;
    4. an honest node can still sync with it afterwards.
    """
    hostile = signer(66)
    async with served(tmp_path, stall_timeout=0.5) as s:
        with trio.fail_after(PATIENCE):
            stream = await open_secure_stream(LOCALHOST, s.node.address[1], identity=hostile)
            await expect(s.events, lambda ev: isinstance(ev, PeerUp))
            await case.attack(stream, s)
            with trio.fail_after(NOTICE):
                gone = await expect(s.events, down(hostile.public_key))
        assert isinstance(gone, PeerDown)
        assert gone.reason.startswith(case.code.value + ":"), gone.reason
        if case.attack is not truncated_then_close:
            with trio.fail_after(PATIENCE):
                _, closed = await read_to_end(stream)
            assert closed is not None and closed.code == case.close
            assert closed.reason.startswith(case.code.value), closed.reason
        await stream.aclose()
        assert snapshot(s.log) == s.before

        with trio.fail_after(PATIENCE):
            again = await open_secure_stream(LOCALHOST, s.node.address[1], identity=hostile)
            _, closed = await read_to_end(again)
            await again.aclose()
            refused = await expect(s.events, down(hostile.public_key))
        assert isinstance(refused, PeerDown) and "refused" in refused.reason
        assert closed is None or "refused" in closed.reason
        assert s.node.statistics().refused_peers == 1

        await assert_serves_honest_peer(s)


async def assert_serves_honest_peer(s: Served) -> None:
    good = follower(s.tmp_path, "good", s.log)
    try:
        with trio.fail_after(PATIENCE):
            async with open_node(good.store, key(60)) as ng:
                ev = ng.subscribe()
                await ng.connect(*s.node.address)
                await expect(ev, synced_with(s.node.peer_id))
        assert snapshot(GroupLog(good.store, good.group)) == s.before == snapshot(s.log)
    finally:
        good.store.close()


async def test_truncated_message_then_close_does_no_harm(tmp_path: Path) -> None:
    """The part of the truncation case that holds today: the connection ends, the store
    is unchanged and the node serves others."""
    async with served(tmp_path) as s:
        with trio.fail_after(PATIENCE):
            stream = await open_secure_stream(LOCALHOST, s.node.address[1], identity=signer(67))
            await truncated_then_close(stream, s)
            gone = await expect(s.events, down(signer(67).public_key))
        assert isinstance(gone, PeerDown)
        assert snapshot(s.log) == s.before
        await assert_serves_honest_peer(s)


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x05hello", b"B" * 200, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x01" * 64],
    ids=["short-length", "wrong-version-byte", "http"],
)
async def test_garbage_before_the_handshake(tmp_path: Path, garbage: bytes) -> None:
    """Bytes that are not a handshake: the node drops the TCP connection (no identity,
    so no PeerUp/PeerDown and no ban), keeps its store and keeps serving."""
    async with served(tmp_path) as s:
        with trio.fail_after(PATIENCE):
            raw = await trio.open_tcp_stream(LOCALHOST, s.node.address[1])
            await raw.send_all(garbage)
            with contextlib.suppress(trio.BrokenResourceError):
                while await raw.receive_some(65536):
                    pass  # the node answers nothing useful, then closes
            await raw.aclose()
        assert snapshot(s.log) == s.before
        await assert_serves_honest_peer(s)
        seen = []
        while True:
            try:
                seen.append(s.events.receive_nowait())
            except trio.WouldBlock:
                break
        assert all(isinstance(ev, PeerUp | PeerDown | GroupSynced | EntriesAdded) for ev in seen)
        assert {ev.peer_id for ev in seen if isinstance(ev, PeerUp | PeerDown)} == {
            key(60).public_key
        }
        assert s.node.statistics().refused_peers == 0
