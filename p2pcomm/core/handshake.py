"""The p2pcomm handshake: Noise XX with Ed25519 member identities (spec/05-channel.md 5.4).

Theory of operation
===================

This module is p2pcomm's identity handshake. It runs on top of plain Noise XX
(:mod:`p2pcomm.core.noise`, which knows nothing about p2pcomm and is tested against the
published Noise vectors) and adds:

* the prologue ``b"p2pcomm/1 Noise_XX_25519_ChaChaPoly_BLAKE2b"``, which binds the
  protocol name and version into the handshake hash ``h``;
* a one-byte protocol version as the (cleartext) payload of message 1, so that a peer of
  another version gets ``WRONG_PROTOCOL_VERSION`` instead of an opaque failure;
* an *identity payload* in messages 2 and 3: the sender's Ed25519 member key and an
  Ed25519 signature over ``namespace("p2pcomm/1/handshake") || role || h``, where ``h``
  is the handshake hash right before the payload is encrypted. ``h`` already covers both
  ephemerals, the sender's X25519 static and every earlier byte of the session, so the
  signature says "this member speaks in *this* session with *this* static key" and
  cannot be replayed into, or spliced between, other sessions;
* the wire framing: each handshake message is sent as ``u16 big-endian length || body``,
  the same framing as the records that follow (see :mod:`p2pcomm.core.channel`).

:class:`Handshake` is a sans-IO state machine in the h11 style: the caller feeds bytes
with :meth:`Handshake.receive_data`, asks what happened with
:meth:`Handshake.next_event`, and writes whatever :meth:`Handshake.send_message` returns.

Rules and invariants:

* The machine never performs I/O and never makes up randomness: the caller passes the
  X25519 static and ephemeral private keys in (the trio layer uses ``os.urandom``).
* Every problem caused by the peer's bytes raises :class:`RemoteProtocolError` with a
  specific :class:`ErrorCode` and moves the machine to :attr:`State.FAILED`, from which
  every call raises :class:`LocalProtocolError`. Calling a method in a state where it is
  not allowed raises :class:`LocalProtocolError` naming the role and state, and changes
  nothing.
* A declared message length is checked against the limits of the message expected
  before its body is waited for, so a hostile length costs at most 65535 bytes of buffer.
* Bytes that follow a message are never judged by when they arrived: they are read, in
  order, as whatever comes next (the peer's next handshake message, or, after the final
  message, the channel's first records, handed over by :meth:`Handshake.trailing_data`).
  So the same bytes give the same outcome however the stream splits them.

The Noise names (:class:`CipherState`, :class:`NoiseXX`, ...) are re-exported here for
code that imported them from this module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeAlias

from ..errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .buffer import ReceiveBuffer, frame
from .crypto import ed25519_verify, namespace
from .noise import (
    DH_LEN,
    KEY_LEN,
    MAX_MESSAGE_LEN,
    MAX_NONCE,
    TAG_LEN,
    CipherState,
    NoiseHash,
    NoiseXX,
    SymmetricState,
)

__all__ = [
    "DH_LEN",
    "HANDSHAKE_NAMESPACE",
    "IDENTITY_PAYLOAD_SIZE",
    "KEY_LEN",
    "MAX_APPLICATION_PAYLOAD",
    "MAX_MESSAGE_LEN",
    "MAX_NONCE",
    "MESSAGE_1_SIZE",
    "MESSAGE_2_MIN_SIZE",
    "MESSAGE_3_MIN_SIZE",
    "NEED_DATA",
    "PROLOGUE",
    "PROTOCOL_VERSION",
    "SEND_NEEDED",
    "TAG_LEN",
    "CipherState",
    "Handshake",
    "HandshakeComplete",
    "HandshakeEvent",
    "HandshakeResult",
    "HelloReceived",
    "NoiseHash",
    "NoiseXX",
    "Pending",
    "PeerAuthenticated",
    "Role",
    "Signer",
    "State",
    "SymmetricState",
    "identity_signable",
]

PROTOCOL_VERSION: Final = 1
"""The p2pcomm wire protocol version this module speaks (the ``1`` of ``p2pcomm/1``)."""

PROLOGUE: Final = b"p2pcomm/1 Noise_XX_25519_ChaChaPoly_BLAKE2b"
"""Mixed into ``h`` before the first message: binds protocol name and version."""

HANDSHAKE_NAMESPACE: Final = "p2pcomm/1/handshake"
"""Signing namespace label of the identity signature (see ``crypto.namespace``)."""

IDENTITY_PAYLOAD_VERSION: Final = 1
"""First byte of the identity payload of messages 2 and 3."""

MAX_APPLICATION_PAYLOAD: Final = 4096
"""Largest opaque application payload carried after the identity in messages 2 and 3."""

IDENTITY_PAYLOAD_SIZE: Final = 1 + 32 + 64
"""Version byte, Ed25519 public key, Ed25519 signature (before any application bytes)."""

MESSAGE_1_SIZE: Final = DH_LEN + 1
"""``e`` and the cleartext protocol-version byte."""

MESSAGE_2_MIN_SIZE: Final = DH_LEN + (DH_LEN + TAG_LEN) + (IDENTITY_PAYLOAD_SIZE + TAG_LEN)
"""``e``, encrypted ``s``, encrypted identity payload without application bytes (193)."""

MESSAGE_3_MIN_SIZE: Final = (DH_LEN + TAG_LEN) + (IDENTITY_PAYLOAD_SIZE + TAG_LEN)
"""Encrypted ``s``, encrypted identity payload without application bytes (161)."""

_ROLE_BYTE: Final = {"initiator": b"I", "responder": b"R"}


class Signer(Protocol):
    """An Ed25519 member identity: ``crypto.Ed25519Signer`` is one."""

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key (the member id)."""
        ...

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature of ``message``."""
        ...


class Role(enum.Enum):
    """Which side of the handshake this is."""

    #: Opened the connection; writes messages 1 and 3.
    INITIATOR = "initiator"
    #: Accepted the connection; writes message 2.
    RESPONDER = "responder"


class State(enum.Enum):
    """Where a :class:`Handshake` is. Each message is written by one side and read by the other."""

    #: Initiator: message 1 (``-> e``, version byte) is ours to send.
    SEND_MESSAGE_1 = "send-message-1"
    #: Responder: waiting for message 1.
    WAIT_MESSAGE_1 = "wait-message-1"
    #: Responder: message 2 (``<- e, ee, s, es``, identity) is ours to send.
    SEND_MESSAGE_2 = "send-message-2"
    #: Initiator: waiting for message 2.
    WAIT_MESSAGE_2 = "wait-message-2"
    #: Initiator: message 3 (``-> s, se``, identity) is ours to send.
    SEND_MESSAGE_3 = "send-message-3"
    #: Responder: waiting for message 3.
    WAIT_MESSAGE_3 = "wait-message-3"
    #: Both identities verified, keys split; :attr:`Handshake.result` is available.
    DONE = "done"
    #: The peer broke the protocol; the connection must be closed. Terminal.
    FAILED = "failed"


_INITIAL_STATE: Final = {Role.INITIATOR: State.SEND_MESSAGE_1, Role.RESPONDER: State.WAIT_MESSAGE_1}

#: The one transition table: the state after the single action allowed in a state
#: (sending in SEND_*, reading a whole message in WAIT_*). Any remote error -> FAILED.
_TRANSITIONS: Final[dict[tuple[Role, State], State]] = {
    (Role.INITIATOR, State.SEND_MESSAGE_1): State.WAIT_MESSAGE_2,
    (Role.INITIATOR, State.WAIT_MESSAGE_2): State.SEND_MESSAGE_3,
    (Role.INITIATOR, State.SEND_MESSAGE_3): State.DONE,
    (Role.RESPONDER, State.WAIT_MESSAGE_1): State.SEND_MESSAGE_2,
    (Role.RESPONDER, State.SEND_MESSAGE_2): State.WAIT_MESSAGE_3,
    (Role.RESPONDER, State.WAIT_MESSAGE_3): State.DONE,
}

_MESSAGE_NUMBER: Final = {
    State.SEND_MESSAGE_1: 1,
    State.WAIT_MESSAGE_1: 1,
    State.SEND_MESSAGE_2: 2,
    State.WAIT_MESSAGE_2: 2,
    State.SEND_MESSAGE_3: 3,
    State.WAIT_MESSAGE_3: 3,
}
_SENDING: Final = frozenset({State.SEND_MESSAGE_1, State.SEND_MESSAGE_2, State.SEND_MESSAGE_3})

#: (smallest, largest) body accepted for each message number.
_MESSAGE_LIMITS: Final = {
    1: (MESSAGE_1_SIZE, MESSAGE_1_SIZE),
    2: (MESSAGE_2_MIN_SIZE, MESSAGE_2_MIN_SIZE + MAX_APPLICATION_PAYLOAD),
    3: (MESSAGE_3_MIN_SIZE, MESSAGE_3_MIN_SIZE + MAX_APPLICATION_PAYLOAD),
}


class Pending(enum.Enum):
    """What :meth:`Handshake.next_event` returns when there is no new event."""

    #: Waiting for the peer: feed more bytes with ``receive_data``.
    NEED_DATA = "need-data"
    #: Our turn: write the bytes of ``send_message()`` to the peer.
    SEND_NEEDED = "send-needed"


NEED_DATA: Final = Pending.NEED_DATA
SEND_NEEDED: Final = Pending.SEND_NEEDED


@dataclass(frozen=True, slots=True, kw_only=True)
class HelloReceived:
    """The responder read message 1: a p2pcomm peer of our version wants a session."""

    protocol_version: int
    """The version byte of message 1 (always :data:`PROTOCOL_VERSION` when reported)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAuthenticated:
    """The peer's identity payload was read and its signature verified for this session."""

    peer_id: bytes
    """The peer's 32-byte Ed25519 member key."""
    peer_static: bytes
    """The peer's 32-byte X25519 static key, as authenticated by Noise."""
    application_payload: bytes
    """The opaque application bytes after the identity (possibly empty)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeResult:
    """Everything the handshake established; the channel takes over the cipher states."""

    role: Role
    """This side's role."""
    peer_id: bytes
    """The peer's 32-byte Ed25519 member key."""
    peer_static: bytes
    """The peer's 32-byte X25519 static key."""
    peer_payload: bytes
    """The peer's application payload (possibly empty)."""
    handshake_hash: bytes
    """The final Noise handshake hash ``h``: a unique, public session id (channel binding)."""
    send_cipher: CipherState = field(repr=False, compare=False)
    """Encrypts what this side sends (Noise c1 for the initiator, c2 for the responder)."""
    recv_cipher: CipherState = field(repr=False, compare=False)
    """Decrypts what the peer sends."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeComplete:
    """The handshake is over (returned by every ``next_event()`` call in ``DONE``)."""

    result: HandshakeResult
    """The session's keys and the peer's identity."""


HandshakeEvent: TypeAlias = HelloReceived | PeerAuthenticated | HandshakeComplete | Pending


def identity_signable(role: Role, handshake_hash: bytes) -> bytes:
    """The bytes an identity signature covers: ``namespace || role byte || h``.

    ``role`` is the role of the *signer*: ``b"R"`` in message 2, ``b"I"`` in message 3.
    """
    return namespace(HANDSHAKE_NAMESPACE) + _ROLE_BYTE[role.value] + handshake_hash


class Handshake:
    """One side of a p2pcomm handshake (spec/05-channel.md), sans-IO.

    Drive it like this, whatever the I/O::

        while True:
            event = hs.next_event()
            if event is SEND_NEEDED:
                write(hs.send_message())
            elif event is NEED_DATA:
                hs.receive_data(read())      # b"" when the peer closed the connection
            elif isinstance(event, HandshakeComplete):
                break                        # event.result has the keys and peer id
            # HelloReceived / PeerAuthenticated are informative

    ``static_private`` and ``ephemeral_private`` are 32 random bytes each, supplied by
    the caller; the ephemeral key must never be reused. ``expected_peer_id``, when set,
    makes the handshake fail unless the peer proves that Ed25519 key.
    """

    __slots__ = (
        "_application_payload",
        "_buffer",
        "_expected_peer_id",
        "_identity",
        "_noise",
        "_peer",
        "_result",
        "_state",
        "role",
    )

    def __init__(
        self,
        role: Role,
        *,
        identity: Signer,
        static_private: bytes,
        ephemeral_private: bytes,
        application_payload: bytes = b"",
        prologue: bytes = PROLOGUE,
        expected_peer_id: bytes | None = None,
    ) -> None:
        if len(identity.public_key) != 32:
            raise LocalProtocolError(
                ErrorCode.WRONG_LENGTH,
                f"identity public key must be 32 bytes, found {len(identity.public_key)}",
                expected=32,
                found=len(identity.public_key),
            )
        if len(application_payload) > MAX_APPLICATION_PAYLOAD:
            raise LocalProtocolError(
                ErrorCode.TOO_LARGE,
                f"application payload of {len(application_payload)} bytes exceeds "
                f"{MAX_APPLICATION_PAYLOAD}",
                expected=MAX_APPLICATION_PAYLOAD,
                found=len(application_payload),
            )
        if expected_peer_id is not None and len(expected_peer_id) != 32:
            raise LocalProtocolError(
                ErrorCode.WRONG_LENGTH,
                f"expected peer id must be 32 bytes, found {len(expected_peer_id)}",
                expected=32,
                found=len(expected_peer_id),
            )
        self.role: Final = role
        self._identity = identity
        self._application_payload = bytes(application_payload)
        self._expected_peer_id = expected_peer_id
        self._noise = NoiseXX(
            initiator=role is Role.INITIATOR,
            static_private=static_private,
            ephemeral_private=ephemeral_private,
            prologue=prologue,
        )
        self._buffer = ReceiveBuffer()
        self._state = _INITIAL_STATE[role]
        self._peer: PeerAuthenticated | None = None
        self._result: HandshakeResult | None = None

    def __repr__(self) -> str:
        return f"<Handshake {self.role.value} {self._state.name}>"

    @property
    def state(self) -> State:
        return self._state

    @property
    def result(self) -> HandshakeResult:
        """The outcome; only in state ``DONE``."""
        if self._result is None:
            raise self._illegal("result", "DONE")
        return self._result

    # -- driving -------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed the connection.

        Allowed until the handshake is ``DONE``; after that, bytes belong to the channel.
        """
        if self._state in (State.DONE, State.FAILED):
            raise self._illegal("receive_data", "any state before DONE")
        if self._buffer.eof and data:
            raise LocalProtocolError(
                ErrorCode.BAD_STATE,
                f"receive_data() got {len(data)} bytes after the end of the stream",
                found=len(data),
            )
        self._buffer.feed(data)

    def next_event(self) -> HandshakeEvent:
        """The next thing that happened, or a :class:`Pending` value saying what to do."""
        state = self._state
        if state is State.FAILED:
            raise self._illegal("next_event", "any state but FAILED")
        if state is State.DONE:
            return HandshakeComplete(result=self.result)
        if state in _SENDING:
            return SEND_NEEDED
        try:
            return self._read_message(_MESSAGE_NUMBER[state])
        except RemoteProtocolError:
            self._state = State.FAILED
            raise

    def send_message(self) -> bytes:
        """The next handshake message, framed for the wire; only in a ``SEND_*`` state.

        Raises ``RemoteProtocolError(HANDSHAKE_FAILED)`` (and moves to ``FAILED``) if a
        key the peer sent earlier turns out to be a low-order point.
        """
        state = self._state
        if state not in _SENDING:
            raise self._illegal("send_message", "SEND_MESSAGE_1, SEND_MESSAGE_2 or SEND_MESSAGE_3")
        try:
            if state is State.SEND_MESSAGE_1:
                body = self._noise.write_message(bytes([PROTOCOL_VERSION]))
            else:
                body = self._noise.write_message_with(self._identity_payload)
        except RemoteProtocolError:
            # Writing "ee" or "se" with a low-order key the peer sent earlier.
            self._state = State.FAILED
            raise
        self._advance()
        return frame(body)

    def trailing_data(self) -> bytes:
        """Bytes received after the final handshake message (channel records); ``DONE`` only.

        Returns them once; a second call returns ``b""``. If the peer had already closed
        the connection, the end of stream is not repeated here: the caller knows it fed it.
        """
        if self._state is not State.DONE:
            raise self._illegal("trailing_data", "DONE")
        return self._buffer.consume_all()

    @property
    def peer_closed(self) -> bool:
        """True if ``receive_data(b"")`` was called (useful with :meth:`trailing_data`)."""
        return self._buffer.eof

    # -- internals -----------------------------------------------------------------

    def _illegal(self, method: str, allowed: str) -> LocalProtocolError:
        return LocalProtocolError(
            ErrorCode.BAD_STATE,
            f"{method}() is not allowed for the {self.role.value} in state {self._state.name}",
            expected=allowed,
            found=self._state.name,
        )

    def _advance(self) -> None:
        self._state = _TRANSITIONS[(self.role, self._state)]
        if self._state is State.DONE:
            self._finish()

    def _need_data(self, number: int) -> Pending:
        if self._buffer.eof:
            raise RemoteProtocolError(
                ErrorCode.HANDSHAKE_FAILED,
                f"connection closed while waiting for handshake message {number} "
                f"({len(self._buffer)} bytes of it received)",
                found=len(self._buffer),
            )
        return NEED_DATA

    def _read_message(self, number: int) -> HandshakeEvent:
        buffer = self._buffer
        length = buffer.peek_length_prefix()
        if length is None:
            return self._need_data(number)
        smallest, largest = _MESSAGE_LIMITS[number]
        if length < smallest:
            raise RemoteProtocolError(
                ErrorCode.WRONG_LENGTH,
                f"handshake message {number} declares {length} bytes, fewer than the "
                f"{smallest} it needs",
                expected=smallest,
                found=length,
            )
        if number == 1:
            # The version byte is checked before the exact length, so that a later
            # version may lengthen message 1 and still get a clear answer from us.
            head = buffer.peek(2 + MESSAGE_1_SIZE)
            if len(head) < 2 + MESSAGE_1_SIZE:
                return self._need_data(number)
            version = head[2 + DH_LEN]
            if version != PROTOCOL_VERSION:
                raise RemoteProtocolError(
                    ErrorCode.WRONG_PROTOCOL_VERSION,
                    f"peer speaks p2pcomm/{version}, this side speaks p2pcomm/{PROTOCOL_VERSION}",
                    expected=PROTOCOL_VERSION,
                    found=version,
                )
            if length != MESSAGE_1_SIZE:
                raise RemoteProtocolError(
                    ErrorCode.WRONG_LENGTH,
                    f"handshake message 1 declares {length} bytes, expected {MESSAGE_1_SIZE}",
                    expected=MESSAGE_1_SIZE,
                    found=length,
                )
        elif length > largest:
            raise RemoteProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"handshake message {number} declares {length} bytes, more than the "
                f"{largest} allowed",
                expected=largest,
                found=length,
            )
        body = buffer.consume_frame()
        if body is None:
            return self._need_data(number)

        try:
            payload = self._noise.read_message(body)
        except RemoteProtocolError as exc:
            if exc.code is not ErrorCode.DECRYPT_FAILED:
                raise
            raise RemoteProtocolError(
                ErrorCode.HANDSHAKE_FAILED,
                f"handshake message {number} failed authentication "
                "(tampered with, or the peer uses a different prologue)",
                found=number,
            ) from exc

        event: HandshakeEvent
        if number == 1:
            event = HelloReceived(protocol_version=payload[0])
        else:
            signer_role = Role.RESPONDER if number == 2 else Role.INITIATOR
            event = self._verify_identity(payload, signer_role)
            self._peer = event
        # Bytes already buffered behind this message stay where they are: after our reply
        # they are read as the peer's next message (or, after message 2, handed to the
        # channel as records). A stream does not say when bytes arrived, so their timing
        # is never an error (spec 5.4.1).
        self._advance()
        return event

    def _identity_payload(self, handshake_hash: bytes) -> bytes:
        signature = self._identity.sign(identity_signable(self.role, handshake_hash))
        if len(signature) != 64:
            raise LocalProtocolError(
                ErrorCode.WRONG_LENGTH,
                f"identity signer returned a {len(signature)}-byte signature, expected 64",
                expected=64,
                found=len(signature),
            )
        return (
            bytes([IDENTITY_PAYLOAD_VERSION])
            + bytes(self._identity.public_key)
            + signature
            + self._application_payload
        )

    def _verify_identity(self, payload: bytes, signer_role: Role) -> PeerAuthenticated:
        if len(payload) < IDENTITY_PAYLOAD_SIZE:  # pragma: no cover - excluded by the limits
            raise RemoteProtocolError(
                ErrorCode.WRONG_LENGTH,
                f"identity payload of {len(payload)} bytes, expected at least "
                f"{IDENTITY_PAYLOAD_SIZE}",
                expected=IDENTITY_PAYLOAD_SIZE,
                found=len(payload),
            )
        version = payload[0]
        if version != IDENTITY_PAYLOAD_VERSION:
            raise RemoteProtocolError(
                ErrorCode.UNKNOWN_VERSION,
                f"identity payload version {version}, expected {IDENTITY_PAYLOAD_VERSION}",
                expected=IDENTITY_PAYLOAD_VERSION,
                found=version,
            )
        peer_id = payload[1:33]
        signature = payload[33:IDENTITY_PAYLOAD_SIZE]
        signable = identity_signable(signer_role, self._noise.payload_hash)
        if not ed25519_verify(peer_id, signable, signature):
            raise RemoteProtocolError(
                ErrorCode.HANDSHAKE_FAILED,
                f"identity signature of peer {peer_id.hex()} does not verify for this "
                "session's handshake hash",
                found=peer_id.hex(),
            )
        if self._expected_peer_id is not None and peer_id != self._expected_peer_id:
            raise RemoteProtocolError(
                ErrorCode.HANDSHAKE_FAILED,
                f"peer proved identity {peer_id.hex()}, expected {self._expected_peer_id.hex()}",
                expected=self._expected_peer_id.hex(),
                found=peer_id.hex(),
            )
        peer_static = self._noise.remote_static
        assert peer_static is not None  # XX reads the peer's s before its identity payload
        return PeerAuthenticated(
            peer_id=peer_id,
            peer_static=peer_static,
            application_payload=payload[IDENTITY_PAYLOAD_SIZE:],
        )

    def _finish(self) -> None:
        c1, c2 = self._noise.split()
        peer = self._peer
        assert peer is not None
        initiator = self.role is Role.INITIATOR
        self._result = HandshakeResult(
            role=self.role,
            peer_id=peer.peer_id,
            peer_static=peer.peer_static,
            peer_payload=peer.application_payload,
            handshake_hash=self._noise.handshake_hash,
            send_cipher=c1 if initiator else c2,
            recv_cipher=c2 if initiator else c1,
        )
