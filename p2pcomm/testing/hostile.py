"""A member's node that misbehaves, for the scenarios of what p2pcomm survives.

    python -m p2pcomm.testing.hostile --tamper [--after N] run [RUN ARGS...]
    python -m p2pcomm.testing.hostile --censor MEMBER [--after N] run [RUN ARGS...]

It runs the ordinary node of a home, ``p2pcomm run RUN ARGS`` (the same code: the
command line's ``run`` and :func:`p2pcomm.net.node.open_node`), with a small
interception on what the node sends to its peers, in this process only:

* the node is opened with a ``forward`` policy, the seam :func:`~p2pcomm.net.node.open_node`
  offers applications ("an entry to send instead"), which the node asks for every
  entry it sends by sync (spec/06-sync.md: catch-up RUNs, answers to WANT, live pushes)
  and before gossip passes an entry on (spec/07-gossip.md: gossip carries only what
  the policy passes whole);
* GOSSIP messages the overlay queues for a peer go through a wrapper of
  :meth:`p2pcomm.net.overlay.Overlay._send`, which can rewrite or drop them, and
  through which the node also sends what nobody asked for.

``--tamper``: the policy rewrites every entry of another author (a byte of its body
changed, its header made to match, the author's signature kept, so that it no longer
verifies): peers get only rewritten copies of others' entries by sync, and gossip
passes none on. And the node does not wait to be asked: whenever it stores a post of
another author, it sends every peer it has a session with (the one the post came from
too) a rewritten copy of it and a forged entry claiming that author (the next entry of
theirs, signed with a throwaway key). ``--censor MEMBER``: the policy withholds every
entry by MEMBER, and GOSSIP messages carrying one are dropped; everything else passes.
The node's own entries go out as they are.

Besides the node's own lines (``run --json``), it prints a JSON line per interception:
``{"event": "hostile", "action": "tampered"|"forged"|"dropped", "path":
"policy"|"gossip", "entry": ID, "author": MEMBER, "peer": MEMBER|null}``. ``entry`` is
what was sent instead (``original`` names the entry a rewritten one stands for), or
what was withheld. ``path`` ``policy`` is the forward policy's decision, told once per
entry (``peer`` null: it holds for every peer); ``gossip`` is a message to ``peer``.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

import trio

from ..core.gossip.messages import Gossip, Message
from ..core.identity import NS_ENTRY, KeyPair, MemberId
from ..core.log import Entry, encode_header, entry_id, make_header
from ..core.membership import Kind
from ..core.sync import decode_gossip_entry, encode_gossip_entry
from ..errors import P2PCommError
from ..keys import generate_keypair
from ..net import node as node_module
from ..net.events import PeerUp
from ..net.overlay import Overlay
from .netlab import Host, NodeProcess

__all__ = ["Interceptor", "forged", "intercepting", "main", "start", "tampered"]

#: Kinds whose entries are forged in another author's name (posts and replies: what a
#: reader would be fooled by).
_FORGED_KINDS = frozenset({Kind.POST, Kind.REPLY})


def tampered(entry: Entry) -> Entry:
    """``entry`` with one byte of its body changed and its header made to match (body
    hash and size), under its author's signature: a different entry whose signature
    does not verify. An entry without a body gets one."""
    body = entry.body or b""
    body = bytes([body[0] ^ 0x01]) + body[1:] if body else b"\x00"
    h = entry.header
    header = make_header(
        group=h.group,
        author=h.author,
        seq=h.seq,
        prev=h.prev,
        links=h.links,
        timestamp=h.timestamp,
        kind=h.kind,
        body=body,
    )
    header_bytes = encode_header(header)
    return Entry(entry_id(header_bytes), header, header_bytes, entry.signature, body)


def forged(after: Entry, text: bytes = b"forged") -> Entry:
    """A well-formed entry claiming ``after``'s author, as that author's next entry (the
    same kind, a body of ``text``), signed with a throwaway key: its signature does not
    verify under the author's key."""
    h = after.header
    header = make_header(
        group=h.group,
        author=h.author,
        seq=h.seq + 1,
        prev=after.id,
        links=(),
        timestamp=h.timestamp + 1,
        kind=h.kind,
        body=text,
    )
    header_bytes = encode_header(header)
    eid = entry_id(header_bytes)
    return Entry(eid, header, header_bytes, generate_keypair().sign(NS_ENTRY, eid), text)


