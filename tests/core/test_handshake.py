"""Tests of p2pcomm.core.noise against the published Noise vectors, then of the p2pcomm
handshake machine of p2pcomm.core.handshake between two in-memory endpoints (no sockets,
no trio)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core import handshake, noise
from p2pcomm.core.buffer import frame
from p2pcomm.core.crypto import Ed25519Signer, x25519_public
from p2pcomm.core.handshake import (
    IDENTITY_PAYLOAD_SIZE,
    MAX_APPLICATION_PAYLOAD,
    MAX_NONCE,
    MESSAGE_1_SIZE,
    MESSAGE_2_MIN_SIZE,
    MESSAGE_3_MIN_SIZE,
    NEED_DATA,
    PROLOGUE,
    SEND_NEEDED,
    CipherState,
    Handshake,
    HandshakeComplete,
    HandshakeEvent,
    HelloReceived,
    NoiseHash,
    NoiseXX,
    PeerAuthenticated,
    Role,
    State,
    identity_signable,
)
from p2pcomm.errors import ErrorCode, LocalProtocolError, RemoteProtocolError

# --------------------------------------------------------------------------------------
# The Noise layer: every plain XX vector of both published sets
# --------------------------------------------------------------------------------------

VECTOR_DIR = Path(__file__).resolve().parent.parent / "data" / "noise"
PLAIN_XX = {
    "Noise_XX_25519_ChaChaPoly_BLAKE2b": NoiseHash.BLAKE2B,
    "Noise_XX_25519_ChaChaPoly_SHA256": NoiseHash.SHA256,
}


def _load_vectors() -> list[tuple[str, dict[str, Any]]]:
    selected = []
    for name in ("snow_XX.json", "cacophony_XX.json"):
        vectors = json.loads((VECTOR_DIR / name).read_text())
        for vector in vectors:
            # Explicit filter: psk variants are out of scope for p2pcomm.
            if vector["protocol_name"] in PLAIN_XX:
                selected.append((f"{name.split('_')[0]}-{vector['protocol_name']}", vector))
            else:
                assert "psk" in vector["protocol_name"]
    return selected


VECTORS = _load_vectors()


def test_vector_selection_is_complete() -> None:
    assert sorted(label for label, _ in VECTORS) == [
        "cacophony-Noise_XX_25519_ChaChaPoly_BLAKE2b",
        "cacophony-Noise_XX_25519_ChaChaPoly_SHA256",
        "snow-Noise_XX_25519_ChaChaPoly_BLAKE2b",
        "snow-Noise_XX_25519_ChaChaPoly_SHA256",
    ]


@pytest.mark.parametrize("vector", [v for _, v in VECTORS], ids=[label for label, _ in VECTORS])
def test_noise_vector(vector: dict[str, Any]) -> None:
    hash_ = PLAIN_XX[vector["protocol_name"]]

    def party(prefix: str, initiator: bool) -> NoiseXX:
        return NoiseXX(
            initiator=initiator,
            static_private=bytes.fromhex(vector[f"{prefix}_static"]),
            ephemeral_private=bytes.fromhex(vector[f"{prefix}_ephemeral"]),
            prologue=bytes.fromhex(vector[f"{prefix}_prologue"]),
            hash=hash_,
        )

    init, resp = party("init", True), party("resp", False)
    assert init.protocol_name == vector["protocol_name"]
    messages = vector["messages"]
    for i, message in enumerate(messages[:3]):
        sender, receiver = (init, resp) if i % 2 == 0 else (resp, init)
        payload = bytes.fromhex(message["payload"])
        wire = sender.write_message(payload)
        assert wire.hex() == message["ciphertext"], f"handshake message {i}"
        assert receiver.read_message(wire) == payload
    assert init.is_complete and resp.is_complete
    assert init.handshake_hash == resp.handshake_hash
    if "handshake_hash" in vector:
        assert init.handshake_hash.hex() == vector["handshake_hash"]
    assert init.remote_static == x25519_public(bytes.fromhex(vector["resp_static"]))
    assert resp.remote_static == x25519_public(bytes.fromhex(vector["init_static"]))

    i_to_r, r_to_i = init.split()
    r_from_i, r_send = resp.split()
    assert len(messages) > 3
    for i, message in enumerate(messages[3:], start=3):
        tx, rx = (i_to_r, r_from_i) if i % 2 == 0 else (r_send, r_to_i)
        payload = bytes.fromhex(message["payload"])
        wire = tx.encrypt_with_ad(b"", payload)
        assert wire.hex() == message["ciphertext"], f"transport message {i}"
        assert rx.decrypt_with_ad(b"", wire) == payload


def test_noise_calls_out_of_turn() -> None:
    init = NoiseXX(initiator=True, static_private=bytes(32), ephemeral_private=b"\x01" * 32)
    resp = NoiseXX(initiator=False, static_private=b"\x02" * 32, ephemeral_private=b"\x03" * 32)
    with pytest.raises(LocalProtocolError) as info:
        resp.write_message()
    assert info.value.code is ErrorCode.BAD_STATE
    with pytest.raises(LocalProtocolError):
        init.read_message(b"\x00" * 64)
    with pytest.raises(LocalProtocolError):
        init.split()
    resp.read_message(init.write_message())
    with pytest.raises(LocalProtocolError):
        init.write_message()


def test_noise_short_message_is_truncated() -> None:
    resp = NoiseXX(initiator=False, static_private=b"\x02" * 32, ephemeral_private=b"\x03" * 32)
    with pytest.raises(RemoteProtocolError) as info:
        resp.read_message(b"\x09" * 31)
    assert info.value.code is ErrorCode.TRUNCATED
    assert (info.value.expected, info.value.found) == (32, 31)
    with pytest.raises(LocalProtocolError):  # unusable afterwards
        resp.read_message(b"\x09" * 32)


def test_min_message_lengths() -> None:
    assert [NoiseXX.min_message_len(i) for i in range(3)] == [32, 96, 64]


def test_cipher_state_rekey_and_exhaustion() -> None:
    key = bytes(range(32))
    a, b = CipherState(key, nonce=MAX_NONCE - 2), CipherState(key, nonce=MAX_NONCE - 2)
    assert b.decrypt_with_ad(b"ad", a.encrypt_with_ad(b"ad", b"x")) == b"x"
    a.rekey()
    b.rekey()
    assert b.decrypt_with_ad(b"", a.encrypt_with_ad(b"", b"y")) == b"y"
    assert a.nonce == b.nonce == MAX_NONCE
    with pytest.raises(LocalProtocolError) as info:
        a.encrypt_with_ad(b"", b"z")
    assert info.value.code is ErrorCode.OUT_OF_RANGE
    with pytest.raises(RemoteProtocolError) as rinfo:
        b.decrypt_with_ad(b"", bytes(17))
    assert rinfo.value.code is ErrorCode.OUT_OF_RANGE
    with pytest.raises(LocalProtocolError):
        CipherState(key, nonce=MAX_NONCE + 1)
    with pytest.raises(LocalProtocolError):
        CipherState().rekey()
    assert CipherState().encrypt_with_ad(b"", b"plain") == b"plain"


def test_noise_module_knows_nothing_about_p2pcomm() -> None:
    """core/noise.py is plain Noise: it imports only errors and crypto, and the
    handshake module re-exports its names unchanged."""
    tree = ast.parse(Path(noise.__file__).read_text())
    imported = {
        (node.level, node.module)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
    }
    assert imported == {(2, "errors"), (1, "crypto")}
    assert "p2pcomm/" not in Path(noise.__file__).read_text().split('"""', 2)[2]
    for name in noise.__all__:
        assert getattr(handshake, name) is getattr(noise, name), name


