"""Log benchmarks: signing, appending and ingesting with the SQLite store.

    python -m benchmarks log --json bench-log.json

Figures (all measured in this one run, so their ratios are meaningful):

* ``ed25519_sign_per_s`` / ``ed25519_verify_per_s``: raw ``cryptography`` rates on one
  thread for a 64-byte message (what an entry signature covers).
* ``append_per_s``: ``GroupLog.append_many`` creating, signing (two threads) and
  storing entries with 128-byte bodies in SQLite, one durable transaction per 1,000.
* ``append_latency_ms_p50`` / ``_p99``: one ``GroupLog.append`` committed durably
  (``synchronous=FULL``, fsync) on its own.
* ``ingest_single_per_s``: entries arriving one at a time from 50 interleaved authors,
  each one's own signature verified (no chain shortcut; two verify threads), stored in
  durable commits of whatever has arrived (at most 256); an entry counts as ingested
  only once its commit returned.
* ``ingest_bulk_per_s``: 100,000 entries of 50 authors arriving as contiguous runs of
  100 (chain authentication: one signature per run), as a bundle import does it:
  ``GroupLog.ingest_encoded`` decodes and validates them step by step while the store's
  writer process commits the previous step (durable transactions of 2,048); timed until
  the call returns, when all are durable.
* ``bundle_export_per_s``: ``export_bundle`` writing the store of ``ingest_bulk_per_s``
  (the same 100,000 entries, in store order) to a bundle file: entries read from SQLite
  a page at a time, encoded, framed and written, then the file synced and renamed into
  place; timed until the call returns.
* ``bundle_import_per_s``: ``import_bundle`` reading that file into a fresh SQLite
  store: the file read in 256 KiB pieces, every record framed and decoded, every entry
  validated as if a peer had sent it (chain authentication: one signature per run of
  100) and stored in durable transactions of 2,048 by the store's writer process while
  the next step is validated; timed until the call returns, when all are durable and
  the report says the file was complete.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from p2pcomm.bundle import export_bundle, import_bundle
from p2pcomm.core import crypto
from p2pcomm.core.identity import NS_ENTRY, KeyPair
from p2pcomm.core.log import Entry, decode_entry, encode_entry
from p2pcomm.group import GroupLog, ThreadedSignatures
from p2pcomm.store import MemoryStore, SqliteStore

TARGETS = {
    "append_per_s": ">= 0.8 x ed25519_sign_per_s",
    "ingest_single_per_s": ">= 0.8 x ed25519_verify_per_s",
    "ingest_bulk_per_s": ">= 30,000",
    "bundle_import_per_s": ">= 30,000",
}

KIND_POST = 16
BODY = b"x" * 128


def _keys(n: int) -> list[KeyPair]:
    return [KeyPair(crypto.blake2b_256(b"bench-author-%d" % i)) for i in range(n)]


def _rate(fn: object, seconds: float) -> float:
    assert callable(fn)
    n = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(200):
            fn()
        n += 200
        now = time.perf_counter()
        if now >= end:
            return n / (now - start)


def raw_rates(seconds: float) -> tuple[float, float]:
    kp = _keys(1)[0]
    msg = NS_ENTRY + bytes(32)
    sig = kp.sign_raw(msg)
    pub = kp.public_key
    sign_rate = _rate(lambda: kp.sign_raw(msg), seconds)
    verify_rate = _rate(lambda: crypto.ed25519_verify(pub, msg, sig), seconds)
    return sign_rate, verify_rate


def make_history(authors: int, runs_per_author: int, run_length: int) -> tuple[bytes, list[Entry]]:
    """A causal history: in each round every author appends a run of ``run_length``."""
    keys = _keys(authors)
    store = MemoryStore()
    with ThreadedSignatures() as sigs:
        log = GroupLog.create(store, keys[0], body=b"bench", timestamp=1, signatures=sigs)
        for r in range(runs_per_author):
            for k in keys:
                log.append_many(k, [(KIND_POST, BODY)] * run_length, timestamp=1000 + r)
    return log.group, [e for _, e in store.iter_entries(log.group)]


def bench_append(tmp: Path, total: int) -> float:
    kp = _keys(1)[0]
    with SqliteStore(tmp / "append.db") as store, ThreadedSignatures() as sigs:
        log = GroupLog.create(store, kp, signatures=sigs)
        start = time.perf_counter()
        for _ in range(total // 1000):
            log.append_many(kp, [(KIND_POST, BODY)] * 1000)
        return total / (time.perf_counter() - start)


def bench_latency(tmp: Path, n: int) -> tuple[float, float]:
    kp = _keys(1)[0]
    with SqliteStore(tmp / "latency.db") as store:
        log = GroupLog.create(store, kp)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            log.append(kp, KIND_POST, BODY)
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def bench_ingest_single(tmp: Path, group: bytes, blobs: list[bytes]) -> float:
    with SqliteStore(tmp / "single.db") as store, ThreadedSignatures() as sigs:
        log = GroupLog(store, group, signatures=sigs)
        arrived: list[Entry] = []
        durable = 0
        start = time.perf_counter()
        for blob in blobs:  # one entry arrives
            arrived.append(decode_entry(blob))
            if len(arrived) >= 256:
                result = log.ingest(arrived, verify_each=True)
                durable += len(result.accepted)
                arrived = []
        if arrived:
            durable += len(log.ingest(arrived, verify_each=True).accepted)
        elapsed = time.perf_counter() - start
        assert durable == len(blobs), (durable, len(blobs), log.pending_count)
        return len(blobs) / elapsed


def bench_ingest_bulk(tmp: Path, group: bytes, blobs: list[bytes]) -> float:
    with SqliteStore(tmp / "bulk.db") as store:
        log = GroupLog(store, group)
        start = time.perf_counter()
        stored = len(log.ingest_encoded(blobs).accepted)  # durable when it returns
        elapsed = time.perf_counter() - start
        assert stored == len(blobs), (stored, len(blobs), log.pending_count)
        return len(blobs) / elapsed


def bench_bundle(tmp: Path, group: bytes, source: Path) -> tuple[float, float]:
    """Export the store at ``source`` to a file, then import it into a fresh store;
    returns both rates (entries per second)."""
    path = tmp / "log.p2pc"
    with SqliteStore(source) as store:
        start = time.perf_counter()
        stats = export_bundle(store, group, path)
        export_rate = stats.entries / (time.perf_counter() - start)
    with SqliteStore(tmp / "bundle.db") as store:
        start = time.perf_counter()
        report = import_bundle(store, path)  # durable when it returns
        import_rate = report.accepted / (time.perf_counter() - start)
        assert report.complete and report.accepted == stats.entries, report
    return export_rate, import_rate


def run(quick: bool = False) -> dict[str, float | int]:
    seconds = 0.5 if quick else 2.0
    total_append = 5_000 if quick else 50_000
    bulk_rounds = 2 if quick else 20
    single_n = 5_000 if quick else 20_000
    figures: dict[str, float | int] = {}
    sign_rate, verify_rate = raw_rates(seconds)
    figures["ed25519_sign_per_s"] = round(sign_rate)
    figures["ed25519_verify_per_s"] = round(verify_rate)
    with tempfile.TemporaryDirectory(prefix="p2pcomm-bench-") as d:
        tmp = Path(d)
        figures["append_per_s"] = round(bench_append(tmp, total_append))
        p50, p99 = bench_latency(tmp, 50 if quick else 300)
        figures["append_latency_ms_p50"] = round(p50, 3)
        figures["append_latency_ms_p99"] = round(p99, 3)
        bulk_group, history = make_history(50, bulk_rounds, 100)
        blobs = [encode_entry(e) for e in history]
        figures["bulk_entries"] = len(blobs)
        figures["ingest_bulk_per_s"] = round(bench_ingest_bulk(tmp, bulk_group, blobs))
        export_rate, import_rate = bench_bundle(tmp, bulk_group, tmp / "bulk.db")
        figures["bundle_export_per_s"] = round(export_rate)
        figures["bundle_import_per_s"] = round(import_rate)
        group, interleaved = make_history(50, single_n // 50, 1)
        single = [encode_entry(e) for e in interleaved]
        figures["ingest_single_entries"] = len(single)
        figures["ingest_single_per_s"] = round(bench_ingest_single(tmp, group, single))
    figures["append_vs_sign"] = round(figures["append_per_s"] / sign_rate, 3)
    figures["ingest_single_vs_verify"] = round(figures["ingest_single_per_s"] / verify_rate, 3)
    figures["cpu_count"] = os.cpu_count() or 0
    return figures
