"""Three nodes in three OS processes (tests/net/_e2e_node.py) over loopback TCP.

::

    P0 ----> P1          each process appends N entries of its own, then
     \\        |          P0 dials P1 and P2, P1 dials P2 (one connection per pair,
      \\       v          so no two connections race for the same pair)
       `---> P2

The parent creates the group in one SQLite file, adds the three nodes' keys as
members (only members are served) and copies the file for each child, hands out the listening ports (each child picks port 0 and prints it), waits
for the three ``DONE`` lines, then checks the three files itself after the children
exited: same entry ids, same tips, and every entry re-verified.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from p2pcomm import Group, Role
from p2pcomm.group import GroupLog
from p2pcomm.store import SqliteStore
from tests.sync_helpers import BASE_TS, key

NODE = Path(__file__).with_name("_e2e_node.py")
PER_NODE = 300
#: Wall-clock limit for the whole exchange; the children stop themselves at 30 s.
DEADLINE = 40.0


class Lines:
    """A child's stdout as lines, read by a thread, so that waiting has a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line.strip())
        self.queue.put(None)

    def next(self, deadline: float) -> str:
        try:
            line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"child {self.proc.args!r} said nothing in time") from None
        if line is None:
            raise AssertionError(f"child {self.proc.args!r} ended: exit code {self.proc.wait(5)}")
        return line


def tell(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


@pytest.mark.slow
def test_three_processes_converge(tmp_path: Path) -> None:
    genesis_path = tmp_path / "genesis.db"
    with SqliteStore(genesis_path) as store:
        # Plaintext: the nodes count entries to know they converged, and the key
        # entries of an encrypted group (publications, welcomes) vary in number.
        founder = Group.create(store, key(0), "e2e", clock=lambda: BASE_TS, encrypted=False)
        group = founder.id
        for i in range(1, 4):  # the three nodes' members, added by the founder
            founder.add(key(i).public_key, Role.MEMBER, name=f"node{i}")
    paths = [tmp_path / f"node{i}.db" for i in range(3)]
    for p in paths:
        shutil.copyfile(genesis_path, p)
    total = 3 * PER_NODE + 4

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    procs = [
        subprocess.Popen(
            [sys.executable, str(NODE), str(p), str(i + 1), group.hex(), str(PER_NODE), str(total)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        for i, p in enumerate(paths)
    ]
    deadline = time.monotonic() + DEADLINE
    lines = [Lines(proc) for proc in procs]
    try:
        ports = []
        for out in lines:
            word, port = out.next(deadline).split()
            assert word == "LISTEN", (word, port)
            ports.append(int(port))
        for i, proc in enumerate(procs):
            for j in range(i + 1, 3):
                tell(proc, f"DIAL {ports[j]}")
            tell(proc, "GO")
        done = [out.next(deadline).split() for out in lines]
        assert all(d[0] == "DONE" for d in done), done
        assert {int(d[1]) for d in done} == {total}
        assert len({d[2] for d in done}) == 1, done
        for proc in procs:
            tell(proc, "EXIT")
        codes = [proc.wait(timeout=max(1.0, deadline - time.monotonic())) for proc in procs]
        assert codes == [0, 0, 0]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    states = []
    for p in paths:
        with SqliteStore(p) as store:
            log = GroupLog(store, group)
            ids = {e.id for _, e in log.entries(with_bodies=False)}
            assert len(ids) == total
            assert log.verify().ok
            assert not store.integrity_check()
            states.append((ids, store.tips(group)))
    assert states[0] == states[1] == states[2]
    authors = {t[0] for t in states[0][1]}
    assert authors == {key(i).public_key for i in range(4)}  # the founder and the three nodes