# --------------------------------------------------------------------------------------
# The p2pcomm handshake
# --------------------------------------------------------------------------------------

ALICE = Ed25519Signer(b"\xa1" * 32)
BOB = Ed25519Signer(b"\xb0" * 32)
MALLORY = Ed25519Signer(b"\x66" * 32)


def x_key(n: int) -> bytes:
    """A fixed X25519 private key: tests are deterministic."""
    return bytes([n]) * 32


def make_pair(
    *,
    initiator_identity: Any = ALICE,
    responder_identity: Any = BOB,
    initiator_prologue: bytes = PROLOGUE,
    responder_prologue: bytes = PROLOGUE,
    initiator_payload: bytes = b"",
    responder_payload: bytes = b"",
    expected_peer_id: bytes | None = None,
    seed: int = 1,
) -> tuple[Handshake, Handshake]:
    initiator = Handshake(
        Role.INITIATOR,
        identity=initiator_identity,
        static_private=x_key(seed),
        ephemeral_private=x_key(seed + 1),
        application_payload=initiator_payload,
        prologue=initiator_prologue,
        expected_peer_id=expected_peer_id,
    )
    responder = Handshake(
        Role.RESPONDER,
        identity=responder_identity,
        static_private=x_key(seed + 2),
        ephemeral_private=x_key(seed + 3),
        application_payload=responder_payload,
        prologue=responder_prologue,
    )
    return initiator, responder


