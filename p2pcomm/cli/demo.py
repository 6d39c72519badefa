"""``p2pcomm demo``: a guided tour of the signed group log, in a temporary folder.

It creates three members' key files, a group in a SQLite store, posts, reopens the
store and verifies everything, carries the log to a second device in a bundle file,
shows forgeries and an equivocation being caught and membership deciding what counts,
then runs two nodes on loopback: an invitation code alone brings a newcomer in, and
posts travel live between them.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..bundle import export_bundle, import_bundle
from ..community import Group
from ..core.content import Post, visible_content
from ..core.identity import KeyPair
from ..core.log import create_entry, decode_entry, encode_entry
from ..core.membership import Kind, Role
from ..errors import RefusedError
from ..group import GroupLog
from ..keys import generate_keypair, load_keypair, save_keypair
from ..store import SqliteStore
from ..testing.history import History

KIND_POST = int(Kind.POST)


def _post(text: str) -> bytes:
    return Post(text=text).encode()


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


def _network_tour(folder: Path, check: Callable[[bool, str], None]) -> None:
    _step(9, "Two nodes on loopback: an invitation code alone brings Erin in")
    import trio

    from ..net.node import ItemAdded, open_node

    alice, erin = generate_keypair(), generate_keypair()

    async def run() -> None:
        with (
            SqliteStore(folder / "alice-node.db") as alice_store,
            SqliteStore(folder / "erin-node.db") as erin_store,
        ):
            club = Group.create(alice_store, alice, "Night owls", founder_name="alice")
            async with open_node(alice_store, alice, host="127.0.0.1", port=0) as alice_node:
                host, port = alice_node.address
                invitation = await alice_node.group(club.id).invite(addresses=[f"{host}:{port}"])
                code = invitation.text
                print(
                    f"   alice's code for erin: {code[:24]}...{code[-8:]} ({len(code)} characters)"
                )
                async with open_node(erin_store, erin, listen=False, groups=[]) as erin_node:
                    with trio.fail_after(30):
                        owls = await erin_node.join(code, name="erin")
                    check(
                        owls.name == "Night owls" and owls.role() is Role.MEMBER,
                        f"erin joined {owls.name!r} as a member with nothing but the code",
                    )
                    heard = alice_node.subscribe()
                    await owls.post("Hello owls, erin here")
                    with trio.fail_after(30):
                        async for event in heard:
                            if isinstance(event, ItemAdded) and event.origin == erin.public_key:
                                break
                    texts = [i.text for i in alice_node.group(club.id).items()]
                    check(
                        texts == ["Hello owls, erin here"],
                        "erin's post reached alice's node live",
                    )
                    names = sorted(m.name for m in alice_node.group(club.id).members())
                    check(names == ["alice", "erin"], f"both nodes agree on the members {names}")

    trio.run(run)


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

    _step(2, "Alice starts a group on her device, adds Bob and Carol; everyone posts")
    db = folder / "alice.db"
    with SqliteStore(db) as store:
        club = Group.create(store, alice, "Garden club", founder_name="alice")
        club.add(bob.public_key, name="bob")
        club.add(carol.public_key, name="carol")
        club.post("Welcome! Seed swap on Saturday.")
        as_bob = Group(store, bob, club.id)
        as_bob.post("I'll bring tomato seeds.")
        Group(store, carol, club.id).post("Count me in, with beans.")
        for i in range(50):
            as_bob.post(f"bob's note {i}")
        group = club.id
        total = len(club.log)
        print(f"   group id {group.hex()}")
        print(f"   {total} entries; members {[m.name for m in club.members()]}")
        texts = [i.text for i in club.items()]
        check(
            len(texts) == 53 and None not in texts,
            f"the group is encrypted; every member reads all {len(texts)} posts",
        )
        try:
            Group(store, generate_keypair(), group).post("let me in")
            check(False, "a stranger's post is refused")
        except RefusedError as exc:
            check(exc.reason == "not-a-member", f"a stranger's post is refused ({exc.reason})")

    raw = b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("alice.db"))
    check(
        b"Seed swap" not in raw and b"bob's note" not in raw and b"Garden club" not in raw,
        "the store's files hold no post's text and not the group's name (a stolen laptop)",
    )

    _step(3, "Reopen the store and verify every signature, hash chain, link and body")
    with SqliteStore(db) as store:
        log = GroupLog(store, group)
        report = log.verify()
        check(report.ok and report.entries == total, f"{report.entries} entries verify")

        _step(4, "Carry the log to Bob's device in a bundle file (a USB stick) and import it")
        bundle_file = folder / "garden-club.p2pb"
        stats = export_bundle(store, group, bundle_file)
        print(f"   {stats.entries} entries in {stats.bytes:,} bytes")
        bundle = [encode_entry(e) for _, e in log.entries()]
        with SqliteStore(folder / "bob.db") as bob_store:
            imported = import_bundle(bob_store, bundle_file)
            check(
                imported.accepted == total and imported.complete,
                f"bob's device verified and stored {imported.accepted} entries",
            )
            bob_log = GroupLog(bob_store, group)

            _step(5, "Mallory tries forgeries; each is refused and Bob's store is unchanged")
            before = len(bob_log)
            last = decode_entry(bundle[-1])
            tampered_body = encode_entry(last._replace(body=_post("I'll bring nothing.")))
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
                kind=KIND_POST,
                body=_post("(signed by mallory)"),
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
                    kind=KIND_POST,
                    body=_post(text),
                )
                for text in ("Swap moved to Sunday.", "Swap cancelled.")
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
    _network_tour(folder, check)

    print()
    if failures:
        print(f"demo finished with {failures} failed checks")
        return 1
    print("demo finished: every check passed")
    return 0
