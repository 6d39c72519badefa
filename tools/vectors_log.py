"""Vectors for spec/03-log.md: entries, the stateless and contextual rules, chain
authentication, histories with their valid sets, and fork proofs.

Entries are built field by field here (not with ``create_entry``, which sorts links and
refuses rule-breaking entries) so that each negative vector breaks exactly one rule and
is otherwise correctly signed. Keys come from fixed seeds (tools/vectors_identity.py),
timestamps are fixed, and Ed25519 is deterministic, so the output never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from vectors_identity import test_key

from p2pcomm.core import crypto
from p2pcomm.core.identity import NS_ENTRY, KeyPair
from p2pcomm.core.log import (
    ENTRY_LIMITS,
    HEADER_LIMITS,
    KIND_GENESIS,
    LOG_VERSION,
    MAX_BODY_SIZE,
    MAX_LINKS,
    MAX_U63,
    ZERO_ID,
    AuthenticatedRun,
    Entry,
    ForkProof,
    Header,
    encode_entry,
    encode_fork_proof,
    encode_header,
    entry_id,
)

REVISION = 6

Json = dict[str, Any]

#: 2026-11-23T00:00:00Z in milliseconds: the first timestamp of every history.
T0 = 1_795_392_000_000
#: The kind of the non-genesis entries in these vectors. The log layer gives no meaning
#: to kinds other than 0; this one is chosen outside anything chapter 04 assigns.
KIND_TEST = 0x8000
GROUP_BODY = b"p2pcomm test group"

ALICE = test_key("alice")
BOB = test_key("bob")
CAROL = test_key("carol")
DAVE = test_key("dave")
AUTHORS = {"alice": ALICE, "bob": BOB, "carol": CAROL, "dave": DAVE}


def _pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def fake_id(label: str) -> bytes:
    """An id no entry has: BLAKE2b-256 of ``"p2pcomm test missing " + label``."""
    return crypto.blake2b_256(b"p2pcomm test missing " + label.encode())


def corrupt(signature: bytes) -> bytes:
    """The signature with the lowest bit of its first byte (in R) flipped."""
    return bytes([signature[0] ^ 0x01]) + signature[1:]


def build(
    kp: KeyPair,
    *,
    group: bytes,
    seq: int,
    prev: bytes | None,
    links: Sequence[bytes] = (),
    ts: int,
    kind: int = KIND_TEST,
    body: bytes = b"",
    body_hash: bytes | None = None,
    body_size: int | None = None,
    send_body: bool = True,
    bad_signature: bool = False,
) -> Entry:
    """An entry exactly as described: links are kept in the order given."""
    header = Header(
        LOG_VERSION,
        group,
        kp.public_key,
        seq,
        prev,
        tuple(links),
        ts,
        kind,
        crypto.blake2b_256(body) if body_hash is None else body_hash,
        len(body) if body_size is None else body_size,
    )
    header_bytes = encode_header(header)
    eid = entry_id(header_bytes)
    signature = kp.sign(NS_ENTRY, eid)
    if bad_signature:
        signature = corrupt(signature)
    return Entry(eid, header, header_bytes, signature, body if send_body else None)


def genesis(kp: KeyPair = ALICE, ts: int = T0, body: bytes = GROUP_BODY) -> Entry:
    return build(kp, group=ZERO_ID, seq=1, prev=None, ts=ts, kind=KIND_GENESIS, body=body)


G0 = genesis()
G = G0.id


def header_json(h: Header) -> Json:
    return {
        "version": h.version,
        "group": h.group.hex(),
        "author": h.author.hex(),
        "seq": h.seq,
        "prev": None if h.prev is None else h.prev.hex(),
        "links": [x.hex() for x in h.links],
        "timestamp": h.timestamp,
        "kind": h.kind,
        "body_hash": h.body_hash.hex(),
        "body_size": h.body_size,
    }


def entry_json(e: Entry, group: bytes, name: str, description: str, **extra: Any) -> Json:
    v: Json = {
        "type": "entry",
        "name": name,
        "description": description,
        "group": group.hex(),
        "header": header_json(e.header),
        "header_bytes": e.header_bytes.hex(),
        "id": e.id.hex(),
        "signable": (NS_ENTRY + e.id).hex(),
        "signature": e.signature.hex(),
        "body": None if e.body is None else e.body.hex(),
        "encoded": encode_entry(e).hex(),
        "encoded_without_body": encode_entry(e, with_body=False).hex(),
    }
    v.update(extra)
    return v


# --------------------------------------------------------------------------- entries


def _entry_vectors() -> list[Json]:
    b1 = build(BOB, group=G, seq=1, prev=None, links=[G], ts=T0 + 1000, body=b"bob: hello")
    a2 = build(ALICE, group=G, seq=2, prev=G, links=[b1.id], ts=T0 + 2000)
    b2 = build(
        BOB,
        group=G,
        seq=2,
        prev=b1.id,
        links=[a2.id],
        ts=T0 + 3000,
        body=b"bob: this body travels separately",
        send_body=False,
    )
    many = sorted(fake_id(f"link {i}") for i in range(MAX_LINKS))
    c1 = build(CAROL, group=G, seq=1, prev=None, links=many, ts=T0 + 4000, body=b"carol: hi")
    big = build(
        DAVE,
        group=G,
        seq=2,
        prev=fake_id("dave 1"),
        ts=T0 + 5000,
        body=bytes(MAX_BODY_SIZE),
        send_body=False,
    )
    extreme = build(
        DAVE, group=G, seq=MAX_U63, prev=fake_id("dave max - 1"), ts=MAX_U63, kind=0xFFFF, body=b""
    )
    return [
        entry_json(
            G0,
            G,
            "entry-genesis",
            "alice's genesis entry: kind 0, group 32 zero bytes, "
            "sequence 1, no prev, no links; its id is the group id",
        ),
        entry_json(
            b1,
            G,
            "entry-first-of-author",
            "bob's first entry: sequence 1, no prev, links to the genesis",
        ),
        entry_json(
            a2,
            G,
            "entry-empty-body",
            "alice's second entry: prev is the genesis, "
            "the body is empty (hash of zero bytes, size 0)",
        ),
        entry_json(
            b2,
            G,
            "entry-without-body",
            "bob's second entry sent without its body "
            "(nil); body_hash and body_size still describe the body "
            "'bob: this body travels separately'",
        ),
        entry_json(
            c1,
            G,
            "entry-max-links",
            f"carol's first entry with {MAX_LINKS} links "
            "(MAX_LINKS), strictly ascending; stateless rules only (the linked ids "
            "are made up)",
        ),
        entry_json(
            big,
            G,
            "entry-max-body-size",
            f"a header describing a body of "
            f"{MAX_BODY_SIZE} zero bytes (MAX_BODY_SIZE), sent without it",
        ),
        entry_json(
            extreme,
            G,
            "entry-max-values",
            "sequence and timestamp 2^63-1, kind 65535: the largest values a header may hold",
        ),
    ]


# --------------------------------------------------------------------------- decoding


HEADER_FIELDS = [
    "version",
    "group",
    "author",
    "seq",
    "prev",
    "links",
    "timestamp",
    "kind",
    "body_hash",
    "body_size",
]


def _header_fields(**changes: Any) -> list[Any]:
    base = [
        LOG_VERSION,
        G,
        BOB.public_key,
        2,
        fake_id("bob 1"),
        [G],
        T0 + 1000,
        KIND_TEST,
        crypto.blake2b_256(b""),
        0,
    ]
    for k, v in changes.items():
        base[HEADER_FIELDS.index(k)] = v
    return base


def _header_with(position: str, raw: bytes) -> bytes:
    """The default header with the field at ``position`` replaced by the bytes ``raw``."""
    fields = [_pack(f) for f in _header_fields()]
    fields[HEADER_FIELDS.index(position)] = raw
    return b"\x9a" + b"".join(fields)


def _header_decode_vectors() -> list[Json]:
    ok = _pack(_header_fields())
    cases: list[tuple[str, str, bytes, str]] = [
        ("header-version-2", "version 2", _pack(_header_fields(version=2)), "unknown-version"),
        ("header-version-0", "version 0", _pack(_header_fields(version=0)), "unknown-version"),
        ("header-9-fields", "body_size missing", _pack(_header_fields()[:9]), "wrong-length"),
        (
            "header-11-fields",
            "an extra eleventh field",
            _pack([*_header_fields(), 0]),
            "wrong-length",
        ),
        ("header-not-array", "a bin where the header array belongs", _pack(b"\x01"), "wrong-type"),
        (
            "header-group-31",
            "group of 31 bytes",
            _pack(_header_fields(group=G[:31])),
            "wrong-length",
        ),
        (
            "header-group-33",
            "group of 33 bytes (longer than any bin a header may hold)",
            _pack(_header_fields(group=G + b"\x00")),
            "too-large",
        ),
        (
            "header-author-str",
            "author as str",
            _pack(_header_fields(author="x" * 32)),
            "wrong-type",
        ),
        ("header-seq-0", "sequence 0", _pack(_header_fields(seq=0)), "out-of-range"),
        ("header-seq-negative", "sequence -1", _pack(_header_fields(seq=-1)), "out-of-range"),
        ("header-seq-2^63", "sequence 2^63", _pack(_header_fields(seq=2**63)), "out-of-range"),
        ("header-seq-bool", "sequence true", _pack(_header_fields(seq=True)), "wrong-type"),
        ("header-prev-31", "prev of 31 bytes", _pack(_header_fields(prev=G[:31])), "wrong-length"),
        ("header-prev-false", "prev false", _pack(_header_fields(prev=False)), "wrong-type"),
        ("header-links-nil", "links nil", _pack(_header_fields(links=None)), "wrong-type"),
        (
            "header-links-17",
            f"{MAX_LINKS + 1} links",
            _pack(_header_fields(links=sorted(fake_id(f"l{i}") for i in range(MAX_LINKS + 1)))),
            "too-large",
        ),
        (
            "header-link-31",
            "a link of 31 bytes",
            _pack(_header_fields(links=[G[:31]])),
            "wrong-length",
        ),
        (
            "header-timestamp-float",
            "timestamp as float 64",
            _pack(_header_fields(timestamp=float(T0))),
            "wrong-type",
        ),
        (
            "header-timestamp-2^63",
            "timestamp 2^63",
            _pack(_header_fields(timestamp=2**63)),
            "out-of-range",
        ),
        (
            "header-timestamp-negative",
            "timestamp -1",
            _pack(_header_fields(timestamp=-1)),
            "out-of-range",
        ),
        ("header-kind-65536", "kind 65536", _pack(_header_fields(kind=65536)), "out-of-range"),
        (
            "header-body-hash-31",
            "body_hash of 31 bytes",
            _pack(_header_fields(body_hash=bytes(31))),
            "wrong-length",
        ),
        (
            "header-body-size-too-big",
            f"body_size {MAX_BODY_SIZE + 1}",
            _pack(_header_fields(body_size=MAX_BODY_SIZE + 1)),
            "out-of-range",
        ),
        (
            "header-links-map",
            "an empty map where links belong",
            _header_with("links", b"\x80"),
            "forbidden-type",
        ),
        (
            "header-non-canonical-seq",
            "sequence 2 written as uint 16",
            _header_with("seq", b"\xcd\x00\x02"),
            "not-canonical",
        ),
        ("header-trailing", "one byte after the header", ok + b"\x00", "trailing-data"),
        ("header-truncated", "the header without its last byte", ok[:-1], "truncated"),
        (
            "header-too-large",
            f"{HEADER_LIMITS.max_size + 1} bytes",
            ok + bytes(HEADER_LIMITS.max_size + 1 - len(ok)),
            "too-large",
        ),
    ]
    return [
        {"type": "header-decode", "name": n, "description": d, "header_bytes": b.hex(), "fail": f}
        for n, d, b, f in cases
    ]


def _entry_decode_vectors() -> list[Json]:
    b1 = build(BOB, group=G, seq=1, prev=None, links=[G], ts=T0 + 1000, body=b"bob: hello")
    hb, sig, body = b1.header_bytes, b1.signature, b1.body
    ok = _pack([hb, sig, body])
    bin16_header = b"\x93\xc5" + len(hb).to_bytes(2, "big") + hb + _pack(sig) + _pack(body)
    cases: list[tuple[str, str, bytes, str]] = [
        ("entry-2-fields", "no body field", _pack([hb, sig]), "wrong-length"),
        ("entry-4-fields", "an extra field", _pack([hb, sig, body, None]), "too-large"),
        ("entry-not-array", "a bin where the entry array belongs", _pack(hb), "wrong-type"),
        (
            "entry-header-array",
            "the header as a nested array of 10 items instead of its "
            "encoding (bin): more items than the entry limits allow in any array",
            _pack([list(b1.header), sig, body]),
            "too-large",
        ),
        (
            "entry-header-int",
            "an integer where the header's encoding (bin) belongs",
            _pack([1, sig, body]),
            "wrong-type",
        ),
        (
            "entry-signature-63",
            "signature of 63 bytes",
            _pack([hb, sig[:63], body]),
            "wrong-length",
        ),
        ("entry-signature-nil", "signature nil", _pack([hb, None, body]), "wrong-type"),
        ("entry-body-str", "body as str", _pack([hb, sig, "bob: hello"]), "wrong-type"),
        (
            "entry-header-too-long",
            "header field of 1025 bytes",
            _pack([hb + bytes(HEADER_LIMITS.max_size + 1 - len(hb)), sig, body]),
            "too-large",
        ),
        (
            "entry-non-canonical",
            "the header written as bin 16 although bin 8 fits",
            bin16_header,
            "not-canonical",
        ),
        ("entry-trailing", "one byte after the entry", ok + b"\x00", "trailing-data"),
        ("entry-truncated", "the entry without its last byte", ok[:-1], "truncated"),
        ("entry-map", "an empty map", b"\x80", "forbidden-type"),
        (
            "entry-bad-header",
            "a well-formed entry array whose header has version 2",
            _pack([_pack(_header_fields(version=2)), sig, None]),
            "unknown-version",
        ),
    ]
    return [
        {"type": "entry-decode", "name": n, "description": d, "encoded": b.hex(), "fail": f}
        for n, d, b, f in cases
    ]


# --------------------------------------------------------------------------- stateless


def _check_vectors() -> list[Json]:
    other_group = fake_id("another group")
    b1 = build(BOB, group=G, seq=1, prev=None, links=[G], ts=T0 + 1000)
    lo, hi = sorted([G, fake_id("x")])
    cases: list[tuple[str, str, Entry, bytes, str]] = [
        (
            "check-wrong-group",
            "bob's entry names another group",
            build(BOB, group=other_group, seq=1, prev=None, links=[G], ts=T0 + 1000),
            G,
            "wrong-group",
        ),
        (
            "check-other-genesis",
            "a correct genesis, but of another group (its id is not the group id)",
            genesis(ts=T0 + 1),
            G,
            "wrong-group",
        ),
        (
            "check-genesis-links",
            "a genesis with a link",
            build(
                ALICE,
                group=ZERO_ID,
                seq=1,
                prev=None,
                links=[fake_id("x")],
                ts=T0,
                kind=KIND_GENESIS,
            ),
            G,
            "bad-genesis",
        ),
        (
            "check-genesis-group",
            "a kind-0 entry whose group is not 32 zero bytes",
            build(ALICE, group=G, seq=1, prev=None, ts=T0, kind=KIND_GENESIS),
            G,
            "bad-genesis",
        ),
        (
            "check-genesis-seq-2",
            "a kind-0 entry with sequence 2",
            build(ALICE, group=ZERO_ID, seq=2, prev=G, ts=T0 + 1, kind=KIND_GENESIS),
            G,
            "bad-genesis",
        ),
        (
            "check-first-with-prev",
            "sequence 1 with a prev",
            build(BOB, group=G, seq=1, prev=fake_id("x"), links=[G], ts=T0 + 1000),
            G,
            "bad-previous",
        ),
        (
            "check-second-without-prev",
            "sequence 2 without a prev",
            build(BOB, group=G, seq=2, prev=None, links=[G], ts=T0 + 2000),
            G,
            "bad-previous",
        ),
        (
            "check-links-unsorted",
            "links in descending order",
            build(BOB, group=G, seq=1, prev=None, links=[hi, lo], ts=T0 + 1000),
            G,
            "bad-links",
        ),
        (
            "check-links-duplicate",
            "the same link twice",
            build(BOB, group=G, seq=1, prev=None, links=[G, G], ts=T0 + 1000),
            G,
            "bad-links",
        ),
        (
            "check-links-include-prev",
            "prev repeated among the links",
            build(BOB, group=G, seq=2, prev=b1.id, links=[b1.id], ts=T0 + 2000),
            G,
            "bad-links",
        ),
        (
            "check-first-without-links",
            "an author's first (non-genesis) entry with no links",
            build(BOB, group=G, seq=1, prev=None, ts=T0 + 1000),
            G,
            "bad-links",
        ),
        (
            "check-body-hash",
            "a body of the declared size whose hash differs",
            build(
                BOB,
                group=G,
                seq=1,
                prev=None,
                links=[G],
                ts=T0 + 1000,
                body=b"hello",
                body_hash=crypto.blake2b_256(b"jello"),
            ),
            G,
            "body-mismatch",
        ),
        (
            "check-body-size",
            "a body with the declared hash but not the declared size",
            build(
                BOB, group=G, seq=1, prev=None, links=[G], ts=T0 + 1000, body=b"hello", body_size=6
            ),
            G,
            "body-mismatch",
        ),
    ]
    genesis_prev = build(ALICE, group=ZERO_ID, seq=1, prev=fake_id("x"), ts=T0, kind=KIND_GENESIS)
    cases.append(
        (
            "check-genesis-prev",
            "a kind-0 entry with a prev, checked as the genesis of its own group",
            genesis_prev,
            genesis_prev.id,
            "bad-previous",
        )
    )
    return [
        {
            "type": "entry-check",
            "name": n,
            "description": d,
            "group": group.hex(),
            "id": e.id.hex(),
            "encoded": encode_entry(e).hex(),
            "fail": f,
        }
        for n, d, e, group, f in cases
    ]


def _signature_vectors() -> list[Json]:
    b1 = build(
        BOB,
        group=G,
        seq=1,
        prev=None,
        links=[G],
        ts=T0 + 1000,
        body=b"bob: hello",
        bad_signature=True,
    )
    return [
        {
            "type": "entry-signature",
            "name": "signature-corrupt",
            "description": "bob's first entry with one bit of R flipped: well-formed, its own "
            "signature does not verify",
            "group": G.hex(),
            "id": b1.id.hex(),
            "encoded": encode_entry(b1).hex(),
            "fail": "bad-signature",
        },
        {
            "type": "entry-signature",
            "name": "signature-by-other-key",
            "description": "bob's header signed (correctly) by carol",
            "group": G.hex(),
            "id": b1.id.hex(),
            "encoded": encode_entry(b1._replace(signature=CAROL.sign(NS_ENTRY, b1.id))).hex(),
            "fail": "bad-signature",
        },
        {
            "type": "entry-signature",
            "name": "signature-without-namespace",
            "description": "bob signed the bare id, without NS_ENTRY",
            "group": G.hex(),
            "id": b1.id.hex(),
            "encoded": encode_entry(b1._replace(signature=BOB.sign_raw(b1.id))).hex(),
            "fail": "bad-signature",
        },
    ]


# --------------------------------------------------------------------------- histories


@dataclass
class Item:
    label: str
    entry: Entry
    state: str  # "valid", "pending" or an error code: the entry's final state
    note: str = ""


def history(
    name: str,
    description: str,
    items: list[Item],
    *,
    forks: Sequence[ForkProof] = (),
    rejections: Sequence[tuple[str, str]] = (),
    order_independent: bool = True,
    max_pending: int | None = None,
    diagram: str | None = None,
) -> Json:
    v: Json = {
        "type": "history",
        "name": name,
        "description": description,
        "group": G.hex(),
        "entries": [
            {
                "label": it.label,
                "id": it.entry.id.hex(),
                "author": next(n for n, k in AUTHORS.items() if k.public_key == it.entry.author),
                "seq": it.entry.seq,
                "encoded": encode_entry(it.entry).hex(),
                **({"note": it.note} if it.note else {}),
            }
            for it in items
        ],
        "expected": {it.label: it.state for it in items},
        "valid": sorted({it.entry.id.hex() for it in items if it.state == "valid"}),
        "forks": [encode_fork_proof(p).hex() for p in forks],
        "rejections": [{"label": label, "fail": code} for label, code in rejections],
        "order_independent": order_independent,
    }
    if max_pending is not None:
        v["max_pending"] = max_pending
    if diagram is not None:
        v["diagram"] = diagram.strip("\n").split("\n")
    return v


MAIN_DIAGRAM = r"""
        t0    t1    t2    t3    t4    t5    t6    t7    t8    t9    t10   t11
