"""The ``p2pcomm`` command driven as a person drives it: results, files, and what every
mistake looks like (one line on stderr, the documented exit status, JSON with --json).

Most tests call ``main([...])`` in this process (fast); those where the process boundary
matters (exit statuses a shell sees, signals, locks held by another process, bytes that
are not UTF-8) run ``python -m p2pcomm``. Every home is in ``tmp_path``; ``HOME`` and
``XDG_DATA_HOME`` point there too, so the user's real home is never touched.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.cli.main import COMMAND_LOCK, Exit, main
from p2pcomm.community import Group
from p2pcomm.core.identity import MemberId
from p2pcomm.core.invitation import InvitationCode
from p2pcomm.core.membership import Role
from p2pcomm.group import GroupLog
from p2pcomm.keys import load_keypair
from p2pcomm.store import SqliteStore

# --------------------------------------------------------------------------- helpers


@dataclass
class Res:
    status: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def _private_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in ("P2PCOMM_HOME", "P2PCOMM_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Res:
        status = main(list(args))
        captured = capsys.readouterr()
        return Res(status, captured.out, captured.err)

    return run


def ok(res: Res) -> Res:
    assert res.status == 0, res
    assert "Traceback" not in res.err
    return res


def one_line_error(res: Res, status: Exit, *fragments: str) -> str:
    """``res`` failed as a user mistake: ``status``, nothing on stdout, one line on
    stderr containing every fragment; returns that line."""
    assert res.status == status, res
    assert res.out == "", res
    assert "Traceback" not in res.err and "Exception" not in res.err, res.err
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    line = lines[0]
    assert line.startswith("p2pcomm: "), line
    assert not line[len("p2pcomm: ")].isupper(), line  # messages are lower-case
    for f in fragments:
        assert f in line, (f, line)
    return line


def json_error(res: Res, status: Exit, code: str | None = None) -> dict[str, str]:
    assert res.status == status, res
    assert res.out == "", res
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    doc = json.loads(lines[0])
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc
    if code is not None:
        assert doc["error"]["code"] == code, doc
    error: dict[str, str] = doc["error"]
    return error


def child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("P2PCOMM_")}
    env["HOME"] = str(tmp_path)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return env


def run_cli(tmp_path: Path, *args: str | bytes, timeout: float = 60) -> Res:
    proc = subprocess.run(
        [sys.executable, "-m", "p2pcomm", *args],
        capture_output=True,
        env=child_env(tmp_path),
        timeout=timeout,
        check=False,
    )
    return Res(
        proc.returncode,
        proc.stdout.decode("utf-8", "surrogateescape"),
        proc.stderr.decode("utf-8", "surrogateescape"),
    )


def modes(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def copy_entries(src: Path, dst: Path, group: bytes) -> None:
    """Carry a group's entries from one home's store to another's (what sync does)."""
    with (
        SqliteStore(src / "store.db", offload=False) as a,
        SqliteStore(dst / "store.db", offload=False) as b,
    ):
        entries = [e for _, e in GroupLog(a, group).entries()]
        result = GroupLog(b, group).ingest(entries)
        assert not result.rejected, result.rejected


@pytest.fixture
def alice(tmp_path: Path, cli: Any) -> Path:
    home = tmp_path / "alice"
    ok(cli("init", "--home", str(home), "--name", "alice"))
    return home


def make_group(cli: Any, home: Path, name: str = "Garden club") -> str:
    res = ok(cli("group", "create", "--home", str(home), name))
    gid = res.out.strip()
    assert len(bytes.fromhex(gid)) == 32
    return gid


# --------------------------------------------------------------------------- the offline path


def test_init_makes_a_private_home_and_prints_the_id(tmp_path: Path, cli: Any) -> None:
    home = tmp_path / "alice"
    res = ok(cli("init", "--home", str(home), "--name", "alice"))
    member = res.out.strip()
    assert member.startswith("pc1") and len(member) == 59
    assert "identity created" in res.err and "group create" in res.err
    assert modes(home) == 0o700
    assert modes(home / "key") == 0o600
    assert modes(home / "store.db") == 0o600
    assert ok(cli("id", "--home", str(home))).out.strip() == member
    doc = ok(cli("id", "--home", str(home), "--json")).json()
    assert doc == {"id": member, "name": "alice", "home": str(home)}


