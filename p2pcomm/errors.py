"""The typed error hierarchy of p2pcomm.

Every error the library raises for bad input is a :class:`P2PCommError` carrying a
closed :class:`ErrorCode`. Tests and applications match on the code, never on the
wording. Messages are lower-case and give what was expected and what was found.

The tree::

    P2PCommError
    ├── DecodeError          bytes that are not a canonical p2pcomm encoding
    ├── ValidationError      well-formed data that breaks a rule (signature, chain, ...)
    ├── IdentityError        identities, id text forms and key files
    ├── StoreError           the store cannot do what was asked
    ├── RefusedError         the group's rules would void what was asked (nothing written)
    ├── NotFoundError        a group, item or member named by the caller is not known
    ├── BundleError          a sneakernet bundle file is not one, or is damaged
    ├── ControlError         the local control connection to a running node failed
    ├── SealError            encrypted content or key material cannot be opened
    └── ProtocolError        (abstract) a session broke its protocol
        ├── LocalProtocolError   we were asked to do something the protocol forbids
        └── RemoteProtocolError  the peer sent something the protocol forbids

This module imports the standard library only.
"""

from __future__ import annotations

import enum

__all__ = [
    "BundleError",
    "ControlError",
    "DecodeError",
    "ErrorCode",
    "IdentityError",
    "LocalProtocolError",
    "NotFoundError",
    "P2PCommError",
    "ProtocolError",
    "RefusedError",
    "RemoteProtocolError",
    "SealError",
    "StoreError",
    "ValidationError",
]


class ErrorCode(enum.Enum):
    """The closed set of reasons an operation fails. Values are stable wire/text names."""

    # encoding (spec/01-encoding.md)
    TRUNCATED = "truncated"
    TRAILING_DATA = "trailing-data"
    MALFORMED = "malformed"
    NOT_CANONICAL = "not-canonical"
    FORBIDDEN_TYPE = "forbidden-type"
    TOO_LARGE = "too-large"
    TOO_DEEP = "too-deep"
    WRONG_TYPE = "wrong-type"
    WRONG_LENGTH = "wrong-length"
    OUT_OF_RANGE = "out-of-range"
    UNKNOWN_VERSION = "unknown-version"

    # identity (spec/02-identity.md)
    BAD_ID_TEXT = "bad-id-text"
    BAD_CHECKSUM = "bad-checksum"
    BAD_KEY = "bad-key"
    KEY_FILE_CORRUPT = "key-file-corrupt"
    KEY_FILE_INSECURE = "key-file-insecure"
    WRONG_PASSPHRASE = "wrong-passphrase"
    PASSPHRASE_REQUIRED = "passphrase-required"

    # log (spec/03-log.md)
    BAD_SIGNATURE = "bad-signature"
    WRONG_GROUP = "wrong-group"
    BAD_GENESIS = "bad-genesis"
    BAD_SEQUENCE = "bad-sequence"
    BAD_PREVIOUS = "bad-previous"
    BAD_LINKS = "bad-links"
    BAD_TIMESTAMP = "bad-timestamp"
    BODY_MISMATCH = "body-mismatch"
    PENDING_FULL = "pending-full"
    BAD_FORK_PROOF = "bad-fork-proof"

    # store
    STORE_CORRUPT = "store-corrupt"
    STORE_CLOSED = "store-closed"
    STORE_VERSION = "store-version"
    NOT_FOUND = "not-found"
    STORE_LOCKED = "store-locked"

    # membership (spec/04-membership.md)
    UNAUTHORIZED = "unauthorized"
    BAD_OPERATION = "bad-operation"
    BAD_INVITATION = "bad-invitation"
    #: An action the group's rules would void (the membership reason is on the error).
    REFUSED = "refused"
    #: A name or prefix that matches more than one group, member or item.
    AMBIGUOUS = "ambiguous"

    # bundles (sneakernet files)
    BAD_BUNDLE = "bad-bundle"

    # the local control socket of a running node
    NODE_UNREACHABLE = "node-unreachable"
    CONTROL_PROTOCOL = "control-protocol"
    ADDRESS_IN_USE = "address-in-use"

    # content encryption (spec/12-encryption.md); failed authentication is DECRYPT_FAILED
    BAD_PADDING = "bad-padding"
    KEYRING_CORRUPT = "keyring-corrupt"
    #: This member cannot derive the key of the group's current epoch (yet).
    NO_KEY = "no-key"

    # sessions (spec/05-channel.md, spec/06-sync.md)
    HANDSHAKE_FAILED = "handshake-failed"
    DECRYPT_FAILED = "decrypt-failed"
    FRAME_TOO_LARGE = "frame-too-large"
    UNEXPECTED_MESSAGE = "unexpected-message"
    BAD_STATE = "bad-state"
    CLOSED = "closed"
    TIMEOUT = "timeout"
    FLOOD = "flood"
    WRONG_PROTOCOL_VERSION = "wrong-protocol-version"


