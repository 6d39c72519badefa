"""Carry a group's history on a USB stick: export a bundle file, import it elsewhere.

A device with no network catches up from a file someone carried by hand. The file holds
ciphertext only (the group is encrypted), and nothing in it is trusted: every entry is
verified on import, so a tampered copy imports only what verifies, and nothing
unverified is stored.

    python examples/sneakernet.py

Exits 0 when the clean copy imports whole, the member reads every post from it, and
the tampered one is caught.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from p2pcomm import Group, SqliteStore, export_bundle, generate_keypair, import_bundle


def carry(src: SqliteStore, dst: SqliteStore, group: bytes, stick: Path) -> int:
    """Export ``group`` from one device to a file and import it on the other."""
    export_bundle(src, group, stick)
    report = import_bundle(dst, stick)
    assert report.complete, report.rejected
    return report.accepted


def run(folder: Path) -> None:
    alice, bob = generate_keypair(), generate_keypair()
    stick = folder / "garden-club.p2pb"
    a_store = SqliteStore(folder / "alice.db")
    b_store = SqliteStore(folder / "bob.db")
    try:
        # Bob becomes a member without any network: the entries go by file both ways.
        club = Group.create(a_store, alice, "Garden club", founder_name="alice")
        club.add(bob.public_key, name="bob")
        carry(a_store, b_store, club.id, stick)
        Group(b_store, bob, club.id).publish_keys()  # bob's receive key
        carry(b_store, a_store, club.id, stick)
        club.welcome()  # alice hands bob the group's key
        print("bob joined by hand-carried files; alice welcomed him")

        for i in range(200):
            club.post(f"harvest note {i}")
        stats = export_bundle(a_store, club.id, stick)
        print(f"exported {stats.entries} entries, {stats.bytes:,} bytes, to {stick.name}")
        data = stick.read_bytes()
        assert b"harvest note" not in data  # the file holds ciphertext only

        report = import_bundle(b_store, stick)
        as_bob = Group(b_store, bob, club.id)
        texts = [i.text for i in as_bob.items()]
        print(
            f"bob's offline device: {report.accepted} new entries verified and stored; "
            f"reads {sum(t is not None for t in texts)} of {len(texts)} posts"
        )
        assert report.complete and texts == [f"harvest note {i}" for i in range(200)]
    finally:
        a_store.close()
        b_store.close()

    # Someone flips one byte of a post's ciphertext on the stick.
    with SqliteStore(folder / "alice.db") as store:
        victim = Group(store, alice, club.id).items()[150].id
        body = store.get_entry(club.id, victim).body  # type: ignore[union-attr]
    assert body is not None
    where = data.find(body)
    tampered_data = bytearray(data)
    tampered_data[where + len(body) // 2] ^= 0x01
    tampered = folder / "tampered.p2pb"
    tampered.write_bytes(bytes(tampered_data))

    with SqliteStore(folder / "other.db") as store:
        report = import_bundle(store, tampered)
        codes = sorted({r.error.code.value for r in report.rejected})
        print(
            f"tampered copy: {report.accepted} entries stored, "
            f"{len(report.rejected)} refused ({', '.join(codes)}); nothing unverified kept"
        )
        assert not report.complete and report.rejected
        assert store.get_entry(club.id, victim) is None or (
            store.get_entry(club.id, victim).body != body  # type: ignore[union-attr]
        )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="p2pcomm-sneakernet-") as tmp:
        run(Path(tmp))


if __name__ == "__main__":
    main()
