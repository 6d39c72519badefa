"""The control socket a running node serves to local clients (docs/control-protocol.md).

``serve_control`` binds a Unix socket (``<home>/control.sock``) and answers the JSON-lines
protocol of :mod:`p2pcomm.core.control` with the methods it is given::

    methods = {
        "status": Method.call(status),   # async (params) -> dict
        "tail": Method.stream(tail),     # (params) -> async iterator of dicts
    }
    socket_path = await nursery.start(partial(serve_control, home, methods, node_id=me.text()))

Theory of operation.

* Binding: a socket file left at the path is probed first. If something answers, another
  node serves it (``ControlError`` ``ADDRESS_IN_USE``); if not, it is a crashed node's
  leftover and is removed. The new socket is bound under ``umask 0o177``, so it is 0600
  from its first instant (no chmod race), and removed on exit if it is still ours. The
  probe-then-unlink is not atomic; the node lock (:class:`p2pcomm.paths.NodeLock`) that
  ``p2pcomm run`` holds is what keeps two nodes from doing it at once.
* Who may connect: on Linux the peer's uid (``SO_PEERCRED``) must be this process's
  effective uid; others get one ``refused`` error line and are closed. Elsewhere the 0700
  home directory and the 0600 socket are the guard.
* Each connection runs in its own task and costs a bounded amount: one request at a
  time (the next line is read only after the reply, so pipelined requests wait in the
  socket), lines of at most ``max_line_length`` bytes, and, for a stream, a queue of at
  most ``stream_queue`` events between the method and the socket. When a client does not
  read, the socket's buffers fill, then the queue; when the queue stays full for
  ``lag_grace`` seconds the stream is ended with error code ``lagged`` after the queued
  events, instead of growing memory. (A queue full for a moment is only the writer being
  behind a burst: the method waits.)
* During a stream the server keeps reading the connection: the client closing it (or
  shutting down its writing half) ends the stream and the method's iterator is closed.
  A request sent during a stream waits until the stream ends.
* Failures: a method raising :class:`P2PCommError` answers with that error; any other
  exception is logged on ``p2pcomm.net.control`` and answered with code ``internal``; a
  malformed or overlong line gets one ``control-protocol`` error line and the
  connection is closed. None of them stops the server, which runs until cancelled.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias, cast

import trio

from .._version import __version__
from ..core.control import (
    INTERNAL,
    LAGGED,
    MAX_ID,
    MAX_LINE_LENGTH,
    ErrorReply,
    Event,
    Hello,
    LineBuffer,
    MethodKind,
    Request,
    Result,
    decode_line,
    decode_request,
)
from ..errors import ControlError, ErrorCode, P2PCommError
from ..paths import Home, check_socket_path

__all__ = [
    "DEFAULT_LAG_GRACE",
    "DEFAULT_STREAM_QUEUE",
    "CallFn",
    "Method",
    "StreamFn",
    "serve_control",
]

logger = logging.getLogger(__name__)

CallFn: TypeAlias = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
StreamFn: TypeAlias = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]

DEFAULT_STREAM_QUEUE = 256
"""Events a stream may have waiting for a slow client before it is ended as ``lagged``."""

DEFAULT_LAG_GRACE = 5.0
"""Seconds a stream's queue may stay full before its client counts as lagging."""

_BACKLOG = 16
_RECEIVE_SIZE = 65536
_MAX_ERROR_MESSAGE = 4096
#: The membership-style reason of the refusal sent to another user's connection.
OTHER_USER_REASON = "other-user"


@dataclass(frozen=True, slots=True)
class Method:
    """A method the control socket serves: a ``call`` (``fn`` is ``async (params) ->
    dict``, its return value is the result) or a ``stream`` (``fn(params)`` returns an
    async iterator of event dicts; the result is ``{}`` when it ends). ``params`` is the
    request's JSON object; a method checks it and raises a :class:`P2PCommError`
    (e.g. ``ValidationError``) for what it cannot use."""

    kind: MethodKind
    fn: CallFn | StreamFn

    def __post_init__(self) -> None:
        if self.kind not in ("call", "stream"):
            raise ValueError(f"a method's kind is 'call' or 'stream', found {self.kind!r}")

    @classmethod
    def call(cls, fn: CallFn) -> Method:
        return cls("call", fn)

    @classmethod
    def stream(cls, fn: StreamFn) -> Method:
        return cls("stream", fn)