alice   a1 -------- a2 -------------------- a3 -------------------- a4
bob           b1 -------------- b2 -------------- b3* - b4
carol                     c1 -------- c2 -------------------- c3 -------- c4*

----   prev: each entry names the author's previous one (the hash chain)
links: b1->a1  a2->b1  c1->a2,b1  b2->c1  a3->b2,c2  b4->a3  c3->b4  a4->c3  c4->a4
*      the entry's own signature does not verify
b3*    authentic: b4 (good signature) names it as prev, so it is valid
c4*    nothing names it as prev: not authentic, pending
"""


def _main_history() -> Json:
    t = [T0 + 1000 * i for i in range(12)]
    a1 = G0
    b1 = build(BOB, group=G, seq=1, prev=None, links=[a1.id], ts=t[1], body=b"bob 1")
    a2 = build(ALICE, group=G, seq=2, prev=a1.id, links=[b1.id], ts=t[2], body=b"alice 2")
    c1 = build(
        CAROL, group=G, seq=1, prev=None, links=sorted([a2.id, b1.id]), ts=t[3], body=b"carol 1"
    )
    b2 = build(
        BOB, group=G, seq=2, prev=b1.id, links=[c1.id], ts=t[4], body=b"bob 2", send_body=False
    )
    c2 = build(CAROL, group=G, seq=2, prev=c1.id, ts=t[5], body=b"carol 2")
    a3 = build(
        ALICE, group=G, seq=3, prev=a2.id, links=sorted([b2.id, c2.id]), ts=t[6], body=b"alice 3"
    )
    b3 = build(BOB, group=G, seq=3, prev=b2.id, ts=t[7], body=b"bob 3", bad_signature=True)
    b4 = build(BOB, group=G, seq=4, prev=b3.id, links=[a3.id], ts=t[8], body=b"bob 4")
    c3 = build(CAROL, group=G, seq=3, prev=c2.id, links=[b4.id], ts=t[9], body=b"carol 3")
    a4 = build(ALICE, group=G, seq=4, prev=a3.id, links=[c3.id], ts=t[10], body=b"alice 4")
    c4 = build(
        CAROL,
        group=G,
        seq=4,
        prev=c3.id,
        links=[a4.id],
        ts=t[11],
        body=b"carol 4",
        bad_signature=True,
    )
    return history(
        "history-main",
        "genesis and three authors, 12 entries; b2 arrives without its body; b3's signature "
        "is bad but b4 vouches for it; c4's signature is bad and nothing vouches for it",
        [
            Item("a1", a1, "valid", "genesis"),
            Item("b1", b1, "valid"),
            Item("a2", a2, "valid"),
            Item("c1", c1, "valid"),
            Item("b2", b2, "valid", "sent without its body"),
            Item("c2", c2, "valid"),
            Item("a3", a3, "valid"),
            Item("b3", b3, "valid", "bad signature, authenticated by b4"),
            Item("b4", b4, "valid"),
            Item("c3", c3, "valid"),
            Item("a4", a4, "valid"),
            Item("c4", c4, "pending", "bad signature, nothing vouches for it"),
        ],
        diagram=MAIN_DIAGRAM,
    )


def _bob_chain(n: int, bad: Sequence[int] = (), **overrides: Any) -> list[Entry]:
    """bob's entries 1..n in the group of G0 (bob 1 links to the genesis)."""
    out: list[Entry] = []
    prev = None
    for seq in range(1, n + 1):
        kw: dict[str, Any] = {
            "group": G,
            "seq": seq,
            "prev": prev,
            "links": [G] if seq == 1 else [],
            "ts": T0 + 1000 * seq,
            "body": f"bob {seq}".encode(),
            "bad_signature": seq in bad,
        }
        kw.update(overrides.get(f"bob{seq}", {}))
        e = build(BOB, **kw)
        out.append(e)
        prev = e.id
    return out