def drive(
    a: Handshake, b: Handshake, *, chunk: int | None = None
) -> tuple[list[HandshakeEvent], list[HandshakeEvent]]:
    """Run both sides to completion over a perfect in-memory link; return their events."""
    events: dict[int, list[HandshakeEvent]] = {id(a): [], id(b): []}
    for _ in range(100):
        progressed = False
        for me, other in ((a, b), (b, a)):
            if me.state is State.DONE:
                continue
            event = me.next_event()
            if event is SEND_NEEDED:
                data = me.send_message()
                step = chunk or len(data)
                for i in range(0, len(data), step):
                    other.receive_data(data[i : i + step])
                progressed = True
            elif event is not NEED_DATA:
                events[id(me)].append(event)
                progressed = True
        if a.state is State.DONE and b.state is State.DONE:
            for me in (a, b):
                events[id(me)].append(me.next_event())
            return events[id(a)], events[id(b)]
        assert progressed, (a, b)
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_both_roles_complete_and_agree(chunk: int | None) -> None:
    initiator, responder = make_pair(initiator_payload=b"hi from alice", responder_payload=b"bob")
    init_events, resp_events = drive(initiator, responder, chunk=chunk)

    assert [type(e) for e in init_events] == [PeerAuthenticated, HandshakeComplete]
    assert [type(e) for e in resp_events] == [HelloReceived, PeerAuthenticated, HandshakeComplete]
    assert resp_events[0] == HelloReceived(protocol_version=1)

    i_res, r_res = initiator.result, responder.result
    assert i_res.peer_id == BOB.public_key and r_res.peer_id == ALICE.public_key
    assert i_res.peer_static == x25519_public(x_key(3))
    assert r_res.peer_static == x25519_public(x_key(1))
    assert i_res.peer_payload == b"bob" and r_res.peer_payload == b"hi from alice"
    assert i_res.handshake_hash == r_res.handshake_hash and len(i_res.handshake_hash) == 64
    assert (i_res.role, r_res.role) == (Role.INITIATOR, Role.RESPONDER)

    # The split keys interoperate in both directions.
    wire = i_res.send_cipher.encrypt_with_ad(b"", b"ping")
    assert r_res.recv_cipher.decrypt_with_ad(b"", wire) == b"ping"
    wire = r_res.send_cipher.encrypt_with_ad(b"", b"pong")
    assert i_res.recv_cipher.decrypt_with_ad(b"", wire) == b"pong"
    # The result does not leak key material in its repr.
    assert "send_cipher" not in repr(i_res)
    assert initiator.next_event() == HandshakeComplete(result=i_res)


