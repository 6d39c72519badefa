"""The implementation against ``spec/vectors/*.json`` (STYLE.md habit 13).

Two kinds of test live here:

1. The vector files on disk are exactly what ``tools/gen_vectors.py`` writes, and a file
   exists for every chapter whose generator module exists.
2. Each vector file is read back as a second implementation would read it, and the
   library is checked against it: values decode and encode, failures raise the named
   ``ErrorCode``, member ids parse, signatures verify, entries decode and obey the
   rules, histories end with the stated valid set (through ``Ingestor``, in several
   arrival orders), and fork proofs verify.

Where the library is known to differ from the spec, the vector is listed in
``KNOWN_DEVIATIONS`` with the reason: such a test reports XFAIL (shown by ``-ra``), and
fails once the library conforms, so the entry gets removed. Nothing is skipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import sys
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core import crypto
from p2pcomm.core.encoding import DEFAULT_LIMITS, Limits, decode, decode_canonical, encode
from p2pcomm.core.identity import NS_ENTRY, NS_HANDSHAKE, NS_ID_CHECKSUM, KeyPair, MemberId
from p2pcomm.core.identity import verify as identity_verify
from p2pcomm.core.invitation import NS_INVITATION_CODE, NS_INVITATION_KEY, NS_JOIN
from p2pcomm.core.log import (
    ENTRY_LIMITS,
    HEADER_LIMITS,
    KIND_GENESIS,
    LOG_VERSION,
    MAX_BODY_SIZE,
    MAX_LINKS,
    MAX_U63,
    ZERO_ID,
    Entry,
    EntryMeta,
    ForkProof,
    Header,
    Ingestor,
    check_entry,
    decode_entry,
    decode_fork_proof,
    decode_header,
    encode_entry,
    encode_fork_proof,
    encode_header,
    entry_id,
    verify_fork_proof,
    verify_signature,
)
from p2pcomm.errors import (
    DecodeError,
    ErrorCode,
    IdentityError,
    P2PCommError,
    ValidationError,
)
from p2pcomm.keys import load_keypair

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "spec" / "vectors"
SPEC_REVISION = 6

sys.path.insert(0, str(ROOT / "tools"))
import gen_vectors  # noqa: E402

#: "<file>:<vector name>" -> why the library does not (yet) do what the vector says.
KNOWN_DEVIATIONS: dict[str, str] = {
}


@contextmanager
def conformance(file: str, name: str) -> Iterator[None]:
    """Run a vector's checks; a known deviation that fails becomes XFAIL."""
    key = f"{file}:{name}"
    reason = KNOWN_DEVIATIONS.get(key)
    if reason is None:
        yield
        return
    try:
        yield
    except (AssertionError, P2PCommError, pytest.fail.Exception) as exc:
        pytest.xfail(f"known deviation from the spec: {reason} [{type(exc).__name__}: {exc}]")
    pytest.fail(f"{key} now conforms to the spec: remove it from KNOWN_DEVIATIONS")


def load_document(file: str) -> dict[str, Any] | None:
    path = VECTORS / file
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def params(file: str, *types: str) -> list[Any]:
    """One pytest param per vector of the given types; a single ``None`` param (which
    fails) when the file is missing."""
    doc = load_document(file)
    if doc is None:
        return [pytest.param(None, id=f"{file}-is-missing")]
    return [pytest.param(v, id=v["name"]) for v in doc["vectors"] if v["type"] in types]


def require(vector: dict[str, Any] | None, file: str) -> dict[str, Any]:
    if vector is None:
        pytest.fail(f"spec/vectors/{file} is missing; run: python tools/gen_vectors.py")
    return vector