def _chain_auth_histories() -> list[Json]:
    out = []
    b = _bob_chain(3, bad=[2])
    out.append(
        history(
            "chain-vouched",
            "bob 2's signature is bad; bob 3 (good signature) names it as prev, "
            "so bob 2 is authentic and valid",
            [
                Item("a1", G0, "valid"),
                Item("b1", b[0], "valid"),
                Item("b2", b[1], "valid", "bad signature"),
                Item("b3", b[2], "valid"),
            ],
        )
    )
    b = _bob_chain(3, bad=[3])
    out.append(
        history(
            "chain-last-bad",
            "bob 3, the last of the run, has a bad signature: it stays pending",
            [
                Item("a1", G0, "valid"),
                Item("b1", b[0], "valid"),
                Item("b2", b[1], "valid"),
                Item("b3", b[2], "pending", "bad signature, nothing after it"),
            ],
        )
    )
    b = _bob_chain(4, bad=[2, 3])
    out.append(
        history(
            "chain-two-bad",
            "bob 2 and bob 3 have bad signatures; bob 4 authenticates both",
            [
                Item("a1", G0, "valid"),
                Item("b1", b[0], "valid"),
                Item("b2", b[1], "valid"),
                Item("b3", b[2], "valid"),
                Item("b4", b[3], "valid"),
            ],
        )
    )
    b = _bob_chain(2, bad=[1])
    out.append(
        history(
            "chain-first-bad",
            "bob's first entry has a bad signature; bob 2 authenticates it",
            [
                Item("a1", G0, "valid"),
                Item("b1", b[0], "valid", "bad signature"),
                Item("b2", b[1], "valid"),
            ],
        )
    )
    b = _bob_chain(3, bad=[2], bob3={"ts": T0 + 1500})
    out.append(
        history(
            "chain-voucher-invalid",
            "bob 3 has a good signature but a timestamp before bob 2's: "
            "it is invalid (bad-timestamp), yet it still authenticates bob 2",
            [
                Item("a1", G0, "valid"),
                Item("b1", b[0], "valid"),
                Item("b2", b[1], "valid", "bad signature"),
                Item("b3", b[2], "bad-timestamp", "authentic but invalid"),
            ],
        )
    )
    lo, hi = sorted([G, fake_id("x")])
    b = _bob_chain(3, bad=[2], bob3={"links": [hi, lo]})
    out.append(
        history(
            "chain-voucher-malformed",
            "bob 3 has a good signature but breaks a stateless rule "
            "(links unsorted): a malformed entry vouches for nothing, so bob 2 stays pending",
            [
                Item("a1", G0, "valid"),
                Item("b1", b[0], "valid"),
                Item("b2", b[1], "pending", "bad signature"),
                Item("b3", b[2], "bad-links", "malformed"),
            ],
        )
    )
    good = _bob_chain(2)
    bad_copy = good[1]._replace(signature=corrupt(good[1].signature))
    out.append(
        history(
            "chain-resent-good-signature",
            "bob 2 first arrives with a corrupted signature, then "
            "with its real one: the header is authentic once any copy's signature verifies",
            [
                Item("a1", G0, "valid"),
                Item("b1", good[0], "valid"),
                Item("b2-corrupt", bad_copy, "valid", "same header, corrupted signature"),
                Item("b2", good[1], "valid", "same header, its real signature"),
            ],
        )
    )
    return out


