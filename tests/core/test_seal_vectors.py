"""The content encryption building blocks against ``spec/vectors/encryption.json``
(spec/12-encryption.md), read as an independent implementation would: inputs from JSON,
bytes from hex, and the constructions recomputed from the primitives where the chapter
gives them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core import crypto, epochs
from p2pcomm.core import keyring as kr
from p2pcomm.core import seal as s
from p2pcomm.core.encoding import decode, encode
from p2pcomm.core.epochs import LABEL_GENESIS_FIELDS
from p2pcomm.core.log import MAX_BODY_SIZE
from p2pcomm.errors import DecodeError, SealError

PATH = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "encryption.json"
DOC = json.loads(PATH.read_text(encoding="utf-8"))
HANDLED = {
    "constants",
    "padding",
    "unpad",
    "envelope",
    "envelope-open",
    "slots",
    "slots-verify",
    "pointers",
    "epoch",
    "keyring",
    "keyring-open",
    # key blocks and encrypted histories: test_epochs_vectors.py
    "key-block",
    "history",
    # sealed group fields: test_sealed_fields_vectors.py
    "sealed-fields",
}


def of(kind: str) -> list[dict[str, Any]]:
    return [v for v in DOC["vectors"] if v["type"] == kind]


def x(text: str) -> bytes:
    return bytes.fromhex(text)


def context(j: dict[str, Any]) -> s.AadContext:
    ctx = s.AadContext(x(j["group"]), x(j["author"]), j["seq"], j["kind"])
    # 12.4 EV2, byte by byte
    aad = ctx.group + ctx.author + ctx.seq.to_bytes(8, "big") + ctx.kind.to_bytes(2, "big")
    assert ctx.aad() == aad == x(j["aad"])
    return ctx


def failure(exc: BaseException) -> str:
    assert isinstance(exc, DecodeError | SealError), type(exc)
    return exc.code.value


def test_every_type_is_consumed_and_the_revision_is_6() -> None:
    assert {v["type"] for v in DOC["vectors"]} <= HANDLED
    assert DOC["revision"] == 6


def test_constants() -> None:
    (c,) = of("constants")
    assert (c["envelope_version"], c["epoch_id_size"], c["nonce_size"]) == (1, 8, 12)
    assert (c["secret_size"], c["slot_size"], c["max_context_size"]) == (32, 48, 1024)
    assert c["max_plaintext_size"] == s.MAX_PLAINTEXT_SIZE
    assert c["max_body_size"] == MAX_BODY_SIZE
    assert c["labels"] == {
        "epoch_id": s.LABEL_EPOCH_ID,
        "epoch_key": s.LABEL_EPOCH_KEY,
        "slot_ephemeral": s.LABEL_SLOT_EPHEMERAL,
        "slot": s.LABEL_SLOT,
        "pointers": s.LABEL_POINTERS,
        "keyring_key": kr.LABEL_KEYRING_KEY,
        "genesis_fields": LABEL_GENESIS_FIELDS,
    }
    assert len(set(c["labels"].values())) == len(c["labels"])
    assert x(c["epoch_id_namespace"]) == crypto.blake2b_256(c["labels"]["epoch_id"].encode())
    assert (c["keyring_magic"], c["keyring_version"]) == (kr.KEYRING_MAGIC, kr.KEYRING_VERSION)
    assert c["keyring_max_entries"] == kr.MAX_ENTRIES


@pytest.mark.parametrize("v", of("padding"), ids=lambda v: v["name"])
def test_padding(v: dict[str, Any]) -> None:
    plaintext = encode(bytes(v["zeros"]))
    assert len(plaintext) == v["size"]
    assert s.padme_length(v["size"]) == v["padme"] == v["padded_size"]
    padded = s.pad(plaintext)
    assert padded == plaintext + bytes(v["padded_size"] - v["size"])
    assert s.unpad(padded) == plaintext


@pytest.mark.parametrize("v", of("unpad"), ids=lambda v: v["name"])
def test_unpad_refusals(v: dict[str, Any]) -> None:
    with pytest.raises(SealError) as info:
        s.unpad(x(v["padded"]))
    assert failure(info.value) == v["fail"]


@pytest.mark.parametrize("v", of("envelope"), ids=lambda v: v["name"])
def test_envelope(v: dict[str, Any]) -> None:
    ctx = context(v["context"])
    key, eid, nonce, plaintext = (x(v[k]) for k in ("key", "epoch_id", "nonce", "plaintext"))
    assert s.pad(plaintext) == x(v["padded"])
    body = x(v["body"])
    assert s.seal_body(key, eid, nonce, ctx, plaintext) == body
    # 12.4 EV1 from the primitives
    assert body == encode([1, eid, nonce, crypto.aead_seal(key, nonce, ctx.aad(), x(v["padded"]))])
    assert s.open_body(key, body, ctx) == plaintext
    env = s.decode_envelope(body)
    assert (env.epoch_id, env.nonce) == (eid, nonce)


@pytest.mark.parametrize("v", of("envelope-open"), ids=lambda v: v["name"])
def test_envelope_refusals(v: dict[str, Any]) -> None:
    with pytest.raises((DecodeError, SealError)) as info:
        s.open_body(x(v["key"]), x(v["body"]), context(v["context"]))
    assert failure(info.value) == v["fail"]


@pytest.mark.parametrize("v", of("slots"), ids=lambda v: v["name"])
def test_slots(v: dict[str, Any]) -> None:
    secret, group, ctx = x(v["secret"]), x(v["group"]), x(v["context"])
    eph = crypto.hkdf_sha256(b"", secret, b"p2pcomm/1/slot-ephemeral")  # 12.5 SK1
    assert s.slot_ephemeral(secret) == eph == x(v["eph_private"])
    assert crypto.x25519_public(eph) == x(v["eph_pub"])
    recipients = [x(r["public"]) for r in v["recipients"]]
    for r in v["recipients"]:
        assert crypto.x25519_public(x(r["private"])) == x(r["public"])
    rekey = s.seal_slots(secret, recipients, group, ctx)
    assert rekey.eph_pub == x(v["eph_pub"])
    assert [rekey.slot(i).hex() for i in range(rekey.count)] == v["slots"]
    for i, public in enumerate(recipients):  # 12.5 SK2, SK3 from the primitives
        info = (
            b"p2pcomm/1/slot" + group + len(ctx).to_bytes(2, "big") + ctx + rekey.eph_pub + public
        )
        key = crypto.hkdf_sha256(b"", crypto.x25519_dh(eph, public), info)
        assert crypto.aead_seal(key, bytes(12), b"", secret).hex() == v["slots"][i]
    assert s.verify_slots(secret, recipients, rekey, group, ctx) == []
    for trial in v["trials"]:
        private = x(trial["private"])
        if trial["opens"] is None:
            with pytest.raises(SealError) as failed:
                s.open_slot(private, None, rekey, group, ctx)
            assert failure(failed.value) == "decrypt-failed"
            continue
        assert s.open_slot(private, trial["opens"], rekey, group, ctx) == secret
        assert s.open_slot(private, None, rekey, group, ctx) == secret
        for other in range(rekey.count):
            if other != trial["opens"]:
                with pytest.raises(SealError):
                    s.open_slot(private, other, rekey, group, ctx)


@pytest.mark.parametrize("v", of("slots-verify"), ids=lambda v: v["name"])
def test_slots_verify(v: dict[str, Any]) -> None:
    rekey = s.Rekey(x(v["eph_pub"]), x(v["slots"]))
    recipients = [x(r) for r in v["recipients"]]
    found = s.verify_slots(x(v["secret"]), recipients, rekey, x(v["group"]), x(v["context"]))
    assert found == v["bad"]


@pytest.mark.parametrize("v", of("pointers"), ids=lambda v: v["name"])
def test_pointers(v: dict[str, Any]) -> None:
    secret, blob = x(v["secret"]), x(v["blob"])
    if "fail" in v:
        with pytest.raises((DecodeError, SealError)) as info:
            s.open_pointers(secret, blob)
        assert failure(info.value) == v["fail"]
        return
    previous = [x(p) for p in v["previous"]]
    assert s.seal_pointers(secret, previous) == blob
    key = crypto.hkdf_sha256(b"", secret, b"p2pcomm/1/pointers")  # 12.6 PT1
    assert crypto.aead_open(key, bytes(12), b"", blob) == b"".join(previous)
    assert s.open_pointers(secret, blob) == previous


@pytest.mark.parametrize("v", of("epoch"), ids=lambda v: v["name"])
def test_epoch(v: dict[str, Any]) -> None:
    group = x(v["group"])
    frontier = [(x(f["entry_id"]), x(f["secret"])) for f in v["frontier"]]
    ids = sorted(e for e, _ in frontier)
    ns = crypto.namespace("p2pcomm/1/epoch-id")  # 12.7 EK1
    assert crypto.blake2b_256(ns + group + b"".join(ids))[:8] == x(v["epoch_id"])
    assert s.epoch_id(group, [e for e, _ in frontier]) == x(v["epoch_id"])
    ikm = b"".join(dict(frontier)[e] for e in ids)  # 12.7 EK2
    assert crypto.hkdf_sha256(x(v["epoch_id"]), ikm, b"p2pcomm/1/epoch-key" + group) == x(v["key"])
    assert s.epoch_key(group, frontier) == x(v["key"])


def test_epoch_vectors_show_order_independence_and_pairing() -> None:
    by_name = {v["name"]: v for v in of("epoch")}
    two, rev, swapped = (
        by_name[n] for n in ("epoch-two", "epoch-two-reversed", "epoch-two-secrets-swapped")
    )
    assert (two["epoch_id"], two["key"]) == (rev["epoch_id"], rev["key"])
    assert swapped["epoch_id"] == two["epoch_id"] and swapped["key"] != two["key"]
    assert by_name["epoch-one"]["key"] != two["key"]


@pytest.mark.parametrize("v", of("keyring"), ids=lambda v: v["name"])
def test_keyring(v: dict[str, Any]) -> None:
    seed, key, nonce = x(v["seed"]), x(v["key"]), x(v["nonce"])
    assert crypto.hkdf_sha256(b"", seed, b"p2pcomm/1/keyring-key") == key  # 12.8 KR1
    assert kr.keyring_key(seed) == key
    ring = kr.Keyring()
    for pair in v["ring"]["receive_keys"]:
        assert ring.add_receive_key(x(pair["private"])) == x(pair["public"])
    for pair in v["ring"]["epoch_secrets"]:
        ring.add_secret(x(pair["entry_id"]), x(pair["secret"]))
    blob = x(v["blob"])
    assert kr.seal_keyring(ring, key, nonce) == blob
    # 12.8 KR2 from the primitives
    ad = encode(["p2pcomm-keyring", 1])
    ciphertext = crypto.aead_seal(key, nonce, ad, x(v["plaintext"]))
    assert blob == encode(["p2pcomm-keyring", 1, nonce, ciphertext])
    assert decode(x(v["plaintext"])) == [
        1,
        [x(p["private"]) for p in v["ring"]["receive_keys"]],
        [[x(p["entry_id"]), x(p["secret"])] for p in v["ring"]["epoch_secrets"]],
    ]
    opened = kr.open_keyring(blob, key)
    assert opened == ring


@pytest.mark.parametrize("v", of("keyring-open"), ids=lambda v: v["name"])
def test_keyring_refusals(v: dict[str, Any]) -> None:
    with pytest.raises(SealError) as info:
        kr.open_keyring(x(v["blob"]), x(v["key"]))
    assert failure(info.value) == v["fail"]


CHAPTER = (Path(__file__).resolve().parents[2] / "spec" / "12-encryption.md").read_text()


def test_the_worked_envelope_in_the_chapter_is_the_vector() -> None:
    block = CHAPTER.split("`envelope-hello`) is 60 bytes:\n\n```\n", 1)[1].split("```", 1)[0]
    (v,) = [v for v in of("envelope") if v["name"] == "envelope-hello"]
    assert "".join(block.split()) == v["body"]
    assert len(x(v["body"])) == 60


def test_the_label_table_lists_every_label_of_the_code() -> None:
    section = CHAPTER.split("## 12.2", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(p2pcomm/1/[a-z-]+)`", section, re.MULTILINE))
    used = {
        value
        for module in (s, kr, epochs)
        for name, value in vars(module).items()
        if name.startswith("LABEL_")
    }
    assert used == listed
    ns = crypto.namespace(s.LABEL_EPOCH_ID).hex()
    assert f"namespace `{ns}`" in section
