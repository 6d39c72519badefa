"""Flood benchmark: a node under hostile peers, each an OS process, over loopback TCP.

    python -m benchmarks floods [--quick] --json bench-floods.json

The *target* (``_flood_peer target``) is a node (``open_node``, members only) on a
fresh SQLite store holding one group: its founder (the target's key), 2,000 posts, and
members made by this process with the library: an honest member and the attackers'
member keys. The target posts an entry every 50 ms whose text is when it was due; an
*honest member* (``_flood_peer honest``, its store a copy of the target's: in sync from
the start) connects, and prints when each post arrives (``time.monotonic()`` is one
clock for all processes on Linux). After a few seconds at rest an attack runs as its
own process for a fixed time (10 s, ``--quick`` 3 s), then a pause. Each attack meets
a fresh target and honest member, so that what one leaves behind (a ban, memory, a
backlog) does not count against the next. The attacks:

* ``handshakes``: full Noise handshakes from fresh random keys, 8 connections at once;
* ``partial``: 150 connections from fresh keys, each holding all but the last byte of
  a 1 MiB sync message;
* ``idle``: 40 members that ask for everything and never read;
* ``empty-stream``: a member streaming empty FORKS and WANT messages;
* ``want-amplify``: a member asking again and again for 2,000 stored entries;
* ``bogus-forks``: a member sending fork proofs with invalid signatures;
* ``pending-poison``: a member sending validly signed entries whose parents never
  come, never sending DONE;
* ``repeat``: a member sending the same 500 entries of its own again and again.

And one scenario that is not an attack, ``catch-up``: a member whose store holds
20,000 posts the target lacks (5,000 with ``--quick``; written while the two were
apart) connects with the library's node, and the target stores them all while it
serves the honest member: store work for one peer must not hold up the node's own
posts (``catch-up_append_p99_ms``). It must not be refused, and ``catch-up_stored``
counts the member's posts the target holds at the end. Its ``honest`` latencies are
not a fairness figure: the target's posts link to the entries it caught up on, so the
honest member applies them only once it holds those thousands of entries too (03:
causal order).

The timed posts use the node's low-level ``append`` (about 1.5 ms of CPU each), not
``LiveGroup.post``, which plans on the group's view (about 20 ms each with this
history): at one post every 50 ms the planning alone would load the target.

Figures, per attack: ``<attack>_honest_p50_ms`` / ``_p99_ms`` (latency of the posts due
during the attack, from when due to arrival at the honest member; a post that never
arrived counts as waiting until the end of the pause), ``<attack>_rss_growth_mb`` (the
target's VmRSS: highest during the attack and its pause minus just before it;
``<attack>_rss_kept_mb`` the same at the end of the pause, the attacker gone), and
``<attack>_refused`` (1 if the target closed and refused the attacker: a PeerMisbehaved
event, a refused peer, or a connection its transport refused);
``<attack>_honest_disconnected`` counts the honest member's connections that ended
(the reasons go to stderr); ``<attack>_append_p99_ms``: the target's own posts due
during the attack, from when due until stored (``Node.append``). Summary:
``flood_honest_p99_ms`` (worst over the attacks) and ``attack_rss_growth_mb`` (worst);
``catch-up_append_p99_ms`` beside them.
Latency figures are wall-clock and depend on what else the machine runs.
"""

from __future__ import annotations

import json
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from p2pcomm.community import Group
from p2pcomm.core import crypto
from p2pcomm.core.content import Post
from p2pcomm.core.identity import KeyPair
from p2pcomm.core.membership import Kind
from p2pcomm.group import GroupLog
from p2pcomm.store import SqliteStore

TARGETS = {
    "flood_honest_p99_ms": "< 250",
    "attack_rss_growth_mb": "<= 64",
    "catch-up_append_p99_ms": "< 250",
    "catch-up_refused": "= 0",
}

