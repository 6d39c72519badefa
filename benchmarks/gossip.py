"""Gossip at group scale, simulated (spec/07-gossip.md; ``p2pcomm.testing.sim``).

    python -m benchmarks gossip --json bench-gossip.json
    GOSSIP_NODES=300 GOSSIP_BROADCASTS=300 python -m benchmarks gossip

Every node is a real ``GossipState``; the simulator performs its effects over virtual
links (latency 10 to 50 ms per link, drawn once per pair). Messages are passed as objects
(``wire=False``); the codec is exercised by the tests. Sizes: ``GOSSIP_NODES`` (default
1000, ``--quick`` 200) and ``GOSSIP_BROADCASTS`` (default 1000, ``--quick`` 200); the
figures name the sizes they were measured at.

Figures:

* ``nodes``, ``broadcasts``: the sizes measured.
* ``delivery_ratio`` (``delivery_missed``: the pairs not delivered, since the table
  rounds): (entry, live node) pairs delivered over all pairs, for the
  broadcasts of the main run, made from random nodes every 20 ms with 2% of every
  message lost on every link. The overlay is built (joins, 150 s of settling: two or
  three shuffles per node) without
  loss; loss starts with the broadcasts.
* ``payload_copies_per_node``: GOSSIP messages (full entries) received per node per
  broadcast in the main run (1.0 is a perfect tree; flooding costs the mean degree minus
  one).
* ``latency_p99_vs_shortest``: p99 of delivery latency over all (entry, node) pairs,
  over the p99 of shortest-path latency on the final overlay (active views weighted by
  link latency) from the same authors; ``latency_p50_ms``/``latency_p99_ms`` beside it.
* ``censor_delivery_ratio``: a second overlay where 30% of the nodes forward no entry,
  announce none, and feed peer exchange made-up ids and members' ids at their own
  address (sybil, eclipse attempt) every 200 ms from the start; 200 broadcasts by honest
  nodes after 150 s; delivery over the honest nodes in the honest component, whose size
  is ``censor_honest_component``.
* ``recovery_s``: a third overlay; 20% of the nodes crash at once; an honest node
  broadcasts every 100 ms; virtual seconds from the crash until every later broadcast
  reaches every live node (30 s cap).
* ``overlay_component_nodes``, ``active_view_mean``, ``active_view_min``: the overlay
  at the end of the main run (nodes reachable from node 0; active view sizes).
* ``eager_links_mean``: neighbours a live node pushes entries to in full at the end of
  the main run (a spanning tree gives about 2; each entry then costs about this many
  copies per node, less one).
* ``sim_seconds``: wall time of the main run (build and broadcasts);
  ``sim_events_per_s`` its rate.
"""

from __future__ import annotations

import heapq
import os
import time

from p2pcomm.testing.sim import Behaviour, Sim

TARGETS = {
    "delivery_ratio": "= 1.0 (2% loss)",
    "payload_copies_per_node": "<= 1.3",
    "latency_p99_vs_shortest": "<= 2.0",
    "censor_delivery_ratio": "= 1.0 (30% censors + sybil)",
    "recovery_s": "<= 10 (20% crash)",
    "sim_seconds": "< 60 (at 1,000 x 1,000)",
}

GAP_MS = 20


def _build(n: int, seed: int) -> Sim:
    sim = Sim(seed, latency_ms=(10, 50), wire=False)
    sim.add(n)
    sim.join_all(spacing_ms=5)
    sim.run_for(n * 5 + 150_000)
    return sim


def _shortest(sim: Sim, src: int) -> dict[int, int]:
    dist = {src: 0}
    heap = [(0, src)]
    while heap:
        d, i = heapq.heappop(heap)
        if d > dist.get(i, 1 << 60):
            continue
        for peer in sim.nodes[i].state.active:
            j = sim.by_id[peer]
            nd = d + sim.latency(i, j)
            if nd < dist.get(j, 1 << 60):
                dist[j] = nd
                heapq.heappush(heap, (nd, j))
    return dist


def _p(values: list[int], q: float) -> int:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else 0


