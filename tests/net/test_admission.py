"""Admission at the accepting side of the secure channel (spec/05-channel.md 5.6.1):
the limits alone (sans-IO), then serve_secure over real loopback TCP.

The TCP tests take pytest-trio's ``mock_clock`` (virtual time that moves only when the
test jumps it) where time matters, and ``trio.testing.wait_all_tasks_blocked`` to know
the server has taken in what the test sent: on loopback a connection or a write is
ready for the other side as soon as the call returns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial

import pytest
import trio
import trio.testing

from p2pcomm.core.crypto import Ed25519Signer, x25519_public
from p2pcomm.errors import ErrorCode, P2PCommError, RemoteProtocolError
from p2pcomm.net.admission import Admission, AdmissionLimits, Refusal, Ticket, address_key
from p2pcomm.net.transport import SecureStream, open_secure_stream, serve_secure

SERVER = Ed25519Signer(bytes(range(32)))
CLIENT = Ed25519Signer(bytes(range(1, 33)))

#: A valid handshake message 1 (35 bytes: length, ephemeral key, version): what a
#: client sends first.
MESSAGE_1 = (33).to_bytes(2, "big") + x25519_public(bytes(range(2, 34))) + b"\x01"

NO_LIMITS = {
    "max_connections": None,
    "max_connections_per_address": None,
    "max_handshakes": None,
    "max_handshakes_per_address": None,
    "handshake_rate": None,
}


# -- the limits, sans-IO ------------------------------------------------------------------


def limits(**kw: object) -> AdmissionLimits:
    return AdmissionLimits(**{**NO_LIMITS, **kw})  # type: ignore[arg-type]


def test_an_address_gets_its_burst_then_its_rate() -> None:
    admission = Admission(limits(handshake_rate=2.0, handshake_burst=3))
    got = [admission.admit("192.0.2.1", now=0.0) for _ in range(4)]
    assert [isinstance(t, Ticket) for t in got] == [True, True, True, False]
    assert got[3] is Refusal.RATE
    # Another address has its own bucket; a key is free, an address is not.
    assert isinstance(admission.admit("192.0.2.2", now=0.0), Ticket)
    assert admission.admit("192.0.2.1", now=0.4) is Refusal.RATE  # 0.8 of a token
    assert isinstance(admission.admit("192.0.2.1", now=0.5), Ticket)
    assert admission.tokens("192.0.2.1", now=100.0) == 3.0  # never above the burst
    assert admission.statistics().refused == {Refusal.RATE: 2}


def test_an_ipv6_host_counts_by_its_64_prefix() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == address_key("fe80::2")
    admission = Admission(limits(handshake_rate=1.0, handshake_burst=1))
    assert isinstance(admission.admit("2001:db8::1", now=0.0), Ticket)
    assert admission.admit("2001:db8::ffff:2", now=0.0) is Refusal.RATE


def test_tickets_hold_handshakes_and_connections_until_released() -> None:
    admission = Admission(
        limits(max_connections=3, max_handshakes=2, max_handshakes_per_address=None)
    )
    a = admission.admit("192.0.2.1", now=0)
    b = admission.admit("192.0.2.2", now=0)
    assert isinstance(a, Ticket) and isinstance(b, Ticket)
    assert admission.admit("192.0.2.3", now=0) is Refusal.HANDSHAKES
    a.handshake_done()
    a.handshake_done()  # idempotent
    c = admission.admit("192.0.2.3", now=0)
    assert isinstance(c, Ticket)
    c.handshake_done()
    assert admission.admit("192.0.2.4", now=0) is Refusal.CONNECTIONS
    b.close()  # also ends its handshake
    b.close()
    assert admission.statistics().connections == 2
    assert admission.statistics().handshakes == 0
    assert isinstance(admission.admit("192.0.2.4", now=0), Ticket)


def test_one_address_cannot_take_every_slot() -> None:
    admission = Admission(
        limits(max_handshakes=8, max_handshakes_per_address=2, max_connections_per_address=3)
    )
    first = [admission.admit("192.0.2.1", now=0) for _ in range(3)]
    assert first[2] is Refusal.ADDRESS_HANDSHAKES
    for t in first[:2]:
        assert isinstance(t, Ticket)
        t.handshake_done()
    assert isinstance(admission.admit("192.0.2.1", now=0), Ticket)
    assert admission.admit("192.0.2.1", now=0) is Refusal.ADDRESS_CONNECTIONS
    assert isinstance(admission.admit("192.0.2.9", now=0), Ticket)


def test_the_bucket_table_is_bounded() -> None:
    admission = Admission(limits(handshake_rate=0.001, handshake_burst=1, tracked_addresses=2))
    for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        assert isinstance(admission.admit(host, now=0), Ticket)
    assert len(admission._buckets) == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"max_connections": 0},
        {"max_handshakes_per_address": -1},
        {"handshake_rate": 0.0},
        {"handshake_burst": 0},
        {"tracked_addresses": 0},
    ],
)
def test_limits_are_checked(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        AdmissionLimits(**bad)  # type: ignore[arg-type]


# -- serve_secure over loopback TCP --------------------------------------------------------


@dataclass
class Served:
    port: int
    refused: list[Refusal] = field(default_factory=list)
    #: Streams the handler got (it holds each until ``release`` is set).
    handled: list[SecureStream] = field(default_factory=list)
    #: What ended a handler's read, for each stream that ended.
    ended: list[BaseException | None] = field(default_factory=list)
    release: trio.Event = field(default_factory=trio.Event)


@contextlib.asynccontextmanager
async def serving(**kw: object) -> AsyncIterator[Served]:
    served = Served(0)

    async def hold(stream: SecureStream) -> None:
        served.handled.append(stream)
        try:
            async with trio.open_nursery() as nursery:

                async def read() -> None:
                    try:
                        while await stream.receive_some():
                            pass
                        served.ended.append(None)
                    except trio.BrokenResourceError as exc:
                        served.ended.append(exc)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(read)
                await served.release.wait()
                nursery.cancel_scope.cancel()
        except trio.ClosedResourceError:
            pass

    async with trio.open_nursery() as nursery:
        options = {"on_refused": lambda why, host: served.refused.append(why), **kw}
        listeners = await nursery.start(partial(serve_secure, hold, 0, identity=SERVER, **options))
        served.port = listeners[0].socket.getsockname()[1]
        yield served
        served.release.set()
        nursery.cancel_scope.cancel()


async def refused_at_once(port: int, *, local_address: str | None = None) -> bool:
    """Whether a client that sends a valid message 1 gets the end of the stream (a
    refusal) rather than message 2."""
    raw = await trio.open_tcp_stream("127.0.0.1", port, local_address=local_address)
    async with raw:
        await raw.send_all(MESSAGE_1)
        try:
            got = await raw.receive_some(1000)
        except trio.BrokenResourceError:  # a reset is a refusal too
            return True
        return got == b""


async def test_handshakes_beyond_the_cap_are_refused_before_any_crypto() -> None:
    """1: two clients connect and say nothing: two handshakes in progress. 2: a third
    sends a valid message 1 and gets the end of the stream, not message 2 (the server
    did no X25519 for it). 3: one of the two gives up: the next one is served."""
    async with serving(**{**NO_LIMITS, "max_handshakes": 2}, handshake_timeout=None) as served:
        silent = [await trio.open_tcp_stream("127.0.0.1", served.port) for _ in range(2)]
        await trio.testing.wait_all_tasks_blocked()
        assert await refused_at_once(served.port)
        assert served.refused == [Refusal.HANDSHAKES]
        await silent[0].aclose()
        await trio.testing.wait_all_tasks_blocked()
        client = await open_secure_stream("127.0.0.1", served.port, identity=CLIENT)
        await client.aclose()
        await silent[1].aclose()


async def test_connections_beyond_the_cap_are_refused_until_one_closes() -> None:
    async with serving(**{**NO_LIMITS, "max_connections": 2}) as served:
        clients = [
            await open_secure_stream("127.0.0.1", served.port, identity=CLIENT) for _ in range(2)
        ]
        await trio.testing.wait_all_tasks_blocked()
        assert len(served.handled) == 2
        with pytest.raises(RemoteProtocolError) as caught:
            await open_secure_stream("127.0.0.1", served.port, identity=CLIENT)
        assert caught.value.code is ErrorCode.HANDSHAKE_FAILED
        assert served.refused == [Refusal.CONNECTIONS]
        await clients[0].aclose()
        await trio.testing.wait_all_tasks_blocked()  # the handler returned
        again = await open_secure_stream("127.0.0.1", served.port, identity=CLIENT)
        await again.aclose()
        await clients[1].aclose()


async def test_connections_are_counted_per_address() -> None:
    async with serving(**{**NO_LIMITS, "max_connections_per_address": 1}) as served:
        first = await open_secure_stream("127.0.0.1", served.port, identity=CLIENT)
        await trio.testing.wait_all_tasks_blocked()
        assert await refused_at_once(served.port)
        assert served.refused == [Refusal.ADDRESS_CONNECTIONS]
        # Another loopback address is another peer.
        assert not await refused_at_once(served.port, local_address="127.0.0.2")
        await first.aclose()


async def test_an_address_beyond_its_handshake_rate_is_refused(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Fresh keys cost nothing: the bucket is the address's, whatever key it uses."""
    async with serving(**{**NO_LIMITS, "handshake_rate": 1.0, "handshake_burst": 2}) as served:
        for _ in range(2):
            fresh = Ed25519Signer(os.urandom(32))
            client = await open_secure_stream("127.0.0.1", served.port, identity=fresh)
            await client.aclose()
        assert await refused_at_once(served.port)
        assert served.refused == [Refusal.RATE]
        mock_clock.jump(1.0)
        client = await open_secure_stream("127.0.0.1", served.port, identity=CLIENT)
        await client.aclose()
        assert served.refused == [Refusal.RATE]