async def serve_control(
    home_or_path: Home | str | os.PathLike[str],
    methods: Mapping[str, Method],
    *,
    node_id: str,
    version: str = __version__,
    max_line_length: int = MAX_LINE_LENGTH,
    stream_queue: int = DEFAULT_STREAM_QUEUE,
    lag_grace: float = DEFAULT_LAG_GRACE,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``methods`` on the control socket of ``home_or_path`` (a :class:`Home`,
    which is :meth:`~Home.ensure`\\ d first, or the socket's path) until cancelled.

    Start it with ``path = await nursery.start(serve_control, ...)``: it reports the
    socket's path once it accepts connections. Raises :class:`ControlError`
    ``ADDRESS_IN_USE`` when a node already serves the path (or a file that is not a
    socket is in the way), ``TOO_LARGE`` when the path is too long for a Unix socket,
    and ``OSError`` when it cannot bind (e.g. the directory does not exist).
    """
    if isinstance(home_or_path, Home):
        home_or_path.ensure()
        path = home_or_path.socket_path
    else:
        path = Path(home_or_path)
    if stream_queue < 1:
        raise ValueError(f"stream_queue must be at least 1, found {stream_queue}")
    server = _Server(
        methods=dict(methods),
        hello=Hello(
            node=node_id,
            version=version,
            methods={name: m.kind for name, m in methods.items()},
        ).encode(limit=max_line_length),
        max_line_length=max_line_length,
        stream_queue=stream_queue,
        lag_grace=lag_grace,
    )
    sock, identity = _bind(path)
    try:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(trio.serve_listeners, server.handle, [listener], handler_nursery=nursery)
            )
            logger.debug("control socket listening on %s", path)
            task_status.started(path)
    finally:
        sock.close()
        with contextlib.suppress(OSError):
            now = os.stat(path)
            if (now.st_dev, now.st_ino) == (identity.st_dev, identity.st_ino):
                os.unlink(path)


def _bind(path: Path) -> tuple[socket.socket, os.stat_result]:
    """A listening socket at ``path`` (see the module doc), and the identity of its
    file, so that only that file is removed at the end."""
    check_socket_path(path)
    name = os.fspath(path)
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(
                ErrorCode.ADDRESS_IN_USE,
                f"{name} exists and is not a socket; move it away or choose another --home",
                expected="a socket or nothing",
                found=stat.filemode(st.st_mode),
            )
        if _answers(name):
            raise ControlError(
                ErrorCode.ADDRESS_IN_USE,
                f"a node already serves {name}",
                expected="no node",
                found=name,
            )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)  # a crashed node's leftover
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)  # the socket is 0600 from birth
        try:
            sock.bind(name)
        finally:
            os.umask(old_umask)
        sock.listen(_BACKLOG)
        identity = os.stat(name)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ControlError(
                ErrorCode.ADDRESS_IN_USE,
                f"a node already serves {name}",
                expected="no node",
                found=name,
            ) from exc
        raise
    return sock, identity


def _answers(name: str) -> bool:
    """Whether something listens on the Unix socket ``name`` (connects without waiting)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        try:
            probe.connect(name)
        except BlockingIOError:  # a listener whose backlog is full
            return True
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        return True


def _peer_uid(sock: trio.socket.SocketType) -> int | None:
    """The effective uid of the process at the other end, where the OS says (Linux)."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return None
    size = struct.calcsize("3i")
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, peercred, size))
    return int(uid)


def _salvage_id(line: bytes) -> int | None:
    """The request id of a line that failed validation, if it has a usable one."""
    try:
        obj = decode_line(line)
    except ControlError:
        return None
    value = obj.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return value
    return None


def _error_reply(request_id: int | None, exc: P2PCommError) -> ErrorReply:
    reply = ErrorReply.from_exception(request_id, exc)
    if len(reply.message) > _MAX_ERROR_MESSAGE:
        reply = ErrorReply(
            id=reply.id,
            code=reply.code,
            message=reply.message[:_MAX_ERROR_MESSAGE] + "...",
            reason=reply.reason,
        )
    return reply


def _internal(request_id: int, method: str, exc: BaseException) -> ErrorReply:
    logger.error("control method %r failed", method, exc_info=exc)
    return ErrorReply(
        id=request_id,
        code=INTERNAL,
        message=f"the node failed in {method!r} ({type(exc).__name__}); its log has the details",
    )


class _ClientGone(Exception):
    """The client closed the connection (or broke it) during a stream."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Server:
    methods: dict[str, Method]
    hello: bytes
    max_line_length: int
    stream_queue: int
    lag_grace: float

    async def handle(self, stream: trio.SocketStream) -> None:
        """One client connection, from hello to close; never raises but Cancelled."""
        async with stream:
            try:
                await self._converse(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, _ClientGone):
                pass
            except Exception:  # a bug here must cost one connection, not the server
                logger.exception("control connection failed")

    async def _converse(self, stream: trio.SocketStream) -> None:
        uid = _peer_uid(stream.socket)
        if uid is not None and uid != os.geteuid():
            logger.warning("refused a control connection from uid %d", uid)
            refusal = ErrorReply(
                id=None,
                code=ErrorCode.REFUSED.value,
                message=f"this node serves its own user only (uid {os.geteuid()}), not uid {uid}",
                reason=OTHER_USER_REASON,
            )
            await stream.send_all(refusal.encode())
            return
        await stream.send_all(self.hello)
        buffer = LineBuffer(self.max_line_length)
        while True:
            try:
                line = await self._next_line(stream, buffer)
            except ControlError as exc:  # overlong, or cut off at the end
                await self._close_with(stream, None, exc)
                return
            if line is None:
                return
            try:
                request = decode_request(line)
            except ControlError as exc:
                await self._close_with(stream, _salvage_id(line), exc)
                return
            method = self.methods.get(request.method)
            if method is None:
                unknown = ControlError(
                    ErrorCode.CONTROL_PROTOCOL,
                    f"this node has no method {request.method!r}; it has "
                    f"{', '.join(sorted(self.methods)) or 'none'}",
                    expected=sorted(self.methods),
                    found=request.method,
                )
                await stream.send_all(_error_reply(request.id, unknown).encode())
            elif method.kind == "call":
                await self._call(stream, request, cast(CallFn, method.fn))
            else:
                await self._stream(stream, buffer, request, cast(StreamFn, method.fn))

    async def _close_with(
        self, stream: trio.SocketStream, request_id: int | None, exc: ControlError
    ) -> None:
        logger.debug("closing a control connection: %s", exc)
        await stream.send_all(_error_reply(request_id, exc).encode())

    async def _next_line(self, stream: trio.SocketStream, buffer: LineBuffer) -> bytes | None:
        while True:
            line = buffer.next_line()
            if line is not None or buffer.eof:
                return line
            buffer.feed(await stream.receive_some(_RECEIVE_SIZE))

    def _encode(self, reply: Result | Event | ErrorReply, method: str) -> bytes:
        """``reply``'s line; a reply the line limit or JSON cannot hold becomes an error."""
        try:
            return reply.encode(limit=self.max_line_length)
        except P2PCommError as exc:  # TOO_LARGE
            return _error_reply(reply.id, exc).encode(limit=self.max_line_length)
        except (TypeError, ValueError) as exc:
            assert reply.id is not None
            return _internal(reply.id, method, exc).encode(limit=self.max_line_length)

    async def _call(self, stream: trio.SocketStream, request: Request, fn: CallFn) -> None:
        reply: Result | ErrorReply
        try:
            result = await fn(dict(request.params))
            if not isinstance(result, dict):
                raise TypeError(f"a call returns a dict, {request.method!r} returned {result!r}")
            reply = Result(id=request.id, result=result)
        except P2PCommError as exc:
            reply = _error_reply(request.id, exc)
        except Exception as exc:
            reply = _internal(request.id, request.method, exc)
        await stream.send_all(self._encode(reply, request.method))

    async def _stream(
        self, stream: trio.SocketStream, buffer: LineBuffer, request: Request, fn: StreamFn
    ) -> None:
        """Run a stream method: its events through a bounded queue to the socket, then
        the final line. Raises :class:`_ClientGone` when the client left meanwhile."""
        send_events, receive_events = trio.open_memory_channel[dict[str, Any]](self.stream_queue)
        final: Result | ErrorReply | None = None
        gone = False

        async def produce() -> None:
            nonlocal final
            outcome: Result | ErrorReply = Result(id=request.id, result={})
            async with send_events:
                iterator: AsyncIterator[dict[str, Any]] | None = None
                try:
                    iterator = fn(dict(request.params))
                    async for event in iterator:
                        if not isinstance(event, dict):
                            raise TypeError(f"a stream yields dicts, found {event!r}")
                        if not await self._enqueue(stream, send_events, event):
                            outcome = ErrorReply(
                                id=request.id,
                                code=LAGGED,
                                message=f"the client read {request.method!r} too slowly: "
                                f"{self.stream_queue} events were waiting; the stream ended",
                            )
                            break
                except P2PCommError as exc:
                    outcome = _error_reply(request.id, exc)
                except Exception as exc:
                    outcome = _internal(request.id, request.method, exc)
                finally:
                    aclose = getattr(iterator, "aclose", None)
                    if aclose is not None:
                        await aclose()
                if final is None:  # the writer may have ended the stream already
                    final = outcome

        async def watch_client(cancel_scope: trio.CancelScope) -> None:
            # Reads (and keeps) what the client sends during the stream; its leaving
            # ends the stream. A complete line waits in the buffer until the stream ends.
            nonlocal gone
            try:
                while not buffer.ready():
                    data = await stream.receive_some(_RECEIVE_SIZE)
                    if not data:
                        break
                    buffer.feed(data)
                else:
                    await trio.sleep_forever()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            gone = True
            cancel_scope.cancel()

        async def write_events(cancel_scope: trio.CancelScope) -> None:
            nonlocal final, gone
            async with receive_events:
                async for event in receive_events:
                    try:
                        line = Event(id=request.id, event=event).encode(limit=self.max_line_length)
                    except P2PCommError as exc:  # TOO_LARGE
                        final = _error_reply(request.id, exc)
                        break
                    except (TypeError, ValueError) as exc:  # not JSON
                        final = _internal(request.id, request.method, exc)
                        break
                    try:
                        await stream.send_all(line)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        gone = True
                        break
            cancel_scope.cancel()  # the producer, if the writer ended first; the watcher

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            nursery.start_soon(watch_client, nursery.cancel_scope)
            await write_events(nursery.cancel_scope)
        if gone:
            raise _ClientGone
        assert final is not None
        await stream.send_all(self._encode(final, request.method))

    async def _enqueue(
        self,
        stream: trio.SocketStream,
        queue: trio.MemorySendChannel[dict[str, Any]],
        event: dict[str, Any],
    ) -> bool:
        """Queue ``event`` for the writer; ``False`` when the client is lagging: the
        queue stayed full for ``lag_grace`` seconds. (A full queue alone is not enough: a
        method yielding a burst without awaiting outruns the writer even when the client
        reads at once; it waits for the writer.)"""
        try:
            queue.send_nowait(event)
            return True
        except trio.WouldBlock:
            pass
        with trio.move_on_after(self.lag_grace):
            await queue.send(event)
            return True
        return False
