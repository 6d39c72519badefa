"""The gossip codec against ``spec/vectors/gossip.json`` (spec/07-gossip.md), read as an
independent implementation would: fields from JSON, bytes from hex."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core.gossip import messages as m
from p2pcomm.core.log import decode_entry, encode_entry
from p2pcomm.core.sync import decode_gossip_entry, encode_gossip_entry
from p2pcomm.errors import DecodeError, RemoteProtocolError

PATH = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "gossip.json"
DOC = json.loads(PATH.read_text(encoding="utf-8"))
HANDLED = {"constants", "message", "message-decode", "entry", "entry-decode"}


def of(kind: str) -> list[dict[str, Any]]:
    return [v for v in DOC["vectors"] if v["type"] == kind]


def build(f: dict[str, Any]) -> m.Message:
    def nodes(ns: list[dict[str, Any]]) -> tuple[m.NodeInfo, ...]:
        return tuple(m.NodeInfo(bytes.fromhex(n["peer"]), n["addr"], n["seen"]) for n in ns)

    kind = f["kind"]
    if kind == "join":
        return m.Join(f["addr"])
    if kind == "forward-join":
        return m.ForwardJoin(bytes.fromhex(f["peer"]), f["addr"], f["ttl"])
    if kind == "shuffle":
        return m.Shuffle(bytes.fromhex(f["origin"]), f["addr"], f["ttl"], nodes(f["nodes"]))
    if kind == "shuffle-reply":
        return m.ShuffleReply(nodes(f["nodes"]))
    if kind == "neighbor":
        return m.Neighbor(f["high"], f["addr"])
    if kind == "disconnect":
        return m.Disconnect(f["alive"])
    if kind == "gossip":
        return m.Gossip(bytes.fromhex(f["id"]), f["round"], bytes.fromhex(f["payload"]))
    if kind == "ihave":
        return m.IHave(tuple((bytes.fromhex(i["id"]), i["round"]) for i in f["items"]))
    if kind == "graft":
        return m.Graft(None if f["id"] is None else bytes.fromhex(f["id"]), f["round"])
    if kind == "beacon":
        return m.Beacon(bytes.fromhex(f["root"]), f["seq"], f["hops"])
    assert kind == "prune"
    return m.Prune()


def test_every_type_is_consumed() -> None:
    assert {v["type"] for v in DOC["vectors"]} <= HANDLED


def test_constants() -> None:
    (c,) = of("constants")
    assert c["version"] == m.VERSION
    assert c["kinds"] == {k.name.lower().replace("_", "-"): int(k) for k in m.Kind}
    assert (c["max_addr"], c["max_shuffle_nodes"], c["max_ttl"]) == (
        m.MAX_ADDR,
        m.MAX_SHUFFLE_NODES,
        m.MAX_TTL,
    )
    assert (c["max_ihave"], c["max_round"], c["max_payload"], c["max_message"]) == (
        m.MAX_IHAVE,
        m.MAX_ROUND,
        m.MAX_PAYLOAD,
        m.MAX_MESSAGE,
    )
    assert c["max_seq"] == m.MAX_SEQ


@pytest.mark.parametrize("v", of("message"), ids=lambda v: v["name"])
def test_message(v: dict[str, Any]) -> None:
    msg = build(v["fields"])
    data = bytes.fromhex(v["bytes"])
    assert m.encode_message(msg) == data
    assert m.decode_message(data) == msg


@pytest.mark.parametrize("v", of("message-decode"), ids=lambda v: v["name"])
def test_refused(v: dict[str, Any]) -> None:
    with pytest.raises(DecodeError) as exc:
        m.decode_message(bytes.fromhex(v["bytes"]))
    assert exc.value.code.value == v["fail"]


@pytest.mark.parametrize("v", of("entry"), ids=lambda v: v["name"])
def test_gossip_entry(v: dict[str, Any]) -> None:
    """07 N7: the payload is the entry in RUN form; reading it back rebuilds the full
    entry, its id included, for the group the message names."""
    full = bytes.fromhex(v["entry"])
    payload = bytes.fromhex(v["payload"])
    assert encode_gossip_entry(decode_entry(full)) == payload
    entry = decode_gossip_entry(bytes.fromhex(v["group"]), payload)
    assert encode_entry(entry) == full
    assert entry.id.hex() == v["id"]
    assert len(payload) < len(full)


@pytest.mark.parametrize("v", of("entry-decode"), ids=lambda v: v["name"])
def test_gossip_entry_refused(v: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_gossip_entry(bytes.fromhex(v["group"]), bytes.fromhex(v["payload"]))
    assert info.value.code.value == v["fail"]


@pytest.mark.parametrize("v", of("entry"), ids=lambda v: v["name"])
def test_gossip_entry_cut_short_or_moved(v: dict[str, Any]) -> None:
    """Every truncation is a typed refusal; read for another group, the payload gives
    another entry id, which the node refuses as not the message's id (07 N7)."""
    payload = bytes.fromhex(v["payload"])
    group = bytes.fromhex(v["group"])
    for cut in range(len(payload)):
        with pytest.raises(RemoteProtocolError):
            decode_gossip_entry(group, payload[:cut])
    other = decode_gossip_entry(bytes(31) + b"\x01", payload)
    if v["name"] != "entry-genesis":  # a genesis names no group (03)
        assert other.id.hex() != v["id"]
