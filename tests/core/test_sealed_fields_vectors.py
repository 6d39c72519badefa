"""Sealed group fields of ``spec/vectors/encryption.json`` (spec/12-encryption.md 12.11a,
SM1 to SM3), read as a second implementation would read them: every value recomputed
with the library, step by step, and each vector also read end to end, by a member's
:class:`~p2pcomm.core.encryptor.Encryptor` over signed entries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core import crypto
from p2pcomm.core import seal as s
from p2pcomm.core.encoding import Limits, decode_canonical, encode, expect_array
from p2pcomm.core.encryptor import Encryptor
from p2pcomm.core.epochs import (
    HISTORY_SINCE_JOIN,
    LABEL_GENESIS_FIELDS,
    KeyBlock,
    decode_fields,
    decode_fields_and_mode,
    encode_fields,
    open_genesis_fields,
    seal_genesis_fields,
    slot_context,
)
from p2pcomm.core.log import Entry, create_entry, create_genesis, decode_entry, encode_entry
from p2pcomm.core.membership import Kind, MembershipMachine
from p2pcomm.core.membership.ops import GenesisBody, SetMetadata, decode_op
from p2pcomm.errors import DecodeError, SealError
from p2pcomm.testing.history import named_keypair

PATH = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "encryption.json"
DOC = json.loads(PATH.read_text(encoding="utf-8"))
VECTORS = [v for v in DOC["vectors"] if v["type"] == "sealed-fields"]
ALICE = named_keypair("alice")
#: SM3: the plaintext is decoded with these limits (01 D1 to D3, D5, D6).
LIMITS = Limits(max_size=49152, max_bytes=49152, max_array=4, max_depth=1)


def x(text: str) -> bytes:
    return bytes.fromhex(text)


def named(kind: str) -> dict[str, Any]:
    (v,) = [v for v in VECTORS if v["name"] == kind]
    return v


def fields_of(j: dict[str, str]) -> tuple[str, str, str]:
    return j["name"], j["description"], j["rules"]


def context(j: dict[str, Any]) -> s.AadContext:
    ctx = s.AadContext(x(j["group"]), x(j["author"]), j["seq"], j["kind"])
    assert ctx.aad() == x(j["aad"])
    return ctx


# --------------------------------------------------------------------------- SM3, by hand


def fields_problem(plaintext: bytes) -> str | None:
    """SM3: a canonical array of three str within 04 4.5's limits, optionally followed
    by the integer 1 (12.11b), or the error."""
    try:
        items = decode_canonical(plaintext, LIMITS)
        expect_array(items, "fields")
        if len(items) == 4:
            if type(items[3]) is not int:
                return "wrong-type"
            if items[3] != 1:
                return "out-of-range"
            items = items[:3]
        expect_array(items, "fields", length=3)
        SetMetadata.decode(encode([1, *items]))
    except DecodeError as exc:
        return exc.code.value
    return None


def genesis_problem(secret: bytes, founder: bytes, sealed: bytes) -> str | None:
    if len(sealed) < 12 + 17:
        return "wrong-length"
    key = crypto.hkdf_sha256(b"", secret, b"p2pcomm/1/genesis-fields")
    try:
        plaintext = s.unpad(crypto.aead_open(key, sealed[:12], founder, sealed[12:]))
    except crypto.AeadError:
        return "decrypt-failed"
    except SealError as exc:
        return exc.code.value
    return fields_problem(plaintext)


def set_metadata_problem(key: bytes, eid: bytes, ctx: s.AadContext, sealed: bytes) -> str | None:
    try:
        env = s.decode_envelope(sealed)
        if env.epoch_id != eid:
            return "wrong-epoch"
        plaintext = s.open_envelope(key, env, ctx)
    except (DecodeError, SealError) as exc:
        return exc.code.value
    return fields_problem(plaintext)


# --------------------------------------------------------------------------- end to end


def alice_encryptor(*entries: Entry) -> Encryptor:
    """Alice's Encryptor over the entries (its receive key is the one the genesis block
    seals the first secret to; it holds no secret beforehand)."""
    g = named("sealed-fields-genesis")
    machine = MembershipMachine()
    machine.apply_many(entries)
    receive = {x(g["receive"]["public"]): x(g["receive"]["private"])}
    enc = Encryptor(machine, ALICE.public_key, receive, {}, random_bytes=lambda n: bytes(n))
    assert enc.encrypted
    return enc


def read_as_alice(*entries: Entry) -> tuple[str, str, str] | None:
    """What alice's Encryptor opens from the entries."""
    return alice_encryptor(*entries).metadata()


def genesis_entry(sealed: bytes) -> Entry:
    g = named("sealed-fields-genesis")
    body = GenesisBody(name="", founder_name="alice", keys=x(g["keys"]), sealed=sealed).encode()
    return create_genesis(ALICE, timestamp=g["timestamp"], body=body)


