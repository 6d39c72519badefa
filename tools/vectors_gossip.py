"""Vectors for gossip messages (spec/07-gossip.md).

Types:

* ``constants``: the message version, the kind numbers and the decoding limits;
* ``message``: a message's fields (``kind`` plus one key per position, bytes in hex) and
  its canonical bytes (07 section 7.2);
* ``message-decode``: bytes every decoder must refuse, with the error name (07 G1 to G4);
* ``entry``: an entry (03, encoded in full) and the payload a ``gossip`` message carries
  for it (07 N7, revision 4), with the group it is read for;
* ``entry-decode``: payloads a node must refuse, with the error name.
"""

from __future__ import annotations

from typing import Any

from vectors_identity import test_key

from p2pcomm.core import crypto
from p2pcomm.core.encoding import encode
from p2pcomm.core.gossip import messages as m
from p2pcomm.core.log import create_entry, create_genesis, encode_entry
from p2pcomm.core.sync import decode_gossip_entry, encode_gossip_entry
from p2pcomm.errors import DecodeError, RemoteProtocolError

REVISION = 6


def peer(name: str) -> bytes:
    return crypto.blake2b_256(b"vector gossip peer " + name.encode("ascii"))


A, B, C = peer("a"), peer("b"), peer("c")
ENTRY = crypto.blake2b_256(b"vector gossip entry 1")
ENTRY2 = crypto.blake2b_256(b"vector gossip entry 2")
T = 1795392000000


def fields(msg: m.Message) -> dict[str, Any]:
    def nodes(ns: tuple[m.NodeInfo, ...]) -> list[dict[str, Any]]:
        return [{"peer": n.peer.hex(), "addr": n.addr, "seen": n.seen} for n in ns]

    if isinstance(msg, m.Join):
        return {"kind": "join", "addr": msg.addr}
    if isinstance(msg, m.ForwardJoin):
        return {"kind": "forward-join", "peer": msg.peer.hex(), "addr": msg.addr, "ttl": msg.ttl}
    if isinstance(msg, m.Shuffle):
        return {
            "kind": "shuffle",
            "origin": msg.origin.hex(),
            "addr": msg.addr,
            "ttl": msg.ttl,
            "nodes": nodes(msg.nodes),
        }
    if isinstance(msg, m.ShuffleReply):
        return {"kind": "shuffle-reply", "nodes": nodes(msg.nodes)}
    if isinstance(msg, m.Neighbor):
        return {"kind": "neighbor", "high": msg.high, "addr": msg.addr}
    if isinstance(msg, m.Disconnect):
        return {"kind": "disconnect", "alive": msg.alive}
    if isinstance(msg, m.Gossip):
        return {
            "kind": "gossip",
            "id": msg.id.hex(),
            "round": msg.round,
            "payload": msg.payload.hex(),
        }
    if isinstance(msg, m.IHave):
        return {"kind": "ihave", "items": [{"id": i.hex(), "round": r} for i, r in msg.items]}
    if isinstance(msg, m.Graft):
        return {"kind": "graft", "id": None if msg.id is None else msg.id.hex(), "round": msg.round}
    if isinstance(msg, m.Beacon):
        return {"kind": "beacon", "root": msg.root.hex(), "seq": msg.seq, "hops": msg.hops}
    return {"kind": "prune"}


