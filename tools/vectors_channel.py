"""Vectors for spec/05-channel.md: a complete p2pcomm handshake and record frames.

Every key is fixed (Ed25519 identities from seeds, X25519 statics and ephemerals given),
so the three handshake messages, the handshake hash and the encrypted frames are exact
bytes another implementation must reproduce. The Noise layer itself is checked against
the published Noise vectors in tests/data/noise/; these vectors add what p2pcomm puts on
top: the prologue, the version byte, the identity payloads and the record frames.
"""

from __future__ import annotations

from typing import Any

from p2pcomm.core import crypto
from p2pcomm.core.channel import Channel, CloseCode
from p2pcomm.core.handshake import SEND_NEEDED, Handshake, HandshakeComplete, Role, State
from p2pcomm.errors import P2PCommError

REVISION = 6


def _keys(label: str) -> tuple[crypto.Ed25519Signer, bytes, bytes]:
    identity = crypto.Ed25519Signer(crypto.blake2b_256(f"vector {label} identity".encode()))
    static = crypto.blake2b_256(f"vector {label} static x25519".encode())
    ephemeral = crypto.blake2b_256(f"vector {label} ephemeral x25519".encode())
    return identity, static, ephemeral


def _pair(payload_i: bytes = b"", payload_r: bytes = b"") -> tuple[Handshake, Handshake]:
    ii, si, ei = _keys("initiator")
    ir, sr, er = _keys("responder")
    return (
        Handshake(
            Role.INITIATOR,
            identity=ii,
            static_private=si,
            ephemeral_private=ei,
            application_payload=payload_i,
        ),
        Handshake(
            Role.RESPONDER,
            identity=ir,
            static_private=sr,
            ephemeral_private=er,
            application_payload=payload_r,
        ),
    )


def run_handshake(
    a: Handshake, b: Handshake, replace: dict[int, bytes] | None = None
) -> list[bytes]:
    """Drive both sides to completion; returns the framed messages in wire order.
    ``replace`` delivers other bytes in place of message ``i`` (0-based)."""
    messages: list[bytes] = []
    for _ in range(20):
        for me, other in ((a, b), (b, a)):
            if me.state is State.DONE:
                continue
            if me.next_event() is SEND_NEEDED:
                data = me.send_message()
                other.receive_data((replace or {}).get(len(messages), data))
                messages.append(data)
        if a.state is State.DONE and b.state is State.DONE:
            for me in (a, b):
                while not isinstance(me.next_event(), HandshakeComplete):
                    pass
            return messages
    raise AssertionError("handshake did not finish")


def _error_code(feed: Any) -> str:
    try:
        feed()
    except P2PCommError as exc:
        return exc.code.value
    raise AssertionError("expected a failure")