def test_wire_sizes() -> None:
    initiator, responder = make_pair(responder_payload=b"12345")
    message_1 = initiator.send_message()
    assert len(message_1) == 2 + MESSAGE_1_SIZE == 35
    responder.receive_data(message_1)
    assert isinstance(responder.next_event(), HelloReceived)
    message_2 = responder.send_message()
    assert len(message_2) == 2 + MESSAGE_2_MIN_SIZE + 5 == 200
    initiator.receive_data(message_2)
    assert isinstance(initiator.next_event(), PeerAuthenticated)
    message_3 = initiator.send_message()
    assert len(message_3) == 2 + MESSAGE_3_MIN_SIZE == 163
    assert message_1[:2] == (33).to_bytes(2, "big")


def test_independent_sessions_have_different_hashes() -> None:
    a1, b1 = make_pair(seed=1)
    a2, b2 = make_pair(seed=10)
    drive(a1, b1)
    drive(a2, b2)
    assert a1.result.handshake_hash != a2.result.handshake_hash


class ForgingSigner:
    """Claims ``claimed``'s key but signs with ``actual`` (or returns a fixed signature)."""

    def __init__(
        self,
        claimed: Ed25519Signer,
        actual: Ed25519Signer | None = None,
        signature: bytes | None = None,
    ) -> None:
        self.public_key = claimed.public_key
        self._actual = actual
        self._signature = signature
        self.signed: list[bytes] = []

    def sign(self, message: bytes) -> bytes:
        self.signed.append(message)
        if self._signature is not None:
            return self._signature
        assert self._actual is not None
        return self._actual.sign(message)


class RecordingSigner:
    def __init__(self, signer: Ed25519Signer) -> None:
        self._signer = signer
        self.public_key = signer.public_key
        self.signatures: list[bytes] = []

    def sign(self, message: bytes) -> bytes:
        signature = self._signer.sign(message)
        self.signatures.append(signature)
        return signature


def expect_remote(handshake: Handshake, code: ErrorCode) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        handshake.next_event()
    assert info.value.code is code, info.value
    assert handshake.state is State.FAILED
    with pytest.raises(LocalProtocolError) as local:
        handshake.next_event()
    assert "FAILED" in str(local.value)
    return info.value


def test_forged_responder_signature_fails() -> None:
    initiator, responder = make_pair(responder_identity=ForgingSigner(BOB, actual=MALLORY))
    responder.receive_data(initiator.send_message())
    responder.next_event()
    initiator.receive_data(responder.send_message())
    error = expect_remote(initiator, ErrorCode.HANDSHAKE_FAILED)
    assert BOB.public_key.hex() in str(error)


def test_forged_initiator_signature_fails() -> None:
    initiator, responder = make_pair(initiator_identity=ForgingSigner(ALICE, signature=bytes(64)))
    responder.receive_data(initiator.send_message())
    responder.next_event()
    initiator.receive_data(responder.send_message())
    initiator.next_event()
    responder.receive_data(initiator.send_message())
    expect_remote(responder, ErrorCode.HANDSHAKE_FAILED)


def test_signature_with_wrong_role_byte_fails() -> None:
    # A responder signature replayed as if it were the initiator's: the role byte differs.
    class WrongRole:
        public_key = ALICE.public_key

        def sign(self, message: bytes) -> bytes:
            assert message[32:33] == b"I"
            return ALICE.sign(message[:32] + b"R" + message[33:])

    initiator, responder = make_pair(initiator_identity=WrongRole())
    responder.receive_data(initiator.send_message())
    responder.next_event()
    initiator.receive_data(responder.send_message())
    initiator.next_event()
    responder.receive_data(initiator.send_message())
    expect_remote(responder, ErrorCode.HANDSHAKE_FAILED)