class _LineWriter(io.TextIOBase):
    """stdout whose lines never interleave: each thread's text is written a whole line
    at a time (the node prints from the event loop, the sync policy is asked from
    worker threads)."""

    def __init__(self, raw: TextIO) -> None:
        self._raw = raw
        self._lock = threading.Lock()
        self._parts: dict[int, str] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        me = threading.get_ident()
        pending = self._parts.get(me, "") + text
        head, sep, tail = pending.rpartition("\n")
        self._parts[me] = tail
        if sep:
            with self._lock:
                self._raw.write(head + sep)
                self._raw.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._raw.flush()

    def fileno(self) -> int:
        return self._raw.fileno()

    def isatty(self) -> bool:
        return self._raw.isatty()


class Interceptor:
    """What the hostile node does to what it sends. ``mode`` is ``tamper`` or
    ``censor``; ``censored``: the member whose entries ``censor`` drops; ``after``:
    the node behaves until it has had sessions with this many peers at once (a patient
    attacker: linked to everyone before anyone refuses it), then turns for good and
    prints ``{"event": "hostile", "action": "armed", "peers": N}``."""

    def __init__(self, mode: str, censored: bytes = b"", *, after: int = 0) -> None:
        if mode not in ("tamper", "censor"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.censored = censored
        self.after = after
        #: Set once the node turned (at once when ``after`` is 0).
        self.armed = threading.Event()
        if after <= 0:
            self.armed.set()
        #: This node's member id (set when the node opens).
        self.me = b""
        self._lock = threading.Lock()
        #: Entries the forward policy was asked about (each is told of once).
        self._decided: set[bytes] = set()

    def _say(self, action: str, path: str, entry: Entry, peer: bytes | None, **more: str) -> None:
        doc: dict[str, Any] = {
            "event": "hostile",
            "action": action,
            "path": path,
            "entry": entry.id.hex(),
            "author": MemberId(entry.header.author).text(),
            "peer": None if peer is None else MemberId(peer).text(),
            **more,
        }
        with self._lock:
            print(json.dumps(doc, sort_keys=True), flush=True)

    async def arm(self, node: node_module.Node) -> None:
        """Watch ``node``'s peers until there are ``after`` of them, then turn."""
        if self.armed.is_set():
            return
        with node.subscribe() as events:
            async for ev in events:
                if isinstance(ev, PeerUp) and len(node.peers()) >= self.after:
                    break
        self.armed.set()
        with self._lock:
            doc = {"event": "hostile", "action": "armed", "peers": len(node.peers())}
            print(json.dumps(doc, sort_keys=True), flush=True)

    def _targets(self, entry: Entry) -> bool:
        if not self.armed.is_set():
            return False
        author = entry.header.author
        if self.mode == "censor":
            return author == self.censored
        return author != self.me and entry.header.kind != Kind.GENESIS

    # -- the node's forward policy (what peers get of an entry, by sync or gossip)

    def forward(self, group: bytes, entry: Entry) -> bool | Entry | None:
        """The node asks this for every entry it would send by sync, and before gossip
        passes one on; each entry is told of once."""
        if not self._targets(entry):
            return True
        first = entry.id not in self._decided
        self._decided.add(entry.id)
        if self.mode == "censor":
            if first:
                self._say("dropped", "policy", entry, None)
            return False
        bad = tampered(entry)
        if first:
            self._say("tampered", "policy", bad, None, original=entry.id.hex())
        return bad

    # -- gossip: what the overlay queues for a peer

    def gossip(self, group: bytes, peer: bytes, msg: Message) -> Message | None:
        """The message to send instead of ``msg`` (None: drop it)."""
        if not isinstance(msg, Gossip):
            return msg
        try:
            entry = decode_gossip_entry(group, msg.payload)
        except P2PCommError:
            return msg
        if not self._targets(entry):
            return msg
        if self.mode == "censor":
            self._say("dropped", "gossip", entry, peer)
            return None
        bad = tampered(entry)
        self._say("tampered", "gossip", bad, peer, original=entry.id.hex())
        return Gossip(bad.id, msg.round, encode_gossip_entry(bad))

    def stored(
        self,
        overlay: Overlay,
        group: bytes,
        entries: Sequence[Entry],
        send: Callable[[bytes, Message], bool],
    ) -> None:
        """The node stored ``entries`` from a peer. Tampering, it relays each post
        among them to every peer it has a session of ``group`` with (the one it came
        from too), rewritten, followed by a forged next post of the same author
        (``send(peer, message)`` queues a gossip message as the overlay does,
        uninspected). Censoring, each entry it withholds is told of now (the policy's
        line), however it came."""
        if self.mode == "censor":
            for e in entries:
                self.forward(group, e)
            return
        for e in entries:
            if e.header.kind not in _FORGED_KINDS or not self._targets(e):
                continue
            bad = tampered(e)
            fake = forged(e, b"forged in " + MemberId(e.header.author).short().encode())
            for peer in sorted(overlay.node.peers()):
                if send(peer, _gossip(bad)):
                    self._say("tampered", "gossip", bad, peer, original=e.id.hex())
                if send(peer, _gossip(fake)):
                    self._say("forged", "gossip", fake, peer)


def _gossip(entry: Entry) -> Gossip:
    return Gossip(entry.id, 0, encode_gossip_entry(entry))


@contextlib.contextmanager
def intercepting(interceptor: Interceptor) -> Iterator[None]:
    """Within the block, the node this process opens (the one of ``interceptor.me``
    when that is set, else the first) sends through ``interceptor``; any other node
    opened meanwhile is left alone. Everything is put back after the block."""
    original_open, original_send, original_stored = (
        node_module.open_node,
        Overlay._send,
        Overlay.stored,
    )

    def mine(overlay: Overlay) -> bool:
        return overlay.node.peer_id == interceptor.me

    @contextlib.asynccontextmanager
    async def open_node(*args: Any, **kwargs: Any) -> AsyncIterator[node_module.Node]:
        identity: KeyPair = args[1] if len(args) > 1 else kwargs["identity"]
        if interceptor.me and identity.public_key != interceptor.me:
            async with original_open(*args, **kwargs) as node:
                yield node
            return
        if kwargs.get("forward") is not None:
            raise ValueError("the hostile node brings its own forward policy")
        interceptor.me = identity.public_key
        async with (
            original_open(*args, **kwargs, forward=interceptor.forward) as node,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(interceptor.arm, node)
            yield node
            nursery.cancel_scope.cancel()

    def send(self: Overlay, group: bytes, peer: bytes, msg: Message) -> bool:
        if not mine(self):
            return original_send(self, group, peer, msg)
        instead = interceptor.gossip(group, peer, msg)
        if instead is None:
            return True  # as if sent: the overlay believes it went
        return original_send(self, group, peer, instead)

    def stored(
        self: Overlay, group: bytes, entries: Iterable[Entry], *, own: bool, live: bool
    ) -> None:
        entries = list(entries)
        original_stored(self, group, entries, own=own, live=live)
        if not own and mine(self):
            interceptor.stored(self, group, entries, lambda p, m: original_send(self, group, p, m))

    node_module.open_node = open_node
    Overlay._send = send  # type: ignore[method-assign]
    Overlay.stored = stored  # type: ignore[method-assign]
    try:
        yield
    finally:
        node_module.open_node = original_open
        Overlay._send = original_send  # type: ignore[method-assign]
        Overlay.stored = original_stored  # type: ignore[method-assign]


def start(host: Host, *mode: str, peers: Sequence[Host] = ()) -> NodeProcess:
    """Run the hostile node in ``host``'s namespace, as :meth:`Host.start` runs the
    ordinary one (listening on the host's address, port 7447, no mDNS, dialling
    ``peers``); ``mode`` is ``("--tamper",)`` or ``("--censor", MEMBER)``."""
    return host.start(peers=peers, module="p2pcomm.testing.hostile", mode=mode)


def _usage(message: str) -> int:
    print(f"p2pcomm.testing.hostile: {message}", file=sys.stderr)
    print(
        "usage: python -m p2pcomm.testing.hostile (--tamper | --censor MEMBER) [--after N] "
        "run [RUN ARGS...]",
        file=sys.stderr,
    )
    return 2


def main(
    argv: Sequence[str] | None = None, *, run: Callable[[list[str]], int] | None = None
) -> int:
    """Parse the mode, install the interception, and run ``p2pcomm run`` with the
    rest of the arguments; its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--tamper"]:
        interceptor = Interceptor("tamper")
        rest = args[1:]
    elif args[:1] == ["--censor"]:
        if len(args) < 2:
            return _usage("--censor needs a member id")
        try:
            member = MemberId.parse(args[1]).raw
        except (ValueError, P2PCommError) as exc:
            return _usage(f"not a member id: {args[1]!r} ({exc})")
        interceptor = Interceptor("censor", member)
        rest = args[2:]
    else:
        return _usage("say what the node does: --tamper or --censor MEMBER")
    if rest[:1] == ["--after"]:
        try:
            interceptor.after = int(rest[1])
        except (IndexError, ValueError):
            return _usage("--after needs a number of peers")
        if interceptor.after > 0:
            interceptor.armed.clear()
        rest = rest[2:]
    if rest[:1] != ["run"]:
        return _usage("the command to run is `run` (the node)")
    from ..cli.main import main as cli_main

    stdout, sys.stdout = sys.stdout, _LineWriter(sys.stdout)
    try:
        with intercepting(interceptor):
            return (run or cli_main)(rest)
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    raise SystemExit(main())
