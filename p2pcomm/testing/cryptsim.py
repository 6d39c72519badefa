"""Random encrypted group histories and the invariants of content encryption checked
over them (spec/12-encryption.md), shared by the property tests and the crypto
benchmark.

A history is made by :func:`simulate` from a *script*: six devices
(:class:`~p2pcomm.testing.crypted.CryptReplica`) that act on what they know and sync
from one another now and then, so operations are concurrent. Member 0 founds the group
and adds 1 (admin), 2 (moderator) and 3 (member), who publish their receive keys and
get the first epoch by a forward; 4 and 5 start outside. Each step lets one device act:
post or reply, add, remove, leave, ban, publish a new receive key, rekey, forward,
invite, join, or post without the rekey W3 asks for (``stale-epoch`` when the cut is
stale). A device acts only while its own resolution says it is a member (an outsider
only joins); a member without the power to (a plain member removing someone) still
writes, and its operation is void.

The checks, each a list of violations (empty when the invariant holds):

* :func:`removed_readable`: a member whose effective removal (REMOVE, BAN or LEAVE) is
  in an entry's past, and who was not added again after it, can derive the key of that
  entry from the log and every receive key and secret it ever had (slots are tried
  with every key, addressed to it or not; pointers are walked to a fixpoint);
* :func:`member_unreadable`: after :func:`forward_round` (everyone syncs everything,
  then each member forwards, then everyone syncs), a current member with a receive key
  cannot read an effective encrypted entry whose past it was a member in.
  :func:`behind_pointer_gap` and :func:`nobody_can_forward` tell the failures the key
  block format cannot avoid from the others.

Everything is deterministic: a script gives the same history every time::

    world = simulate(random_script(random.Random(7), 40))
    assert removed_readable(world) == []
    forward_round(world)
    failures = member_unreadable(world)
    assert failures == behind_pointer_gap(world, failures)
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..core.epochs import EpochView, encrypted_kind, slot_context
from ..core.invitation import InvitationCode
from ..core.log import Entry
from ..core.membership import Kind, MembershipMachine, Role
from ..core.membership.world import _bits
from ..core.seal import open_pointers, open_slot
from ..errors import DecodeError, SealError
from .crypted import CryptReplica
from .history import History, invitation_secret, keypair

__all__ = [
    "ACTIONS",
    "N",
    "CryptWorld",
    "Step",
    "behind_pointer_gap",
    "derivable",
    "describe",
    "forward_round",
    "full_machine",
    "member_unreadable",
    "nobody_can_forward",
    "random_script",
    "removed_readable",
    "simulate",
    "sync_all",
]

#: Devices in a simulated group.
N = 6
#: What a step's ``what`` (taken modulo the length) makes the actor do.
ACTIONS = (
    "post",
    "post",
    "reply",
    "add",
    "remove",
    "leave",
    "publish",
    "rekey",
    "forward",
    "invite",
    "join",
    "ban",
    "stale-post",
)
#: ``(actor, what, argument, sync from)``: ``sync from`` at N or above means no sync.
Step = tuple[int, int, int, int]


@dataclass
class CryptWorld:
    """A simulated group: its devices and what they wrote."""

    replicas: list[CryptReplica]
    #: Encrypted content entries, in creation order.
    content: list[Entry] = field(default_factory=list)
    invites: list[tuple[Entry, InvitationCode]] = field(default_factory=list)
    #: KEYS entries written by :func:`forward_round`.
    forwards: list[Entry] = field(default_factory=list)

    @property
    def history(self) -> History:
        return self.replicas[0].history

    @property
    def entries(self) -> list[Entry]:
        return self.replicas[0].history.entries


def _member(r: CryptReplica) -> bool:
    return r.id in r.resolve().roles()


def simulate(script: Iterable[Step]) -> CryptWorld:
    """Run ``script`` (see the module's docstring)."""
    history, founder = CryptReplica.found(keypair(0), name="sim")
    replicas = [founder] + [CryptReplica(history, keypair(i)) for i in range(1, N)]
    for i, role in ((1, Role.ADMIN), (2, Role.MODERATOR), (3, Role.MEMBER)):
        founder.add(replicas[i], role)
    for i in (1, 2, 3):
        replicas[i].sync(founder)
        replicas[i].publish()
        founder.sync(replicas[i])
    founder.forward()
    for r in replicas[1:4]:
        r.sync(founder)
    world = CryptWorld(replicas)
    for actor, what, arg, source in script:
        _step(world, actor % N, ACTIONS[what % len(ACTIONS)], arg, source)
    return world


def _step(world: CryptWorld, actor: int, action: str, arg: int, source: int) -> None:
    replicas = world.replicas
    me = replicas[actor]
    if source < N and source != actor:
        me.sync(replicas[source])
    if action == "join":
        invites = [(e, c) for e, c in world.invites if me.knows(e.id)]
        if invites and not _member(me):
            entry, code = invites[arg % len(invites)]
            me.join(code, entry)
        return
    if not _member(me):
        return
    target = replicas[arg % N]
    if action == "post":
        world.content.append(me.post(f"post {len(me.history)}"))
    elif action == "reply":
        known = [e for e in world.content if me.knows(e.id)]
        if known:
            world.content.append(me.reply(known[arg % len(known)], "re"))
    elif action == "add":
        me.add(target, Role(arg // N % 3 + 1))
    elif action == "remove" and target is not me:
        me.remove(target)
    elif action == "leave" and arg % 3 == 0 and actor != 0:
        me.leave()
    elif action == "publish":
        me.publish()
    elif action == "rekey":
        me.rekey()
    elif action == "forward":
        me.forward()
    elif action == "invite":
        world.invites.append(me.invite(invitation_secret(len(me.history)), max_uses=2))
    elif action == "ban" and arg % 3 == 0 and target is not me:
        me.ban(target)
    elif action == "stale-post":
        me.follow_rules = False
        try:
            world.content.append(me.post("without the rekey"))
        except SealError:
            pass  # it cannot derive the key at all: nothing to write
        finally:
            me.follow_rules = True


def random_script(rng: random.Random, length: int) -> list[Step]:
    """``length`` steps drawn from ``rng``; each step syncs first two times in three."""
    return [
        (
            rng.randrange(N),
            rng.randrange(len(ACTIONS)),
            rng.randrange(36),
            rng.randrange(N) if rng.randrange(3) else N,
        )
        for _ in range(length)
    ]


def full_machine(entries: Iterable[Entry]) -> MembershipMachine:
    """A membership machine fed every entry."""
    machine = MembershipMachine()
    machine.apply_many(entries)
    return machine


def derivable(view: EpochView, receive: Iterable[bytes], known: dict[bytes, bytes]) -> set[bytes]:
    """The ids of the key operations whose secret can be derived with the receive
    private keys ``receive`` and the secrets ``known`` (by entry id): every slot of every
    key operation is tried with every key, and every pointer list whose secret is held
    is opened, until nothing new comes."""
    core = view.core
    group = core.group
    assert group is not None
    privates = list(receive)
    secrets = dict(known)
    ops = view.key_ops()
    for o in ops:
        if o.id in secrets:
            continue
        block = view.block(o)
        assert block is not None
        ctx = slot_context(o.author, o.seq, o.kind)
        g = bytes(32) if o.kind == Kind.GENESIS else group
        for private in privates:
            try:
                secrets[o.id] = open_slot(private, None, block.rekey, g, ctx)
                break
            except (SealError, ValueError):
                continue
    progress = True
    while progress:
        progress = False
        for o in ops:
            s = secrets.get(o.id)
            block = view.block(o)
            assert block is not None
            if s is None or not block.pointers:
                continue
            before = view.frontier(o.K & ~o.bit)
            if all(p.id in secrets for p in before):
                continue
            try:
                prev = open_pointers(s, block.pointers)
            except (DecodeError, SealError):
                continue
            for p, secret in zip(before, prev, strict=False):
                if p.id not in secrets:
                    secrets[p.id] = secret
                    progress = True
    return set(secrets)


def _removals(machine: MembershipMachine) -> dict[bytes, list[tuple[int, int]]]:
    """Member -> ``(bit, K)`` of each effective REMOVE, BAN or LEAVE of it."""
    core = machine._core
    out: dict[bytes, list[tuple[int, int]]] = {}
    for o in core.ops:
        if not machine.authorized(o.id):
            continue
        if o.kind in (Kind.REMOVE, Kind.BAN) and o.target is not None:
            out.setdefault(o.target, []).append((o.bit, o.K))
        elif o.kind == Kind.LEAVE:
            out.setdefault(o.author, []).append((o.bit, o.K))
    return out


def _additions(machine: MembershipMachine) -> dict[bytes, int]:
    """Member -> bits of every ADD of it and JOIN by it."""
    out: dict[bytes, int] = {}
    for o in machine._core.ops:
        if o.kind == Kind.ADD and o.target is not None:
            out[o.target] = out.get(o.target, 0) | o.bit
        elif o.kind == Kind.JOIN:
            out[o.author] = out.get(o.author, 0) | o.bit
    return out


def removed_readable(world: CryptWorld) -> list[tuple[Entry, bytes]]:
    """``(entry, member)`` for each member who can derive the key of an encrypted entry
    whose past holds its effective removal, not followed by an addition of it (entries
    that break X1 are left out: their writer broke W3, and they are void, as
    ``stale-epoch`` or for an earlier reason)."""
    machine = full_machine(world.entries)
    core = machine._core
    view = core.epochs
    removals = _removals(machine)
    additions = _additions(machine)
    out: list[tuple[Entry, bytes]] = []
    for r in world.replicas:
        gone = removals.get(r.id)
        if not gone:
            continue
        added = additions.get(r.id, 0)
        # Removals after which nothing added the member again.
        final = [(bit, K) for bit, K in gone if all((K >> i) & 1 for i in _bits(added))]
        if not final:
            continue
        held = derivable(view, r.receive.values(), r.secrets)
        for e in world.content:
            K = core.K[e.id]
            if view.stale(K) or not any(K & bit for bit, _ in final):
                continue
            if all(s.id in held for s in view.frontier(K)):
                out.append((e, r.id))
    return out


def sync_all(replicas: Sequence[CryptReplica]) -> None:
    """Each replica learns everything the others know."""
    for r in replicas:
        r.sync(*replicas)


def forward_round(world: CryptWorld) -> list[Entry]:
    """Everyone syncs everything, each member (in device order, without syncing in
    between) writes the forward W4 asks for, then everyone syncs. Returns the forwards."""
    replicas = world.replicas
    sync_all(replicas)
    written = []
    for r in replicas:
        if _member(r):
            f = r.forward()
            if f is not None:
                written.append(f)
    sync_all(replicas)
    world.forwards.extend(written)
    return written


def member_unreadable(world: CryptWorld) -> list[tuple[Entry, bytes]]:
    """``(entry, member)`` for each current member with a receive key that cannot read
    an effective encrypted entry whose past it was a member in (call after
    :func:`forward_round`)."""
    machine = full_machine(world.entries)
    core = machine._core
    view = core.epochs
    current = machine.roles()
    everyone = sum(o.bit for o in core.ops)
    out: list[tuple[Entry, bytes]] = []
    for e in world.content:
        if not machine.authorized(e.id) or not encrypted_kind(e.header.kind):
            continue
        members = view.members(core.K[e.id])
        for r in world.replicas:
            if r.id not in current or r.id not in members:
                continue
            if view.receive_key(r.id, everyone) is None:
                continue
            if r.read_bytes(e) is None:
                out.append((e, r.id))
    return out


def behind_pointer_gap(
    world: CryptWorld, failures: Sequence[tuple[Entry, bytes]]
) -> list[tuple[Entry, bytes]]:
    """The failures of :func:`member_unreadable` that a pointer gap explains: the member
    would derive the entry's key from the secrets it holds if every rekey carried
    pointers. A rekey written by a member that could not derive the epoch before it (W3)
    has none, and a key block has no other way to hand over a past epoch (a forward
    carries its writer's current one), so whoever lacked that epoch then never reads
    the entries written under it."""
    if not failures:
        return []
    machine = full_machine(world.entries)
    core = machine._core
    view = core.epochs
    oracle: dict[bytes, bytes] = {}
    for r in world.replicas:
        oracle.update(r.secrets)
    ops = view.key_ops()
    closures: dict[bytes, set[bytes]] = {}
    out = []
    for entry, member in failures:
        held = closures.get(member)
        if held is None:
            me = next(r for r in world.replicas if r.id == member)
            held = closures[member] = set(me.secrets)
            progress = True
            while progress:
                progress = False
                for o in ops:
                    if o.id not in held:
                        continue
                    for p in view.frontier(o.K & ~o.bit):
                        if p.id not in held and p.id in oracle:
                            held.add(p.id)
                            progress = True
        if all(s.id in held for s in view.frontier(core.K[entry.id])):
            out.append((entry, member))
    return out


def no_holder_left(
    world: CryptWorld, failures: Sequence[tuple[Entry, bytes]]
) -> list[tuple[Entry, bytes]]:
    """The failures no forward can mend: no current member holds every secret of the
    entry's epoch (after :func:`forward_round`). It happens when everyone a rekey
    reached is gone, for instance a removal void only by a concurrent demotion of its
    author, whose rekey left out a member who stays one, and whose recipients all left
    before anyone forwarded it (a removal void at its own cut starts no epoch, 12.10
    F1)."""
    if not failures:
        return []
    machine = full_machine(world.entries)
    core = machine._core
    view = core.epochs
    current = machine.roles()
    holders = [r for r in world.replicas if r.id in current]
    out = []
    for entry, member in failures:
        needed = [s.id for s in view.frontier(core.K[entry.id])]
        if not any(all(i in r.secrets for i in needed) for r in holders):
            out.append((entry, member))
    return out


def nobody_can_forward(world: CryptWorld) -> bool:
    """Whether no current member can derive the key of everything there is (after
    :func:`forward_round`): then W4 has nobody to act, since a forward carries the
    secrets of its writer's whole cut. It happens when the frontier's secrets are
    spread over members of whom some are gone (a void removal's rekey left out the one
    member who holds the others)."""
    for r in world.replicas:
        if _member(r) and r.enc.keys.epoch_key(r.next_cut()) is not None:
            return False
    return True


def describe(world: CryptWorld) -> str:
    """One line per entry: index, device, seq, kind, parents, verdict, and for key
    operations their block, for content its frontier and holders."""
    machine = full_machine(world.entries)
    core = machine._core
    view = core.epochs
    name = {r.id: f"m{i}" for i, r in enumerate(world.replicas)}
    index = {e.id: i for i, e in enumerate(world.entries)}
    lines = []
    for i, e in enumerate(world.entries):
        h = e.header
        parents = ([index[h.prev]] if h.prev else []) + sorted(index[x] for x in h.links)
        v = machine.verdict(e.id)
        line = f"{i:3} {name.get(h.author, '?')} s{h.seq} {Kind(h.kind).name} <- {parents}"
        line += f" [{v.reason.value if v else 'pending'}]"
        o = core.by_id.get(e.id)
        if o is not None:
            if o.target is not None:
                line += f" target={name.get(o.target, '?')}"
            b = view.block(o)
            if b is not None:
                rec = [name.get(m, "?") for m, _ in view.recipients(o)]
                kind = "rekey" if b.is_rekey else "forward" if b.is_forward else "receive"
                line += f" {kind} slots={b.slot_count} recipients={rec}"
                line += f" to={[name.get(m, '?') for m in b.to]} pointers={len(b.pointers)}"
        elif e.id in core.K and encrypted_kind(h.kind):
            K = core.K[e.id]
            line += f" frontier={[index[s.id] for s in view.frontier(K)]}"
            line += f" holders={sorted(name.get(m, '?') for m in view.holders(K))}"
        lines.append(line)
    return "\n".join(lines)