def test_a_group_from_creation_to_moderation(alice: Path, cli: Any) -> None:
    h = ("--home", str(alice))
    gid = make_group(cli, alice)
    me = ok(cli("id", *h)).out.strip()

    listing = ok(cli("group", "list", *h)).out
    assert gid[:16] in listing and "'Garden club'" in listing and "you: admin" in listing
    assert "1 member " in listing and "1 entry" in listing
    for name in (gid, gid[:8], "Garden club"):
        info = ok(cli("group", "info", *h, name)).out
        assert info.splitlines()[0] == f"Garden club  ({gid})"
        assert "admin" in info and "alice" in info and me in info
    info_doc = ok(cli("group", "info", *h, "--json", gid[:8])).json()
    assert info_doc["id"] == gid and info_doc["role"] == "admin"
    assert info_doc["members_list"] == [{"id": me, "name": "alice", "role": "admin"}]

    first = ok(cli("post", *h, "Garden club", "Seed swap on Saturday")).out.strip()
    second = ok(cli("post", *h, gid[:8], "Bring gloves")).out.strip()
    assert len(bytes.fromhex(first)) == 32 and first != second
    reply = ok(cli("reply", *h, gid, first[:8], "I will bring tomatoes")).out.strip()
    ok(cli("react", *h, gid, first[:8], "🌱"))

    text = ok(cli("read", *h, gid)).out
    lines = text.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "Seed swap on Saturday  🌱1",
        "Bring gloves",
        "I will bring tomatoes",
    ]
    assert lines[0].startswith(first[:8]) and "alice" in lines[0]
    assert f"re {first[:8]}" in lines[2]

    doc = ok(cli("read", *h, "--json", gid)).json()
    assert doc["group"] == gid and doc["name"] == "Garden club"
    items = {i["id"]: i for i in doc["items"]}
    assert items[first]["text"] == "Seed swap on Saturday"
    assert items[first]["author"] == me and items[first]["author_name"] == "alice"
    assert items[first]["reactions"] == {"🌱": 1}
    assert items[reply]["parent"] == first and items[reply]["kind"] == "reply"
    assert items[second]["reactions"] == {} and not items[second]["hidden"]

    tail = ok(cli("tail", *h, "-n", "1", gid)).out
    assert tail.splitlines() == [lines[2]]
    tail_doc = json.loads(ok(cli("tail", *h, "-n", "1", "--json", gid)).out)
    assert tail_doc["id"] == reply

    members = ok(cli("members", *h, "--json", gid)).json()
    assert members == {
        "group": gid,
        "members": [{"id": me, "name": "alice", "role": "admin"}],
        "banned": [],
        "expelled": [],
    }

    # moderation: hide, unhide, delete
    ok(cli("hide", *h, gid, second[:8], "--reason", "off topic"))
    assert "Bring gloves" not in ok(cli("read", *h, gid)).out
    hidden = ok(cli("read", *h, "--hidden", gid)).out
    assert "(hidden): Bring gloves" in hidden
    ok(cli("unhide", *h, gid, second[:8]))
    assert "Bring gloves" in ok(cli("read", *h, gid)).out
    ok(cli("delete", *h, gid, second[:8]))
    after = ok(cli("read", *h, "--json", "--hidden", gid)).json()
    assert second not in {i["id"] for i in after["items"]}
    assert "Bring gloves" not in json.dumps(after, ensure_ascii=False)

    verify = ok(cli("verify", *h)).out
    assert f"group {gid[:16]}:" in verify and verify.rstrip().endswith(": ok")
    assert ok(cli("verify", *h, "--json")).json()["ok"] is True


def test_invite_code_carries_what_was_asked(alice: Path, cli: Any) -> None:
    gid = make_group(cli, alice)
    me = ok(cli("id", "--home", str(alice))).out.strip()
    before = int(time.time() * 1000)
    res = ok(
        cli(
            "invite",
            "--home",
            str(alice),
            gid,
            "--role",
            "moderator",
            "--uses",
            "3",
            "--expires",
            "7d",
            "--address",
            "127.0.0.1:1234",
        )
    )
    assert "moderator" in res.err and "3 use" in res.err
    code = InvitationCode.parse(res.out.strip())
    assert code.group.hex() == gid
    assert MemberId(code.inviter).text() == me
    assert code.role == int(Role.MODERATOR)
    assert code.max_uses == 3
    week = 7 * 86_400_000
    assert before + week <= code.expires_at <= int(time.time() * 1000) + week
    assert code.hints == ("127.0.0.1:1234",)

    doc = ok(cli("invite", "--home", str(alice), "--json", gid, "--uses", "0")).json()
    assert doc["uses"] == 0 and doc["role"] == "member" and doc["expires_at"] is None
    assert InvitationCode.parse(doc["code"]).max_uses == 0


