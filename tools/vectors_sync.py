"""Vectors for spec/06-sync.md: every sync message as framed bytes (u32 length + msgpack).

A fixed group (alice's genesis plus a chain of three entries by bob, one of them
header-only; the test keys of spec/README.md 5.1) and a fixed 64-byte session hash. Each ``message`` vector gives the bytes a side
sends and what a receiver must make of them; a ``run`` additionally lists the full
entries (``log.encode_entry``) the receiver must rebuild from it, ids and signatures
included. ``fail`` vectors must be refused with the named error.
"""

from __future__ import annotations

from typing import Any

import msgpack
from vectors_identity import test_key

from p2pcomm.core import crypto
from p2pcomm.core.log import create_entry, create_genesis, encode_entry, encode_fork_proof
from p2pcomm.core.sync import (
    MAX_MESSAGE_SIZE,
    SyncSession,
    TheirTips,
    group_token,
    tips_fingerprint,
)
from p2pcomm.errors import RemoteProtocolError

REVISION = 6
#: Stands for the handshake hash h, which is 64 bytes (05 5.4.7, 06 6.1).
SESSION_HASH = crypto.blake2b_512(b"vector sync session hash")
T0 = 1_795_392_000_000


def history() -> dict[str, Any]:
    founder = test_key("alice")
    author = test_key("bob")
    genesis = create_genesis(founder, timestamp=T0, body=b"sync vectors")
    g = genesis.id
    e1 = create_entry(
        author, group=g, seq=1, prev=None, links=[g], timestamp=T0 + 1000, kind=32, body=b"one"
    )
    e2 = create_entry(
        author, group=g, seq=2, prev=e1.id, links=[], timestamp=T0 + 1000, kind=32, body=b"two"
    )
    e3 = create_entry(
        author, group=g, seq=3, prev=e2.id, links=[], timestamp=T0 + 2500, kind=32, body=b"three"
    )
    # a fork of e3 (same author, same sequence), for FORKS
    e3b = create_entry(
        author, group=g, seq=3, prev=e2.id, links=[], timestamp=T0 + 2600, kind=32, body=b"other"
    )
    return {"genesis": genesis, "chain": [e1, e2.without_body(), e3], "fork": e3b, "group": g}


def _framed_after(session: SyncSession, action: Any) -> bytes:
    session.data_to_send()
    action()
    return session.data_to_send()


def _ready(initiator: bool, group: bytes) -> SyncSession:
    """A session that has exchanged HELLO for ``group`` with its peer."""
    s = SyncSession(initiator=initiator, session_hash=SESSION_HASH, groups=[group])
    s.start()
    s.data_to_send()
    peer = SyncSession(initiator=not initiator, session_hash=SESSION_HASH, groups=[group])
    peer.start()
    s.receive_data(peer.data_to_send())
    s.next_event()
    return s


def _refused(build: Any) -> str:
    try:
        build()
    except RemoteProtocolError as exc:
        return exc.code.value
    raise AssertionError("expected the message to be refused")


