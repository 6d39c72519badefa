"""``ProcessWriter``: a :class:`~p2pcomm.store.SqliteStore`'s bulk writes, run in a
child process so that SQLite's work happens on another core.

Python threads cannot do this: a thread that writes to SQLite needs the GIL back
after every row, and while the main thread is busy validating entries it gets it only
every few milliseconds, so the writer crawls. A process has its own interpreter.

The parent validates entries and sends plain rows (see :mod:`._sql`) over a pipe; the
child writes them on its own connection to the same WAL file. Each *commit* gets a
ticket, and :meth:`ProcessWriter.wait` returns once the child has committed it
(durably, with ``synchronous=FULL``), or raises :class:`~p2pcomm.errors.StoreError`.

Wire format of both pipes: frames of a 4-byte little-endian length and a msgpack
array. Parent to child:

* ``[1, ticket, group, rows, fork_rows, bodies, signatures, replaced_fork_rows]``:
  in one transaction, store the rows and fork rows (skipping those stored already),
  the bodies of stored entries, the signatures (``[id, sig]``, checked by the parent)
  in place of stored ones, and the replaced fork rows in place of stored ones with
  their key.

Child to parent: ``[ticket, error]`` once the transaction is committed (``error``
None) or rolled back (``error`` a message); ticket 0 answers start-up. The child ends
when its input closes (the parent closed it, or died), after finishing what it had
been sent.

The child starts with ``sys.executable`` and imports only this module, :mod:`._sql`,
sqlite3 and msgpack, so it is ready in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import urllib.parse
import weakref
from collections.abc import Sequence
from typing import IO, Any

import msgpack

from ..errors import ErrorCode, StoreError
from . import _sql

__all__ = ["ProcessWriter"]

_LEN = struct.Struct("<I")
_PUT = 1
#: Writes sent but not yet answered, beyond which ``put`` first reads answers (the
#: answers of this many fit easily in a pipe's buffer).
_MAX_UNREAD = 1024


def _read_frame(stream: IO[bytes]) -> Any:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = _LEN.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        return None
    return msgpack.unpackb(data, raw=False, use_list=True)


def _write_frame(stream: IO[bytes], value: object) -> None:
    data = msgpack.packb(value, use_bin_type=True)
    stream.write(_LEN.pack(len(data)))
    stream.write(data)
    stream.flush()


class ProcessWriter:
    """The writer process of one SQLite file. Thread-safe.

    Normally obtained from :meth:`SqliteStore.writer`, which starts it on first use
    and stops it when the store closes.
    """

    def __init__(self, path: str, *, durable: bool = True) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from p2pcomm.store.writer import child_main; child_main(sys.argv[2], sys.argv[3])"
        )
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, root, path, "1" if durable else "0"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise StoreError(
                ErrorCode.STORE_CORRUPT, f"cannot start the store writer process: {exc}"
            ) from None
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin
        self._out = self._proc.stdout
        # Lock order: send, then recv, then fail (put may wait for answers; a reader
        # that finds the child dead marks it failed without taking the send lock).
        self._send_lock = threading.RLock()
        self._recv_lock = threading.Lock()
        self._fail_lock = threading.Lock()
        self._ticket = 0
        self._answered = 0
        self._errors: dict[int, str] = {}
        self._dead: str | None = None
        self._finalizer = weakref.finalize(self, _stop, self._proc)
        hello = _read_frame(self._out)
        if hello != [0, None]:
            reason = hello[1] if isinstance(hello, list) and len(hello) == 2 else None
            self._fail(str(reason) if reason else "it ended at start-up")
            raise StoreError(
                ErrorCode.STORE_CORRUPT, f"the store writer process did not start: {self._dead}"
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._dead is None

    # -- failure

    def _fail(self, reason: str) -> None:
        with self._fail_lock:
            if self._dead is not None:
                return
            detail = ""
            with contextlib.suppress(OSError):
                self._in.close()
            try:
                self._proc.wait(timeout=5)
                assert self._proc.stderr is not None
                lines = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
                if lines:
                    detail = f" ({lines[-1]})"
            except (subprocess.TimeoutExpired, OSError, ValueError):
                pass
            self._dead = f"{reason}{detail}"

    def _gone(self) -> StoreError:
        return StoreError(
            ErrorCode.STORE_CORRUPT,
            f"the store writer process failed: {self._dead}; writes not confirmed may or"
            " may not be stored",
        )

    # -- writing

    def put(
        self,
        group: bytes,
        rows: Sequence[_sql.Row],
        forks: Sequence[_sql.ForkRow] = (),
        bodies: Sequence[tuple[bytes, bytes]] = (),
        signatures: Sequence[tuple[bytes, bytes]] = (),
        replaced_forks: Sequence[_sql.ForkRow] = (),
    ) -> int:
        """Send a write of one transaction (rows of one group, dependencies first);
        returns the ticket that :meth:`wait` takes. Writes are applied in call order.

        ``forks`` are added unless their key is stored; ``signatures`` (verified by the
        caller) and ``replaced_forks`` take the place of stored ones, as
        ``Store.replace_signatures`` and ``Store.replace_fork_proofs`` do."""
        with self._send_lock:
            if self._dead is not None:
                raise self._gone()
            if self._ticket - self._answered >= _MAX_UNREAD:
                # Read older answers first: the child blocks once its output pipe is
                # full, and would then stop reading what we send.
                self.wait(self._ticket - _MAX_UNREAD // 2)
            self._ticket += 1
            ticket = self._ticket
            try:
                _write_frame(
                    self._in,
                    [_PUT, ticket, group, rows, forks, bodies, signatures, replaced_forks],
                )
            except (OSError, ValueError) as exc:
                self._fail(f"cannot send to it: {exc}")
                raise self._gone() from None
            return ticket

    def _read_answers(self, ticket: int) -> bool:
        """Read answers until ``ticket``'s came (True) or the writer is gone (False).
        Call with ``_recv_lock`` held."""
        while self._answered < ticket:
            if self._dead is not None:
                return False
            try:
                reply = _read_frame(self._out)
            except (OSError, ValueError, msgpack.UnpackException) as exc:
                reply = None
                reason = f"unreadable answer: {exc}"
            else:
                reason = "it ended"
            if not (isinstance(reply, list) and len(reply) == 2 and type(reply[0]) is int):
                self._fail(reason)
                return False
            self._answered = reply[0]
            if reply[1] is not None:
                self._errors[reply[0]] = str(reply[1])
        return True

    def wait_answered(self, ticket: int) -> None:
        """Return once the writer answered ``ticket`` (or died), leaving its outcome to
        :meth:`wait`: a caller can wait here without holding what guards the writes."""
        with self._recv_lock:
            self._read_answers(ticket)

    def wait(self, ticket: int) -> None:
        """Return once the write of ``ticket`` is committed; raise its error if it
        failed, or :class:`StoreError` if the writer process died first."""
        with self._recv_lock:
            if not self._read_answers(ticket):
                raise self._gone()
            error = self._errors.pop(ticket, None)
        if error is not None:
            raise StoreError(ErrorCode.STORE_CORRUPT, f"write failed, nothing stored: {error}")

    def close(self) -> None:
        """Let the child finish what it was sent, then end it."""
        with self._send_lock, self._fail_lock:
            if self._dead is None:
                self._dead = "it was closed"
        self._finalizer()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the child: close its input, read its last answers while it finishes what
    it was sent (so it never writes to a closed pipe), then reap it."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                while stream.read(65536):
                    pass
            with contextlib.suppress(OSError):
                stream.close()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:  # pragma: no cover - a wedged child
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- child


def child_main(path: str, durable: str) -> None:
    """The writer process: apply the parent's writes until its input closes."""
    # Ctrl-C goes to the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    try:
        # Read-write, never create: the parent made the file (mode 0600) and its WAL
        # companions; a file gone since must not come back with the default mode.
        uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=rw"
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        _sql.configure(db, durable=durable == "1")
    except sqlite3.Error as exc:
        _write_frame(out, [0, f"cannot open {path}: {exc}"])
        return
    _write_frame(out, [0, None])
    with contextlib.suppress(BrokenPipeError):  # the parent is gone: SQLite rolls back
        _serve(db, inp, out)
    db.close()


def _serve(db: sqlite3.Connection, inp: IO[bytes], out: IO[bytes]) -> None:
    gids: dict[bytes, int] = {}
    while True:
        msg = _read_frame(inp)
        if msg is None:
            return
        _, ticket, group, rows, forks, bodies, signatures, replaced_forks = msg
        failed: str | None = None
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                gid = gids.get(group)
                if gid is None:
                    gid = _sql.gid_of(db, group, create=True)
                if rows or forks:
                    _sql.insert(db, gid, rows, forks)
                for eid, body in bodies:
                    _sql.put_body(db, gid, eid, body)
                if signatures:
                    _sql.replace_signatures(db, gid, signatures)
                if replaced_forks:
                    _sql.replace_forks(db, gid, replaced_forks)
                db.execute("COMMIT")
                gids[group] = gid
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except Exception as exc:  # reported to the parent, which raises it
            failed = f"{type(exc).__name__}: {exc}"
        _write_frame(out, [ticket, failed])