MESSAGES: list[tuple[str, str, m.Message]] = [
    ("join", "a newcomer asks its contact in", m.Join("192.168.1.20:7447")),
    ("forward-join", "a walk with 6 steps left", m.ForwardJoin(A, "192.168.1.20:7447", 6)),
    (
        "shuffle",
        "a shuffle walk carrying three nodes",
        m.Shuffle(
            A,
            "10.0.0.1:7447",
            5,
            (
                m.NodeInfo(A, "10.0.0.1:7447", T),
                m.NodeInfo(B, "10.0.0.2:7447", T - 60_000),
                m.NodeInfo(C, "[fe80::1]:7447", 0),
            ),
        ),
    ),
    ("shuffle-reply-empty", "a reply with no node", m.ShuffleReply(())),
    (
        "shuffle-reply",
        "a reply with one node",
        m.ShuffleReply((m.NodeInfo(B, "10.0.0.2:7447", T),)),
    ),
    ("neighbor-high", "a high-priority neighbour request", m.Neighbor(True, "10.0.0.1:7447")),
    ("neighbor-low", "a low-priority neighbour request", m.Neighbor(False, "10.0.0.1:7447")),
    ("disconnect-alive", "leaving the active view, staying up", m.Disconnect(True)),
    ("disconnect-leaving", "leaving the network", m.Disconnect(False)),
    ("gossip", "an entry pushed after 3 hops", m.Gossip(ENTRY, 3, bytes.fromhex("93010203"))),
    ("ihave", "two announcements", m.IHave(((ENTRY, 1), (ENTRY2, 4)))),
    ("graft", "a graft asking for an entry", m.Graft(ENTRY, 1)),
    ("graft-no-id", "a graft that only makes the link eager", m.Graft(None, 0)),
    ("prune", "a prune", m.Prune()),
    ("beacon", "the root's 7th beacon, 2 links from it", m.Beacon(A, 7, 2)),
]

FAILS: list[tuple[str, str, bytes]] = [
    ("fail-empty-array", "no version", encode([])),
    ("fail-version-0", "version 0", encode([0, 10])),
    ("fail-version-2", "a later version, whatever follows", encode([2, 99, b"", 1])),
    ("fail-no-kind", "a version and nothing else", encode([1])),
    ("fail-kind-0", "kind 0 is not a message", encode([1, 0])),
    ("fail-kind-12", "kind 12 is not a message", encode([1, 12])),
    ("fail-beacon-seq-2^32", "a beacon number above 2^32-1", encode([1, 11, A, 2**32, 0])),
    ("fail-prune-extra-item", "PRUNE with an item more", encode([1, 10, None])),
    ("fail-gossip-id-31", "an entry id of 31 bytes", encode([1, 7, ENTRY[:31], 0, b""])),
    ("fail-gossip-round-65536", "round above 65535", encode([1, 7, ENTRY, 65536, b""])),
    ("fail-forward-join-ttl-17", "walk length above 16", encode([1, 2, A, "a:1", 17])),
    ("fail-join-addr-256", "an address of 256 bytes", encode([1, 1, "a" * 256])),
    ("fail-join-addr-bin", "an address as bin", encode([1, 1, b"a:1"])),
    ("fail-neighbor-int", "priority as an integer", encode([1, 5, 1, "a:1"])),
    (
        "fail-shuffle-17-nodes",
        "a shuffle reply of 17 nodes",
        encode([1, 4, [[A, "a:1", 0]] * 17]),
    ),
    ("fail-node-2-items", "a node record without its time", encode([1, 4, [[A, "a:1"]]])),
    ("fail-ihave-257", "257 announcements", encode([1, 8, [[ENTRY, 0]] * 257])),
    ("fail-graft-id-str", "a graft id as str", encode([1, 9, "x", 0])),
    ("fail-trailing", "a PRUNE followed by a byte", encode([1, 10]) + b"\x00"),
    ("fail-truncated", "a GOSSIP cut short", m.encode_message(m.Gossip(ENTRY, 0, b"xy"))[:-1]),
    ("fail-not-canonical", "DISCONNECT with the kind as uint8", bytes.fromhex("9301cc06c3")),
    ("fail-map", "a map", bytes.fromhex("81a16101")),
]


