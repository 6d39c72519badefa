"""Bundle files end to end (spec/11-bundle.md): export from one SQLite store, import into
another, and what an import does with files that are cut short, tampered with, or not
bundles at all.

The history used throughout (``T0`` + seconds)::

    alice  a1 ----- a2 ------------- a3 ...           a1 is the genesis
    bob          b1 ----- b2 ------------- b3 ...
                           \\
                            b2' (bob signs a second seq 2: a fork)
    carol              c1 ----- c2 ------------- ...

Runs are appended round by round (each author a run of 3 per round), so the file, in
store order, is a sequence of runs that chain authentication covers with one signature
each; the fork proof comes after the entries.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import p2pcomm.bundle as bundle_mod
from p2pcomm.bundle import BundleImport, export_bundle, import_bundle
from p2pcomm.core.bundle import (
    HEADER_SIZE,
    MAGIC,
    NEED_DATA,
    RECORD_PREFIX_SIZE,
    BundleEnd,
    BundleEvent,
    BundleHeader,
    BundleReader,
    BundleWriter,
    EntryRecord,
    ForkProofRecord,
)
from p2pcomm.core.log import (
    Entry,
    create_entry,
    create_genesis,
    encode_entry,
    encode_fork_proof,
)
from p2pcomm.errors import BundleError, ErrorCode, NotFoundError
from p2pcomm.group import GroupLog
from p2pcomm.store import MemoryStore, SqliteStore
from p2pcomm.store.base import Store
from p2pcomm.testing.history import keypair

T0 = 1_795_392_000_000
KIND = 0x8000
ALICE, BOB, CAROL, DAVE = keypair(1), keypair(2), keypair(3), keypair(4)


def sqlite(path: Path) -> SqliteStore:
    # Small imports write in this process; one test below uses the writer process.
    return SqliteStore(path, offload=False)


@dataclass
class Source:
    group: bytes
    entries: list[Entry]
    data: bytes


def build_source(
    store: Store, rounds: int = 3, run: int = 3, name: bytes = b"bundle test group"
) -> GroupLog:
    log = GroupLog.create(store, ALICE, body=name, timestamp=T0)
    ts = T0
    for r in range(rounds):
        for kp in (ALICE, BOB, CAROL):
            ts += 1000
            log.append_many(kp, [(KIND, b"%d-%d" % (r, i)) for i in range(run)], timestamp=ts)
    # A fork: bob signs a second entry with sequence 2.
    b1 = next(e for _, e in log.entries() if e.author == BOB.public_key and e.seq == 1)
    fork = create_entry(
        BOB, group=log.group, seq=2, prev=b1.id, links=[], timestamp=ts, kind=KIND, body=b"x"
    )
    result = log.ingest([fork])
    assert len(result.accepted) == 1 and len(result.forks) == 1
    return log


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    path = tmp_path_factory.mktemp("source") / "source.db"
    with sqlite(path) as store:
        log = build_source(store)
        out = io.BytesIO()
        stats = export_bundle(store, log.group, out)
        entries = [e for _, e in log.entries()]
        assert stats.entries == len(entries) and stats.fork_proofs == 1
        assert stats.bytes == len(out.getvalue())
        return Source(log.group, entries, out.getvalue())


def stored(store: Store, group: bytes) -> list[bytes]:
    return [e.id for _, e in store.iter_entries(group)]


def records(data: bytes) -> list[tuple[int, int, int]]:
    """``(type, start, end)`` of every record of a well-framed bundle."""
    out, pos = [], HEADER_SIZE
    while pos < len(data):
        n = int.from_bytes(data[pos + 1 : pos + 5], "big")
        out.append((data[pos], pos, pos + RECORD_PREFIX_SIZE + n))
        pos += RECORD_PREFIX_SIZE + n
    return out


def events(data: bytes, chunks: list[int] | None = None) -> list[BundleEvent]:
    """Every event of ``data`` fed in pieces of the given sizes (cycled), then EOF."""
    reader = BundleReader()
    out: list[BundleEvent] = []
    sizes = chunks or [len(data) or 1]
    pos, i = 0, 0
    while True:
        event = reader.next_event()
        if event is NEED_DATA:
            if pos >= len(data):
                reader.receive_data(b"")
                continue
            n = sizes[i % len(sizes)]
            i += 1
            reader.receive_data(data[pos : pos + n])
            pos += n
            continue
        out.append(event)
        if isinstance(event, BundleEnd):
            return out


def import_bytes(store: Store, data: bytes) -> BundleImport:
    return import_bundle(store, io.BytesIO(data))


# ----------------------------------------------------------------- round trip


def test_export_then_import_gives_the_same_log(source: Source, tmp_path: Path) -> None:
    with sqlite(tmp_path / "src.db") as src:
        log = build_source(src)
        stats = export_bundle(src, log.group, tmp_path / "log.p2pc")
        assert (tmp_path / "log.p2pc").read_bytes() == source.data
        assert sorted(p.name for p in tmp_path.iterdir() if "p2pc" in p.name) == ["log.p2pc"]
        with sqlite(tmp_path / "dst.db") as dst:
            report = import_bundle(dst, tmp_path / "log.p2pc")
            assert report.complete and not report.truncated and report.error is None
            assert report.group == log.group
            assert report.entries == report.accepted == stats.entries == len(source.entries)
            assert report.fork_proofs == report.fork_proofs_accepted == 1
            assert report.rejected == [] and report.duplicates == 0
            copy = GroupLog(dst, log.group)
            assert stored(dst, log.group) == [e.id for e in source.entries]
            assert [encode_entry(e) for _, e in copy.entries()] == [
                encode_entry(e) for e in source.entries
            ]
            assert [p.key() for p in copy.fork_proofs()] == [p.key() for p in log.fork_proofs()]
            assert copy.verify().ok
            assert sorted(copy.heads()) == sorted(log.heads())


def test_importing_twice_reports_duplicates(source: Source, tmp_path: Path) -> None:
    with sqlite(tmp_path / "dst.db") as dst:
        first = import_bytes(dst, source.data)
        again = import_bytes(dst, source.data)
        assert first.accepted == len(source.entries)
        assert again.accepted == 0 and again.duplicates == len(source.entries)
        assert again.fork_proof_duplicates == 1 and again.fork_proofs_accepted == 0
        assert again.complete
        assert stored(dst, source.group) == [e.id for e in source.entries]


def test_export_of_an_unknown_group_writes_nothing(tmp_path: Path) -> None:
    with sqlite(tmp_path / "empty.db") as store, pytest.raises(NotFoundError):
        export_bundle(store, bytes(32), tmp_path / "none.p2pc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_a_failed_export_leaves_no_file(source: Source, tmp_path: Path) -> None:
    with sqlite(tmp_path / "src.db") as src:
        log = build_source(src)

        def boom(done: int, total: int | None) -> None:
            raise KeyboardInterrupt

        target = tmp_path / "log.p2pc"
        with pytest.raises(KeyboardInterrupt):
            bundle_mod._WRITE_BATCH, saved = 2, bundle_mod._WRITE_BATCH
            try:
                export_bundle(src, log.group, target, progress=boom)
            finally:
                bundle_mod._WRITE_BATCH = saved
    assert sorted(p.name for p in tmp_path.iterdir() if "p2pc" in p.name) == []


def test_large_import_in_steps_through_the_writer_process(tmp_path: Path) -> None:
    """More than one ingest step (2,048 entries), validated while the writer process
    commits, in store order and then in reverse order (everything waits, across steps)."""
    src = MemoryStore()
    log = GroupLog.create(src, ALICE, body=b"big", timestamp=T0)
    for r in range(6):
        for kp in (ALICE, BOB):
            log.append_many(kp, [(KIND, b"")] * 200, timestamp=T0 + r)
    entries = [e for _, e in log.entries()]
    writer = BundleWriter(log.group)
    forward = writer.start() + b"".join(writer.entry(encode_entry(e)) for e in entries)
    forward += writer.end()
    writer = BundleWriter(log.group)
    backward = writer.start()
    backward += b"".join(writer.entry(encode_entry(e)) for e in reversed(entries))
    backward += writer.end()
    with SqliteStore(tmp_path / "fwd.db") as dst:
        report = import_bytes(dst, forward)
        assert report.complete and report.accepted == len(entries)
        again = import_bytes(dst, backward)
        assert again.complete and again.duplicates == len(entries) and again.accepted == 0
    with sqlite(tmp_path / "back.db") as dst:
        report = import_bytes(dst, backward)
        assert report.complete and report.accepted == len(entries)
        assert GroupLog(dst, log.group).verify().ok


# ----------------------------------------------------------------- damage


def test_truncated_files_import_exactly_the_complete_records(
    source: Source, tmp_path: Path
) -> None:
    """Cut at the edges of every record and at a stride in between: what is stored is the
    prefix of entries whose records are whole, each verified, and the cut is reported."""
    data = source.data
    recs = records(data)
    cuts = {0, 1, len(MAGIC), HEADER_SIZE - 1, HEADER_SIZE, len(data) - 1}
    for _, start, end in recs:
        cuts |= {start + 1, start + RECORD_PREFIX_SIZE, end - 1, end}
    cuts |= set(range(HEADER_SIZE, len(data), 211))
    cuts.discard(len(data))
    by_id = {e.id: e for e in source.entries}
    for n, cut in enumerate(sorted(cuts)):
        with sqlite(tmp_path / f"cut{n}.db") as dst:
            if cut < HEADER_SIZE:
                with pytest.raises(BundleError) as info:
                    import_bytes(dst, data[:cut])
                assert info.value.code is ErrorCode.BAD_BUNDLE
                assert dst.groups() == []
                continue
            report = import_bytes(dst, data[:cut])
            whole = [r for r in recs if r[2] <= cut]
            n_entries = sum(1 for r in whole if r[0] == 1)
            assert report.truncated and not report.complete, cut
            assert report.error is not None and report.error.code is ErrorCode.BAD_BUNDLE
            assert report.entries == report.accepted == n_entries, cut
            assert report.rejected == []
            ids = stored(dst, source.group)
            assert ids == [e.id for e in source.entries[:n_entries]], cut
            assert all(i in by_id for i in ids)
            if ids:
                assert GroupLog(dst, source.group).verify().ok
            assert report.fork_proofs_accepted == sum(1 for r in whole if r[0] == 2)


def entry_record(data: bytes, i: int) -> tuple[int, int]:
    """Start and end of the payload of entry record ``i``."""
    _, start, end = [r for r in records(data) if r[0] == 1][i]
    return start + RECORD_PREFIX_SIZE, end


def expected_valid(source: Source, without: set[bytes]) -> list[bytes]:
    """What an independent replica finds valid among the file's other entries."""
    log = GroupLog(MemoryStore(), source.group)
    log.ingest([e for e in source.entries if e.id not in without], verify_each=True)
    return [e.id for _, e in log.entries()]


