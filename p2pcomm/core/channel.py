"""The p2pcomm record layer: encrypted frames after the handshake (spec/05-channel.md).

Theory of operation
===================

A :class:`Channel` owns the two Noise cipher states a finished
:class:`~p2pcomm.core.handshake.Handshake` produced: one encrypts what this side sends,
the other decrypts what the peer sends. The two directions are independent: each has its
own key, nonce and rekey schedule, and neither side ever waits for the other.

On the wire every record is one *frame*::

    u16 big-endian length L || ciphertext (L bytes)        17 <= L <= max_frame_size

and the ciphertext is ``ChaCha20-Poly1305(k, n, ad=b"", type || body)`` with the Noise
nonce ``n`` of that direction (a counter, never sent). The first plaintext byte is the
frame type:

* ``DATA`` (0x00): ``body`` is application bytes. :meth:`Channel.send_data` splits a
  large ``send`` into as many frames as needed (it never refuses on size); the receiver
  reports each frame as one :class:`DataReceived`. Frame boundaries carry no meaning.
* ``CLOSE`` (0x01): ``body`` is ``u16 code || utf-8 reason``. It is the last frame a
  side sends. The peer reports it as :class:`CloseReceived`; any byte after it is an error.
* ``REKEY`` (0x02): empty ``body``. After sending it the sender applies Noise ``REKEY``
  to its sending key; after decrypting it the receiver does the same to its receiving
  key. A sender inserts one automatically as the ``rekey_interval``-th frame under every
  key, so each key encrypts at most ``rekey_interval`` frames. The position of the switch
  is explicit in the stream, so both sides agree on it deterministically even if they are
  configured with different intervals.

Rules and invariants:

* Sans-IO: ``send_*`` return the bytes to write; ``receive_data`` buffers bytes read
  (``b""`` is the end of the stream); ``next_event`` parses one event at a time.
* A declared length is checked before the body is waited for: more than
  ``max_frame_size`` is ``FRAME_TOO_LARGE``, less than a tag plus a type byte is
  ``MALFORMED``. A failed authentication is ``DECRYPT_FAILED``. Any such
  :class:`RemoteProtocolError` moves the channel to ``FAILED`` for good; from there the
  only thing still allowed is one CLOSE frame telling the peer why.
* Nonces are never reused and ``2**64 - 1`` is never used to encrypt (Noise). DATA frames
  stop two nonces earlier, so that a REKEY and a CLOSE always remain possible; sending
  more is refused *before* anything is encrypted (``OUT_OF_RANGE``), leaving the channel
  usable for ``send_close``.
* The end of the stream without a CLOSE frame is an error (``CLOSED``, or ``TRUNCATED``
  inside a frame), so a truncation by an attacker is never mistaken for a clean end.
* The channel does not know about sockets, time, or the handshake's identities.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, TypeAlias

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .buffer import MAX_FRAME_LENGTH, ReceiveBuffer, frame
from .handshake import NEED_DATA, HandshakeResult, Pending
from .noise import MAX_NONCE, TAG_LEN, CipherState

__all__ = [
    "APPLICATION_CLOSE_CODES",
    "DEFAULT_REKEY_INTERVAL",
    "MAX_CLOSE_REASON",
    "MAX_FRAME_SIZE",
    "MAX_REKEY_INTERVAL",
    "MIN_FRAME_SIZE",
    "NEED_DATA",
    "Channel",
    "ChannelEvent",
    "ChannelState",
    "ChannelStatistics",
    "CloseCode",
    "CloseReceived",
    "DataReceived",
    "FrameType",
]

MAX_FRAME_SIZE: Final = MAX_FRAME_LENGTH
"""Largest ciphertext of one frame: 65535 bytes, i.e. 65519 bytes of plaintext."""

MAX_CLOSE_REASON: Final = 1024
"""Largest utf-8 reason text of a CLOSE frame, in bytes."""

MIN_FRAME_SIZE: Final = TAG_LEN + 1 + 2 + MAX_CLOSE_REASON
"""Smallest ``max_frame_size`` a channel accepts: a CLOSE with the longest reason must fit."""

MAX_REKEY_INTERVAL: Final = 2**16
"""Most frames a sender may encrypt under one key, its REKEY frame included."""

DEFAULT_REKEY_INTERVAL: Final = MAX_REKEY_INTERVAL
"""Frames encrypted under one key by default (the last of them being the REKEY frame)."""

_MIN_CIPHERTEXT: Final = TAG_LEN + 1
_LAST_DATA_NONCE: Final = MAX_NONCE - 3  # MAX_NONCE - 2 and - 1 kept for REKEY + CLOSE


class FrameType(enum.IntEnum):
    """The first plaintext byte of every frame."""

    #: Application bytes.
    DATA = 0x00
    #: ``u16 code || utf-8 reason``; the sender's last frame.
    CLOSE = 0x01
    #: Empty; the sender's next frame uses the rekeyed key.
    REKEY = 0x02


class CloseCode(enum.IntEnum):
    """Well-known CLOSE codes. Codes from 0x8000 up are free for applications; a receiver
    reports unknown codes as plain integers."""

    #: The application is done with the channel.
    NORMAL = 0
    #: The node is shutting down.
    GOING_AWAY = 1
    #: The peer broke the protocol; the reason text starts with the ``ErrorCode`` value.
    PROTOCOL_ERROR = 2
    #: The peer was too slow.
    TIMEOUT = 3
    #: This side failed for reasons of its own.
    INTERNAL_ERROR = 4


APPLICATION_CLOSE_CODES: Final = range(0x8000, 0x10000)


class ChannelState(enum.Enum):
    """Where a :class:`Channel` is; sending and receiving close independently."""

    #: Both directions carry data.
    OPEN = "open"
    #: We sent CLOSE and may send nothing more; the peer's frames are still read.
    CLOSE_SENT = "close-sent"
    #: The peer sent CLOSE; we may only answer with our own CLOSE.
    CLOSE_RECEIVED = "close-received"
    #: Both sides sent CLOSE. Terminal.
    CLOSED = "closed"
    #: The peer broke the protocol (a ``RemoteProtocolError`` was raised). Terminal:
    #: nothing more is read, and the only frame that may still be sent is one CLOSE
    #: telling the peer why.
    FAILED = "failed"


class _Action(enum.Enum):
    SEND_DATA = "send_data"
    SEND_CLOSE = "send_close"
    RECEIVE_DATA = "receive DATA"
    RECEIVE_CLOSE = "receive CLOSE"


#: The one transition table. A missing (state, action) pair is not allowed.
_TRANSITIONS: Final[dict[tuple[ChannelState, _Action], ChannelState]] = {
    (ChannelState.OPEN, _Action.SEND_DATA): ChannelState.OPEN,
    (ChannelState.OPEN, _Action.SEND_CLOSE): ChannelState.CLOSE_SENT,
    (ChannelState.OPEN, _Action.RECEIVE_DATA): ChannelState.OPEN,
    (ChannelState.OPEN, _Action.RECEIVE_CLOSE): ChannelState.CLOSE_RECEIVED,
    (ChannelState.CLOSE_SENT, _Action.RECEIVE_DATA): ChannelState.CLOSE_SENT,
    (ChannelState.CLOSE_SENT, _Action.RECEIVE_CLOSE): ChannelState.CLOSED,
    (ChannelState.CLOSE_RECEIVED, _Action.SEND_CLOSE): ChannelState.CLOSED,
    (ChannelState.FAILED, _Action.SEND_CLOSE): ChannelState.FAILED,  # at most once
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived:
    """One DATA frame's application bytes (possibly empty)."""

    data: bytes
    """The bytes, in order; frame boundaries have no meaning to the application."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseReceived:
    """The peer closed the channel cleanly. Returned again by every later ``next_event()``."""

    code: int
    """A :class:`CloseCode` value when known, else the raw ``u16``."""
    reason: str
    """Human-readable reason (may be empty)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStatistics:
    """A snapshot of a channel's counters."""

    frames_sent: int
    """Frames sent, REKEY frames included."""
    frames_received: int
    """Frames received and authenticated, REKEY frames included."""
    rekeys_sent: int
    """Times the sending key was rekeyed."""
    rekeys_received: int
    """Times the receiving key was rekeyed."""
    send_nonce: int
    """Nonce of the next frame sent."""
    receive_nonce: int
    """Nonce of the next frame expected."""