def set_metadata_entry(sealed: bytes) -> Entry:
    g = named("sealed-fields-genesis")
    body = SetMetadata(name="", sealed=sealed).encode()
    return create_entry(
        ALICE,
        group=x(g["group"]),
        seq=2,
        prev=x(g["group"]),
        links=(),
        timestamp=g["timestamp"] + 1,
        kind=Kind.SET_METADATA,
        body=body,
    )


# --------------------------------------------------------------------------- vectors


def test_the_label_is_the_library_s() -> None:
    assert LABEL_GENESIS_FIELDS == "p2pcomm/1/genesis-fields"
    (c,) = [v for v in DOC["vectors"] if v["type"] == "constants"]
    assert c["labels"]["genesis_fields"] == LABEL_GENESIS_FIELDS


def test_the_genesis() -> None:
    v = named("sealed-fields-genesis")
    secret, founder, nonce = x(v["secret"]), x(v["founder"]), x(v["nonce"])
    assert founder == ALICE.public_key
    fields = fields_of(v["fields"])
    # SM1, byte by byte
    key = crypto.hkdf_sha256(b"", secret, LABEL_GENESIS_FIELDS.encode("ascii"))
    assert key.hex() == v["key"]
    plaintext = encode([*fields])
    assert plaintext == encode_fields(*fields) == x(v["plaintext"])
    assert s.pad(plaintext) == x(v["padded"])
    sealed = nonce + crypto.aead_seal(key, nonce, founder, s.pad(plaintext))
    assert sealed == seal_genesis_fields(secret, founder, plaintext, nonce) == x(v["sealed"])
    assert open_genesis_fields(secret, founder, sealed) == plaintext
    assert decode_fields(plaintext) == fields
    assert genesis_problem(secret, founder, sealed) is None
    # The body: the clear fields empty, the block a rekey sealed to the founder
    body = decode_op(Kind.GENESIS, x(v["body"]))
    assert isinstance(body, GenesisBody)
    assert (body.name, body.description, body.rules) == ("", "", "")
    assert (body.founder_name, body.keys, body.sealed) == ("alice", x(v["keys"]), sealed)
    assert body.encode() == x(v["body"])
    block = KeyBlock.decode(body.keys)
    assert block.is_rekey
    private = x(v["receive"]["private"])
    assert crypto.x25519_public(private) == x(v["receive"]["public"]) == block.receive
    ctx = slot_context(founder, 1, Kind.GENESIS)
    rekey = s.Rekey(eph_pub=block.eph_pub, slots=block.slots)
    assert s.open_slot(private, 0, rekey, bytes(32), ctx) == secret
    # The entry, and what its founder reads from it
    entry = decode_entry(x(v["entry"]))
    assert entry == create_genesis(ALICE, timestamp=v["timestamp"], body=x(v["body"]))
    assert entry.id.hex() == v["group"]
    assert read_as_alice(entry) == fields
    # 04's state keeps the clear, empty fields: what a relay or a stolen store shows
    machine = MembershipMachine()
    machine.apply(entry)
    meta = machine.state.metadata
    assert (meta.name, meta.description, meta.rules) == ("", "", "")


def test_a_since_join_genesis() -> None:
    """12.11b: the fields of a since-join group end with the integer 1, sealed as SM1."""
    v = named("sealed-fields-genesis-since-join")
    g = named("sealed-fields-genesis")
    secret, founder, nonce = x(v["secret"]), x(v["founder"]), x(v["nonce"])
    assert (secret, founder, v["keys"], v["key"]) == (
        x(g["secret"]),
        ALICE.public_key,
        g["keys"],
        g["key"],
    )
    fields = fields_of(v["fields"])
    assert v["history"] == HISTORY_SINCE_JOIN == 1
    plaintext = encode([*fields, 1])
    assert plaintext == encode_fields(*fields, HISTORY_SINCE_JOIN) == x(v["plaintext"])
    assert s.pad(plaintext) == x(v["padded"])
    key = crypto.hkdf_sha256(b"", secret, LABEL_GENESIS_FIELDS.encode("ascii"))
    sealed = nonce + crypto.aead_seal(key, nonce, founder, s.pad(plaintext))
    assert sealed == seal_genesis_fields(secret, founder, plaintext, nonce) == x(v["sealed"])
    assert genesis_problem(secret, founder, sealed) is None
    assert decode_fields_and_mode(plaintext) == (*fields, HISTORY_SINCE_JOIN)
    assert decode_fields(plaintext) == fields
    body = GenesisBody(name="", founder_name="alice", keys=x(v["keys"]), sealed=sealed)
    assert body.encode() == x(v["body"])
    entry = decode_entry(x(v["entry"]))
    assert entry == create_genesis(ALICE, timestamp=v["timestamp"], body=x(v["body"]))
    assert entry.id.hex() == v["group"] != g["group"]
    enc = alice_encryptor(entry)
    assert enc.metadata() == fields and enc.since_join
    assert not alice_encryptor(decode_entry(x(g["entry"]))).since_join