def test_spliced_identity_fails() -> None:
    """Mallory sits between Alice and Bob and tries to pass Bob's identity on to Alice.

        Alice --(session 2)--> Mallory --(session 1)--> Bob

    1. Mallory opens session 1 to Bob; Bob signs his identity over h1.
    2. Alice opens session 2 to Mallory; Mallory answers with Bob's key and Bob's
       signature from session 1 (the best it can do without Bob's private key).
    3. Alice checks the signature over h2 != h1 and refuses.
    """
    bob = RecordingSigner(BOB)
    mallory_as_initiator, bob_side = make_pair(
        initiator_identity=MALLORY, responder_identity=bob, seed=20
    )
    drive(mallory_as_initiator, bob_side)
    (bob_signature,) = bob.signatures
    assert mallory_as_initiator.result.peer_id == BOB.public_key

    splicer = ForgingSigner(BOB, signature=bob_signature)
    alice, mallory_as_responder = make_pair(responder_identity=splicer, seed=40)
    mallory_as_responder.receive_data(alice.send_message())
    mallory_as_responder.next_event()
    alice.receive_data(mallory_as_responder.send_message())
    expect_remote(alice, ErrorCode.HANDSHAKE_FAILED)
    # What Mallory had to get signed is bound to session 2, not session 1.
    assert splicer.signed[0] != identity_signable(Role.RESPONDER, bob_side.result.handshake_hash)


@pytest.mark.parametrize("which", ["initiator", "responder"])
def test_wrong_prologue_fails(which: str) -> None:
    other = b"p2pcomm/1 Noise_XX_25519_ChaChaPoly_SHA256"
    if which == "initiator":
        initiator, responder = make_pair(initiator_prologue=other)
    else:
        initiator, responder = make_pair(responder_prologue=other)
    responder.receive_data(initiator.send_message())
    assert isinstance(responder.next_event(), HelloReceived)
    initiator.receive_data(responder.send_message())
    error = expect_remote(initiator, ErrorCode.HANDSHAKE_FAILED)
    assert "prologue" in str(error)
    assert isinstance(error.__cause__, RemoteProtocolError)
    assert error.__cause__.code is ErrorCode.DECRYPT_FAILED


def message_1_with(version: int, extra: bytes = b"") -> bytes:
    return frame(x25519_public(x_key(9)) + bytes([version]) + extra)


def test_other_protocol_version_is_reported() -> None:
    _, responder = make_pair()
    responder.receive_data(message_1_with(2, b"a longer v2 message 1"))
    error = expect_remote(responder, ErrorCode.WRONG_PROTOCOL_VERSION)
    assert (error.expected, error.found) == (1, 2)


def test_message_1_of_wrong_length() -> None:
    _, responder = make_pair()
    responder.receive_data(message_1_with(1, b"x"))
    error = expect_remote(responder, ErrorCode.WRONG_LENGTH)
    assert (error.expected, error.found) == (33, 34)


def test_identity_payload_of_unknown_version() -> None:
    initiator, _ = make_pair()
    rogue = NoiseXX(
        initiator=False, static_private=x_key(50), ephemeral_private=x_key(51), prologue=PROLOGUE
    )
    rogue.read_message(initiator.send_message()[2:])

    def payload(h: bytes) -> bytes:
        return b"\x02" + BOB.public_key + BOB.sign(identity_signable(Role.RESPONDER, h))

    initiator.receive_data(frame(rogue.write_message_with(payload)))
    error = expect_remote(initiator, ErrorCode.UNKNOWN_VERSION)
    assert error.found == 2


