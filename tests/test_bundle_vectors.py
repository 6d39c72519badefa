"""The bundle reader and writer against ``spec/vectors/bundle.json`` (spec/11-bundle.md).

Each vector is fed whole, byte by byte and in pieces of 7 bytes (STYLE.md habit 5); a
valid bundle must give exactly its events and be reproduced byte for byte by the writer,
and a failing one must give exactly its events before a ``bad-bundle`` error, with the
truncation flag it states.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core import bundle
from p2pcomm.core.bundle import (
    NEED_DATA,
    BundleEnd,
    BundleEvent,
    BundleHeader,
    BundleReader,
    BundleWriter,
    EntryRecord,
    ForkProofRecord,
)
from p2pcomm.core.log import _FORK_LIMITS, decode_entry
from p2pcomm.errors import BundleError, DecodeError, ErrorCode

VECTORS = Path(__file__).resolve().parents[1] / "spec" / "vectors" / "bundle.json"
DOC: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
SPLITS = {"whole": 0, "bytes": 1, "sevens": 7}


def of_type(kind: str) -> list[Any]:
    return [pytest.param(v, id=v["name"]) for v in DOC["vectors"] if v["type"] == kind]


def as_json(event: BundleEvent) -> dict[str, Any]:
    if isinstance(event, BundleHeader):
        return {"event": "header", "version": event.version, "group": event.group.hex()}
    if isinstance(event, EntryRecord):
        return {"event": "entry", "index": event.index, "blob": event.blob.hex()}
    if isinstance(event, ForkProofRecord):
        return {"event": "fork-proof", "index": event.index, "blob": event.blob.hex()}
    assert isinstance(event, BundleEnd), event
    return {"event": "end", "entries": event.entries, "fork_proofs": event.fork_proofs}


def read(data: bytes, split: int) -> tuple[list[dict[str, Any]], BundleError | None, bool]:
    """Events (as JSON) until the end or an error; the error; whether truncated."""
    reader = BundleReader()
    pieces = [data] if split == 0 else [data[i : i + split] for i in range(0, len(data), split)]
    pieces = [p for p in pieces if p]
    out: list[dict[str, Any]] = []
    try:
        while True:
            event = reader.next_event()
            if event is NEED_DATA:
                reader.receive_data(pieces.pop(0) if pieces else b"")
                continue
            out.append(as_json(event))
            if isinstance(event, BundleEnd):
                return out, None, reader.truncated
    except BundleError as exc:
        # The error is final: asking again raises it again.
        with pytest.raises(BundleError) as again:
            reader.next_event()
        assert again.value is exc
        return out, exc, reader.truncated


def test_constants() -> None:
    (v,) = [v for v in DOC["vectors"] if v["type"] == "constants"]
    c = v["constants"]
    assert bundle.MAGIC.hex() == c["magic"]
    assert c["version"] == bundle.BUNDLE_VERSION
    assert c["header_size"] == bundle.HEADER_SIZE
    assert c["record_prefix_size"] == bundle.RECORD_PREFIX_SIZE
    assert c["record_types"] == {
        "entry": bundle.RecordType.ENTRY,
        "fork-proof": bundle.RecordType.FORK_PROOF,
        "end": bundle.RecordType.END,
    }
    assert c["max_entry_record"] == bundle.MAX_ENTRY_RECORD
    assert bundle.MAX_FORK_PROOF_RECORD == c["max_fork_proof_record"] == _FORK_LIMITS.max_size
    assert c["end_record_size"] == bundle.END_RECORD_SIZE


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize("vector", of_type("bundle"))
def test_bundle(vector: dict[str, Any], split: int) -> None:
    events, error, truncated = read(bytes.fromhex(vector["bytes"]), split)
    assert error is None and not truncated
    assert events == vector["events"]
    assert events[0]["group"] == vector["group"]
    blobs = [bytes.fromhex(e["blob"]) for e in events if e["event"] == "entry"]
    for blob, eid in zip(blobs, vector["entry_ids"], strict=True):
        if eid is None:
            with pytest.raises(DecodeError):
                decode_entry(blob)
        else:
            assert decode_entry(blob).id.hex() == eid


@pytest.mark.parametrize("vector", of_type("bundle"))
def test_writer_reproduces_bundle(vector: dict[str, Any]) -> None:
    writer = BundleWriter(bytes.fromhex(vector["group"]))
    out = writer.start()
    for e in vector["events"]:
        if e["event"] == "entry":
            out += writer.entry(bytes.fromhex(e["blob"]))
        elif e["event"] == "fork-proof":
            out += writer.fork_proof(bytes.fromhex(e["blob"]))
    out += writer.end()
    assert out.hex() == vector["bytes"]


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize("vector", of_type("bundle-fail"))
def test_bundle_fail(vector: dict[str, Any], split: int) -> None:
    events, error, truncated = read(bytes.fromhex(vector["bytes"]), split)
    assert error is not None, "the reader accepted a bundle it must refuse"
    assert error.code is ErrorCode(vector["fail"]) is ErrorCode.BAD_BUNDLE
    assert events == vector["events"]
    assert truncated is vector["truncated"]


def test_every_vector_is_read() -> None:
    assert DOC["revision"] == 6
    assert {v["type"] for v in DOC["vectors"]} == {"constants", "bundle", "bundle-fail"}
