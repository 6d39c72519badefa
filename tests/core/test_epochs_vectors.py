"""Key blocks and encrypted histories of ``spec/vectors/encryption.json``
(spec/12-encryption.md sections 12.9 to 12.11), read as a second implementation would
read them, and every expected value recomputed from the entries with the library.

The building blocks of the same file (12.3 to 12.8) are checked by
``test_seal_vectors.py``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core import crypto
from p2pcomm.core import seal as s
from p2pcomm.core.encryptor import Encryptor
from p2pcomm.core.epochs import GroupKeys, KeyBlock, encrypted_kind, slot_context
from p2pcomm.core.log import Entry, decode_entry
from p2pcomm.core.membership import MEMBERSHIP_KINDS, Kind, MembershipMachine, resolve
from p2pcomm.errors import DecodeError

PATH = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "encryption.json"
DOC = json.loads(PATH.read_text(encoding="utf-8"))


def of(kind: str) -> list[dict[str, Any]]:
    return [v for v in DOC["vectors"] if v["type"] == kind]


def x(text: str) -> bytes:
    return bytes.fromhex(text)


# --------------------------------------------------------------------------- key blocks


@pytest.mark.parametrize("v", of("key-block"), ids=lambda v: v["name"])
def test_key_block(v: dict[str, Any]) -> None:
    data = x(v["encoded"])
    if "fail" in v:
        with pytest.raises(DecodeError) as exc:
            KeyBlock.decode(data)
        assert exc.value.code.value == v["fail"]
        return
    f = v["fields"]
    block = KeyBlock.decode(data)
    assert block.encode() == data
    assert block == KeyBlock(
        receive=x(f["receive"]),
        exclude=tuple(x(m) for m in f["exclude"]),
        to=tuple(x(m) for m in f["to"]),
        epoch=tuple(x(i) for i in f["epoch"]),
        eph_pub=x(f["eph_pub"]),
        slots=x(f["slots"]),
        pointers=x(f["pointers"]),
    )
    assert (block.is_rekey, block.is_forward) == (v["rekey"], v["forward"])
    if "secret" not in v:
        assert not block.eph_pub
        return
    # KB5: the slot context, byte by byte
    c = v["context_of"]
    context = x(c["author"]) + c["seq"].to_bytes(8, "big") + c["kind"].to_bytes(2, "big")
    assert context == slot_context(x(c["author"]), c["seq"], c["kind"]) == x(v["context"])
    # The slots and pointers are 12.5 and 12.6 of the secret, group, context and lists.
    secret = x(v["secret"])
    rekey = s.seal_slots(secret, [x(r) for r in v["recipients"]], x(v["group"]), context)
    assert (rekey.eph_pub, rekey.slots) == (block.eph_pub, block.slots)
    previous = [x(p) for p in v["previous"]]
    if previous:
        assert s.open_pointers(secret, block.pointers) == previous
    else:
        assert block.pointers == b""


def test_key_block_refusals_cover_every_rule() -> None:
    fails = {v["fail"] for v in of("key-block") if "fail" in v}
    assert fails >= {"unknown-version", "wrong-length", "malformed", "wrong-type"}
    assert {"not-canonical", "truncated", "trailing-data", "too-large"} <= fails
    # KB1 counts eight items: every vector that breaks a rule of one item is an array of
    # eight, so it is refused for that item and not for its number of items
    shape = {"seven-items", "nine-items", "not-an-array", "truncated", "trailing"}
    for v in of("key-block"):
        if v["name"].removeprefix("key-block-fail-") not in shape:
            assert x(v["encoded"])[0] == 0x98, v["name"]
    names = {v["name"]: v.get("fail") for v in of("key-block")}
    assert names["key-block-fail-epoch-without-to"] == "malformed"
    assert names["key-block-fail-epoch-descending"] == "malformed"


def test_a_key_block_vector_forwards_a_named_epoch() -> None:
    (v,) = [v for v in of("key-block") if "fail" not in v and v["fields"]["epoch"]]
    block = KeyBlock.decode(x(v["encoded"]))
    assert block.is_forward and list(block.epoch) == sorted(block.epoch)
    assert len(v["previous"]) == len(block.epoch)


# --------------------------------------------------------------------------- histories


def _orders(entries: list[Entry]) -> list[list[Entry]]:
    return [entries, list(reversed(entries))] + [
        random.Random(seed).sample(entries, len(entries)) for seed in range(3)
    ]


@pytest.mark.parametrize("v", of("history"), ids=lambda v: v["name"])
def test_history(v: dict[str, Any]) -> None:
    entries = [decode_entry(x(e["entry"])) for e in v["entries"]]
    label = {e.id: item["label"] for e, item in zip(entries, v["entries"], strict=True)}
    by_label = {item["label"]: e for e, item in zip(entries, v["entries"], strict=True)}
    name = {x(k): n for n, k in v["authors"].items()}
    group = x(v["group"])
    receive = {
        n: {x(k["public"]): x(k["private"]) for k in keys} for n, keys in v["receive"].items()
    }
    for keys in receive.values():
        for public, private in keys.items():
            assert crypto.x25519_public(private) == public
    expect = v["expect"]
    for order in _orders(entries):
        machine = MembershipMachine()
        machine.apply_many(order)
        state = machine.state
        assert state == resolve(order)
        assert state.group == group
        assert {label[e.id]: state.verdicts[e.id].reason.value for e in entries} == expect[
            "verdicts"
        ]
        members = {name[m]: i.role.name.lower() for m, i in state.members.items()}
        assert members == expect["members"]
        core = machine._core
        view = core.epochs
        assert view.encrypted
        # KB6, KB7: the recipients of every key block, and whether a forward counts
        ops: dict[str, Any] = {}
        for e in entries:
            if e.header.kind not in MEMBERSHIP_KINDS:
                continue
            o = core.by_id[e.id]
            b = view.block(o)
            if b is None:
                continue
            got: dict[str, Any] = {
                "receive": b.receive.hex() or None,
                "rekey": b.is_rekey,
                "forward": b.is_forward,
            }
            if b.eph_pub:
                got["context"] = slot_context(o.author, o.seq, o.kind).hex()
                got["recipients"] = [name[m] for m, _ in view.recipients(o)]
                got["slots"] = b.slot_count
                # KB8: what its pointers carry (a forward's named epoch, or the frontier
                # of its cut without it)
                got["pointers"] = bool(b.pointers)
                got["carries"] = [label[p.id] for p in view.covered(o)]
            if b.is_forward:
                got["epoch"] = [label.get(i, i.hex()) for i in b.epoch]
            ops[label[e.id]] = got
        assert ops == expect["key_ops"]
        # 12.10: each encrypted content entry's epoch, holders, verdict and readers
        readers: dict[str, GroupKeys] = {}
        for n, rec in receive.items():
            gk = GroupKeys(view, x(v["authors"][n]), rec, {})
            gk.learn()
            readers[n] = gk
        seen = set()
        for e in entries:
            h = e.header
            if h.kind in MEMBERSHIP_KINDS or not encrypted_kind(h.kind):
                continue
            want = expect["content"][label[e.id]]
            seen.add(label[e.id])
            K = core.K[e.id]
            eid, ids = view.epoch(K)
            assert [label[i] for i in ids] == want["frontier"]
            assert eid == s.epoch_id(group, [by_label[i].id for i in want["frontier"]])
            assert eid.hex() == want["epoch_id"]
            assert sorted(name[m] for m in view.holders(K)) == want["holders"]
            assert sorted(name[m] for m in view.members(K)) == want["members"]
            assert state.verdicts[e.id].reason.value == want["verdict"]
            assert view.stale(K) == (want["verdict"] == "stale-epoch")
            derive = sorted(n for n, gk in readers.items() if gk.epoch_key(K) is not None)
            assert derive == want["derive"]
            ctx = s.AadContext(group, h.author, h.seq, h.kind)
            assert e.body is not None
            assert s.decode_envelope(e.body).epoch_id == eid
            for n, gk in readers.items():
                opened = gk.open(K, ctx, e.body)
                if n in derive:
                    assert opened.plaintext is not None
                    assert opened.plaintext.hex() == want["plaintext"]
                    # EK2 from the secrets this member found, in entry-id order
                    secrets = [(i, gk.secrets[i]) for i in ids]
                    assert s.epoch_key(group, secrets).hex() == want["key"]
                    assert s.open_body(x(want["key"]), e.body, ctx).hex() == want["plaintext"]
                else:
                    assert opened.plaintext is None and opened.problem == "no-key"
            if not derive:
                assert want["key"] is None and want["plaintext"] is None
        assert seen == set(expect["content"])


def test_the_histories_cover_the_concurrency_cases_of_the_chapter() -> None:
    names = {v["name"] for v in of("history")}
    assert names >= {
        "history-concurrent-removals",
        "history-same-removal",
        "history-mutual-removal",
        "history-removal-and-add",
        "history-removal-and-join",
        "history-leave",
        "history-equivocation",
        "history-offline-member",
        "history-garbled-slot",
        "history-mutual-removal-senior-first",
        "history-removed-admin-welcomes",
        "history-leave-after-a-forward",
    }
    verdicts = {c["verdict"] for v in of("history") for c in v["expect"]["content"].values()}
    assert {"ok", "stale-epoch", "revoked"} <= verdicts


def test_the_histories_show_a_repair_of_a_rekey_without_pointers() -> None:
    """W5: a rekey written without pointers, then a forward that names the epoch before
    it, after which its recipient derives content of that epoch."""
    (v,) = [v for v in of("history") if v["name"] == "history-mutual-removal-senior-first"]
    ops = v["expect"]["key_ops"]
    bare = [label for label, op in ops.items() if op["rekey"] and not op["pointers"]]
    named = [op for op in ops.values() if op["forward"] and op["epoch"]]
    assert bare and named
    (forward,) = named
    assert forward["recipients"] == ["alice"] and forward["carries"] == forward["epoch"]
    assert len(forward["epoch"]) == 2
    for label in bare:
        if ops[label]["recipients"] != ["alice"]:  # not the genesis
            assert ops[label]["carries"] == forward["epoch"]
    before = [c for c in v["expect"]["content"].values() if c["frontier"] == forward["epoch"]]
    assert before and all("alice" in c["derive"] for c in before)


def test_a_void_welcome_makes_the_epoch_stale() -> None:
    """H1 counts every recipient a forward names, member or not."""
    (v,) = [v for v in of("history") if v["name"] == "history-removed-admin-welcomes"]
    stale = [c for c in v["expect"]["content"].values() if c["verdict"] == "stale-epoch"]
    assert stale
    for c in stale:
        assert "erin" in c["holders"] and "erin" not in c["members"] and "erin" in c["derive"]


def test_a_departure_the_frontier_does_not_follow_calls_for_a_rekey() -> None:
    """W3's third case: a forward outside the cut reached the leaver, so X1 cannot see
    it; the writer rekeys because of the leave itself."""
    (v,) = [v for v in of("history") if v["name"] == "history-leave-after-a-forward"]
    careless, honest = v["expect"]["content"].values()
    assert careless["verdict"] == "ok" and "dave" not in careless["holders"]
    assert "dave" in careless["derive"] and "dave" not in careless["members"]
    (rekey,) = honest["frontier"]
    assert v["expect"]["key_ops"][rekey]["rekey"] and rekey.startswith("bob-")
    assert honest["verdict"] == "ok" and "dave" not in honest["derive"]


def test_a_rekey_void_at_its_own_cut_starts_no_epoch() -> None:
    """F1: dave's BAN of alice is void at its cut, so its rekey, which leaves alice out,
    is in no frontier: his post after it is in the epoch before, which alice holds, and
    she reads it when everyone that rekey reached has left."""
    (v,) = [v for v in of("history") if v["name"] == "history-void-at-its-cut"]
    expect = v["expect"]
    assert expect["verdicts"]["dave-2"] == "insufficient-role"
    ban = expect["key_ops"]["dave-2"]
    assert ban["rekey"] and "alice" not in ban["recipients"]
    content = expect["content"]
    assert "dave-2" not in content["dave-3"]["frontier"]
    assert "alice" in content["dave-3"]["derive"]
    assert sorted(expect["members"]) == ["alice", "dave"]
    assert all("dave-2" not in c["frontier"] for c in content.values())
    (v,) = [v for v in of("history") if v["name"] == "history-void-at-its-cut-stands"]
    expect = v["expect"]
    assert expect["verdicts"]["bob-2"] == "ok" and "dave" not in expect["members"]
    stale, honest = (c for c in expect["content"].values())
    assert stale["verdict"] == "stale-epoch" and "dave" in stale["derive"]
    assert honest["verdict"] == "ok" and "dave" not in honest["derive"]


def test_a_since_join_group_shows_a_newcomer_only_what_follows() -> None:
    """12.11b: no rekey has pointers (HM1); a rekey welcomes each newcomer (HM2), who
    derives what follows and not what came before; an admin seals the fields again
    under an epoch the newcomer holds (HM4), and every member reads them, mode included."""
    (v,) = [v for v in of("history") if v["name"] == "history-since-join"]
    entries = [decode_entry(x(e["entry"])) for e in v["entries"]]
    label = {e.id: item["label"] for e, item in zip(entries, v["entries"], strict=True)}
    ops = v["expect"]["key_ops"]
    rekeys = [op for op in ops.values() if op["rekey"]]
    assert len(rekeys) == 3 and not any(op["pointers"] for op in rekeys)
    assert not any(op["forward"] for op in ops.values())
    content = v["expect"]["content"]
    order = [label[e.id] for e in entries if label[e.id] in content]
    before, *after = (content[k] for k in order)
    assert before["members"] == ["alice", "bob"] and "carol" not in before["derive"]
    assert after and all(c["derive"] == ["alice", "bob", "carol"] for c in after)
    assert all(c["verdict"] == "ok" for c in content.values())
    resealed = [label[e.id] for e in entries if e.header.kind == Kind.SET_METADATA]
    assert len(resealed) == 2 and all(r.startswith("alice-") for r in resealed)
    machine = MembershipMachine()
    machine.apply_many(entries)
    for n, keys in v["receive"].items():
        receive = {x(k["public"]): x(k["private"]) for k in keys}
        enc = Encryptor(machine, x(v["authors"][n]), receive, {}, random_bytes=bytes)
        assert enc.since_join, n
        assert enc.metadata() == ("since join", "", ""), n
    # Without the last reseal, carol cannot open the fields: they were sealed under the
    # epoch that welcomed bob, before she joined
    last = entries.index(next(e for e in entries if label[e.id] == resealed[-1]))
    machine = MembershipMachine()
    machine.apply_many(entries[:last])
    carol = {x(k["public"]): x(k["private"]) for k in v["receive"]["carol"]}
    enc = Encryptor(machine, x(v["authors"]["carol"]), carol, {}, random_bytes=bytes)
    assert enc.metadata() is None and not enc.since_join


def test_a_slot_sealed_to_a_member_whose_add_is_voided_later_counts() -> None:
    """KB6: the recipients of dave's rekey are the members of its cut resolved alone, so
    erin, whose ADD a demotion outside that cut voids, keeps her slot and is a holder:
    the epoch is stale (X1), and carol rekeys before she posts (W3)."""
    (v,) = [v for v in of("history") if v["name"] == "history-add-voided-after-a-rekey"]
    expect = v["expect"]
    assert expect["verdicts"]["bob-2"] == "revoked" and "erin" not in expect["members"]
    assert "erin" in expect["key_ops"]["dave-2"]["recipients"]
    stale, honest = (c for c in expect["content"].values())
    assert stale["frontier"] == ["dave-2"] and stale["verdict"] == "stale-epoch"
    assert "erin" in stale["holders"] and "erin" in stale["derive"]
    assert honest["verdict"] == "ok" and "erin" not in honest["derive"]
