"""Membership benchmarks: incremental apply, and full resolution from a SQLite store.

    python -m benchmarks membership --json bench-membership.json

One deterministic history is built first (not timed): 100,000 entries by 500 members,
5,000 of them membership operations (adds, invitations and joins, role changes,
removals and re-adds, leaves and re-joins, bans and lifts, revoked invitations,
metadata), the rest posts, replies, reactions and moderation. Every author links to a
few of the latest entries of others, so there is concurrency, and removed members
sometimes keep posting without having seen their removal (rule 2 voids those posts).

Figures:

* ``apply_per_s``: entries per second through ``ContentMachine.apply`` (membership and
  content state), one at a time, in the order they were written.
* ``resolve_s``: a child process opens the SQLite store holding the history, reads the
  group's entries back with ``SqliteStore.iter_entries`` and runs ``resolve`` on them
  (every entry judged); wall time of that whole child run after imports.
* ``peak_rss_mb``: the child's peak resident set size (``ru_maxrss``), interpreter,
  imports and the store's page cache included. The child is started *before* the
  history is built and waits for the store's path: on Linux a process started from a
  large parent inherits the parent's ``ru_maxrss`` across ``exec``, which would report
  the parent's size. ``peak_rss_hwm_mb`` is the kernel's own high-water mark of the
  child's address space (``VmHWM``), as a cross-check.
* ``effective_ops`` / ``void_entries``: sanity counts from the child's result.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from p2pcomm.core import crypto
from p2pcomm.core.content import ContentMachine, Delete, Hide, Post, React, Reply
from p2pcomm.core.identity import NS_ENTRY, KeyPair
from p2pcomm.core.invitation import InvitationCode
from p2pcomm.core.log import MAX_LINKS, Entry, Header, encode_header, entry_id, make_header
from p2pcomm.core.membership import (
    MEMBERSHIP_KINDS,
    AddMember,
    Ban,
    GenesisBody,
    Invite,
    Join,
    Kind,
    Leave,
    RemoveMember,
    RevokeInvite,
    Role,
    SetMetadata,
    SetRole,
)

TARGETS = {
    "apply_per_s": ">= 50,000",
    "resolve_s": "< 2.0",
    "peak_rss_mb": "< 300",
}

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_795_392_000_000


class _Builder:
    """Writes a plausible community history, keeping its own idea of who is what."""

    def __init__(self, members: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.keys = [KeyPair(crypto.blake2b_256(b"bench-member-%d" % i)) for i in range(members)]
        self.pub = [k.public_key for k in self.keys]
        self.items: list[
            tuple[int, Header, bytes, bytes, bytes]
        ] = []  # author, header, hb, id, body
        self.tip: dict[int, tuple[int, bytes, int]] = {}  # author -> seq, id, ts
        self.recent: deque[tuple[bytes, int]] = deque(maxlen=48)
        self.author_of: dict[bytes, int] = {}
        self.must_link: dict[int, list[bytes]] = {}
        #: Member -> the last operation that changed their role (what a later operation
        #: on them must have seen).
        self.state_op: dict[int, bytes] = {}
        self.role: dict[int, Role] = {}
        self.posts: deque[bytes] = deque(maxlen=200)
        self.ts = T0
        self.mops = 0
        genesis_body = GenesisBody(name="bench", founder_name="m0").encode()
        header = make_header(
            group=bytes(32),
            author=self.pub[0],
            seq=1,
            prev=None,
            links=(),
            timestamp=T0,
            kind=0,
            body=genesis_body,
        )
        hb = encode_header(header)
        self.group = entry_id(hb)
        self._record(0, header, hb, genesis_body)
        self.role[0] = Role.ADMIN

    def _record(self, author: int, header: Header, hb: bytes, body: bytes) -> bytes:
        eid = entry_id(hb)
        self.items.append((author, header, hb, eid, body))
        self.author_of[eid] = author
        self.tip[author] = (header.seq, eid, header.timestamp)
        self.recent.append((eid, author))
        if header.kind in MEMBERSHIP_KINDS:
            self.mops += 1
        return eid

    def append(self, author: int, kind: int, body: bytes, extra: tuple[bytes, ...] = ()) -> bytes:
        self.ts += 7
        seq, prev, _ = self.tip.get(author, (0, None, 0))
        candidates = [i for i, a in self.recent if a != author]
        links = set(self.rng.sample(candidates, min(len(candidates), self.rng.randint(1, 3))))
        links.update(self.must_link.pop(author, ()))
        links.update(extra)
        author_of = self.author_of
        links = {x for x in links if author_of[x] != author}
        header = make_header(
            group=self.group,
            author=self.pub[author],
            seq=seq + 1,
            prev=prev,
            links=sorted(links)[-MAX_LINKS:],
            timestamp=self.ts,
            kind=kind,
            body=body,
        )
        return self._record(author, header, encode_header(header), body)

    def grant(self, member: int, eid: bytes) -> None:
        self.must_link.setdefault(member, []).append(eid)
        self.state_op[member] = eid

    def on(self, member: int, author: int, kind: int, body: bytes) -> bytes:
        """An operation by ``author`` on ``member``, made after seeing the member's last
        role change (a link to it, unless it is the author's own)."""
        seen = self.state_op.get(member)
        eid = self.append(author, kind, body, extra=(seen,) if seen is not None else ())
        self.state_op[member] = eid
        return eid

    def seq_of(self, member: int) -> int:
        return self.tip.get(member, (0, b"", 0))[0]

    def pick(self, *roles: Role) -> int:
        pool = [m for m, r in self.role.items() if r in roles]
        return self.rng.choice(pool) if pool else 0


def build_history(members: int, total: int, mops: int, seed: int = 1) -> tuple[bytes, list[Entry]]:
    """A deterministic history of ``total`` entries by ``members`` authors with about
    ``mops`` membership operations. Signed on two threads."""
    b = _Builder(members, seed)
    rng = b.rng
    outside = list(range(1, members))
    pending_return: deque[tuple[int, str]] = deque()  # (member, how to come back)
    invite_n = 0

    def invite_join(member: int, role: Role) -> None:
        nonlocal invite_n
        invite_n += 1
        inviter = b.pick(Role.ADMIN, Role.MODERATOR) if role <= Role.MEMBER else b.pick(Role.ADMIN)
        code = InvitationCode(
            group=b.group,
            secret=crypto.blake2b_256(b"bench-invite-%d" % invite_n)[:16],
            inviter=b.pub[inviter],
            role=int(role),
        )
        inv = b.append(
            inviter,
            Kind.INVITE,
            Invite(invitation_key=code.public_key, role=role, max_uses=1).encode(),
        )
        proof = code.join_proof(inv, b.pub[member])
        seen = b.state_op.get(member)
        extra = (inv,) if seen is None else (inv, seen)
        b.state_op[member] = b.append(
            member,
            Kind.JOIN,
            Join(invite=inv, proof=proof, name=f"m{member}").encode(),
            extra=extra,
        )
        b.role[member] = role

    def add(member: int, role: Role) -> None:
        author = b.pick(Role.ADMIN)
        body = AddMember(
            member=b.pub[member], role=role, cut=b.seq_of(member), name=f"m{member}"
        ).encode()
        b.grant(member, b.on(member, author, Kind.ADD, body))
        b.role[member] = role

    def membership_op() -> None:
        r = rng.random()
        regulars = [
            m for m, role in b.role.items() if m >= 25 and role in (Role.MEMBER, Role.READER)
        ]
        if outside and (r < 0.25 or len(b.role) < members // 2):
            m = outside.pop(rng.randrange(len(outside)))
            if rng.random() < 0.5:
                add(m, Role.MEMBER)
            else:
                invite_join(m, Role.MEMBER)
        elif pending_return and r < 0.45:
            m, how = pending_return.popleft()
            if how == "invite":
                invite_join(m, Role.MEMBER)
            else:
                add(m, Role.MEMBER)
        elif r < 0.62 and regulars:
            m = rng.choice(regulars)
            new = Role.READER if b.role[m] == Role.MEMBER else Role.MEMBER
            body = SetRole(member=b.pub[m], role=new, cut=b.seq_of(m)).encode()
            b.grant(m, b.on(m, b.pick(Role.ADMIN), Kind.SET_ROLE, body))
            b.role[m] = new
        elif r < 0.74 and regulars:
            m = rng.choice(regulars)
            remover = b.pick(Role.ADMIN, Role.MODERATOR)
            b.on(m, remover, Kind.REMOVE, RemoveMember(member=b.pub[m], cut=b.seq_of(m)).encode())
            del b.role[m]
            if rng.random() < 0.3:  # keeps posting without having seen it (void, rule 2)
                b.append(m, Kind.POST, Post(text="did anyone see my last post?").encode())
            pending_return.append((m, "add"))
        elif r < 0.82 and regulars:
            m = rng.choice(regulars)
            b.on(m, m, Kind.LEAVE, Leave().encode())
            del b.role[m]
            pending_return.append((m, "invite"))
        elif r < 0.88 and regulars:
            m = rng.choice(regulars)
            banner = b.pick(Role.ADMIN, Role.MODERATOR)
            b.on(m, banner, Kind.BAN, Ban(member=b.pub[m], cut=b.seq_of(m)).encode())
            del b.role[m]
            pending_return.append((m, "add"))  # only an add lifts a ban
        elif r < 0.96:
            admin = b.pick(Role.ADMIN)
            nonlocal_code = InvitationCode(
                group=b.group, secret=rng.randbytes(16), inviter=b.pub[admin]
            )
            inv = b.append(
                admin, Kind.INVITE, Invite(invitation_key=nonlocal_code.public_key).encode()
            )
            b.append(admin, Kind.REVOKE_INVITE, RevokeInvite(invite=inv).encode())
        else:
            b.append(
                b.pick(Role.ADMIN),
                Kind.SET_METADATA,
                SetMetadata(name=f"bench {len(b.items)}").encode(),
            )

    # Staff first: four admins and twenty moderators, added by the founder.
    for m in range(1, 25):
        outside.remove(m)
        body = AddMember(
            member=b.pub[m], role=Role.ADMIN if m < 5 else Role.MODERATOR, cut=0
        ).encode()
        b.grant(m, b.append(0, Kind.ADD, body))
        b.role[m] = Role.ADMIN if m < 5 else Role.MODERATOR
    while len(b.items) < total:
        remaining = total - len(b.items)
        if rng.random() < (mops - b.mops) / remaining:
            membership_op()
            continue
        author = (
            b.pick(Role.MEMBER, Role.MODERATOR, Role.ADMIN)
            if rng.random() < 0.95
            else b.pick(Role.READER, Role.MEMBER)
        )
        r = rng.random()
        if r < 0.70 or not b.posts:
            b.posts.append(
                b.append(author, Kind.POST, Post(text=f"post {len(b.items)} " + "x" * 40).encode())
            )
        elif r < 0.85:
            b.posts.append(
                b.append(
                    author, Kind.REPLY, Reply(parent=rng.choice(b.posts), text="agreed").encode()
                )
            )
        elif r < 0.97 or b.role.get(author) not in (Role.MODERATOR, Role.ADMIN):
            b.append(author, Kind.REACT, React(target=rng.choice(b.posts), emoji="+1").encode())
        elif r < 0.99:
            b.append(author, Kind.HIDE, Hide(target=rng.choice(b.posts)).encode())
        else:
            b.append(author, Kind.DELETE, Delete(target=rng.choice(b.posts)).encode())
    return b.group, _sign(b)


def _sign(b: _Builder) -> list[Entry]:
    items = b.items

    def work(lo: int, hi: int) -> list[bytes]:
        keys = b.keys
        return [keys[a].sign(NS_ENTRY, eid) for a, _h, _hb, eid, _body in items[lo:hi]]

    half = len(items) // 2
    with ThreadPoolExecutor(2) as pool:
        parts = [pool.submit(work, 0, half), pool.submit(work, half, len(items))]
        sigs = parts[0].result() + parts[1].result()
    return [
        Entry(eid, h, hb, sig, body)
        for (_a, h, hb, eid, body), sig in zip(items, sigs, strict=True)
    ]


def _child_main() -> None:
    """In a fresh process: wait for the store's path, open it, read the group back,
    resolve, report as one JSON line."""
    from p2pcomm.core.membership import Reason, resolve
    from p2pcomm.store.sqlite import SqliteStore

    line = sys.stdin.readline().split()
    if len(line) != 2:
        return
    path, group = line[0], bytes.fromhex(line[1])
    start = time.perf_counter()
    store = SqliteStore(path, durable=False)
    state = resolve(e for _pos, e in store.iter_entries(group))
    elapsed = time.perf_counter() - start
    store.close()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_kb = 0
    try:
        with open("/proc/self/status") as f:
            for row in f:
                if row.startswith("VmHWM:"):
                    hwm_kb = int(row.split()[1])
    except OSError:
        pass
    void = sum(1 for v in state.verdicts.values() if v.reason is not Reason.OK)
    effective_ops = sum(
        1 for v in state.verdicts.values() if v.kind in MEMBERSHIP_KINDS and v.reason is Reason.OK
    )
    print(
        json.dumps(
            {
                "resolve_s": elapsed,
                "peak_rss_mb": rss_kb / 1024,
                "peak_rss_hwm_mb": hwm_kb / 1024,
                "entries": len(state.verdicts),
                "members": len(state.members),
                "effective_ops": effective_ops,
                "void_entries": void,
            }
        ),
        flush=True,
    )


def run(quick: bool) -> dict[str, float | int]:
    members, total, mops = (100, 10_000, 500) if quick else (500, 100_000, 5_000)
    # Started first, while this process is small (see peak_rss_mb above).
    child = subprocess.Popen(
        [sys.executable, "-c", "from benchmarks.membership import _child_main; _child_main()"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        group, entries = build_history(members, total, mops)

        machine = ContentMachine()
        start = time.perf_counter()
        for e in entries:
            machine.apply(e)
        apply_s = time.perf_counter() - start
        del machine

        from p2pcomm.store.sqlite import SqliteStore

        with tempfile.TemporaryDirectory(prefix="p2pcomm-bench-") as tmp:
            path = os.path.join(tmp, "membership.db")
            store = SqliteStore(path, durable=False)
            for i in range(0, len(entries), 5_000):
                store.put_entries(group, entries[i : i + 5_000])
            store.close()
            out, _ = child.communicate(f"{path} {group.hex()}\n", timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode != 0:
        raise RuntimeError(f"resolve child failed with exit code {child.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "entries": len(entries),
        "members": members,
        "membership_ops": sum(1 for e in entries if e.header.kind in MEMBERSHIP_KINDS),
        "apply_per_s": round(len(entries) / apply_s),
        "resolve_s": round(result["resolve_s"], 3),
        "peak_rss_mb": round(result["peak_rss_mb"], 1),
        "peak_rss_hwm_mb": round(result["peak_rss_hwm_mb"], 1),
        "effective_ops": result["effective_ops"],
        "void_entries": result["void_entries"],
        "members_at_end": result["members"],
    }
