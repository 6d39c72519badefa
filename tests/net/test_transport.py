"""Tests of p2pcomm.net.transport: SecureStream as a trio Stream (conformance suite over
memory streams), its errors, and real loopback TCP through serve_secure/open_secure_stream."""

from __future__ import annotations

import contextlib
import logging
from functools import partial

import pytest
import trio
import trio.testing

from p2pcomm.core.channel import DEFAULT_REKEY_INTERVAL, CloseCode, CloseReceived
from p2pcomm.core.crypto import Ed25519Signer
from p2pcomm.core.handshake import Role
from p2pcomm.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from p2pcomm.net.transport import SecureStream, open_secure_stream, serve_secure

ALICE = Ed25519Signer(b"\xa1" * 32)
BOB = Ed25519Signer(b"\xb0" * 32)
MALLORY = Ed25519Signer(b"\x66" * 32)


def wrap(
    left: trio.abc.Stream,
    right: trio.abc.Stream,
    *,
    rekey_interval: int = DEFAULT_REKEY_INTERVAL,
    application_payload: bytes = b"",
) -> tuple[SecureStream, SecureStream]:
    """SecureStreams over a connected pair, Alice initiating, Bob responding."""
    a, b = (
        SecureStream(
            stream,
            role=role,
            identity=identity,
            rekey_interval=rekey_interval,
            application_payload=application_payload,
        )
        for stream, role, identity in ((left, Role.INITIATOR, ALICE), (right, Role.RESPONDER, BOB))
    )
    return a, b


async def handshaken(a: SecureStream, b: SecureStream) -> tuple[SecureStream, SecureStream]:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.handshake)
        nursery.start_soon(b.handshake)
    return a, b


async def secure_memory_pair() -> tuple[SecureStream, SecureStream]:
    return await handshaken(*wrap(*trio.testing.memory_stream_pair()))


async def secure_lockstep_pair() -> tuple[SecureStream, SecureStream]:
    return await handshaken(*wrap(*trio.testing.lockstep_stream_pair()))


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = await stream.receive_some(size - len(got))
        assert chunk, "unexpected end of stream"
        got += chunk
    return bytes(got)


# -- conformance ------------------------------------------------------------------------


async def test_check_two_way_stream() -> None:
    await trio.testing.check_two_way_stream(secure_memory_pair, secure_lockstep_pair)


async def test_check_two_way_stream_with_frequent_rekeys() -> None:
    async def maker() -> tuple[SecureStream, SecureStream]:
        return await handshaken(*wrap(*trio.testing.memory_stream_pair(), rekey_interval=3))

    await trio.testing.check_two_way_stream(maker, None)


# -- identities and lifecycle -----------------------------------------------------------


async def test_peer_ids_after_handshake() -> None:
    a, b = wrap(*trio.testing.memory_stream_pair(), application_payload=b"hello")
    with pytest.raises(LocalProtocolError) as info:
        a.peer_id  # noqa: B018
    assert info.value.code is ErrorCode.BAD_STATE
    await handshaken(a, b)
    assert a.peer_id == BOB.public_key and b.peer_id == ALICE.public_key
    assert a.handshake_hash == b.handshake_hash
    assert a.peer_payload == b.peer_payload == b"hello"
    assert len(a.peer_static) == 32
    await a.handshake()  # idempotent
    async with a, b:
        pass


async def test_lazy_handshake_on_first_use() -> None:
    a, b = wrap(*trio.testing.memory_stream_pair())

    async def answer() -> None:
        assert await receive_exactly(b, 4) == b"ping"
        await b.send_all(b"pong")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer)
        await a.send_all(b"ping")
        assert await receive_exactly(a, 4) == b"pong"
    assert a.peer_id == BOB.public_key


async def test_close_reason_reaches_the_peer() -> None:
    a, b = await secure_memory_pair()
    await a.send_all(b"last")
    await a.aclose(code=CloseCode.GOING_AWAY, reason="shutting down")
    assert await receive_exactly(b, 4) == b"last"
    assert await b.receive_some() == b""
    assert await b.receive_some() == b""
    assert b.close_received == CloseReceived(code=CloseCode.GOING_AWAY, reason="shutting down")
    with pytest.raises(trio.BrokenResourceError):  # the peer will read nothing more
        await b.send_all(b"too late")
    await b.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await a.send_all(b"x")


async def test_max_bytes_splits_a_record() -> None:
    a, b = await secure_memory_pair()
    await a.send_all(b"abcdef")
    assert await b.receive_some(2) == b"ab"
    assert await b.receive_some(3) == b"cde"
    assert await b.receive_some() == b"f"


async def test_large_transfer_with_rekeys() -> None:
    a, b = await handshaken(*wrap(*trio.testing.memory_stream_pair(), rekey_interval=2))
    data = bytes(i % 253 for i in range(300_000))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.send_all, data)
        assert await receive_exactly(b, len(data)) == data


# -- peers that misbehave -----------------------------------------------------------------


async def test_garbage_after_handshake_breaks_the_stream_with_a_typed_cause() -> None:
    a, b = await secure_memory_pair()
    await b.transport.send_all(b"\x00\x20" + bytes(32))  # a frame no key produced
    with pytest.raises(trio.BrokenResourceError) as info:
        await a.receive_some()
    cause = info.value.__cause__
    assert isinstance(cause, RemoteProtocolError) and cause.code is ErrorCode.DECRYPT_FAILED
    with pytest.raises(trio.BrokenResourceError):  # stays broken
        await a.receive_some()
    await a.aclose()  # tells the peer why
    assert await b.receive_some() == b""
    assert b.close_received is not None
    assert b.close_received.code == CloseCode.PROTOCOL_ERROR
    assert "decrypt-failed" in b.close_received.reason