def test_a_second_member_roles_refusals_leave_remove_ban(
    tmp_path: Path, alice: Path, cli: Any
) -> None:
    bob = tmp_path / "bob"
    bob_id = ok(cli("init", "--home", str(bob), "--name", "bob")).out.strip()
    gid = make_group(cli, alice)
    group = bytes.fromhex(gid)
    code = ok(cli("invite", "--home", str(alice), gid)).out.strip()

    # bob joins offline: the invitation travels to bob's store, his join back
    copy_entries(alice, bob, group)
    with SqliteStore(bob / "store.db", offload=False) as store:
        Group(store, load_keypair(bob / "key"), group).join(InvitationCode.parse(code), name="bob")
    copy_entries(bob, alice, group)

    members = ok(cli("members", "--home", str(alice), "--json", gid)).json()["members"]
    assert {m["name"]: m["role"] for m in members} == {"alice": "admin", "bob": "member"}

    post = ok(cli("post", "--home", str(bob), gid, "hi all, bob here")).out.strip()
    copy_entries(bob, alice, group)
    read = ok(cli("read", "--home", str(alice), "--json", gid)).json()
    assert [(i["author_name"], i["text"]) for i in read["items"]] == [("bob", "hi all, bob here")]
    assert read["items"][0]["id"] == post

    # a member cannot remove the admin: refused, with the reason
    line = one_line_error(
        cli("remove", "--home", str(bob), gid, "alice"), Exit.REFUSED, "refused", "admin"
    )
    assert "insufficient-role" in line
    err = json_error(cli("remove", "--home", str(bob), "--json", gid, "alice"), Exit.REFUSED)
    assert err["code"] == "refused" and "admin" in err["message"]

    ok(cli("role", "--home", str(alice), gid, "bob", "moderator"))
    members = ok(cli("members", "--home", str(alice), "--json", gid)).json()["members"]
    assert {m["name"]: m["role"] for m in members}["bob"] == "moderator"

    # bob leaves (on his own device)
    ok(cli("leave", "--home", str(bob), gid))
    assert "you: not a member" in ok(cli("group", "list", "--home", str(bob))).out
    one_line_error(cli("post", "--home", str(bob), gid, "still here?"), Exit.REFUSED, "member")

    # alice removes, then bans, bob (on hers, where his leave has not arrived)
    ok(cli("remove", "--home", str(alice), gid, "bob", "--reason", "spam"))
    members = ok(cli("members", "--home", str(alice), "--json", gid)).json()
    assert [m["name"] for m in members["members"]] == ["alice"]
    ok(cli("ban", "--home", str(alice), gid, bob_id))
    members = ok(cli("members", "--home", str(alice), "--json", gid)).json()
    assert members["banned"] == [bob_id]
    assert (
        f"banned    -                {bob_id}" in ok(cli("members", "--home", str(alice), gid)).out
    )
    assert ok(cli("verify", "--home", str(alice))).out.rstrip().endswith(": ok")


def test_bundle_carries_a_group_to_a_fresh_home(tmp_path: Path, alice: Path, cli: Any) -> None:
    gid = make_group(cli, alice)
    for text in ("one", "two", "three"):
        ok(cli("post", "--home", str(alice), gid, text))
    bundle = tmp_path / "club.bundle"
    res = ok(cli("bundle", "export", "--home", str(alice), gid, str(bundle)))
    assert str(bundle) in res.out and bundle.is_file()

    by_name = tmp_path / "by-name.bundle"
    # The group's name is sealed in the log; export reads it with the home's keys.
    ok(cli("bundle", "export", "--home", str(alice), "Garden club", str(by_name)))
    assert by_name.read_bytes() == bundle.read_bytes()

    carol = tmp_path / "carol"
    ok(cli("init", "--home", str(carol), "--name", "carol"))
    doc = ok(cli("bundle", "import", "--home", str(carol), "--json", str(bundle))).json()
    assert doc["group"] == gid and doc["complete"] and doc["rejected"] == []
    assert doc["accepted"] == 4
    theirs = ok(cli("read", "--home", str(carol), "--json", gid)).json()["items"]
    mine = ok(cli("read", "--home", str(alice), "--json", gid)).json()["items"]
    assert [i["text"] for i in mine] == ["one", "two", "three"]
    # carol holds the log but is no member: the group is encrypted, so she sees that
    # three posts exist and reads none of them
    assert [(i["text"], i["sealed"]) for i in theirs] == [(None, True)] * 3
    assert [i["id"] for i in theirs] == [i["id"] for i in mine]
    assert ok(cli("read", "--home", str(carol), gid)).out.count("(sealed: ") == 3
    assert "you: not a member" in ok(cli("group", "list", "--home", str(carol))).out
    again = ok(cli("bundle", "import", "--home", str(carol), str(bundle))).out
    assert "0 entries imported, 4 already here" in again


