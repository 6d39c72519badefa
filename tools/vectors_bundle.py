"""Vectors for spec/11-bundle.md: a small bundle with every record type, and files a
reader must refuse (each breaking exactly one framing rule).

The entries and the fork proof are those of tools/vectors_log.py (fixed keys, fixed
timestamps, deterministic Ed25519), so the output never changes. Bundles are put
together here byte by byte with ``struct``, not with ``BundleWriter``, so that the
vectors do not merely repeat the reference writer.
"""

from __future__ import annotations

import struct
from typing import Any

from vectors_log import BOB, G0, T0, G, build, fork_proof, run_of

from p2pcomm.core.log import encode_entry, encode_fork_proof

REVISION = 6

Json = dict[str, Any]

MAGIC = b"\x89p2pcomm\r\n\x1a\n"
VERSION = 1
ENTRY, FORK_PROOF, END = 0x01, 0x02, 0x03
MAX_ENTRY, MAX_FORK_PROOF, END_SIZE = 50352, 65536, 16


def header(group: bytes = G, version: int = VERSION, magic: bytes = MAGIC) -> bytes:
    return magic + struct.pack(">H", version) + group


def record(rtype: int, payload: bytes, length: int | None = None) -> bytes:
    return struct.pack(">BI", rtype, len(payload) if length is None else length) + payload


def end(entries: int, fork_proofs: int) -> bytes:
    return record(END, struct.pack(">QQ", entries, fork_proofs))


B1 = build(BOB, group=G, seq=1, prev=None, links=[G], ts=T0 + 1000, body=b"bob 1")
B2 = build(BOB, group=G, seq=2, prev=B1.id, ts=T0 + 2000, body=b"bob 2")
B2Y = build(BOB, group=G, seq=2, prev=B1.id, ts=T0 + 2000, body=b"bob 2, other branch")
ENTRIES = [G0, B1, B2, B2Y]
BLOBS = [encode_entry(e) for e in ENTRIES]
PROOF = encode_fork_proof(fork_proof(run_of(B2), run_of(B2Y)))
RECORDS = b"".join(record(ENTRY, b) for b in BLOBS) + record(FORK_PROOF, PROOF)
VALID = header() + RECORDS + end(4, 1)


def _events(blobs: list[bytes], proofs: list[tuple[int, bytes]] = (), *, ended: bool) -> list[Json]:
    out: list[Json] = [{"event": "header", "version": VERSION, "group": G.hex()}]
    for i, b in enumerate(blobs):
        out.append({"event": "entry", "index": i, "blob": b.hex()})
    for i, p in proofs:
        out.append({"event": "fork-proof", "index": i, "blob": p.hex()})
    if ended:
        out.append({"event": "end", "entries": len(blobs), "fork_proofs": len(proofs)})
    return out


ALL_EVENTS = _events(BLOBS, [(4, PROOF)], ended=True)


def _valid() -> list[Json]:
    garbage = b"\xc1not an entry"
    return [
        {
            "type": "bundle",
            "name": "bundle-small",
            "description": "alice's genesis, bob's first entry, two different entries of bob "
            "with sequence 2 (a fork), the fork proof, and the end record; in store order",
            "group": G.hex(),
            "bytes": VALID.hex(),
            "events": ALL_EVENTS,
            "entry_ids": [e.id.hex() for e in ENTRIES],
        },
        {
            "type": "bundle",
            "name": "bundle-empty",
            "description": "a header and an end record counting nothing: a valid, empty bundle",
            "group": G.hex(),
            "bytes": (header() + end(0, 0)).hex(),
            "events": _events([], ended=True),
            "entry_ids": [],
        },
        {
            "type": "bundle",
            "name": "bundle-undecodable-record",
            "description": "an entry record whose payload is not an entry: framing is intact, "
            "so the reader reports the record and reads on (R6); the payload's decoding error "
            "is the consumer's to report (malformed)",
            "group": G.hex(),
            "bytes": (
                header() + record(ENTRY, garbage) + record(ENTRY, BLOBS[0]) + end(2, 0)
            ).hex(),
            "events": _events([garbage, BLOBS[0]], ended=True),
            "entry_ids": [None, G0.id.hex()],
        },
    ]


def _fail(name: str, description: str, data: bytes, events: list[Json], *, truncated: bool) -> Json:
    return {
        "type": "bundle-fail",
        "name": name,
        "description": description,
        "bytes": data.hex(),
        "events": events,
        "truncated": truncated,
        "fail": "bad-bundle",
    }