def _context_histories() -> list[Json]:
    out = []
    b1 = _bob_chain(1)[0]
    base = [Item("a1", G0, "valid"), Item("b1", b1, "valid")]

    def bob(
        seq: int, prev: bytes | None, ts: int, links: Sequence[bytes] = (), body: bytes = b""
    ) -> Entry:
        return build(BOB, group=G, seq=seq, prev=prev, links=links, ts=ts, body=body)

    x = bob(3, b1.id, T0 + 3000)
    out.append(
        history(
            "context-bad-sequence",
            "bob's entry names bob 1 as prev but has sequence 3",
            [*base, Item("b3", x, "bad-sequence")],
        )
    )
    x = bob(2, G, T0 + 2000)
    out.append(
        history(
            "context-prev-other-author",
            "bob's second entry names alice's genesis as prev",
            [*base, Item("b2", x, "bad-previous")],
        )
    )
    x = bob(2, b1.id, T0 + 999)
    out.append(
        history(
            "context-timestamp-backwards",
            "bob 2's timestamp is 1 ms before bob 1's",
            [*base, Item("b2", x, "bad-timestamp")],
        )
    )
    x = bob(2, b1.id, T0 + 1000)
    out.append(
        history(
            "context-timestamp-equal",
            "bob 2's timestamp equals bob 1's (allowed)",
            [*base, Item("b2", x, "valid")],
        )
    )
    b2 = bob(2, b1.id, T0 + 2000)
    x = bob(3, b2.id, T0 + 3000, links=[b1.id])
    out.append(
        history(
            "context-link-own-entry",
            "bob 3 links to bob 1, an entry of its own author",
            [*base, Item("b2", b2, "valid"), Item("b3", x, "bad-links")],
        )
    )
    bad = bob(3, b1.id, T0 + 3000)  # bad-sequence
    after = bob(4, bad.id, T0 + 4000)
    c1 = build(CAROL, group=G, seq=1, prev=None, links=[bad.id], ts=T0 + 5000)
    out.append(
        history(
            "context-depends-on-invalid",
            "bob 3 is invalid (bad-sequence); bob's next entry "
            "names it as prev and carol's first entry links to it: both are invalid",
            [
                *base,
                Item("bx", bad, "bad-sequence"),
                Item("by", after, "bad-previous"),
                Item("c1", c1, "bad-links"),
            ],
        )
    )
    d1 = build(DAVE, group=G, seq=1, prev=None, links=[fake_id("never sent")], ts=T0 + 6000)
    d2 = build(DAVE, group=G, seq=2, prev=d1.id, ts=T0 + 7000)
    out.append(
        history(
            "context-missing-dependency",
            "dave 1 links to an entry nobody has: dave 1 and dave 2 wait (pending)",
            [Item("a1", G0, "valid"), Item("d1", d1, "pending"), Item("d2", d2, "pending")],
        )
    )
    c1 = build(CAROL, group=G, seq=1, prev=None, links=[G], ts=T0 + 1000)
    other_g = genesis(ts=T0 + 1)
    d1 = build(DAVE, group=G, seq=1, prev=None, links=[other_g.id], ts=T0 + 2000)
    out.append(
        history(
            "context-link-other-group",
            "dave 1 links to the genesis of another group: that entry "
            "can never be part of this group (wrong-group), so dave 1 is invalid",
            [
                Item("a1", G0, "valid"),
                Item("c1", c1, "valid"),
                Item("g2", other_g, "wrong-group"),
                Item("d1", d1, "bad-links"),
            ],
        )
    )
    good = bob(2, b1.id, T0 + 2000, body=b"bob 2")
    wrong_body = good._replace(body=b"bob 3")
    header_only = good.without_body()
    out.append(
        history(
            "context-body-mismatch-copy",
            "bob 2 arrives with a body that does not match its "
            "header (that copy is refused, body-mismatch), then without a body: it is valid",
            [
                *base,
                Item("b2-wrong-body", wrong_body, "valid", "same header, wrong body"),
                Item("b2", header_only, "valid", "same header, no body"),
            ],
            rejections=[("b2-wrong-body", "body-mismatch")],
        )
    )
    d1 = build(DAVE, group=G, seq=1, prev=None, links=[fake_id("missing 1")], ts=T0 + 1000)
    c1 = build(CAROL, group=G, seq=1, prev=None, links=[fake_id("missing 2")], ts=T0 + 1000)
    out.append(
        history(
            "context-pending-full",
            "max_pending 1: dave 1 waits for a missing entry and fills the "
            "pending set; carol 1, which must wait too, is refused for now (pending-full)",
            [Item("a1", G0, "valid"), Item("d1", d1, "pending"), Item("c1", c1, "pending-full")],
            rejections=[("c1", "pending-full")],
            order_independent=False,
            max_pending=1,
        )
    )
    return out


