"""A blind relay, with real processes, real TCP on loopback and three homes
(spec/12-encryption.md, RELAY).

    alice: init, group create, relay grant (the relay's id), run, invite
    bob:   init, join CODE; then goes offline
    relay: init, run --relay GROUP_ID --peer alice: carries the group, is no member
    alice: post (while bob is offline) -> the relay stores it sealed; alice stops
    bob:   run --peer relay -> gets the post from the relay alone and reads it
    relay: read shows the item sealed; its store's files hold no text
    alice: remove bob; post again -> the relay serves bob nothing new

Nothing sleeps to synchronise: the test reads the nodes' output lines, each with a
deadline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli_e2e import Process, ok, ok_json

pytestmark = pytest.mark.slow


def _port(p: Process) -> int:
    return int(p.wait_for("listening on").rsplit(":", 1)[1])


def test_members_who_are_never_online_together_talk_through_a_blind_relay(
    tmp_path: Path,
) -> None:
    alice, bob, relay = tmp_path / "alice", tmp_path / "bob", tmp_path / "relay"
    ok(tmp_path, alice, "init", "--name", "alice")
    ok(tmp_path, bob, "init", "--name", "bob")
    relay_id = ok(tmp_path, relay, "init", "--name", "relay").strip()
    group = ok(tmp_path, alice, "group", "create", "Garden club").strip()
    ok(tmp_path, alice, "relay", "grant", "Garden club", relay_id)
    assert ok_json(tmp_path, alice, "relay", "list", "Garden club")["relays"] == [relay_id]

    procs: list[Process] = []
    try:
        a = Process(tmp_path, alice, "run", "--listen", "127.0.0.1:0", "--no-mdns")
        procs.append(a)
        a_port = _port(a)
        code = ok_json(
            tmp_path, alice, "invite", "Garden club", "--address", f"127.0.0.1:{a_port}"
        )["code"]
        ok_json(tmp_path, bob, "join", code)
        a.wait_for("joined")

        r = Process(
            tmp_path,
            relay,
            "run",
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
            "--relay",
            group,
            "--peer",
            f"127.0.0.1:{a_port}",
        )
        procs.append(r)
        r_port = _port(r)
        r.wait_for(f"synced     group {group[:16]}")

        # Bob is offline; alice posts, the relay gets it live, then alice goes away.
        text = "Seed swap moved to Sunday"
        posted = ok_json(tmp_path, alice, "post", "Garden club", text)
        line = r.wait_for(f"item       {posted['id'][:8]}")
        assert "(sealed" in line and text not in line
        assert a.interrupt()[0] == 130

        # Bob comes online knowing only the relay's address.
        b = Process(
            tmp_path, bob, "run", "--listen", "127.0.0.1:0", "--no-mdns",
            "--peer", f"127.0.0.1:{r_port}",
        )  # fmt: skip
        procs.append(b)
        b.wait_for(f"synced     group {group[:16]}")
        texts = [i["text"] for i in ok_json(tmp_path, bob, "read", "Garden club")["items"]]
        assert texts == [text]

        # The relay holds the group and reads none of it.
        seen = ok_json(tmp_path, relay, "read", group)["items"]
        assert [(i["id"], i["text"], i["sealed"]) for i in seen] == [(posted["id"], None, True)]
        assert ok_json(tmp_path, relay, "members", group)["members"][0]["name"] == "alice"
        for p in (b, r):
            assert p.interrupt()[0] == 130
        raw = b"".join(f.read_bytes() for f in relay.rglob("*") if f.is_file())
        assert text.encode() not in raw

        # Alice removes bob (offline, on her store), posts, and hands it to the relay.
        bob_id = ok(tmp_path, bob, "id").strip()
        ok(tmp_path, alice, "remove", "Garden club", bob_id)
        secret = ok_json(tmp_path, alice, "post", "Garden club", "after bob")
        a = Process(tmp_path, alice, "run", "--listen", "127.0.0.1:0", "--no-mdns")
        procs.append(a)
        a_port = _port(a)
        r = Process(
            tmp_path, relay, "run", "--listen", "127.0.0.1:0", "--no-mdns",
            "--peer", f"127.0.0.1:{a_port}",
        )  # fmt: skip  (--relay is remembered from the first run)
        procs.append(r)
        r_port = _port(r)
        r.wait_for(f"item       {secret['id'][:8]}")
        assert a.interrupt()[0] == 130

        # Bob, removed, asks the relay: it serves him nothing of the group.
        b = Process(
            tmp_path, bob, "run", "--listen", "127.0.0.1:0", "--no-mdns",
            "--peer", f"127.0.0.1:{r_port}",
        )  # fmt: skip
        procs.append(b)
        b.wait_for(f"synced     group {group[:16]}")  # the relay offered him nothing
        ids = [i["id"] for i in ok_json(tmp_path, bob, "read", "Garden club")["items"]]
        assert ids == [posted["id"]] and secret["id"] not in ids
        assert b.interrupt()[0] == 130
    finally:
        for p in procs:
            p.kill()
