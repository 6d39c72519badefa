"""SyncSession (p2pcomm/core/sync.py): the pure reconciliation machine, two endpoints
joined by hand (no store, no sockets, no trio).

Sections: the in-sync cost, group tokens, the state machine's refusals (one table),
framing limits, feeding whole / byte-at-a-time / with trailing data, a fuzz target, RUN
compression round trips, a tampered RUN, and the known limits of message sizes.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pcomm.core.identity import NS_ENTRY
from p2pcomm.core.log import (
    KIND_GENESIS,
    MAX_LINKS,
    MAX_U63,
    ZERO_ID,
    Entry,
    Header,
    create_entry,
    encode_entry,
    encode_header,
    entry_id,
)
from p2pcomm.core.sync import (
    MAX_MESSAGE_SIZE,
    MAX_RUN,
    MAX_TIPS,
    RUN_BYTES,
    SYNC_VERSION,
    EntriesReceived,
    ForkProofsReceived,
    GroupState,
    GroupSynced,
    Msg,
    SharedGroups,
    SyncEvent,
    SyncSession,
    TheirTips,
    Tip,
    Wanted,
    decode_run,
    group_token,
    tips_fingerprint,
)
from p2pcomm.errors import ErrorCode, LocalProtocolError, P2PCommError, RemoteProtocolError
from p2pcomm.group import GroupLog
from p2pcomm.store import MemoryStore
from tests.sync_helpers import BASE_TS, KIND_POST, frame, key, msg, new_group, session_hash

G1, G2, G3, G4 = (hashlib.blake2b(b"group-%d" % i, digest_size=32).digest() for i in range(1, 5))
H = session_hash(0)


def random_tips(n: int, seed: int = 0) -> list[Tip]:
    """``n`` tips of ``n`` distinct authors (sequences of every msgpack int width)."""
    rng = random.Random(seed)
    return [
        (rng.randbytes(32), rng.choice((1, 127, 300, 70_000, 2**40)), rng.randbytes(32))
        for _ in range(n)
    ]


def exchange(a: SyncSession, b: SyncSession) -> tuple[list[SyncEvent], list[SyncEvent]]:
    """Deliver what each side queued until neither has anything; returns the events."""
    ev_a: list[SyncEvent] = []
    ev_b: list[SyncEvent] = []
    while True:
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            return ev_a, ev_b
        if out_a:
            b.receive_data(out_a)
        if out_b:
            a.receive_data(out_b)
        ev_a += a.events()
        ev_b += b.events()


def started(
    groups_a: Sequence[bytes], groups_b: Sequence[bytes], h: bytes = H
) -> tuple[SyncSession, SyncSession, list[SyncEvent], list[SyncEvent]]:
    a = SyncSession(initiator=True, session_hash=h, groups=groups_a)
    b = SyncSession(initiator=False, session_hash=h, groups=groups_b)
    a.start()
    b.start()
    ev_a, ev_b = exchange(a, b)
    return a, b, ev_a, ev_b


def message_types(data: bytes) -> list[Msg]:
    out = []
    while data:
        n = int.from_bytes(data[:4], "big")
        out.append(Msg(msgpack.unpackb(data[4 : 4 + n])[0]))
        data = data[4 + n :]
    return out


def session_at(
    state: str, *, tips_b: Sequence[Tip] = (), tips_a: Sequence[Tip] | None = None
) -> tuple[SyncSession, SyncSession]:
    """Two sessions sharing G1, brought to ``state``:

    * ``"hello"``: HELLOs exchanged, ``b`` offered its tips (SUMMARY state);
    * ``"live"``: equal summaries (both LIVE);
    * ``"reconciling"``: summaries differ and TIPS were exchanged (both RECONCILING).
    """
    a, b, _, _ = started([G1], [G1])
    tips_b = list(tips_b) or random_tips(2, seed=7)
    if state == "hello":
        b.offer_tips(G1, tips_b)
        b.data_to_send()
        return a, b
    if tips_a is None:
        tips_a = tips_b if state == "live" else random_tips(1, seed=8)
    a.offer_tips(G1, tips_a)
    b.offer_tips(G1, tips_b)
    exchange(a, b)
    want = GroupState.LIVE if state == "live" else GroupState.RECONCILING
    assert a.state(G1) is want and b.state(G1) is want
    return a, b


# --------------------------------------------------------------------------- in sync


@pytest.mark.parametrize("authors", [1, 50, 1000])
def test_in_sync_peers_exchange_hello_and_summary_only(authors: int) -> None:
    """Replicas holding the same entries agree in a constant number of bytes,
    whatever the number of authors: HELLO and one SUMMARY each way."""
    tips = random_tips(authors, seed=authors)
    a, b, ev_a, ev_b = started([G1], [G1])
    assert ev_a == [SharedGroups(groups=(G1,))] and ev_b == [SharedGroups(groups=(G1,))]
    a.offer_tips(G1, tips)
    b.offer_tips(G1, list(reversed(tips)))  # order does not matter
    out_a, out_b = a.data_to_send(), b.data_to_send()
    b.receive_data(out_a)
    a.receive_data(out_b)
    assert a.events() == [GroupSynced(group=G1, already_equal=True)]
    assert b.events() == [GroupSynced(group=G1, already_equal=True)]
    assert a.data_to_send() == b.data_to_send() == b""
    assert a.all_live and b.all_live
    # HELLO: u32 length + [0, 1, [bin16 token]] = 4 + 22; SUMMARY: 4 + [1, 0, bin16] = 4 + 21.
    assert a.bytes_sent == b.bytes_sent == 26 + 25
    assert a.bytes_sent + b.bytes_sent <= 256
    assert a.messages_received == b.messages_received == 2


@pytest.mark.parametrize("groups", [1, 15, 16, 40])
def test_in_sync_cost_formula(groups: int) -> None:
    """Per side: HELLO = 8 + 18 g (10 + 18 g from 16 groups on: array16 header) and a
    25-byte SUMMARY per group (26 from group index 128 on)."""
    gs = [hashlib.blake2b(b"g%d" % i, digest_size=32).digest() for i in range(groups)]
    a, b, _, _ = started(gs, gs)
    tips = random_tips(3)
    for g in gs:
        a.offer_tips(g, tips)
        b.offer_tips(g, tips)
    exchange(a, b)
    hello = (8 if groups < 16 else 10) + 18 * groups
    assert a.bytes_sent == b.bytes_sent == hello + 25 * groups
    assert a.all_live and b.all_live


# --------------------------------------------------------------------------- tokens


def test_shared_groups_are_found_in_group_id_order() -> None:
    a, b, ev_a, ev_b = started([G3, G1, G2], [G4, G2, G3])
    shared = tuple(sorted([G2, G3]))
    assert a.shared == b.shared == shared
    assert ev_a == ev_b == [SharedGroups(groups=shared)]
    assert a.state(G1) is None and b.state(G4) is None
    assert a.state(G2) is GroupState.SUMMARY


def test_tokens_differ_per_session_and_per_role() -> None:
    h2 = session_hash(1)
    tokens = {
        group_token(G1, H, True),
        group_token(G1, H, False),
        group_token(G1, h2, True),
        group_token(G1, h2, False),
        group_token(G2, H, True),
    }
    assert len(tokens) == 5
    assert all(len(t) == 16 for t in tokens)


def hello_tokens(session: SyncSession) -> list[bytes]:
    data = session.data_to_send()
    assert message_types(data) == [Msg.HELLO]
    value = msgpack.unpackb(data[4:])
    assert value[:2] == [Msg.HELLO, SYNC_VERSION]
    return list(value[2])


def test_a_non_member_learns_nothing_from_the_tokens() -> None:
    """A peer that does not know G1 sees only 16 random-looking bytes per group: none
    matches any token it can compute for the groups it has (either role, this session
    or another), and the shared list is empty on both sides."""
    a = SyncSession(initiator=True, session_hash=H, groups=[G1, G2])
    a.start()
    tokens = hello_tokens(a)
    assert len(tokens) == 2  # the number of groups is what a peer learns
    outsider_groups = [G3, G4]
    computable = {
        group_token(g, h, role)
        for g in outsider_groups
        for h in (H, session_hash(1))
        for role in (True, False)
    }
    assert not computable & set(tokens)

    a2, b2, ev_a, ev_b = started([G1, G2], outsider_groups)
    assert a2.shared == b2.shared == ()
    assert ev_a == ev_b == [SharedGroups(groups=())]
    assert a2.all_live and b2.all_live  # nothing to reconcile


def test_reflected_tokens_do_not_fake_membership() -> None:
    """A peer that echoes our own HELLO back (it cannot compute tokens for groups it
    does not know) shares nothing with us: tokens are bound to the sender's role."""
    a = SyncSession(initiator=True, session_hash=H, groups=[G1])
    a.start()
    hello = a.data_to_send()
    a.receive_data(hello)
    assert a.shared == ()