def test_members_lists_a_member_expelled_for_a_fork(tmp_path: Path, alice: Path, cli: Any) -> None:
    # alice's home restored from a copy on a second device: both write "the next"
    # entry; a bundle brings one branch to the other, and the fork expels her (04 R10)
    gid = make_group(cli, alice)
    me = ok(cli("id", "--home", str(alice), "--json")).json()["id"]
    copy = tmp_path / "alice-restored"
    shutil.copytree(alice, copy)
    here = ok(cli("post", "--home", str(alice), "--json", gid, "Saturday")).json()
    there = ok(cli("post", "--home", str(copy), "--json", gid, "Sunday")).json()
    assert here["seq"] == there["seq"] and here["id"] != there["id"]
    bundle = tmp_path / "copy.bundle"
    ok(cli("bundle", "export", "--home", str(copy), gid, str(bundle)))
    ok(cli("bundle", "import", "--home", str(alice), str(bundle)))
    members = ok(cli("members", "--home", str(alice), "--json", gid)).json()
    assert members["members"] == [] and members["banned"] == []
    assert members["expelled"] == [{"id": me, "forked_at": here["seq"]}]
    line = f"expelled  -                {me} (forked at seq {here['seq']})"
    assert line in ok(cli("members", "--home", str(alice), gid)).out


def test_help_exit_codes(cli: Any) -> None:
    text = ok(cli("help", "exit-codes")).out
    for e in Exit:
        assert any(line.split()[0] == str(int(e)) for line in text.splitlines()), e
    doc = ok(cli("help", "exit-codes", "--json")).json()
    assert set(doc) == {str(int(e)) for e in Exit}
    assert "intact" in doc["130"]


def test_status_without_a_node(alice: Path, cli: Any) -> None:
    gid = make_group(cli, alice)
    doc = ok(cli("status", "--home", str(alice), "--json")).json()
    assert doc["running"] is False and doc["groups"][0]["id"] == gid
    assert "not running" in ok(cli("status", "--home", str(alice))).out


# --------------------------------------------------------------------------- user mistakes


def test_no_home_yet(tmp_path: Path, cli: Any) -> None:
    home = str(tmp_path / "nobody")
    for args in (("id",), ("post", "club", "hello"), ("group", "list"), ("read", "club")):
        one_line_error(cli(*args, "--home", home), Exit.NOT_FOUND, "p2pcomm init")
    err = json_error(cli("post", "--home", home, "--json", "club", "hi"), Exit.NOT_FOUND, "no-home")
    assert "p2pcomm init" in err["message"]
    assert not Path(home).exists()  # looking did not create it


def test_init_mistakes(tmp_path: Path, cli: Any) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    one_line_error(
        cli("init", "--home", str(afile / "home")), Exit.FAILURE, "cannot create the home"
    )
    home = str(tmp_path / "h")
    one_line_error(cli("init", "--home", home, "--name", "n" * 65), Exit.USAGE, "at most 64")
    assert not Path(home, "key").exists()
    ok(cli("init", "--home", home, "--name", "n" * 64))
    one_line_error(cli("group", "create", "--home", home, "  "), Exit.USAGE, "needs a name")
    one_line_error(cli("group", "create", "--home", home, "g" * 65), Exit.USAGE, "at most 64")
    assert ok(cli("group", "list", "--home", home)).out == ""


def test_bare_command_shows_help(cli: Any) -> None:
    res = cli()
    assert res.status == Exit.USAGE
    assert "usage: p2pcomm" in res.out and "init" in res.out and "exit-codes" in res.out


def test_init_twice(alice: Path, cli: Any) -> None:
    member = ok(cli("id", "--home", str(alice))).out
    one_line_error(
        cli("init", "--home", str(alice), "--name", "again"), Exit.USAGE, "already holds"
    )
    json_error(cli("init", "--home", str(alice), "--json"), Exit.USAGE, "exists")
    assert ok(cli("id", "--home", str(alice))).out == member


def test_unknown_and_ambiguous_names(alice: Path, cli: Any) -> None:
    h = ("--home", str(alice))
    g1 = make_group(cli, alice, "Garden club")
    g2 = make_group(cli, alice, "Garden club")
    one_line_error(cli("read", *h, "Chess club"), Exit.NOT_FOUND, "no group 'Chess club'")
    json_error(cli("read", *h, "--json", "Chess club"), Exit.NOT_FOUND, "not-found")
    line = one_line_error(cli("post", *h, "Garden club", "hi"), Exit.NOT_FOUND, "2 groups")
    assert g1[:12] in line and g2[:12] in line
    json_error(cli("read", *h, "--json", "Garden club"), Exit.NOT_FOUND, "ambiguous")

    ok(cli("post", *h, g1, "hello"))
    one_line_error(cli("remove", *h, g1, "mallory"), Exit.NOT_FOUND, "no member 'mallory'")
    json_error(cli("ban", *h, "--json", g1, "mallory"), Exit.NOT_FOUND, "not-found")
    one_line_error(cli("react", *h, g1, "deadbeefdead", "👍"), Exit.NOT_FOUND, "no item")
    one_line_error(cli("reply", *h, g1, "dead", "hi"), Exit.NOT_FOUND, "8 or more hex")
    one_line_error(cli("hide", *h, g1, "0123456789abcdef"), Exit.NOT_FOUND, "no item")