def h(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


CODES = {c.value for c in ErrorCode}

# ============================================================ 1. files are up to date


def test_vector_files_match_generators() -> None:
    files = gen_vectors.build(note=lambda _: None)
    assert gen_vectors.differences(files) == []


@pytest.mark.parametrize("chapter", gen_vectors.CHAPTERS, ids=lambda c: c.file)
def test_vector_file_exists_iff_generator_exists(chapter: gen_vectors.Chapter) -> None:
    module = gen_vectors.load_generator(chapter)
    path = VECTORS / chapter.file
    if module is None:
        assert not path.exists(), f"{chapter.file} has no generator ({chapter.module}.py)"
        return
    assert path.exists(), f"{chapter.file} is missing; run: python tools/gen_vectors.py"
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc["description"], str) and doc["description"]
    assert isinstance(doc["revision"], int)
    names = [v["name"] for v in doc["vectors"]]
    assert len(names) == len(set(names)), "vector names must be unique within a file"
    for v in doc["vectors"]:
        assert isinstance(v.get("type"), str), v["name"]
        if "fail" in v:
            assert v["fail"] in CODES, f"{v['name']}: {v['fail']!r} is not an ErrorCode value"


HANDLED_TYPES = {
    "encoding.json": {"limits", "value", "structure"},
    "identity.json": {"constants", "namespace", "keypair", "id-text", "signature", "key-file"},
    "log.json": {
        "constants",
        "authors",
        "entry",
        "header-decode",
        "entry-decode",
        "entry-check",
        "entry-signature",
        "history",
        "fork-proof",
    },
}


@pytest.mark.parametrize("file", sorted(HANDLED_TYPES))
def test_every_vector_is_consumed(file: str) -> None:
    doc = load_document(file)
    assert doc is not None, f"spec/vectors/{file} is missing"
    assert doc["revision"] == SPEC_REVISION
    unknown = {v["type"] for v in doc["vectors"]} - HANDLED_TYPES[file]
    assert not unknown, f"{file} has vector types no test reads: {sorted(unknown)}"


# ============================================================ 2a. encoding.json


def from_json(tagged: dict[str, Any]) -> Any:
    ((tag, x),) = tagged.items()
    if tag == "nil":
        return None
    if tag == "bool":
        return x
    if tag == "int":
        return int(x)
    if tag == "bin":
        return bytes.fromhex(x)
    if tag == "str":
        return x
    if tag == "array":
        return [from_json(item) for item in x]
    raise AssertionError(f"unknown tag {tag!r}")


