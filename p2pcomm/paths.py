"""Where an identity's files live, and the lock that says a node runs there.

A *home* is one directory per identity, private to its user (mode 0700)::

    <home>/key            the identity's key file (p2pcomm.keys)
    <home>/store.db       the SQLite store
    <home>/control.sock   the control socket of the running node (docs/control-protocol.md)
    <home>/node.lock      held (flock) by the running node; holds its pid
    <home>/config.json    settings

:meth:`Home.resolve` finds it: an explicit ``--home``, else ``$P2PCOMM_HOME``, else the
user's data directory (``$XDG_DATA_HOME/p2pcomm`` or ``~/.local/share/p2pcomm`` on Linux
and other Unixes, ``~/Library/Application Support/p2pcomm`` on macOS,
``%APPDATA%\\p2pcomm`` on Windows). :meth:`Home.ensure` creates it and refuses one that
other users could write into: whoever can write there can replace the key, the store or
the socket.

:class:`NodeLock` is what ``p2pcomm run`` holds while it runs: an exclusive ``flock`` on
``node.lock``. The kernel drops it when the process dies, however it dies, so a crashed
node never leaves a stale lock behind (the file stays; only the lock matters). Other
commands ask :func:`node_lock_held` to tell "no node" from "a node that does not answer".
Locks are POSIX-only (``fcntl``).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import ControlError, ErrorCode, StoreError

__all__ = [
    "APP_NAME",
    "ENV_HOME",
    "MAX_SOCKET_PATH",
    "Home",
    "NodeLock",
    "check_socket_path",
    "node_lock_held",
    "node_lock_pid",
]

APP_NAME = "p2pcomm"
ENV_HOME = "P2PCOMM_HOME"
"""The environment variable that names the home when ``--home`` is not given."""

MAX_SOCKET_PATH = 103
"""The longest Unix socket path accepted, in bytes of its file-system encoding.

``sockaddr_un`` holds 104 bytes on macOS and the BSDs and 108 on Linux, terminating NUL
included; 103 works everywhere, so a home that works on one machine works on the next."""


def check_socket_path(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ControlError` (``TOO_LARGE``) when ``path`` is too long to bind or
    connect a Unix socket to; the message tells the user to choose a shorter home."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        raise ControlError(
            ErrorCode.TOO_LARGE,
            f"the control socket path {os.fspath(path)} is {size} bytes, over the "
            f"{MAX_SOCKET_PATH} a Unix socket allows; choose a shorter --home "
            f"(or {ENV_HOME})",
            expected=MAX_SOCKET_PATH,
            found=size,
        )


@dataclass(frozen=True)
class Home:
    """An identity's home directory; the properties name the files in it."""

    root: Path

    @property
    def key_path(self) -> Path:
        return self.root / "key"

    @property
    def store_path(self) -> Path:
        return self.root / "store.db"

    @property
    def socket_path(self) -> Path:
        return self.root / "control.sock"

    @property
    def lock_path(self) -> Path:
        return self.root / "node.lock"

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @classmethod
    def resolve(
        cls,
        explicit: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] = os.environ,
        *,
        platform: str = sys.platform,
    ) -> Home:
        """The home named by ``explicit`` (``--home``), else by ``env["P2PCOMM_HOME"]``,
        else the user's data directory for ``platform``. ``~`` is expanded (from
        ``env["HOME"]`` when set) and the result made absolute; nothing is created."""
        user_home = Path(env["HOME"]) if env.get("HOME") else Path.home()

        def expand(p: str | os.PathLike[str]) -> Path:
            text = os.fspath(p)
            if text == "~" or text.startswith(("~/", "~" + os.sep)):
                return user_home / text[2:]
            return Path(text).expanduser()

        if explicit is not None and os.fspath(explicit) != "":
            chosen = expand(explicit)
        elif env.get(ENV_HOME):
            chosen = expand(env[ENV_HOME])
        elif platform == "darwin":
            chosen = user_home / "Library" / "Application Support" / APP_NAME
        elif platform == "win32":
            appdata = env.get("APPDATA")
            base = Path(appdata) if appdata else user_home / "AppData" / "Roaming"
            chosen = base / APP_NAME
        else:
            # XDG Base Directory: a relative $XDG_DATA_HOME is invalid and ignored.
            xdg = env.get("XDG_DATA_HOME", "")
            base = Path(xdg) if xdg and Path(xdg).is_absolute() else user_home / ".local" / "share"
            chosen = base / APP_NAME
        return cls(chosen.absolute())

    def ensure(self) -> Home:
        """Create the directory (mode 0700, parents as needed) if it is missing, and check
        it: a directory, owned by this user, not writable by group or others.

        Raises :class:`StoreError` (``KEY_FILE_INSECURE``) naming the fix for a directory
        another user owns or can write into, ``STORE_CORRUPT`` when the path is not a
        directory, and :class:`ControlError` (``TOO_LARGE``) when :attr:`socket_path` is
        too long for a Unix socket. Returns ``self``.
        """
        root = self.root
        try:
            root.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        else:
            os.chmod(root, 0o700)  # mkdir's mode passes through the umask
        st = os.stat(root)
        if not stat.S_ISDIR(st.st_mode):
            raise StoreError(
                ErrorCode.STORE_CORRUPT,
                f"the p2pcomm home {root} is not a directory; choose another --home",
                expected="a directory",
                found=stat.filemode(st.st_mode),
            )
        if os.name == "posix":
            uid = os.geteuid()
            if st.st_uid != uid:
                raise StoreError(
                    ErrorCode.KEY_FILE_INSECURE,
                    f"the p2pcomm home {root} belongs to another user (uid {st.st_uid}, "
                    f"you are {uid}); use a home of your own (--home or {ENV_HOME}), or "
                    f"run: chown {uid} {root}",
                    expected=uid,
                    found=st.st_uid,
                )
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                mode = f"{stat.S_IMODE(st.st_mode):o}"
                raise StoreError(
                    ErrorCode.KEY_FILE_INSECURE,
                    f"the p2pcomm home {root} can be written by group or others (mode "
                    f"{mode}), who could replace its key or socket; run: chmod 700 {root}",
                    expected="700",
                    found=mode,
                )
        check_socket_path(self.socket_path)
        return self


