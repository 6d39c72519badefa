"""The real gossip benchmark (benchmarks/gossip_real.py), small: five node processes on
loopback, ten posts, through the benchmark runner as a user runs it. The figures must
say that every node got every post, and be sane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The run takes a few seconds; the suite bounds its own waits too (settle, delivery).
TIMEOUT = 120


def test_gossip_real_quick(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    env = dict(os.environ, GOSSIP_REAL_NODES="5", GOSSIP_REAL_ENTRIES="10")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "gossip-real", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["suite"] == "gossip-real"
    f = doc["figures"]
    assert (f["real_nodes"], f["real_entries"]) == (5, 10)
    assert f["real_delivery_ratio"] == 1.0, f
    assert f["real_delivery_missed"] == 0
    # Every node but the author receives each post once at least (more when flooded).
    assert f["real_payload_copies_per_node"] >= 1.0
    assert f["real_connections_max"] >= 1
    assert f["real_connections_bound"] == "unbounded" or f["real_connections_bound"] >= 1
    assert f["real_mean_entry_bytes"] > 100  # 100 characters of text and a header
    assert f["real_bytes_per_delivered_entry"] > 0
    assert 0 < f["real_latency_p50_ms"] <= f["real_latency_p99_ms"]
    assert 0 < f["real_hop_latency_p50_ms"] <= f["real_latency_p50_ms"]
    assert 1 <= f["real_hops_max"] <= 4