@pytest.mark.parametrize(
    "name", ["sealed-fields-set-metadata", "sealed-fields-set-metadata-limits"]
)
def test_a_set_metadata(name: str) -> None:
    v = named(name)
    g = named("sealed-fields-genesis")
    group = x(v["group"])
    assert group == x(g["group"]) and v["frontier"] == [g["group"]]
    # SM2: the epoch of the cut without the operation is the genesis's (EK1, EK2)
    eid = s.epoch_id(group, [group])
    key = s.epoch_key(group, [(group, x(g["secret"]))])
    assert (eid.hex(), key.hex()) == (v["epoch_id"], v["key"])
    ctx = context(v["context"])
    assert ctx == s.AadContext(group, ALICE.public_key, 2, Kind.SET_METADATA)
    fields = fields_of(v["fields"])
    plaintext = encode_fields(*fields)
    assert plaintext == x(v["plaintext"])
    sealed = s.seal_body(key, eid, x(v["nonce"]), ctx, plaintext)
    assert sealed == x(v["sealed"])
    assert s.open_body(key, sealed, ctx) == plaintext
    assert set_metadata_problem(key, eid, ctx, sealed) is None
    body = decode_op(Kind.SET_METADATA, x(v["body"]))
    assert isinstance(body, SetMetadata)
    assert (body.name, body.description, body.rules, body.sealed) == ("", "", "", sealed)
    assert body.encode() == x(v["body"])
    entry = decode_entry(x(v["entry"]))
    assert entry.body == x(v["body"]) and entry.header.prev == group
    assert encode_entry(set_metadata_entry(sealed)) == x(v["entry"])
    genesis = decode_entry(x(g["entry"]))
    # 04's rule picks the SET_METADATA (greater T); a member opens it, the state is empty
    assert read_as_alice(genesis, entry) == fields
    assert read_as_alice(entry, genesis) == fields
    machine = MembershipMachine()
    machine.apply_many([genesis, entry])
    assert machine.state.metadata.name == ""


@pytest.mark.parametrize("v", [v for v in VECTORS if "unknown" in v], ids=lambda v: v["name"])
def test_refused(v: dict[str, Any]) -> None:
    sealed = x(v["sealed"])
    g = named("sealed-fields-genesis")
    if v["operation"] == "genesis":
        secret, founder = x(v["secret"]), x(v["founder"])
        assert (secret, founder) == (x(g["secret"]), x(g["founder"]))
        assert genesis_problem(secret, founder, sealed) == v["unknown"]
        opened = open_genesis_fields(secret, founder, sealed)
        if (
            v["unknown"] in ("too-large", "wrong-length", "wrong-type", "out-of-range")
            and opened is not None
        ):
            assert fields_problem(opened) == v["unknown"]
        # SM3: the founder's Encryptor reads the fields as unknown
        assert read_as_alice(genesis_entry(sealed)) is None
    else:
        assert v["operation"] == "set_metadata"
        key, eid, ctx = x(v["key"]), x(v["epoch_id"]), context(v["context"])
        assert (key.hex(), eid.hex()) == (named("sealed-fields-set-metadata")["key"], v["epoch_id"])
        assert set_metadata_problem(key, eid, ctx, sealed) == v["unknown"]
        genesis = decode_entry(x(g["entry"]))
        assert read_as_alice(genesis, set_metadata_entry(sealed)) is None


def test_the_refusals_cover_sm1_to_sm3() -> None:
    fails = {(v["operation"], v["unknown"]) for v in VECTORS if "unknown" in v}
    assert fails >= {
        ("genesis", "decrypt-failed"),
        ("genesis", "wrong-length"),
        ("genesis", "too-large"),
        ("genesis", "out-of-range"),
        ("genesis", "wrong-type"),
        ("set_metadata", "decrypt-failed"),
        ("set_metadata", "wrong-epoch"),
        ("set_metadata", "truncated"),
        ("set_metadata", "too-large"),
        ("set_metadata", "wrong-type"),
    }
    good = [v for v in VECTORS if "unknown" not in v]
    assert len(good) == 4
    history = {v["name"]: v["unknown"] for v in VECTORS if "-history-" in v["name"]}
    assert history == {
        "sealed-fields-unknown-genesis-history-0": "out-of-range",
        "sealed-fields-unknown-genesis-history-2": "out-of-range",
        "sealed-fields-unknown-genesis-history-string": "wrong-type",
    }
    at_limits = fields_of(named("sealed-fields-set-metadata-limits")["fields"])
    assert [len(f.encode()) for f in at_limits] == [64, 1024, 8192]