ATTACKS = (
    "handshakes",
    "partial",
    "idle",
    "empty-stream",
    "want-amplify",
    "bogus-forks",
    "pending-poison",
    "repeat",
)
#: Honest scenarios run like the attacks (a peer process beside the honest member).
SCENARIOS = (*ATTACKS, "catch-up")
#: Posts the catch-up member holds that the target lacks (full run, --quick).
CATCH_UP = (20_000, 5_000)
#: Seconds between the target's timed posts.
PERIOD = 0.05
HISTORY = 2000
IDLE_MEMBERS = 40


def _key(label: str) -> KeyPair:
    return KeyPair(crypto.blake2b_256(b"bench-floods-" + label.encode()))


TARGET = _key("target")
HONEST = _key("honest")
#: Member keys of the attacks: the idle attack's 40, then one per member attack.
ATTACKERS = [_key(f"attacker-{i}") for i in range(IDLE_MEMBERS + len(SCENARIOS))]


def _seeds_for(name: str) -> list[bytes]:
    if name == "idle":
        return [k.seed() for k in ATTACKERS[:IDLE_MEMBERS]]
    return [ATTACKERS[IDLE_MEMBERS + SCENARIOS.index(name)].seed()]


def build_catch_up(built: Path, path: Path, group: bytes, posts: int) -> bytes:
    """A copy of the target's store to which the catch-up member added ``posts`` posts.
    Returns that member's id."""
    shutil.copyfile(built, path)
    key = KeyPair(_seeds_for("catch-up")[0])
    with SqliteStore(path, durable=False) as store:
        log = GroupLog(store, group)
        log.append_many(
            key, [(Kind.POST, Post(text=f"written apart {i}").encode()) for i in range(posts)]
        )
        log.close()
    return key.public_key


def count_by(path: Path, group: bytes, author: bytes) -> int:
    """The posts by ``author`` in the store (its node may add key entries of its own,
    spec/12-encryption.md W1, which are not what it had to give)."""
    with SqliteStore(path) as store:
        return sum(
            1
            for _, e in store.iter_entries(group)
            if e.header.author == author and e.header.kind == Kind.POST
        )


def build(path: Path) -> tuple[bytes, list[bytes]]:
    """The target's store: the group, its members, and the history. Returns the group
    id and the ids of the history's posts."""
    with SqliteStore(path, durable=False) as store:
        club = Group.create(store, TARGET, "floods", founder_name="target")
        club.add(HONEST.public_key, name="honest")
        for i, k in enumerate(ATTACKERS):
            club.add(k.public_key, name=f"attacker {i}")
        log = GroupLog(store, club.id)
        posts = log.append_many(
            TARGET, [(Kind.POST, Post(text=f"history {i}").encode()) for i in range(HISTORY)]
        )
        log.close()
        return club.id, [e.id for e in posts]


