"""The secure channel over trio streams (spec/05-channel.md).

:class:`SecureStream` wraps any :class:`trio.abc.Stream` (a TCP connection, a memory
stream in tests) and drives the sans-IO :class:`~p2pcomm.core.handshake.Handshake` and
:class:`~p2pcomm.core.channel.Channel` over it. It is itself a :class:`trio.abc.Stream`
(checked with ``trio.testing.check_two_way_stream``), so code above it sees plain bytes.

This layer only moves bytes, draws the keys' randomness (``os.urandom``) and keeps time.
Its errors follow trio's conventions:

* :meth:`SecureStream.handshake` raises the typed
  :class:`~p2pcomm.errors.RemoteProtocolError` of the core when the peer misbehaves
  (``TIMEOUT`` when it is too slow), so callers can tell a bad peer from a bad network;
* ``send_all`` / ``receive_some`` raise :class:`trio.BrokenResourceError` when the peer
  breaks the protocol or the connection (the typed error is its ``__cause__``),
  :class:`trio.ClosedResourceError` after :meth:`SecureStream.aclose`, and
  :class:`trio.BusyResourceError` when two tasks send (or receive) at once.

If a ``send_all`` is cancelled after encryption started, a frame may be cut short on the
wire; the sending side is then broken (like :class:`trio.SSLStream`). A cancelled
``receive_some`` loses nothing.

Deadlines: a handshake must complete within ``handshake_timeout``, and, with
``frame_timeout``, a frame whose first bytes arrived must be whole within that many
seconds (the stream then breaks with ``TRUNCATED``: the frame was cut short, by time).
:func:`serve_secure` also bounds what strangers can make it spend before a handshake
completes (:mod:`p2pcomm.net.admission`, spec/05-channel.md 5.6.1).
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
from collections.abc import Awaitable, Callable
from types import TracebackType

import trio

from ..core.buffer import LENGTH_PREFIX_SIZE
from ..core.channel import (
    DEFAULT_REKEY_INTERVAL,
    MAX_CLOSE_REASON,
    Channel,
    CloseCode,
    CloseReceived,
    DataReceived,
)
from ..core.handshake import (
    NEED_DATA,
    PROLOGUE,
    SEND_NEEDED,
    Handshake,
    HandshakeComplete,
    HandshakeResult,
    Role,
    Signer,
)
from ..errors import (
    ErrorCode,
    LocalProtocolError,
    P2PCommError,
    ProtocolError,
    RemoteProtocolError,
)
from .admission import DEFAULT_LIMITS, Admission, AdmissionLimits, Refusal

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_FRAME_TIMEOUT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "SecureStream",
    "open_secure_stream",
    "serve_secure",
]

logger = logging.getLogger(__name__)

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a handshake may take before it fails with ``ErrorCode.TIMEOUT``."""

DEFAULT_CLOSE_TIMEOUT = 2.0
"""Seconds :meth:`SecureStream.aclose` waits to deliver the CLOSE frame."""

DEFAULT_FRAME_TIMEOUT = 30.0
"""Seconds :func:`serve_secure`'s streams allow a frame, from its first byte to its
last (a 64 KiB frame at 2.2 KB/s)."""

_RECEIVE_SIZE = 65536 + 2


class _ConflictGuard:
    """Raises :class:`trio.BusyResourceError` when entered by a second task at once."""

    __slots__ = ("_held", "_message")

    def __init__(self, message: str) -> None:
        self._message = message
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._message)
        self._held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._held = False


class _FrameClock:
    """Where the peer's frames begin and end, read from their length prefixes alone
    (05 5.5.1), and since when the current frame has been arriving."""

    __slots__ = ("_left", "_prefix", "started")

    def __init__(self) -> None:
        self._left = 0  # bytes of the current frame's body still to come
        self._prefix = b""  # the part of a length prefix received so far
        #: ``trio.current_time()`` when the first byte of the unfinished frame arrived
        #: (None between frames).
        self.started: float | None = None

    def feed(self, data: bytes | bytearray, now: float) -> None:
        i, n = 0, len(data)
        left, prefix = self._left, self._prefix
        ended = False  # a frame ended in this data
        while i < n:
            if left:
                take = min(left, n - i)
                left -= take
                i += take
                ended = left == 0
            else:
                take = min(LENGTH_PREFIX_SIZE - len(prefix), n - i)
                prefix += data[i : i + take]
                i += take
                if len(prefix) == LENGTH_PREFIX_SIZE:
                    left = int.from_bytes(prefix, "big")
                    prefix = b""
                    ended = left == 0
        self._left, self._prefix = left, prefix
        if not (left or prefix):
            self.started = None
        elif self.started is None or ended:
            self.started = now