def same(a: Any, b: Any) -> bool:
    """Equality that tells bool from int and bytes from str."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("vector", params("encoding.json", "limits"))
def test_encoding_default_limits(vector: dict[str, Any] | None) -> None:
    v = require(vector, "encoding.json")
    assert v["limits"] == {
        "max_size": DEFAULT_LIMITS.max_size,
        "max_bytes": DEFAULT_LIMITS.max_bytes,
        "max_array": DEFAULT_LIMITS.max_array,
        "max_depth": DEFAULT_LIMITS.max_depth,
    }


@pytest.mark.parametrize("vector", params("encoding.json", "value"))
def test_encoding_value(vector: dict[str, Any] | None) -> None:
    v = require(vector, "encoding.json")
    data = hx(v["encoded"])
    if "fail" in v:
        limits = Limits(**v["limits"]) if "limits" in v else DEFAULT_LIMITS
        with pytest.raises(DecodeError) as info:
            decode(data, limits)
        with conformance("encoding.json", v["name"]):
            assert info.value.code.value == v["fail"]
        return
    value = from_json(v["value"])
    assert same(decode(data), value)
    assert encode(value) == data
    # Every proper prefix is truncated; one more byte is trailing data.
    for cut in range(len(data)):
        with pytest.raises(DecodeError) as info:
            decode(data[:cut])
        assert info.value.code is ErrorCode.TRUNCATED, cut
    with pytest.raises(DecodeError) as info:
        decode(data + b"\xc0")
    assert info.value.code is ErrorCode.TRAILING_DATA


@pytest.mark.parametrize("vector", params("encoding.json", "structure"))
def test_encoding_structure(vector: dict[str, Any] | None) -> None:
    v = require(vector, "encoding.json")
    if "fail" not in v:
        # Accepted by D1 to D3: an array nesting exactly ``depth`` deep.
        value: Any = decode_canonical(hx(v["encoded"]))
        depth = 0
        while isinstance(value, list):
            depth, value = depth + 1, value[0]
        assert depth == v["depth"]
        return
    with pytest.raises(DecodeError) as info:
        decode_canonical(hx(v["encoded"]))
    assert info.value.code.value == v["fail"]


# ============================================================ 2b. identity.json


@pytest.mark.parametrize("vector", params("identity.json", "constants"))
def test_identity_constants(vector: dict[str, Any] | None) -> None:
    c = require(vector, "identity.json")["constants"]
    assert c["PUBLIC_KEY_SIZE"] == crypto.PUBLIC_KEY_SIZE
    assert c["SEED_SIZE"] == crypto.SEED_SIZE
    assert c["SIGNATURE_SIZE"] == crypto.SIGNATURE_SIZE
    text = KeyPair(bytes(32)).id.text()
    assert text.startswith(c["ID_TEXT_PREFIX"])
    assert len(text) == c["ID_TEXT_LENGTH"]
    raw = base64.b32decode(text[len(c["ID_TEXT_PREFIX"]) :].upper())
    assert len(raw) == c["PUBLIC_KEY_SIZE"] + c["ID_CHECKSUM_SIZE"]


NAMESPACE_CONSTANTS = {
    "p2pcomm/1/entry": NS_ENTRY,
    "p2pcomm/1/handshake": NS_HANDSHAKE,
    "p2pcomm/1/id-checksum": NS_ID_CHECKSUM,
    "p2pcomm/1/join": NS_JOIN,
    "p2pcomm/1/invitation-key": NS_INVITATION_KEY,
    "p2pcomm/1/invitation-code": NS_INVITATION_CODE,
}


@pytest.mark.parametrize("vector", params("identity.json", "namespace"))
def test_identity_namespace(vector: dict[str, Any] | None) -> None:
    v = require(vector, "identity.json")
    expected = hx(v["namespace"])
    assert hashlib.blake2b(v["label"].encode("ascii"), digest_size=32).digest() == expected
    assert crypto.namespace(v["label"]) == expected
    assert NAMESPACE_CONSTANTS[v["label"]] == expected


@pytest.mark.parametrize("vector", params("identity.json", "keypair"))
def test_identity_keypair(vector: dict[str, Any] | None) -> None:
    v = require(vector, "identity.json")
    pk = hx(v["public_key"])
    kp = KeyPair(hx(v["seed"]))
    assert kp.public_key == pk
    assert kp.seed() == hx(v["seed"])
    ns = hashlib.blake2b(b"p2pcomm/1/id-checksum", digest_size=32).digest()
    checksum = hashlib.blake2b(ns + pk, digest_size=32).digest()[:3]
    assert checksum == hx(v["checksum"])
    assert v["id_text"] == "pc1" + base64.b32encode(pk + checksum).decode().lower()
    assert kp.id.text() == v["id_text"]
    assert MemberId.parse(v["id_text"]) == MemberId(pk)


@pytest.mark.parametrize("vector", params("identity.json", "id-text"))
def test_identity_id_text(vector: dict[str, Any] | None) -> None:
    v = require(vector, "identity.json")
    with conformance("identity.json", v["name"]):
        if "fail" in v:
            with pytest.raises(IdentityError) as info:
                MemberId.parse(v["text"])
            assert info.value.code.value == v["fail"]
        else:
            assert MemberId.parse(v["text"]).raw == hx(v["public_key"])


@pytest.mark.parametrize("vector", params("identity.json", "signature"))
def test_identity_signature(vector: dict[str, Any] | None) -> None:
    v = require(vector, "identity.json")
    pk, message, sig = hx(v["public_key"]), hx(v["message"]), hx(v["signature"])
    valid = v.get("valid", False)
    assert valid is ("fail" not in v)
    assert crypto.ed25519_verify(pk, message, sig) is valid
    if "namespace_label" in v:
        ns = crypto.namespace(v["namespace_label"])
        assert message == ns + hx(v["data"])
        assert identity_verify(pk, ns, hx(v["data"]), sig) is valid


@pytest.mark.parametrize("vector", params("identity.json", "key-file"))
def test_identity_key_file(vector: dict[str, Any] | None, tmp_path: Path) -> None:
    v = require(vector, "identity.json")
    path = tmp_path / "member.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(hx(v["file"]))
    os.chmod(path, int(v["mode"], 8))
    if "fail" in v:
        with pytest.raises(IdentityError) as info:
            load_keypair(path, passphrase=v["passphrase"])
        assert info.value.code.value == v["fail"]
        return
    assert load_keypair(path, passphrase=v["passphrase"]).seed() == hx(v["seed"])
    if "aead_key" in v:
        # The construction, step by step (spec/02-identity.md, key files).
        s = v["scrypt"]
        key = hashlib.scrypt(
            v["passphrase"].encode("utf-8"),
            salt=hx(v["salt"]),
            n=1 << s["log2_n"],
            r=s["r"],
            p=s["p"],
            dklen=32,
        )
        assert key == hx(v["aead_key"])
        fields = decode(hx(v["file"]))
        assert isinstance(fields, list)
        assert encode(fields[:7]) == hx(v["associated_data"])
        assert crypto.aead_decrypt(key, 0, hx(v["associated_data"]), fields[7]) == hx(v["seed"])


# ============================================================ 2c. log.json


@pytest.mark.parametrize("vector", params("log.json", "constants"))
def test_log_constants(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    c = v["constants"]
    assert c["LOG_VERSION"] == LOG_VERSION
    assert c["KIND_GENESIS"] == KIND_GENESIS
    assert c["MAX_LINKS"] == MAX_LINKS
    assert c["MAX_BODY_SIZE"] == MAX_BODY_SIZE
    assert c["MAX_SEQ"] == c["MAX_TIMESTAMP"] == MAX_U63
    assert hx(c["NS_ENTRY"]) == NS_ENTRY
    assert hx(c["ZERO_ID"]) == ZERO_ID
    for name, limits in (("header", HEADER_LIMITS), ("entry", ENTRY_LIMITS)):
        assert Limits(**v["limits"][name]) == limits


@pytest.mark.parametrize("vector", params("log.json", "authors"))
def test_log_authors(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    for name, pk in v["authors"].items():
        seed = hashlib.blake2b(b"p2pcomm test key " + name.encode(), digest_size=32).digest()
        assert KeyPair(seed).public_key == hx(pk)


def header_from_json(j: dict[str, Any]) -> Header:
    return Header(
        j["version"],
        hx(j["group"]),
        hx(j["author"]),
        j["seq"],
        h(j["prev"]),
        tuple(hx(x) for x in j["links"]),
        j["timestamp"],
        j["kind"],
        hx(j["body_hash"]),
        j["body_size"],
    )


@pytest.mark.parametrize("vector", params("log.json", "entry"))
def test_log_entry(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    header = header_from_json(v["header"])
    header_bytes = hx(v["header_bytes"])
    eid = hx(v["id"])
    assert encode_header(header) == header_bytes
    assert decode_header(header_bytes) == header
    assert hashlib.blake2b(header_bytes, digest_size=32).digest() == eid == entry_id(header_bytes)
    assert hx(v["signable"]) == NS_ENTRY + eid
    assert crypto.ed25519_verify(header.author, hx(v["signable"]), hx(v["signature"]))
    body = h(v["body"])
    if body is not None:
        assert hashlib.blake2b(body, digest_size=32).digest() == header.body_hash
        assert len(body) == header.body_size
    e = decode_entry(hx(v["encoded"]))
    assert e == Entry(eid, header, header_bytes, hx(v["signature"]), body)
    assert encode_entry(e) == hx(v["encoded"])
    assert encode_entry(e, with_body=False) == hx(v["encoded_without_body"])
    assert decode_entry(hx(v["encoded_without_body"])) == e.without_body()
    assert verify_signature(e)
    check_entry(e, hx(v["group"]))


@pytest.mark.parametrize("vector", params("log.json", "header-decode"))
def test_log_header_decode_fails(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    header_bytes = hx(v["header_bytes"])
    with pytest.raises(DecodeError) as info:
        decode_header(header_bytes)
    assert info.value.code.value == v["fail"]
    # The same header inside an otherwise correct entry fails the same way.
    wrapped = encode([header_bytes, bytes(64), None])
    with pytest.raises(DecodeError) as info:
        decode_entry(wrapped)
    assert info.value.code.value == v["fail"]


@pytest.mark.parametrize("vector", params("log.json", "entry-decode"))
def test_log_entry_decode_fails(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    with pytest.raises(DecodeError) as info:
        decode_entry(hx(v["encoded"]))
    assert info.value.code.value == v["fail"]


@pytest.mark.parametrize("vector", params("log.json", "entry-check"))
def test_log_entry_check_fails(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    e = decode_entry(hx(v["encoded"]))
    assert e.id == hx(v["id"])
    assert verify_signature(e), "stateless vectors are correctly signed"
    with pytest.raises(ValidationError) as info:
        check_entry(e, hx(v["group"]))
    assert info.value.code.value == v["fail"]


@pytest.mark.parametrize("vector", params("log.json", "entry-signature"))
def test_log_entry_signature_fails(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    assert v["fail"] == ErrorCode.BAD_SIGNATURE.value
    e = decode_entry(hx(v["encoded"]))
    assert e.id == hx(v["id"])
    check_entry(e, hx(v["group"]))
    assert not verify_signature(e)
    assert not crypto.ed25519_verify(e.author, NS_ENTRY + e.id, e.signature)


class DictView:
    """A LogView over a dict of accepted entries (what a store would hold)."""

    def __init__(self) -> None:
        self.entries: dict[bytes, Entry] = {}

    def entry_meta(self, eid: bytes) -> EntryMeta | None:
        e = self.entries.get(eid)
        return None if e is None else EntryMeta(e.author, e.seq, e.header.timestamp)

    def ids_at(self, author: bytes, seq: int) -> Sequence[bytes]:
        return [e.id for e in self.entries.values() if e.author == author and e.seq == seq]

    def max_seq(self, author: bytes) -> int:
        return max((e.seq for e in self.entries.values() if e.author == author), default=0)

    def get_signed_header(self, eid: bytes) -> tuple[bytes, bytes] | None:
        e = self.entries.get(eid)
        return None if e is None else (e.header_bytes, e.signature)


class Replica:
    """An Ingestor over a DictView; stores what it accepts, as the caller must."""

    def __init__(self, group: bytes, max_pending: int) -> None:
        self.view = DictView()
        self.ingestor = Ingestor(group, self.view, max_pending=max_pending)
        self.rejected: dict[bytes, set[str]] = {}
        self.forks: list[ForkProof] = []

    def offer(self, entries: Sequence[Entry], *, verify_each: bool) -> set[tuple[bytes, str]]:
        result = self.ingestor.ingest(entries, verify_each=verify_each)
        for e in result.accepted:
            assert e.id not in self.view.entries
            self.view.entries[e.id] = e
        for eid, signature in result.signatures:  # a verifying copy replaces a bad one
            self.view.entries[eid] = self.view.entries[eid]._replace(signature=signature)
        self.forks += result.forks
        rejected = {(r.entry_id, r.error.code.value) for r in result.rejected}
        for eid, code in rejected:
            self.rejected.setdefault(eid, set()).add(code)
        return rejected

    @property
    def valid(self) -> set[bytes]:
        return set(self.view.entries)

    @property
    def final_forks(self) -> list[str]:
        """The proof held per fork id at the end (a later proof of a fork replaces an
        earlier one, 03 F1), encoded, sorted."""
        return sorted({p.key(): encode_fork_proof(p).hex() for p in self.forks}.values())


def schedules(n: int, seed: int) -> Iterator[tuple[str, list[list[int]], bool]]:
    """Other arrival orders: bulk, reversed, and seeded shuffles in random batches."""
    yield "bulk", [list(range(n))], False
    yield "bulk-verify-each", [list(range(n))], True
    yield "reversed-one-by-one", [[i] for i in reversed(range(n))], True
    rng = random.Random(seed)
    for k in range(6):
        order = list(range(n))
        rng.shuffle(order)
        batches: list[list[int]] = []
        while order:
            size = rng.randint(1, max(1, len(order)))
            batches.append(order[:size])
            order = order[size:]
        yield f"shuffle-{k}", batches, bool(k % 2)


@pytest.mark.parametrize("vector", params("log.json", "history"))
def test_log_history(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    group = hx(v["group"])
    max_pending = v.get("max_pending", 50_000)
    items = [(it["label"], decode_entry(hx(it["encoded"]))) for it in v["entries"]]
    for (label, e), it in zip(items, v["entries"], strict=True):
        assert e.id == hx(it["id"]), label
    ids = {label: e.id for label, e in items}
    expected_valid = {hx(x) for x in v["valid"]}
    expected_forks = sorted(v["forks"])

    with conformance("log.json", v["name"]):
        # One at a time in the listed order, every signature checked.
        r = Replica(group, max_pending)
        rejected_by_label: dict[str, set[tuple[bytes, str]]] = {}
        for label, e in items:
            rejected_by_label[label] = r.offer([e], verify_each=True)
        assert r.valid == expected_valid
        pending = set(r.ingestor.pending_ids())
        for label, state in v["expected"].items():
            eid = ids[label]
            if state == "valid":
                assert eid in r.valid, f"{label} should be valid"
            elif state == "pending":
                assert eid in pending, f"{label} should be pending"
                assert eid not in r.valid
            else:
                assert state in r.rejected.get(eid, set()), f"{label} should fail with {state}"
                assert eid not in r.valid and eid not in pending
        for rej in v["rejections"]:
            assert (ids[rej["label"]], rej["fail"]) in rejected_by_label[rej["label"]]
        assert r.final_forks == expected_forks
        for p in r.forks:
            assert verify_fork_proof(p, group) == (p.author, p.seq)

        # Agreement: any order and batching gives the same valid set and the same fork
        # proofs, byte for byte.
        if v["order_independent"]:
            seed = zlib.crc32(v["name"].encode())
            for name, batches, verify_each in schedules(len(items), seed=seed):
                r = Replica(group, max_pending)
                for batch in batches:
                    r.offer([items[i][1] for i in batch], verify_each=verify_each)
                assert r.valid == expected_valid, name
                assert r.final_forks == expected_forks, name


@pytest.mark.parametrize("vector", params("log.json", "fork-proof"))
def test_log_fork_proof(vector: dict[str, Any] | None) -> None:
    v = require(vector, "log.json")
    data, group = hx(v["encoded"]), hx(v["group"])
    with conformance("log.json", v["name"]):
        if "fail" in v:
            with pytest.raises(P2PCommError) as info:
                verify_fork_proof(decode_fork_proof(data), group)
            assert info.value.code.value == v["fail"]
            expected_type = ValidationError if v["fail"] == "bad-fork-proof" else DecodeError
            assert isinstance(info.value, expected_type)
            return
        proof = decode_fork_proof(data)
        assert encode_fork_proof(proof) == data
        assert [entry_id(proof.a.headers[0]).hex(), entry_id(proof.b.headers[0]).hex()] == v[
            "first_ids"
        ]
        assert verify_fork_proof(proof, group) == (hx(v["author"]), v["seq"])