ChannelEvent: TypeAlias = DataReceived | CloseReceived | Pending


class Channel:
    """One side of an established p2pcomm channel, sans-IO.

    ``send_cipher``/``recv_cipher`` come from :class:`~p2pcomm.core.handshake.HandshakeResult`
    (see :meth:`from_handshake`). ``rekey_interval`` (2 to 65536) is this side's sending
    policy; ``max_frame_size`` bounds both the frames this side sends and those it accepts.
    Both sides of a connection must use the same ``max_frame_size``; the protocol default
    is :data:`MAX_FRAME_SIZE`.
    """

    __slots__ = (
        "_buffer",
        "_close_sent",
        "_frames_received",
        "_frames_sent",
        "_max_frame_size",
        "_peer_close",
        "_recv",
        "_rekey_interval",
        "_rekeys_received",
        "_rekeys_sent",
        "_send",
        "_sent_under_key",
        "_state",
    )

    def __init__(
        self,
        *,
        send_cipher: CipherState,
        recv_cipher: CipherState,
        rekey_interval: int = DEFAULT_REKEY_INTERVAL,
        max_frame_size: int = MAX_FRAME_SIZE,
    ) -> None:
        if not send_cipher.has_key() or not recv_cipher.has_key():
            raise LocalProtocolError(ErrorCode.BAD_STATE, "channel cipher states must have keys")
        if not 2 <= rekey_interval <= MAX_REKEY_INTERVAL:
            raise LocalProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"rekey interval must be 2..{MAX_REKEY_INTERVAL} frames, found {rekey_interval}",
                expected=f"2..{MAX_REKEY_INTERVAL}",
                found=rekey_interval,
            )
        if not MIN_FRAME_SIZE <= max_frame_size <= MAX_FRAME_SIZE:
            raise LocalProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"max frame size must be in {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE}, "
                f"found {max_frame_size}",
                expected=f"{MIN_FRAME_SIZE}..{MAX_FRAME_SIZE}",
                found=max_frame_size,
            )
        self._send = send_cipher
        self._recv = recv_cipher
        self._rekey_interval = rekey_interval
        self._max_frame_size = max_frame_size
        self._buffer = ReceiveBuffer()
        self._state = ChannelState.OPEN
        self._peer_close: CloseReceived | None = None
        self._close_sent = False
        self._sent_under_key = 0
        self._frames_sent = 0
        self._frames_received = 0
        self._rekeys_sent = 0
        self._rekeys_received = 0

    @classmethod
    def from_handshake(
        cls,
        result: HandshakeResult,
        *,
        rekey_interval: int = DEFAULT_REKEY_INTERVAL,
        max_frame_size: int = MAX_FRAME_SIZE,
    ) -> Channel:
        """The channel that continues the handshake ``result`` (it takes the ciphers over)."""
        return cls(
            send_cipher=result.send_cipher,
            recv_cipher=result.recv_cipher,
            rekey_interval=rekey_interval,
            max_frame_size=max_frame_size,
        )

    def __repr__(self) -> str:
        return (
            f"<Channel {self._state.name} sent={self._frames_sent} "
            f"received={self._frames_received}>"
        )

    @property
    def state(self) -> ChannelState:
        return self._state

    @property
    def max_data_per_frame(self) -> int:
        """Application bytes one DATA frame carries at most (65518 by default)."""
        return self._max_frame_size - TAG_LEN - 1

    @property
    def close_received(self) -> CloseReceived | None:
        """The peer's CLOSE, once read."""
        return self._peer_close

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            frames_sent=self._frames_sent,
            frames_received=self._frames_received,
            rekeys_sent=self._rekeys_sent,
            rekeys_received=self._rekeys_received,
            send_nonce=self._send.nonce,
            receive_nonce=self._recv.nonce,
        )

    # -- sending -------------------------------------------------------------------

    def send_data(self, data: bytes | bytearray | memoryview) -> bytes:
        """Encrypt ``data`` into as many DATA frames as needed; returns the wire bytes.

        ``b""`` gives ``b""`` (no frame). Allowed in ``OPEN`` only. Raises
        ``LocalProtocolError(OUT_OF_RANGE)`` without sending anything if the frames would
        run past the last data nonce.
        """
        self._check(_Action.SEND_DATA)
        view = memoryview(data).cast("B")
        if not view:
            return b""
        step = self.max_data_per_frame
        pieces = [bytes(view[i : i + step]) for i in range(0, len(view), step)]
        self._reserve(len(pieces), last_nonce=_LAST_DATA_NONCE)
        out = bytearray()
        for piece in pieces:
            self._seal(out, FrameType.DATA, piece)
        return bytes(out)

    def send_keepalive(self) -> bytes:
        """One empty DATA frame (5.5.7): it carries no application bytes and tells the
        peer that this side is alive. Allowed in ``OPEN`` only."""
        self._check(_Action.SEND_DATA)
        self._reserve(1, last_nonce=_LAST_DATA_NONCE)
        out = bytearray()
        self._seal(out, FrameType.DATA, b"")
        return bytes(out)

    def send_close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bytes:
        """The CLOSE frame with ``code`` (``u16``) and ``reason``; this side's last frame.

        Allowed once, in ``OPEN``, ``CLOSE_RECEIVED`` or ``FAILED`` (to say why).
        """
        self._check(_Action.SEND_CLOSE)
        if self._close_sent:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                f"send_close() called a second time, in channel state {self._state.name}",
                found=self._state.name,
            )
        if not 0 <= code <= 0xFFFF:
            raise LocalProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"close code {code} does not fit in a u16",
                expected="0..65535",
                found=code,
            )
        text = reason.encode("utf-8")
        if len(text) > MAX_CLOSE_REASON:
            raise LocalProtocolError(
                ErrorCode.TOO_LARGE,
                f"close reason of {len(text)} utf-8 bytes exceeds {MAX_CLOSE_REASON}",
                expected=MAX_CLOSE_REASON,
                found=len(text),
            )
        self._reserve(1, last_nonce=MAX_NONCE - 1)
        out = bytearray()
        self._seal(out, FrameType.CLOSE, int(code).to_bytes(2, "big") + text)
        self._close_sent = True
        self._state = _TRANSITIONS[(self._state, _Action.SEND_CLOSE)]
        return bytes(out)

    # -- receiving -----------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the peer; ``b""`` marks the end of the stream."""
        if self._state is ChannelState.FAILED:
            raise self._illegal("receive_data")
        if self._buffer.eof and data:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                f"receive_data() got {len(data)} bytes after the end of the stream",
                found=len(data),
            )
        self._buffer.feed(data)

    def next_event(self) -> ChannelEvent:
        """The next :class:`DataReceived` or :class:`CloseReceived`, or ``NEED_DATA``.

        REKEY frames are handled here and never reported.
        """
        if self._state is ChannelState.FAILED:
            raise self._illegal("next_event")
        try:
            return self._next_event()
        except RemoteProtocolError:
            self._state = ChannelState.FAILED
            raise

    # -- internals -----------------------------------------------------------------

    def _illegal(self, method: str) -> LocalProtocolError:
        allowed = sorted({s.name for (s, a) in _TRANSITIONS if a.value == method})
        return LocalProtocolError(
            ErrorCode.BAD_STATE,
            f"{method}() is not allowed in channel state {self._state.name}",
            expected=" or ".join(allowed) if allowed else "a state before FAILED",
            found=self._state.name,
        )

    def _check(self, action: _Action) -> None:
        if (self._state, action) not in _TRANSITIONS:
            raise self._illegal(action.value)

    def _nonces_needed(self, frames: int) -> int:
        under_key = self._sent_under_key
        needed = 0
        for _ in range(frames):
            if under_key == self._rekey_interval - 1:
                needed += 1
                under_key = 0
            needed += 1
            under_key += 1
        return needed

    def _reserve(self, frames: int, *, last_nonce: int) -> None:
        needed = self._nonces_needed(frames)
        if self._send.nonce + needed - 1 > last_nonce:
            raise LocalProtocolError(
                ErrorCode.OUT_OF_RANGE,
                f"send nonce space exhausted: {needed} frames from nonce {self._send.nonce} "
                f"would pass nonce {last_nonce}; close the channel and handshake again",
                expected=f"<= {last_nonce}",
                found=self._send.nonce + needed - 1,
            )

    def _seal(self, out: bytearray, frame_type: FrameType, body: bytes) -> None:
        if self._sent_under_key == self._rekey_interval - 1:
            out += frame(self._send.encrypt_with_ad(b"", bytes([FrameType.REKEY])))
            self._send.rekey()
            self._sent_under_key = 0
            self._frames_sent += 1
            self._rekeys_sent += 1
        out += frame(self._send.encrypt_with_ad(b"", bytes([frame_type]) + body))
        self._sent_under_key += 1
        self._frames_sent += 1

    def _need_data(self) -> Pending:
        buffer = self._buffer
        if not buffer.eof:
            return NEED_DATA
        if buffer:
            raise RemoteProtocolError(
                ErrorCode.TRUNCATED,
                f"connection ended inside a frame ({len(buffer)} bytes of it received)",
                found=len(buffer),
            )
        raise RemoteProtocolError(
            ErrorCode.CLOSED, "peer ended the connection without a close frame"
        )

    def _next_event(self) -> ChannelEvent:
        buffer = self._buffer
        while True:
            if self._peer_close is not None:
                if buffer:
                    raise RemoteProtocolError(
                        ErrorCode.UNEXPECTED_MESSAGE,
                        f"{len(buffer)} bytes arrived after the peer's close frame",
                        expected=0,
                        found=len(buffer),
                    )
                return self._peer_close
            length = buffer.peek_length_prefix()
            if length is None:
                return self._need_data()
            if length > self._max_frame_size:
                raise RemoteProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"frame declares {length} bytes, more than the {self._max_frame_size} allowed",
                    expected=self._max_frame_size,
                    found=length,
                )
            if length < _MIN_CIPHERTEXT:
                raise RemoteProtocolError(
                    ErrorCode.MALFORMED,
                    f"frame declares {length} bytes, fewer than the {_MIN_CIPHERTEXT} of a "
                    "tag and a type byte",
                    expected=_MIN_CIPHERTEXT,
                    found=length,
                )
            ciphertext = buffer.consume_frame()
            if ciphertext is None:
                return self._need_data()
            plaintext = self._recv.decrypt_with_ad(b"", ciphertext)
            self._frames_received += 1
            frame_type, body = plaintext[0], plaintext[1:]
            if frame_type == FrameType.DATA:
                self._state = _TRANSITIONS[(self._state, _Action.RECEIVE_DATA)]
                return DataReceived(data=body)
            if frame_type == FrameType.REKEY:
                if body:
                    raise RemoteProtocolError(
                        ErrorCode.MALFORMED,
                        f"rekey frame carries {len(body)} bytes, expected none",
                        expected=0,
                        found=len(body),
                    )
                self._recv.rekey()
                self._rekeys_received += 1
                continue
            if frame_type == FrameType.CLOSE:
                event = self._parse_close(body)
                self._state = _TRANSITIONS[(self._state, _Action.RECEIVE_CLOSE)]
                self._peer_close = event
                return event
            raise RemoteProtocolError(
                ErrorCode.MALFORMED,
                f"unknown frame type 0x{frame_type:02x}",
                expected="0x00 (DATA), 0x01 (CLOSE) or 0x02 (REKEY)",
                found=frame_type,
            )

    @staticmethod
    def _parse_close(body: bytes) -> CloseReceived:
        if len(body) < 2:
            raise RemoteProtocolError(
                ErrorCode.MALFORMED,
                f"close frame body of {len(body)} bytes has no u16 code",
                expected=">= 2",
                found=len(body),
            )
        if len(body) - 2 > MAX_CLOSE_REASON:
            raise RemoteProtocolError(
                ErrorCode.TOO_LARGE,
                f"close reason of {len(body) - 2} bytes exceeds {MAX_CLOSE_REASON}",
                expected=MAX_CLOSE_REASON,
                found=len(body) - 2,
            )
        code = int.from_bytes(body[:2], "big")
        try:
            reason = body[2:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(
                ErrorCode.MALFORMED,
                f"close reason is not valid utf-8 at byte {exc.start}",
                found=body[2:].hex(),
            ) from None
        try:
            return CloseReceived(code=CloseCode(code), reason=reason)
        except ValueError:
            return CloseReceived(code=code, reason=reason)