def test_a_bad_signature_nothing_vouches_for_is_reported(source: Source, tmp_path: Path) -> None:
    # carol's last entry: no later entry of carol's names it, so only its own signature
    # could authenticate it.
    i = max(k for k, e in enumerate(source.entries) if e.author == CAROL.public_key)
    start, _ = entry_record(source.data, i)
    data = bytearray(source.data)
    data[source.data.index(source.entries[i].signature, start) + 20] ^= 0x40
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, bytes(data))
        assert not report.complete and not report.truncated and report.error is None
        assert [(r.index, r.entry_id, r.error.code, r.pending) for r in report.rejected] == [
            (i, source.entries[i].id, ErrorCode.BAD_SIGNATURE, True)
        ]
        bad = source.entries[i].id
        assert stored(dst, source.group) == expected_valid(source, {bad})
        assert bad not in stored(dst, source.group)
        assert report.accepted == len(source.entries) - 1
        assert GroupLog(dst, source.group).verify().ok


def test_a_bad_signature_inside_a_run_is_vouched_for(source: Source, tmp_path: Path) -> None:
    """Rule 03 A2: a later entry of the same author commits to the damaged one's id."""
    i = next(k for k, e in enumerate(source.entries) if e.author == BOB.public_key)
    start, _ = entry_record(source.data, i)
    sig_at = source.data.index(source.entries[i].signature, start)
    data = bytearray(source.data)
    data[sig_at + 10] ^= 0x01
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, bytes(data))
        assert report.complete and report.accepted == len(source.entries)
        assert GroupLog(dst, source.group).verify().ok


