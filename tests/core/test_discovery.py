"""Discovery adverts (spec/08-discovery.md): the vectors, read as an independent
implementation would, and properties of the tokens and the TXT parser."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcomm.core import crypto
from p2pcomm.core import discovery as d
from p2pcomm.errors import DecodeError, ErrorCode

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "spec" / "vectors" / "discovery.json").read_text(encoding="utf-8"))
R = d.ROTATION_MS
NOW = 1795392000000


def of_type(kind: str) -> list[Any]:
    return [pytest.param(v, id=v["name"]) for v in DOC["vectors"] if v["type"] == kind]


def props(j: dict[str, str | None]) -> dict[bytes, bytes | None]:
    return {bytes.fromhex(k): None if v is None else bytes.fromhex(v) for k, v in j.items()}


class Stream:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def __call__(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def test_every_vector_type_is_read() -> None:
    assert {v["type"] for v in DOC["vectors"]} == {
        "constants",
        "epoch",
        "token",
        "advert",
        "match",
        "txt-decode",
    }
    assert DOC["revision"] == 6


# ---------------------------------------------------------------- vectors


@pytest.mark.parametrize("v", of_type("constants"))
def test_constants(v: dict[str, Any]) -> None:
    assert v["service_type"] == d.SERVICE_TYPE == "_p2pcomm._tcp.local."
    assert v["rotation_ms"] == d.ROTATION_MS == 900_000
    assert v["token_size"] == d.TOKEN_SIZE == 8
    assert v["max_tokens"] == d.MAX_TOKENS == 8
    assert bytes.fromhex(v["txt_version"]) == d.TXT_VERSION == b"1"
    assert v["label"] == d.LABEL == "p2pcomm/1/discovery"
    assert v["txt_tokens_chars"] == d.TXT_TOKENS_CHARS == 103


@pytest.mark.parametrize("v", of_type("epoch"))
def test_epoch(v: dict[str, Any]) -> None:
    assert d.epoch_of(v["now_ms"]) == v["epoch"] == v["now_ms"] // 900_000


@pytest.mark.parametrize("v", of_type("token"))
def test_token(v: dict[str, Any]) -> None:
    g, epoch = bytes.fromhex(v["group"]), v["epoch"]
    # The construction, step by step (08 DK1), with hashlib rather than the module.
    hashed = b"p2pcomm/1/discovery" + epoch.to_bytes(8, "big")
    assert hashed.hex() == v["hashed"]
    digest = hashlib.blake2b(hashed, key=g, digest_size=16).digest()
    assert digest.hex() == v["digest"]
    assert digest[:8].hex() == v["token"]
    assert d.discovery_token(g, epoch).hex() == v["token"]


@pytest.mark.parametrize("v", of_type("advert"))
def test_advert(v: dict[str, Any]) -> None:
    groups = [bytes.fromhex(g) for g in v["groups"]]
    random = bytes.fromhex(v["random"])
    advert = d.make_advert(groups, now_ms=v["now_ms"], port=v["port"], random_bytes=Stream(random))
    epoch = d.epoch_of(v["now_ms"])
    assert epoch == v["epoch"]
    advertised = [bytes.fromhex(g) for g in v["advertised"]]
    assert d.advertised_groups(groups, epoch) == advertised
    assert advert.instance == v["instance"]
    assert advert.host == v["host"]
    assert advert.port == v["port"]
    assert [t.hex() for t in advert.tokens] == v["tokens"]
    assert d.encode_txt(advert) == props(v["properties"])
    # Independently: the names are base32 of the first 10 and next 10 random bytes, and
    # the tokens are the advertised groups' tokens plus the next 8-byte draws, sorted.
    b32 = lambda b: base64.b32encode(b).decode().rstrip("=").lower()  # noqa: E731
    assert v["instance"] == b32(random[:10])
    assert v["host"] == "p2p-" + b32(random[10:20])
    real = {
        crypto.blake2b_keyed(g, d.LABEL.encode() + epoch.to_bytes(8, "big"), 16)[:8]
        for g in advertised
    }
    pads = [random[20 + 8 * i : 28 + 8 * i] for i in range(8 - len(real))]
    assert tuple(sorted(real | set(pads))) == advert.tokens
    assert props(v["properties"])[b"t"] == b32(b"".join(sorted(real | set(pads)))).encode()


@pytest.mark.parametrize("v", of_type("match"))
def test_match(v: dict[str, Any]) -> None:
    tokens = [bytes.fromhex(t) for t in v["tokens"]]
    groups = [bytes.fromhex(g) for g in v["groups"]]
    found = d.matching_groups(tokens, groups, now_ms=v["now_ms"])
    assert [g.hex() for g in found] == v["matches"]


def test_match_vectors_cover_the_window() -> None:
    counts = {v["name"]: len(v["matches"]) for v in DOC["vectors"] if v["type"] == "match"}
    assert counts == {
        "match-same-epoch": 2,
        "match-browser-ahead": 2,
        "match-browser-behind": 2,
        "match-two-epochs-later": 0,
    }


@pytest.mark.parametrize("v", of_type("txt-decode"))
def test_txt_decode(v: dict[str, Any]) -> None:
    p = props(v["properties"])
    if "fail" in v:
        with pytest.raises(DecodeError) as info:
            d.decode_txt(p)
        assert info.value.code.value == v["fail"]
    else:
        assert [t.hex() for t in d.decode_txt(p)] == v["tokens"]


def test_every_decode_error_is_covered() -> None:
    fails = {v["fail"] for v in DOC["vectors"] if "fail" in v}
    assert fails == {"malformed", "unknown-version", "too-large", "wrong-length", "not-canonical"}


def test_example_of_the_spec_chapter() -> None:
    """The worked example of 08 8.4, recomputed."""
    text = (ROOT / "spec" / "08-discovery.md").read_text(encoding="utf-8")
    g, e = bytes([0x11]) * 32, d.epoch_of(NOW)
    hashed = b"p2pcomm/1/discovery" + e.to_bytes(8, "big")
    for value in (
        f"`e = {e}`",
        f"`{hashed.hex()}`",
        f"`{crypto.blake2b_keyed(g, hashed, 16).hex()}`",
        f"`{d.discovery_token(g, e).hex()}`",
        f"`{d.discovery_token(g, e + 1).hex()}`",
    ):
        assert value in text, value


# ---------------------------------------------------------------- behaviour


def test_epoch_and_token_refuse_what_is_out_of_range() -> None:
    with pytest.raises(ValueError):
        d.epoch_of(-1)
    with pytest.raises(ValueError):
        d.discovery_token(bytes(31), 0)
    with pytest.raises(ValueError):
        d.discovery_token(bytes(32), -1)
    with pytest.raises(ValueError):
        d.discovery_token(bytes(32), 2**64)


def test_advert_checks_its_fields() -> None:
    tokens = tuple(bytes([i]) * 8 for i in range(8))
    d.Advert(instance="x", host="p2p-x", port=1, tokens=tokens)
    for bad in (tokens[:7], tokens[::-1], (tokens[0], *tokens[:7]), (b"x", *tokens[1:])):
        with pytest.raises(ValueError):
            d.Advert(instance="x", host="p2p-x", port=1, tokens=bad)
    for port in (0, 65536):
        with pytest.raises(ValueError):
            d.Advert(instance="x", host="p2p-x", port=port, tokens=tokens)


def test_names_are_labels_without_identifiers() -> None:
    advert = d.make_advert(
        [bytes(32)], now_ms=NOW, port=7447, random_bytes=Stream(bytes(range(100)))
    )
    assert len(advert.instance) == 16 and advert.instance.isalnum()
    assert advert.host.startswith("p2p-") and len(advert.host) == 20
    assert advert.service_name == f"{advert.instance}._p2pcomm._tcp.local."
    assert advert.server == f"{advert.host}.local."


def test_a_broken_random_source_is_refused() -> None:
    with pytest.raises(ValueError):
        d.make_advert([], now_ms=NOW, port=7447, random_bytes=lambda n: bytes(n))
    with pytest.raises(ValueError):
        d.make_advert([], now_ms=NOW, port=7447, random_bytes=lambda n: bytes(n - 1))


def test_every_group_is_advertised_within_ceil_n_over_8_epochs() -> None:
    for n in (9, 10, 16, 17, 30):
        groups = [crypto.blake2b_256(bytes([n, i])) for i in range(n)]
        epochs = -(-n // 8)
        for start in (0, 5, 1994880):
            seen = set()
            for e in range(start, start + epochs):
                window = d.advertised_groups(groups, e)
                assert len(window) == 8 == len(set(window))
                seen |= set(window)
            assert seen == set(groups)


def test_duplicate_groups_count_once() -> None:
    g = bytes(32)
    advert = d.make_advert([g, g], now_ms=NOW, port=7447, random_bytes=Stream(bytes(range(200))))
    assert d.matching_groups(advert.tokens, [g], now_ms=NOW) == [g]
    assert d.discovery_token(g, d.epoch_of(NOW)) in advert.tokens


# ---------------------------------------------------------------- properties

group_ids = st.binary(min_size=32, max_size=32)
times = st.integers(min_value=0, max_value=2**63 - 1)


def random_source(seed: bytes) -> Stream:
    return Stream(b"".join(crypto.blake2b_512(seed + bytes([i])) for i in range(8)))


@given(
    st.dictionaries(
        st.one_of(st.sampled_from([b"v", b"t", b"T", b"x"]), st.binary(max_size=4)),
        st.one_of(
            st.none(),
            st.binary(max_size=130),
            st.sampled_from([b"1", b"2"]),
            st.text("abcdefghijklmnopqrstuvwxyz234567=", min_size=100, max_size=106).map(
                str.encode
            ),
        ),
        max_size=4,
    )
)
def test_decode_txt_only_raises_decode_error(properties: dict[bytes, bytes | None]) -> None:
    try:
        tokens = d.decode_txt(properties)
    except DecodeError as exc:
        assert isinstance(exc.code, ErrorCode)
    else:
        assert len(tokens) == 8 and list(tokens) == sorted(set(tokens))


@given(st.text("abcdefghijklmnopqrstuvwxyz234567", min_size=103, max_size=103).map(str.encode))
def test_decode_txt_of_base32_text(text: bytes) -> None:
    try:
        tokens = d.decode_txt({b"v": b"1", b"t": text})
    except DecodeError as exc:
        assert exc.code is ErrorCode.NOT_CANONICAL
    else:
        assert (
            d.encode_txt(d.Advert(instance="a", host="p2p-a", port=1, tokens=tokens))[b"t"] == text
        )


@given(
    st.lists(group_ids, max_size=12),
    times,
    st.integers(1, 65535),
    st.binary(min_size=8, max_size=8),
)
def test_encode_decode_round_trip(groups: list[bytes], now: int, port: int, seed: bytes) -> None:
    advert = d.make_advert(groups, now_ms=now, port=port, random_bytes=random_source(seed))
    txt = d.encode_txt(advert)
    assert set(txt) == {b"v", b"t"} and len(txt[b"t"]) == 103
    assert d.decode_txt(txt) == advert.tokens


@given(
    st.lists(group_ids, max_size=8),
    st.integers(0, 2**40),
    st.integers(1, 10),
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=8, max_size=8),
)
def test_adverts_of_one_node_in_two_epochs_share_nothing(
    groups: list[bytes], epoch: int, later: int, seed1: bytes, seed2: bytes
) -> None:
    a = d.make_advert(groups, now_ms=epoch * R, port=7447, random_bytes=random_source(seed1))
    b = d.make_advert(
        groups, now_ms=(epoch + later) * R + 1, port=7447, random_bytes=random_source(seed2 + b"/")
    )
    assert a.instance != b.instance and a.host != b.host
    assert not set(a.tokens) & set(b.tokens)
    txt = d.encode_txt(a)[b"t"] + d.encode_txt(b)[b"t"]
    for g in groups:
        assert g.hex().encode() not in txt and base64.b32encode(g).lower() not in txt


@given(
    st.lists(group_ids, max_size=8, unique=True),
    st.lists(group_ids, max_size=8, unique=True),
    times,
    st.integers(-R, R),
    st.binary(min_size=8, max_size=8),
)
def test_matching_finds_exactly_the_nodes_groups(
    mine: list[bytes], others: list[bytes], now: int, skew: int, seed: bytes
) -> None:
    """A browser holding the node's groups and others finds exactly the node's groups,
    for any clock skew of at most one period."""
    advert = d.make_advert(mine, now_ms=now, port=7447, random_bytes=random_source(seed))
    browser_now = max(0, now + skew)
    found = d.matching_groups(advert.tokens, mine + others, now_ms=browser_now)
    # Another group matches with probability about 3 * 8 * 2^-64.
    assert found == sorted(set(mine))


@given(
    st.lists(group_ids, min_size=9, max_size=20, unique=True),
    times,
    st.binary(min_size=8, max_size=8),
)
def test_more_groups_than_places(groups: list[bytes], now: int, seed: bytes) -> None:
    advert = d.make_advert(groups, now_ms=now, port=7447, random_bytes=random_source(seed))
    found = d.matching_groups(advert.tokens, groups, now_ms=now)
    assert found == d.advertised_groups(groups, d.epoch_of(now))
    assert len(found) == 8