def generate() -> dict[str, Any]:
    h = history()
    g = h["group"]
    genesis, chain, fork = h["genesis"], h["chain"], h["fork"]
    tips_a = [(genesis.author, 1, genesis.id)]
    tips_b = [(genesis.author, 1, genesis.id), (chain[-1].author, 3, chain[-1].id)]
    vectors: list[dict[str, Any]] = [
        {
            "type": "constants",
            "name": "session",
            "description": "session hash (the Noise handshake hash) and group used below",
            "session_hash": SESSION_HASH.hex(),
            "group": g.hex(),
            "genesis": encode_entry(genesis).hex(),
            "founder": "alice",
            "author": "bob",
            "max_message_size": MAX_MESSAGE_SIZE,
        }
    ]

    a = SyncSession(initiator=True, session_hash=SESSION_HASH, groups=[g])
    a.start()
    vectors.append(
        {
            "type": "message",
            "name": "hello-initiator",
            "role": "initiator",
            "message": "HELLO",
            "group_token": group_token(g, SESSION_HASH, True).hex(),
            "wire": a.data_to_send().hex(),
        }
    )
    b = SyncSession(initiator=False, session_hash=SESSION_HASH, groups=[g])
    b.start()
    vectors.append(
        {
            "type": "message",
            "name": "hello-responder",
            "role": "responder",
            "message": "HELLO",
            "group_token": group_token(g, SESSION_HASH, False).hex(),
            "wire": b.data_to_send().hex(),
        }
    )
    s = _ready(True, g)
    vectors.append(
        {
            "type": "message",
            "name": "summary",
            "role": "initiator",
            "message": "SUMMARY",
            "tips": [[x.hex() if isinstance(x, bytes) else x for x in t] for t in tips_a],
            "fingerprint": tips_fingerprint(tips_a).hex(),
            "wire": _framed_after(s, lambda: s.offer_tips(g, tips_a)).hex(),
        }
    )
    # TIPS: the responder's tips, sent because its fingerprint differs from the one above.
    r = _ready(False, g)
    r.offer_tips(g, tips_b)
    summary_b = r.data_to_send()
    s2 = _ready(True, g)
    s2.offer_tips(g, tips_a)
    s2.data_to_send()
    s2.receive_data(summary_b)
    tips_wire = s2.data_to_send()
    vectors.append(
        {
            "type": "message",
            "name": "tips",
            "role": "initiator",
            "message": "TIPS",
            "description": "sent after a SUMMARY that differs (the peer's fingerprint is of its own tips)",
            "tips": [[x.hex() if isinstance(x, bytes) else x for x in t] for t in tips_a],
            "wire": tips_wire.hex(),
        }
    )
    # RUN, DONE: the responder sends the chain the initiator lacks.
    r2 = _ready(False, g)
    r2.offer_tips(g, tips_b)
    r2.receive_data(_summary_and_tips(g, tips_a))
    events = r2.events()
    assert any(isinstance(e, TheirTips) for e in events)
    r2.data_to_send()
    run_wire = _framed_after(r2, lambda: r2.send_entries(g, chain))
    vectors.append(
        {
            "type": "run",
            "name": "run-of-three",
            "role": "responder",
            "message": "RUN",
            "description": "one author's chain of three; the second entry travels header-only",
            "entries": [encode_entry(e).hex() for e in chain],
            "wire": run_wire.hex(),
        }
    )
    vectors.append(
        {
            "type": "message",
            "name": "done",
            "role": "responder",
            "message": "DONE",
            "wire": _framed_after(r2, lambda: r2.send_done(g)).hex(),
        }
    )
    want_ids = [chain[0].id, crypto.blake2b_256(b"unknown entry")]
    vectors.append(
        {
            "type": "message",
            "name": "want",
            "role": "responder",
            "message": "WANT",
            "ids": [i.hex() for i in want_ids],
            "wire": _framed_after(r2, lambda: r2.want(g, want_ids)).hex(),
        }
    )
    vectors.append(
        {
            "type": "message",
            "name": "entries",
            "role": "responder",
            "message": "ENTRIES",
            "description": "an answer to WANT holding one full entry; 'more' is false",
            "entries": [encode_entry(chain[0]).hex()],
            "wire": _framed_after(r2, lambda: r2.send_entries(g, [chain[0]], as_runs=False)).hex(),
        }
    )
    from p2pcomm.core.log import AuthenticatedRun, ForkProof

    proof = ForkProof(
        a=AuthenticatedRun(headers=(chain[2].header_bytes,), signature=chain[2].signature),
        b=AuthenticatedRun(headers=(fork.header_bytes,), signature=fork.signature),
    )
    vectors.append(
        {
            "type": "message",
            "name": "forks",
            "role": "responder",
            "message": "FORKS",
            "proofs": [encode_fork_proof(proof).hex()],
            "wire": _framed_after(
                r2, lambda: r2.send_fork_proofs(g, [encode_fork_proof(proof)])
            ).hex(),
        }
    )

    from p2pcomm.core.gossip.messages import Prune, encode_message
    from p2pcomm.core.sync import encode_gossip

    prune = encode_message(Prune())
    vectors.append(
        {
            "type": "message",
            "name": "gossip",
            "role": "responder",
            "message": "GOSSIP",
            "description": "revision 3: a gossip PRUNE (07 7.2) for shared group 0",
            "gossip": prune.hex(),
            "wire": encode_gossip(0, prune).hex(),
        }
    )

    # Failures, each fed to a session that has sent its HELLO (and, unless said,
    # received the peer's).
    def fresh() -> SyncSession:
        x = SyncSession(initiator=True, session_hash=SESSION_HASH, groups=[g])
        x.start()
        x.data_to_send()
        return x

    fails = [
        ("run-before-hello", "a RUN before any HELLO", fresh, run_wire, False),
        (
            "oversized-length",
            "a length prefix above the maximum message size",
            fresh,
            (MAX_MESSAGE_SIZE + 1).to_bytes(4, "big"),
            False,
        ),
        ("wrong-version", "HELLO of sync version 2", fresh, _frame(b"\x93\x00\x02\x90"), False),
        (
            "non-canonical",
            "HELLO with its version as a 16-bit integer",
            fresh,
            _frame(b"\x93\x00\xcd\x00\x01\x90"),
            False,
        ),
        (
            "summary-gi-256",
            "SUMMARY with group index 256: in range for the decoder, but no session shares "
            "more than 256 groups (indexes 0 to 255), so it names no shared group",
            lambda: _ready(True, g),
            _frame(_pack([1, 256, bytes(16)])),
            True,
        ),
        (
            "summary-gi-257",
            "SUMMARY with group index 257: above the range of a group index",
            lambda: _ready(True, g),
            _frame(_pack([1, 257, bytes(16)])),
            True,
        ),
        (
            "want-before-tips",
            "WANT while the group is still waiting for SUMMARY (6.12: only when "
            "reconciling or live)",
            lambda: _ready(True, g),
            _frame(_pack([5, 0, [bytes(32)]])),
            True,
        ),
        (
            "gossip-too-large",
            "revision 3: GOSSIP whose message is one byte over 65,664",
            lambda: _ready(True, g),
            _frame(_pack([8, 0, bytes(65_665)])),
            True,
        ),
        (
            "entries-without-want",
            "ENTRIES nobody asked for",
            lambda: _ready(True, g),
            next(v["wire"] for v in vectors if v["name"] == "entries"),
            True,
        ),
    ]
    for name, description, make, wire, after_hello in fails:
        data = bytes.fromhex(wire) if isinstance(wire, str) else wire
        vectors.append(
            {
                "type": "fail",
                "name": name,
                "description": description,
                "after_hello": after_hello,
                "wire": data.hex(),
                "fail": _refused(lambda m=make, d=data: m().receive_data(d)),
            }
        )
    return {
        "description": "sync messages (framing, layouts and RUN reconstruction), spec/06-sync.md",
        "revision": REVISION,
        "vectors": vectors,
    }


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _summary_and_tips(group: bytes, tips: list[tuple[bytes, int, bytes]]) -> bytes:
    """What an initiator with ``tips`` sends after HELLO on a mismatch: SUMMARY, TIPS."""
    from p2pcomm.core.sync import Msg

    summary = msgpack.packb([int(Msg.SUMMARY), 0, tips_fingerprint(tips)], use_bin_type=True)
    tip_list = msgpack.packb([int(Msg.TIPS), 0, [list(t) for t in sorted(tips)]], use_bin_type=True)
    return _frame(summary) + _frame(tip_list)