def test_tokens_of_another_session_do_not_match() -> None:
    """A HELLO replayed from another session shares nothing."""
    old = SyncSession(initiator=False, session_hash=session_hash(9), groups=[G1])
    old.start()
    a = SyncSession(initiator=True, session_hash=H, groups=[G1])
    a.start()
    a.receive_data(old.data_to_send())
    assert a.shared == ()


# --------------------------------------------------------------------------- refusals


ENTRY = create_entry(
    key(1), group=G1, seq=1, prev=None, links=[G2], timestamp=BASE_TS, kind=KIND_POST
)
TOKEN_R = group_token(G1, H, False)  # a responder's token for G1 in session H


def run_message(gi: int = 0) -> bytes:
    h = ENTRY.header
    return msg(
        Msg.RUN,
        gi,
        h.author,
        1,
        None,
        h.timestamp,
        [[0, h.kind, list(h.links), b"", ENTRY.signature]],
    )


def responder_hello(version: int = SYNC_VERSION) -> bytes:
    return msg(Msg.HELLO, version, [TOKEN_R])


@dataclass(frozen=True)
class Refusal:
    name: str
    state: str  # "fresh" (nothing received) or a session_at() state
    payload: bytes
    code: ErrorCode


FP_OTHER = tips_fingerprint(random_tips(1, seed=99))

