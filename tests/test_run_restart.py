"""A restarted node finds its peers again without flags (spec 08, the address book):
real processes, real TCP on loopback, two homes.

    bob: run --peer ALICE   -> connects to alice; the address goes into bob's book
    bob: (stopped) run      -> no address given: connects to alice again
"""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pcomm.store import SqliteStore
from p2pcomm.store.addresses import AddressBook
from tests.test_cli_e2e import Process, ok

pytestmark = pytest.mark.slow


def test_a_restarted_node_dials_the_peers_it_remembers(tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    ok(tmp_path, alice, "init", "--name", "alice")
    ok(tmp_path, bob, "init", "--name", "bob")
    procs: list[Process] = []
    try:
        a = Process(tmp_path, alice, "run", "--listen", "127.0.0.1:0", "--no-mdns")
        procs.append(a)
        port = int(a.wait_for("listening on").rsplit(":", 1)[1])

        first = Process(
            tmp_path, bob, "run", "--listen", "127.0.0.1:0", "--no-mdns", "--peer", f"127.0.0.1:{port}"
        )
        procs.append(first)
        first.wait_for("peer up")
        status, err = first.interrupt()
        assert status == 130, err
        with SqliteStore(bob / "store.db") as store, AddressBook(store) as book:
            remembered = book.get("127.0.0.1", port)
        assert remembered is not None and remembered.source == "command-line"
        assert remembered.last_success_ms is not None

        again = Process(tmp_path, bob, "run", "--listen", "127.0.0.1:0", "--no-mdns")
        procs.append(again)
        line = again.wait_for("peer up")
        assert f"127.0.0.1:{port}" in line
    finally:
        for p in procs:
            p.kill()
