"""A person's path, with real processes, real TCP on loopback and two home directories.

    alice: init, group create, run, invite --address (through her running node)
    bob:   init, join CODE (nothing else: the code says where), run
    alice: post (through her running node) -> bob's node receives it live
    bob:   read --json shows the text; members --json agrees on both sides

Nothing sleeps to synchronise: the test reads the nodes' output lines and bob's
``tail --follow --json`` stream, each with a deadline.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

DEADLINE = 60.0


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(tmp)
    env["XDG_DATA_HOME"] = str(tmp / "xdg")
    env.pop("P2PCOMM_HOME", None)
    return env


def cli(tmp: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "p2pcomm", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env=_env(tmp),
        timeout=DEADLINE,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def ok(tmp: Path, home: Path, *args: str) -> str:
    proc = cli(tmp, home, *args)
    assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def ok_json(tmp: Path, home: Path, *args: str) -> Any:
    return json.loads(ok(tmp, home, *args, "--json"))


class Process:
    """A long-running command whose stdout is read line by line, with a deadline."""

    def __init__(self, tmp: Path, home: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "p2pcomm", *args, "--home", str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(tmp),
        )
        assert self.proc.stdout is not None
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.lines: list[str] = []
        self.pending = b""

    def _lines(self, deadline: float) -> Iterator[str]:
        # Read the pipe's bytes ourselves: a buffered reader may hold lines that
        # select() no longer reports.
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self.pending:
                line, _, self.pending = self.pending.partition(b"\n")
                self.lines.append(line.decode())
                yield self.lines[-1]
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise AssertionError(f"no expected line in time; got {self.lines}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"process ended: {self.lines}\n{self.stderr_now()}")
            self.pending += chunk

    def wait_for(self, needle: str, timeout: float = DEADLINE) -> str:
        for line in self._lines(time.monotonic() + timeout):
            if needle in line:
                return line
        raise AssertionError("unreachable")

    def wait_json(self, pred: Any, timeout: float = DEADLINE) -> dict[str, Any]:
        for line in self._lines(time.monotonic() + timeout):
            doc = json.loads(line)
            if pred(doc):
                return dict(doc)
        raise AssertionError("unreachable")

    def stderr_now(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode()

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; returns (exit status, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=DEADLINE)
        return self.proc.returncode, err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=DEADLINE)


def test_a_person_invites_another_who_joins_with_the_code_alone(tmp_path: Path) -> None:
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    alice_id = ok(tmp_path, alice, "init", "--name", "alice").strip()
    bob_id = ok(tmp_path, bob, "init", "--name", "bob").strip()
    group = ok(tmp_path, alice, "group", "create", "Garden club").strip()
    assert len(bytes.fromhex(group)) == 32

    procs: list[Process] = []
    try:
        a = Process(tmp_path, alice, "run", "--listen", "127.0.0.1:0")
        procs.append(a)
        port = int(a.wait_for("listening on").rsplit(":", 1)[1])

        # Through alice's running node: the invitation names where she listens.
        invite = ok_json(tmp_path, alice, "invite", "Garden club", "--address", f"127.0.0.1:{port}")
        assert invite["addresses"] == [f"127.0.0.1:{port}"]

        # Bob has nothing but the code: join fetches the group and writes his JOIN.
        joined = ok_json(tmp_path, bob, "join", invite["code"])
        assert joined["id"] == group and joined["name"] == "Garden club"
        assert joined["role"] == "member"
        a.wait_for("joined")  # alice's node saw bob's join arrive

        b = Process(tmp_path, bob, "run", "--listen", "127.0.0.1:0")  # no --peer
        procs.append(b)
        b.wait_for("listening on")
        follow = Process(tmp_path, bob, "tail", "Garden club", "--follow", "--json", "-n", "0")
        procs.append(follow)
        # Its first line says it watches: a post from now on cannot slip past it.
        assert follow.wait_json(lambda d: True)["event"] == "following"

        # Alice posts through her running node; bob's node gets it live.
        text = "Seed swap on Saturday, bring jars ✿"
        posted = ok_json(tmp_path, alice, "post", "Garden club", text)
        seen = follow.wait_json(lambda d: d.get("event") == "added")
        assert seen["item"]["text"] == text
        assert seen["item"]["id"] == posted["id"]
        assert seen["item"]["author"] == alice_id

        read = ok_json(tmp_path, bob, "read", "Garden club")
        assert [i["text"] for i in read["items"]] == [text]
        assert read["items"][0]["author_name"] == "alice"

        members_a = ok_json(tmp_path, alice, "members", group[:12])
        members_b = ok_json(tmp_path, bob, "members", group[:12])
        assert members_a["members"] == members_b["members"]
        assert {(m["id"], m["name"], m["role"]) for m in members_b["members"]} == {
            (alice_id, "alice", "admin"),
            (bob_id, "bob", "member"),
        }

        # Bob replies; alice reads it, by the reply's id prefix.
        reply = ok_json(tmp_path, bob, "reply", "Garden club", posted["id"][:10], "I'll come!")
        a.wait_for(reply["id"][:8])
        texts = [i["text"] for i in ok_json(tmp_path, alice, "read", "Garden club")["items"]]
        assert texts == [text, "I'll come!"]

        # Ctrl-C stops each node with 130 and leaves its store intact.
        follow.kill()
        for p, home in ((b, bob), (a, alice)):
            status, err = p.interrupt()
            assert status == 130, err
            assert "store intact" in err and "Traceback" not in err
            assert json.loads(ok(tmp_path, home, "verify", "--json"))["ok"] is True
    finally:
        for p in procs:
            p.kill()

    # With the nodes stopped, the same commands read the stores directly.
    offline = ok_json(tmp_path, bob, "read", "Garden club")
    assert [i["text"] for i in offline["items"]] == [text, "I'll come!"]
