"""Several hosts on one machine, and a censor between them, for the scenarios in
``examples/`` that show what p2pcomm survives.

Each host is a network namespace with one veth pair to a *router* namespace that
forwards between them. A censor acts at the router, as one would on a real network:
:meth:`Lab.block` adds policy-routing rules of type ``blackhole`` there, so the
kernel silently drops every packet between two hosts (real packet loss: a dial times
out, a live connection stalls), and :meth:`Lab.unblock` removes them. Addresses are
``169.254.N.2`` (host N) and ``169.254.N.1`` (the router's side), link-local and only
inside namespaces the lab makes; nothing reaches the machine's own network, and every
namespace is deleted when the lab closes, whatever happened.

A router does not forward multicast, so mDNS does not cross it. ``Lab(..., lan=True)``
makes a local network instead: the router namespace holds a bridge (a switch) with
every host's link on it, so the hosts share one Ethernet segment and one subnet,
``169.254.0.0/16``, host N at ``169.254.128.N`` (a range of its own: an address
remembered from a routed lab reaches nobody on a LAN one). Nothing routes there, and
there is nothing to block at (:meth:`Lab.block` refuses).

Making namespaces needs root. Elsewhere :func:`ensure_lab` runs the scenario again
inside a new user namespace (``unshare --user --map-root-user --net --mount``), where
the process is root over namespaces it owns; where neither is allowed,
:class:`LabUnavailable` says why and a scenario exits with :data:`SKIPPED`.

Each host's node is ``p2pcomm run --json`` in its namespace (:class:`NodeProcess`);
the other commands run there too (:meth:`Host.cli`), as a person would type them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SKIPPED",
    "CommandFailed",
    "Host",
    "Lab",
    "LabUnavailable",
    "NodeProcess",
    "ensure_lab",
    "Line",
    "found_group",
    "item_ids",
    "joined",
    "left",
    "median_ms",
    "post_timed",
    "readable",
    "scenario",
    "showing",
    "synced",
    "synced_with",
    "wait_each",
]

#: A scenario's exit status when this machine cannot make namespaces (automake's "skip").
SKIPPED = 77

#: How long one command may take, and the default wait for a node's line.
DEADLINE = 60.0

_REEXEC_MARK = "P2PCOMM_LAB_USERNS"


def _die_with_parent() -> None:
    """In a child before it runs the command: end it (SIGTERM) when the scenario's
    process dies, even killed outright, so that no node outlives its lab. Linux's
    PR_SET_PDEATHSIG; it is kept across ``ip netns exec``'s exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: nothing to arrange
        pass


class LabUnavailable(Exception):
    """Network namespaces cannot be made here; the message says why."""


