"""Gossip on real nodes: OS processes over loopback TCP (the simulated half is ``gossip``).

    python -m benchmarks gossip-real --json bench-gossip-real.json
    GOSSIP_REAL_NODES=40 GOSSIP_REAL_ENTRIES=200 python -m benchmarks gossip-real
    GOSSIP_REAL_NODE_OPTIONS='{"max_connections": 5}' python -m benchmarks gossip-real

The scene: ``GOSSIP_REAL_NODES`` nodes (default 20, ``--quick`` 8), each its own process
(``benchmarks/_gossip_node.py``) running ``open_node`` on 127.0.0.1 port 0 with its own
fresh SQLite store in a temporary directory (removed at the end). The parent makes the
group with the library (node 0's key founds it and adds every other node's key as a
member) and gives every store those entries before any node starts. Node 0 starts with
no address; node ``i > 0`` is given one (``GOSSIP_REAL_BOOTSTRAPS``, default 1): that
of a node ``j < i`` drawn with a seeded generator (``GOSSIP_REAL_SEED``, default 1).
Every node gets the JSON object ``GOSSIP_REAL_NODE_OPTIONS`` (default ``{}``) as extra
``open_node`` keyword arguments: ``{"gossip": null}`` turns gossip off (every entry is
then pushed on every connection), ``{"max_connections": 6}`` or
``{"gossip": {"hyparview": {"active_view": 4}}}`` change it (see
``benchmarks/_gossip_node.py``).

The stores are opened as ``p2pcomm run`` opens its store, with a writer process for
ingests; ``GOSSIP_REAL_STORE_OFFLOAD=0`` opens them with ``offload=False`` (each node
writes with its own connection), to tell the store's share of the latency from the
network's.

Without gossip a node learns no addresses from its peers, so with one address each the
connection graph is a tree (``n - 1`` connections) and flooding sends each node one
copy: ``GOSSIP_REAL_BOOTSTRAPS=3`` makes a graph with cycles, where flooding shows.

The overlay is *settled* when every node has at least one peer and is in sync with at
least one, the peers in sync, summed over the nodes, reach twice the addresses given
(each dial seen from both ends), and no node's count of peers, of peers in sync or of
gossip neighbours has changed for 1 s; the nodes report the three on change, sampled
every 50 ms (bounded wait: 60 s). Then ``GOSSIP_REAL_ENTRIES`` posts (default 100,
``--quick`` 30) of 100 characters of text each are made from random nodes, one every
``GOSSIP_REAL_GAP_MS`` (default 20 ms), and the run waits until every node holds every
post or 30 s pass after the last.

Figures (the *post phase* runs from just before the first post to the moment every
node holds every post, or the deadline):

* ``real_delivery_ratio``: (post, node) pairs the nodes' stores hold at the end, over
  all pairs (author included); ``real_delivery_missed`` the pairs missing.
* ``real_payload_copies_per_node``: the increase over the post phase of every node's
  ``Node.statistics().entries_received``, summed, over ``(nodes - 1) x posts`` (the
  receivers of each post). That counter counts every entry that arrived in a sync
  message (a live push, a catch-up run, an answer to a WANT) or in a GOSSIP message,
  *duplicates included* (a sync copy is counted before the store drops what it holds,
  a gossip copy of what was held or offered already is counted all the same; an
  author sent its own post back counts too), and header-only entries (none here: all
  authors are members). 1.0 is a perfect tree; flooding costs about the mean degree
  minus one more. (The simulated suite divides by ``nodes x posts``, the same at its
  sizes.) ``real_gossip_payloads_per_node`` is the share of it that came in GOSSIP
  messages (``node.overlay.payloads_received``; null without gossip): the rest came as
  live pushes on connections that are not gossip neighbours, or by sync.
* ``real_mean_entry_bytes``: mean ``len(encode_entry(e))`` of the posts (with body).
* ``real_bytes_per_delivered_entry``: the increase over the post phase of every
  node's ``wire_bytes_sent`` (TCP payload: record framing, tags, sync messages and
  keepalives), summed, over the delivered (post, node) pairs whose node is not the
  author. ``real_bytes_within_bound`` is 1 when that is at most
  ``1.3 x real_mean_entry_bytes + 64``. A live push is a RUN message, which leaves out
  what the receiver recomputes (the group, the body's hash and size), so with no
  duplicates the figure can be below the entry's encoded size.
* ``real_connections_max``: the most peers one node had connected at once, from start
  to end (each node samples ``Node.peers()`` every 50 ms and at every event it sees);
  ``real_connections_bound`` the node's bound (``max_connections`` from the options,
  or ``open_node``'s default for it), ``"unbounded"`` when it has none;
  ``real_connections_mean`` the mean number of peers at the end, and
  ``real_neighbours_mean`` of gossip neighbours (the active view; null without gossip).
* ``real_latency_p50_ms``/``p99``: over every delivered (post, node) pair whose node is
  not the author, the receiver's ``time.monotonic()`` when its ``EntriesAdded`` event
  was seen minus the author's just before the post began (one clock for every process
  on Linux). ``real_hop_latency_p50_ms``/``p99``: the same latency divided by the hop
  distance from author to receiver, in the connection graph at the end of the run
  (breadth-first over the peers each node reports, an edge when either end reports
  it); pairs with no path at the end are left out (``real_hops_max`` is the longest
  distance used).
* ``real_cpu_ms_per_node_per_entry``: CPU time (all threads) the node processes used
  over the post phase, summed, over ``nodes x posts`` (their stores' writer processes
  not included): with ``n`` processes on ``c``
  cores, a figure near ``c x GAP_MS / n`` means the machine, not the network, set the
  pace (latency is then mostly queueing).
* ``real_start_seconds``: from starting the processes until every node listens (they
  import in parallel, then open their nodes in turn); ``real_settle_seconds``: from
  then until the overlay is settled;
  ``real_post_phase_seconds``: the post phase; ``real_seconds``: wall time of the
  whole run, from making the stores to the last figure.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from p2pcomm import Group, Role
from p2pcomm.core import crypto
from p2pcomm.core.identity import KeyPair
from p2pcomm.group import GroupLog
from p2pcomm.store import SqliteStore

TARGETS = {
    "real_delivery_ratio": "= 1.0",
    "real_payload_copies_per_node": "<= 1.3",
    "real_bytes_per_delivered_entry": "<= 1.3 x real_mean_entry_bytes + 64",
    "real_connections_max": "<= real_connections_bound",
}

#: Milliseconds between two posts (``GOSSIP_REAL_GAP_MS``).
GAP_MS = 20
#: Characters of text in each post.
TEXT_SIZE = 100
#: Seconds allowed for the overlay to settle, and for delivery after the last post.
SETTLE_BOUND = 60.0
#: Seconds without a change of peers or neighbours anywhere for the overlay to count as
#: settled.
SETTLE_QUIET = 1.0
DELIVERY_BOUND = 30.0
#: Seconds allowed for a node to start, to answer a command, and to exit.
REPLY_BOUND = 30.0
EXIT_BOUND = 10.0


def _seed(i: int) -> bytes:
    return crypto.blake2b_256(b"bench-gossip-real-%d" % i)


def make_stores(folder: Path, n: int) -> tuple[bytes, list[Path]]:
    """``n`` SQLite stores holding the same group: founded by node 0's key, which adds
    every other node's key as a member. Returns the group id and the stores' paths."""
    keys = [KeyPair(_seed(i)) for i in range(n)]
    paths = [folder / f"node{i}.db" for i in range(n)]
    with SqliteStore(paths[0]) as store:
        group = Group.create(store, keys[0], "gossip bench", founder_name="node0")
        for i in range(1, n):
            group.add(keys[i].public_key, Role.MEMBER, name=f"node{i}")
        entries = [e for _, e in store.iter_entries(group.id)]
    for path in paths[1:]:
        with SqliteStore(path) as store:
            result = GroupLog(store, group.id).ingest(entries)
            if len(result.accepted) != len(entries):
                raise RuntimeError(f"{path.name} took {len(result.accepted)} of {len(entries)}")
    return group.id, paths


def _text(k: int) -> str:
    head = f"post {k:05d} of the gossip benchmark "
    return (head + "x" * TEXT_SIZE)[:TEXT_SIZE]


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else 0.0


def _hops(graph: dict[int, set[int]], src: int) -> dict[int, int]:
    dist = {src: 0}
    todo = deque([src])
    while todo:
        i = todo.popleft()
        for j in graph[i]:
            if j not in dist:
                dist[j] = dist[i] + 1
                todo.append(j)
    return dist


@dataclass
class _Proc:
    index: int
    proc: subprocess.Popen[str]
    stderr: IO[str]
    stderr_path: Path
    port: int = 0
    peers: int = 0
    synced: int = 0
    neighbours: int | None = None
    held: dict[str, float] = field(default_factory=dict)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def tail(self) -> str:
        self.stderr.flush()
        text = self.stderr_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-15:])


class Nodes:
    """The node processes, and one queue of the JSON lines they print (read by one
    thread per process, so that every wait has a deadline)."""

    def __init__(self) -> None:
        self.lines: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        self.procs: list[_Proc] = []
        self.by_key: dict[str, int] = {}
        #: Entry id -> (author, time just before the post began, encoded size).
        self.posted: dict[str, tuple[int, float, int]] = {}
        self.bound: int | None = None
        #: Addresses given to the nodes at start, in all.
        self.dials = 0
        #: When a node last reported a change of peers or neighbours.
        self.changed = time.monotonic()
        self._replies: dict[int, dict[str, Any]] = {}

    def spawn(
        self, folder: Path, group: bytes, paths: list[Path], options: dict[str, Any], offload: bool
    ) -> None:
        """One process per store; each waits for its ``start`` line."""
        for i, path in enumerate(paths):
            self.by_key[KeyPair(_seed(i)).public_key.hex()] = i
            err_path = folder / f"node{i}.err"
            err = err_path.open("w")
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks._gossip_node",
                    str(path),
                    group.hex(),
                    _seed(i).hex(),
                    "--node-options",
                    json.dumps(options),
                    *([] if offload else ["--no-offload"]),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
            )
            self.procs.append(_Proc(i, proc, err, err_path))
            threading.Thread(target=self._pump, args=(i, proc), daemon=True).start()

    def _pump(self, i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # not one of the node script's lines
            if isinstance(doc, dict):
                self.lines.put((i, doc))
        self.lines.put((i, None))

    def _take(self, deadline: float) -> bool:
        """Handle one line; False when none came before ``deadline``."""
        try:
            i, doc = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return False
        p = self.procs[i]
        if doc is None:
            code = p.proc.wait(EXIT_BOUND)
            raise RuntimeError(f"node {i} ended (exit code {code}):\n{p.tail()}")
        ev = doc["ev"]
        if ev == "status":
            p.peers, p.synced, p.neighbours = doc["peers"], doc["synced"], doc["neighbours"]
            self.changed = time.monotonic()
        elif ev == "added":
            for eid in doc["ids"]:
                p.held.setdefault(eid, doc["t"])
        elif ev == "posted":
            self.posted[doc["id"]] = (i, doc["t"], doc["size"])
        elif ev in ("up", "stats", "holds"):
            self._replies[i] = doc
        return True

    def ask(self, i: int, command: str, answer: str) -> dict[str, Any]:
        """Send ``command`` to node ``i`` and wait for its ``answer`` line."""
        self._replies.pop(i, None)
        self.procs[i].send(command)
        deadline = time.monotonic() + REPLY_BOUND
        while (reply := self._replies.get(i)) is None or reply["ev"] != answer:
            if not self._take(deadline):
                raise RuntimeError(f"node {i} did not answer {command.split()[0]!r}")
        return self._replies.pop(i)

    def ask_all(self, command: str, answer: str) -> list[dict[str, Any]]:
        for p in self.procs:
            p.send(command)
        deadline = time.monotonic() + REPLY_BOUND
        out: list[dict[str, Any]] = []
        for i in range(len(self.procs)):
            while (reply := self._replies.get(i)) is None or reply["ev"] != answer:
                if not self._take(deadline):
                    raise RuntimeError(f"node {i} did not answer {command.split()[0]!r}")
            out.append(self._replies.pop(i))
        return out

    def start(self, rng: random.Random, bootstraps: int) -> None:
        """Start the nodes in order, each with the addresses of ``bootstraps`` random
        earlier ones (all of them when there are fewer)."""
        for i in range(len(self.procs)):
            boot = rng.sample(range(i), min(i, bootstraps))
            up = self.ask(
                i, " ".join(["start", *(f"127.0.0.1:{self.procs[j].port}" for j in boot)]), "up"
            )
            self.dials += len(boot)
            self.procs[i].port = int(up["port"])
            self.bound = up["bound"]

    def wait_until(self, done: Any, bound: float) -> bool:
        """Handle lines until ``done()`` (asked after each line, and every 0.1 s) or
        ``bound`` seconds pass; whether it was done."""
        deadline = time.monotonic() + bound
        while not done():
            now = time.monotonic()
            if now >= deadline:
                return False
            self._take(min(deadline, now + 0.1))
        return True

    def settled(self) -> bool:
        return (
            all(p.peers >= 1 and p.synced >= 1 for p in self.procs)
            and sum(p.synced for p in self.procs) >= 2 * self.dials
            and time.monotonic() - self.changed >= SETTLE_QUIET
        )

    def delivered(self, want: int) -> bool:
        return len(self.posted) == want and all(
            all(e in p.held for e in self.posted) for p in self.procs
        )

    def post(self, rng: random.Random, count: int, gap_ms: float) -> None:
        """``count`` posts from random nodes, one every ``gap_ms``, reading lines
        between."""
        start = time.monotonic()
        for k in range(count):
            self.procs[rng.randrange(len(self.procs))].send(f"post {_text(k)}")
            due = start + (k + 1) * gap_ms / 1000
            while time.monotonic() < due and self._take(due):
                pass

    def close(self) -> None:
        for p in self.procs:
            try:
                if p.proc.stdin is not None:
                    p.proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + EXIT_BOUND
        for p in self.procs:
            try:
                p.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
            p.stderr.close()


def measure(
    n: int,
    posts: int,
    *,
    options: dict[str, Any] | None = None,
    seed: int = 1,
    bootstraps: int = 1,
    gap_ms: float = GAP_MS,
    offload: bool = True,
) -> dict[str, object]:
    """The run the module docstring describes; returns its figures."""
    started = time.monotonic()
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="p2pcomm-bench-gossip-real-"))
    nodes = Nodes()
    try:
        group, paths = make_stores(folder, n)
        t_spawn = time.monotonic()
        nodes.spawn(folder, group, paths, options or {}, offload)
        nodes.start(rng, bootstraps)
        t_up = time.monotonic()
        if not nodes.wait_until(nodes.settled, SETTLE_BOUND):
            state = [(p.index, p.peers, p.synced, p.neighbours) for p in nodes.procs]
            raise RuntimeError(f"overlay not settled in {SETTLE_BOUND} s: {state}")
        t_settled = time.monotonic()

        before = nodes.ask_all("stats", "stats")
        t_posts = time.monotonic()
        nodes.post(rng, posts, gap_ms)
        nodes.wait_until(lambda: len(nodes.posted) == posts, REPLY_BOUND)
        nodes.wait_until(lambda: nodes.delivered(posts), DELIVERY_BOUND)
        post_s = time.monotonic() - t_posts
        after = nodes.ask_all("stats", "stats")
        ids = sorted(nodes.posted)
        holds = nodes.ask_all("holds " + " ".join(ids), "holds")
        figures = _figures(nodes, ids, before, after, holds)
        figures["real_start_seconds"] = round(t_up - t_spawn, 2)
        figures["real_settle_seconds"] = round(t_settled - t_up, 2)
        figures["real_post_phase_seconds"] = round(post_s, 2)
        figures["real_seconds"] = round(time.monotonic() - started, 2)
        return figures
    finally:
        nodes.close()
        shutil.rmtree(folder, ignore_errors=True)


def _figures(
    nodes: Nodes,
    ids: list[str],
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    holds: list[dict[str, Any]],
) -> dict[str, object]:
    n, posts = len(nodes.procs), len(ids)
    held = [set(h["held"]) for h in holds]
    pairs = n * posts
    present = sum(len(h) for h in held)

    def delta(key: str) -> float:
        return float(sum(a[key] - b[key] for a, b in zip(after, before, strict=True)))

    graph: dict[int, set[int]] = {i: set() for i in range(n)}
    for i, st in enumerate(after):
        for key in st["peers"]:
            j = nodes.by_key.get(key)
            if j is not None:
                graph[i].add(j)
                graph[j].add(i)
    dist = {a: _hops(graph, a) for a in {author for author, _, _ in nodes.posted.values()}}

    latency: list[float] = []
    per_hop: list[float] = []
    hops_max = 0
    delivered_remote = 0
    for eid in ids:
        author, t0, _ = nodes.posted[eid]
        for j, p in enumerate(nodes.procs):
            if j == author or eid not in held[j]:
                continue
            delivered_remote += 1
            t = p.held.get(eid)
            if t is None:
                continue
            ms = (t - t0) * 1000
            latency.append(ms)
            hops = dist[author].get(j)
            if hops:
                per_hop.append(ms / hops)
                hops_max = max(hops_max, hops)
    mean_size = sum(size for _, _, size in nodes.posted.values()) / max(1, posts)
    gossiping = all(st["gossip_payloads"] is not None for st in after)
    receivers = max(1, (n - 1) * posts)
    per_entry = delta("wire_bytes_sent") / max(1, delivered_remote)
    return {
        "real_nodes": n,
        "real_entries": posts,
        "real_delivery_ratio": round(present / pairs, 6) if pairs else 0.0,
        "real_delivery_missed": pairs - present,
        "real_payload_copies_per_node": round(delta("entries_received") / receivers, 3),
        "real_gossip_payloads_per_node": (
            round(delta("gossip_payloads") / receivers, 3) if gossiping else None
        ),
        "real_mean_entry_bytes": round(mean_size, 1),
        "real_bytes_per_delivered_entry": round(per_entry, 1),
        "real_bytes_within_bound": int(per_entry <= 1.3 * mean_size + 64),
        "real_connections_max": max(st["max_peers"] for st in after),
        "real_connections_bound": nodes.bound if nodes.bound is not None else "unbounded",
        "real_connections_mean": round(sum(len(st["peers"]) for st in after) / n, 2),
        "real_neighbours_mean": (
            round(sum(len(st["neighbours"]) for st in after) / n, 2) if gossiping else None
        ),
        "real_hop_latency_p50_ms": round(_p(per_hop, 0.5), 2),
        "real_hop_latency_p99_ms": round(_p(per_hop, 0.99), 2),
        "real_latency_p50_ms": round(_p(latency, 0.5), 2),
        "real_latency_p99_ms": round(_p(latency, 0.99), 2),
        "real_hops_max": hops_max,
        "real_cpu_ms_per_node_per_entry": round(delta("cpu_s") * 1000 / max(1, pairs), 2),
    }


def run(quick: bool) -> dict[str, object]:
    n = int(os.environ.get("GOSSIP_REAL_NODES", "8" if quick else "20"))
    posts = int(os.environ.get("GOSSIP_REAL_ENTRIES", "30" if quick else "100"))
    seed = int(os.environ.get("GOSSIP_REAL_SEED", "1"))
    bootstraps = int(os.environ.get("GOSSIP_REAL_BOOTSTRAPS", "1"))
    gap_ms = float(os.environ.get("GOSSIP_REAL_GAP_MS", str(GAP_MS)))
    offload = os.environ.get("GOSSIP_REAL_STORE_OFFLOAD", "1") != "0"
    options = json.loads(os.environ.get("GOSSIP_REAL_NODE_OPTIONS", "{}"))
    if not isinstance(options, dict):
        raise SystemExit("GOSSIP_REAL_NODE_OPTIONS must be a JSON object")
    return measure(
        n,
        posts,
        options=options,
        seed=seed,
        bootstraps=bootstraps,
        gap_ms=gap_ms,
        offload=offload,
    )
