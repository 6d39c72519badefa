"""``p2pcomm demo``: a guided tour of the signed group log, in a temporary folder.

It creates three members' key files, a group in a SQLite store, appends entries,
reopens the store and verifies everything, carries the log to a second device, and
shows forgeries and an equivocation being caught.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..core.content import visible_content
from ..core.identity import KeyPair
from ..core.log import create_entry, decode_entry, encode_entry
from ..core.membership import Role
from ..group import GroupLog
from ..keys import generate_keypair, load_keypair, save_keypair
from ..store import SqliteStore
from ..testing.history import History

KIND_TEXT = 16


def _step(n: int, title: str) -> None:
    print(f"\n{n}. {title}")


def run_demo(*, keep: bool = False) -> int:
    folder = Path(tempfile.mkdtemp(prefix="p2pcomm-demo-"))
    try:
        return _tour(folder)
    finally:
        if keep:
            print(f"\n(kept {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _membership_tour(folder: Path, check: Callable[[bool, str], None]) -> None:
    _step(8, "Membership decides what counts, the same on every replica")
    history, alice = History.found(generate_keypair(), name="Garden club")
    bob, carol, dave = (history.replica(generate_keypair()) for _ in range(3))
    alice.add(bob, Role.MEMBER, name="bob")
    alice.add(carol, Role.MODERATOR, name="carol")
    for r in (bob, carol, dave):
        r.sync(alice)
    seeds = bob.post("I'll bring tomato seeds.")
    alice.sync(bob)
    print("   1: Alice removes Bob / 2: Bob, not having seen it, posts again")
    alice.remove(bob, reason="selling in the group")
    ad = bob.post("Seeds for sale, 5 euros!")
    spam = dave.post("Cheap watches!!!")
    print("   3: Dave, never a member, posts / 4: Carol (moderator) deletes Bob's first post")
    carol.sync(bob)
    carol.delete(seeds, "moved to the swap list")
    welcome = carol.post("Welcome to the garden club!")
    with SqliteStore(folder / "club.db") as store:
        log = GroupLog(store, history.entries[0].id)
        log.ingest(reversed(history.entries))
        entries = [e for _, e in log.entries()]
    state, view = visible_content(entries)
    names = {alice.id: "alice", bob.id: "bob", carol.id: "carol", dave.id: "dave"}
    roles = {names[m]: member.role.name.lower() for m, member in state.members.items()}
    print(f"   members now: {roles}")
    for entry, what in (
        (ad, "bob's concurrent post"),
        (spam, "dave's post"),
        (welcome, "carol's post"),
    ):
        print(f"   {what:<22} {state.verdicts[entry.id].reason.value}")
    print(f"   visible: {[item.text for item in view.visible()]}")
    check(roles == {"alice": "admin", "carol": "moderator"}, "bob removed, carol moderator")
    check(
        not state.authorized(ad.id)
        and not state.authorized(spam.id)
        and state.authorized(welcome.id),
        "the removed member's concurrent post and the non-member's post take no effect",
    )
    check(
        seeds.id in view.drop_bodies and seeds.id not in {i.id for i in view.visible()},
        "the deleted post is gone",
    )
    shuffled = list(entries)
    random.Random(7).shuffle(shuffled)
    again, view_again = visible_content(shuffled)
    check(
        again.members == state.members and again.verdicts == state.verdicts and view_again == view,
        "a replica given the entries in another order computes the same state",
    )


def _tour(folder: Path) -> int:
    print(f"p2pcomm demo, working in {folder}")
    failures = 0

    def check(ok: bool, what: str) -> None:
        nonlocal failures
        print(f"   {'ok  ' if ok else 'FAIL'} {what}")
        failures += not ok

    _step(1, "Three members create identities (key files, mode 0600; Alice's is passphrase-sealed)")
    keys: dict[str, KeyPair] = {}
    for name in ("alice", "bob", "carol"):
        kp = generate_keypair()
        save_keypair(
            folder / f"{name}.key",
            kp,
            passphrase="correct horse" if name == "alice" else None,
            scrypt=(14, 8, 1),
        )
        keys[name] = kp
        print(f"   {name:<6} {kp.id.text()}")
    alice = load_keypair(folder / "alice.key", passphrase="correct horse")
    check(alice.id == keys["alice"].id, "alice's key file opens with her passphrase")
    bob, carol = keys["bob"], keys["carol"]

    _step(2, "Alice starts a group on her device; everyone writes")
    db = folder / "alice.db"
    with SqliteStore(db) as store:
        log = GroupLog.create(store, alice, body=b"Garden club")
        print(f"   group id {log.group.hex()}")
        log.append(alice, KIND_TEXT, b"Welcome! Seed swap on Saturday.")
        log.append(bob, KIND_TEXT, b"I'll bring tomato seeds.")
        log.append(carol, KIND_TEXT, b"Count me in, with beans.")
        log.append_many(bob, [(KIND_TEXT, f"bob's note {i}".encode()) for i in range(50)])
        group = log.group
        print(f"   {len(log)} entries; heads {[h.hex()[:12] for h in log.heads()]}")

    _step(3, "Reopen the store and verify every signature, hash chain, link and body")
    with SqliteStore(db) as store:
        log = GroupLog(store, group)
        report = log.verify()
        check(report.ok and report.entries == 54, f"{report.entries} entries verify")

        _step(4, "Carry the log to Bob's device (as a file would on a USB stick) and ingest it")
        bundle = [encode_entry(e) for _, e in log.entries()]
        with SqliteStore(folder / "bob.db") as bob_store:
            bob_log = GroupLog(bob_store, group)
            result = bob_log.ingest_encoded(reversed(bundle), verify_each=True)
            check(
                len(result.accepted) == 54 and not result.rejected,
                f"bob accepted {len(result.accepted)} entries delivered in reverse order",
            )

            _step(5, "Mallory tries forgeries; each is refused and Bob's store is unchanged")
            before = len(bob_log)
            last = decode_entry(bundle[-1])
            tampered_body = encode_entry(last._replace(body=b"I'll bring nothing."))
            r = bob_log.ingest_encoded([tampered_body])
            check(
                bool(r.rejected) and not r.accepted,
                f"altered body refused: {r.rejected[0].error.code.value if r.rejected else '-'}",
            )
            mallory = generate_keypair()
            fake = create_entry(
                mallory,
                group=group,
                seq=last.seq + 1,
                prev=last.id,
                links=[],
                timestamp=last.header.timestamp,
                kind=KIND_TEXT,
                body=b"(signed by mallory)",
            )
            # claim bob wrote it: swap in bob's key, keep mallory's signature
            forged_header = fake.header._replace(author=bob.public_key)
            from ..core.log import encode_header, entry_id

            hb = encode_header(forged_header)
            forged = fake._replace(header=forged_header, header_bytes=hb, id=entry_id(hb))
            r = bob_log.ingest([forged], verify_each=True)
            check(
                not r.accepted,
                f"entry in bob's name with mallory's signature not accepted (pending {r.pending})",
            )
            garbage = bundle[5][:40]
            r = bob_log.ingest_encoded([garbage])
            check(
                bool(r.rejected),
                f"truncated entry refused: {r.rejected[0].error.code.value if r.rejected else '-'}",
            )
            check(
                len(bob_log) == before and bob_log.verify().ok,
                "bob's store is unchanged and verifies",
            )

            _step(6, "Carol equivocates (two different entries with one sequence number)")
            tip = max(
                (e for _, e in bob_log.entries() if e.author == carol.public_key),
                key=lambda e: e.seq,
            )
            twins = [
                create_entry(
                    carol,
                    group=group,
                    seq=tip.seq + 1,
                    prev=tip.id,
                    links=[],
                    timestamp=tip.header.timestamp,
                    kind=KIND_TEXT,
                    body=text,
                )
                for text in (b"Swap moved to Sunday.", b"Swap cancelled.")
            ]
            bob_log.ingest(twins[:1])
            r = bob_log.ingest(twins[1:])
            check(len(r.forks) == 1, "fork detected; a transferable proof is stored")
            check(len(bob_log.fork_proofs()) == 1, "bob's store holds the fork proof")

            _step(7, "A moderator deletes a post's body; the log still verifies")
            victim = twins[1].id
            bob_log.drop_body(victim)
            r = bob_log.ingest([twins[1]])
            report = bob_log.verify()
            check(
                bob_log.get(victim) is not None
                and bob_log.get(victim).body is None  # type: ignore[union-attr]
                and report.ok,
                f"header kept, body gone and not re-added; {report.entries} entries verify",
            )

    _membership_tour(folder, check)

    print()
    if failures:
        print(f"demo finished with {failures} failed checks")
        return 1
    print("demo finished: every check passed")
    return 0