def _lock_path(home: Home | str | os.PathLike[str]) -> Path:
    return home.lock_path if isinstance(home, Home) else Path(home)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None


class NodeLock:
    """``with NodeLock(home):`` -- this process is the node of ``home`` until the block
    ends: an exclusive, non-blocking ``flock`` on ``home.lock_path`` (or on the path
    given), with this process's pid written into the file.

    Entering raises :class:`StoreError` ``STORE_LOCKED`` ("another p2pcomm node runs with
    this home (pid N)") when another open file description holds the lock, in this
    process or another. Leaving empties the file and releases the lock. Not reentrant.
    """

    def __init__(self, home: Home | str | os.PathLike[str]) -> None:
        self.path = _lock_path(home)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        import fcntl

        if self._fd is not None:
            raise RuntimeError(f"the node lock {self.path} is already held by this object")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StoreError(
                ErrorCode.STORE_LOCKED,
                f"another p2pcomm node runs with this home (pid {pid if pid else 'unknown'})",
                expected="no running node",
                found=pid,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)  # closing releases the lock
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # no stale pid; the file itself stays (see module doc)
        finally:
            os.close(fd)

    def __enter__(self) -> NodeLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def node_lock_held(home: Home | str | os.PathLike[str]) -> bool:
    """Whether some process holds the node lock of ``home`` now (checked by taking and
    dropping it; a missing lock file means no). Also true while this very process holds
    it through a :class:`NodeLock`."""
    import fcntl

    try:
        fd = os.open(_lock_path(home), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we took it
    return False


def node_lock_pid(home: Home | str | os.PathLike[str]) -> int | None:
    """The pid the node lock file of ``home`` names, if any. Meaningful only while
    :func:`node_lock_held` is true: a node empties it on a clean exit, not on a crash."""
    try:
        fd = os.open(_lock_path(home), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_pid(fd)
    finally:
        os.close(fd)
