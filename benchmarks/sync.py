"""Sync benchmark: two OS processes replicating over real loopback TCP.

    python -m benchmarks sync --json bench-sync.json

The history: 100,000 entries (128-byte bodies) by 50 authors, appended in rounds of
100-entry runs, in a SQLite store served by one process (``_sync_peer serve``).
Another process (``_sync_peer sync``) dials it and waits for ``GroupSynced``:

* ``entries_per_s``: full initial sync into an empty store, from connect (handshake
  included) until the receiver has verified and durably stored every entry.
* ``wire_bytes_per_entry``: TCP payload bytes, both directions, of that sync / entries.
* ``in_sync_bytes``: sync message bytes (both directions) when the receiver, now
  complete, connects again; ``in_sync_wire_bytes`` adds the handshake and record
  framing.
* ``catchup_overhead_ratio``: wire bytes (both directions) of a sync where the
  receiver lacks the newest 1% of entries, divided by the encoded size of those
  entries (``encode_entry``, with bodies).
* ``entries_per_s_membership``: the full initial sync again, with a history of the
  same shape whose authors (and the two nodes' keys) the founder first added as members and whose entries are
  posts (``membership_entries`` of them), between two nodes that track membership and
  content (``open_node``'s default; the figures above replicate the log alone).
* ``handshakes_per_s``: sequential connect + Noise XX handshake + close.
* ``receiver_peak_rss_mb``: peak resident memory of the receiving process during the
  full sync (windows and ingest batches are bounded; what grows with the group is the
  ingest overlay of recent ids, capped at 200,000); ``receiver_writer_peak_rss_mb``
  that of its store's writer process, which commits what the receiver validated.
* ``*_cpu_us_per_entry``: CPU time (user + system, all threads) per entry of the full
  sync, of the receiver, its writer process and the sender (whose figure includes its
  start-up): where the work goes, on a machine whose two cores all three share.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from p2pcomm.core import crypto
from p2pcomm.core.content import Post
from p2pcomm.core.identity import KeyPair
from p2pcomm.core.log import encode_entry
from p2pcomm.core.membership import AddMember, Kind, Role
from p2pcomm.group import GroupLog, ThreadedSignatures
from p2pcomm.store import SqliteStore

TARGETS = {
    "entries_per_s": ">= 30,000",
    "wire_bytes_per_entry": "<= 227",
    "in_sync_bytes": "<= 256",
    "catchup_overhead_ratio": "<= 1.10 (+ 4 KB allowed)",
}

KIND_POST = 16
BODY = b"b" * 128
POST_BODY = Post(text="b" * 124).encode()
assert len(POST_BODY) == 128
SERVER_SEED = crypto.blake2b_256(b"bench-sync-server")
CLIENT_SEED = crypto.blake2b_256(b"bench-sync-client")


def build(path: Path, authors: int, rounds: int, run: int, *, members: bool = False) -> bytes:
    """The history. With ``members``, the founder first adds the other authors as
    members and every entry is a post (a 128-byte ``Post`` body), so a node tracking
    membership accepts and shows all of it; otherwise entries are log-level only."""
    keys = [KeyPair(crypto.blake2b_256(b"bench-author-%d" % i)) for i in range(authors)]
    t0 = 1_700_000_000_000
    with SqliteStore(path, durable=False) as store, ThreadedSignatures() as sigs:
        log = GroupLog.create(store, keys[0], body=b"bench", timestamp=t0, signatures=sigs)
        item = (KIND_POST, BODY)
        if members:
            # The two nodes' own keys are members too: only members are served
            # (spec/06-sync.md 6.22).
            nodes = [KeyPair(SERVER_SEED).public_key, KeyPair(CLIENT_SEED).public_key]
            add = [
                (Kind.ADD, AddMember(member=m, role=Role.MEMBER, cut=0, name="m").encode())
                for m in [k.public_key for k in keys[1:]] + nodes
            ]
            log.append_many(keys[0], add, timestamp=t0)
            item = (Kind.POST, POST_BODY)
        for r in range(rounds):
            for k in keys:
                log.append_many(k, [item] * run, timestamp=t0 + 1 + r)
        return log.group


def _peer(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks._sync_peer", *args]


def run_sync(
    server_db: Path, client_db: Path, group: bytes, *, membership: bool = False
) -> dict[str, float]:
    flag = ["--membership"] if membership else []
    server = subprocess.Popen(
        _peer("serve", str(server_db), group.hex(), SERVER_SEED.hex(), *flag),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"server did not start: {line!r}")
        port = line.split()[1]
        out = subprocess.run(
            _peer("sync", str(client_db), group.hex(), CLIENT_SEED.hex(), port, *flag),
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        ).stdout
        result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        server.stdin.close()
        served = json.loads(server.stdout.read().strip().splitlines()[-1])
        result["server_cpu_s"] = served["cpu_s"]
        return result
    finally:
        if server.stdin and not server.stdin.closed:
            server.stdin.close()
        server.wait(timeout=60)


def run_handshakes(server_db: Path, group: bytes, n: int) -> float:
    server = subprocess.Popen(
        _peer("serve", str(server_db), group.hex(), SERVER_SEED.hex()),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = server.stdout.readline().split()[1]
        out = subprocess.run(
            _peer("handshakes", CLIENT_SEED.hex(), port, str(n)),
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
        doc = json.loads(out.strip().splitlines()[-1])
        return float(doc["handshakes"] / doc["elapsed"])
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=60)


def run(quick: bool = False) -> dict[str, float | int]:
    rounds = 2 if quick else 20
    figures: dict[str, float | int] = {}
    tmp = Path(tempfile.mkdtemp(prefix="p2pcomm-bench-sync-"))
    try:
        server_db = tmp / "server.db"
        group = build(server_db, 50, rounds, 100)
        with SqliteStore(server_db) as store:
            total = store.count(group)
            ordered = [e for _, e in store.iter_entries(group)]
        figures["entries"] = total

        # 1. full initial sync into an empty store
        client_db = tmp / "client.db"
        full = run_sync(server_db, client_db, group)
        if full["entries"] != total:
            raise RuntimeError(f"receiver holds {full['entries']} of {total} entries")
        figures["entries_per_s"] = round(total / full["elapsed"])
        wire = full["wire_sent"] + full["wire_received"]
        figures["wire_bytes_per_entry"] = round(wire / total, 1)
        figures["receiver_peak_rss_mb"] = round(full["peak_rss_mb"], 1)
        figures["receiver_writer_peak_rss_mb"] = round(full["writer_peak_rss_mb"], 1)
        # Where the CPU went (two cores; the three processes share them).
        for name, key in (
            ("receiver", "cpu_s"),
            ("receiver_writer", "writer_cpu_s"),
            ("sender", "server_cpu_s"),
        ):
            figures[f"{name}_cpu_us_per_entry"] = round(full[key] / total * 1e6, 1)
        with SqliteStore(client_db) as store:
            figures["receiver_verify_ok"] = int(GroupLog(store, group).verify().ok)

        # 2. already in sync
        again = run_sync(server_db, client_db, group)
        figures["in_sync_bytes"] = int(again["sync_sent"] + again["sync_received"])
        figures["in_sync_wire_bytes"] = int(again["wire_sent"] + again["wire_received"])

        # 3. catch up the newest 1%
        missing = ordered[-(total // 100) :]
        partial_db = tmp / "partial.db"
        with SqliteStore(partial_db, durable=False) as store:
            log = GroupLog(store, group)
            have = ordered[: len(ordered) - len(missing)]
            for i in range(0, len(have), 5000):
                log.ingest(have[i : i + 5000])
        catch = run_sync(server_db, partial_db, group)
        if catch["entries"] != total:
            raise RuntimeError(f"catch-up receiver holds {catch['entries']} of {total}")
        missing_size = sum(len(encode_entry(e)) for e in missing)
        catch_wire = catch["wire_sent"] + catch["wire_received"]
        figures["catchup_missing_entries"] = len(missing)
        figures["catchup_missing_bytes"] = missing_size
        figures["catchup_wire_bytes"] = int(catch_wire)
        figures["catchup_overhead_ratio"] = round(catch_wire / missing_size, 3)
        figures["catchup_within_bound"] = int(catch_wire <= 1.10 * missing_size + 4096)

        # 4. the same size of history, by members, into a node that tracks membership
        members_db = tmp / "members.db"
        members_group = build(members_db, 50, rounds, 100, members=True)
        with SqliteStore(members_db) as store:
            members_total = store.count(members_group)
        tracked = run_sync(members_db, tmp / "members-client.db", members_group, membership=True)
        if tracked["entries"] != members_total:
            raise RuntimeError(f"receiver holds {tracked['entries']} of {members_total}")
        figures["membership_entries"] = members_total
        figures["entries_per_s_membership"] = round(members_total / tracked["elapsed"])
        figures["receiver_cpu_us_per_entry_membership"] = round(
            tracked["cpu_s"] / members_total * 1e6, 1
        )

        # 5. handshakes
        figures["handshakes_per_s"] = round(
            run_handshakes(server_db, group, 100 if quick else 500), 1
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
