"""A blocking client for the control socket of a running node (docs/control-protocol.md).

CLI commands use it when a node runs; it needs only the standard library's ``socket``::

    with ControlClient.connect(home.socket_path) as node:
        print(node.call("post", {"group": gid, "text": "hello"}))
        for event in node.stream("tail", {"group": gid}):
            print(event)

Errors are typed: :meth:`ControlClient.connect` raises :class:`ControlError`
``NODE_UNREACHABLE`` when no node listens (the message names the path), and a node that
speaks another control protocol is refused with ``CONTROL_PROTOCOL`` ("restart it").
A method's error arrives as the :class:`P2PCommError` subclass the node raised
(:class:`RefusedError` with its ``reason``, :class:`NotFoundError`, ...), rebuilt by
:func:`p2pcomm.core.control.error_from_json`. Not thread-safe: one request at a time.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

from .._version import __version__
from ..core.control import (
    MAX_LINE_LENGTH,
    ErrorReply,
    Event,
    Hello,
    LineBuffer,
    MethodKind,
    Reply,
    Request,
    decode_hello,
    decode_reply,
)
from ..errors import ControlError, ErrorCode, P2PCommError
from ..paths import Home, check_socket_path

__all__ = ["DEFAULT_TIMEOUT", "ControlClient", "VersionMismatch"]

DEFAULT_TIMEOUT = 10.0
"""Seconds :meth:`ControlClient.connect` and :meth:`ControlClient.call` wait by default."""

_RECEIVE_SIZE = 65536

VersionMismatch = Callable[[str, str], None]
"""Called as ``(client_version, node_version)`` when they differ (the CLI warns)."""

_UNREACHABLE_ERRNOS = {
    errno.ENOENT,
    errno.ECONNREFUSED,
    errno.ENOTDIR,
    errno.ENOTSOCK,
    errno.EACCES,
    errno.EPERM,
}


def _unreachable(path: str, why: str) -> ControlError:
    return ControlError(
        ErrorCode.NODE_UNREACHABLE,
        f"no p2pcomm node answers at {path} ({why}); start one with `p2pcomm run`",
        expected="a running node",
        found=path,
    )


class ControlClient:
    """A connection to a node's control socket; make one with :meth:`connect`.

    :attr:`node_id`, :attr:`version` and :attr:`methods` are what the node's hello said.
    Use it as a context manager, or :meth:`close` it.
    """

    def __init__(
        self,
        sock: socket.socket,
        hello: Hello,
        buffer: LineBuffer,
        path: str,
        timeout: float | None,
    ) -> None:
        self._sock = sock
        self._hello = hello
        self._buffer = buffer
        self._timeout = timeout
        self._next_id = 1
        self._closed = False
        self.path = path

    @classmethod
    def connect(
        cls,
        path: Home | str | os.PathLike[str],
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        on_version_mismatch: VersionMismatch | None = None,
        max_line_length: int = MAX_LINE_LENGTH,
    ) -> ControlClient:
        """Connect to the socket at ``path`` (or ``Home.socket_path``) and read the hello.

        Raises :class:`ControlError` ``NODE_UNREACHABLE`` when nothing listens there or
        the node does not say hello within ``timeout`` seconds, ``CONTROL_PROTOCOL`` when
        it speaks another protocol (or not this one), ``TOO_LARGE`` for a path too long
        for a Unix socket; a node that refuses this user raises :class:`RefusedError`.
        """
        name = os.fspath(path.socket_path if isinstance(path, Home) else path)
        check_socket_path(name)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            try:
                sock.connect(name)
            except TimeoutError as exc:
                raise _unreachable(name, f"no answer within {timeout} seconds") from exc
            except OSError as exc:
                if exc.errno in _UNREACHABLE_ERRNOS:
                    raise _unreachable(name, exc.strerror or str(exc)) from exc
                raise
            buffer = LineBuffer(max_line_length)
            try:
                line = _read_line(sock, buffer, name)
            except TimeoutError as exc:
                raise _unreachable(
                    name, f"it accepted but sent no hello within {timeout} seconds"
                ) from exc
            if line is None:
                raise _unreachable(name, "it closed the connection before its hello")
            hello = decode_hello(line)
        except BaseException:
            sock.close()
            raise
        if hello.version != __version__ and on_version_mismatch is not None:
            on_version_mismatch(__version__, hello.version)
        return cls(sock, hello, buffer, name, timeout)

    # -- what the node said ---------------------------------------------------------

    @property
    def node_id(self) -> str:
        """The node's member id (``pc1...``)."""
        return self._hello.node

    @property
    def version(self) -> str:
        """The p2pcomm version the node runs."""
        return self._hello.version

    @property
    def methods(self) -> Mapping[str, MethodKind]:
        """The node's methods and their kinds (``"call"`` or ``"stream"``)."""
        return self._hello.methods

    @property
    def closed(self) -> bool:
        return self._closed

    # -- requests ---------------------------------------------------------------------

    def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Call ``method`` and return its result.

        Raises the error the node answered with (typed, see the module doc);
        ``NODE_UNREACHABLE`` if the node goes away or does not answer within ``timeout``
        (default: the connect timeout; the client is closed then); ``CONTROL_PROTOCOL``
        for a method the node does not have as a call.
        """
        request_id = self._send(method, params, "call")
        reply = self._receive(request_id, self._timeout if timeout is None else timeout)
        if isinstance(reply, Event):
            self.close()
            raise ControlError(
                ErrorCode.CONTROL_PROTOCOL,
                f"the node sent an event for the call {method!r}",
                expected="a result",
                found="event",
            )
        if isinstance(reply, ErrorReply):
            raise reply.exception()
        return reply.result

    def stream(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Start stream ``method`` now, and return an iterator of its events as they come.
        The iterator ends when the stream does, or raises the error that ends it (e.g. a
        ``lagged`` :class:`~p2pcomm.core.control.ControlReplyError`).

        ``timeout`` bounds the wait for each event (default: none, a stream may be
        quiet for long). Leaving the loop early closes the client: the stream cannot be
        stopped otherwise.
        """
        request_id = self._send(method, params, "stream")
        return self._events(request_id, timeout)

    def _events(self, request_id: int, timeout: float | None) -> Iterator[dict[str, Any]]:
        finished = False
        try:
            while True:
                reply = self._receive(request_id, timeout)
                if isinstance(reply, Event):
                    yield reply.event
                    continue
                finished = True
                if isinstance(reply, ErrorReply):
                    raise reply.exception()
                return
        finally:
            if not finished:
                self.close()

    # -- plumbing ---------------------------------------------------------------------

    def _send(self, method: str, params: Mapping[str, Any] | None, kind: MethodKind) -> int:
        if self._closed:
            raise ControlError(
                ErrorCode.NODE_UNREACHABLE,
                f"this connection to {self.path} is closed",
                expected="an open connection",
                found="closed",
            )
        have = self.methods.get(method)
        if have is None:
            raise ControlError(
                ErrorCode.CONTROL_PROTOCOL,
                f"the running node (version {self.version}) has no method {method!r}; "
                f"it has {', '.join(sorted(self.methods)) or 'none'}",
                expected=method,
                found=sorted(self.methods),
            )
        if have != kind:
            raise ControlError(
                ErrorCode.CONTROL_PROTOCOL,
                f"{method!r} is a {have} on the running node; use ControlClient.{have}()",
                expected=kind,
                found=have,
            )
        request = Request(id=self._next_id, method=method, params=dict(params or {}))
        line = request.encode(limit=self._buffer.limit)  # TOO_LARGE before anything is sent
        self._next_id += 1
        try:
            self._sock.settimeout(self._timeout)
            self._sock.sendall(line)
        except OSError as exc:
            self.close()
            raise _unreachable(self.path, f"sending failed: {exc}") from exc
        return request.id

    def _receive(self, request_id: int, timeout: float | None) -> Reply:
        try:
            self._sock.settimeout(timeout)
            line = _read_line(self._sock, self._buffer, self.path)
        except TimeoutError as exc:
            self.close()  # its answer could still come and be taken for the next one's
            raise ControlError(
                ErrorCode.NODE_UNREACHABLE,
                f"the node at {self.path} did not answer within {timeout} seconds",
                expected=timeout,
                found=None,
            ) from exc
        except P2PCommError:
            self.close()
            raise
        if line is None:
            self.close()
            raise _unreachable(self.path, "it closed the connection before answering")
        try:
            reply = decode_reply(line)
        except P2PCommError:
            self.close()
            raise
        if reply.id is None:  # an error about the connection: the node closes it
            self.close()
            return reply
        if reply.id != request_id:
            self.close()
            raise ControlError(
                ErrorCode.CONTROL_PROTOCOL,
                f"the node answered request {reply.id} while request {request_id} waited",
                expected=request_id,
                found=reply.id,
            )
        return reply

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self._closed:
            self._closed = True
            self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ControlClient {self.path} node={self.node_id} {state}>"


def _read_line(sock: socket.socket, buffer: LineBuffer, path: str) -> bytes | None:
    """The next line from ``sock`` (``None`` at the end); socket errors other than a
    timeout become ``NODE_UNREACHABLE``, a broken line ``CONTROL_PROTOCOL``."""
    while True:
        line = buffer.next_line()
        if line is not None or buffer.eof:
            return line
        try:
            data = sock.recv(_RECEIVE_SIZE)
        except TimeoutError:
            raise
        except OSError as exc:  # ECONNRESET, ...
            raise _unreachable(path, f"the connection broke: {exc}") from exc
        buffer.feed(data)