@pytest.mark.parametrize(
    ("declared", "code"),
    [
        (MESSAGE_2_MIN_SIZE - 1, ErrorCode.WRONG_LENGTH),
        (0, ErrorCode.WRONG_LENGTH),
        (MESSAGE_2_MIN_SIZE + MAX_APPLICATION_PAYLOAD + 1, ErrorCode.FRAME_TOO_LARGE),
        (0xFFFF, ErrorCode.FRAME_TOO_LARGE),
    ],
)
def test_declared_length_out_of_bounds(declared: int, code: ErrorCode) -> None:
    initiator, _ = make_pair()
    initiator.send_message()
    initiator.receive_data(declared.to_bytes(2, "big"))  # judged before any body arrives
    expect_remote(initiator, code)


def test_garbage_message_2_fails() -> None:
    initiator, _ = make_pair()
    initiator.send_message()
    initiator.receive_data(frame(bytes(range(256))[:MESSAGE_2_MIN_SIZE]))
    expect_remote(initiator, ErrorCode.HANDSHAKE_FAILED)


@pytest.mark.parametrize("message", [2, 3])
def test_tampering_with_any_byte_fails(message: int) -> None:
    for position in range(2, 2 + (MESSAGE_2_MIN_SIZE if message == 2 else MESSAGE_3_MIN_SIZE), 9):
        initiator, responder = make_pair()
        responder.receive_data(initiator.send_message())
        responder.next_event()
        message_2 = bytearray(responder.send_message())
        if message == 2:
            message_2[position] ^= 0x01
            initiator.receive_data(bytes(message_2))
            expect_remote(initiator, ErrorCode.HANDSHAKE_FAILED)
            continue
        initiator.receive_data(bytes(message_2))
        initiator.next_event()
        message_3 = bytearray(initiator.send_message())
        message_3[position] ^= 0x80
        responder.receive_data(bytes(message_3))
        expect_remote(responder, ErrorCode.HANDSHAKE_FAILED)


def test_truncated_message_then_eof_fails() -> None:
    initiator, responder = make_pair()
    responder.receive_data(initiator.send_message())
    responder.next_event()
    message_2 = responder.send_message()
    initiator.receive_data(message_2[:-1])
    assert initiator.next_event() is NEED_DATA
    initiator.receive_data(b"")
    error = expect_remote(initiator, ErrorCode.HANDSHAKE_FAILED)
    assert "closed" in str(error)


def test_eof_before_anything() -> None:
    _, responder = make_pair()
    responder.receive_data(b"")
    expect_remote(responder, ErrorCode.HANDSHAKE_FAILED)


def test_low_order_ephemeral_fails() -> None:
    _, responder = make_pair()
    responder.receive_data(frame(bytes(32) + b"\x01"))  # e = 0: a low-order point
    assert isinstance(responder.next_event(), HelloReceived)
    with pytest.raises(RemoteProtocolError) as info:
        responder.send_message()
    assert info.value.code is ErrorCode.HANDSHAKE_FAILED
    assert responder.state is State.FAILED


@pytest.mark.parametrize("split", ["together", "apart", "byte-by-byte"])
def test_bytes_before_our_reply_are_read_as_the_next_message(split: str) -> None:
    """Early bytes behind message 1 are message 3's start, however the stream splits
    them (spec 5.4.1): here a 1-byte "message 3", refused by its length."""
    initiator, responder = make_pair()
    data = initiator.send_message() + b"\x00\x01x"
    if split == "together":
        chunks = [data]
    elif split == "apart":
        chunks = [data[:35], data[35:]]
    else:
        chunks = [data[i : i + 1] for i in range(len(data))]
    error = None
    for chunk in chunks:
        responder.receive_data(chunk)
        try:
            while (event := responder.next_event()) is not NEED_DATA:
                if event is SEND_NEEDED:
                    responder.send_message()
        except RemoteProtocolError as exc:
            error = exc
            break
    assert error is not None and error.code is ErrorCode.WRONG_LENGTH
    assert (error.expected, error.found) == (MESSAGE_3_MIN_SIZE, 1)
    assert responder.state is State.FAILED