def test_bad_invitation_codes(alice: Path, cli: Any) -> None:
    h = ("--home", str(alice))
    gid = make_group(cli, alice)
    one_line_error(cli("join", *h, "hello-there"), Exit.USAGE, "pci2")
    json_error(cli("join", *h, "--json", "hello-there"), Exit.USAGE)
    one_line_error(cli("join", *h, "pci1" + "a" * 60), Exit.USAGE, "old", "new one")
    code = ok(cli("invite", *h, gid, "--address", "127.0.0.1:9")).out.strip()
    i = 30
    typo = code[:i] + ("b" if code[i] != "b" else "c") + code[i + 1 :]
    one_line_error(cli("join", *h, typo), Exit.USAGE, "typo")
    json_error(cli("join", *h, "--json", typo), Exit.USAGE, "bad-checksum")
    one_line_error(cli("join", *h, code[:-5]), Exit.USAGE)
    # none of these remembered an address or changed anything
    assert "peers" not in json.loads((alice / "config.json").read_text())


def test_bad_values(alice: Path, cli: Any) -> None:
    h = ("--home", str(alice))
    gid = make_group(cli, alice)
    one_line_error(cli("post", *h, gid, "x" * (16 * 1024 + 1)), Exit.USAGE, "16384")
    err = json_error(cli("post", *h, "--json", gid, "é" * 9000), Exit.USAGE)
    assert "18000" in err["message"] and "16384" in err["message"]
    ok(cli("post", *h, gid, "x" * (16 * 1024)))  # the limit itself is fine
    one_line_error(cli("post", *h, gid, "   "), Exit.USAGE, "empty")
    one_line_error(cli("invite", *h, gid, "--expires", "3x"), Exit.USAGE, "30m, 12h, 7d")
    json_error(cli("invite", *h, "--json", gid, "--expires", "3x"), Exit.USAGE, "bad-duration")
    one_line_error(cli("invite", *h, gid, "--uses", "-1"), Exit.USAGE, "--uses")
    one_line_error(cli("invite", *h, gid, "--address", "nowhere"), Exit.USAGE, "HOST:PORT")
    one_line_error(cli("invite", *h, gid, "--role", "king"), Exit.USAGE, "king")
    one_line_error(cli("tail", *h, gid, "-n", "-3"), Exit.USAGE, "-n")
    one_line_error(cli("run", *h, "--listen", "bad"), Exit.USAGE, "HOST:PORT", "'bad'")
    one_line_error(cli("run", *h, "--listen", "127.0.0.1:99999"), Exit.USAGE, "0 to 65535")
    json_error(cli("run", *h, "--json", "--listen", "bad"), Exit.USAGE, "bad-address")
    one_line_error(cli("help", "colours"), Exit.USAGE, "exit-codes")
    # argparse's own complaints are one line too, and JSON with --json
    one_line_error(cli("post", *h, gid), Exit.USAGE, "TEXT", "--help")
    json_error(cli("post", *h, "--json"), Exit.USAGE, "usage")
    one_line_error(cli("frobnicate"), Exit.USAGE, "frobnicate")
    # nothing of the above was written
    texts = [i["text"] for i in ok(cli("read", *h, "--json", gid)).json()["items"]]
    assert texts == ["x" * 16 * 1024]


def test_needs_the_node(alice: Path, cli: Any) -> None:
    gid = make_group(cli, alice)
    one_line_error(cli("peers", "--home", str(alice)), Exit.NODE, "p2pcomm run")
    json_error(cli("peers", "--home", str(alice), "--json"), Exit.NODE, "node-not-running")
    one_line_error(cli("tail", "--home", str(alice), "--follow", gid), Exit.NODE, "p2pcomm run")


def test_bundle_import_mistakes(tmp_path: Path, alice: Path, cli: Any) -> None:
    h = ("--home", str(alice))
    one_line_error(
        cli("bundle", "import", *h, str(tmp_path / "missing.bundle")), Exit.NOT_FOUND, "no bundle"
    )
    garbage = tmp_path / "garbage.bundle"
    garbage.write_bytes(b"this is not a bundle at all\n" * 10)
    one_line_error(cli("bundle", "import", *h, str(garbage)), Exit.USAGE, "not a p2pcomm bundle")
    json_error(cli("bundle", "import", *h, "--json", str(garbage)), Exit.USAGE, "bad-bundle")
    one_line_error(cli("bundle", "export", *h, "nope", str(tmp_path / "x")), Exit.NOT_FOUND)
    gid = make_group(cli, alice)
    line = one_line_error(
        cli("bundle", "export", *h, gid, str(tmp_path / "no" / "such" / "dir.bundle")),
        Exit.FAILURE,
        "cannot write the bundle to",
        "no such file",
    )
    assert ".tmp" not in line  # the temporary file is an implementation detail