class P2PCommError(Exception):
    """Base of every error p2pcomm raises on purpose.

    ``code`` says what went wrong; ``expected`` and ``found`` (when not ``None``) give the
    values involved so the message can be checked without parsing it.
    """

    code: ErrorCode
    expected: object
    found: object

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        expected: object = None,
        found: object = None,
    ) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.expected = expected
        self.found = found


class DecodeError(P2PCommError):
    """Bytes are not a canonical encoding of the expected type (spec/01-encoding.md)."""


class ValidationError(P2PCommError):
    """Data decoded fine but breaks a rule of the log or membership (spec/03, spec/04)."""


class IdentityError(P2PCommError):
    """An id text form, key or key file is unusable (spec/02-identity.md)."""


class StoreError(P2PCommError):
    """The store cannot do what was asked; the data it already holds is unchanged."""


class ProtocolError(P2PCommError):
    """A point-to-point session broke its protocol. Abstract: raise a subclass.

    ``LocalProtocolError`` means this side tried something forbidden (a bug in the
    caller); ``RemoteProtocolError`` means the peer did, and the connection should be
    closed with ``code`` as the reason.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        expected: object = None,
        found: object = None,
    ) -> None:
        if type(self) is ProtocolError:
            raise TypeError(
                "ProtocolError is abstract; raise LocalProtocolError or RemoteProtocolError"
            )
        super().__init__(code, message, expected=expected, found=found)


class LocalProtocolError(ProtocolError):
    """This side asked for something its protocol state forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; close the connection with ``code``."""


class RefusedError(P2PCommError):
    """An action the group's rules (spec/04-membership.md) would void, refused before
    anything was written: a non-member posting, a moderator removing an admin, ...

    ``reason`` is the membership :class:`~p2pcomm.core.membership.Reason` value the
    entry would have been judged with (``"not-a-member"``, ``"insufficient-role"``...).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        code: ErrorCode = ErrorCode.REFUSED,
        expected: object = None,
        found: object = None,
    ) -> None:
        super().__init__(code, message, expected=expected, found=found)
        self.reason = reason


class NotFoundError(P2PCommError):
    """A group, member, item or invitation the caller named is not known here (code
    ``NOT_FOUND``), or the name matches several (code ``AMBIGUOUS``)."""


class BundleError(P2PCommError):
    """A bundle file is not a p2pcomm bundle, has an unknown version, or is damaged in
    a way that stops reading (code ``BAD_BUNDLE``)."""


class ControlError(P2PCommError):
    """The control connection to a running node failed: no node answers
    (``NODE_UNREACHABLE``) or it spoke something else (``CONTROL_PROTOCOL``)."""


class SealError(P2PCommError):
    """Encrypted content or key material cannot be opened (spec/12-encryption.md): it fails
    authentication (``DECRYPT_FAILED``: wrong key, wrong context or altered bytes), its
    padding is not the one the spec makes (``BAD_PADDING``), a public key gives a low-order
    X25519 result (``BAD_KEY``), or a sealed keyring is damaged or not one
    (``KEYRING_CORRUPT``, ``UNKNOWN_VERSION``).

    Malformed envelopes, slots and pointers are :class:`DecodeError`, like every other wire
    structure; this error is for bytes that are well-formed but do not open.
    """