def _failures() -> list[Json]:
    head = _events([], ended=False)
    two = _events(BLOBS[:2], ended=False)
    two_records = header() + record(ENTRY, BLOBS[0]) + record(ENTRY, BLOBS[1])
    return [
        _fail("empty-file", "zero bytes", b"", [], truncated=True),
        _fail(
            "bad-magic",
            "a text file: the first byte already differs from the magic",
            b"p2pcomm bundle\n" + bytes(40),
            [],
            truncated=False,
        ),
        _fail(
            "bad-magic-line-endings",
            "the magic after a CR LF to LF conversion",
            (header() + end(0, 0)).replace(b"\r\n", b"\n"),
            [],
            truncated=False,
        ),
        _fail(
            "unknown-version",
            "format version 2",
            header(version=2) + end(0, 0),
            [],
            truncated=False,
        ),
        _fail(
            "truncated-header",
            "the file ends inside the group id",
            header()[:30],
            [],
            truncated=True,
        ),
        _fail(
            "entry-record-too-large",
            "an entry record declaring 50353 bytes, one more than the entry limit: refused "
            "before the payload is waited for",
            header() + record(ENTRY, b"", length=MAX_ENTRY + 1),
            head,
            truncated=False,
        ),
        _fail(
            "fork-proof-record-too-large",
            "a fork proof record declaring 65537 bytes",
            header() + record(FORK_PROOF, b"", length=MAX_FORK_PROOF + 1),
            head,
            truncated=False,
        ),
        _fail(
            "length-too-large",
            "an entry record declaring 2^32 - 1 bytes",
            header() + record(ENTRY, b"", length=0xFFFFFFFF),
            head,
            truncated=False,
        ),
        _fail(
            "end-record-wrong-length",
            "an end record of 17 bytes",
            header() + record(END, bytes(17)),
            head,
            truncated=False,
        ),
        _fail(
            "unknown-record-type",
            "a record of type 0x04 after two entries",
            two_records + record(0x04, b"\x00") + end(2, 0),
            two,
            truncated=False,
        ),
        _fail(
            "truncated-record",
            "the file ends inside the third entry record's payload",
            two_records + record(ENTRY, BLOBS[2])[:40],
            two,
            truncated=True,
        ),
        _fail(
            "truncated-record-prefix",
            "the file ends inside the third record's prefix",
            two_records + record(ENTRY, BLOBS[2])[:3],
            two,
            truncated=True,
        ),
        _fail(
            "missing-end-record",
            "every record whole, but no end record: as if cut at a record boundary",
            header() + RECORDS,
            _events(BLOBS, [(4, PROOF)], ended=False),
            truncated=True,
        ),
        _fail(
            "truncated-end-record",
            "the file ends inside the end record",
            VALID[:-1],
            _events(BLOBS, [(4, PROOF)], ended=False),
            truncated=True,
        ),
        _fail(
            "wrong-entry-count",
            "the end record counts 5 entries, the file holds 4",
            header() + RECORDS + end(5, 1),
            _events(BLOBS, [(4, PROOF)], ended=False),
            truncated=False,
        ),
        _fail(
            "wrong-fork-proof-count",
            "the end record counts no fork proof, the file holds 1",
            header() + RECORDS + end(4, 0),
            _events(BLOBS, [(4, PROOF)], ended=False),
            truncated=False,
        ),
        _fail(
            "data-after-end",
            "one byte after the end record",
            VALID + b"\x00",
            _events(BLOBS, [(4, PROOF)], ended=False),
            truncated=False,
        ),
        _fail(
            "second-bundle-after-end",
            "two bundles concatenated: the second header is data after the end record",
            VALID + VALID,
            _events(BLOBS, [(4, PROOF)], ended=False),
            truncated=False,
        ),
    ]


def _constants() -> Json:
    return {
        "type": "constants",
        "name": "constants",
        "description": "the magic, the version, sizes and record types of 11.2 to 11.4",
        "constants": {
            "magic": MAGIC.hex(),
            "version": VERSION,
            "header_size": len(header()),
            "record_prefix_size": 5,
            "record_types": {"entry": ENTRY, "fork-proof": FORK_PROOF, "end": END},
            "max_entry_record": MAX_ENTRY,
            "max_fork_proof_record": MAX_FORK_PROOF,
            "end_record_size": END_SIZE,
        },
    }


def generate() -> dict[str, Any]:
    return {
        "description": (
            "p2pcomm bundle files (spec/11-bundle.md): a small bundle with the events a "
            "reader reports, and files whose framing a reader must refuse"
        ),
        "revision": REVISION,
        "vectors": [_constants(), *_valid(), *_failures()],
    }
