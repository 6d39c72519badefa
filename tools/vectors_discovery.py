"""Vectors for discovery adverts (spec/08-discovery.md).

Types:

* ``constants``: the service type, rotation period, token size and count, TXT version,
  label and the length of the TXT value ``t``;
* ``epoch``: a time in milliseconds and its epoch (around period boundaries);
* ``token``: a group id, an epoch, the hashed input and the token (08 DK1);
* ``advert``: groups, a time, a port and a fixed random stream (consumed in order: 10
  bytes for the instance, 10 for the host, 8 per padding token), and the advert made from
  them: the groups advertised (08 DA3), instance, host, tokens and TXT properties;
* ``match``: an advert's tokens, the groups a browser holds, a time, and the groups that
  match (08 DB1);
* ``txt-decode``: TXT properties (keys and values in hex, ``null`` for a key without a
  value) and the tokens they decode to, or ``fail`` (08 DT1 to DT6).
"""

from __future__ import annotations

import base64
from typing import Any

from p2pcomm.core import crypto
from p2pcomm.core import discovery as d
from p2pcomm.errors import DecodeError

REVISION = 6
NOW_MS = 1795392000000  # 2026-11-23T00:00:00Z, the first millisecond of an epoch
PORT = 7447
RANDOM = b"".join(
    crypto.blake2b_512(b"p2pcomm test random " + i.to_bytes(4, "big")) for i in range(4)
)


def group(name: str) -> bytes:
    return crypto.blake2b_256(b"vector discovery group " + name.encode("ascii"))


GROUPS = [group(name) for name in "abcdefghij"]


class Stream:
    """``random_bytes`` reading RANDOM from the start."""

    def __init__(self) -> None:
        self.pos = 0

    def __call__(self, n: int) -> bytes:
        out = RANDOM[self.pos : self.pos + n]
        self.pos += n
        return out


def props(p: dict[bytes, bytes | None]) -> dict[str, str | None]:
    return {k.hex(): None if v is None else v.hex() for k, v in p.items()}


def b32(data: bytes) -> bytes:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower().encode("ascii")