class SecureStream(trio.abc.Stream):
    """An authenticated, encrypted :class:`trio.abc.Stream` over ``transport``.

    The handshake runs on :meth:`handshake` or, lazily, on the first ``send_all`` /
    ``receive_some``. Afterwards :attr:`peer_id` is the peer's Ed25519 member key.
    The stream is not half-closeable: :meth:`aclose` sends a CLOSE frame (with a code
    and reason) and closes the transport; the peer's ``receive_some`` then returns
    ``b""`` and the reason is in its :attr:`close_received`.

    ``static_private`` is this side's X25519 static key (fresh random bytes if omitted;
    the member identity is the Ed25519 ``identity``, bound to the session by signature).

    ``frame_timeout`` (seconds, None for none): a frame whose first bytes arrived must
    be whole within it, or ``receive_some`` raises :class:`trio.BrokenResourceError`
    whose cause is a ``RemoteProtocolError`` with code ``TRUNCATED`` (a frame cut short,
    like one cut by the end of the stream: a frozen peer or link looks the same).
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        *,
        role: Role,
        identity: Signer,
        static_private: bytes | None = None,
        application_payload: bytes = b"",
        expected_peer_id: bytes | None = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        rekey_interval: int = DEFAULT_REKEY_INTERVAL,
        prologue: bytes = PROLOGUE,
        frame_timeout: float | None = None,
    ) -> None:
        self.transport = transport
        """The underlying stream; only this object may use it."""
        self.role = role
        self._handshake = Handshake(
            role,
            identity=identity,
            static_private=os.urandom(32) if static_private is None else static_private,
            ephemeral_private=os.urandom(32),
            application_payload=application_payload,
            prologue=prologue,
            expected_peer_id=expected_peer_id,
        )
        self._handshake_timeout = handshake_timeout
        self._frame_timeout = frame_timeout
        self._frames = _FrameClock()
        self._close_timeout = close_timeout
        self._rekey_interval = rekey_interval
        self._handshake_lock = trio.Lock()
        self._handshake_error: BaseException | None = None
        self._result: HandshakeResult | None = None
        self._channel: Channel | None = None
        self._send_guard = _ConflictGuard("another task is using this SecureStream to send")
        self._receive_guard = _ConflictGuard("another task is receiving on this SecureStream")
        self._closed = False
        self._send_broken: BaseException | None = None
        self._receive_broken: BaseException | None = None
        self._plaintext = bytearray()
        self._close_received: CloseReceived | None = None
        #: Bytes written to / read from the transport (handshake and records included).
        self.wire_bytes_sent = 0
        self.wire_bytes_received = 0
        #: ``trio.current_time()`` when the last whole frame (or the handshake) arrived:
        #: a keepalive counts, a partial frame does not.
        self.last_frame_received = trio.current_time()

    # -- what the handshake established ------------------------------------------------

    @property
    def handshake_result(self) -> HandshakeResult:
        """Keys and peer identity; raises ``LocalProtocolError`` before the handshake."""
        if self._result is None:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                f"the {self.role.value}'s handshake is not complete",
                expected="a completed handshake",
                found=self._handshake.state.name,
            )
        return self._result

    @property
    def peer_id(self) -> bytes:
        """The peer's 32-byte Ed25519 member key (after the handshake)."""
        return self.handshake_result.peer_id

    @property
    def peer_static(self) -> bytes:
        """The peer's X25519 static key (after the handshake)."""
        return self.handshake_result.peer_static

    @property
    def peer_payload(self) -> bytes:
        """The application payload the peer sent in its identity message."""
        return self.handshake_result.peer_payload

    @property
    def handshake_hash(self) -> bytes:
        """The final Noise handshake hash: a session id both sides share."""
        return self.handshake_result.handshake_hash

    @property
    def close_received(self) -> CloseReceived | None:
        """The peer's CLOSE (code and reason), once ``receive_some`` has read it."""
        return self._close_received

    # -- handshake --------------------------------------------------------------------

    async def handshake(self) -> None:
        """Perform the handshake, if it was not done yet; safe to call from several tasks.

        Raises :class:`RemoteProtocolError` (typed, e.g. ``HANDSHAKE_FAILED``,
        ``WRONG_PROTOCOL_VERSION``, ``TIMEOUT``) if the peer misbehaves,
        :class:`trio.BrokenResourceError` if the transport breaks or an earlier attempt
        failed, :class:`trio.ClosedResourceError` if this stream was closed.
        """
        async with self._handshake_lock:
            if self._result is not None:
                return
            if self._closed:
                raise trio.ClosedResourceError("this SecureStream was closed")
            if self._handshake_error is not None:
                raise trio.BrokenResourceError(
                    "an earlier handshake attempt on this stream failed"
                ) from self._handshake_error
            try:
                await self._handshake_with_timeout()
            except BaseException as exc:  # a half-done handshake can never resume
                self._handshake_error = exc
                raise

    async def _handshake_with_timeout(self) -> None:
        timeout = self._handshake_timeout
        if timeout is None:
            await self._run_handshake()
            return
        with trio.move_on_after(timeout):
            await self._run_handshake()
        if self._result is None:
            raise RemoteProtocolError(
                ErrorCode.TIMEOUT,
                f"handshake as {self.role.value} did not complete within {timeout} seconds",
                expected=timeout,
                found=self._handshake.state.name,
            )

    async def _run_handshake(self) -> None:
        hs = self._handshake
        while True:
            event = hs.next_event()
            if event is SEND_NEEDED:
                message = hs.send_message()
                await self.transport.send_all(message)
                self.wire_bytes_sent += len(message)
            elif event is NEED_DATA:
                got = await self.transport.receive_some(_RECEIVE_SIZE)
                self.wire_bytes_received += len(got)
                hs.receive_data(got)
            elif isinstance(event, HandshakeComplete):
                result = event.result
                break
        channel = Channel.from_handshake(result, rekey_interval=self._rekey_interval)
        trailing = hs.trailing_data()
        if trailing:  # (b"" would mean the end of the stream)
            channel.receive_data(trailing)
            self._frames.feed(trailing, trio.current_time())
        if hs.peer_closed:
            channel.receive_data(b"")
        self._channel = channel
        self._result = result
        self.last_frame_received = trio.current_time()

    async def _ensure_handshake(self) -> Channel:
        if self._channel is None:
            try:
                await self.handshake()
            except ProtocolError as exc:
                raise trio.BrokenResourceError(f"secure handshake failed: {exc}") from exc
        assert self._channel is not None
        return self._channel

    # -- trio.abc.SendStream ----------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_guard:
            if self._closed:
                await trio.lowlevel.checkpoint()
                raise trio.ClosedResourceError("this SecureStream was closed")
            await trio.lowlevel.checkpoint_if_cancelled()
            channel = await self._ensure_handshake()
            if self._send_broken is not None:
                raise trio.BrokenResourceError(
                    "the sending side of this SecureStream is broken"
                ) from self._send_broken
            if not data:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return
            try:
                wire = channel.send_data(data)
            except LocalProtocolError as exc:  # the peer closed, or nonces ran out
                raise trio.BrokenResourceError(f"cannot send: {exc}") from exc
            try:
                await self.transport.send_all(wire)
                self.wire_bytes_sent += len(wire)
            except BaseException as exc:  # a frame may be cut short: nothing more can follow
                self._send_broken = exc
                raise

    async def send_keepalive(self) -> None:
        """Send one empty DATA frame (spec/05-channel.md 5.5.7): nothing for the
        application, but the peer's liveness timer starts again."""
        with self._send_guard:
            if self._closed:
                await trio.lowlevel.checkpoint()
                raise trio.ClosedResourceError("this SecureStream was closed")
            await trio.lowlevel.checkpoint_if_cancelled()
            channel = await self._ensure_handshake()
            if self._send_broken is not None:
                raise trio.BrokenResourceError(
                    "the sending side of this SecureStream is broken"
                ) from self._send_broken
            try:
                wire = channel.send_keepalive()
            except LocalProtocolError as exc:
                raise trio.BrokenResourceError(f"cannot send: {exc}") from exc
            try:
                await self.transport.send_all(wire)
                self.wire_bytes_sent += len(wire)
            except BaseException as exc:
                self._send_broken = exc
                raise

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_guard:
            if self._closed:
                await trio.lowlevel.checkpoint()
                raise trio.ClosedResourceError("this SecureStream was closed")
            if self._send_broken is not None:
                await trio.lowlevel.checkpoint()  # send_all would fail at once
                return
            await self.transport.wait_send_all_might_not_block()

    # -- trio.abc.ReceiveStream -------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError(f"max_bytes must be at least 1, found {max_bytes}")
        with self._receive_guard:
            if self._closed:
                await trio.lowlevel.checkpoint()
                raise trio.ClosedResourceError("this SecureStream was closed")
            await trio.lowlevel.checkpoint_if_cancelled()
            channel = await self._ensure_handshake()
            while True:
                if self._plaintext:
                    size = len(self._plaintext) if max_bytes is None else max_bytes
                    chunk = bytes(self._plaintext[:size])
                    del self._plaintext[:size]
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return chunk
                if self._close_received is not None:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return b""
                if self._receive_broken is not None:
                    raise trio.BrokenResourceError(
                        "the receiving side of this SecureStream is broken"
                    ) from self._receive_broken
                try:
                    event = channel.next_event()
                except RemoteProtocolError as exc:
                    self._receive_broken = exc
                    raise trio.BrokenResourceError(f"secure channel broken: {exc}") from exc
                if isinstance(event, DataReceived):
                    self._plaintext += event.data
                    self.last_frame_received = trio.current_time()
                elif isinstance(event, CloseReceived):
                    self._close_received = event
                    self.last_frame_received = trio.current_time()
                else:
                    got = await self._receive_wire()
                    self.wire_bytes_received += len(got)
                    channel.receive_data(got)
                    self._frames.feed(got, trio.current_time())

    async def _receive_wire(self) -> bytes | bytearray:
        """The next bytes from the transport, within ``frame_timeout`` of the first byte
        of a frame that is not whole yet."""
        started = self._frames.started
        if started is None or self._frame_timeout is None:
            return await self.transport.receive_some(_RECEIVE_SIZE)
        with trio.move_on_at(started + self._frame_timeout):
            return await self.transport.receive_some(_RECEIVE_SIZE)
        exc = RemoteProtocolError(
            ErrorCode.TRUNCATED,
            f"a frame was left unfinished for {self._frame_timeout} seconds",
            expected=self._frame_timeout,
        )
        self._receive_broken = exc
        raise trio.BrokenResourceError(f"secure channel broken: {exc}") from exc

    # -- trio.abc.AsyncResource -------------------------------------------------------

    async def aclose(self, *, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send CLOSE with ``code`` and ``reason`` (best effort), then close the transport.

        Idempotent. If the peer broke the protocol and ``code`` is ``NORMAL``, the CLOSE
        says ``PROTOCOL_ERROR`` with the error instead. Waits at most ``close_timeout``
        seconds for the CLOSE frame to go out; the transport is closed even if cancelled.
        """
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            await self._send_close_frame(code, reason)
        finally:
            await self.transport.aclose()

    async def _send_close_frame(self, code: int, reason: str) -> None:
        channel = self._channel
        if channel is None or self._send_broken is not None or self._send_guard.held:
            return
        if code == CloseCode.NORMAL and isinstance(self._receive_broken, P2PCommError):
            code = CloseCode.PROTOCOL_ERROR
            reason = str(self._receive_broken)
        reason = reason.encode("utf-8")[:MAX_CLOSE_REASON].decode("utf-8", errors="ignore")
        try:
            wire = channel.send_close(code, reason)
        except LocalProtocolError:  # nothing more may be sent (nonces, state)
            return
        with (
            self._send_guard,
            trio.move_on_after(self._close_timeout),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await self.transport.send_all(wire)


async def open_secure_stream(
    host: str | bytes,
    port: int,
    *,
    identity: Signer,
    expected_peer_id: bytes | None = None,
    application_payload: bytes = b"",
    static_private: bytes | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    rekey_interval: int = DEFAULT_REKEY_INTERVAL,
) -> SecureStream:
    """Connect over TCP (``trio.open_tcp_stream``) and complete the handshake as initiator.

    Raises the typed ``RemoteProtocolError`` of :meth:`SecureStream.handshake` if the
    peer fails it (e.g. ``HANDSHAKE_FAILED`` when ``expected_peer_id`` is not who
    answered), or ``OSError`` if the connection cannot be made.
    """
    transport = await trio.open_tcp_stream(host, port)
    stream = SecureStream(
        transport,
        role=Role.INITIATOR,
        identity=identity,
        static_private=static_private,
        application_payload=application_payload,
        expected_peer_id=expected_peer_id,
        handshake_timeout=handshake_timeout,
        rekey_interval=rekey_interval,
    )
    try:
        await stream.handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream


async def serve_secure(
    handler: Callable[[SecureStream], Awaitable[object]],
    port: int = 0,
    *,
    identity: Signer,
    host: str | bytes | None = "127.0.0.1",
    application_payload: bytes = b"",
    static_private: bytes | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    frame_timeout: float | None = DEFAULT_FRAME_TIMEOUT,
    max_connections: int | None = DEFAULT_LIMITS.max_connections,
    max_connections_per_address: int | None = DEFAULT_LIMITS.max_connections_per_address,
    max_handshakes: int | None = DEFAULT_LIMITS.max_handshakes,
    max_handshakes_per_address: int | None = DEFAULT_LIMITS.max_handshakes_per_address,
    handshake_rate: float | None = DEFAULT_LIMITS.handshake_rate,
    handshake_burst: int = DEFAULT_LIMITS.handshake_burst,
    on_refused: Callable[[Refusal, str], object] | None = None,
    rekey_interval: int = DEFAULT_REKEY_INTERVAL,
    handler_nursery: trio.Nursery | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept TCP connections (``trio.serve_tcp``) and call ``handler`` with each
    :class:`SecureStream` whose handshake (as responder) succeeded.

    Start it with ``listeners = await nursery.start(serve_secure, handler, 0, ...)``;
    ``listeners[0].socket.getsockname()`` gives the bound port. A connection whose
    handshake fails (typed protocol error, timeout, broken transport) is logged at DEBUG
    on ``p2pcomm.net.transport`` and dropped; the server keeps accepting. The stream is
    closed when ``handler`` returns. Exceptions from ``handler`` propagate, as with
    ``trio.serve_tcp``.

    Admission (:mod:`p2pcomm.net.admission`, spec/05-channel.md 5.6.1): before reading a
    byte, a connection is refused (closed, nothing sent) when ``max_connections``
    accepted connections are open (handshaking, or with ``handler`` running), or
    ``max_connections_per_address`` from its address; when ``max_handshakes``
    handshakes are in progress, or ``max_handshakes_per_address`` from its address; or
    when its address started handshakes faster than ``handshake_rate`` a second (up to
    ``handshake_burst`` at once). An IPv6 address counts by its /64. ``None`` lifts a
    limit. Each refusal is logged at DEBUG (``refused <reason>: ...``, no traceback) and
    reported to ``on_refused(reason, host)`` if given. A handshake must complete within
    ``handshake_timeout`` seconds and, once established, a frame within
    ``frame_timeout`` seconds of its first byte (:class:`SecureStream`).
    """
    admission = Admission(
        AdmissionLimits(
            max_connections=max_connections,
            max_connections_per_address=max_connections_per_address,
            max_handshakes=max_handshakes,
            max_handshakes_per_address=max_handshakes_per_address,
            handshake_rate=handshake_rate,
            handshake_burst=handshake_burst,
        )
    )

    async def accept(transport: trio.SocketStream) -> None:
        peer = _peer_address(transport)
        ticket = admission.admit(peer, trio.current_time())
        if isinstance(ticket, Refusal):
            logger.debug("refused %s: connection from %s", ticket.value, peer)
            await trio.aclose_forcefully(transport)
            if on_refused is not None:
                on_refused(ticket, peer)
            return
        try:
            stream = SecureStream(
                transport,
                role=Role.RESPONDER,
                identity=identity,
                static_private=static_private,
                application_payload=application_payload,
                handshake_timeout=handshake_timeout,
                rekey_interval=rekey_interval,
                frame_timeout=frame_timeout,
            )
            try:
                await stream.handshake()
            except (P2PCommError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                # The peer's doing (or its link's): DEBUG, with the typed error attached.
                logger.debug("secure handshake from %s failed: %s", peer, _why(exc), exc_info=exc)
                await trio.aclose_forcefully(stream)
                return
            finally:
                ticket.handshake_done()
            async with stream:
                await handler(stream)
        finally:
            ticket.close()

    await trio.serve_tcp(
        accept, port, host=host, handler_nursery=handler_nursery, task_status=task_status
    )


def _why(exc: BaseException) -> str:
    """What failed, in one line: the typed error under a broken stream if there is one."""
    cause = exc.__cause__
    if isinstance(exc, trio.BrokenResourceError) and isinstance(cause, P2PCommError):
        exc = cause
    if isinstance(exc, P2PCommError):
        return f"{exc.code.value}: {exc.message}"
    return str(exc) or type(exc).__name__


def _peer_address(transport: trio.SocketStream) -> str:
    """The peer's host (IP address) of an accepted connection; "" if it is gone."""
    try:
        name = transport.socket.getpeername()
    except OSError:
        return ""
    return str(name[0]) if isinstance(name, tuple) else str(name)