async def test_a_frame_left_unfinished_breaks_the_stream(
    mock_clock: trio.testing.MockClock,
) -> None:
    """1: a client idles between frames for longer than the frame timeout: nothing
    happens. 2: it sends the first 12 bytes of a 66-byte frame and stops: once the
    timeout passes the server's read fails with TRUNCATED."""
    async with serving(**NO_LIMITS, frame_timeout=5.0, handshake_timeout=None) as served:
        client = await open_secure_stream("127.0.0.1", served.port, identity=CLIENT)
        await client.send_all(b"whole")
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(60.0)
        await trio.testing.wait_all_tasks_blocked()
        assert served.ended == []
        await client.transport.send_all((64).to_bytes(2, "big") + bytes(10))
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(4.9)
        await trio.testing.wait_all_tasks_blocked()
        assert served.ended == []
        mock_clock.jump(0.2)
        await trio.testing.wait_all_tasks_blocked()
        (exc,) = served.ended
        assert isinstance(exc, trio.BrokenResourceError)
        cause = exc.__cause__
        assert isinstance(cause, P2PCommError) and cause.code is ErrorCode.TRUNCATED
        await trio.aclose_forcefully(client)


async def test_refusals_are_logged_without_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="p2pcomm.net.transport")
    async with serving(**{**NO_LIMITS, "max_connections": 1}) as served:
        first = await open_secure_stream("127.0.0.1", served.port, identity=CLIENT)
        await trio.testing.wait_all_tasks_blocked()
        assert await refused_at_once(served.port)
        await first.aclose()
    (record,) = [r for r in caplog.records if r.getMessage().startswith("refused")]
    assert record.getMessage().startswith("refused too-many-connections: connection from 127.0.0.1")
    assert record.exc_info is None