def test_a_tampered_body_imports_everything_that_does_not_need_it(
    source: Source, tmp_path: Path
) -> None:
    i = next(k for k, e in enumerate(source.entries) if e.author == BOB.public_key)
    _, end = entry_record(source.data, i)
    data = bytearray(source.data)
    data[end - 1] ^= 0x01  # the last byte of the body
    bad = source.entries[i].id
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, bytes(data))
        expected = expected_valid(source, {bad})
        assert stored(dst, source.group) == expected
        assert bad not in expected and report.accepted == len(expected)
        first = report.rejected[0]
        assert (first.index, first.entry_id, first.error.code) == (
            i,
            bad,
            ErrorCode.BODY_MISMATCH,
        )
        # Everything else not stored waits for the damaged entry, directly or not.
        rest = report.rejected[1:]
        assert len(rest) == len(source.entries) - len(expected) - 1
        assert all(r.pending for r in rest)
        assert {r.error.code for r in rest} <= {ErrorCode.BAD_PREVIOUS, ErrorCode.BAD_LINKS}
        assert not report.complete and GroupLog(dst, source.group).verify().ok


def test_an_undecodable_record_is_reported_and_reading_goes_on(
    source: Source, tmp_path: Path
) -> None:
    last = len(source.entries) - 1  # the fork entry: nothing depends on it
    start, end = entry_record(source.data, last)
    data = source.data[:start] + b"\xc1" * (end - start) + source.data[end:]
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, data)
        assert [(r.index, r.entry_id) for r in report.rejected] == [(last, None)]
        assert report.rejected[0].error.code is ErrorCode.MALFORMED
        assert report.accepted == len(source.entries) - 1
        # bob's fork entry is missing, so the fork proof (an independent proof) is still
        # verified and stored.
        assert report.fork_proofs_accepted == 1


