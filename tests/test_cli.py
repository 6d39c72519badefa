"""The ``p2pcomm`` command, run as a real process: results and user-mistake messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2pcomm.cli.main import main


def run_cli(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pcomm", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_demo_runs_and_every_check_passes() -> None:
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every check passed" in proc.stdout
    assert "FAIL" not in proc.stdout
    assert "Traceback" not in proc.stderr


def test_keygen_group_post_log_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = str(tmp_path / "a.key")
    db = str(tmp_path / "a.db")
    assert main(["keygen", key]) == 0
    member = capsys.readouterr().out.strip()
    assert member.startswith("pc1") and len(member) == 59
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert main(["id", key]) == 0
    assert capsys.readouterr().out.strip() == member
    assert main(["group", "create", "--key", key, "--store", db, "--name", "club"]) == 0
    group = capsys.readouterr().out.strip()
    assert len(bytes.fromhex(group)) == 32
    assert main(["post", "--key", key, "--store", db, "--group", group, "hello there"]) == 0
    capsys.readouterr()
    assert main(["log", "--store", db, "--group", group]) == 0
    out = capsys.readouterr().out
    assert "'hello there'" in out and out.count("\n") == 2
    assert main(["verify", "--store", db]) == 0
    assert ": ok" in capsys.readouterr().out


def test_passphrase_key_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = str(tmp_path / "a.key")
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    assert main(["keygen", key, "--passphrase-file", str(pw)]) == 0
    member = capsys.readouterr().out.strip()
    assert main(["id", key, "--passphrase-file", str(pw)]) == 0
    assert capsys.readouterr().out.strip() == member
    assert main(["id", key, "--passphrase-file", str(bad)]) == 1
    assert "wrong-passphrase" in capsys.readouterr().err
    assert main(["id", key]) == 1
    assert "passphrase-required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["id", "{tmp}/missing.key"], "no key file at"),
        (
            ["post", "--key", "{tmp}/k", "--store", "{tmp}/none.db", "--group", "00", "x"],
            "no store at",
        ),
        (["log", "--store", "{tmp}/db", "--group", "zz"], "group id must be 64 hex characters"),
        (["log", "--store", "{tmp}/db", "--group", "ab" * 32], "holds no group"),
        (["keygen", "{tmp}/k"], "exists; use --force"),
        (["id", "{tmp}/insecure.key"], "key-file-insecure"),
        (["id", "{tmp}/garbage.key"], "key-file-corrupt"),
        (["verify", "--store", "{tmp}/notadb"], "not a usable p2pcomm store"),
    ],
)
def test_user_mistakes_get_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["keygen", str(tmp_path / "k")]) == 0
    assert (
        main(["group", "create", "--key", str(tmp_path / "k"), "--store", str(tmp_path / "db")])
        == 0
    )
    (tmp_path / "insecure.key").write_bytes((tmp_path / "k").read_bytes())
    (tmp_path / "insecure.key").chmod(0o644)
    (tmp_path / "garbage.key").write_bytes(b"\x93garbage")
    (tmp_path / "garbage.key").chmod(0o600)
    (tmp_path / "notadb").write_bytes(b"this is not sqlite" * 100)
    capsys.readouterr()
    assert main([a.format(tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_command_line_is_status_2_without_traceback() -> None:
    proc = run_cli("post", "--store")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def _read_until(proc: subprocess.Popen[str], needle: str, lines: list[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until the node prints; bounded by the test timeout
        lines.append(line)
        if needle in line:
            return line
    raise AssertionError(f"process ended before printing {needle!r}: {''.join(lines)}")


@pytest.mark.slow
def test_run_two_nodes_as_processes_sync(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        assert main(["keygen", str(tmp_path / f"{name}.key")]) == 0
    assert (
        main(
            ["group", "create", "--key", str(tmp_path / "a.key"), "--store", str(tmp_path / "a.db")]
        )
        == 0
    )
    group = capsys.readouterr().out.strip().splitlines()[-1]
    for i in range(3):
        assert (
            main(
                [
                    "post",
                    "--key",
                    str(tmp_path / "a.key"),
                    "--store",
                    str(tmp_path / "a.db"),
                    "--group",
                    group,
                    f"m{i}",
                ]
            )
            == 0
        )
    capsys.readouterr()
    # Bob's store knows the group id only (an empty log), as after an invitation.
    from p2pcomm.store import SqliteStore

    SqliteStore(tmp_path / "b.db").close()
    cmd = [sys.executable, "-m", "p2pcomm", "run"]
    a = subprocess.Popen(
        [*cmd, "--key", str(tmp_path / "a.key"), "--store", str(tmp_path / "a.db")],
        stdout=subprocess.PIPE,
        text=True,
    )
    b = None
    try:
        lines: list[str] = []
        listening = _read_until(a, "listening on", lines)
        address = listening.rsplit(" ", 1)[1].strip()
        b = subprocess.Popen(
            [
                *cmd,
                "--key",
                str(tmp_path / "b.key"),
                "--store",
                str(tmp_path / "b.db"),
                "--group",
                group,
                "--peer",
                address,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        _read_until(b, "synced", [])
    finally:
        for p in (a, b):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)
    assert main(["log", "--store", str(tmp_path / "b.db"), "--group", group]) == 0
    assert capsys.readouterr().out.count("\n") == 4


def test_run_rejects_a_bad_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen", str(tmp_path / "k")]) == 0
    assert (
        main(["group", "create", "--key", str(tmp_path / "k"), "--store", str(tmp_path / "db")])
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "run",
                "--key",
                str(tmp_path / "k"),
                "--store",
                str(tmp_path / "db"),
                "--listen",
                "nowhere",
            ]
        )
        == 1
    )
    assert "address must be HOST:PORT" in capsys.readouterr().err