async def test_end_of_stream_without_close_is_broken() -> None:
    a, b = await secure_memory_pair()
    await b.transport.aclose()
    with pytest.raises(trio.BrokenResourceError) as info:
        await a.receive_some()
    cause = info.value.__cause__
    assert isinstance(cause, RemoteProtocolError) and cause.code is ErrorCode.CLOSED


async def test_garbage_during_handshake_is_a_typed_error() -> None:
    left, right = trio.testing.memory_stream_pair()
    server = SecureStream(right, role=Role.RESPONDER, identity=BOB)
    await left.send_all(b"\x00\x05hello")
    with pytest.raises(RemoteProtocolError) as info:
        await server.handshake()
    assert info.value.code is ErrorCode.WRONG_LENGTH
    with pytest.raises(trio.BrokenResourceError) as broken:
        await server.receive_some()
    assert broken.value.__cause__ is not None
    await server.aclose()
    assert await left.receive_some() == b""  # closed without a word


async def test_unexpected_identity_fails_the_handshake() -> None:
    left, right = trio.testing.memory_stream_pair()
    a = SecureStream(left, role=Role.INITIATOR, identity=ALICE, expected_peer_id=MALLORY.public_key)
    b = SecureStream(right, role=Role.RESPONDER, identity=BOB)

    async def responder() -> None:
        with pytest.raises(RemoteProtocolError) as info:
            await b.handshake()
        assert info.value.code is ErrorCode.HANDSHAKE_FAILED  # initiator hung up

    async with trio.open_nursery() as nursery:
        nursery.start_soon(responder)
        with pytest.raises(RemoteProtocolError) as info:
            await a.handshake()
        assert info.value.code is ErrorCode.HANDSHAKE_FAILED
        assert info.value.found == BOB.public_key.hex()
        await a.aclose()


async def test_handshake_timeout(autojump_clock: trio.testing.MockClock) -> None:
    left, right = trio.testing.memory_stream_pair()  # nobody ever speaks on `left`
    server = SecureStream(right, role=Role.RESPONDER, identity=BOB, handshake_timeout=5.0)
    start = trio.current_time()
    with pytest.raises(RemoteProtocolError) as info:
        await server.handshake()
    assert info.value.code is ErrorCode.TIMEOUT
    assert trio.current_time() - start == pytest.approx(5.0)
    await server.aclose()
    await left.aclose()


async def test_wrong_prologue_fails_both_sides() -> None:
    left, right = trio.testing.memory_stream_pair()
    a = SecureStream(left, role=Role.INITIATOR, identity=ALICE, prologue=b"p2pcomm/0 other")
    b = SecureStream(right, role=Role.RESPONDER, identity=BOB)
    errors: list[ErrorCode] = []

    async def run(stream: SecureStream) -> None:
        try:
            await stream.handshake()
        except RemoteProtocolError as exc:
            errors.append(exc.code)
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, a)
        nursery.start_soon(run, b)
    assert errors == [ErrorCode.HANDSHAKE_FAILED, ErrorCode.HANDSHAKE_FAILED]


# -- real TCP on loopback ------------------------------------------------------------------


async def test_tcp_loopback_serves_good_clients_after_a_bad_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="p2pcomm.net.transport")
    server_saw: list[tuple[bytes, bytes]] = []

    async def upper_echo(stream: SecureStream) -> None:
        server_saw.append((stream.peer_id, stream.peer_payload))
        while data := await stream.receive_some():
            await stream.send_all(data.upper())

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(serve_secure, upper_echo, 0, identity=BOB))
        host, port = listeners[0].socket.getsockname()[:2]
        assert host == "127.0.0.1" and port != 0

        # 1. A client that speaks garbage is dropped with a typed, logged error.
        raw = await trio.open_tcp_stream("127.0.0.1", port)
        await raw.send_all(b"\x00\x05hello")
        with contextlib.suppress(trio.BrokenResourceError):  # a reset is fine too
            assert await raw.receive_some(100) == b""
        await raw.aclose()
        (record,) = [r for r in caplog.records if r.name == "p2pcomm.net.transport"]
        assert record.exc_info is not None
        error = record.exc_info[1]
        assert isinstance(error, RemoteProtocolError) and error.code is ErrorCode.WRONG_LENGTH

        # 2. The server still accepts, and two good clients get their data through.
        for client_identity, payload in ((ALICE, b"alice"), (MALLORY, b"")):
            client = await open_secure_stream(
                "127.0.0.1",
                port,
                identity=client_identity,
                expected_peer_id=BOB.public_key,
                application_payload=payload,
            )
            async with client:
                assert client.peer_id == BOB.public_key
                message = b"hello over tcp " * 5000
                async with trio.open_nursery() as inner:
                    inner.start_soon(client.send_all, message)
                    assert await receive_exactly(client, len(message)) == message.upper()

        # 3. A client expecting someone else fails; the server is unaffected.
        with pytest.raises(RemoteProtocolError) as info:
            await open_secure_stream(
                "127.0.0.1", port, identity=ALICE, expected_peer_id=MALLORY.public_key
            )
        assert info.value.code is ErrorCode.HANDSHAKE_FAILED
        nursery.cancel_scope.cancel()

    assert server_saw == [(ALICE.public_key, b"alice"), (MALLORY.public_key, b"")]
