"""``Replicator``: runs a :class:`~p2pcomm.core.sync.SyncSession` against group logs.

The sync session is a pure protocol machine; this class answers its events from the
store (tips, the entries the peer lacks, wanted entries) and ingests what arrives,
through :class:`~p2pcomm.group.GroupLog`, so nothing unverified is stored. It is
synchronous and transport-agnostic: the trio node runs it in a worker thread and the
in-memory simulator calls it directly.

Flow control: :meth:`receive` and :meth:`start` return *generators* of outgoing byte
chunks. A chunk holds at most one window of entries (about 2,048), and the next one is
built only when the caller asks for it, i.e. after it has written the previous one to
the peer. Memory stays bounded however many entries a sync moves. Every ingest is one
durable store transaction, so an interrupted sync resumes, in the next session, from
what was stored: tips are read from the store when a session starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .core.access import FULL_ACCESS, Access, Grant
from .core.log import (
    Entry,
    ForkProof,
    IngestResult,
    decode_fork_proof,
    encode_fork_proof,
    verify_fork_proof,
    verify_signature,
)
from .core.sync import (
    EntriesReceived,
    ForkProofsReceived,
    GossipReceived,
    GroupState,
    GroupSynced,
    SharedGroups,
    SyncEvent,
    SyncSession,
    TheirTips,
    Tip,
    Wanted,
    merge_by_position,
    plan_send,
)
from .errors import ErrorCode, P2PCommError, RemoteProtocolError
from .group import GroupLog

__all__ = ["Accepted", "AccessPolicy", "ReplicationStats", "Replicator"]


class AccessPolicy(Protocol):
    """Who may read and write what (``core/access.py``); the node implements it from its
    membership state."""

    def grant(self, group: bytes, proofs: tuple[bytes, ...], session_hash: bytes) -> Grant:
        """What the peer may read of ``group`` in this session."""
        ...

    def refuse(self, group: bytes, entries: list[Entry]) -> list[Entry]:
        """The entries of a batch from a peer that is not a member that must not be
        stored (:func:`p2pcomm.core.access.admit`); any of them gets the peer refused."""
        ...


WINDOW = 2048
#: WANTed ids we do not hold, per session, before the peer counts as flooding.
MAX_WANT_MISSES = 4096
#: Messages and asks a session may spend on nothing (06 6.17 H9): empty FORKS or WANT,
#: and WANTs for entries this session already sent the peer. An honest peer sends none.
MAX_WASTE = 1024
#: WANT ids answered in one go; a longer WANT is answered a slice at a time by the
#: writer (each slice reads and checks this many entries).
WANT_AT_ONCE = 256
#: Ids remembered per session as sent to the peer (for H9); past it, not tracked.
MAX_SENT_TRACKED = 200_000
#: Most entries ingested (and committed) in one store transaction; the driver may
#: lower a replicator's ``ingest_batch`` to :data:`SHARED_INGEST_BATCH` while others
#: wait for the store (each batch holds them up for its validation and write).
INGEST_BATCH = 8192
SHARED_INGEST_BATCH = 2048
#: GOSSIP messages gathered from one read before the node takes them (a read is at
#: most a few MiB; gossip messages are small).
MAX_GOSSIP_QUEUED = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class Accepted:
    """Entries this session stored, for the node to announce and forward."""

    group: bytes
    entries: tuple[Entry, ...]
    forks: tuple[ForkProof, ...] = ()
    #: False for entries of a catch-up (reconciliation RUNs): other peers may hold them
    #: already, so they are pushed only to peers whose tips show they lack them.
    live: bool = True


@dataclass(slots=True)
class ReplicationStats:
    entries_sent: int = 0
    entries_received: int = 0
    entries_accepted: int = 0
    entries_rejected: int = 0
    rejections: dict[str, int] = field(default_factory=dict)


class Replicator:
    """One peer connection's replication of the groups in ``logs``.

    ``forward(group, entry)`` decides what of an entry may be sent to the peer: True (all
    of it), False or None (nothing), or an entry to send instead (the node sends the
    header alone of entries membership voids, spec/04-membership.md 4.11). By default
    everything stored is sent.
    """

    def __init__(
        self,
        logs: Mapping[bytes, GroupLog],
        *,
        initiator: bool,
        session_hash: bytes,
        forward: Callable[[bytes, Entry], bool | Entry | None] | None = None,
        peer: bytes = b"",
        policy: AccessPolicy | None = None,
        proofs: Sequence[bytes] = (),
        gate: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.logs = dict(logs)
        self.session = SyncSession(
            initiator=initiator, session_hash=session_hash, groups=self.logs, proofs=proofs
        )
        self.session_hash = session_hash
        self._forward = forward
        #: The peer's member id, and who decides what it may read and write.
        self.peer = peer
        self._policy = policy
        #: ``gate(group)``: whether this session may offer its tips of ``group`` now
        #: (the node lets one session at a time catch a group up, so that two peers do
        #: not both send the same missing entries); the others wait in
        #: :attr:`unoffered` until :meth:`offer` is called.
        self._gate = gate
        self.unoffered: list[bytes] = []
        #: Per shared group: what the peer may read (decided when the groups are known).
        self.grants: dict[bytes, Grant] = {}
        #: Invitation proofs the peer presented (kept to decide again later).
        self.peer_proofs: tuple[bytes, ...] = ()
        #: Shared groups of which the grant kept something from the peer (a wider
        #: grant then needs a new session; otherwise it can widen in place).
        self.withheld: set[bytes] = set()
        self.stats = ReplicationStats()
        self.accepted: list[Accepted] = []
        self.synced: set[bytes] = set()
        self._jobs: list[Iterator[bytes]] = []
        self._deferred: list[Entry] = []
        self._deferred_group = b""
        self._unsettled: list[tuple[bytes, IngestResult, bool]] = []
        self._queued: dict[bytes, list[tuple[Entry, bool]]] = {}
        #: Per group and author: the highest sequence the peer is known to hold, and the
        #: ids it holds there (from its tips, what it sent, what was sent to it).
        self._peer_tips: dict[bytes, dict[bytes, tuple[int, set[bytes]]]] = {}
        #: Entries this peer sent that wait for a valid signature: id -> group.
        self._suspects: dict[bytes, bytes] = {}
        #: Suspects already seen at the previous check (one read of grace, live mode).
        self._strikes: set[bytes] = set()
        self.want_misses = 0
        #: H9: messages and asks that could do nothing, and the ids sent in answers.
        #: Catch-up entries gathered before they are ingested (the driver may lower it).
        self.ingest_batch = INGEST_BATCH
        self.waste = 0
        self._answered: set[bytes] = set()
        #: Ids of entries this peer sent in the session (H9: sending one again is
        #: waste), up to MAX_SENT_TRACKED.
        self._got: set[bytes] = set()
        #: Ids of entries we asked the peer to show it holds (:meth:`confirm`), and
        #: those it showed.
        self._confirming: set[bytes] = set()
        self.confirmed: set[bytes] = set()
        #: GOSSIP messages received (group, message), for the node's gossip state.
        self.gossip_in: list[tuple[bytes, bytes]] = []

    # -- driving

    def start(self) -> bytes:
        """HELLO, to send first."""
        self.session.start()
        return self.session.data_to_send()

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the peer: ingests what arrived and returns the replies to
        send (small: summaries, tips, wanted entries). Bulk sending is queued as a job
        that :meth:`next_bulk` advances, so reading never waits for writing.

        Raises :class:`~p2pcomm.errors.RemoteProtocolError` if the peer broke the
        protocol (the caller closes the connection with its code).
        """
        self.session.receive_data(data)
        self._drain_events()
        self._check_suspects()
        return self.session.data_to_send()

    def next_bulk(self) -> bytes | None:
        """One more window of a bulk send (entries the peer lacks), or None when no
        bulk job is running. Call again after the returned bytes were written."""
        while self._jobs:
            try:
                chunk = next(self._jobs[0])
            except StopIteration:
                self._jobs.pop(0)
                continue
            # Our DONE may have completed a group: handle what that started.
            self._drain_events()
            return chunk + self.session.data_to_send()
        return None

    def _drain_events(self) -> None:
        # Catch-up RUNs of one group are gathered and ingested together (one
        # validation pass, one durable transaction) once INGEST_BATCH entries are in,
        # when another kind of message arrives, or when the caller calls flush()
        # because the peer went quiet. Live pushes are ingested at once.
        while (event := self.session.next_event()) is not None:
            if isinstance(event, EntriesReceived) and event.bulk and not event.live:
                if self._deferred and event.group != self._deferred_group:
                    self._ingest_deferred()
                self._deferred_group = event.group
                self._deferred.extend(event.entries)
                if len(self._deferred) >= self.ingest_batch:
                    self._ingest_deferred()
                continue
            self._ingest_deferred()
            self._handle(event)

    def ingest_due(self, nbytes: int) -> bool:
        """Whether feeding ``nbytes`` more may make this replicator ingest (and so wait
        for the store's write in flight): the gathered catch-up entries and what those
        bytes can hold (at least 40 bytes an entry) reach ``ingest_batch``."""
        return len(self._deferred) + nbytes // 40 >= self.ingest_batch

    @property
    def has_deferred(self) -> bool:
        """Whether received entries wait for :meth:`flush`."""
        return bool(self._deferred)

    def flush(self) -> bytes:
        """Ingest the gathered catch-up entries now and wait until everything is
        durable; returns any replies to send."""
        self._ingest_deferred()
        self.settle()
        return self.session.data_to_send()

    def _ingest_deferred(self) -> None:
        # Ingest only: the replies queued so far stay queued for the caller to send.
        if self._deferred:
            batch, self._deferred = self._deferred, []
            self._ingest_received(self._deferred_group, batch, bulk=True, live=False)

    def _ingest_received(
        self, group: bytes, entries: list[Entry], *, bulk: bool, live: bool
    ) -> None:
        grant = self.grants.get(group, FULL_ACCESS)
        if not grant.full and self._policy is not None:
            # A peer that is not a member may relay members' entries and bring a JOIN;
            # strangers' entries are not stored, and the peer is refused.
            refused = self._policy.refuse(group, entries)
            if refused and grant.access is Access.REMOVED:
                # A removed member that does not know it yet sends what it wrote since:
                # not stored, and no fault (it is being served its removal).
                drop = {e.id for e in refused}
                entries = [e for e in entries if e.id not in drop]
                if not entries:
                    return
            elif refused:
                raise RemoteProtocolError(
                    ErrorCode.UNAUTHORIZED,
                    f"a peer that is not a member of group {group.hex()[:16]} sent "
                    f"{len(refused)} entries by authors who are not members either",
                    found=len(refused),
                )
        self._note_held(group, entries)
        self.note_received(e.id for e in entries)
        self._ingest(group, entries, bulk=bulk, live=live or not bulk)
        if live or not bulk:
            self.settle()  # announce live entries at once
            self._want_missing(group)

    @property
    def has_bulk(self) -> bool:
        return bool(self._jobs)

    def push(self, group: bytes, entries: list[Entry], *, if_lacking: bool = False) -> bytes:
        """Live push of new entries. Before the group is live with this peer they are
        queued and pushed when reconciliation ends (the bulk send was planned from
        the tips of its start, so it may not include them).

        ``if_lacking`` (entries this node caught up on, which other peers may hold
        already): only those the peer's tips do not show it holds, judged when sent."""
        if group not in self.logs:
            return b""
        entries = [o for e in entries if (o := self._outgoing(group, e)) is not None]
        if not entries:
            return b""
        if group not in self.synced:
            self._queued.setdefault(group, []).extend((e, if_lacking) for e in entries)
            return b""
        if if_lacking:
            entries = [e for e in entries if not self.peer_holds(group, e)]
            if not entries:
                return b""
        self._send_live(group, entries)
        return self.session.data_to_send()

    def send_queued(self, group: bytes) -> bytes:
        """Send now, as catch-up RUNs, the live entries queued for ``group`` while it
        reconciles (they wait for its end otherwise): the driver calls this before it
        cuts the peer off, so that the entry that ended its access reaches it (06
        6.22). Nothing if the group is live or nothing is queued. Returns the bytes."""
        if group in self.synced or self.session.state(group) is not GroupState.RECONCILING:
            return b""  # before its tips the peer takes no RUN; live, nothing waits
        queued = self._queued.pop(group, None)
        if not queued:
            return b""
        entries = [e for e, _ in queued]
        self.session.send_entries(group, entries)
        self.stats.entries_sent += len(entries)
        self._note_held(group, entries)
        return self.session.data_to_send()

    def _send_live(self, group: bytes, entries: list[Entry]) -> None:
        self.session.push(group, entries)
        self.stats.entries_sent += len(entries)
        self._note_held(group, entries)

    def peer_holds(self, group: bytes, e: Entry) -> bool:
        """Whether the peer is known to hold ``e`` (or a later entry of its author):
        from its tips, what it sent, and what was sent to it in this session."""
        known = self._peer_tips.get(group, {}).get(e.header.author)
        if known is None:
            return False
        seq, ids = known
        return seq > e.header.seq or (seq == e.header.seq and e.id in ids)

    def _note_held(self, group: bytes, entries: Sequence[Entry]) -> None:
        tips = self._peer_tips.setdefault(group, {})
        for e in entries:
            author, seq = e.header.author, e.header.seq
            known = tips.get(author)
            if known is None or known[0] < seq:
                tips[author] = (seq, {e.id})
            elif known[0] == seq:
                known[1].add(e.id)

    def _set_peer_tips(self, group: bytes, tips: Sequence[Tip]) -> None:
        self._peer_tips[group] = {}
        self._note_tips(group, tips)

    def _note_tips(self, group: bytes, tips: Sequence[Tip]) -> None:
        known = self._peer_tips.setdefault(group, {})
        for author, seq, eid in tips:
            k = known.get(author)
            if k is None or k[0] < seq:
                known[author] = (seq, {eid})
            elif k[0] == seq:
                k[1].add(eid)

    def confirm(self, group: bytes, ids: list[bytes]) -> bytes:
        """Ask the peer for entries we hold (after pushing them): its answer holds
        those it stored, which land in :attr:`confirmed`. Live groups only."""
        if group not in self.synced:
            return b""
        self._confirming.update(ids)
        self.session.want(group, ids, again=True)
        return self.session.data_to_send()

    def ingest_gossip(self, group: bytes, entry: Entry) -> bytes:
        """Verify and store one entry that came in a gossip message (spec/07-gossip.md
        7.4) from this peer, as a live push: at once, asking for what it depends on if
        that is missing. Rejections count like any other (the caller closes on them);
        returns the replies to send."""
        if group not in self.logs:
            return b""
        self._ingest_received(group, [entry], bulk=False, live=True)
        self._check_suspects()
        return self.session.data_to_send()

    def take_gossip(self) -> list[tuple[bytes, bytes]]:
        out, self.gossip_in = self.gossip_in, []
        return out

    def take_accepted(self) -> list[Accepted]:
        out, self.accepted = self.accepted, []
        return out

    # -- events

    def _tips_for(self, group: bytes, grant: Grant) -> list[Tip]:
        """The tips offered to the peer: all of them, none, or an invitee's cut."""
        store = self.logs[group].store
        if grant.full:
            return store.tips(group)
        if grant.access is Access.NONE:
            return []
        return [
            (author, seq, eid)
            for author, seq in sorted(grant.cut.items())
            for eid in store.ids_at(group, author, seq)
        ]

    def _outgoing(self, group: bytes, e: Entry) -> Entry | None:
        """What to send of ``e``: nothing beyond the peer's grant; then the policy may
        pass it, refuse it (None/False), or return another form of it (the header
        without its body)."""
        grant = self.grants.get(group, FULL_ACCESS)
        if not grant.allows(e, self.peer):
            return None
        if self._forward is None:
            return e
        decision = self._forward(group, e)
        if decision is True:
            return e
        if decision is False or decision is None:
            return None
        return decision

    def _handle(self, event: SyncEvent) -> None:
        s = self.session
        if isinstance(event, SharedGroups):
            self.peer_proofs = event.proofs
            for g in event.groups:
                grant = FULL_ACCESS
                if self._policy is not None:
                    grant = self._policy.grant(g, event.proofs, self.session_hash)
                self.grants[g] = grant
                if self._gate is not None and not self._gate(g):
                    self.unoffered.append(g)
                    continue
                self._offer(g)
        elif isinstance(event, TheirTips):
            self._set_peer_tips(event.group, event.tips)
            self._jobs.append(self._send_missing(event))
        elif isinstance(event, EntriesReceived):
            if self._confirming and not event.bulk:
                held = {e.id for e in event.entries} & self._confirming
                self.confirmed |= held
                self._confirming -= held
            self._ingest_received(
                event.group, list(event.entries), bulk=event.bulk, live=event.live
            )
        elif isinstance(event, Wanted):
            again = sum(1 for i in event.ids if i in self._answered)
            self._waste((0 if event.ids else 1) + again, "WANT")
            if len(event.ids) <= WANT_AT_ONCE:
                s.send_entries(event.group, self._wanted(event.group, event.ids), as_runs=False)
            else:
                # A long answer is a bulk job, a slice at a time, ahead of any catch-up:
                # reading the store and checking signatures for 4,096 entries at once
                # would hold up the node's other work (appends, other peers).
                self._jobs.insert(0, self._answer_in_slices(event.group, event.ids))
        elif isinstance(event, ForkProofsReceived):
            self._waste(0 if event.proofs else 1, "FORKS")
            self._store_proofs(event.group, event.proofs)
        elif isinstance(event, GossipReceived):
            if len(self.gossip_in) >= MAX_GOSSIP_QUEUED:
                raise RemoteProtocolError(
                    ErrorCode.FLOOD,
                    f"peer sent over {MAX_GOSSIP_QUEUED} gossip messages in one read",
                    expected=MAX_GOSSIP_QUEUED,
                )
            self.gossip_in.append((event.group, event.message))
        elif isinstance(event, GroupSynced):
            self.settle()  # "synced" means stored
            self._check_suspects(final_for=event.group)
            self.synced.add(event.group)
            queued = [
                e
                for e, if_lacking in self._queued.pop(event.group, [])
                if not (if_lacking and self.peer_holds(event.group, e))
            ]
            if queued:
                self._send_live(event.group, queued)
            self._want_missing(event.group)

    def _wanted(self, group: bytes, ids: Sequence[bytes]) -> list[Entry]:
        """What we send of the entries ``ids`` names (06 6.5.6), counted."""
        log = self.logs[group]
        # 06 P4: an entry whose stored signature does not verify (it was stored on
        # the strength of a successor) is not sent alone: the peer could not
        # authenticate it and would take us for a forger.
        found = [
            e
            for i in ids
            if (x := log.get(i)) is not None
            and (e := self._outgoing(group, x)) is not None
            and verify_signature(e)
        ]
        self.want_misses += len(ids) - len(found)
        if self.want_misses > MAX_WANT_MISSES:
            raise RemoteProtocolError(
                ErrorCode.FLOOD,
                f"peer asked for {self.want_misses} entries we do not hold",
                expected=MAX_WANT_MISSES,
                found=self.want_misses,
            )
        self.stats.entries_sent += len(found)
        self._note_held(group, found)
        if len(self._answered) < MAX_SENT_TRACKED:
            self._answered.update(e.id for e in found)
        return found

    def _answer_in_slices(self, group: bytes, ids: Sequence[bytes]) -> Iterator[bytes]:
        s = self.session
        for i in range(0, len(ids), WANT_AT_ONCE):
            last = i + WANT_AT_ONCE >= len(ids)
            s.send_entries(
                group, self._wanted(group, ids[i : i + WANT_AT_ONCE]), as_runs=False, more=not last
            )
            yield s.data_to_send()

    def _offer(self, g: bytes) -> None:
        grant = self.grants[g]
        tips = self._tips_for(g, grant)
        if not grant.full and tips != self.logs[g].store.tips(g):
            self.withheld.add(g)
        # Equal summaries mean the peer holds what we offer; TIPS say otherwise.
        self._set_peer_tips(g, tips)
        self.session.offer_tips(g, tips)

    def offer(self, groups: Sequence[bytes]) -> bytes:
        """Offer our tips (as they are now) of groups the gate held back; returns the
        bytes to send."""
        for g in groups:
            if g in self.unoffered:
                self.unoffered.remove(g)
                self._offer(g)
        self._drain_events()  # the peer's SUMMARY may be here: a group can go live now
        return self.session.data_to_send()

    def _send_missing(self, event: TheirTips) -> Iterator[bytes]:
        """The bulk job for one group: what the peer lacks, a window at a time."""
        s = self.session
        log = self.logs[event.group]
        grant = self.grants.get(event.group, FULL_ACCESS)
        if grant.access is Access.NONE:
            s.send_done(event.group)
            yield s.data_to_send()
            return
        plan = plan_send(self._tips_for(event.group, grant), event.tips)
        # Merging every lagging author at once holds one page per author: keep the
        # pages together near two windows, however many authors there are.
        page = max(16, 2 * WINDOW // max(1, len(plan)))
        streams = [
            log.store.iter_author(event.group, a, after_seq=seq, page=page)
            for a, seq in sorted(plan.items())
        ]
        window: list[Entry] = []
        for e in merge_by_position(streams):
            out = self._outgoing(event.group, e)
            if out is None:
                continue
            window.append(out)
            if len(window) >= WINDOW:
                s.send_entries(event.group, window)
                self.stats.entries_sent += len(window)
                self._note_held(event.group, window)
                window = []
                yield s.data_to_send()
        if window:
            s.send_entries(event.group, window)
            self.stats.entries_sent += len(window)
            self._note_held(event.group, window)
        if grant.full:
            s.send_fork_proofs(event.group, [encode_fork_proof(p) for p in log.fork_proofs()])
        s.send_done(event.group)
        yield s.data_to_send()

    def _ingest(self, group: bytes, entries: list[Entry], *, bulk: bool, live: bool) -> None:
        """Validate now; the store write overlaps with what comes next. Entries are
        announced (``accepted``) only once their write is durable."""
        log = self.logs[group]
        self.stats.entries_received += len(entries)
        result = log.ingest_nowait(entries, verify_each=not bulk, owner=self.peer)
        self.stats.entries_accepted += len(result.accepted)
        self.stats.entries_rejected += len(result.rejected)
        for r in result.rejected:
            key = r.error.code.value
            self.stats.rejections[key] = self.stats.rejections.get(key, 0) + 1
        if result.accepted or result.forks:
            self._unsettled.append((group, result, live))
        for eid in log.unauthenticated(e.id for e in entries):
            self._suspects[eid] = group
        self._publish(group)
        if self.peer and result.rejected and log.pending_share_full(self.peer):
            # 03 Q4: what it sent waits for what it never sends, past its share.
            raise RemoteProtocolError(
                ErrorCode.FLOOD,
                f"peer's entries fill its share of the pending set of group {group.hex()[:16]} "
                "(they wait for entries it does not send)",
            )

    def _check_suspects(self, *, final_for: bytes | None = None) -> None:
        """An entry whose signature is bad and that nothing vouches for is forged (an
        honest peer sends a vouching successor with it). Reconciliation must end with
        none; in live mode one more read is allowed, for a push split across reads."""
        if not self._suspects:
            return
        still = {}
        for group in set(self._suspects.values()):
            ids = [i for i, g in self._suspects.items() if g == group]
            for i in self.logs[group].unauthenticated(ids):
                still[i] = group
        self._suspects = still
        forged = [
            i
            for i, g in still.items()
            if g == final_for or (g in self.synced and i in self._strikes)
        ]
        self._strikes = {i for i, g in still.items() if g in self.synced}
        if forged:
            for group in set(still.values()):
                self.logs[group].discard_unauthenticated(
                    [i for i, g in still.items() if g == group]
                )
            self._suspects.clear()
            self._strikes.clear()
            raise RemoteProtocolError(
                ErrorCode.BAD_SIGNATURE,
                f"peer sent {len(forged)} entries whose signature is not valid and that nothing vouches for",
                found=len(forged),
            )

    def _publish(self, group: bytes) -> None:
        """Announce the results of ``group`` whose store writes are done (every one
        but the write still in flight, which ingest_nowait started last)."""
        inflight = self.logs[group].inflight
        keep: list[tuple[bytes, IngestResult, bool]] = []
        for g, result, live in self._unsettled:
            if g != group or result is inflight:
                keep.append((g, result, live))
            else:
                self.accepted.append(
                    Accepted(
                        group=g,
                        entries=tuple(result.accepted),
                        forks=tuple(result.forks),
                        live=live,
                    )
                )
        self._unsettled = keep

    def discard_pending(self) -> int:
        """The session ended: forget the entries the peer left pending (they cost it,
        not the others)."""
        return sum(log.discard_owner(self.peer) for log in self.logs.values())

    def settle(self) -> None:
        """Wait for every pending store write and announce what it stored."""
        for group in {g for g, _, _ in self._unsettled}:
            self.logs[group].wait_durable()
            self._publish(group)

    def _want_missing(self, group: bytes) -> None:
        missing = self.logs[group].missing_dependencies()
        if missing:
            self.session.want(group, missing)

    def note_received(self, ids: Iterable[bytes]) -> None:
        """H9: entries this peer sent (in sync or gossip messages). An honest side sends
        an entry at most once per session (it notes what the peer holds, 6.11); each one
        sent again is work for nothing."""
        got = self._got
        again = 0
        for i in ids:
            if i in got:
                again += 1
            elif len(got) < MAX_SENT_TRACKED:
                got.add(i)
        self._waste(again, "an entry it sent before")

    def _waste(self, n: int, what: str) -> None:
        """H9: count messages and asks that can do nothing; past :data:`MAX_WASTE` in a
        session the peer is flooding."""
        if not n:
            return
        self.waste += n
        if self.waste > MAX_WASTE:
            raise RemoteProtocolError(
                ErrorCode.FLOOD,
                f"peer sent {self.waste} messages or asks that do nothing (last: {what})",
                expected=MAX_WASTE,
                found=self.waste,
            )

    def _store_proofs(self, group: bytes, blobs: tuple[bytes, ...]) -> None:
        """H10: a fork proof that does not verify is the sender's fault (an honest side
        stores and sends only proofs it verified)."""
        log = self.logs[group]
        good: list[ForkProof] = []
        for blob in blobs:
            try:
                proof = decode_fork_proof(blob)
                verify_fork_proof(proof, group)
            except P2PCommError as exc:
                self.stats.rejections["bad-fork-proof"] = (
                    self.stats.rejections.get("bad-fork-proof", 0) + 1
                )
                if good:
                    log.store_fork_proofs(good)
                raise RemoteProtocolError(
                    exc.code, f"peer sent a fork proof that does not verify: {exc.message}"
                ) from None
            good.append(proof)
        if good:
            log.store_fork_proofs(good)