# The session under test is the initiator ``a`` of session_at(); each payload arrives
# from the responder, framed. One row per way a peer can break the state machine.
REFUSALS = [
    Refusal("RUN before HELLO", "fresh", run_message(), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal(
        "SUMMARY before HELLO", "fresh", msg(Msg.SUMMARY, 0, FP_OTHER), ErrorCode.UNEXPECTED_MESSAGE
    ),
    Refusal("TIPS before HELLO", "fresh", msg(Msg.TIPS, 0, []), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("DONE before HELLO", "fresh", msg(Msg.DONE, 0), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("WANT before HELLO", "fresh", msg(Msg.WANT, 0, []), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("ENTRIES before HELLO", "fresh", msg(Msg.ENTRIES, 0, []), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("FORKS before HELLO", "fresh", msg(Msg.FORKS, 0, []), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal(
        "wrong sync version",
        "fresh",
        responder_hello(SYNC_VERSION + 1),
        ErrorCode.WRONG_PROTOCOL_VERSION,
    ),
    Refusal(
        "HELLO with a short token",
        "fresh",
        msg(Msg.HELLO, SYNC_VERSION, [b"x" * 15]),
        ErrorCode.WRONG_LENGTH,
    ),
    Refusal(
        "HELLO of 5 fields",
        "fresh",
        msg(Msg.HELLO, SYNC_VERSION, [], [b"\x00" * 64], 0),
        ErrorCode.WRONG_LENGTH,
    ),
    Refusal(
        "HELLO whose proofs are not a list",
        "fresh",
        msg(Msg.HELLO, SYNC_VERSION, [], 0),
        ErrorCode.WRONG_TYPE,
    ),
    Refusal(
        "HELLO with an empty list of proofs",
        "fresh",
        msg(Msg.HELLO, SYNC_VERSION, [], []),
        ErrorCode.WRONG_LENGTH,
    ),
    Refusal(
        "HELLO with 5 proofs",
        "fresh",
        msg(Msg.HELLO, SYNC_VERSION, [], [b"\x00" * 64] * 5),
        ErrorCode.TOO_LARGE,
    ),
    Refusal(
        "HELLO with a proof of 63 bytes",
        "fresh",
        msg(Msg.HELLO, SYNC_VERSION, [], [b"\x00" * 63]),
        ErrorCode.WRONG_LENGTH,
    ),
    Refusal(
        "HELLO with 257 tokens",
        "fresh",
        msg(Msg.HELLO, SYNC_VERSION, [bytes(16)] * 257),
        ErrorCode.TOO_LARGE,
    ),
    Refusal("second HELLO", "hello", responder_hello(), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("DONE before TIPS", "hello", msg(Msg.DONE, 0), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("RUN before TIPS", "hello", run_message(), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal(
        "WANT before TIPS", "hello", msg(Msg.WANT, 0, [bytes(32)]), ErrorCode.UNEXPECTED_MESSAGE
    ),
    Refusal(
        "ENTRIES without WANT",
        "live",
        msg(Msg.ENTRIES, 0, [encode_entry(ENTRY)], False),
        ErrorCode.UNEXPECTED_MESSAGE,
    ),
    Refusal(
        "ENTRIES without WANT (reconciling)",
        "reconciling",
        msg(Msg.ENTRIES, 0, [], False),
        ErrorCode.UNEXPECTED_MESSAGE,
    ),
    Refusal(
        "ENTRIES of 3 fields (revision 0 layout)",
        "live",
        msg(Msg.ENTRIES, 0, []),
        ErrorCode.WRONG_LENGTH,
    ),
    Refusal(
        "unknown group index", "live", msg(Msg.SUMMARY, 1, FP_OTHER), ErrorCode.UNEXPECTED_MESSAGE
    ),
    Refusal("unknown group index in RUN", "live", run_message(gi=5), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("group index above the limit", "live", msg(Msg.DONE, 300), ErrorCode.OUT_OF_RANGE),
    Refusal("second SUMMARY", "live", msg(Msg.SUMMARY, 0, FP_OTHER), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("second TIPS", "reconciling", msg(Msg.TIPS, 0, []), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("DONE in live mode", "live", msg(Msg.DONE, 0), ErrorCode.UNEXPECTED_MESSAGE),
    Refusal("unknown message type", "live", msg(9, 0), ErrorCode.OUT_OF_RANGE),
    Refusal("GOSSIP without its message", "live", msg(Msg.GOSSIP, 0), ErrorCode.WRONG_LENGTH),
    Refusal(
        "GOSSIP too large", "live", msg(Msg.GOSSIP, 0, bytes(65_665)), ErrorCode.TOO_LARGE
    ),
    Refusal("empty message", "live", msg(), ErrorCode.MALFORMED),
    Refusal("not an array", "live", bytes(msgpack.packb(3)), ErrorCode.WRONG_TYPE),
    Refusal("a map", "live", bytes(msgpack.packb({"k": 2})), ErrorCode.FORBIDDEN_TYPE),
    Refusal(
        "trailing bytes in a message",
        "live",
        msg(Msg.WANT, 0, []) + b"\x00",
        ErrorCode.TRAILING_DATA,
    ),
    Refusal(
        "truncated value in a message",
        "live",
        msg(Msg.WANT, 0, [bytes(32)])[:-3],
        ErrorCode.TRUNCATED,
    ),
    Refusal("empty RUN", "live", msg(Msg.RUN, 0, bytes(32), 1, None, 0, []), ErrorCode.MALFORMED),
    Refusal(
        "RUN item of 4",
        "live",
        msg(Msg.RUN, 0, bytes(32), 1, None, 0, [[0, 1, [], b""]]),
        ErrorCode.MALFORMED,
    ),
    Refusal(
        "RUN seq 0",
        "live",
        msg(Msg.RUN, 0, bytes(32), 0, None, 0, [[0, 1, [], b"", bytes(64)]]),
        ErrorCode.OUT_OF_RANGE,
    ),
    Refusal(
        "RUN timestamp overflow",
        "live",
        msg(Msg.RUN, 0, bytes(32), 1, None, MAX_U63, [[1, 1, [], b"", bytes(64)]]),
        ErrorCode.OUT_OF_RANGE,
    ),
    Refusal("WANT of a 31-byte id", "live", msg(Msg.WANT, 0, [bytes(31)]), ErrorCode.WRONG_LENGTH),
    Refusal("WANT of 4097 ids", "live", msg(Msg.WANT, 0, [bytes(32)] * 4097), ErrorCode.TOO_LARGE),
    Refusal("bool as a group index", "live", msg(Msg.DONE, True), ErrorCode.WRONG_TYPE),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[r.name for r in REFUSALS])
def test_out_of_state_or_malformed_message_is_refused(case: Refusal) -> None:
    if case.state == "fresh":
        a = SyncSession(initiator=True, session_hash=H, groups=[G1])
        a.start()
    else:
        a, _ = session_at(case.state)
    with pytest.raises(RemoteProtocolError) as info:
        a.receive_data(frame(case.payload))
    assert info.value.code is case.code, info.value


def test_tips_that_do_not_match_the_summary_are_refused() -> None:
    a, b, _, _ = started([G1], [G1])
    a.offer_tips(G1, random_tips(1, seed=1))
    b_tips = random_tips(2, seed=2)
    b.offer_tips(G1, b_tips)
    a.receive_data(b.data_to_send())  # b's SUMMARY: fingerprints differ, a sends TIPS
    assert a.state(G1) is GroupState.TIPS
    with pytest.raises(RemoteProtocolError) as info:
        a.receive_data(frame(msg(Msg.TIPS, 0, [list(t) for t in b_tips[:1]])))
    assert info.value.code is ErrorCode.MALFORMED


def test_tips_after_equal_summaries_are_refused() -> None:
    """Even TIPS that match the peer's own SUMMARY: once the summaries were equal (LIVE)
    no tip list is due."""
    tips = random_tips(2, seed=7)
    a, _ = session_at("live", tips_b=tips, tips_a=tips)
    with pytest.raises(RemoteProtocolError) as info:
        a.receive_data(frame(msg(Msg.TIPS, 0, [list(t) for t in sorted(tips)])))
    assert info.value.code is ErrorCode.UNEXPECTED_MESSAGE


def test_tips_before_the_summary_are_refused() -> None:
    a, _ = session_at("hello")
    with pytest.raises(RemoteProtocolError) as info:
        a.receive_data(frame(msg(Msg.TIPS, 0, [])))
    assert info.value.code is ErrorCode.UNEXPECTED_MESSAGE


def test_local_misuse_raises_local_protocol_error() -> None:
    a, _b, _, _ = started([G1], [G1])
    with pytest.raises(LocalProtocolError):
        a.start()
    with pytest.raises(LocalProtocolError):
        a.send_done(G1)  # still in SUMMARY
    with pytest.raises(LocalProtocolError):
        a.push(G1, [ENTRY])
    with pytest.raises(LocalProtocolError):
        a.offer_tips(G2, [])  # not shared
    a.offer_tips(G1, [])
    with pytest.raises(LocalProtocolError):
        a.offer_tips(G1, [])


# --------------------------------------------------------------------------- framing


def test_oversize_length_prefix_is_refused_before_the_body() -> None:
    a, _ = session_at("live")
    with pytest.raises(RemoteProtocolError) as info:
        a.receive_data((MAX_MESSAGE_SIZE + 1).to_bytes(4, "big"))
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert info.value.found == MAX_MESSAGE_SIZE + 1


def test_a_maximal_length_prefix_waits_for_the_body() -> None:
    a, _ = session_at("live")
    a.receive_data(MAX_MESSAGE_SIZE.to_bytes(4, "big") + b"\x93")
    assert a.events() == [] and a.messages_received == 2


@pytest.mark.parametrize(
    "payload",
    [
        b"\x93\x00\xcc\x01\x90",  # HELLO with version as uint8: 0xcc 0x01
        b"\xdc\x00\x03\x00\x01\x90",  # array16 header for 3 items
        b"\x93\x00\x01\xdc\x00\x00",  # token list as an empty array16
        b"\x93\xd0\x00\x01\x90",  # message type as int8
    ],
)
def test_non_canonical_message_is_refused(payload: bytes) -> None:
    a = SyncSession(initiator=True, session_hash=H, groups=[G1])
    a.start()
    with pytest.raises(RemoteProtocolError) as info:
        a.receive_data(frame(payload))
    assert info.value.code is ErrorCode.NOT_CANONICAL


# --------------------------------------------------------------------------- splitting


def chain(
    n: int,
    *,
    author: int = 1,
    group: bytes = G1,
    body: Callable[[int], bytes | None] | None = None,
    links: Sequence[bytes] = (G2,),
) -> list[Entry]:
    """``n`` chained entries of ``key(author)``; ``body(i)`` None makes entry ``i``
    header-only (signed over the header of the real body)."""
    out: list[Entry] = []
    prev = None
    for i in range(n):
        b = body(i) if body else b"body %d" % i
        e = create_entry(
            key(author),
            group=group,
            seq=i + 1,
            prev=prev,
            links=links if i == 0 else (),
            timestamp=BASE_TS + i * 3,
            kind=KIND_POST,
            body=b if b is not None else b"absent %d" % i,
        )
        out.append(e if b is not None else e.without_body())
        prev = e.id
    return out


@dataclass
class Driver:
    """Answers a session's events deterministically, like a replicator with a fixed
    holding: ``sends`` on TheirTips, ``wants`` once live, ``push`` after that."""

    session: SyncSession
    tips: list[Tip]
    sends: list[Entry] = field(default_factory=list)
    wants: list[bytes] = field(default_factory=list)
    push: list[Entry] = field(default_factory=list)
    have: dict[bytes, Entry] = field(default_factory=dict)
    log: list[SyncEvent] = field(default_factory=list)

    def handle(self) -> None:
        s = self.session
        for ev in s.events():
            self.log.append(ev)
            if isinstance(ev, SharedGroups):
                for g in ev.groups:
                    s.offer_tips(g, self.tips)
            elif isinstance(ev, TheirTips):
                s.send_entries(ev.group, self.sends)
                s.send_fork_proofs(ev.group, [b"fork proof bytes"] if self.sends else [])
                s.send_done(ev.group)
            elif isinstance(ev, Wanted):
                s.send_entries(
                    ev.group, [self.have[i] for i in ev.ids if i in self.have], as_runs=False
                )
            elif isinstance(ev, GroupSynced):
                if self.wants:
                    s.want(ev.group, self.wants)
                if self.push:
                    s.push(ev.group, self.push)


def scripted_run(
    split: Callable[[bytes], list[bytes]],
) -> tuple[list[SyncEvent], list[SyncEvent], bytes, bytes]:
    """A full session (HELLO, SUMMARY, TIPS, RUNs with bodies and without, FORKS, DONE,
    WANT, ENTRIES, a live RUN) where every write is delivered in the pieces ``split``
    makes. Returns both event logs and everything each side wrote."""
    main = chain(12, body=lambda i: None if i % 4 == 3 else b"x" * (i * 40))
    other = chain(3, author=2, links=(G3,))
    live = chain(2, author=3, links=(G4,))
    a = Driver(
        SyncSession(initiator=True, session_hash=H, groups=[G1]),
        tips=[(key(1).public_key, 12, main[-1].id)],
        sends=main,
        have={e.id: e for e in other},
        push=live,
    )
    b = Driver(
        SyncSession(initiator=False, session_hash=H, groups=[G1]),
        tips=[],
        wants=[e.id for e in other],
    )
    wrote = {id(a): bytearray(), id(b): bytearray()}
    a.session.start()
    b.session.start()
    while True:
        moved = False
        for src, dst in ((a, b), (b, a)):
            data = src.session.data_to_send()
            if data:
                moved = True
                wrote[id(src)] += data
                for piece in split(data):
                    dst.session.receive_data(piece)
                dst.handle()
        if not moved:
            break
    return a.log, b.log, bytes(wrote[id(a)]), bytes(wrote[id(b)])


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_pieces(seed: int) -> Callable[[bytes], list[bytes]]:
    rng = random.Random(seed)

    def split(data: bytes) -> list[bytes]:
        cuts = (
            sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 6))) if len(data) > 1 else []
        )
        bounds = [0, *cuts, len(data)]
        return [data[i:j] for i, j in itertools.pairwise(bounds)]

    return split


def test_whole_and_byte_at_a_time_feeding_agree() -> None:
    reference = scripted_run(whole)
    ev_a, ev_b, _, _ = reference
    kinds_b = [type(e).__name__ for e in ev_b]
    # the scenario covers every message kind
    assert kinds_b.count("EntriesReceived") >= 3 and "ForkProofsReceived" in kinds_b
    assert any(isinstance(e, Wanted) for e in ev_a)
    assert sum(len(e.entries) for e in ev_b if isinstance(e, EntriesReceived)) == 12 + 3 + 2
    assert [e for e in ev_b if isinstance(e, ForkProofsReceived)] == [
        ForkProofsReceived(group=G1, proofs=(b"fork proof bytes",))
    ]
    assert scripted_run(bytewise) == reference
    for seed in range(5):
        assert scripted_run(random_pieces(seed)) == reference


def test_trailing_partial_message_is_kept_for_later() -> None:
    """A frame cut anywhere yields the events of the complete messages before it, and
    the rest once the remainder arrives."""
    _a, b = session_at("live")
    b.push(G1, chain(5))
    data = b.data_to_send() + frame(msg(Msg.WANT, 0, [bytes(32)]))
    full_events: list[SyncEvent] = []
    a2, _ = session_at("live")
    a2.receive_data(data)
    full_events = a2.events()
    for cut in (1, 3, 4, 5, len(data) // 2, len(data) - 1):
        a3, _ = session_at("live")
        a3.receive_data(data[:cut])
        early = a3.events()
        a3.receive_data(data[cut:])
        assert early + a3.events() == full_events


# --------------------------------------------------------------------------- fuzz


def msgpack_values() -> st.SearchStrategy[object]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.binary(max_size=70),
        st.sampled_from([bytes(16), bytes(32), bytes(64)]),
        st.text(max_size=8),
        st.floats(allow_nan=False),
    )
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=6), max_leaves=25)


def run_items() -> st.SearchStrategy[list[object]]:
    """Items that look like RUN items, to get past the first checks of decode_run."""
    item = st.tuples(
        st.integers(min_value=-1, max_value=2**64 - 1),
        st.integers(min_value=-1, max_value=70_000),
        st.lists(st.binary(min_size=31, max_size=33), max_size=3),
        st.binary(max_size=40),
        st.binary(min_size=63, max_size=65),
        st.one_of(st.none(), st.integers(min_value=-1, max_value=2**17)),
    ).map(lambda t: list(t) if t[5] is not None else list(t[:5]))
    return st.lists(item, max_size=4)


def fuzz_messages() -> st.SearchStrategy[bytes]:
    generic = st.builds(
        lambda t, rest: frame(msg(t, *rest)),
        st.integers(min_value=0, max_value=7),
        st.lists(msgpack_values(), max_size=7),
    )
    runs = st.builds(
        lambda gi, author, seq, prev, ts, items: frame(
            msg(Msg.RUN, gi, author, seq, prev, ts, items)
        ),
        st.integers(min_value=0, max_value=1),
        st.sampled_from([bytes(32), b"a" * 32, b"x"]),
        st.integers(min_value=0, max_value=2**64 - 1),
        st.one_of(st.none(), st.binary(min_size=31, max_size=32)),
        st.integers(min_value=0, max_value=2**64 - 1),
        run_items(),
    )
    raw = st.binary(max_size=64)
    length_prefixed = st.binary(max_size=40).map(frame)
    return st.one_of(generic, runs, raw, length_prefixed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=st.sampled_from(["hello", "reconciling", "live"]),
    pieces=st.lists(fuzz_messages(), min_size=1, max_size=6),
)
def test_arbitrary_bytes_only_raise_remote_protocol_error(state: str, pieces: list[bytes]) -> None:
    a, _ = session_at(state)
    try:
        for p in pieces:
            a.receive_data(p)
            a.events()
    except RemoteProtocolError as exc:
        assert isinstance(exc, P2PCommError)
        assert isinstance(exc.code, ErrorCode)


# --------------------------------------------------------------------------- RUN codec


@st.composite
def runs(draw: st.DrawFn) -> tuple[bytes, list[Entry]]:
    """A contiguous chain of one author, in any part of the range of every field:
    maybe starting with the group's genesis, bodies present or absent, links or not."""
    genesis_first = draw(st.booleans())
    n = draw(st.integers(min_value=1, max_value=12))
    start = (
        1
        if genesis_first
        else draw(st.one_of(st.integers(min_value=1, max_value=300), st.just(MAX_U63 - 20)))
    )
    ts = draw(st.one_of(st.integers(min_value=0, max_value=2**40), st.just(MAX_U63 - 10**6)))
    author = key(draw(st.integers(min_value=1, max_value=4)))
    prev = None if start == 1 else hashlib.blake2b(b"p%d" % start, digest_size=32).digest()
    group = hashlib.blake2b(b"run-group", digest_size=32).digest()
    entries: list[Entry] = []
    for i in range(n):
        seq = start + i
        genesis = genesis_first and i == 0
        links: list[bytes] = (
            []
            if genesis
            else sorted(
                set(
                    draw(
                        st.lists(
                            st.binary(min_size=32, max_size=32), max_size=MAX_LINKS if i < 2 else 2
                        )
                    )
                )
            )
        )
        if seq == 1 and not genesis and not links:
            links = [bytes(32)]
        ts += draw(st.sampled_from([0, 1, 127, 128, 70_000]))
        body = draw(
            st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"b" * 255, b"c" * 256]))
        )
        present = genesis or draw(st.booleans())
        kind = KIND_GENESIS if genesis else draw(st.integers(min_value=1, max_value=0xFFFF))
        header = Header(
            1,
            ZERO_ID if genesis else group,
            author.public_key,
            seq,
            prev,
            tuple(links),
            ts,
            kind,
            hashlib.blake2b(body, digest_size=32).digest(),
            len(body),
        )
        hb = encode_header(header)
        eid = entry_id(hb)
        if genesis:
            group = eid
        entries.append(
            Entry(eid, header, hb, author.sign(NS_ENTRY, eid), body if present else None)
        )
        prev = eid
    return group, entries


@settings(max_examples=150, deadline=None)
@given(run=runs())
def test_decode_run_rebuilds_exactly_the_entries(run: tuple[bytes, list[Entry]]) -> None:
    """What push() encodes, the peer's decode_run rebuilds bit for bit: ids, headers,
    header bytes, signatures, bodies (absent ones absent), genesis included."""
    group, entries = run
    a = SyncSession(initiator=True, session_hash=H, groups=[group])
    b = SyncSession(initiator=False, session_hash=H, groups=[group])
    a.start()
    b.start()
    exchange(a, b)
    a.offer_tips(group, [])
    b.offer_tips(group, [])
    exchange(a, b)
    a.push(group, entries)
    data = a.data_to_send()
    assert message_types(data) == [Msg.RUN]
    b.receive_data(data)
    got = [e for ev in b.events() if isinstance(ev, EntriesReceived) for e in ev.entries]
    assert got == entries
    # and decode_run directly, on the unpacked message
    value = msgpack.unpackb(data[4:])
    assert decode_run(group, value) == entries


def test_long_runs_are_split_by_bytes_and_rebuilt() -> None:
    """Bodies past RUN_BYTES close a RUN; the next one restarts from the right seq,
    prev and timestamp."""
    entries = chain(9, body=lambda i: bytes([i]) * 40_000)
    a, b = session_at("live")
    a.push(G1, entries)
    data = a.data_to_send()
    assert message_types(data) == [Msg.RUN, Msg.RUN]
    b.receive_data(data)
    evs = [ev for ev in b.events() if isinstance(ev, EntriesReceived)]
    assert [len(ev.entries) for ev in evs] == [7, 2]  # 7 * 40,000 >= RUN_BYTES
    assert all(ev.live and ev.bulk for ev in evs)
    assert [e for ev in evs for e in ev.entries] == entries


def test_runs_longer_than_max_run_are_split() -> None:
    first = create_entry(
        key(1), group=G1, seq=1, prev=None, links=[G2], timestamp=BASE_TS, kind=KIND_POST, body=b""
    )
    rest = []
    prev = first.id
    for i in range(2, MAX_RUN + 6):
        header = Header(1, G1, key(1).public_key, i, prev, (), BASE_TS, KIND_POST, bytes(32), 0)
        hb = encode_header(header)
        eid = entry_id(hb)
        rest.append(Entry(eid, header, hb, bytes(64), None))
        prev = eid
    entries = [first, *rest]
    a, b = session_at("live")
    a.push(G1, entries)
    data = a.data_to_send()
    # build_runs cuts at its 2,048-entry window before MAX_RUN is reached
    assert message_types(data) == [Msg.RUN] * 3
    b.receive_data(data)
    evs = [ev for ev in b.events() if isinstance(ev, EntriesReceived)]
    assert [len(ev.entries) for ev in evs] == [2048, 2048, 5]
    assert [e for ev in evs for e in ev.entries] == entries


# --------------------------------------------------------------------------- tampering


def test_tampered_body_in_a_run_stops_acceptance_at_that_entry() -> None:
    """Bodies are not trusted: the receiver hashes them into the headers it rebuilds,
    so a changed body changes that entry's id (its signature no longer verifies) and
    the ``prev`` of every later one. Entries before it are accepted, it and everything
    after are not (they wait, unauthenticated, for something that vouches for them)."""
    source = new_group()
    run = source.append_many(
        key(1), [(KIND_POST, b"entry %d" % i) for i in range(8)], timestamp=BASE_TS + 1
    )
    group = source.group
    genesis = source.get(group)
    assert genesis is not None

    a = SyncSession(initiator=True, session_hash=H, groups=[group])
    b = SyncSession(initiator=False, session_hash=H, groups=[group])
    a.start()
    b.start()
    exchange(a, b)
    tips = [(genesis.author, 1, genesis.id)]
    a.offer_tips(group, tips)
    b.offer_tips(group, tips)
    exchange(a, b)
    a.push(group, run)
    data = a.data_to_send()
    value = msgpack.unpackb(data[4:])
    value[6][5][3] = b"entry X"  # entry 5 of 8, same length
    tampered = bytes(msgpack.packb(value, use_bin_type=True))
    b.receive_data(frame(tampered))
    (ev,) = b.events()
    assert isinstance(ev, EntriesReceived)
    assert [e.id for e in ev.entries[:5]] == [e.id for e in run[:5]]
    assert all(x.id != y.id for x, y in zip(ev.entries[5:], run[5:], strict=True))

    for verify_each in (False, True):
        replica = GroupLog(MemoryStore(), group)
        replica.store.put_entries(group, [genesis])
        result = replica.ingest(ev.entries, verify_each=verify_each)
        assert [e.id for e in result.accepted] == [e.id for e in run[:5]]
        assert len(replica) == 6
        assert all(replica.get(e.id) is None for e in ev.entries[5:])
        assert result.pending == 3
        assert replica.verify().ok


# --------------------------------------------------------------------------- size limits


@pytest.mark.parametrize("n", [7, 8])
def test_a_want_reply_split_by_size_is_one_reply(n: int) -> None:
    """ENTRIES close at RUN_BYTES (six 40 KB bodies); ``more`` marks all but the last
    message of a reply, so the second message still answers the WANT, and a further
    ENTRIES after the reply is refused."""
    big = chain(n, body=lambda i: bytes([i]) * 40_000)
    a, b = session_at("live")
    b.want(G1, [e.id for e in big])
    a.receive_data(b.data_to_send())
    (wanted,) = a.events()
    assert isinstance(wanted, Wanted)
    a.send_entries(G1, big, as_runs=False)
    data = a.data_to_send()
    assert message_types(data) == [Msg.ENTRIES, Msg.ENTRIES]
    b.receive_data(data)
    got = [e for ev in b.events() if isinstance(ev, EntriesReceived) for e in ev.entries]
    assert [e.id for e in got] == [e.id for e in big]
    with pytest.raises(RemoteProtocolError) as info:
        b.receive_data(frame(msg(Msg.ENTRIES, 0, [], False)))
    assert info.value.code is ErrorCode.UNEXPECTED_MESSAGE


def test_max_tips_fit_one_message() -> None:
    """MAX_TIPS tips of the widest form (78 bytes: a sequence above 2**32) make a TIPS
    message under MAX_MESSAGE_SIZE; a session refuses to offer more (a typed local
    error) and a peer's TIPS with more are refused."""
    tips = [(t[0], 2**40 + i, t[2]) for i, t in enumerate(random_tips(MAX_TIPS, seed=3))]
    a, b, _, _ = started([G1], [G1])
    a.offer_tips(G1, tips)
    b.offer_tips(G1, tips[:-1])
    exchange(a, b)
    assert a.state(G1) is GroupState.RECONCILING
    assert a.bytes_sent < MAX_MESSAGE_SIZE + 100
    assert 78 * MAX_TIPS < MAX_MESSAGE_SIZE

    c, _d, _, _ = started([G1], [G1])
    with pytest.raises(LocalProtocolError) as local:
        c.offer_tips(G1, random_tips(MAX_TIPS + 1))
    assert local.value.code is ErrorCode.TOO_LARGE

    e, _f, _, _ = started([G1], [G1])
    e.offer_tips(G1, random_tips(1))
    too_many = random_tips(MAX_TIPS + 1, seed=4)
    e.receive_data(frame(msg(Msg.SUMMARY, 0, tips_fingerprint(too_many))))
    e.data_to_send()
    with pytest.raises(RemoteProtocolError) as remote:
        e.receive_data(frame(msg(Msg.TIPS, 0, [list(t) for t in sorted(too_many)])))
    assert remote.value.code is ErrorCode.TOO_LARGE


def test_run_bytes_and_message_limits_are_consistent() -> None:
    """A RUN closes at RUN_BYTES of bodies plus at most one more body and item
    overhead, well inside MAX_MESSAGE_SIZE."""
    assert RUN_BYTES + 48 * 1024 + 400 < MAX_MESSAGE_SIZE


# --------------------------------------------------------------------------- spec examples


def test_examples_of_the_spec_chapter() -> None:
    """The worked examples of spec/06-sync.md (6.6, 6.7, 6.5), byte for byte."""
    g, h = bytes([0x11]) * 32, bytes([0x22]) * 64
    tok_i = group_token(g, h, True)
    assert tok_i.hex() == "569b6a128a32cabe7464362cdb7a61ef"
    assert group_token(g, h, False).hex() == "050b6596e11bcd541233f05987e40035"
    assert tips_fingerprint([]).hex() == "53e8d6610c9913004a4cc38a680c0bf6"
    fp = tips_fingerprint([(bytes([0xAA]) * 32, 5, bytes([0xBB]) * 32)])
    assert fp.hex() == "d63830c0f5b5bb2b629b25872577b391"

    a = SyncSession(initiator=True, session_hash=h, groups=[g])
    b = SyncSession(initiator=False, session_hash=h, groups=[g])
    a.start()
    b.start()
    hello = a.data_to_send()
    assert hello.hex() == "00000016" + "93" + "00" + "01" + "91" + "c410" + tok_i.hex()
    b.receive_data(hello)
    a.receive_data(b.data_to_send())
    a.offer_tips(g, [(bytes([0xAA]) * 32, 5, bytes([0xBB]) * 32)])
    assert a.data_to_send().hex() == "00000015" + "93" + "01" + "00" + "c410" + fp.hex()


def test_many_fork_proofs_go_in_several_forks_messages() -> None:
    """06 6.5.8: at most 64 proofs per FORKS; a sender with more splits them, and the
    receiver takes every message."""
    group = b"\x11" * 32
    h = b"\x22" * 64
    sender = SyncSession(initiator=True, session_hash=h, groups=[group])
    receiver = SyncSession(initiator=False, session_hash=h, groups=[group])
    sender.start()
    receiver.start()
    receiver.receive_data(sender.data_to_send())
    sender.receive_data(receiver.data_to_send())
    sender.events(), receiver.events()
    proofs = [bytes([i % 256]) * 300 for i in range(130)]
    sender.send_fork_proofs(group, proofs)
    wire = sender.data_to_send()
    receiver.receive_data(wire)
    got = [e for e in receiver.events() if isinstance(e, ForkProofsReceived)]
    assert [len(e.proofs) for e in got] == [64, 64, 2]
    assert [p for e in got for p in e.proofs] == proofs


def test_a_message_before_hello_is_bounded_to_what_a_hello_can_be() -> None:
    """06 M1 (revision 3): before the peer's HELLO a length prefix above 8,192 is
    refused at once; a stranger cannot make the receiver buffer 1 MiB."""
    from p2pcomm.core.sync import MAX_HELLO_SIZE

    a = SyncSession(initiator=True, session_hash=bytes(64), groups=[bytes(32)])
    a.start()
    with pytest.raises(RemoteProtocolError) as info:
        a.receive_data((MAX_HELLO_SIZE + 1).to_bytes(4, "big"))
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    b = SyncSession(initiator=True, session_hash=bytes(64), groups=[bytes(32)])
    b.start()
    b.receive_data(MAX_HELLO_SIZE.to_bytes(4, "big"))  # waits for the payload
    assert b.buffered == 4