def test_world_writable_home(tmp_path: Path, cli: Any) -> None:
    home = tmp_path / "shared"
    home.mkdir()
    os.chmod(home, 0o777)
    line = one_line_error(cli("init", "--home", str(home), "--name", "x"), Exit.FAILURE)
    assert f"chmod 700 {home}" in line
    assert not (home / "key").exists()
    # a home that became writable later: every command says so, and how to fix it
    ok(cli("init", "--home", str(tmp_path / "later"), "--name", "y"))
    os.chmod(tmp_path / "later", 0o777)
    line = one_line_error(cli("id", "--home", str(tmp_path / "later")), Exit.FAILURE)
    assert "chmod 700" in line


def test_passphrase_files(tmp_path: Path, cli: Any) -> None:
    home = str(tmp_path / "p")
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text("correct horse\n")
    wrong.write_text("battery staple\n")
    member = ok(cli("init", "--home", home, "--passphrase-file", str(right))).out.strip()
    one_line_error(cli("id", "--home", home), Exit.USAGE, "--passphrase-file")
    one_line_error(
        cli("id", "--home", home, "--passphrase-file", str(wrong)), Exit.USAGE, "wrong passphrase"
    )
    json_error(
        cli("group", "create", "--home", home, "--json", "--passphrase-file", str(wrong), "x"),
        Exit.USAGE,
        "wrong-passphrase",
    )
    one_line_error(
        cli("id", "--home", home, "--passphrase-file", str(tmp_path / "none")),
        Exit.NOT_FOUND,
        "passphrase file",
    )
    assert ok(cli("id", "--home", home, "--passphrase-file", str(right))).out.strip() == member
    ok(cli("group", "create", "--home", home, "--passphrase-file", str(right), "club"))


# --------------------------------------------------------------------------- other processes


