"""Carry a group's history on a USB stick: export a bundle file, import it elsewhere.

A device with no network catches up from a file someone carried by hand. Nothing in
the file is trusted: every entry is verified on import, so a tampered copy imports only
what verifies, and nothing unverified is stored.

    python examples/sneakernet.py

Exits 0 when the clean copy imports whole and the tampered one is caught.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from p2pcomm import Group, SqliteStore, export_bundle, generate_keypair, import_bundle


def run(folder: Path) -> None:
    alice = generate_keypair()
    stick = folder / "garden-club.p2pb"

    with SqliteStore(folder / "alice.db") as store:
        club = Group.create(store, alice, "Garden club", founder_name="alice")
        for i in range(200):
            club.post(f"harvest note {i}")
        stats = export_bundle(store, club.id, stick)
    print(f"exported {stats.entries} entries, {stats.bytes:,} bytes, to {stick.name}")

    with SqliteStore(folder / "offline.db") as store:
        report = import_bundle(store, stick)
        offline = Group(store, generate_keypair(), report.group)
        print(
            f"offline device: {report.accepted} entries verified and stored; "
            f"{len(offline.items())} posts in {offline.name!r}"
        )
        assert report.complete and report.accepted == stats.entries

    # Someone edits a post on the stick (same length, so framing still holds).
    data = bytearray(stick.read_bytes())
    where = data.find(b"harvest note 150")
    data[where : where + 16] = b"harvest note XXX"
    tampered = folder / "tampered.p2pb"
    tampered.write_bytes(bytes(data))

    with SqliteStore(folder / "other.db") as store:
        report = import_bundle(store, tampered)
        codes = sorted({r.error.code.value for r in report.rejected})
        print(
            f"tampered copy: {report.accepted} entries stored, "
            f"{len(report.rejected)} refused ({', '.join(codes)}); nothing unverified kept"
        )
        texts = {i.text for i in Group(store, generate_keypair(), report.group).items()}
        assert not report.complete and report.rejected
        assert "harvest note XXX" not in texts


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="p2pcomm-sneakernet-") as tmp:
        run(Path(tmp))


if __name__ == "__main__":
    main()
