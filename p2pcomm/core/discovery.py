"""What a node says on the local network, and how members recognise it (spec/08-discovery.md).

Theory of operation
-------------------
A node advertises the DNS-SD service ``_p2pcomm._tcp.local.`` over mDNS so that members
of its groups on the same LAN can find it with no address configured. Everything an
advert carries is visible to every device on the link, so it carries no group id, no
member id and no stable device identifier:

* the **instance** and **host** labels are fresh random strings for every rotation
  period (*epoch*, :data:`ROTATION_MS`), so adverts of one device in two epochs, or on two
  networks, share no name;
* the TXT record holds a version and exactly :data:`MAX_TOKENS` **discovery tokens** of
  :data:`TOKEN_SIZE` bytes, in ascending order. For a group ``G`` it holds, the token of
  epoch ``e`` is::

      discovery_token(G, e) = BLAKE2b-128(key = G, "p2pcomm/1/discovery" || u64(e))[0..8]

  Keyed BLAKE2b is a PRF: without ``G`` a token is 8 random-looking bytes, and tokens of
  one group in two epochs are unrelated. The remaining places are filled with random
  tokens, so the advert does not show how many groups the node holds; sorting them hides
  which ones are real (all are uniformly distributed). A node with more than
  :data:`MAX_TOKENS` groups advertises a window of them that moves every epoch
  (:func:`advertised_groups`), so every group is advertised some of the time.

A browser computes, for each group it holds, the tokens of the current, previous and next
epochs (clock skew of up to one period is tolerated) and looks for them among an advert's
tokens (:func:`matching_groups`). A match is a hint that a member may be there: the node
dials it, and the handshake (05) and the group tokens of sync (06 6.6, 6.22) decide what,
if anything, is exchanged. A false match (probability about ``2^-64`` per token pair)
costs one handshake.

The TXT record is untrusted input from anyone on the link: :func:`decode_txt` accepts
exactly what :func:`encode_txt` writes and reports anything else as a
:class:`~p2pcomm.errors.DecodeError` with a code (08 rules DT1 to DT6).

Pure: no I/O, no clock and no randomness of its own. Callers pass ``now_ms`` and a
``random_bytes`` source (``os.urandom`` or ``secrets.token_bytes`` in a node).
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from ..errors import DecodeError, ErrorCode
from . import crypto

__all__ = [
    "GROUP_ID_SIZE",
    "LABEL",
    "MAX_TOKENS",
    "ROTATION_MS",
    "SERVICE_TYPE",
    "TOKEN_SIZE",
    "TXT_TOKENS_CHARS",
    "TXT_VERSION",
    "Advert",
    "advertised_groups",
    "decode_txt",
    "discovery_token",
    "encode_txt",
    "epoch_of",
    "make_advert",
    "matching_groups",
]

#: The DNS-SD service type every p2pcomm node advertises and browses.
SERVICE_TYPE: Final = "_p2pcomm._tcp.local."
#: Length of an epoch: tokens and advertised names change at every multiple of it.
ROTATION_MS: Final[int] = 15 * 60 * 1000
#: Bytes per discovery token.
TOKEN_SIZE: Final[int] = 8
#: Tokens in every advert: real ones, padded with random ones.
MAX_TOKENS: Final[int] = 8
#: The value of the TXT key ``v``.
TXT_VERSION: Final[bytes] = b"1"
#: The raw BLAKE2b label of discovery tokens (02 2.5, second table).
LABEL: Final = "p2pcomm/1/discovery"
#: Size of a group id (03 3.7), the key of its discovery tokens.
GROUP_ID_SIZE: Final = 32
#: Characters of the TXT value ``t``: unpadded base32 of MAX_TOKENS * TOKEN_SIZE bytes.
TXT_TOKENS_CHARS: Final[int] = -(-MAX_TOKENS * TOKEN_SIZE * 8 // 5)

_LABEL_BYTES: Final = LABEL.encode("ascii")
_MAX_EPOCH: Final = 2**64 - 1
#: Random bytes behind an instance or host label: 80 bits, 16 base32 characters.
_NAME_BYTES: Final = 10
_HOST_PREFIX: Final = "p2p-"
_BASE32_LOWER: Final = frozenset(b"abcdefghijklmnopqrstuvwxyz234567")
#: Draws of padding tokens before a random source is judged broken (it repeats itself).
_MAX_DRAWS: Final = 64


def epoch_of(now_ms: int) -> int:
    """The epoch containing ``now_ms`` (milliseconds since the Unix epoch, >= 0)."""
    if now_ms < 0:
        raise ValueError(f"now_ms must be >= 0, not {now_ms}")
    return now_ms // ROTATION_MS


def discovery_token(group: bytes, epoch: int) -> bytes:
    """The token that stands for ``group`` in adverts of ``epoch`` (08 DK1)."""
    if len(group) != GROUP_ID_SIZE:
        raise ValueError(f"a group id has {GROUP_ID_SIZE} bytes, not {len(group)}")
    if not 0 <= epoch <= _MAX_EPOCH:
        raise ValueError(f"an epoch is in 0 ..= 2^64 - 1, not {epoch}")
    digest = crypto.blake2b_keyed(group, _LABEL_BYTES + epoch.to_bytes(8, "big"), 16)
    return digest[:TOKEN_SIZE]


@dataclass(frozen=True, slots=True, kw_only=True)
class Advert:
    """One epoch's advert of a node (08 8.3, 8.4)."""

    #: The service instance label: random per epoch, 16 lower-case base32 characters.
    instance: str
    #: The host label (without ``.local.``): ``p2p-`` and 16 random base32 characters.
    host: str
    #: The port the node listens on.
    port: int
    #: Exactly MAX_TOKENS distinct tokens of TOKEN_SIZE bytes, in ascending order.
    tokens: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"a port is in 1 ..= 65535, not {self.port}")
        if len(self.tokens) != MAX_TOKENS or any(len(t) != TOKEN_SIZE for t in self.tokens):
            raise ValueError(f"an advert carries {MAX_TOKENS} tokens of {TOKEN_SIZE} bytes")
        if any(a >= b for a, b in itertools.pairwise(self.tokens)):
            raise ValueError("an advert's tokens are distinct and in ascending order")

    @property
    def service_name(self) -> str:
        """The full service instance name, ``<instance>._p2pcomm._tcp.local.``."""
        return f"{self.instance}.{SERVICE_TYPE}"

    @property
    def server(self) -> str:
        """The full host name, ``<host>.local.``."""
        return f"{self.host}.local."


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unique_groups(groups: Iterable[bytes]) -> list[bytes]:
    unique = sorted(set(groups))
    for g in unique:
        if len(g) != GROUP_ID_SIZE:
            raise ValueError(f"a group id has {GROUP_ID_SIZE} bytes, not {len(g)}")
    return unique


