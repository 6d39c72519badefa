"""Two hosts on one machine: network namespaces joined by a veth pair.

Each namespace holds one end of the pair with a link-local address and nothing else
(``../shared/NETWORK-TESTS.md``). In each runs ``p2pcomm run`` exactly as a person
starts it: no ``--listen``, no ``--peer``, no ``--interface``. So the defaults are
what is tested: listening on 0.0.0.0:7447 and mDNS on the LAN interfaces, which
inside the namespace is the veth alone (loopback is left out). Nothing leaves the
namespaces; they are deleted whatever happens.

Needs root and ``ip netns``; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pcomm import Group, Role, SqliteStore
from p2pcomm.keys import load_keypair
from p2pcomm.paths import Home

pytestmark = [pytest.mark.mdns, pytest.mark.slow]

DEADLINE = 30.0


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    """Namespaces A and B joined by a veth pair, 169.254.77.1 and .2 (link-local)."""
    if os.geteuid() != 0:
        pytest.skip(f"network namespaces need root (ip netns add); running as uid {os.geteuid()}")
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")
    tag = secrets.token_hex(3)
    a, b = f"p2p-a-{tag}", f"p2p-b-{tag}"
    va, vb = f"p2pa{tag}", f"p2pb{tag}"
    made: list[str] = []
    try:
        for ns in (a, b):
            res = _ip("netns", "add", ns)
            if res.returncode != 0:
                pytest.skip(f"ip netns add is not permitted here: {res.stderr.strip()}")
            made.append(ns)
        steps = [
            ("link", "add", va, "type", "veth", "peer", "name", vb),
            ("link", "set", va, "netns", a),
            ("link", "set", vb, "netns", b),
            ("-n", a, "link", "set", "lo", "up"),
            ("-n", b, "link", "set", "lo", "up"),
            ("-n", a, "addr", "add", "169.254.77.1/16", "dev", va),
            ("-n", b, "addr", "add", "169.254.77.2/16", "dev", vb),
            ("-n", a, "link", "set", va, "up"),
            ("-n", b, "link", "set", vb, "up"),
        ]
        for step in steps:
            res = _ip(*step)
            if res.returncode != 0:
                pytest.skip(f"ip {' '.join(step)} failed: {res.stderr.strip()}")
        yield a, b
    finally:
        for ns in made:
            _ip("netns", "del", ns)  # takes its end of the veth pair with it
        if _ip("link", "show", va).returncode == 0:
            _ip("link", "del", va)


def env(tmp_path: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("P2PCOMM_")}
    out["HOME"] = str(tmp_path)
    out["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return out


def cli(tmp_path: Path, home: Path, *args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "p2pcomm", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res
    return res.stdout


class Node:
    """``p2pcomm run --json`` in a namespace; its JSON lines read with a deadline."""

    def __init__(self, tmp_path: Path, ns: str, home: Path) -> None:
        command = ["ip", "netns", "exec", ns, sys.executable, "-m", "p2pcomm", "run"]
        self.proc = subprocess.Popen(
            [*command, "--home", str(home), "--json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env(tmp_path),
        )
        self.buf = b""
        self.seen: list[dict[str, Any]] = []

    def wait_for(self, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first line so far or to come that ``pred`` accepts (what happens on
        two nodes has no fixed order: an item may arrive before the discovery event)."""
        for doc in self.seen:
            if pred(doc):
                return doc
        assert self.proc.stdout is not None
        deadline = time.monotonic() + DEADLINE
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                while b"\n" in self.buf:
                    line, self.buf = self.buf.split(b"\n", 1)
                    doc = json.loads(line)
                    self.seen.append(doc)
                    if pred(doc):
                        return doc
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"not within {DEADLINE} s; saw {self.seen}")
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise AssertionError(f"the node ended: {self.seen} {err}")
                self.buf += chunk

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.communicate(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate(timeout=DEADLINE)
        return self.proc.returncode


def item_text(text: str) -> Callable[[dict[str, Any]], bool]:
    """The node reads ``text``: it arrived readable, or sealed and then its key came
    (the club is encrypted, and each wrote before the other's node handed a key)."""
    return lambda d: d.get("event") in ("item-added", "item-updated") and d["item"]["text"] == text


def test_nodes_with_no_addresses_find_each_other_across_a_link_and_converge(
    tmp_path: Path, two_hosts: tuple[str, str]
) -> None:
    ns_a, ns_b = two_hosts
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    cli(tmp_path, alice, "init", "--name", "alice")
    cli(tmp_path, bob, "init", "--name", "bob")
    gid = cli(tmp_path, alice, "group", "create", "Garden club").strip()
    bob_id = load_keypair(bob / "key").public_key
    with SqliteStore(Home(alice).store_path) as store:
        Group(store, load_keypair(alice / "key"), bytes.fromhex(gid)).add(
            bob_id, Role.MEMBER, name="bob"
        )
    # Bob gets the group as it is now on a file (no network); then each writes
    # something the other does not have.
    bundle = tmp_path / "garden.p2pb"
    cli(tmp_path, alice, "bundle", "export", gid, str(bundle))
    cli(tmp_path, bob, "bundle", "import", str(bundle))
    cli(tmp_path, alice, "post", gid, "Seed swap on Saturday")
    cli(tmp_path, bob, "post", gid, "I'll bring tomato seeds")

    nodes: list[Node] = []
    try:
        a = Node(tmp_path, ns_a, alice)
        nodes.append(a)
        b = Node(tmp_path, ns_b, bob)
        nodes.append(b)
        for node, mine in ((a, "169.254.77.1"), (b, "169.254.77.2")):
            started = node.wait_for(lambda d: d.get("event") == "started")
            assert started["listening"] == "0.0.0.0:7447"
            assert started["mdns"] == [mine]  # the veth, not loopback
        found = a.wait_for(lambda d: d.get("event") == "peer-discovered")
        assert found["address"] == "169.254.77.2:7447" and found["groups"] == [gid]
        b.wait_for(item_text("Seed swap on Saturday"))
        a.wait_for(item_text("I'll bring tomato seeds"))
        for node in nodes:
            assert node.stop() == 130
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.communicate(timeout=DEADLINE)
    read_a = json.loads(cli(tmp_path, alice, "read", "--json", gid))
    read_b = json.loads(cli(tmp_path, bob, "read", "--json", gid))
    assert [i["text"] for i in read_a["items"]] == [i["text"] for i in read_b["items"]]
    assert len(read_a["items"]) == 2