def run_of(*entries: Entry) -> AuthenticatedRun:
    return AuthenticatedRun(
        headers=tuple(e.header_bytes for e in entries), signature=entries[-1].signature
    )


def fork_proof(a: AuthenticatedRun, b: AuthenticatedRun) -> ForkProof:
    """A proof with its runs in canonical order (ascending id of the first header)."""
    if entry_id(a.headers[0]) > entry_id(b.headers[0]):
        a, b = b, a
    return ForkProof(a=a, b=b)


@dataclass
class Forks:
    simple: ForkProof
    run: ForkProof
    genesis: ForkProof
    b2: Entry
    b2x: Entry
    b3x: Entry
    b1: Entry


def _forks() -> tuple[Forks, list[Json]]:
    b1, b2 = _bob_chain(2)
    b2y = build(BOB, group=G, seq=2, prev=b1.id, ts=T0 + 2000, body=b"bob 2, other branch")
    c1 = build(CAROL, group=G, seq=1, prev=None, links=[b2y.id], ts=T0 + 3000)
    simple = fork_proof(run_of(b2), run_of(b2y))
    b2x = build(
        BOB,
        group=G,
        seq=2,
        prev=b1.id,
        ts=T0 + 2000,
        body=b"bob 2, hidden branch",
        bad_signature=True,
    )
    b3x = build(BOB, group=G, seq=3, prev=b2x.id, ts=T0 + 3000, body=b"bob 3, hidden branch")
    run = fork_proof(run_of(b2), run_of(b2x, b3x))
    a1x = build(
        ALICE, group=G, seq=1, prev=None, links=[b1.id], ts=T0 + 2000, body=b"alice 1 again"
    )
    gen = fork_proof(run_of(G0), run_of(a1x))
    b3x_early = build(BOB, group=G, seq=3, prev=b2x.id, ts=T0 + 1000, body=b"bob 3, too early")
    voucher_invalid = fork_proof(run_of(b2), run_of(b2x, b3x_early))
    b2x_genuine = b2x._replace(signature=BOB.sign(NS_ENTRY, b2x.id))
    genuine = fork_proof(run_of(b2), run_of(b2x_genuine))
    b2z = build(BOB, group=G, seq=2, prev=b1.id, ts=T0 + 2000, body=b"bob 2, third entry")
    three = sorted(
        (fork_proof(run_of(x), run_of(y)) for x, y in ((b2, b2y), (b2, b2z), (b2y, b2z))),
        key=lambda p: p.key(),
    )
    histories = [
        history(
            "fork-simple",
            "bob signs two different entries with sequence 2; both stay valid, "
            "carol links to one of them, and the replica produces a fork proof",
            [
                Item("a1", G0, "valid"),
                Item("b1", b1, "valid"),
                Item("b2", b2, "valid"),
                Item("b2y", b2y, "valid", "second branch"),
                Item("c1", c1, "valid", "links to the second branch"),
            ],
            forks=[simple],
        ),
        history(
            "fork-chain-authenticated",
            "the second branch's entry at the fork has a bad "
            "signature and is authenticated by its successor: still a fork, and the proof "
            "carries a run of two headers",
            [
                Item("a1", G0, "valid"),
                Item("b1", b1, "valid"),
                Item("b2", b2, "valid"),
                Item("b2x", b2x, "valid", "bad signature, second branch"),
                Item("b3x", b3x, "valid", "vouches for b2x"),
            ],
            forks=[run],
        ),
        history(
            "fork-voucher-invalid",
            "the second branch's entry at the fork has a bad signature; its successor is "
            "signed but its timestamp is before it (bad-timestamp). A successor that breaks "
            "a contextual rule still vouches (3.9), so bob 2' is valid and a fork, and the "
            "proof's run is bob 2', bob 3' although bob 3' is never stored (F1)",
            [
                Item("a1", G0, "valid"),
                Item("b1", b1, "valid"),
                Item("b2", b2, "valid"),
                Item("b2x", b2x, "valid", "bad signature, second branch"),
                Item("b3x-early", b3x_early, "bad-timestamp", "vouches for b2x"),
            ],
            forks=[voucher_invalid],
        ),
        history(
            "fork-genuine-copy-later",
            "bob 2' arrives first with a bad signature and is valid through bob 3'; its "
            "genuine copy arrives last. The replica keeps the verifying signature (A1, 3.12 "
            "step 2) and the proof of the fork is the canonical one, with a one-header run "
            "for bob 2' (F1), as if the genuine copy had come first",
            [
                Item("a1", G0, "valid"),
                Item("b1", b1, "valid"),
                Item("b2", b2, "valid"),
                Item("b2x", b2x, "valid", "bad signature, second branch"),
                Item("b3x", b3x, "valid", "vouches for b2x"),
                Item("b2x-genuine", b2x_genuine, "valid", "the same entry, genuine signature"),
            ],
            forks=[genuine],
        ),
        history(
            "fork-three-entries",
            "bob signs three different entries with sequence 2: one proof per pair (F1)",
            [
                Item("a1", G0, "valid"),
                Item("b1", b1, "valid"),
                Item("b2", b2, "valid"),
                Item("b2y", b2y, "valid", "second entry"),
                Item("b2z", b2z, "valid", "third entry"),
            ],
            forks=three,
        ),
        history(
            "fork-genesis",
            "alice, the founder, signs a second entry with sequence 1: a fork "
            "with the genesis itself",
            [
                Item("a1", G0, "valid"),
                Item("b1", b1, "valid"),
                Item("a1x", a1x, "valid", "alice's second sequence-1 entry"),
            ],
            forks=[gen],
        ),
    ]
    return Forks(simple, run, gen, b2, b2x, b3x, b1), histories