class LockHolder:
    """Another process holding lock files of a home (as a node or a command would)."""

    def __init__(self, tmp_path: Path, *paths: Path) -> None:
        script = (
            "import sys\n"
            "from p2pcomm.paths import NodeLock\n"
            "locks = [NodeLock(p) for p in sys.argv[1:]]\n"
            "for lock in locks: lock.acquire()\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, paths)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(tmp_path),
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "locked\n"

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


@pytest.fixture
def hold(tmp_path: Path) -> Iterator[Any]:
    holders: list[LockHolder] = []

    def start(*paths: Path) -> LockHolder:
        holders.append(LockHolder(tmp_path, *paths))
        return holders[-1]

    yield start
    for h in holders:
        h.close()


def test_node_lock_held_but_no_socket(alice: Path, cli: Any, hold: Any) -> None:
    gid = make_group(cli, alice)
    holder = hold(alice / "node.lock")
    pid = str(holder.proc.pid)
    for args in (("post", gid, "hi"), ("read", gid), ("status",), ("peers",)):
        one_line_error(cli(*args, "--home", str(alice)), Exit.NODE, "starting", "stuck", pid)
    json_error(cli("read", "--home", str(alice), "--json", gid), Exit.NODE, "node-stuck")
    one_line_error(cli("run", "--home", str(alice)), Exit.BUSY, "one node per home", pid)
    one_line_error(cli("bundle", "import", "--home", str(alice), __file__), Exit.BUSY, "stop it")
    holder.close()
    ok(cli("post", "--home", str(alice), gid, "hi"))


def test_store_in_use_by_another_command(alice: Path, cli: Any, hold: Any) -> None:
    gid = make_group(cli, alice)
    holder = hold(alice / COMMAND_LOCK, alice / "node.lock")
    pid = str(holder.proc.pid)
    for args in (("post", gid, "hi"), ("invite", gid), ("group", "create", "x"), ("run",)):
        one_line_error(cli(*args, "--home", str(alice)), Exit.BUSY, "another p2pcomm command", pid)
    json_error(cli("post", "--home", str(alice), "--json", gid, "hi"), Exit.BUSY, "busy")
    one_line_error(
        cli("bundle", "import", "--home", str(alice), __file__), Exit.BUSY, "another p2pcomm"
    )
    one_line_error(cli("peers", "--home", str(alice)), Exit.NODE, "p2pcomm run")
    # reading does not wait for it
    assert ok(cli("read", "--home", str(alice), "--json", gid)).json()["items"] == []
    assert gid[:16] in ok(cli("group", "list", "--home", str(alice))).out
    assert ok(cli("status", "--home", str(alice), "--json")).json()["running"] is False
    holder.close()
    ok(cli("post", "--home", str(alice), gid, "now"))


@pytest.mark.slow
def test_exit_statuses_seen_by_a_shell(tmp_path: Path, cli: Any) -> None:
    home = str(tmp_path / "a")
    res = run_cli(tmp_path, "post", "--home", home, "club", "hi")
    one_line_error(res, Exit.NOT_FOUND, "p2pcomm init")
    ok(cli("init", "--home", home, "--name", "a"))
    gid = make_group(cli, Path(home), "club")
    # bytes that are not UTF-8, as a shell passes them (Python keeps them as surrogates)
    bad = b"caf\xe9 au lait"
    one_line_error(run_cli(tmp_path, "post", "--home", home, gid, bad), Exit.USAGE, "UTF-8")
    json_error(run_cli(tmp_path, "read", "--home", home, "--json", bad), Exit.USAGE, "bad-text")
    surrogates = bad.decode("utf-8", "surrogateescape")
    one_line_error(cli("group", "create", "--home", home, surrogates), Exit.USAGE, "UTF-8")
    one_line_error(cli("react", "--home", home, gid, "0" * 8, surrogates), Exit.USAGE, "UTF-8")
    res = run_cli(tmp_path, "invite", "--home", home, gid, "--expires", "3x")
    one_line_error(res, Exit.USAGE, "duration")
    assert ok(cli("read", "--home", home, "--json", gid)).json()["items"] == []
    assert [
        g["name"] for g in ok(cli("group", "list", "--home", home, "--json")).json()["groups"]
    ] == ["club"]


# --------------------------------------------------------------------------- p2pcomm run


class Child:
    """``p2pcomm ARGS...`` in a child process whose output is read line by line with a
    deadline (selectors): tests wait for what it says, never sleep."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2pcomm", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(tmp_path),
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._streams = {"out": self.proc.stdout, "err": self.proc.stderr}
        self._bufs = {"out": b"", "err": b""}

    def line(self, stream: str = "out", timeout: float = 30.0) -> str:
        f = self._streams[stream]
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(f, selectors.EVENT_READ)
            while b"\n" not in self._bufs[stream]:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"no line on std{stream} within {timeout} s")
                chunk = os.read(f.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"std{stream} ended: {self._bufs[stream]!r}")
                self._bufs[stream] += chunk
        line, self._bufs[stream] = self._bufs[stream].split(b"\n", 1)
        return line.decode()

    def wait_for(self, fragment: str, stream: str = "out") -> str:
        while True:
            line = self.line(stream)
            if fragment in line:
                return line

    def finish(self, sig: int | None = None) -> Res:
        """Send ``sig`` (if any), wait for the end; the output not read yet."""
        if sig is not None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        return Res(
            self.proc.returncode,
            (self._bufs["out"] + out).decode(),
            (self._bufs["err"] + err).decode(),
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for n in started:
        n.kill()


def start_node(tmp_path: Path, home: Path, children: list[Child]) -> tuple[Child, str]:
    """``p2pcomm run`` on loopback, any port; returns it and the address it printed."""
    me = load_keypair(home / "key").id.text()
    node = Child(tmp_path, "run", "--home", str(home), "--listen", "127.0.0.1:0")
    children.append(node)
    first = node.line()
    assert first.startswith(f"node {me} listening on 127.0.0.1:"), first
    address = first.rsplit(" ", 1)[1]
    assert int(address.rsplit(":", 1)[1]) > 0
    return node, address


def stopped_cleanly(node: Child, sig: int) -> None:
    stopped = node.finish(sig)
    assert stopped.status == Exit.INTERRUPTED, stopped
    assert stopped.err.splitlines()[-1] == "p2pcomm: interrupted: node stopped, store intact"
    assert "Traceback" not in stopped.err


@pytest.mark.slow
def test_run_serves_commands_and_stops_on_ctrl_c(
    tmp_path: Path, alice: Path, cli: Any, children: list[Child]
) -> None:
    h = ("--home", str(alice))
    gid = make_group(cli, alice)
    me = ok(cli("id", *h)).out.strip()
    ok(cli("post", *h, gid, "before the node"))
    node, address = start_node(tmp_path, alice, children)

    # tail --follow: what is there, then what comes
    tail = Child(tmp_path, "tail", *h, "--follow", gid)
    children.append(tail)
    assert tail.line().endswith("alice: before the node")

    # another process posts through the running node (which prints it, as does tail)
    res = run_cli(tmp_path, "post", *h, gid, "through the node")
    assert res.status == 0, res
    item = res.out.strip()
    assert node.wait_for(item[:8]).endswith(": through the node")
    followed = tail.line()
    assert followed.startswith(item[:8]) and followed.endswith("alice: through the node")

    # the other commands go through the node's socket too (this process is a client)
    texts = [i["text"] for i in ok(cli("read", *h, "--json", gid)).json()["items"]]
    assert texts == ["before the node", "through the node"]
    status = ok(cli("status", *h, "--json")).json()
    assert status["running"] is True and status["listening"] == address
    assert status["id"] == me
    assert "running, listening on " + address in ok(cli("status", *h)).out
    assert ok(cli("peers", *h, "--json")).json() == {"peers": [], "unreachable": []}
    reply = ok(cli("reply", *h, gid, item[:8], "and a reply")).out.strip()
    assert tail.line().startswith(reply[:8])
    # mistakes come back through the socket as they do offline
    one_line_error(cli("remove", *h, gid, "alice"), Exit.REFUSED, "yourself", "bad-target")
    json_error(cli("read", *h, "--json", "nope"), Exit.NOT_FOUND, "not-found")
    one_line_error(cli("post", *h, gid, "x" * 20000), Exit.USAGE, "16384")
    # the node holds the home: a second node, or an import, is refused
    one_line_error(cli("run", *h, "--listen", "127.0.0.1:0"), Exit.BUSY, "one node per home")
    one_line_error(cli("bundle", "import", *h, __file__), Exit.BUSY, "stop it")

    stopped_cleanly(node, signal.SIGINT)
    assert not (alice / "control.sock").exists()
    # tail --follow ends with the node, and says so
    ended = tail.finish()
    one_line_error(Res(ended.status, "", ended.err), Exit.NODE, "the node stopped")
    # everything is there, verified, and the commands work on the store again
    assert ok(cli("verify", *h)).out.rstrip().endswith(": ok")
    read = ok(cli("read", *h, gid)).out
    assert "through the node" in read and "and a reply" in read
    assert not ok(cli("status", *h, "--json")).json()["running"]


@pytest.mark.slow
def test_run_stops_cleanly_on_sigterm(
    tmp_path: Path, alice: Path, cli: Any, children: list[Child]
) -> None:
    gid = make_group(cli, alice)
    node, _address = start_node(tmp_path, alice, children)
    item = ok(cli("post", "--home", str(alice), gid, "last words")).out.strip()
    node.wait_for(item[:8])
    stopped_cleanly(node, signal.SIGTERM)
    assert ok(cli("verify", "--home", str(alice))).out.rstrip().endswith(": ok")
    assert "last words" in ok(cli("read", "--home", str(alice), gid)).out


@pytest.mark.slow
def test_a_command_at_work_keeps_the_home_and_ctrl_c_stops_it(
    tmp_path: Path, alice: Path, cli: Any, children: list[Child]
) -> None:
    gid = make_group(cli, alice)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = closed.getsockname()[1]
        code = ok(cli("invite", "--home", str(alice), gid, "--address", f"127.0.0.1:{port}"))
        bob = tmp_path / "bob"
        ok(cli("init", "--home", str(bob), "--name", "bob"))
        join = Child(tmp_path, "join", "--home", str(bob), code.out.strip())
        children.append(join)
        assert join.line("err").startswith(f"p2pcomm: joining group {gid[:16]} via 127.0.0.1:")
        # it tells why it waits (and holds bob's home meanwhile)
        join.wait_for(f"cannot reach 127.0.0.1:{port}", "err")
        pid = str(join.proc.pid)
        for args in (("post", gid, "hi"), ("group", "create", "x"), ("run",)):
            one_line_error(
                cli(*args, "--home", str(bob)), Exit.BUSY, "another p2pcomm command", pid
            )
        ok(cli("status", "--home", str(bob)))  # reading does not wait for it
        stopped = join.finish(signal.SIGINT)
    assert stopped.status == Exit.INTERRUPTED, stopped
    assert stopped.out == "" and "Traceback" not in stopped.err
    assert stopped.err.splitlines()[-1] == (
        "p2pcomm: interrupted; everything written before is intact"
    )
    assert ok(cli("group", "list", "--home", str(bob))).out == ""
    assert ok(cli("verify", "--home", str(bob))).status == 0


@pytest.mark.slow
def test_run_on_a_port_in_use(tmp_path: Path, alice: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = run_cli(tmp_path, "run", "--home", str(alice), "--listen", f"127.0.0.1:{port}")
    one_line_error(res, Exit.BUSY, "in use", f"127.0.0.1:{port}", "--listen")
    assert not (alice / "control.sock").exists()


@pytest.mark.slow
def test_demo_runs_and_every_check_passes(tmp_path: Path) -> None:
    res = run_cli(tmp_path, "demo", timeout=120)
    assert res.status == 0, res.out + res.err
    assert "every check passed" in res.out
    assert "FAIL" not in res.out
    assert "Traceback" not in res.err