def test_bytes_before_message_3_go_to_the_channel_after_it() -> None:
    """Bytes behind message 2 are not the initiator's business during the handshake: once
    it has sent message 3 they are the peer's first records (and fail there)."""
    initiator, responder = make_pair()
    responder.receive_data(initiator.send_message())
    responder.next_event()
    initiator.receive_data(responder.send_message() + b"\x00\x01x")
    assert isinstance(initiator.next_event(), PeerAuthenticated)
    initiator.send_message()
    assert initiator.state is State.DONE
    assert initiator.trailing_data() == b"\x00\x01x"


def test_bytes_after_the_last_message_go_to_the_channel() -> None:
    initiator, responder = make_pair()
    responder.receive_data(initiator.send_message())
    responder.next_event()
    initiator.receive_data(responder.send_message())
    initiator.next_event()
    responder.receive_data(initiator.send_message() + b"first record")
    assert isinstance(responder.next_event(), PeerAuthenticated)
    assert responder.state is State.DONE
    assert responder.trailing_data() == b"first record"
    assert responder.trailing_data() == b""


def test_expected_peer_id() -> None:
    initiator, responder = make_pair(expected_peer_id=BOB.public_key)
    drive(initiator, responder)
    initiator, responder = make_pair(expected_peer_id=MALLORY.public_key)
    responder.receive_data(initiator.send_message())
    responder.next_event()
    initiator.receive_data(responder.send_message())
    error = expect_remote(initiator, ErrorCode.HANDSHAKE_FAILED)
    assert (error.expected, error.found) == (MALLORY.public_key.hex(), BOB.public_key.hex())


def test_application_payload_limits() -> None:
    initiator, responder = make_pair(responder_payload=b"p" * MAX_APPLICATION_PAYLOAD)
    drive(initiator, responder)
    assert initiator.result.peer_payload == b"p" * MAX_APPLICATION_PAYLOAD
    with pytest.raises(LocalProtocolError) as info:
        make_pair(initiator_payload=b"p" * (MAX_APPLICATION_PAYLOAD + 1))
    assert info.value.code is ErrorCode.TOO_LARGE
    assert IDENTITY_PAYLOAD_SIZE == 97


def test_out_of_order_calls_raise_local_errors_naming_the_state() -> None:
    initiator, responder = make_pair()
    assert initiator.next_event() is SEND_NEEDED
    assert responder.next_event() is NEED_DATA

    with pytest.raises(LocalProtocolError) as info:
        responder.send_message()
    assert "WAIT_MESSAGE_1" in str(info.value) and "responder" in str(info.value)
    assert info.value.code is ErrorCode.BAD_STATE
    assert responder.state is State.WAIT_MESSAGE_1  # unchanged

    with pytest.raises(LocalProtocolError, match="SEND_MESSAGE_1"):
        initiator.result  # noqa: B018
    with pytest.raises(LocalProtocolError):
        initiator.trailing_data()

    drive(initiator, responder)
    for side in (initiator, responder):
        with pytest.raises(LocalProtocolError, match="DONE"):
            side.send_message()
        with pytest.raises(LocalProtocolError, match="DONE"):
            side.receive_data(b"x")


def test_bad_local_arguments() -> None:
    with pytest.raises(LocalProtocolError) as info:
        Handshake(
            Role.INITIATOR, identity=ALICE, static_private=b"short", ephemeral_private=x_key(1)
        )
    assert info.value.code is ErrorCode.WRONG_LENGTH
    with pytest.raises(LocalProtocolError):
        Handshake(
            Role.INITIATOR,
            identity=ALICE,
            static_private=x_key(1),
            ephemeral_private=x_key(2),
            expected_peer_id=b"x",
        )

    class BadSigner:
        public_key = ALICE.public_key

        def sign(self, message: bytes) -> bytes:
            return b"too short"

    initiator, responder = make_pair(responder_identity=BadSigner())
    responder.receive_data(initiator.send_message())
    responder.next_event()
    with pytest.raises(LocalProtocolError):
        responder.send_message()
