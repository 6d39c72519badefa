"""Tests of p2pcomm.paths: where a home is, how it is created and checked, and the node
lock (across two processes: flock belongs to open file descriptions, so threads of one
process would not show it)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcomm.errors import ControlError, ErrorCode, StoreError
from p2pcomm.paths import (
    MAX_SOCKET_PATH,
    Home,
    NodeLock,
    check_socket_path,
    node_lock_held,
    node_lock_pid,
)

ENV = {"HOME": "/home/ann"}


# -- where the home is -----------------------------------------------------------------


def test_the_files_of_a_home() -> None:
    home = Home(Path("/h"))
    assert (
        home.key_path,
        home.store_path,
        home.socket_path,
        home.lock_path,
        home.config_path,
    ) == tuple(
        Path("/h") / name
        for name in ("key", "store.db", "control.sock", "node.lock", "config.json")
    )


def test_an_explicit_home_wins_then_the_environment_then_the_data_directory() -> None:
    env = {**ENV, "P2PCOMM_HOME": "/from/env", "XDG_DATA_HOME": "/xdg"}
    assert Home.resolve("/explicit", env, platform="linux").root == Path("/explicit")
    assert Home.resolve(None, env, platform="linux").root == Path("/from/env")
    assert Home.resolve("", env, platform="linux").root == Path("/from/env")
    del env["P2PCOMM_HOME"]
    assert Home.resolve(None, env, platform="linux").root == Path("/xdg/p2pcomm")
    env["P2PCOMM_HOME"] = ""  # set but empty: not set
    assert Home.resolve(None, env, platform="linux").root == Path("/xdg/p2pcomm")


@pytest.mark.parametrize(
    "platform, env, expected",
    [
        ("linux", ENV, "/home/ann/.local/share/p2pcomm"),
        ("linux", {**ENV, "XDG_DATA_HOME": "/data"}, "/data/p2pcomm"),
        ("linux", {**ENV, "XDG_DATA_HOME": "relative/data"}, "/home/ann/.local/share/p2pcomm"),
        ("freebsd13", ENV, "/home/ann/.local/share/p2pcomm"),
        ("darwin", ENV, "/home/ann/Library/Application Support/p2pcomm"),
        (
            "darwin",
            {**ENV, "XDG_DATA_HOME": "/data"},
            "/home/ann/Library/Application Support/p2pcomm",
        ),
        ("win32", {**ENV, "APPDATA": "/appdata"}, "/appdata/p2pcomm"),
        ("win32", ENV, "/home/ann/AppData/Roaming/p2pcomm"),
    ],
)
def test_the_data_directory_of_each_platform(
    platform: str, env: dict[str, str], expected: str
) -> None:
    assert Home.resolve(None, env, platform=platform).root == Path(expected)


def test_tilde_and_relative_homes() -> None:
    assert Home.resolve("~/ph", ENV).root == Path("/home/ann/ph")
    assert Home.resolve(None, {**ENV, "P2PCOMM_HOME": "~"}).root == Path("/home/ann")
    assert Home.resolve("rel/h", ENV).root == Path.cwd() / "rel" / "h"


# -- creating and checking it ----------------------------------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def test_ensure_creates_the_home_0700_whatever_the_umask(
    tmp_path: Path, permissive_umask: None
) -> None:
    home = Home(tmp_path / "a" / "b" / "home")
    assert home.ensure() is home
    assert stat.S_IMODE(os.stat(home.root).st_mode) == 0o700
    assert home.ensure() is home  # again: nothing to do


def test_ensure_accepts_a_private_existing_home(tmp_path: Path) -> None:
    root = tmp_path / "home"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)  # readable by others is their business, writable is not
    Home(root).ensure()


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_ensure_refuses_a_home_others_can_write(tmp_path: Path, mode: int) -> None:
    root = tmp_path / "home"
    root.mkdir()
    os.chmod(root, mode)
    with pytest.raises(StoreError) as info:
        Home(root).ensure()
    assert info.value.code is ErrorCode.KEY_FILE_INSECURE
    assert f"chmod 700 {root}" in info.value.message
    assert info.value.found == f"{mode:o}"


def test_ensure_refuses_a_home_another_user_owns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "home"
    root.mkdir(mode=0o700)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)  # as seen by someone else
    with pytest.raises(StoreError) as info:
        Home(root).ensure()
    assert info.value.code is ErrorCode.KEY_FILE_INSECURE
    assert "belongs to another user" in info.value.message
    assert (info.value.expected, info.value.found) == (me + 1, me)


def test_ensure_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("")
    with pytest.raises(StoreError) as info:
        Home(tmp_path / "home").ensure()
    assert info.value.code is ErrorCode.STORE_CORRUPT


def test_a_socket_path_over_103_bytes_is_refused_with_advice(tmp_path: Path) -> None:
    check_socket_path("/" + "s" * (MAX_SOCKET_PATH - 1))  # exactly 103: fine
    with pytest.raises(ControlError) as info:
        check_socket_path("/" + "s" * MAX_SOCKET_PATH)
    assert info.value.code is ErrorCode.TOO_LARGE
    assert (info.value.expected, info.value.found) == (103, 104)
    deep = Home(tmp_path / ("d" * 110))
    with pytest.raises(ControlError) as info:
        deep.ensure()
    assert "choose a shorter --home" in info.value.message
    assert str(deep.socket_path) in info.value.message


def test_socket_paths_count_bytes_not_characters() -> None:
    name = "/" + "é" * 52  # 105 bytes in UTF-8, 53 characters
    with pytest.raises(ControlError):
        check_socket_path(name)


# -- the node lock ---------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from p2pcomm.paths import NodeLock
    with NodeLock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()  # until the test closes our stdin
    print("released", flush=True)
    """
)


def hold_lock(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "locked\n"
    return proc


@pytest.mark.slow
def test_the_node_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    home = Home(tmp_path).ensure()
    assert not node_lock_held(home)  # no file yet
    proc = hold_lock(home.lock_path)
    try:
        assert node_lock_held(home)
        assert node_lock_pid(home) == proc.pid
        with pytest.raises(StoreError) as info, NodeLock(home):
            pass
        assert info.value.code is ErrorCode.STORE_LOCKED
        assert info.value.message == f"another p2pcomm node runs with this home (pid {proc.pid})"
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        assert proc.stdout.read() == "released\n"
        assert proc.wait() == 0
    assert not node_lock_held(home)
    assert node_lock_pid(home) is None  # emptied on release
    with NodeLock(home) as lock:
        assert lock.held and node_lock_held(home)
        assert node_lock_pid(home) == os.getpid()
    assert not lock.held and not node_lock_held(home)


@pytest.mark.slow
def test_a_killed_node_leaves_no_lock_behind(tmp_path: Path) -> None:
    home = Home(tmp_path).ensure()
    proc = hold_lock(home.lock_path)
    proc.kill()
    proc.wait()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.stdout.close()
    assert not node_lock_held(home)
    assert node_lock_pid(home) == proc.pid  # stale, which is why the lock decides
    with NodeLock(home):
        assert node_lock_pid(home) == os.getpid()


def test_the_node_lock_excludes_a_second_holder_in_one_process(tmp_path: Path) -> None:
    with NodeLock(tmp_path / "node.lock"):
        with pytest.raises(StoreError) as info, NodeLock(tmp_path / "node.lock"):
            pass
        assert f"(pid {os.getpid()})" in info.value.message
    assert stat.S_IMODE(os.stat(tmp_path / "node.lock").st_mode) == 0o600
    lock = NodeLock(tmp_path / "node.lock")
    lock.acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()
    lock.release()  # idempotent
