"""Crash safety of SqliteStore with real processes.

A child process (``_crash_writer.py``) ingests 20 000 pre-generated entries of five
authors into a SqliteStore, 500 per call, printing ``stored N`` after each call returns.
The parent reads a given number of those lines, then SIGKILLs the child wherever it is
(usually in the middle of the next transaction), and checks the file it left behind:

* it opens cleanly and ``integrity_check()`` finds nothing;
* it holds every entry the child had reported stored, and in fact exactly a whole
  number of chunks (no transaction is half there), once the child's store writer
  process (which outlives it long enough to finish what it was sent) has ended;
* every stored row is byte-for-byte the entry that was written (header, signature,
  body), in the order written; the heads are right;
* ``GroupLog.verify()`` is ok.

The kill point is varied by the number of lines read, not by time: no sleeps.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from p2pcomm.core.log import check_entry, encode_entry, entry_id
from p2pcomm.group import GroupLog
from p2pcomm.store import SqliteStore
from tests.helpers import History, build_history, write_blobs

WRITER = Path(__file__).with_name("_crash_writer.py")
CHUNK = 500
TOTAL = 20_000


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[History, Path]:
    history = build_history(
        authors=5, per_author=TOTAL // 5, seed=41, body_size=64, link_probability=0.2
    )
    assert len(history.entries) == TOTAL
    path = tmp_path_factory.mktemp("crash") / "entries.bin"
    write_blobs(path, (encode_entry(e) for e in history.entries))
    return history, path


def _wait_for_exit(pid: int) -> None:
    """Wait (without polling) until process ``pid``, not our child, has ended."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, f"process {pid} did not end"
    finally:
        os.close(fd)


def _run_and_kill(db: Path, blobs: Path, group: bytes, lines_to_read: int, log: Path) -> int:
    """Start the writer, read ``lines_to_read`` "stored N" lines, SIGKILL it. Returns
    the last N read once its store writer process has ended too (it finishes what it
    had been sent, then sees its input close)."""
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(db), str(blobs), group.hex(), str(CHUNK)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("writer "), (first, log.read_text())
            writer_pid = int(first.split()[1])
            assert writer_pid > 0
            last = 0
            for _ in range(lines_to_read):
                line = proc.stdout.readline()
                if not line.startswith("stored "):
                    proc.wait()
                    pytest.fail(f"writer said {line!r}; stderr: {log.read_text()}")
                last = int(line.split()[1])
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
    _wait_for_exit(writer_pid)
    return last


@pytest.mark.slow
@pytest.mark.parametrize("lines_to_read", [1, 9, 26])
def test_sigkill_leaves_a_consistent_store(
    workload: tuple[History, Path], tmp_path: Path, lines_to_read: int
) -> None:
    history, blobs = workload
    db = tmp_path / "crash.db"
    reported = _run_and_kill(db, blobs, history.group, lines_to_read, tmp_path / "stderr.txt")
    assert reported == lines_to_read * CHUNK

    with SqliteStore(db) as store:
        assert store.integrity_check() == []
        count = store.count(history.group)
        # At least what was reported, and only whole transactions.
        assert count >= reported
        assert count % CHUNK == 0 or count == TOTAL
        written = history.entries[:count]
        assert [e for _, e in store.iter_entries(history.group)] == written
        referenced = {x for w in written for x in [w.header.prev, *w.header.links] if x}
        assert store.heads(history.group) == {
            e.id: e.author for e in written if e.id not in referenced
        }
        report = GroupLog(store, history.group).verify()
        assert report.ok, report.problems[:5]
        assert report.entries == count == report.bodies_checked

    # Row by row, below the API: nothing partial, nothing extra.
    by_id = history.by_id()
    with sqlite3.connect(db) as raw:
        rows = raw.execute(
            "SELECT id, header, sig, body, body_state FROM entries ORDER BY pos"
        ).fetchall()
    raw.close()
    assert len(rows) == count
    for (eid, header, sig, body, body_state), expected in zip(rows, written, strict=True):
        assert eid == expected.id == entry_id(header)
        original = by_id[eid]
        assert (header, sig, body, body_state) == (
            original.header_bytes,
            original.signature,
            original.body,
            1,
        )
        check_entry(original, history.group)
