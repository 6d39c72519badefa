"""Tests of p2pcomm.core.channel (the record layer), plus the fuzz property that no byte
string fed to the channel or handshake decoders raises anything but a P2PCommError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcomm.core.buffer import ReceiveBuffer, frame
from p2pcomm.core.channel import (
    MAX_CLOSE_REASON,
    MAX_FRAME_SIZE,
    MIN_FRAME_SIZE,
    NEED_DATA,
    Channel,
    ChannelEvent,
    ChannelState,
    CloseCode,
    CloseReceived,
    DataReceived,
    FrameType,
)
from p2pcomm.core.crypto import Ed25519Signer
from p2pcomm.core.handshake import (
    MAX_NONCE,
    SEND_NEEDED,
    CipherState,
    Handshake,
    HandshakeComplete,
    Role,
    State,
)
from p2pcomm.errors import ErrorCode, LocalProtocolError, P2PCommError, RemoteProtocolError

KEY_AB = bytes(range(32))
KEY_BA = bytes(range(32, 64))
FUZZ = settings(deadline=None, derandomize=True)  # example count: the active profile


def make_pair(
    *,
    a_nonce: int = 0,
    b_nonce: int = 0,
    a_kwargs: dict[str, int] | None = None,
    b_kwargs: dict[str, int] | None = None,
) -> tuple[Channel, Channel]:
    """Two channels wired to each other: a sends with KEY_AB, b with KEY_BA."""
    a = Channel(
        send_cipher=CipherState(KEY_AB, nonce=a_nonce),
        recv_cipher=CipherState(KEY_BA, nonce=b_nonce),
        **(a_kwargs or {}),
    )
    b = Channel(
        send_cipher=CipherState(KEY_BA, nonce=b_nonce),
        recv_cipher=CipherState(KEY_AB, nonce=a_nonce),
        **(b_kwargs or {}),
    )
    return a, b


def drain(channel: Channel) -> list[ChannelEvent]:
    """All events up to NEED_DATA (or the first CloseReceived)."""
    events: list[ChannelEvent] = []
    while True:
        event = channel.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, CloseReceived):
            return events


def state_of(channel: Channel) -> ChannelState:
    """``channel.state``, read through a call so type checkers do not pin it."""
    return channel.state


def received_bytes(events: list[ChannelEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, DataReceived))


def raw_frame(cipher: CipherState, plaintext: bytes) -> bytes:
    """A frame with arbitrary plaintext, encrypted correctly (to craft malformed records)."""
    return frame(cipher.encrypt_with_ad(b"", plaintext))


def expect_remote(channel: Channel, code: ErrorCode) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        drain(channel)
    assert info.value.code is code, info.value
    assert channel.state is ChannelState.FAILED
    with pytest.raises(LocalProtocolError, match="FAILED"):
        channel.next_event()
    with pytest.raises(LocalProtocolError, match="FAILED"):
        channel.receive_data(b"more")
    return info.value


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [1, 100, MAX_FRAME_SIZE - 17, MAX_FRAME_SIZE - 16, 3 * MAX_FRAME_SIZE + 5]
)
def test_round_trip_both_directions(size: int) -> None:
    a, b = make_pair()
    message = bytes(i % 251 for i in range(size))
    wire = a.send_data(message)
    frames = -(-size // a.max_data_per_frame)
    assert len(wire) == size + frames * (2 + 16 + 1)
    b.receive_data(wire)
    events = drain(b)
    assert len(events) == frames
    assert received_bytes(events) == message

    a.receive_data(b.send_data(message[::-1]))
    assert received_bytes(drain(a)) == message[::-1]


def test_frame_layout() -> None:
    a, _b = make_pair()
    wire = a.send_data(b"hello")
    assert wire[:2] == (16 + 1 + 5).to_bytes(2, "big")
    plaintext = CipherState(KEY_AB).decrypt_with_ad(b"", wire[2:])
    assert plaintext == bytes([FrameType.DATA]) + b"hello"
    assert a.max_data_per_frame == 65518


def test_empty_send_produces_nothing() -> None:
    a, _ = make_pair()
    assert a.send_data(b"") == b""
    assert a.statistics().frames_sent == 0


def test_memoryview_and_bytearray_input() -> None:
    a, b = make_pair()
    b.receive_data(a.send_data(memoryview(b"abc")) + a.send_data(bytearray(b"def")))
    assert received_bytes(drain(b)) == b"abcdef"


def test_fragmentation_byte_at_a_time() -> None:
    a, b = make_pair(a_kwargs={"rekey_interval": 3})
    messages = [b"one", b"", b"three" * 100, b"four"]
    wire = b"".join(a.send_data(m) for m in messages) + a.send_close(CloseCode.NORMAL, "done")
    events: list[ChannelEvent] = []
    for i in range(len(wire)):
        b.receive_data(wire[i : i + 1])
        events += drain(b)
    assert received_bytes(events) == b"".join(messages)
    assert events[-1] == CloseReceived(code=CloseCode.NORMAL, reason="done")


def test_whole_with_trailing_partial_frame() -> None:
    a, b = make_pair()
    first, second = a.send_data(b"first"), a.send_data(b"second")
    b.receive_data(first + second[:5])
    assert received_bytes(drain(b)) == b"first"
    b.receive_data(second[5:])
    assert received_bytes(drain(b)) == b"second"


def test_channel_from_a_real_handshake() -> None:
    alice, bob = Ed25519Signer(b"\x01" * 32), Ed25519Signer(b"\x02" * 32)
    hs_a = Handshake(
        Role.INITIATOR, identity=alice, static_private=b"\x03" * 32, ephemeral_private=b"\x04" * 32
    )
    hs_b = Handshake(
        Role.RESPONDER, identity=bob, static_private=b"\x05" * 32, ephemeral_private=b"\x06" * 32
    )
    hs_b.receive_data(hs_a.send_message())
    hs_b.next_event()
    hs_a.receive_data(hs_b.send_message())
    hs_a.next_event()
    assert hs_a.next_event() is SEND_NEEDED
    message_3 = hs_a.send_message()
    chan_a = Channel.from_handshake(hs_a.result)
    hs_b.receive_data(message_3 + chan_a.send_data(b"early data"))
    hs_b.next_event()
    complete = hs_b.next_event()
    assert isinstance(complete, HandshakeComplete) and hs_b.state is State.DONE
    chan_b = Channel.from_handshake(complete.result)
    chan_b.receive_data(hs_b.trailing_data())
    assert received_bytes(drain(chan_b)) == b"early data"
    chan_a.receive_data(chan_b.send_data(b"reply"))
    assert received_bytes(drain(chan_a)) == b"reply"


# -- tampering and garbage ------------------------------------------------------------


def test_tampering_with_any_ciphertext_byte_fails() -> None:
    a, _ = make_pair()
    wire = a.send_data(b"attack at dawn")
    for position in range(2, len(wire)):
        _, b = make_pair()
        tampered = bytearray(wire)
        tampered[position] ^= 0x04
        b.receive_data(bytes(tampered))
        error = expect_remote(b, ErrorCode.DECRYPT_FAILED)
        assert error.found == 0  # the nonce


def test_tampered_length_prefix() -> None:
    a, _ = make_pair()
    wire = a.send_data(b"attack at dawn")
    _, b = make_pair()
    b.receive_data(bytes([wire[0], wire[1] - 1]) + wire[2:])  # shorter: tag check fails
    expect_remote(b, ErrorCode.DECRYPT_FAILED)
    _, b = make_pair()
    b.receive_data(bytes([wire[0], wire[1] + 1]) + wire[2:])  # longer: waits, then eof
    assert drain(b) == []
    b.receive_data(b"")
    expect_remote(b, ErrorCode.TRUNCATED)


def test_replayed_frame_fails() -> None:
    a, b = make_pair()
    wire = a.send_data(b"once")
    b.receive_data(wire + wire)
    with pytest.raises(RemoteProtocolError) as info:
        drain(b)
    assert info.value.code is ErrorCode.DECRYPT_FAILED
    assert info.value.found == 1


def test_oversize_length_is_refused_before_the_body() -> None:
    a, _ = make_pair()
    _, b = make_pair(b_kwargs={"max_frame_size": 2000})
    wire = a.send_data(b"x" * 3000)
    b.receive_data(wire[:2])  # the length alone is enough
    error = expect_remote(b, ErrorCode.FRAME_TOO_LARGE)
    assert (error.expected, error.found) == (2000, 3000 + 17)


def test_length_too_short_for_a_tag() -> None:
    _, b = make_pair()
    b.receive_data(frame(b"\x00" * 16))
    expect_remote(b, ErrorCode.MALFORMED)


@pytest.mark.parametrize(
    ("plaintext", "code"),
    [
        (b"\x07payload", ErrorCode.MALFORMED),  # unknown type
        (b"\x02x", ErrorCode.MALFORMED),  # REKEY with a body
        (b"\x01\x00", ErrorCode.MALFORMED),  # CLOSE without a whole code
        (b"\x01\x00\x00\xff\xfe", ErrorCode.MALFORMED),  # reason not utf-8
        (b"\x01\x00\x00" + b"r" * (MAX_CLOSE_REASON + 1), ErrorCode.TOO_LARGE),
    ],
)
def test_malformed_records(plaintext: bytes, code: ErrorCode) -> None:
    _, b = make_pair()
    b.receive_data(raw_frame(CipherState(KEY_AB), plaintext))
    expect_remote(b, code)


def test_end_of_stream_without_close() -> None:
    a, b = make_pair()
    b.receive_data(a.send_data(b"data"))
    b.receive_data(b"")
    assert received_bytes([b.next_event()]) == b"data"
    error = expect_remote(b, ErrorCode.CLOSED)
    assert "without a close frame" in str(error)


def test_end_of_stream_inside_a_frame() -> None:
    a, b = make_pair()
    b.receive_data(a.send_data(b"data")[:-1])
    b.receive_data(b"")
    expect_remote(b, ErrorCode.TRUNCATED)


# -- rekey ----------------------------------------------------------------------------


def test_rekey_interop_over_many_frames() -> None:
    a, b = make_pair(a_kwargs={"rekey_interval": 4}, b_kwargs={"rekey_interval": 7})
    sent_ab, sent_ba = bytearray(), bytearray()
    got_a, got_b = bytearray(), bytearray()
    for i in range(200):
        msg = f"message {i}".encode()
        sent_ab += msg
        b.receive_data(a.send_data(msg))
        got_b += received_bytes(drain(b))
        if i % 3 == 0:
            sent_ba += msg
            a.receive_data(b.send_data(msg))
            got_a += received_bytes(drain(a))
    assert got_b == sent_ab and got_a == sent_ba
    stats_a, stats_b = a.statistics(), b.statistics()
    # Every 4th frame a sends is a REKEY: 200 data frames need 66 of them.
    assert stats_a.rekeys_sent == stats_b.rekeys_received == 66
    assert stats_a.frames_sent == stats_b.frames_received == 266
    assert stats_b.rekeys_sent == stats_a.rekeys_received == (67 - 1) // 6
    assert stats_a.send_nonce == stats_b.receive_nonce == 266


def test_rekey_really_changes_the_key() -> None:
    a, _ = make_pair(a_kwargs={"rekey_interval": 2})
    wire = a.send_data(b"one") + a.send_data(b"two")
    reader = ReceiveBuffer()
    reader.feed(wire)
    plain = CipherState(KEY_AB)
    assert plain.decrypt_with_ad(b"", reader.consume_frame() or b"") == b"\x00one"
    assert plain.decrypt_with_ad(b"", reader.consume_frame() or b"") == b"\x02"
    third = reader.consume_frame() or b""
    with pytest.raises(RemoteProtocolError):  # the old key no longer works
        plain.decrypt_with_ad(b"", third)
    plain.rekey()
    assert plain.decrypt_with_ad(b"", third) == b"\x00two"


# -- close ----------------------------------------------------------------------------


def test_close_with_reason_both_ways() -> None:
    a, b = make_pair()
    b.receive_data(a.send_data(b"last words") + a.send_close(CloseCode.GOING_AWAY, "bye ✓"))
    assert a.state is ChannelState.CLOSE_SENT
    events = drain(b)
    assert received_bytes(events) == b"last words"
    assert events[-1] == CloseReceived(code=CloseCode.GOING_AWAY, reason="bye ✓")
    assert isinstance(events[-1].code, CloseCode)
    assert state_of(b) is ChannelState.CLOSE_RECEIVED
    assert b.next_event() == events[-1]  # repeated, like h11's ConnectionClosed
    assert b.close_received == events[-1]

    with pytest.raises(LocalProtocolError, match="CLOSE_RECEIVED"):
        b.send_data(b"too late")
    a.receive_data(b.send_close())
    assert state_of(b) is ChannelState.CLOSED
    assert drain(a) == [CloseReceived(code=CloseCode.NORMAL, reason="")]
    assert state_of(a) is ChannelState.CLOSED
    b.receive_data(b"")  # the end of the stream after CLOSE is fine
    assert isinstance(b.next_event(), CloseReceived)


def test_data_still_received_after_close_sent() -> None:
    a, b = make_pair()
    b.receive_data(a.send_close())
    a.receive_data(b.send_data(b"in flight"))
    assert received_bytes(drain(a)) == b"in flight"
    assert a.state is ChannelState.CLOSE_SENT
    with pytest.raises(LocalProtocolError, match="CLOSE_SENT"):
        a.send_data(b"x")
    with pytest.raises(LocalProtocolError, match="CLOSE_SENT"):
        a.send_close()


def test_application_close_code() -> None:
    a, b = make_pair()
    b.receive_data(a.send_close(0x8001, "app"))
    assert drain(b) == [CloseReceived(code=0x8001, reason="app")]
    close = b.close_received
    assert close is not None and not isinstance(close.code, CloseCode)


def test_bytes_after_close_are_unexpected() -> None:
    a, b = make_pair()
    b.receive_data(a.send_close() + b"\x00")
    with pytest.raises(RemoteProtocolError) as info:
        drain(b)
        b.next_event()
    assert info.value.code is ErrorCode.UNEXPECTED_MESSAGE


def test_close_may_still_be_sent_once_after_a_failure() -> None:
    a, b = make_pair()
    a.receive_data(frame(bytes(40)))
    expect_remote(a, ErrorCode.DECRYPT_FAILED)
    with pytest.raises(LocalProtocolError, match="FAILED"):
        a.send_data(b"no")
    b.receive_data(a.send_close(CloseCode.PROTOCOL_ERROR, "decrypt-failed"))
    assert drain(b) == [CloseReceived(code=CloseCode.PROTOCOL_ERROR, reason="decrypt-failed")]
    with pytest.raises(LocalProtocolError, match="second time"):
        a.send_close()


def test_bad_close_arguments() -> None:
    a, _ = make_pair()
    with pytest.raises(LocalProtocolError) as info:
        a.send_close(0x10000)
    assert info.value.code is ErrorCode.OUT_OF_RANGE
    with pytest.raises(LocalProtocolError) as info:
        a.send_close(reason="é" * MAX_CLOSE_REASON)
    assert info.value.code is ErrorCode.TOO_LARGE
    assert a.state is ChannelState.OPEN


# -- nonces ---------------------------------------------------------------------------


def test_send_nonce_exhaustion_is_refused_but_close_still_works() -> None:
    start = MAX_NONCE - 5
    a, b = make_pair(a_nonce=start)
    wire = a.send_data(b"1") + a.send_data(b"2") + a.send_data(b"3")  # nonces -5, -4, -3
    with pytest.raises(LocalProtocolError) as info:
        a.send_data(b"4")
    assert info.value.code is ErrorCode.OUT_OF_RANGE
    assert a.statistics().send_nonce == MAX_NONCE - 2  # nothing was consumed
    wire += a.send_close(CloseCode.NORMAL, "out of nonces")  # nonce 2**64 - 2
    b.receive_data(wire)
    events = drain(b)
    assert received_bytes(events) == b"123"
    assert events[-1] == CloseReceived(code=CloseCode.NORMAL, reason="out of nonces")


def test_multi_frame_send_near_the_end_is_atomic() -> None:
    a, _ = make_pair(a_nonce=MAX_NONCE - 4)
    with pytest.raises(LocalProtocolError):
        a.send_data(b"x" * (a.max_data_per_frame * 2 + 1))  # 3 frames, 2 nonces left
    assert a.statistics().send_nonce == MAX_NONCE - 4
    assert a.send_data(b"x" * (a.max_data_per_frame * 2))  # 2 frames fit


def test_nonce_exhaustion_with_a_rekey_due() -> None:
    a, b = make_pair(a_nonce=MAX_NONCE - 6, a_kwargs={"rekey_interval": 2})
    wire = a.send_data(b"a") + a.send_data(b"b")  # DATA, REKEY, DATA
    with pytest.raises(LocalProtocolError):
        a.send_data(b"c")  # would need REKEY at -3 and DATA at -2
    wire += a.send_close()  # REKEY at -3, CLOSE at -2
    b.receive_data(wire)
    events = drain(b)
    assert received_bytes(events) == b"ab" and isinstance(events[-1], CloseReceived)


def test_receive_nonce_exhaustion() -> None:
    sender = CipherState(KEY_AB, nonce=MAX_NONCE - 1)
    wire = raw_frame(sender, b"\x00ok")
    b = Channel(
        send_cipher=CipherState(KEY_BA), recv_cipher=CipherState(KEY_AB, nonce=MAX_NONCE - 1)
    )
    b.receive_data(wire + frame(bytes(20)))
    assert b.next_event() == DataReceived(data=b"ok")
    expect_remote(b, ErrorCode.OUT_OF_RANGE)


def test_bad_channel_arguments() -> None:
    for kwargs in (
        {"rekey_interval": 1},
        {"rekey_interval": 2**16 + 1},
        {"max_frame_size": MIN_FRAME_SIZE - 1},
        {"max_frame_size": MAX_FRAME_SIZE + 1},
    ):
        with pytest.raises(LocalProtocolError):
            Channel(send_cipher=CipherState(KEY_AB), recv_cipher=CipherState(KEY_BA), **kwargs)
    with pytest.raises(LocalProtocolError):
        Channel(send_cipher=CipherState(), recv_cipher=CipherState(KEY_BA))


def test_receive_data_after_eof_is_a_local_error() -> None:
    _, b = make_pair()
    b.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        b.receive_data(b"x")


# -- fuzz: decoders raise only P2PCommError -------------------------------------------

CHUNKS = st.lists(st.binary(max_size=300), max_size=8)


def feed_channel(channel: Channel, chunks: list[bytes], eof: bool) -> None:
    for chunk in [*chunks, *([b""] if eof else [])]:
        if not chunk and not eof:
            continue
        channel.receive_data(chunk)
        drain(channel)
        if channel.close_received is not None:
            return


@FUZZ
@given(chunks=CHUNKS, eof=st.booleans())
def test_fuzz_channel_arbitrary_bytes(chunks: list[bytes], eof: bool) -> None:
    _, b = make_pair()
    with contextlib.suppress(P2PCommError):
        feed_channel(b, [c for c in chunks if c], eof)


@FUZZ
@given(
    messages=st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=5),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=3),
    cut=st.integers(min_value=0),
    close=st.booleans(),
)
def test_fuzz_channel_mutated_valid_stream(
    messages: list[bytes], flips: list[tuple[int, int]], cut: int, close: bool
) -> None:
    a, b = make_pair(a_kwargs={"rekey_interval": 2})
    wire = bytearray(b"".join(a.send_data(m) for m in messages))
    if close:
        wire += a.send_close(CloseCode.PROTOCOL_ERROR, "fuzz")
    for position, mask in flips:
        wire[position % len(wire)] ^= mask
    with contextlib.suppress(P2PCommError):
        feed_channel(b, [bytes(wire[: cut % (len(wire) + 1)])], eof=True)


def handshake_at(state: State) -> Handshake:
    """A handshake waiting for a message from the peer, reached with honest messages."""
    alice, bob = Ed25519Signer(b"\x01" * 32), Ed25519Signer(b"\x02" * 32)
    initiator = Handshake(
        Role.INITIATOR, identity=alice, static_private=b"\x03" * 32, ephemeral_private=b"\x04" * 32
    )
    responder = Handshake(
        Role.RESPONDER, identity=bob, static_private=b"\x05" * 32, ephemeral_private=b"\x06" * 32
    )
    if state is State.WAIT_MESSAGE_1:
        return responder
    responder.receive_data(initiator.send_message())
    responder.next_event()
    if state is State.WAIT_MESSAGE_2:
        return initiator
    initiator.receive_data(responder.send_message())
    initiator.next_event()
    initiator.send_message()
    return responder


@FUZZ
@given(
    state=st.sampled_from([State.WAIT_MESSAGE_1, State.WAIT_MESSAGE_2, State.WAIT_MESSAGE_3]),
    chunks=CHUNKS,
    prefix_length=st.booleans(),
    eof=st.booleans(),
)
def test_fuzz_handshake_arbitrary_bytes(
    state: State, chunks: list[bytes], prefix_length: bool, eof: bool
) -> None:
    hs = handshake_at(state)
    data = b"".join(chunks)
    if prefix_length:  # a plausible frame, so the fuzz reaches the Noise layer
        data = frame(data[:0xFFFF])
    try:
        for piece in [data[i : i + 97] for i in range(0, len(data), 97)] + ([b""] if eof else []):
            if piece or eof:
                hs.receive_data(piece)
            while hs.state not in (State.DONE, State.FAILED):
                event = hs.next_event()
                if event is SEND_NEEDED:
                    hs.send_message()
                elif event is NEED_DATA:
                    break
            if hs.state in (State.DONE, State.FAILED):
                break
    except P2PCommError:
        pass


# ---------------------------------------------------------------- keepalive (5.5.7)


def test_keepalive_is_one_empty_data_frame() -> None:
    a, b = make_pair()
    wire = a.send_keepalive()
    assert len(wire) == 2 + 1 + 16  # length, type byte, tag
    b.receive_data(wire)
    assert drain(b) == [DataReceived(data=b"")]
    assert a.send_data(b"") == b""  # send_data of nothing sends no frame
    a.send_close()
    with pytest.raises(LocalProtocolError):
        a.send_keepalive()


def test_keepalive_vector() -> None:
    import json
    from pathlib import Path

    doc = json.loads(
        (Path(__file__).resolve().parents[2] / "spec" / "vectors" / "channel.json").read_text()
    )
    (hv,) = [v for v in doc["vectors"] if v["type"] == "handshake"]
    (kv,) = [v for v in doc["vectors"] if v["type"] == "keepalive"]

    def side(spec: dict[str, str], role: Role) -> Handshake:
        return Handshake(
            role,
            identity=Ed25519Signer(bytes.fromhex(spec["identity_seed"])),
            static_private=bytes.fromhex(spec["static_private"]),
            ephemeral_private=bytes.fromhex(spec["ephemeral_private"]),
            application_payload=bytes.fromhex(spec["payload"]),
        )

    i, r = side(hv["initiator"], Role.INITIATOR), side(hv["responder"], Role.RESPONDER)
    results = {}
    for _ in range(20):
        for me, other in ((i, r), (r, i)):
            if me.state is not State.DONE and me.next_event() is SEND_NEEDED:
                other.receive_data(me.send_message())
        if i.state is State.DONE and r.state is State.DONE:
            for me in (i, r):
                while not isinstance(event := me.next_event(), HandshakeComplete):
                    pass
                results[me.role] = event.result
            break
    assert kv["from"] == "initiator"
    sender = Channel.from_handshake(results[Role.INITIATOR])
    receiver = Channel.from_handshake(results[Role.RESPONDER])
    wire = sender.send_keepalive()
    assert wire.hex() == kv["wire"]
    receiver.receive_data(wire)
    assert drain(receiver) == [DataReceived(data=b"")]