def advertised_groups(groups: Iterable[bytes], epoch: int) -> list[bytes]:
    """The groups whose tokens an advert of ``epoch`` carries (08 DA3).

    All of them when there are at most MAX_TOKENS. Otherwise, with the ``n`` distinct
    group ids sorted, the MAX_TOKENS consecutive ones (wrapping around) starting at index
    ``(epoch * MAX_TOKENS) mod n``: every group is advertised at least once in any
    ``ceil(n / MAX_TOKENS)`` consecutive epochs.
    """
    unique = _unique_groups(groups)
    n = len(unique)
    if n <= MAX_TOKENS:
        return unique
    start = (epoch * MAX_TOKENS) % n
    return sorted(unique[(start + i) % n] for i in range(MAX_TOKENS))


def make_advert(
    groups: Iterable[bytes],
    *,
    now_ms: int,
    port: int,
    random_bytes: Callable[[int], bytes],
) -> Advert:
    """A fresh advert for the epoch of ``now_ms`` (08 DA1 to DA4).

    Draws, in this order, 10 bytes for the instance label, 10 for the host label, then
    8 per padding token, from ``random_bytes`` (which must be a cryptographically secure
    source outside tests). Call it once per epoch, and again when the groups change.
    """
    epoch = epoch_of(now_ms)
    real = {discovery_token(g, epoch) for g in advertised_groups(groups, epoch)}
    instance = _b32(_draw(random_bytes, _NAME_BYTES))
    host = _HOST_PREFIX + _b32(_draw(random_bytes, _NAME_BYTES))
    tokens = set(real)
    draws = 0
    while len(tokens) < MAX_TOKENS:
        if draws == _MAX_DRAWS:
            raise ValueError("random_bytes keeps returning the same tokens")
        draws += 1
        tokens.add(_draw(random_bytes, TOKEN_SIZE))
    return Advert(instance=instance, host=host, port=port, tokens=tuple(sorted(tokens)))


def _draw(random_bytes: Callable[[int], bytes], n: int) -> bytes:
    out = random_bytes(n)
    if len(out) != n:
        raise ValueError(f"random_bytes({n}) returned {len(out)} bytes")
    return out