@pytest.mark.parametrize("content", [b"", b"garbage, not a bundle at all\n" * 20, MAGIC[:5]])
def test_garbage_and_empty_files_raise_and_change_nothing(
    content: bytes, source: Source, tmp_path: Path
) -> None:
    path = tmp_path / "bad.p2pc"
    path.write_bytes(content)
    with sqlite(tmp_path / "dst.db") as dst:
        import_bytes(dst, source.data)
        before = stored(dst, source.group)
        with pytest.raises(BundleError) as info:
            import_bundle(dst, path)
        assert info.value.code is ErrorCode.BAD_BUNDLE
        assert dst.groups() == [source.group] and stored(dst, source.group) == before


def test_entries_of_another_group_are_rejected(source: Source, tmp_path: Path) -> None:
    other = create_genesis(DAVE, timestamp=T0, body=b"another group")
    dave2 = create_entry(
        DAVE, group=other.id, seq=2, prev=other.id, links=[], timestamp=T0, kind=KIND
    )
    w = BundleWriter(source.group)
    data = w.start() + b"".join(w.entry(encode_entry(e)) for e in source.entries[:4])
    data += w.entry(encode_entry(other)) + w.entry(encode_entry(dave2)) + w.end()
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, data)
        assert report.accepted == 4
        assert [(r.index, r.error.code) for r in report.rejected] == [
            (4, ErrorCode.WRONG_GROUP),
            (5, ErrorCode.WRONG_GROUP),
        ]
        assert dst.groups() == [source.group]


def test_a_file_for_a_group_without_its_genesis_stores_nothing(
    source: Source, tmp_path: Path
) -> None:
    w = BundleWriter(source.group)
    data = w.start() + b"".join(w.entry(encode_entry(e)) for e in source.entries[1:])
    data += w.end()
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, data)
        assert report.accepted == 0 and dst.groups() == []
        assert len(report.rejected) == len(source.entries) - 1
        assert all(r.pending for r in report.rejected)


def test_order_in_the_file_is_free(source: Source, tmp_path: Path) -> None:
    """Fork proof first, entries in reverse: the same log comes out."""
    recs = records(source.data)
    proof = next(source.data[s + RECORD_PREFIX_SIZE : e] for t, s, e in recs if t == 2)
    w = BundleWriter(source.group)
    data = w.start() + w.fork_proof(proof)
    data += b"".join(w.entry(encode_entry(e)) for e in reversed(source.entries)) + w.end()
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, data)
        assert report.complete and report.accepted == len(source.entries)
        assert report.fork_proofs_accepted == 1
        assert sorted(stored(dst, source.group)) == sorted(e.id for e in source.entries)
        assert GroupLog(dst, source.group).verify().ok


def test_fork_proofs_are_verified_before_they_are_stored(source: Source, tmp_path: Path) -> None:
    *_, e = next(r for r in records(source.data) if r[0] == 2)
    data = bytearray(source.data)
    data[e - 1] ^= 0x01  # the second run's signature
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, bytes(data))
        assert [(r.fork_proof, r.error.code) for r in report.rejected] == [
            (True, ErrorCode.BAD_FORK_PROOF)
        ]
        assert report.accepted == len(source.entries)
        # The import found the fork itself, from the entries, and stored its own proof.
        assert report.forks_found == 1 and len(dst.fork_proofs(source.group)) == 1