class CommandFailed(Exception):
    """A ``p2pcomm`` command exited non-zero; the message holds what it printed."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)


def ensure_lab() -> None:
    """Make sure this process may create network namespaces. As root, nothing to do;
    otherwise this process is replaced by itself inside a new user namespace (where it
    is root over the namespaces it makes). Raises :class:`LabUnavailable` when
    neither works."""
    if shutil.which("ip") is None:
        raise LabUnavailable("the ip command (iproute2) is not installed")
    if os.geteuid() == 0:
        if os.environ.get(_REEXEC_MARK) == "1":
            # Inside the user namespace: /run belongs to the real root, so
            # `ip netns add` gets a private /run of its own (this mount namespace only).
            res = subprocess.run(
                ["mount", "-t", "tmpfs", "tmpfs", "/run"], capture_output=True, text=True
            )
            if res.returncode != 0:
                raise LabUnavailable(f"cannot mount a private /run: {res.stderr.strip()}")
            os.environ[_REEXEC_MARK] = "2"
        return
    if os.environ.get(_REEXEC_MARK) or shutil.which("unshare") is None:
        raise LabUnavailable(
            f"network namespaces need root or user namespaces; running as uid {os.geteuid()}"
        )
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "--mount", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise LabUnavailable(
            f"not root, and user namespaces are not allowed: {probe.stderr.strip()}"
        )
    sys.stdout.flush()
    os.environ[_REEXEC_MARK] = "1"
    os.execvp(
        "unshare",
        ["unshare", "--user", "--map-root-user", "--net", "--mount", "--",
         sys.executable, *sys.argv],
    )  # fmt: skip


def scenario(body: Callable[[], int]) -> int:
    """Run a scenario's ``body`` as a command: :data:`SKIPPED` (with the reason) where
    namespaces cannot be made, 1 with one line when a command fails, a node's line does
    not come in time or a check (``assert``) fails, else what ``body`` returns (0: the
    claim held)."""
    try:
        ensure_lab()
    except LabUnavailable as exc:
        print(f"skipped: {exc}")
        return SKIPPED
    try:
        return body()
    except (AssertionError, CommandFailed, TimeoutError) as exc:
        print(f"claim failed: {exc or type(exc).__name__}")
        return 1


@dataclass
class Host:
    """One machine of the lab: a namespace, an address and a p2pcomm home."""

    name: str
    ns: str
    ip: str
    home: Path
    lab: Lab = field(repr=False)
    #: The member id of this host's identity, once made (``p2pcomm init``).
    member: str = ""

    def command(self, *args: str, module: str = "p2pcomm") -> list[str]:
        """``python -m MODULE ARGS --home HOME`` run inside this host's namespace."""
        return [
            "ip", "netns", "exec", self.ns,
            sys.executable, "-m", module, *args, "--home", str(self.home),
        ]  # fmt: skip

    def cli(self, *args: str, check: bool = True) -> Any:
        """Run a command here with ``--json``; its parsed output (raises
        :class:`CommandFailed` when it fails and ``check``; otherwise a failure gives
        ``{"exit": STATUS, "error": STDERR}``)."""
        return self.begin(*args, check=check)()

    def begin(self, *args: str, check: bool = True) -> Callable[[], Any]:
        """Start a command here with ``--json`` and return at once (the nodes can be
        read meanwhile); call what is returned to wait for the command and get its
        parsed output, as :meth:`cli` gives it."""
        proc = subprocess.Popen(
            [*self.command(*args), "--json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=self.lab.env, preexec_fn=_die_with_parent,
        )  # fmt: skip
        what = f"{self.name}: p2pcomm {' '.join(args)}"

        def finish() -> Any:
            try:
                out, err = proc.communicate(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise CommandFailed(f"{what} did not end") from None
            if "Traceback" in err:
                raise CommandFailed(f"{what} crashed:\n{err}")
            if proc.returncode != 0:
                if not check:
                    return {"exit": proc.returncode, "error": err.strip()}
                raise CommandFailed(f"{what} exited {proc.returncode}: {out.strip()} {err.strip()}")
            return json.loads(out) if out.strip() else None

        return finish

    def start(
        self,
        *args: str,
        peers: Sequence[Host] = (),
        module: str = "p2pcomm",
        mode: Sequence[str] = (),
    ) -> NodeProcess:
        """``p2pcomm run`` here: listening on this host's address (port 7447), no
        mDNS unless asked, dialling ``peers``. ``module`` and ``mode`` run another
        program that takes ``run``'s arguments after its own ``mode`` (the hostile
        node of :mod:`p2pcomm.testing.hostile`)."""
        extra: list[str] = []
        for peer in peers:
            extra += ["--peer", peer.address()]
        if "--interface" not in args:
            extra.append("--no-mdns")
        argv = self.command(
            *mode, "run", "--json", "--listen", self.address(), *extra, *args, module=module
        )
        node = NodeProcess(self.name, argv, self.lab.env)
        self.lab.processes.append(node)
        node.wait(lambda d: d.get("event") == "started")
        return node

    def address(self) -> str:
        return f"{self.ip}:7447"


class NodeProcess:
    """A running ``p2pcomm run --json``; its lines are read with deadlines and kept,
    each with the wall-clock time it was read (``time.time()``, comparable with the
    millisecond timestamps entries carry: every host shares this machine's clock)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, preexec_fn=_die_with_parent,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._pending = b""
        #: Every line so far: (wall-clock time read, document).
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._cursor = 0

    def _read(self, deadline: float) -> bool:
        """Read what is there (waiting until ``deadline``); False when nothing came."""
        assert self.proc.stdout is not None
        left = deadline - time.monotonic()
        if left <= 0 or not self._selector.select(left):
            return False
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            raise CommandFailed(f"{self.name}'s node ended:\n{self.stderr()}")
        self._pending += chunk
        now = time.time()
        while b"\n" in self._pending:
            line, _, self._pending = self._pending.partition(b"\n")
            try:
                doc = json.loads(line)
            except ValueError:
                doc = {"event": "text", "line": line.decode(errors="replace")}
            self.seen.append((now, doc if isinstance(doc, dict) else {"value": doc}))
        return True

    def wait(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = DEADLINE
    ) -> tuple[float, dict[str, Any]]:
        """The first line, among those seen so far and to come, that ``pred`` accepts,
        with the time it was read. Raises ``TimeoutError`` when none comes in time."""
        deadline = time.monotonic() + timeout
        index = 0
        while True:
            while index < len(self.seen):
                at, doc = self.seen[index]
                index += 1
                if pred(doc):
                    return at, doc
            if not self._read(deadline) and time.monotonic() >= deadline:
                raise TimeoutError(f"{self.name}: no expected line in {timeout:.0f} s")

    def drain(self, seconds: float) -> None:
        """Keep reading for ``seconds`` (to see what does, or does not, arrive)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(deadline)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [doc for _, doc in self.seen if doc.get("event") == name]

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, and wait; the exit status (130 for a clean stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode


_LAB_NS = re.compile(r"p2p-(?:r|[0-9]+)-([0-9a-f]{5,})$")


def _sweep() -> None:
    """Delete the namespaces of labs whose process is gone (killed before it could
    clean up: a deadline's SIGKILL). Their nodes are gone already: each ends with its
    lab's process (:func:`_die_with_parent`)."""
    listed = _ip("netns", "list")
    for line in listed.stdout.splitlines():
        name = line.split(" ", 1)[0]
        match = _LAB_NS.match(name)
        if match is None:
            continue
        pid = int(match.group(1)[:-4], 16)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _ip("netns", "del", name)
        except PermissionError:  # alive, someone else's
            pass


class Lab:
    """Hosts joined through a router namespace. Use as a context manager: every
    namespace, process and veth is gone after ``with``, whatever happened."""

    def __init__(self, names: Sequence[str], folder: Path, *, lan: bool = False) -> None:
        if len(set(names)) != len(names) or not 0 < len(names) <= 200:
            raise ValueError("host names must be distinct, 1 to 200 of them")
        #: The hosts share one link through a bridge (see the module docstring).
        self.lan = lan
        # The creator's pid in every name lets a later lab delete what one killed
        # outright left behind (:func:`_sweep`); names stay within 15 characters.
        self.tag = f"{os.getpid():x}{secrets.token_hex(2)}"
        self.router = f"p2p-r-{self.tag}"
        self.folder = folder
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("P2PCOMM_")}
        self.env["HOME"] = str(folder)
        self.env.pop(_REEXEC_MARK, None)
        self.hosts: dict[str, Host] = {}
        self.processes: list[NodeProcess] = []
        self._made: list[str] = []
        self._blocked: set[tuple[str, str]] = set()
        self._names = list(names)

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, *args: str) -> None:
        res = _ip(*args)
        if res.returncode != 0:
            raise LabUnavailable(f"ip {' '.join(args)}: {res.stderr.strip()}")

    def _build(self) -> None:
        _sweep()
        self._run("netns", "add", self.router)
        self._made.append(self.router)
        self._run("-n", self.router, "link", "set", "lo", "up")
        forward = subprocess.run(
            ["ip", "netns", "exec", self.router, "sh", "-c",
             "echo 1 > /proc/sys/net/ipv4/ip_forward"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if forward.returncode != 0:
            raise LabUnavailable(f"the router cannot forward: {forward.stderr.strip()}")
        bridge = f"b{self.tag}"
        if self.lan:
            self._run("-n", self.router, "link", "add", bridge, "type", "bridge")
            self._run("-n", self.router, "link", "set", bridge, "up")
        for n, name in enumerate(self._names, start=1):
            ns = f"p2p-{n}-{self.tag}"
            self._run("netns", "add", ns)
            self._made.append(ns)
            inner, outer = f"h{n}{self.tag}", f"r{n}{self.tag}"
            if self.lan:
                ip = f"169.254.128.{n}"
                self._plug(ns, inner, outer, f"{ip}/16")
                self._run("-n", self.router, "link", "set", outer, "master", bridge)
                self._run("-n", self.router, "link", "set", outer, "up")
            else:
                ip = f"169.254.{n}.2"
                self._plug(ns, inner, outer, f"{ip}/24")
                self._run("-n", self.router, "addr", "add", f"169.254.{n}.1/24", "dev", outer)
                self._run("-n", self.router, "link", "set", outer, "up")
                self._run("-n", ns, "route", "add", "default", "via", f"169.254.{n}.1")
            self.hosts[name] = Host(name=name, ns=ns, ip=ip, home=self.folder / name, lab=self)

    def _plug(self, ns: str, inner: str, outer: str, address: str) -> None:
        """A veth pair from host ``ns`` (``inner``, at ``address``, up) to the router
        (``outer``, left down for the caller to attach)."""
        for step in (
            ("link", "add", inner, "type", "veth", "peer", "name", outer),
            ("link", "set", inner, "netns", ns),
            ("link", "set", outer, "netns", self.router),
            ("-n", ns, "link", "set", "lo", "up"),
            ("-n", ns, "addr", "add", address, "dev", inner),
            ("-n", ns, "link", "set", inner, "up"),
        ):
            self._run(*step)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def _rules(self, a: Host, b: Host, verb: str) -> None:
        for src, dst in ((a, b), (b, a)):
            self._run(
                "-n", self.router, "rule", verb, "from", f"{src.ip}/32", "to", f"{dst.ip}/32",
                "priority", "100", "blackhole",
            )  # fmt: skip

    def block(self, a: str, b: str) -> None:
        """The censor drops every packet between hosts ``a`` and ``b``, both ways."""
        if self.lan:
            raise ValueError("a LAN lab's hosts share one link: there is no router to block at")
        key = (min(a, b), max(a, b))
        if key not in self._blocked:
            self._rules(self.hosts[a], self.hosts[b], "add")
            self._blocked.add(key)

    def unblock(self, a: str, b: str) -> None:
        key = (min(a, b), max(a, b))
        if key in self._blocked:
            self._rules(self.hosts[a], self.hosts[b], "del")
            self._blocked.discard(key)

    def partition(self, left: Sequence[str], right: Sequence[str]) -> None:
        """Block every link between a host of ``left`` and one of ``right``."""
        for a in left:
            for b in right:
                self.block(a, b)

    def heal(self) -> None:
        """Lift every block."""
        for a, b in sorted(self._blocked):
            self.unblock(a, b)

    def close(self) -> None:
        for node in self.processes:
            with contextlib.suppress(Exception):  # keep tearing down
                node.stop()
        self.processes.clear()
        for ns in reversed(self._made):
            _ip("netns", "del", ns)  # takes its veth ends with it
        self._made.clear()


def wait_each(
    nodes: Sequence[NodeProcess],
    pred: Callable[[dict[str, Any]], bool],
    timeout: float = DEADLINE,
) -> list[tuple[float, dict[str, Any]]]:
    """For each of ``nodes``, the first line ``pred`` accepts, with the time it was
    read, as :meth:`NodeProcess.wait` gives; the nodes are read together, so that each
    line's time is when it came, whichever node it came from (waiting for one node
    after another would time the later ones when the earlier ones were done). Raises
    ``TimeoutError`` when some node shows none in time."""
    deadline = time.monotonic() + timeout
    found: dict[int, tuple[float, dict[str, Any]]] = {}
    cursors = [0] * len(nodes)
    with selectors.DefaultSelector() as selector:
        for i, node in enumerate(nodes):
            assert node.proc.stdout is not None
            selector.register(node.proc.stdout, selectors.EVENT_READ, i)
        while True:
            for i, node in enumerate(nodes):
                while i not in found and cursors[i] < len(node.seen):
                    at, doc = node.seen[cursors[i]]
                    cursors[i] += 1
                    if pred(doc):
                        found[i] = (at, doc)
            if len(found) == len(nodes):
                return [found[i] for i in range(len(nodes))]
            left = deadline - time.monotonic()
            if left <= 0:
                late = ", ".join(n.name for i, n in enumerate(nodes) if i not in found)
                raise TimeoutError(f"{late}: no expected line in {timeout:.0f} s")
            for key, _ in selector.select(left):
                nodes[key.data]._read(time.monotonic() + left)  # ready: returns at once


def item_ids(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The items a node's line tells of (item-added, items-added, item-updated), by id."""
    if doc.get("event") in ("item-added", "item-updated"):
        return {doc["item"]["id"]: doc["item"]}
    if doc.get("event") == "items-added":
        return {i["id"]: i for i in doc["items"]}
    return {}


def readable(item_id: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for :meth:`NodeProcess.wait`: the line shows item ``item_id``
    opened (its text readable)."""

    def pred(doc: dict[str, Any]) -> bool:
        item = item_ids(doc).get(item_id)
        return item is not None and item.get("text") is not None

    return pred


def showing(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for :meth:`NodeProcess.wait`: the line shows an item whose text
    (readable) is ``text``."""
    return lambda doc: any(i.get("text") == text for i in item_ids(doc).values())


#: A predicate on a node's JSON line.
Line = Callable[[dict[str, Any]], bool]


def joined(member: str) -> Line:
    """The node tells that ``member`` (a member id) became a member."""
    return lambda d: d.get("event") == "member-joined" and d.get("member") == member


def left(member: str) -> Line:
    """The node tells that ``member`` is no longer a member (removed, banned, left,
    expelled)."""
    return lambda d: d.get("event") == "member-left" and d.get("member") == member


def synced_with(member: str) -> Line:
    """The node finished a sync with ``member``'s node."""
    return lambda d: d.get("event") == "synced" and d.get("peer") == member


def synced(group: str) -> Line:
    """The node finished a sync of ``group`` with some peer."""
    return lambda d: d.get("event") == "synced" and d.get("group") == group


def median_ms(values: Sequence[float]) -> str:
    """Seconds as people read a delivery time: ``median N ms, max M ms``."""
    return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"


def post_timed(
    lab: Lab,
    nodes: Mapping[str, NodeProcess],
    author: str,
    readers: Sequence[str],
    group: str,
    text: str,
    within: float = DEADLINE,
) -> tuple[str, dict[str, float]]:
    """``author`` posts ``text`` to ``group`` with the CLI while the readers' nodes
    are watched together: the post's id, and per reader the seconds from the entry's
    own timestamp until that node showed it readable."""
    finish = lab[author].begin("post", group, text)
    seen = wait_each([nodes[r] for r in readers], showing(text), within)
    posted: str = finish()["id"]
    took = {
        reader: at - float(item_ids(doc)[posted]["timestamp"]) / 1000
        for reader, (at, doc) in zip(readers, seen, strict=True)
    }
    return posted, took


def found_group(
    lab: Lab,
    admin: str,
    members: Sequence[str],
    name: str,
    *,
    start: Mapping[str, Callable[[Sequence[Host]], NodeProcess]] | None = None,
) -> tuple[str, dict[str, NodeProcess]]:
    """The ordinary way in: every host makes an identity, ``admin`` creates group
    ``name`` and runs, and each of ``members`` joins with an invitation code naming the
    admin's address (all at once), then runs dialling the admin: ``p2pcomm run``, or
    ``start[member](peers)`` where given (a hostile node). Returns the group id and
    the running nodes, by host name, every one of them past its first sync."""
    for host in (admin, *members):
        lab[host].member = lab[host].cli("init", "--name", host)["id"]
    group: str = lab[admin].cli("group", "create", name)["id"]
    nodes = {admin: lab[admin].start()}
    codes = [
        lab[admin].cli("invite", name, "--address", lab[admin].address())["code"] for _ in members
    ]
    joining = [lab[m].begin("join", code) for m, code in zip(members, codes, strict=True)]
    for finish in joining:
        finish()
    for member in members:
        nodes[admin].wait(joined(lab[member].member))
    for member in members:
        peers = [lab[admin]]
        runs = (start or {}).get(member)
        nodes[member] = runs(peers) if runs is not None else lab[member].start(peers=peers)
    for member in members:
        nodes[member].wait(synced(group))
    return group, nodes