def generate() -> dict[str, Any]:
    vectors: list[dict[str, Any]] = [
        {
            "type": "constants",
            "name": "constants",
            "description": "the fixed values of chapter 08",
            "service_type": d.SERVICE_TYPE,
            "rotation_ms": d.ROTATION_MS,
            "token_size": d.TOKEN_SIZE,
            "max_tokens": d.MAX_TOKENS,
            "txt_version": d.TXT_VERSION.hex(),
            "label": d.LABEL,
            "txt_tokens_chars": d.TXT_TOKENS_CHARS,
        }
    ]
    R = d.ROTATION_MS
    for name, now, what in [
        ("epoch-zero", 0, "the Unix epoch starts epoch 0"),
        ("epoch-last-ms-of-0", R - 1, "the last millisecond of epoch 0"),
        ("epoch-first-ms-of-1", R, "the first millisecond of epoch 1"),
        ("epoch-vector-time", NOW_MS, "2026-11-23T00:00:00Z starts an epoch"),
        ("epoch-before-vector-time", NOW_MS - 1, "the millisecond before it ends the previous one"),
        ("epoch-max-time", 2**63 - 1, "the largest timestamp (03)"),
    ]:
        vectors.append(
            {
                "type": "epoch",
                "name": name,
                "description": what,
                "now_ms": now,
                "epoch": d.epoch_of(now),
            }
        )
    for name, g, epoch, what in [
        ("token-a-now", GROUPS[0], d.epoch_of(NOW_MS), "group a, the vector time's epoch"),
        ("token-a-next", GROUPS[0], d.epoch_of(NOW_MS) + 1, "group a, the next epoch"),
        ("token-b-now", GROUPS[1], d.epoch_of(NOW_MS), "group b, the same epoch as token-a-now"),
        ("token-epoch-0", bytes(32), 0, "the zero group id, epoch 0"),
        ("token-epoch-max", bytes([0xFF]) * 32, 2**64 - 1, "the largest epoch"),
    ]:
        hashed = d.LABEL.encode("ascii") + epoch.to_bytes(8, "big")
        vectors.append(
            {
                "type": "token",
                "name": name,
                "description": what,
                "group": g.hex(),
                "epoch": epoch,
                "hashed": hashed.hex(),
                "digest": crypto.blake2b_keyed(g, hashed, 16).hex(),
                "token": d.discovery_token(g, epoch).hex(),
            }
        )
    adverts = [
        ("advert-three-groups", GROUPS[:3], NOW_MS, "three groups: three real tokens, five random"),
        ("advert-no-groups", [], NOW_MS, "no group: eight random tokens"),
        (
            "advert-ten-groups",
            GROUPS,
            NOW_MS,
            "ten groups: the window of eight for this epoch, no random token",
        ),
        (
            "advert-ten-groups-next-epoch",
            GROUPS,
            NOW_MS + R,
            "ten groups one epoch later: the window has moved by eight",
        ),
    ]
    for name, groups, now, what in adverts:
        advert = d.make_advert(groups, now_ms=now, port=PORT, random_bytes=Stream())
        epoch = d.epoch_of(now)
        vectors.append(
            {
                "type": "advert",
                "name": name,
                "description": what,
                "groups": [g.hex() for g in groups],
                "now_ms": now,
                "port": PORT,
                "random": RANDOM.hex(),
                "epoch": epoch,
                "advertised": [g.hex() for g in d.advertised_groups(groups, epoch)],
                "instance": advert.instance,
                "host": advert.host,
                "tokens": [t.hex() for t in advert.tokens],
                "properties": props(d.encode_txt(advert)),
            }
        )
    advert = d.make_advert(GROUPS[:3], now_ms=NOW_MS, port=PORT, random_bytes=Stream())
    held = [GROUPS[0], GROUPS[2], GROUPS[5]]
    for name, now, what in [
        ("match-same-epoch", NOW_MS, "the browser's clock is in the advert's epoch"),
        ("match-browser-ahead", NOW_MS + R, "the browser is one epoch ahead: previous epoch"),
        ("match-browser-behind", NOW_MS - 1, "the browser is one epoch behind: next epoch"),
        ("match-two-epochs-later", NOW_MS + 2 * R, "two epochs later nothing matches"),
    ]:
        vectors.append(
            {
                "type": "match",
                "name": name,
                "description": what,
                "tokens": [t.hex() for t in advert.tokens],
                "groups": [g.hex() for g in held],
                "now_ms": now,
                "matches": [g.hex() for g in d.matching_groups(advert.tokens, held, now_ms=now)],
            }
        )
    good = d.encode_txt(advert)
    t = good[b"t"]
    raw = b"".join(advert.tokens)
    tokens = list(advert.tokens)
    decode_cases: list[tuple[str, str, dict[bytes, bytes | None], str | None]] = [
        ("txt-ok", "the advert's own TXT record", good, None),
        ("txt-ok-other-order", "t before v", {b"t": t, b"v": b"1"}, None),
        ("txt-no-version", "DT1: no key v", {b"t": t}, "malformed"),
        ("txt-version-without-value", "DT1: v without a value", {b"v": None, b"t": t}, "malformed"),
        ("txt-version-empty", "DT1: v empty", {b"v": b"", b"t": t}, "unknown-version"),
        ("txt-version-2", "DT1: a later version", {b"v": b"2", b"t": t}, "unknown-version"),
        (
            "txt-version-2-other-keys",
            "DT1 before DT2: a later version with keys this one does not know",
            {b"v": b"2", b"x": b"y"},
            "unknown-version",
        ),
        ("txt-version-01", "DT1: 01 is not 1", {b"v": b"01", b"t": t}, "unknown-version"),
        ("txt-unknown-key", "DT2: a key other than v and t", {**good, b"n": b"1"}, "malformed"),
        (
            "txt-upper-case-key",
            "DT2: keys are compared exactly (T is not t)",
            {b"v": b"1", b"T": t},
            "malformed",
        ),
        ("txt-no-tokens", "DT2: no key t", {b"v": b"1"}, "malformed"),
        (
            "txt-tokens-without-value",
            "DT2: t without a value",
            {b"v": b"1", b"t": None},
            "malformed",
        ),
        ("txt-tokens-empty", "DT3: t empty", {b"v": b"1", b"t": b""}, "wrong-length"),
        (
            "txt-seven-tokens",
            "DT3: seven tokens",
            {b"v": b"1", b"t": b32(raw[: 7 * d.TOKEN_SIZE])},
            "wrong-length",
        ),
        ("txt-one-char-short", "DT3: 102 characters", {b"v": b"1", b"t": t[:-1]}, "wrong-length"),
        (
            "txt-nine-tokens",
            "DT3: nine tokens",
            {b"v": b"1", b"t": b32(raw + bytes([0xFF]) * d.TOKEN_SIZE)},
            "too-large",
        ),
        (
            "txt-padded",
            "DT3: base32 padding (=) makes 104 characters",
            {b"v": b"1", b"t": t + b"="},
            "too-large",
        ),
        ("txt-upper-case", "DT4: upper-case base32", {b"v": b"1", b"t": t.upper()}, "malformed"),
        (
            "txt-bad-character",
            "DT4: 1 is not a base32 character",
            {b"v": b"1", b"t": b"1" + t[1:]},
            "malformed",
        ),
        (
            "txt-non-ascii",
            "DT4: a byte outside ASCII",
            {b"v": b"1", b"t": b"\xc3" + t[1:]},
            "malformed",
        ),
        (
            "txt-trailing-bits",
            "DT5: the last character carries nonzero unused bits",
            {b"v": b"1", b"t": t[:-1] + _flip_unused(t[-1:])},
            "not-canonical",
        ),
        (
            "txt-unsorted",
            "DT6: tokens out of order",
            {b"v": b"1", b"t": b32(b"".join([tokens[1], tokens[0], *tokens[2:]]))},
            "not-canonical",
        ),
        (
            "txt-duplicate",
            "DT6: a token twice",
            {b"v": b"1", b"t": b32(b"".join([tokens[0], *tokens[:7]]))},
            "not-canonical",
        ),
    ]
    for name, what, p, fail in decode_cases:
        vector: dict[str, Any] = {
            "type": "txt-decode",
            "name": name,
            "description": what,
            "properties": props(p),
        }
        if fail is None:
            vector["tokens"] = [x.hex() for x in d.decode_txt(p)]
        else:
            try:
                d.decode_txt(p)
            except DecodeError as exc:
                assert exc.code.value == fail, (name, exc)
            else:
                raise AssertionError(f"{name} decodes")
            vector["fail"] = fail
        vectors.append(vector)
    return {
        "description": "Discovery adverts: epochs, tokens, adverts and their TXT records, "
        "matching, and TXT records every reader must refuse",
        "revision": REVISION,
        "vectors": vectors,
    }


def _flip_unused(last: bytes) -> bytes:
    """The base32 character with the same 2 data bits as ``last`` and its lowest unused
    bit set (103 characters carry 515 bits for 512)."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz234567"
    return alphabet[alphabet.index(last) | 1 : (alphabet.index(last) | 1) + 1]