def _fork_proof_vectors(f: Forks) -> list[Json]:
    def ok(name: str, description: str, proof: ForkProof, author: KeyPair, seq: int) -> Json:
        return {
            "type": "fork-proof",
            "name": name,
            "description": description,
            "group": G.hex(),
            "encoded": encode_fork_proof(proof).hex(),
            "author": author.public_key.hex(),
            "seq": seq,
            "first_ids": [entry_id(proof.a.headers[0]).hex(), entry_id(proof.b.headers[0]).hex()],
        }

    def bad(name: str, description: str, data: bytes, code: str, group: bytes = G) -> Json:
        return {
            "type": "fork-proof",
            "name": name,
            "description": description,
            "group": group.hex(),
            "encoded": data.hex(),
            "fail": code,
        }

    simple = f.simple
    b3 = _bob_chain(3)[2]  # bob 3 on the first branch: its prev is bob 2, not b2x
    g2 = genesis(ts=T0 + 1)
    bob_other_group = build(BOB, group=g2.id, seq=2, prev=f.b1.id, ts=T0 + 2000)
    cross = fork_proof(run_of(f.b2), run_of(bob_other_group))
    c1 = build(CAROL, group=G, seq=2, prev=fake_id("carol 1"), ts=T0 + 2000)
    enc = encode_fork_proof(simple)
    bad_sig = ForkProof(
        a=simple.a,
        b=AuthenticatedRun(headers=simple.b.headers, signature=corrupt(simple.b.signature)),
    )
    return [
        ok(
            "fork-proof-simple",
            "two runs of one header each, each with its own signature",
            simple,
            BOB,
            2,
        ),
        ok(
            "fork-proof-run",
            "one run of two headers: the first header's signature is bad, the "
            "second header (signed) names it as prev",
            f.run,
            BOB,
            2,
        ),
        ok(
            "fork-proof-genesis",
            "a fork with the genesis entry, whose group field is zero: its group is its own id",
            f.genesis,
            ALICE,
            1,
        ),
        bad(
            "fork-proof-bad-signature",
            "one bit of a run's signature flipped",
            encode_fork_proof(bad_sig),
            "bad-fork-proof",
        ),
        bad(
            "fork-proof-same-header",
            "the same header twice",
            encode_fork_proof(ForkProof(a=simple.a, b=simple.a)),
            "bad-fork-proof",
        ),
        bad(
            "fork-proof-different-seq",
            "bob 1 and bob 2",
            encode_fork_proof(fork_proof(run_of(f.b1), run_of(f.b2))),
            "bad-fork-proof",
        ),
        bad(
            "fork-proof-different-author",
            "bob 2 and carol 2",
            encode_fork_proof(fork_proof(run_of(f.b2), run_of(c1))),
            "bad-fork-proof",
        ),
        bad(
            "fork-proof-other-group",
            "a correct proof, checked against another group",
            enc,
            "bad-fork-proof",
            group=g2.id,
        ),
        bad(
            "fork-proof-cross-group",
            "bob's sequence-2 entries in two different groups are not a fork",
            encode_fork_proof(cross),
            "bad-fork-proof",
        ),
        bad(
            "fork-proof-broken-chain",
            "a run whose second header does not name the first as prev",
            encode_fork_proof(fork_proof(run_of(f.b2), run_of(f.b2x, b3))),
            "bad-fork-proof",
        ),
        bad(
            "fork-proof-signature-of-first",
            "a run of two headers signed with the first header's signature instead of the last's",
            encode_fork_proof(
                fork_proof(
                    run_of(f.b2),
                    AuthenticatedRun(
                        headers=(f.b2x.header_bytes, f.b3x.header_bytes),
                        signature=BOB.sign(NS_ENTRY, f.b2x.id),
                    ),
                )
            ),
            "bad-fork-proof",
        ),
        bad(
            "fork-proof-empty-run",
            "a run with no header",
            _pack([1, [[], simple.a.signature], [list(simple.b.headers), simple.b.signature]]),
            "wrong-length",
        ),
        bad(
            "fork-proof-version-2",
            "version 2",
            _pack(
                [
                    2,
                    [list(simple.a.headers), simple.a.signature],
                    [list(simple.b.headers), simple.b.signature],
                ]
            ),
            "unknown-version",
        ),
        bad(
            "fork-proof-version-2-four-items",
            "version 2 with a fourth item: the version is checked before the item count (01 T1)",
            _pack(
                [
                    2,
                    [list(simple.a.headers), simple.a.signature],
                    [list(simple.b.headers), simple.b.signature],
                    0,
                ]
            ),
            "unknown-version",
        ),
        bad(
            "fork-proof-version-1-four-items",
            "version 1 with a fourth item",
            _pack(
                [
                    1,
                    [list(simple.a.headers), simple.a.signature],
                    [list(simple.b.headers), simple.b.signature],
                    0,
                ]
            ),
            "wrong-length",
        ),
        bad(
            "fork-proof-non-canonical",
            "version 1 written as uint 8",
            b"\x93\xcc\x01" + enc[2:],
            "not-canonical",
        ),
        bad("fork-proof-trailing", "one byte after the proof", enc + b"\x00", "trailing-data"),
        bad(
            "fork-proof-bad-header",
            "a run header that is not a header (version 2)",
            _pack(
                [
                    1,
                    [[_pack(_header_fields(version=2))], simple.a.signature],
                    [list(simple.b.headers), simple.b.signature],
                ]
            ),
            "unknown-version",
        ),
    ]


