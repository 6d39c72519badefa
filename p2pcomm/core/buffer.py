"""A byte buffer for sans-IO protocol machines.

Bytes arrive from the network in arbitrary pieces; a machine ``feed``\\s them in as they
come and takes them out again only in whole units (``consume_exactly``, or a whole
length-prefixed frame with ``consume_frame``). Nothing is ever taken out partially: a
``None`` result means "not enough yet" and leaves the buffer untouched.

The buffer also remembers whether the peer has ended the stream (``feed(b"")``, the
h11 convention), so a machine can tell "wait for more" from "no more will come".

Standard library only.
"""

from __future__ import annotations

__all__ = ["LENGTH_PREFIX_SIZE", "MAX_FRAME_LENGTH", "ReceiveBuffer", "frame"]

LENGTH_PREFIX_SIZE = 2
"""Every frame on a p2pcomm connection starts with a big-endian ``u16`` length."""

MAX_FRAME_LENGTH = 0xFFFF
"""The largest body a ``u16`` length prefix can describe (65535 bytes)."""


def frame(body: bytes) -> bytes:
    """``u16`` big-endian length of ``body`` followed by ``body``.

    Raises ``ValueError`` when ``body`` is longer than :data:`MAX_FRAME_LENGTH`; callers
    check their own, tighter limits first and report them with a typed error.
    """
    if len(body) > MAX_FRAME_LENGTH:
        raise ValueError(f"frame body of {len(body)} bytes exceeds {MAX_FRAME_LENGTH}")
    return len(body).to_bytes(LENGTH_PREFIX_SIZE, "big") + body


class ReceiveBuffer:
    """Bytes received but not yet consumed, plus an end-of-stream flag."""

    __slots__ = ("_data", "_eof")

    def __init__(self) -> None:
        self._data = bytearray()
        self._eof = False

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __repr__(self) -> str:
        return f"<ReceiveBuffer {len(self._data)} bytes{' eof' if self._eof else ''}>"

    @property
    def eof(self) -> bool:
        """True once ``feed(b"")`` was called: the peer will send nothing more."""
        return self._eof

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; an empty ``data`` marks the end of the stream.

        Raises ``ValueError`` if non-empty data arrives after the end of the stream (that
        is a bug in the caller, not something a peer can cause).
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise ValueError("data fed after the end of the stream")
        self._data += data

    def consume_exactly(self, n: int) -> bytes | None:
        """Remove and return the first ``n`` bytes, or ``None`` (untouched) if fewer are held."""
        if n < 0:
            raise ValueError(f"cannot consume {n} bytes")
        if len(self._data) < n:
            return None
        out = bytes(self._data[:n])
        del self._data[:n]
        return out

    def consume_all(self) -> bytes:
        """Remove and return everything held (possibly ``b""``)."""
        out = bytes(self._data)
        self._data.clear()
        return out

    def peek(self, n: int) -> bytes:
        """The first ``min(n, len(self))`` bytes, without consuming them."""
        return bytes(self._data[:n])

    def peek_length_prefix(self) -> int | None:
        """The ``u16`` length at the front, or ``None`` if fewer than two bytes are held."""
        if len(self._data) < LENGTH_PREFIX_SIZE:
            return None
        return int.from_bytes(self._data[:LENGTH_PREFIX_SIZE], "big")

    def has_frame(self) -> bool:
        """True if a whole length-prefixed frame is held."""
        length = self.peek_length_prefix()
        return length is not None and len(self._data) >= LENGTH_PREFIX_SIZE + length

    def consume_frame(self) -> bytes | None:
        """Remove one whole length-prefixed frame and return its body, or ``None``.

        Callers that enforce a size limit call :meth:`peek_length_prefix` first, so that an
        oversized length is rejected before its body is waited for.
        """
        length = self.peek_length_prefix()
        if length is None or len(self._data) < LENGTH_PREFIX_SIZE + length:
            return None
        body = bytes(self._data[LENGTH_PREFIX_SIZE : LENGTH_PREFIX_SIZE + length])
        del self._data[: LENGTH_PREFIX_SIZE + length]
        return body