def generate() -> dict[str, Any]:
    vectors: list[dict[str, Any]] = [
        {
            "type": "constants",
            "name": "constants",
            "description": "version, kinds and limits of gossip messages",
            "version": m.VERSION,
            "kinds": {k.name.lower().replace("_", "-"): int(k) for k in m.Kind},
            "max_addr": m.MAX_ADDR,
            "max_shuffle_nodes": m.MAX_SHUFFLE_NODES,
            "max_ttl": m.MAX_TTL,
            "max_ihave": m.MAX_IHAVE,
            "max_round": m.MAX_ROUND,
            "max_seq": m.MAX_SEQ,
            "max_payload": m.MAX_PAYLOAD,
            "max_message": m.MAX_MESSAGE,
        }
    ]
    for name, description, msg in MESSAGES:
        vectors.append(
            {
                "type": "message",
                "name": name,
                "description": description,
                "fields": fields(msg),
                "bytes": m.encode_message(msg).hex(),
            }
        )
    for name, description, data in FAILS:
        try:
            m.decode_message(data)
        except DecodeError as exc:
            code = exc.code.value
        else:  # pragma: no cover - a generator bug
            raise AssertionError(f"{name} decodes")
        vectors.append(
            {
                "type": "message-decode",
                "name": name,
                "description": description,
                "bytes": data.hex(),
                "fail": code,
            }
        )
    vectors.extend(entry_vectors())
    return {
        "description": "gossip messages (07-gossip.md): canonical bytes and refusals",
        "revision": REVISION,
        "vectors": vectors,
    }


def entry_vectors() -> list[dict[str, Any]]:
    genesis = create_genesis(test_key("alice"), timestamp=T, body=b"gossip vectors")
    g = genesis.id
    bob = test_key("bob")
    e1 = create_entry(
        bob,
        group=g,
        seq=1,
        prev=None,
        links=[g],
        timestamp=T + 1000,
        kind=32,
        body=b"hello, everyone",
    )
    e2 = create_entry(
        bob,
        group=g,
        seq=2,
        prev=e1.id,
        links=[],
        timestamp=T + 2500,
        kind=32,
        body=b"deleted later",
    ).without_body()
    out: list[dict[str, Any]] = []
    for name, description, e in (
        ("entry-genesis", "a group's genesis (its group field is zero, 03)", genesis),
        ("entry-post", "a post with a link and a body", e1),
        ("entry-header-only", "an entry held without its body (hash and size sent)", e2),
    ):
        out.append(
            {
                "type": "entry",
                "name": name,
                "description": description,
                "group": g.hex(),
                "entry": encode_entry(e).hex(),
                "id": e.id.hex(),
                "payload": encode_gossip_entry(e).hex(),
            }
        )
    h = e1.header
    item = [0, h.kind, list(h.links), e1.body, e1.signature]
    seq_u16 = encode([h.author, 1, None, h.timestamp, [item]])
    seq_u16 = seq_u16[:35] + b"\xcd\x00\x01" + seq_u16[36:]
    fails = [
        (
            "fail-entry-delta",
            "the item's timestamp delta is not 0",
            encode([h.author, h.seq, h.prev, h.timestamp - 1, [[1, *item[1:]]]]),
        ),
        (
            "fail-entry-two",
            "two items",
            encode([h.author, h.seq, h.prev, h.timestamp, [item, item]]),
        ),
        ("fail-entry-four", "four fields", encode([h.author, h.seq, h.prev, h.timestamp])),
        ("fail-entry-not-canonical", "the sequence number as a 16-bit integer", seq_u16),
        (
            "fail-entry-signature",
            "a 63-byte signature",
            encode([h.author, h.seq, h.prev, h.timestamp, [[*item[:4], e1.signature[:63]]]]),
        ),
        ("fail-entry-full", "an entry encoded in full (03) instead", encode_entry(e1)),
    ]
    for name, description, data in fails:
        try:
            decode_gossip_entry(g, data)
        except RemoteProtocolError as exc:
            code = exc.code.value
        else:  # pragma: no cover - a generator bug
            raise AssertionError(f"{name} decodes")
        out.append(
            {
                "type": "entry-decode",
                "name": name,
                "description": description,
                "group": g.hex(),
                "payload": data.hex(),
                "fail": code,
            }
        )
    return out