def _peer(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks._flood_peer", *args]


class _Process:
    """A child process whose stdout lines are read by a thread: (time, line) in order."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))

    def expect(self, prefix: str, timeout: float) -> tuple[float, str]:
        """The next line starting with ``prefix`` (earlier lines are dropped)."""
        end = time.monotonic() + timeout
        while True:
            try:
                at, line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"no {prefix!r} line within {timeout} s") from None
            if line.startswith(prefix):
                return at, line

    def take(self) -> list[tuple[float, str]]:
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class _Latencies:
    """The honest member's arrivals, by when each post was due."""

    def __init__(self) -> None:
        self.arrivals: dict[float, float] = {}
        #: When the honest member's connection ended, and why.
        self.downs: list[tuple[float, str]] = []

    def collect(self, honest: _Process) -> None:
        for at, line in honest.take():
            if line.startswith("LAT "):
                _, due, latency = line.split()
                self.arrivals.setdefault(float(due), float(latency))
            elif line.startswith("DOWN "):
                self.downs.append((at, line[5:]))

    def window(self, start: float, end: float, now: float) -> tuple[list[float], int]:
        """Latencies (s) of the posts due in [start, end); posts due then that never
        arrived count as waiting until ``now``. Returns them and how many never came."""
        got = [lat for due, lat in self.arrivals.items() if start <= due < end]
        expected = int((end - start) / PERIOD)
        lost = max(0, expected - len(got) - 1)
        return got + [now - end] * lost, lost


class _TargetLog:
    """Counts the target's MISBEHAVED and REFUSED lines; answers ``stats``."""

    def __init__(self, target: _Process) -> None:
        self.target = target
        self.misbehaved = 0
        self.refused = 0
        self.refusals: dict[str, int] = {}

        #: The target's own posts: when due -> seconds until stored.
        self.appends: dict[float, float] = {}

    def collect(self) -> None:
        for _, line in self.target.take():
            self._absorb(line)

    def _absorb(self, line: str) -> None:
        if line.startswith("APPEND "):
            _, due, seconds = line.split()
            self.appends[float(due)] = float(seconds)
        elif line.startswith("MISBEHAVED "):
            self.misbehaved += 1
        elif line.startswith("REFUSED "):
            self.refused += 1
            what = line.split(" ", 1)[1]
            self.refusals[what] = self.refusals.get(what, 0) + 1

    def stats(self) -> dict[str, int]:
        self.target.send("stats")
        end = time.monotonic() + 30
        while True:
            try:
                _, line = self.target.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("the target did not answer 'stats'") from None
            if line.startswith("STATS "):
                doc: dict[str, int] = json.loads(line.split(" ", 1)[1])
                return doc
            self._absorb(line)


def run_attack(
    name: str,
    *,
    port: int,
    group: bytes,
    ids_file: Path,
    duration: float,
    pause: float,
    target: _Process,
    log: _TargetLog,
    honest: _Process,
    latencies: _Latencies,
    store: Path | None = None,
) -> dict[str, float | int]:
    before = log.stats()
    misbehaved0, refused0 = log.misbehaved, log.refused
    rss0 = rss_mb(target.proc.pid)
    seeds = ",".join(s.hex() for s in _seeds_for(name))
    extra = [str(store)] if store is not None else []
    attacker = _Process(
        _peer("attack", name, str(port), group.hex(), seeds, str(duration), str(ids_file), *extra)
    )
    start, _ = attacker.expect("START", 30)
    peak = rss0
    while attacker.proc.poll() is None and time.monotonic() < start + duration + 60:
        peak = max(peak, rss_mb(target.proc.pid))
        latencies.collect(honest)
        log.collect()
        time.sleep(0.05)
    end = min(time.monotonic(), start + duration)
    report: dict[str, object] = {}
    for _, line in attacker.take():
        if line.startswith("{"):
            report = json.loads(line)
    attacker.stop()
    if report.get("reasons"):
        print(
            f"{name}: how the target ended the attacker's connections: {report['reasons']}",
            file=sys.stderr,
        )
    settle = time.monotonic() + pause
    while time.monotonic() < settle:
        peak = max(peak, rss_mb(target.proc.pid))
        latencies.collect(honest)
        log.collect()
        time.sleep(0.05)
    kept = rss_mb(target.proc.pid) - rss0
    after = log.stats()
    values, lost = latencies.window(start, end, time.monotonic())
    downs = [why for at, why in latencies.downs if at >= start]
    refused = (
        log.misbehaved > misbehaved0
        or log.refused > refused0
        or after["refused_peers"] > before["refused_peers"]
    )
    appends = [v for due, v in log.appends.items() if start <= due < end]
    figures: dict[str, float | int] = {
        f"{name}_honest_p50_ms": round(_percentile(values, 50) * 1000, 1),
        f"{name}_honest_p99_ms": round(_percentile(values, 99) * 1000, 1),
        f"{name}_append_p99_ms": round(_percentile(appends, 99) * 1000, 1),
        f"{name}_honest_lost": lost,
        f"{name}_rss_growth_mb": round(peak - rss0, 1),
        f"{name}_rss_kept_mb": round(kept, 1),
        f"{name}_refused": int(refused),
        f"{name}_honest_disconnected": len(downs),
    }
    if downs:
        print(f"{name}: the honest member's connection ended: {downs}", file=sys.stderr)
    # What the attacker did: handshakes completed, connections closed or refused by
    # the target, messages or entries sent.
    for key, value in sorted(report.items()):
        if isinstance(value, int):
            figures[f"{name}_attacker_{key}"] = value
    return figures


def _rest(latencies: _Latencies, honest: _Process, seconds: float) -> list[float]:
    """The honest member's latencies over ``seconds`` with no attack."""
    start = time.monotonic()
    while time.monotonic() < start + seconds:
        latencies.collect(honest)
        time.sleep(0.05)
    latencies.collect(honest)
    return latencies.window(start, time.monotonic() - 0.5, time.monotonic())[0]


def run(
    quick: bool = False,
    attacks: Sequence[str] = SCENARIOS,
    *,
    duration: float | None = None,
    rest: float | None = None,
    pause: float | None = None,
) -> dict[str, float | int]:
    """Each attack meets a fresh target and honest member (copies of the same stores):
    what one attack leaves behind (a ban, memory, a backlog) does not count against
    the next. ``duration``, ``rest`` and ``pause`` (seconds) override the sizes."""
    duration = duration or (3.0 if quick else 10.0)
    pause = pause or (1.0 if quick else 3.0)
    rest = rest or (1.5 if quick else 3.0)
    figures: dict[str, float | int] = {}
    tmp = Path(tempfile.mkdtemp(prefix="p2pcomm-bench-floods-"))
    at_rest: list[float] = []
    rss_rest: list[float] = []
    try:
        built = tmp / "target.db"
        group, ids = build(built)
        ids_file = tmp / "ids.txt"
        ids_file.write_text("".join(i.hex() + "\n" for i in ids))
        for name in attacks:
            # The honest member starts in sync: its store is a copy of the target's.
            target_db, honest_db = tmp / f"{name}-target.db", tmp / f"{name}-honest.db"
            shutil.copyfile(built, target_db)
            shutil.copyfile(built, honest_db)
            extra: Path | None = None
            if name == "catch-up":
                extra = tmp / "catch-up.db"
                member = build_catch_up(built, extra, group, CATCH_UP[quick])
            processes: list[_Process] = []
            try:
                target = _Process(
                    _peer("target", str(target_db), group.hex(), TARGET.seed().hex(), str(PERIOD))
                )
                processes.append(target)
                port = int(target.expect("PORT ", 60)[1].split()[1])
                honest = _Process(
                    _peer("honest", str(honest_db), group.hex(), HONEST.seed().hex(), str(port))
                )
                processes.append(honest)
                honest.expect("READY", 60)
                latencies = _Latencies()
                at_rest += _rest(latencies, honest, rest)
                rss_rest.append(rss_mb(target.proc.pid))
                figures.update(
                    run_attack(
                        name,
                        port=port,
                        group=group,
                        ids_file=ids_file,
                        duration=duration,
                        pause=pause,
                        target=target,
                        log=_TargetLog(target),
                        honest=honest,
                        latencies=latencies,
                        store=extra,
                    )
                )
            finally:
                for p in reversed(processes):
                    p.stop()
            if name == "catch-up":
                figures["catch-up_posts"] = CATCH_UP[quick]
                figures["catch-up_stored"] = count_by(target_db, group, member)
        figures["rest_honest_p50_ms"] = round(_percentile(at_rest, 50) * 1000, 1)
        figures["rest_honest_p99_ms"] = round(_percentile(at_rest, 99) * 1000, 1)
        figures["rest_rss_mb"] = round(max(rss_rest), 1)
        floods = [n for n in attacks if n in ATTACKS]
        if floods:
            figures["flood_honest_p99_ms"] = max(figures[f"{n}_honest_p99_ms"] for n in floods)
            figures["attack_rss_growth_mb"] = max(figures[f"{n}_rss_growth_mb"] for n in floods)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return figures
