"""spec/vectors/channel.json and sync.json, read back as an independent implementation
would: rebuild every byte from the keys and values the vectors give, and check each
failure is refused with the named error. (tests/test_vectors.py checks the files are
what tools/gen_vectors.py writes.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from p2pcomm.core import crypto
from p2pcomm.core.channel import Channel, CloseReceived, DataReceived
from p2pcomm.core.handshake import SEND_NEEDED, Handshake, HandshakeComplete, Role, State
from p2pcomm.core.log import decode_entry, decode_fork_proof, encode_entry, verify_fork_proof
from p2pcomm.core.sync import (
    Msg,
    SyncSession,
    decode_run,
    group_token,
    tips_fingerprint,
)
from p2pcomm.errors import P2PCommError, RemoteProtocolError

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"


def load(name: str) -> list[dict[str, Any]]:
    doc = json.loads((VECTORS / name).read_text())
    assert doc["revision"] == 6
    vectors: list[dict[str, Any]] = doc["vectors"]
    return vectors


def of_type(name: str, kind: str) -> list[dict[str, Any]]:
    found = [v for v in load(name) if v["type"] == kind]
    assert found, f"{name} has no {kind!r} vector"
    return found


# ---------------------------------------------------------------- channel.json


def side(spec: dict[str, Any], role: Role) -> Handshake:
    return Handshake(
        role,
        identity=crypto.Ed25519Signer(bytes.fromhex(spec["identity_seed"])),
        static_private=bytes.fromhex(spec["static_private"]),
        ephemeral_private=bytes.fromhex(spec["ephemeral_private"]),
        application_payload=bytes.fromhex(spec["payload"]),
    )


def handshake(
    v: dict[str, Any], replace: dict[int, bytes] | None = None, *, bytewise: bool = False
) -> tuple[Handshake, Handshake, list[bytes]]:
    """Run the vector's handshake; ``replace`` delivers other bytes for message ``i``
    (0-based), ``bytewise`` delivers every message one byte at a time."""
    a, b = side(v["initiator"], Role.INITIATOR), side(v["responder"], Role.RESPONDER)
    sent: list[bytes] = []
    for _ in range(400):
        for me, other in ((a, b), (b, a)):
            if me.state is not State.DONE and me.next_event() is SEND_NEEDED:
                data = me.send_message()
                wire = (replace or {}).get(len(sent), data)
                for i in range(len(wire)) if bytewise else [None]:
                    other.receive_data(wire if i is None else wire[i : i + 1])
                    if i is not None and other.state is not State.DONE:
                        other.next_event()
                sent.append(data)
        if a.state is State.DONE and b.state is State.DONE:
            for me in (a, b):
                while not isinstance(me.next_event(), HandshakeComplete):
                    pass
            return a, b, sent
    raise AssertionError("handshake did not finish")


def test_channel_handshake_bytes() -> None:
    (v,) = of_type("channel.json", "handshake")
    a, b, sent = handshake(v)
    assert [m.hex() for m in sent] == v["messages"]
    assert a.result.handshake_hash.hex() == b.result.handshake_hash.hex() == v["handshake_hash"]
    assert a.result.peer_id.hex() == v["responder"]["identity"]
    assert b.result.peer_id.hex() == v["initiator"]["identity"]
    assert a.result.peer_payload == bytes.fromhex(v["responder"]["payload"])
    assert b.result.peer_payload == bytes.fromhex(v["initiator"]["payload"])


def test_channel_frames_bytes_and_meaning() -> None:
    (hv,) = of_type("channel.json", "handshake")
    (fv,) = of_type("channel.json", "frames")
    a, b, _ = handshake(hv)
    channels = {
        "initiator": Channel.from_handshake(a.result),
        "responder": Channel.from_handshake(b.result),
    }
    other = {"initiator": "responder", "responder": "initiator"}
    for frame in fv["frames"]:
        sender, receiver = channels[frame["from"]], channels[other[frame["from"]]]
        wire = bytes.fromhex(frame["wire"])
        if frame["kind"] == "data":
            plaintext = bytes.fromhex(frame["plaintext"])
            assert sender.send_data(plaintext) == wire
            receiver.receive_data(wire)
            got = b""
            while isinstance(event := receiver.next_event(), DataReceived):
                got += event.data
            assert got == plaintext
        else:
            assert sender.send_close(frame["code"], frame["reason"]) == wire
            receiver.receive_data(wire)
            event = receiver.next_event()
            assert isinstance(event, CloseReceived)
            assert (event.code, event.reason) == (frame["code"], frame["reason"])


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
@pytest.mark.parametrize("v", of_type("channel.json", "handshake-fail"), ids=lambda v: v["name"])
def test_channel_tampered_handshake_is_refused(v: dict[str, Any], bytewise: bool) -> None:
    """The same bytes give the same error however the stream splits them."""
    (hv,) = of_type("channel.json", "handshake")
    with pytest.raises(P2PCommError) as info:
        handshake(hv, {v["message"] - 1: bytes.fromhex(v["wire"])}, bytewise=bytewise)
    assert info.value.code.value == v["fail"]


def test_channel_tampered_frame_is_refused() -> None:
    (hv,) = of_type("channel.json", "handshake")
    (v,) = of_type("channel.json", "frame-fail")
    _, b, _ = handshake(hv)
    receiver = Channel.from_handshake(b.result)
    with pytest.raises(P2PCommError) as info:
        receiver.receive_data(bytes.fromhex(v["wire"]))
        receiver.next_event()
    assert info.value.code.value == v["fail"]


# ---------------------------------------------------------------- sync.json


def unframe(wire: str) -> list[Any]:
    data = bytes.fromhex(wire)
    n = int.from_bytes(data[:4], "big")
    assert len(data) == 4 + n
    payload = data[4:]
    value = msgpack.unpackb(payload, raw=False)
    assert msgpack.packb(value, use_bin_type=True) == payload  # canonical
    assert isinstance(value, list)
    return value


def constants() -> dict[str, Any]:
    (c,) = of_type("sync.json", "constants")
    return c


def message(name: str) -> dict[str, Any]:
    return next(v for v in load("sync.json") if v["name"] == name)


def test_sync_hello_carries_the_group_token() -> None:
    c = constants()
    session_hash, group = bytes.fromhex(c["session_hash"]), bytes.fromhex(c["group"])
    for name, initiator in (("hello-initiator", True), ("hello-responder", False)):
        v = message(name)
        assert unframe(v["wire"]) == [Msg.HELLO, 1, [group_token(group, session_hash, initiator)]]
        assert v["group_token"] == group_token(group, session_hash, initiator).hex()


def tips_of(v: dict[str, Any]) -> list[tuple[bytes, int, bytes]]:
    return [(bytes.fromhex(a), s, bytes.fromhex(i)) for a, s, i in v["tips"]]


def test_sync_summary_tips_done_want() -> None:
    summary = message("summary")
    assert unframe(summary["wire"]) == [Msg.SUMMARY, 0, tips_fingerprint(tips_of(summary))]
    assert summary["fingerprint"] == tips_fingerprint(tips_of(summary)).hex()
    tips = message("tips")
    assert unframe(tips["wire"]) == [Msg.TIPS, 0, [list(t) for t in tips_of(tips)]]
    assert unframe(message("done")["wire"]) == [Msg.DONE, 0]
    want = message("want")
    assert unframe(want["wire"]) == [Msg.WANT, 0, [bytes.fromhex(i) for i in want["ids"]]]


def test_sync_run_rebuilds_the_entries_exactly() -> None:
    group = bytes.fromhex(constants()["group"])
    (v,) = of_type("sync.json", "run")
    msg = unframe(v["wire"])
    assert msg[0] == Msg.RUN and msg[1] == 0
    rebuilt = decode_run(group, msg)
    assert [encode_entry(e).hex() for e in rebuilt] == v["entries"]
    assert [e.id for e in rebuilt] == [decode_entry(bytes.fromhex(x)).id for x in v["entries"]]


def test_sync_entries_and_forks() -> None:
    group = bytes.fromhex(constants()["group"])
    entries = message("entries")
    assert unframe(entries["wire"]) == [
        Msg.ENTRIES,
        0,
        [bytes.fromhex(x) for x in entries["entries"]],
        False,
    ]
    forks = message("forks")
    msg = unframe(forks["wire"])
    assert msg[:2] == [Msg.FORKS, 0] and [p.hex() for p in msg[2]] == forks["proofs"]
    for blob in msg[2]:
        verify_fork_proof(decode_fork_proof(blob), group)


@pytest.mark.parametrize("v", of_type("sync.json", "fail"), ids=lambda v: v["name"])
def test_sync_failures_are_refused(v: dict[str, Any]) -> None:
    c = constants()
    session_hash, group = bytes.fromhex(c["session_hash"]), bytes.fromhex(c["group"])
    session = SyncSession(initiator=True, session_hash=session_hash, groups=[group])
    session.start()
    if v["after_hello"]:
        session.receive_data(bytes.fromhex(message("hello-responder")["wire"]))
    with pytest.raises(RemoteProtocolError) as info:
        session.receive_data(bytes.fromhex(v["wire"]))
    assert info.value.code.value == v["fail"]