def _constants() -> Json:
    return {
        "type": "constants",
        "name": "log-constants",
        "description": "constants of the log layer and the limits each structure is decoded with",
        "constants": {
            "LOG_VERSION": LOG_VERSION,
            "KIND_GENESIS": KIND_GENESIS,
            "MAX_KIND": 0xFFFF,
            "MAX_LINKS": MAX_LINKS,
            "MAX_BODY_SIZE": MAX_BODY_SIZE,
            "MAX_SEQ": MAX_U63,
            "MAX_TIMESTAMP": MAX_U63,
            "FORK_PROOF_VERSION": 1,
            "MAX_RUN_HEADERS": 64,
            "NS_ENTRY": NS_ENTRY.hex(),
            "ZERO_ID": ZERO_ID.hex(),
        },
        "limits": {
            "header": _limits(HEADER_LIMITS),
            "entry": _limits(ENTRY_LIMITS),
            "fork_proof": {"max_size": 65536, "max_bytes": 1024, "max_array": 64, "max_depth": 3},
        },
    }


def _limits(limits: Any) -> Json:
    return {
        "max_size": limits.max_size,
        "max_bytes": limits.max_bytes,
        "max_array": limits.max_array,
        "max_depth": limits.max_depth,
    }


def generate() -> dict[str, Any]:
    forks, fork_histories = _forks()
    vectors: list[Json] = [
        _constants(),
        {
            "type": "authors",
            "name": "authors",
            "description": "the test keys used below (seeds as in identity.json)",
            "authors": {n: k.public_key.hex() for n, k in AUTHORS.items()},
        },
    ]
    vectors += _entry_vectors()
    vectors += _header_decode_vectors()
    vectors += _entry_decode_vectors()
    vectors += _check_vectors()
    vectors += _signature_vectors()
    vectors.append(_main_history())
    vectors += _chain_auth_histories()
    vectors += _context_histories()
    vectors += fork_histories
    vectors += _fork_proof_vectors(forks)
    return {
        "description": (
            "p2pcomm group log (spec/03-log.md): signed entries, decoding failures, the "
            "stateless and contextual rules, chain authentication, histories with their valid "
            "sets, and fork proofs"
        ),
        "revision": REVISION,
        "vectors": vectors,
    }
