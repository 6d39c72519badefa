"""Gossip wire messages (spec 07 section 7.2): one case table, both directions; every
decoder fed whole, byte at a time (every proper prefix is refused) and with trailing
data; Hypothesis round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcomm.core.encoding import encode
from p2pcomm.core.gossip.messages import (
    MAX_IHAVE,
    MAX_PAYLOAD,
    MAX_SHUFFLE_NODES,
    Beacon,
    Disconnect,
    ForwardJoin,
    Gossip,
    Graft,
    IHave,
    Join,
    Message,
    Neighbor,
    NodeInfo,
    Prune,
    Shuffle,
    ShuffleReply,
    decode_message,
    encode_message,
)
from p2pcomm.errors import DecodeError, ErrorCode

P = bytes(range(32))
Q = bytes(range(32, 64))
ID = bytes([0xAB]) * 32

CASES: list[tuple[Message, list[object]]] = [
    (Join("10.0.0.1:7447"), [1, 1, "10.0.0.1:7447"]),
    (ForwardJoin(P, "a:1", 6), [1, 2, P, "a:1", 6]),
    (Shuffle(P, "a:1", 5, (NodeInfo(Q, "b:2", 7),)), [1, 3, P, "a:1", 5, [[Q, "b:2", 7]]]),
    (ShuffleReply(()), [1, 4, []]),
    (ShuffleReply((NodeInfo(Q, "b:2", 2**40),)), [1, 4, [[Q, "b:2", 2**40]]]),
    (Neighbor(True, "a:1"), [1, 5, True, "a:1"]),
    (Disconnect(False), [1, 6, False]),
    (Gossip(ID, 3, b"entry"), [1, 7, ID, 3, b"entry"]),
    (IHave(((ID, 1), (P, 2))), [1, 8, [[ID, 1], [P, 2]]]),
    (Graft(ID, 4), [1, 9, ID, 4]),
    (Graft(None, 0), [1, 9, None, 0]),
    (Prune(), [1, 10]),
    (Beacon(P, 7, 2), [1, 11, P, 7, 2]),
]


@pytest.mark.parametrize(("msg", "layout"), CASES, ids=lambda c: type(c).__name__)
def test_case_table_both_directions(msg: Message, layout: list[object]) -> None:
    data = encode(layout)  # type: ignore[arg-type]
    assert encode_message(msg) == data
    assert decode_message(data) == msg


@pytest.mark.parametrize(("msg", "layout"), CASES, ids=lambda c: type(c).__name__)
def test_every_prefix_and_trailing_data_refused(msg: Message, layout: list[object]) -> None:
    data = encode_message(msg)
    for n in range(len(data)):
        with pytest.raises(DecodeError):
            decode_message(data[:n])
    with pytest.raises(DecodeError) as exc:
        decode_message(data + b"\x00")
    assert exc.value.code is ErrorCode.TRAILING_DATA


FAILS: list[tuple[str, object, ErrorCode]] = [
    ("empty", [], ErrorCode.WRONG_LENGTH),
    ("version-2", [2, 10], ErrorCode.UNKNOWN_VERSION),
    ("version-2-other-shape", [2, 99, 1, 2, 3], ErrorCode.UNKNOWN_VERSION),
    ("version-only", [1], ErrorCode.WRONG_LENGTH),
    ("kind-0", [1, 0], ErrorCode.OUT_OF_RANGE),
    ("kind-12", [1, 12], ErrorCode.OUT_OF_RANGE),
    ("beacon-seq-2^32", [1, 11, P, 2**32, 0], ErrorCode.OUT_OF_RANGE),
    ("beacon-root-31", [1, 11, P[:31], 1, 0], ErrorCode.WRONG_LENGTH),
    ("kind-str", [1, "join"], ErrorCode.WRONG_TYPE),
    ("prune-extra", [1, 10, 0], ErrorCode.WRONG_LENGTH),
    ("gossip-short-id", [1, 7, b"\x00" * 31, 0, b""], ErrorCode.WRONG_LENGTH),
    ("gossip-round-big", [1, 7, ID, 65536, b""], ErrorCode.OUT_OF_RANGE),
    ("forward-join-ttl-17", [1, 2, P, "a:1", 17], ErrorCode.OUT_OF_RANGE),
    ("join-addr-bin", [1, 1, b"a:1"], ErrorCode.WRONG_TYPE),
    ("join-addr-long", [1, 1, "a" * 256], ErrorCode.TOO_LARGE),
    ("neighbor-int", [1, 5, 1, "a:1"], ErrorCode.WRONG_TYPE),
    (
        "shuffle-17-nodes",
        [1, 4, [[Q, "b:2", 0]] * (MAX_SHUFFLE_NODES + 1)],
        ErrorCode.TOO_LARGE,
    ),
    ("shuffle-node-2-items", [1, 4, [[Q, "b:2"]]], ErrorCode.WRONG_LENGTH),
    ("ihave-257", [1, 8, [[ID, 0]] * (MAX_IHAVE + 1)], ErrorCode.TOO_LARGE),
    ("not-array", 7, ErrorCode.WRONG_TYPE),
]


@pytest.mark.parametrize(("name", "layout", "code"), FAILS, ids=[f[0] for f in FAILS])
def test_refused(name: str, layout: object, code: ErrorCode) -> None:
    with pytest.raises(DecodeError) as exc:
        decode_message(encode(layout))  # type: ignore[arg-type]
    assert exc.value.code is code


def test_payload_limit() -> None:
    ok = Gossip(ID, 0, b"x" * MAX_PAYLOAD)
    assert decode_message(encode_message(ok)) == ok
    with pytest.raises(DecodeError):
        decode_message(encode([1, 7, ID, 0, b"x" * (MAX_PAYLOAD + 1)]))


def test_not_canonical_refused() -> None:
    data = bytearray(encode_message(Disconnect(True)))
    # [1, 6, true] with 6 written as uint8 (0xcc 0x06) instead of a positive fixint
    bad = bytes([data[0], 0x01, 0xCC, 0x06, data[-1]])
    with pytest.raises(DecodeError) as exc:
        decode_message(bad)
    assert exc.value.code is ErrorCode.NOT_CANONICAL


b32 = st.binary(min_size=32, max_size=32)
addr = st.text(max_size=20)
node = st.builds(NodeInfo, b32, addr, st.integers(0, 2**63 - 1))
nodes = st.lists(node, max_size=MAX_SHUFFLE_NODES).map(tuple)
messages = st.one_of(
    st.builds(Join, addr),
    st.builds(ForwardJoin, b32, addr, st.integers(0, 16)),
    st.builds(Shuffle, b32, addr, st.integers(0, 16), nodes),
    st.builds(ShuffleReply, nodes),
    st.builds(Neighbor, st.booleans(), addr),
    st.builds(Disconnect, st.booleans()),
    st.builds(Gossip, b32, st.integers(0, 65535), st.binary(max_size=200)),
    st.builds(IHave, st.lists(st.tuples(b32, st.integers(0, 65535)), max_size=20).map(tuple)),
    st.builds(Graft, st.none() | b32, st.integers(0, 65535)),
    st.just(Prune()),
)


@given(messages)
def test_round_trip(msg: Message) -> None:
    data = encode_message(msg)
    assert decode_message(data) == msg
    assert encode_message(decode_message(data)) == data