def encode_txt(advert: Advert) -> dict[bytes, bytes]:
    """The TXT properties of ``advert``: ``v=1`` and ``t=<base32 of the tokens>`` (08 DT)."""
    return {b"v": TXT_VERSION, b"t": _b32(b"".join(advert.tokens)).encode("ascii")}


def _fail(
    code: ErrorCode, message: str, *, expected: object = None, found: object = None
) -> DecodeError:
    return DecodeError(code, message, expected=expected, found=found)


def decode_txt(properties: Mapping[bytes, bytes | None]) -> tuple[bytes, ...]:
    """The tokens of an advert's TXT properties, checked in the order of 08 DT1 to DT6.

    Raises :class:`~p2pcomm.errors.DecodeError` (and nothing else) for anything
    :func:`encode_txt` would not have written: ``malformed`` (a missing or valueless
    key, an unknown key, a character outside lower-case base32), ``unknown-version``,
    ``too-large`` and ``wrong-length`` (the size of ``t``), ``not-canonical`` (nonzero
    trailing bits, tokens not in strictly ascending order).
    """
    # DT1: the version, before anything else (another version may have other keys).
    if b"v" not in properties or properties[b"v"] is None:
        raise _fail(
            ErrorCode.MALFORMED, "an advert's TXT record has no version (v)", expected="v=1"
        )
    version = properties[b"v"]
    if version != TXT_VERSION:
        raise _fail(
            ErrorCode.UNKNOWN_VERSION,
            f"advert version {version!r} is not known (this node reads v=1)",
            expected=TXT_VERSION,
            found=version,
        )
    # DT2: exactly the keys v and t, t with a value.
    unknown = sorted(k for k in properties if k not in (b"v", b"t"))
    if unknown:
        raise _fail(
            ErrorCode.MALFORMED,
            f"an advert's TXT record has unknown keys {unknown!r}",
            expected=[b"t", b"v"],
            found=unknown,
        )
    text = properties.get(b"t")
    if text is None:
        raise _fail(ErrorCode.MALFORMED, "an advert's TXT record has no tokens (t)", expected="t")
    # DT3: the size, before decoding anything.
    if len(text) > TXT_TOKENS_CHARS:
        raise _fail(
            ErrorCode.TOO_LARGE,
            f"advert tokens take {TXT_TOKENS_CHARS} characters, not {len(text)}",
            expected=TXT_TOKENS_CHARS,
            found=len(text),
        )
    if len(text) < TXT_TOKENS_CHARS:
        raise _fail(
            ErrorCode.WRONG_LENGTH,
            f"advert tokens take {TXT_TOKENS_CHARS} characters, not {len(text)}",
            expected=TXT_TOKENS_CHARS,
            found=len(text),
        )
    # DT4: lower-case base32, no padding.
    if not set(text) <= _BASE32_LOWER:
        raise _fail(
            ErrorCode.MALFORMED,
            "advert tokens contain characters outside lower-case base32 (a-z, 2-7)",
            expected="a-z, 2-7",
        )
    raw = base64.b32decode(text.upper() + b"=" * (-len(text) % 8))
    # DT5: the bits after the last whole byte are zero.
    if _b32(raw).encode("ascii") != text:
        raise _fail(ErrorCode.NOT_CANONICAL, "advert tokens end with nonzero padding bits")
    tokens = tuple(raw[i : i + TOKEN_SIZE] for i in range(0, len(raw), TOKEN_SIZE))
    # DT6: distinct, ascending.
    for i, (a, b) in enumerate(itertools.pairwise(tokens)):
        if a >= b:
            raise _fail(
                ErrorCode.NOT_CANONICAL,
                f"advert tokens are not in strictly ascending order (token {i + 1})",
                found=i + 1,
            )
    return tokens


def matching_groups(
    tokens: Iterable[bytes], groups: Iterable[bytes], *, now_ms: int
) -> list[bytes]:
    """The groups among ``groups`` whose token for the epoch of ``now_ms``, the one
    before or the one after is among ``tokens``, sorted (08 DB1)."""
    seen = set(tokens)
    epoch = epoch_of(now_ms)
    epochs = [e for e in (epoch - 1, epoch, epoch + 1) if 0 <= e <= _MAX_EPOCH]
    return [g for g in _unique_groups(groups) if any(discovery_token(g, e) in seen for e in epochs)]
