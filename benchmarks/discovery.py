"""Discovery benchmarks: mDNS on loopback, two real nodes, no address configured.

    python -m benchmarks discovery --json bench-discovery.json

Figures:

* ``discovery_to_synced_s``: two nodes (SQLite stores, one group both are members of,
  one post only the first holds), each with mDNS pinned to 127.0.0.1 and given no
  address; from the moment the first ``open_node`` is called to the moment the
  second node reports that post (``ItemAdded``). Median of 5 runs (``--quick``: 2).
  It includes starting both nodes' zeroconf, registering the adverts, browsing,
  resolving, the random pause of up to 0.5 s before a found address is dialled, the
  Noise handshake and the sync.
* ``mdns_packets_per_min_idle``: mDNS packets one idle node (one group, mDNS on
  loopback, no peer) sends in its steady state, counted over 20 s (``--quick``: 10 s)
  after its first 5 s (start-up announcements and first queries are left out) and
  scaled to a minute. The count is exact only where nothing else speaks mDNS on the
  host, so the node and the counting socket run in a fresh network namespace
  (``unshare --net``, as root); elsewhere the figure is reported as -1.
* ``mdns_packets_startup``: the packets of those first 5 s (announcements, queries).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from p2pcomm import Group, Role, SqliteStore, generate_keypair, open_node
from p2pcomm.bundle import export_bundle, import_bundle
from p2pcomm.net.discovery import DiscoveryConfig
from p2pcomm.net.events import ItemAdded

TARGETS = {
    "discovery_to_synced_s": "<= 2 s",
    "mdns_packets_per_min_idle": "small (an idle node must not chatter)",
}

ON_LOOPBACK = DiscoveryConfig(interfaces=("127.0.0.1",))


async def _to_synced(folder: Path) -> float:
    alice, bob = generate_keypair(), generate_keypair()
    with (
        SqliteStore(folder / "a.db") as sa,
        SqliteStore(folder / "b.db") as sb,
    ):
        club = Group.create(sa, alice, "Bench club", founder_name="alice")
        club.add(bob.public_key, Role.MEMBER, name="bob")
        export_bundle(sa, club.id, folder / "c.p2pb")
        import_bundle(sb, folder / "c.p2pb")
        club.post("first entry to sync")
        start = time.perf_counter()
        async with (
            open_node(sa, alice, discovery=ON_LOOPBACK),
            open_node(sb, bob, discovery=ON_LOOPBACK) as nb,
        ):
            events = nb.subscribe()
            with trio.fail_after(30):
                async for ev in events:
                    if isinstance(ev, ItemAdded) and ev.origin == alice.public_key:
                        break
            return time.perf_counter() - start


def _sniffer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.setsockopt(socket.IPPROTO_IP, 49, 0)  # IP_MULTICAST_ALL off
    s.bind(("224.0.0.251", 5353))
    mreq = socket.inet_aton("224.0.0.251") + socket.inet_aton("127.0.0.1")
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return s


async def _idle_packets(folder: Path, warmup: float, window: float) -> tuple[int, int]:
    """(packets in the first ``warmup`` s, packets in the ``window`` s after)."""
    kp = generate_keypair()
    raw = _sniffer()
    stamps: list[float] = []
    sock = trio.socket.from_stdlib_socket(raw)
    with SqliteStore(folder / "idle.db") as store:
        Group.create(store, kp, "Idle club", founder_name="idle")
        async with trio.open_nursery() as nursery:

            async def count() -> None:
                while True:
                    await sock.recvfrom(9000)
                    stamps.append(time.monotonic())

            nursery.start_soon(count)
            start = time.monotonic()
            async with open_node(store, kp, discovery=ON_LOOPBACK):
                await trio.sleep(warmup + window)
            nursery.cancel_scope.cancel()
    raw.close()
    first = sum(1 for t in stamps if t < start + warmup)
    steady = sum(1 for t in stamps if start + warmup <= t < start + warmup + window)
    return first, steady


def _idle_child(warmup: float, window: float) -> None:
    """In the fresh namespace: bring up loopback, count, print two numbers."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with tempfile.TemporaryDirectory(prefix="p2pcomm-bench-") as tmp:
        first, steady = trio.run(_idle_packets, Path(tmp), warmup, window)
    print(first, steady)


def _idle_in_namespace(warmup: float, window: float) -> tuple[int, int] | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    code = f"from benchmarks.discovery import _idle_child; _idle_child({warmup}, {window})"
    res = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=warmup + window + 60,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    if res.returncode != 0:
        print(f"idle count skipped: {res.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    first, steady = map(int, res.stdout.split()[-2:])
    return first, steady


def run(quick: bool) -> dict[str, object]:
    runs = 2 if quick else 5
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="p2pcomm-bench-") as tmp:
            times.append(trio.run(_to_synced, Path(tmp)))
    warmup, window = 5.0, 10.0 if quick else 20.0
    idle = _idle_in_namespace(warmup, window)
    return {
        "discovery_to_synced_s": round(statistics.median(times), 3),
        "discovery_to_synced_max_s": round(max(times), 3),
        "mdns_packets_per_min_idle": round(idle[1] * 60 / window, 1) if idle else -1,
        "mdns_packets_startup": idle[0] if idle else -1,
    }
