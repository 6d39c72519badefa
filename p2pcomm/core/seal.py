"""Building blocks of group content encryption (spec/12-encryption.md).

Theory of operation
-------------------
A group's content will be encrypted under *epoch keys*, each derived from one or more
32-byte *epoch secrets*. This module holds the pure pieces of that design, and nothing
that decides *which* secret or key an entry uses (that is a function of the membership
log, specified later):

* **Padmé padding** (12.3): a plaintext is padded to a length from a small set, so a
  ciphertext's size leaks O(log log n) bits of the plaintext's size.
* **The content envelope** (12.4): ``[1, epoch_id, nonce, ciphertext]``, ChaCha20-Poly1305
  under an epoch key, with the entry's group, author, sequence number and kind as
  associated data, so a ciphertext cannot be moved into another entry.
* **Rekey slots** (12.5): a new epoch secret sealed to an ordered list of X25519 receive
  keys, 48 bytes per recipient, with one ephemeral key *derived from the secret*, so that
  anyone who holds the secret can recompute every slot and find a garbled or missing one.
* **Pointers** (12.6): the previous secrets, sealed under a key derived from the new one,
  so whoever holds a secret can walk back through history.
* **Epoch ids and keys** (12.7): an 8-byte id computable from public data (the rekey
  entries' ids), and the key derived from the secrets of those entries.

Every function is deterministic: nonces are parameters (callers pass 12 random bytes;
vectors pass fixed ones) and so is everything else. Arguments of the wrong size are a
caller's mistake and raise ``ValueError``; bytes that may come from a peer raise
:class:`~p2pcomm.errors.DecodeError` when malformed and
:class:`~p2pcomm.errors.SealError` when well-formed but they do not open.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from ..errors import DecodeError, ErrorCode, SealError
from . import crypto
from .encoding import (
    Limits,
    decode_canonical,
    encode,
    expect_array,
    expect_bytes,
    expect_uint,
    value_length,
)
from .log import MAX_BODY_SIZE

__all__ = [
    "ENVELOPE_VERSION",
    "EPOCH_ID_SIZE",
    "LABEL_EPOCH_ID",
    "LABEL_EPOCH_KEY",
    "LABEL_POINTERS",
    "LABEL_SLOT",
    "LABEL_SLOT_EPHEMERAL",
    "MAX_CONTEXT_SIZE",
    "MAX_PLAINTEXT_SIZE",
    "NONCE_SIZE",
    "SECRET_SIZE",
    "SLOT_SIZE",
    "AadContext",
    "Envelope",
    "Rekey",
    "decode_envelope",
    "epoch_id",
    "epoch_key",
    "open_body",
    "open_envelope",
    "open_pointers",
    "open_slot",
    "pad",
    "padme_length",
    "seal_body",
    "seal_pointers",
    "seal_slots",
    "slot_ephemeral",
    "unpad",
    "verify_slots",
]

ENVELOPE_VERSION: Final = 1
SECRET_SIZE: Final = 32
KEY_SIZE: Final = crypto.AEAD_KEY_SIZE
NONCE_SIZE: Final = crypto.AEAD_NONCE_SIZE
TAG_SIZE: Final = crypto.AEAD_TAG_SIZE
EPOCH_ID_SIZE: Final = 8
X25519_SIZE: Final = 32
#: One sealed epoch secret: 32 bytes of ciphertext and a 16-byte tag.
SLOT_SIZE: Final = SECRET_SIZE + TAG_SIZE
#: The longest rekey context (12.5 SK2).
MAX_CONTEXT_SIZE: Final = 1024
#: The longest plaintext whose envelope fits in an entry body (12.4 EV3).
MAX_PLAINTEXT_SIZE: Final = 47104

#: Namespaced BLAKE2b-256 label (02 N4) of epoch ids.
LABEL_EPOCH_ID: Final = "p2pcomm/1/epoch-id"
#: HKDF info labels (12.2); each is followed by the bytes its section gives.
LABEL_EPOCH_KEY: Final = "p2pcomm/1/epoch-key"
LABEL_SLOT_EPHEMERAL: Final = "p2pcomm/1/slot-ephemeral"
LABEL_SLOT: Final = "p2pcomm/1/slot"
LABEL_POINTERS: Final = "p2pcomm/1/pointers"

_ZERO_NONCE: Final = bytes(NONCE_SIZE)
_ENVELOPE_LIMITS: Final = Limits(
    max_size=MAX_BODY_SIZE, max_bytes=MAX_BODY_SIZE, max_array=4, max_depth=1
)
#: The smallest ciphertext: a one-byte plaintext (the smallest msgpack value) and the tag.
_MIN_CIPHERTEXT: Final = 1 + TAG_SIZE


def _need(value: bytes, size: int, what: str) -> None:
    if len(value) != size:
        raise ValueError(f"{what} must be {size} bytes, found {len(value)}")


# ------------------------------------------------------------------ 12.3 padding


def padme_length(n: int) -> int:
    """Padmé (Nikitin et al., PETS 2019): the padded length of ``n`` bytes. ``n`` itself
    for ``n < 2``; otherwise ``n`` rounded up so that its lowest ``e - s`` bits are zero,
    with ``e = floor(log2 n)`` and ``s = floor(log2 e) + 1``."""
    if n < 0:
        raise ValueError(f"a length is not negative, found {n}")
    if n < 2:
        return n
    e = n.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (n + mask) & ~mask


def pad(plaintext: bytes) -> bytes:
    """``plaintext || 0x00...`` to ``padme_length(len(plaintext))`` bytes (PD1).

    ``plaintext`` must be exactly one msgpack value (:func:`value_length`), which is how
    it ends: no terminator is needed. Every plaintext of the protocol is one (a body of
    04, the sealed fields); an application encodes opaque bytes as a ``bin``. Raises
    ``ValueError`` for anything else (a caller's mistake)."""
    if value_length(plaintext) != len(plaintext):
        raise ValueError(
            f"a padded plaintext is exactly one msgpack value; these {len(plaintext)} bytes"
            " are not (encode opaque bytes as a bin)"
        )
    return plaintext + bytes(padme_length(len(plaintext)) - len(plaintext))


def unpad(padded: bytes) -> bytes:
    """Inverse of :func:`pad`. Raises :class:`SealError` ``BAD_PADDING`` unless ``padded``
    is exactly what :func:`pad` makes of some plaintext (PD2): one msgpack value, then
    only zeros, for a total length that is the Padmé length of the value."""
    n = value_length(padded)
    if n is None:
        raise SealError(
            ErrorCode.BAD_PADDING, "padded bytes do not begin with a complete msgpack value"
        )
    if padded.count(0, n) != len(padded) - n:
        raise SealError(ErrorCode.BAD_PADDING, "a nonzero byte after the padded value")
    expected = padme_length(n)
    if expected != len(padded):
        raise SealError(
            ErrorCode.BAD_PADDING,
            f"{n} bytes of content are padded to {len(padded)} bytes, not {expected}",
            expected=expected,
            found=len(padded),
        )
    return padded[:n]


# ------------------------------------------------------------------ 12.4 envelope


@dataclass(frozen=True, slots=True)
class AadContext:
    """The entry a content body belongs to; its :meth:`aad` is the envelope's associated
    data (12.4 EV2), so a ciphertext opens only in the entry it was sealed for."""

    #: The group id G (32 bytes).
    group: bytes
    #: The author's member id (32 bytes).
    author: bytes
    #: The entry's sequence number (03: 1 ..= 2^63 - 1; any u64 is encodable here).
    seq: int
    #: The entry's kind (0 ..= 65535).
    kind: int

    def __post_init__(self) -> None:
        _need(self.group, 32, "group id")
        _need(self.author, 32, "author")
        if not 0 <= self.seq < 1 << 64:
            raise ValueError(f"seq must fit in 64 bits, found {self.seq}")
        if not 0 <= self.kind < 1 << 16:
            raise ValueError(f"kind must fit in 16 bits, found {self.kind}")

    def aad(self) -> bytes:
        """``G || author || u64(seq) || u16(kind)``: 74 bytes."""
        return self.group + self.author + self.seq.to_bytes(8, "big") + self.kind.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded content body (12.4): which epoch's key opens it, the nonce, and the
    ciphertext (padded plaintext and the 16-byte tag)."""

    epoch_id: bytes
    nonce: bytes
    ciphertext: bytes


def seal_body(
    key: bytes, epoch_id: bytes, nonce: bytes, aad_context: AadContext, plaintext: bytes
) -> bytes:
    """The envelope of ``plaintext`` (EV1): ``encode([1, epoch_id, nonce, ciphertext])``
    with ``ciphertext = ChaCha20-Poly1305(key, nonce, aad_context.aad(), pad(plaintext))``.

    ``nonce`` MUST be 12 fresh random bytes for every call with the same key. Raises
    ``ValueError`` for arguments of the wrong size and for a plaintext longer than
    :data:`MAX_PLAINTEXT_SIZE` (its envelope would not fit in an entry body).
    """
    _need(key, KEY_SIZE, "epoch key")
    _need(epoch_id, EPOCH_ID_SIZE, "epoch id")
    _need(nonce, NONCE_SIZE, "nonce")
    if len(plaintext) > MAX_PLAINTEXT_SIZE:
        raise ValueError(
            f"a plaintext of {len(plaintext)} bytes does not fit in a body;"
            f" the most is {MAX_PLAINTEXT_SIZE}"
        )
    ciphertext = crypto.aead_seal(key, nonce, aad_context.aad(), pad(plaintext))
    return encode([ENVELOPE_VERSION, epoch_id, nonce, ciphertext])


def _envelope_fast(body: bytes) -> Envelope | None:
    """The envelope if ``body`` is byte for byte the canonical form of 12.4 (array of 4,
    version 1, bin8 of 8, bin8 of 12, then the ciphertext in a bin8 under 256 bytes or
    a bin16 from 256), else None: the general decoder then says what is wrong."""
    n = len(body)
    if n < 28 + _MIN_CIPHERTEXT or n > MAX_BODY_SIZE or body[:4] != b"\x94\x01\xc4\x08":
        return None
    if body[12] != 0xC4 or body[13] != NONCE_SIZE:
        return None
    tag = body[26]
    if tag == 0xC4:
        start, size = 28, body[27]
    elif tag == 0xC5:
        start, size = 29, int.from_bytes(body[27:29], "big")
        if size < 256:
            return None
    else:
        return None
    if start + size != n or size < _MIN_CIPHERTEXT:
        return None
    return Envelope(body[4:12], body[14:26], body[start:])


def decode_envelope(body: bytes) -> Envelope:
    """Decode a content body without opening it (EN1 to EN6); raises :class:`DecodeError`.

    Relays and readers call this to learn the epoch id before they hold, or look up, a key.
    """
    fast = _envelope_fast(body)
    if fast is not None:
        return fast
    fields = decode_canonical(body, _ENVELOPE_LIMITS)
    version = fields[0] if fields else None
    if isinstance(version, int) and not isinstance(version, bool) and version != ENVELOPE_VERSION:
        raise DecodeError(
            ErrorCode.UNKNOWN_VERSION,
            f"envelope version {version} is not supported",
            expected=ENVELOPE_VERSION,
            found=version,
        )
    expect_array(fields, "envelope", length=4)
    expect_uint(fields[0], "envelope.version", minimum=ENVELOPE_VERSION, maximum=ENVELOPE_VERSION)
    eid = expect_bytes(fields[1], "envelope.epoch_id", length=EPOCH_ID_SIZE)
    nonce = expect_bytes(fields[2], "envelope.nonce", length=NONCE_SIZE)
    ciphertext = expect_bytes(fields[3], "envelope.ciphertext")
    if len(ciphertext) < _MIN_CIPHERTEXT:
        raise DecodeError(
            ErrorCode.WRONG_LENGTH,
            f"envelope.ciphertext: expected at least {_MIN_CIPHERTEXT} bytes,"
            f" found {len(ciphertext)}",
            expected=_MIN_CIPHERTEXT,
            found=len(ciphertext),
        )
    return Envelope(eid, nonce, ciphertext)


def open_body(key: bytes, body: bytes, aad_context: AadContext) -> bytes:
    """The plaintext of a content body (EO1 to EO3).

    Raises :class:`DecodeError` for a malformed body, :class:`SealError` ``DECRYPT_FAILED``
    when the ciphertext does not authenticate under ``key`` and ``aad_context`` (wrong key,
    wrong entry, altered bytes) and ``BAD_PADDING`` when it does but its padding is wrong.
    """
    _need(key, KEY_SIZE, "epoch key")
    return open_envelope(key, decode_envelope(body), aad_context)


def open_envelope(key: bytes, envelope: Envelope, aad_context: AadContext) -> bytes:
    """:func:`open_body` of an envelope already decoded (EO2, EO3): for a reader that
    looked at its epoch id first."""
    try:
        padded = crypto.aead_open(key, envelope.nonce, aad_context.aad(), envelope.ciphertext)
    except crypto.AeadError:
        raise SealError(
            ErrorCode.DECRYPT_FAILED,
            f"content of epoch {envelope.epoch_id.hex()} does not open with this key in this entry",
        ) from None
    return unpad(padded)


# ------------------------------------------------------------------ 12.5 rekey slots


@dataclass(frozen=True, slots=True)
class Rekey:
    """A new epoch secret sealed to an ordered list of recipients (12.5): the ephemeral
    public key shared by all slots and the slots, concatenated, 48 bytes each."""

    #: X25519 public key of the ephemeral derived from the secret (SK1).
    eph_pub: bytes
    #: ``slot_0 || slot_1 || ...``, one 48-byte slot per recipient, in recipient order.
    slots: bytes

    def __post_init__(self) -> None:
        if len(self.eph_pub) != X25519_SIZE:
            raise DecodeError(
                ErrorCode.WRONG_LENGTH,
                f"rekey ephemeral key: expected {X25519_SIZE} bytes, found {len(self.eph_pub)}",
                expected=X25519_SIZE,
                found=len(self.eph_pub),
            )
        if len(self.slots) % SLOT_SIZE:
            raise DecodeError(
                ErrorCode.WRONG_LENGTH,
                f"rekey slots: {len(self.slots)} bytes is not a multiple of {SLOT_SIZE}",
                expected=f"a multiple of {SLOT_SIZE}",
                found=len(self.slots),
            )

    @property
    def count(self) -> int:
        """How many slots the rekey has."""
        return len(self.slots) // SLOT_SIZE

    def slot(self, index: int) -> bytes:
        """Slot ``index`` (48 bytes); ``IndexError`` past the last."""
        if not 0 <= index < self.count:
            raise IndexError(f"slot {index} of a rekey with {self.count} slots")
        return self.slots[index * SLOT_SIZE : (index + 1) * SLOT_SIZE]


def _check_context(group: bytes, context: bytes) -> None:
    _need(group, 32, "group id")
    if len(context) > MAX_CONTEXT_SIZE:
        raise ValueError(
            f"a rekey context is at most {MAX_CONTEXT_SIZE} bytes, found {len(context)}"
        )


def slot_ephemeral(secret: bytes) -> bytes:
    """The ephemeral X25519 private key of ``secret``'s slots (SK1):
    ``HKDF(salt = "", ikm = secret, info = "p2pcomm/1/slot-ephemeral")``."""
    _need(secret, SECRET_SIZE, "epoch secret")
    return crypto.hkdf_sha256(b"", secret, LABEL_SLOT_EPHEMERAL.encode("ascii"))


def _dh(private: bytes, public: bytes, whose: str) -> bytes:
    """X25519, refusing a public key that yields the all-zero output (SK4)."""
    try:
        shared = crypto.x25519_dh(private, public)
    except ValueError:
        shared = bytes(32)
    if shared == bytes(32):
        raise SealError(
            ErrorCode.BAD_KEY,
            f"{whose} {public.hex()} is a low-order x25519 point (all-zero shared secret)",
            found=public.hex(),
        )
    return shared


def _slot_key(
    shared: bytes, group: bytes, context: bytes, eph_pub: bytes, recipient: bytes
) -> bytes:
    info = (
        LABEL_SLOT.encode("ascii")
        + group
        + len(context).to_bytes(2, "big")
        + context
        + eph_pub
        + recipient
    )
    return crypto.hkdf_sha256(b"", shared, info)


def seal_slots(secret: bytes, recipients: Sequence[bytes], group: bytes, context: bytes) -> Rekey:
    """Seal ``secret`` to each X25519 receive public key in ``recipients``, in order (SK1
    to SK3). Deterministic: the ephemeral key is derived from ``secret``.

    Raises ``ValueError`` for arguments of the wrong size and :class:`SealError`
    ``BAD_KEY`` for a recipient key that is a low-order point (SK4).
    """
    _check_context(group, context)
    eph = slot_ephemeral(secret)
    eph_pub = crypto.x25519_public(eph)
    slots = []
    for i, recipient in enumerate(recipients):
        _need(recipient, X25519_SIZE, f"recipient {i}'s receive key")
        key = _slot_key(
            _dh(eph, recipient, f"recipient {i}'s receive key"), group, context, eph_pub, recipient
        )
        slots.append(crypto.aead_seal(key, _ZERO_NONCE, b"", secret))
    return Rekey(eph_pub, b"".join(slots))


def open_slot(
    receive_private: bytes, index: int | None, rekey: Rekey, group: bytes, context: bytes
) -> bytes:
    """The epoch secret in this recipient's slot (SO1 to SO3): slot ``index``, or, when
    ``index`` is ``None``, the first slot that opens (one key derivation, then one
    authentication attempt per slot).

    Raises :class:`SealError`: ``DECRYPT_FAILED`` when the slot (every slot, for ``None``)
    does not open for this key, or there is no slot ``index``; ``BAD_KEY`` when the
    ephemeral key is a low-order point.
    """
    _need(receive_private, X25519_SIZE, "receive private key")
    _check_context(group, context)
    recipient = crypto.x25519_public(receive_private)
    shared = _dh(receive_private, rekey.eph_pub, "rekey ephemeral key")
    key = _slot_key(shared, group, context, rekey.eph_pub, recipient)
    indices = range(rekey.count) if index is None else [index]
    for i in indices:
        if not 0 <= i < rekey.count:
            break
        try:
            return crypto.aead_open(key, _ZERO_NONCE, b"", rekey.slot(i))
        except crypto.AeadError:
            continue
    what = "none of the slots opens" if index is None else f"slot {index} does not open"
    raise SealError(
        ErrorCode.DECRYPT_FAILED,
        f"{what} (of {rekey.count}) for receive key {recipient.hex()}",
        found=index,
    )


def verify_slots(
    secret: bytes, recipients: Sequence[bytes], rekey: Rekey, group: bytes, context: bytes
) -> list[int]:
    """The indices of ``rekey``'s slots that are not what :func:`seal_slots` makes of
    ``secret`` for ``recipients`` (SV1, SV2), in ascending order; ``[]`` if every slot is
    right. A missing slot (fewer slots than recipients) and a surplus one (more) are bad;
    if the ephemeral key is not the one derived from ``secret``, every index is bad. A
    recipient whose key is a low-order point is bad: no slot for it can be right.
    """
    _need(secret, SECRET_SIZE, "epoch secret")
    _check_context(group, context)
    total = max(len(recipients), rekey.count)
    eph = slot_ephemeral(secret)
    eph_pub = crypto.x25519_public(eph)
    if rekey.eph_pub != eph_pub:
        return list(range(total))
    bad = []
    for i, recipient in enumerate(recipients):
        _need(recipient, X25519_SIZE, f"recipient {i}'s receive key")
        if i >= rekey.count:
            bad.append(i)
            continue
        try:
            shared = _dh(eph, recipient, f"recipient {i}'s receive key")
        except SealError:
            bad.append(i)
            continue
        key = _slot_key(shared, group, context, eph_pub, recipient)
        if crypto.aead_seal(key, _ZERO_NONCE, b"", secret) != rekey.slot(i):
            bad.append(i)
    bad.extend(range(len(recipients), rekey.count))
    return bad


# ------------------------------------------------------------------ 12.6 pointers


def _pointers_key(secret: bytes) -> bytes:
    _need(secret, SECRET_SIZE, "epoch secret")
    return crypto.hkdf_sha256(b"", secret, LABEL_POINTERS.encode("ascii"))


def seal_pointers(secret: bytes, previous_secrets: Sequence[bytes]) -> bytes:
    """``previous_secrets`` (32 bytes each, in the given order), sealed under a key derived
    from ``secret`` (PT1): ``16 + 32 * len(previous_secrets)`` bytes."""
    for i, previous in enumerate(previous_secrets):
        _need(previous, SECRET_SIZE, f"previous secret {i}")
    return crypto.aead_seal(_pointers_key(secret), _ZERO_NONCE, b"", b"".join(previous_secrets))


def open_pointers(secret: bytes, blob: bytes) -> list[bytes]:
    """The previous secrets sealed in ``blob`` under ``secret`` (PT2). Raises
    :class:`DecodeError` ``WRONG_LENGTH`` when ``blob`` is not 16 + 32k bytes and
    :class:`SealError` ``DECRYPT_FAILED`` when it does not open with ``secret``."""
    if len(blob) < TAG_SIZE or (len(blob) - TAG_SIZE) % SECRET_SIZE:
        raise DecodeError(
            ErrorCode.WRONG_LENGTH,
            f"pointers: {len(blob)} bytes is not {TAG_SIZE} + {SECRET_SIZE}k",
            expected=f"{TAG_SIZE} + {SECRET_SIZE}k",
            found=len(blob),
        )
    try:
        joined = crypto.aead_open(_pointers_key(secret), _ZERO_NONCE, b"", blob)
    except crypto.AeadError:
        raise SealError(ErrorCode.DECRYPT_FAILED, "pointers do not open with this secret") from None
    return [joined[i : i + SECRET_SIZE] for i in range(0, len(joined), SECRET_SIZE)]


# ------------------------------------------------------------------ 12.7 epoch id and key


def _sorted_ids(ids: Iterable[bytes]) -> list[bytes]:
    ordered = sorted(ids)
    if not ordered:
        raise ValueError("an epoch needs at least one rekey entry; the frontier is empty")
    for i, eid in enumerate(ordered):
        _need(eid, 32, "rekey entry id")
        if i and eid == ordered[i - 1]:
            raise ValueError(f"rekey entry {eid.hex()} appears twice in the frontier")
    return ordered


def epoch_id(group: bytes, frontier_entry_ids: Iterable[bytes]) -> bytes:
    """The 8-byte id of the epoch whose frontier is these rekey entries (EK1):
    ``BLAKE2b-256(namespace("p2pcomm/1/epoch-id") || G || sorted ids)[0..8]``.

    Raises ``ValueError`` for an empty frontier or a repeated id.
    """
    _need(group, 32, "group id")
    data = crypto.namespace(LABEL_EPOCH_ID) + group + b"".join(_sorted_ids(frontier_entry_ids))
    return crypto.blake2b_256(data)[:EPOCH_ID_SIZE]


def epoch_key(group: bytes, frontier: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The 32-byte key of the epoch whose frontier is these ``(rekey entry id, secret)``
    pairs, in any order (EK2): ``HKDF(salt = epoch id, ikm = the secrets in ascending order
    of their entry ids, info = "p2pcomm/1/epoch-key" || G)``.

    Raises ``ValueError`` for an empty frontier, a repeated id or a wrong size.
    """
    items = list(frontier)
    ordered = _sorted_ids(eid for eid, _ in items)
    pairs = dict(items)
    for eid in ordered:
        _need(pairs[eid], SECRET_SIZE, f"secret of rekey entry {eid.hex()}")
    salt = epoch_id(group, ordered)
    ikm = b"".join(pairs[eid] for eid in ordered)
    return crypto.hkdf_sha256(salt, ikm, LABEL_EPOCH_KEY.encode("ascii") + group)