def generate() -> dict[str, Any]:
    a, b = _pair(b"initiator payload", b"responder payload")
    messages = run_handshake(a, b)
    ra, rb = a.result, b.result
    ii, si, ei = _keys("initiator")
    ir, sr, er = _keys("responder")
    vectors: list[dict[str, Any]] = [
        {
            "type": "handshake",
            "name": "xx-with-identities",
            "description": "the three framed handshake messages (u16 length prefix, spec 05) between fixed keys",
            "initiator": {
                "identity_seed": crypto.blake2b_256(b"vector initiator identity").hex(),
                "identity": ii.public_key.hex(),
                "static_private": si.hex(),
                "ephemeral_private": ei.hex(),
                "payload": b"initiator payload".hex(),
            },
            "responder": {
                "identity_seed": crypto.blake2b_256(b"vector responder identity").hex(),
                "identity": ir.public_key.hex(),
                "static_private": sr.hex(),
                "ephemeral_private": er.hex(),
                "payload": b"responder payload".hex(),
            },
            "messages": [m.hex() for m in messages],
            "handshake_hash": ra.handshake_hash.hex(),
        }
    ]
    assert ra.handshake_hash == rb.handshake_hash and ra.peer_id == ir.public_key

    ca, cb = Channel.from_handshake(ra), Channel.from_handshake(rb)
    frames = []
    for sender, who, data in (
        (ca, "initiator", b"hello p2pcomm"),
        (cb, "responder", b"hello back"),
        (ca, "initiator", bytes(range(256)) * 257),  # 65,792 bytes: just over one frame
    ):
        wire = sender.send_data(data)
        frames.append({"from": who, "kind": "data", "plaintext": data.hex(), "wire": wire.hex()})
    close = ca.send_close(CloseCode.GOING_AWAY, "see you")
    frames.append(
        {
            "from": "initiator",
            "kind": "close",
            "code": int(CloseCode.GOING_AWAY),
            "reason": "see you",
            "wire": close.hex(),
        }
    )
    vectors.append(
        {
            "type": "frames",
            "name": "after-xx-with-identities",
            "description": "record frames sent in this order right after the handshake above",
            "frames": frames,
        }
    )

    # Failures: one flipped byte in message 2 (the initiator refuses it) or message 3
    # (the responder does).
    for index in (1, 2):
        tampered = bytearray(messages[index])
        tampered[-5] ^= 0x01
        x, y = _pair(b"initiator payload", b"responder payload")
        code = _error_code(lambda x=x, y=y, t=bytes(tampered), i=index: run_handshake(x, y, {i: t}))
        vectors.append(
            {
                "type": "handshake-fail",
                "name": f"message-{index + 1}-tampered",
                "description": f"message {index + 1} of the handshake above with one byte flipped",
                "message": index + 1,
                "wire": bytes(tampered).hex(),
                "fail": code,
            }
        )
    # Bytes behind message 1 are read as message 3 once message 2 is sent, however the
    # stream splits them (5.4.1): three bytes declaring a 1-byte message 3.
    early = messages[0] + b"\x00\x01x"
    x, y = _pair(b"initiator payload", b"responder payload")
    code = _error_code(lambda: run_handshake(x, y, {0: early}))
    vectors.append(
        {
            "type": "handshake-fail",
            "name": "message-1-with-early-bytes",
            "description": (
                "message 1 of the handshake above followed at once by 00 01 78: the responder "
                "reads message 1, sends message 2, then reads those bytes as message 3 "
                "(declared length 1, under 161), whether they came with message 1 or later"
            ),
            "message": 1,
            "wire": early.hex(),
            "fail": code,
        }
    )
    x, y = _pair(b"initiator payload", b"responder payload")
    run_handshake(x, y)
    cx, cy = Channel.from_handshake(x.result), Channel.from_handshake(y.result)
    wire = bytearray(cx.send_data(b"hello p2pcomm"))
    wire[5] ^= 0x01
    vectors.append(
        {
            "type": "frame-fail",
            "name": "data-frame-tampered",
            "description": "the first data frame above with one ciphertext byte flipped, received by the responder",
            "wire": bytes(wire).hex(),
            "fail": _error_code(lambda: (cy.receive_data(bytes(wire)), cy.next_event())),
        }
    )
    # A keepalive (5.5.7): one empty DATA frame, the initiator's first frame after the
    # handshake above.
    x, y = _pair(b"initiator payload", b"responder payload")
    run_handshake(x, y)
    cx = Channel.from_handshake(x.result)
    vectors.append(
        {
            "type": "keepalive",
            "name": "keepalive-after-xx-with-identities",
            "description": (
                "a keepalive (an empty DATA frame, 5.5.7) sent by the initiator as its first "
                "frame after the handshake above; the responder receives it as no data"
            ),
            "from": "initiator",
            "wire": cx.send_keepalive().hex(),
        }
    )
    return {
        "description": "p2pcomm handshake (Noise XX + Ed25519 identity payloads) and record frames, spec/05-channel.md",
        "revision": REVISION,
        "vectors": vectors,
    }