def test_a_proof_for_another_group_is_refused(source: Source, tmp_path: Path) -> None:
    other = build_source(MemoryStore(), rounds=1, run=2, name=b"another group")
    assert other.group != source.group
    (proof,) = other.fork_proofs()
    w = BundleWriter(source.group)
    data = w.start() + w.entry(encode_entry(source.entries[0]))
    data += w.fork_proof(encode_fork_proof(proof)) + w.end()
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, data)
        assert [(r.index, r.fork_proof, r.error.code) for r in report.rejected] == [
            (1, True, ErrorCode.BAD_FORK_PROOF)
        ]
        assert dst.fork_proofs(source.group) == []


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b"\x00", "bytes after the end record"),
        (None, "end record counts"),
    ],
)
def test_damage_after_the_last_record_is_reported(
    tail: bytes | None, message: str, source: Source, tmp_path: Path
) -> None:
    if tail is None:  # the end record says one entry more
        data = bytearray(source.data)
        data[-9] += 1
        content = bytes(data)
    else:
        content = source.data + tail
    with sqlite(tmp_path / "dst.db") as dst:
        report = import_bytes(dst, content)
        assert report.accepted == len(source.entries) and not report.truncated
        assert report.error is not None and message in report.error.message
        assert not report.complete


# ----------------------------------------------------------------- streaming


def test_import_streams_in_small_reads_and_reports_progress(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle_mod, "READ_SIZE", 61)
    seen: list[tuple[int, int | None]] = []

    class Reads(io.BytesIO):
        def __init__(self, data: bytes) -> None:
            super().__init__(data)
            self.sizes: list[int] = []

        def read(self, n: int | None = -1) -> bytes:
            assert n is not None and 0 < n <= 61
            data = super().read(n)
            self.sizes.append(len(data))
            return data

    path = tmp_path / "log.p2pc"
    path.write_bytes(source.data)
    with sqlite(tmp_path / "dst.db") as dst:
        f = Reads(source.data)
        report = import_bundle(dst, f, progress=lambda d, t: seen.append((d, t)))
        assert report.complete and report.accepted == len(source.entries)
        assert len(f.sizes) > 100 and max(f.sizes) <= 61
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (len(source.data), None)  # a BytesIO has no file size
    seen.clear()
    with sqlite(tmp_path / "dst2.db") as dst:
        import_bundle(dst, path, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(source.data), len(source.data))


def test_export_progress_counts_entries(source: Source, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    with sqlite(tmp_path / "src.db") as src:
        log = build_source(src)
        export_bundle(src, log.group, io.BytesIO(), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(source.entries), len(source.entries))


def test_the_reader_fed_byte_by_byte(source: Source) -> None:
    whole = events(source.data)
    assert events(source.data, [1]) == whole
    assert isinstance(whole[0], BundleHeader) and whole[0].group == source.group
    entries = [e for e in whole if isinstance(e, EntryRecord)]
    assert [ev.blob for ev in entries] == [encode_entry(e) for e in source.entries]
    assert sum(isinstance(e, ForkProofRecord) for e in whole) == 1
    assert whole[-1] == BundleEnd(entries=len(source.entries), fork_proofs=1)


@given(chunks=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=20))
def test_any_chunking_gives_the_same_events(chunks: list[int]) -> None:
    assert events(SMALL, chunks) == SMALL_EVENTS


def _small() -> bytes:
    store = MemoryStore()
    log = build_source(store, rounds=1, run=2)
    out = io.BytesIO()
    export_bundle(store, log.group, out)
    return out.getvalue()


SMALL = _small()
SMALL_EVENTS = events(SMALL)


@given(cut=st.integers(min_value=0, max_value=len(SMALL) - 1), chunk=st.integers(1, 300))
def test_a_cut_file_is_always_reported_truncated(cut: int, chunk: int) -> None:
    reader = BundleReader()
    got: list[BundleEvent] = []
    data = SMALL[:cut]
    for i in range(0, len(data), chunk):
        reader.receive_data(data[i : i + chunk])
        while (ev := reader.next_event()) is not NEED_DATA:
            got.append(ev)
    reader.receive_data(b"")
    with pytest.raises(BundleError):
        while True:
            got.append(reader.next_event())
    assert reader.truncated
    assert got == SMALL_EVENTS[: len(got)] and not any(isinstance(e, BundleEnd) for e in got)
