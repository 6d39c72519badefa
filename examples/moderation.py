"""Roles and moderation with the application API, on one store (no network).

The founder names a moderator; a member posts; the moderator hides one post and
deletes another; a member who tries what their role does not allow is refused before
anything is written.

    python examples/moderation.py
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from p2pcomm import Group, RefusedError, Role, SqliteStore, generate_keypair


def run(folder: Path) -> None:
    alice, bob, carol = generate_keypair(), generate_keypair(), generate_keypair()
    with SqliteStore(folder / "club.db") as store:
        club = Group.create(store, alice, "Garden club", founder_name="alice")
        club.add(bob.public_key, Role.MEMBER, name="bob")
        club.add(carol.public_key, Role.MODERATOR, name="carol")
        as_bob, as_carol = Group(store, bob, club.id), Group(store, carol, club.id)

        hello = as_bob.post("Hello gardeners!")
        ad = as_bob.post("Cheap seeds, 5 euros, DM me")
        rude = as_bob.post("Your tomatoes are ugly")
        as_carol.hide(rude.id, "be kind")
        as_carol.delete(ad.id, "no selling here")

        attempts: list[tuple[str, Callable[[], object]]] = [
            ("bob removes carol", lambda: as_bob.remove(carol.public_key)),
            ("carol removes alice", lambda: as_carol.remove(alice.public_key)),
            ("bob deletes a post", lambda: as_bob.delete(hello.id)),
        ]
        for who, act in attempts:
            before = store.count(club.id)
            try:
                act()
                raise SystemExit(f"{who}: should have been refused")
            except RefusedError as exc:
                print(
                    f"{who}: refused ({exc.reason}); {store.count(club.id) - before} entries written"
                )

        shown = [(i.text, i.hidden) for i in club.items(include_hidden=True)]
        print("what a moderator sees:", shown)
        assert shown == [("Hello gardeners!", False), ("Your tomatoes are ugly", True)]
        assert [i.text for i in club.items()] == ["Hello gardeners!"]
        deleted = store.get_entry(club.id, ad.id)
        assert deleted is not None and deleted.body is None  # the deleted body is gone
        print("members:", [(m.name, m.role.name.lower()) for m in club.members()])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="p2pcomm-moderation-") as tmp:
        run(Path(tmp))


if __name__ == "__main__":
    main()