def main_run(n: int, b: int, seed: int = 1) -> dict[str, object]:
    started = time.perf_counter()
    sim = _build(n, seed)
    sim.loss = 0.02
    before = sum(node.payloads_received for node in sim.nodes)
    ids = []
    for _ in range(b):
        ids.append(sim.broadcast(sim.rng.randrange(n)))
        sim.run_for(GAP_MS)
    sim.run_for(5000)
    wall = time.perf_counter() - started
    copies = (sum(node.payloads_received for node in sim.nodes) - before) / (n * b)
    lat = [t - sim.entries[e][1] for e in ids for i, t in sim.delivered[e].items()]
    sample = ids[:: max(1, len(ids) // 100)]
    short: list[int] = []
    for e in sample:
        dist = _shortest(sim, sim.entries[e][0])
        short.extend(dist.values())
    p99, s99 = _p(lat, 0.99), _p(short, 0.99)
    live = sim.live()
    missed = sum(1 for e in ids for i in live if i not in sim.delivered[e])
    report = sim.report()
    return {
        "nodes": n,
        "broadcasts": b,
        "delivery_ratio": round(sim.delivery_ratio(ids), 6),
        "delivery_missed": missed,
        "payload_copies_per_node": round(copies, 3),
        "latency_p50_ms": _p(lat, 0.5),
        "latency_p99_ms": p99,
        "shortest_p99_ms": s99,
        "latency_p99_vs_shortest": round(p99 / s99, 3) if s99 else 0.0,
        "grafts_per_node_per_broadcast": round(
            sum(node.state.tree.stats.grafts_sent for node in sim.nodes) / (n * b), 3
        ),
        "overlay_component_nodes": len(sim.connected_component(0, live)),
        "active_view_mean": round(float(report["active_mean"]), 2),  # type: ignore[arg-type]
        "eager_links_mean": round(
            sum(len(sim.nodes[i].state.tree.eager) for i in live) / max(1, len(live)), 2
        ),
        "active_view_min": report["active_min"],
        "sim_seconds": round(wall, 2),
        "sim_events_per_s": int(sim.events / wall),
    }


def censor_run(n: int, seed: int = 2, broadcasts: int = 200) -> dict[str, object]:
    sim = Sim(seed, latency_ms=(10, 50), wire=False)
    sim.add(n)
    bad = sim.rng.sample(range(n), (3 * n) // 10)
    for i in bad:
        sim.behave(i, Behaviour(censor_all=True, sybil=True, period_ms=200))
    sim.join_all(spacing_ms=5)
    sim.run_for(n * 5 + 150_000)
    bad_set = dict.fromkeys(bad)
    honest = [i for i in sim.live() if i not in bad_set]
    component = sim.connected_component(honest[0], honest)
    if len(component) < len(honest) // 2:  # start from the largest honest component
        component = max(
            (sim.connected_component(h, honest) for h in honest[:: max(1, len(honest) // 20)]),
            key=len,
        )
    ids = []
    for _ in range(broadcasts):
        ids.append(sim.broadcast(component[sim.rng.randrange(len(component))]))
        sim.run_for(GAP_MS)
    sim.run_for(5000)
    missed = sum(1 for e in ids for i in component if i not in sim.delivered[e])
    return {
        "censor_delivery_ratio": round(sim.delivery_ratio(ids, component), 6),
        "censor_delivery_missed": missed,
        "censor_honest_component": len(component),
        "censor_honest_nodes": len(honest),
    }


def recovery_run(n: int, seed: int = 3) -> dict[str, object]:
    sim = _build(n, seed)
    crashed = sim.rng.sample(range(1, n), n // 5)
    crash_at = sim.now
    for i in crashed:
        sim.crash(i)
    made: list[tuple[int, bytes]] = []
    for _ in range(300):
        live = sim.live()
        made.append((sim.now, sim.broadcast(live[sim.rng.randrange(len(live))])))
        sim.run_for(100)
    sim.run_for(5000)
    live = sim.live()
    recovered_at = None
    for t, e in reversed(made):
        if sim.delivery_ratio([e], live) < 1.0:
            break
        recovered_at = t
    rec = (recovered_at - crash_at) / 1000 if recovered_at is not None else float("inf")
    return {"recovery_s": rec, "recovery_crashed": len(crashed)}


def run(quick: bool) -> dict[str, object]:
    n = int(os.environ.get("GOSSIP_NODES", "200" if quick else "1000"))
    b = int(os.environ.get("GOSSIP_BROADCASTS", "200" if quick else "1000"))
    figures = main_run(n, b)
    figures.update(censor_run(n))
    figures.update(recovery_run(n))
    return figures
