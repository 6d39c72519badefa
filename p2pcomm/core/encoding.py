"""The p2pcomm msgpack profile (spec/01-encoding.md).

Theory of operation
-------------------
Everything p2pcomm puts on the wire or on disk is msgpack restricted to a small,
canonical profile:

* allowed types: nil, false/true, integers in [-2**63, 2**64 - 1], bin (bytes), str
  (UTF-8 text) and arrays. No floats, no maps, no ext types (timestamps included).
* canonical form: every value uses the shortest msgpack representation (what
  ``msgpack.packb(..., use_bin_type=True)`` produces). A decoder re-encodes what it
  decoded and rejects the input if the bytes differ, so one value has exactly one
  encoding and hashes/signatures over encodings are stable.
* structures are positional arrays whose first element is usually a version number;
  the typed decoders (one per wire type, in the module that owns the type) check each
  position's type and range with the ``expect_*`` helpers below.
* limits: total size, bin/str length, array length and nesting depth are bounded; a
  decoder never allocates more than its input allows.
* decoding order (spec 1.7): D1 size, D2 parsing (left to right; arrays nest at most
  :data:`MAX_NESTING` deep whatever the limits), D3 trailing data, then D4 for generic
  values (``max_depth``, then no float, in input order) or D5 for structures (the
  caller's ``expect_*`` checks, which refuse a float as ``wrong-type``), then D6.
  Floats are never refused while parsing: the same bytes give the same error in every
  decoder.

Every failure raises :class:`p2pcomm.errors.DecodeError` with an :class:`ErrorCode`
and the expected and found values. This module imports msgpack and the standard
library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias, cast

import msgpack

from ..errors import DecodeError, ErrorCode

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_NESTING",
    "Limits",
    "Value",
    "decode",
    "decode_canonical",
    "encode",
    "expect_array",
    "expect_bool",
    "expect_bytes",
    "expect_int",
    "expect_optional_bytes",
    "expect_str",
    "expect_uint",
    "value_length",
]

Value: TypeAlias = "bool | int | bytes | str | list[Value] | tuple[Value, ...] | None"

INT_MIN = -(2**63)
UINT_MAX = 2**64 - 1

MAX_NESTING = 1024
"""The parsing stack of every decoder (spec 1.7 D2): an array nested deeper than this is
``too-deep`` while parsing, whatever the decoder's limits. It is msgpack's own bound, so
the unpacker enforces it; tests pin it."""

_MAX_LIMIT_DEPTH = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds a decoder enforces before and while decoding."""

    #: Largest whole input accepted, in bytes.
    max_size: int = 1 << 20
    #: Longest bin or str value, in bytes.
    max_bytes: int = 1 << 20
    #: Most elements in one array.
    max_array: int = 4096
    #: Deepest nesting of arrays (a scalar has depth 0, ``[1]`` depth 1), checked in D4.
    max_depth: int = 8

    def __post_init__(self) -> None:
        if not 0 <= self.max_depth <= _MAX_LIMIT_DEPTH:
            raise ValueError(f"max_depth must be in 0..{_MAX_LIMIT_DEPTH}, found {self.max_depth}")


DEFAULT_LIMITS = Limits()


def _reject_ext(code: int, data: bytes) -> object:
    raise DecodeError(
        ErrorCode.FORBIDDEN_TYPE,
        f"ext type {code} is not allowed",
        expected="nil, bool, int, bin, str or array",
        found=f"ext {code}",
    )


def _reject_map(pairs: list[tuple[object, object]]) -> object:
    raise DecodeError(
        ErrorCode.FORBIDDEN_TYPE,
        "maps are not allowed; structures are positional arrays",
        expected="array",
        found="map",
    )


def encode(value: Value) -> bytes:
    """Encode ``value`` canonically. Raises ``TypeError``/``ValueError`` for values
    outside the profile (a programming error, not bad input)."""
    _check_encodable(value, 0)
    return cast(bytes, msgpack.packb(value, use_bin_type=True))


def _check_encodable(value: object, depth: int) -> None:
    if value is None or value is True or value is False:
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= UINT_MAX:
            raise ValueError(f"integer {value} is outside the encodable range")
        return
    if isinstance(value, bytes | str):
        return
    if isinstance(value, list | tuple):
        if depth >= 64:
            raise ValueError("value nests too deeply to encode")
        for item in value:
            _check_encodable(item, depth + 1)
        return
    raise TypeError(f"{type(value).__name__} is not part of the p2pcomm encoding profile")


#: For each first byte of a msgpack value with a length field: (size of the length field,
#: header bytes after it, values per unit of length: 0 when it counts payload bytes).
_LENGTH_FIELDS: Final = {
    0xC4: (1, 0, 0), 0xC5: (2, 0, 0), 0xC6: (4, 0, 0),  # bin 8/16/32
    0xC7: (1, 1, 0), 0xC8: (2, 1, 0), 0xC9: (4, 1, 0),  # ext 8/16/32: a type byte
    0xD9: (1, 0, 0), 0xDA: (2, 0, 0), 0xDB: (4, 0, 0),  # str 8/16/32
    0xDC: (2, 0, 1), 0xDD: (4, 0, 1),  # array 16/32
    0xDE: (2, 0, 2), 0xDF: (4, 0, 2),  # map 16/32: a key and a value per entry
}  # fmt: skip
#: Total size of the fixed-size formats from ``c0`` to ``d8`` (0: a length field or
#: ``c1``, which no value uses).
_FIXED_SIZES: Final = {
    0xC0: 1, 0xC2: 1, 0xC3: 1, 0xCA: 5, 0xCB: 9,
    0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9, 0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9,
    0xD4: 3, 0xD5: 4, 0xD6: 6, 0xD7: 10, 0xD8: 18,
}  # fmt: skip


def value_length(data: bytes) -> int | None:
    """The length of the msgpack value ``data`` begins with, or None if it does not
    begin with a complete one (12.3 PD1). Read from the format bytes alone, for every
    format of msgpack, in this profile or not (maps, floats, ext): it finds where a value
    ends, and checks nothing else (not canonical form, not UTF-8, no limits). ``c1`` is no
    value. Linear in ``len(data)``, with no recursion: each value left to read costs at
    least one byte."""
    n = len(data)
    pos = 0
    left = 1  # values still to read
    while left:
        if pos >= n:
            return None
        b = data[pos]
        left -= 1
        if b <= 0x7F or b >= 0xE0:  # positive and negative fixint
            pos += 1
        elif b <= 0x8F:  # fixmap
            pos += 1
            left += 2 * (b & 0x0F)
        elif b <= 0x9F:  # fixarray
            pos += 1
            left += b & 0x0F
        elif b <= 0xBF:  # fixstr
            pos += 1 + (b & 0x1F)
        elif b in _FIXED_SIZES:
            pos += _FIXED_SIZES[b]
        elif b in _LENGTH_FIELDS:
            size, extra, per = _LENGTH_FIELDS[b]
            start = pos + 1 + size
            if start > n:
                return None
            length = int.from_bytes(data[pos + 1 : start], "big")
            pos = start + extra
            if per:
                left += per * length
            else:
                pos += length
        else:  # c1
            return None
        if left > n - pos:  # each value left is at least one byte: it cannot end in time
            return None
    return pos if pos <= n else None


def _raw_unpack(data: bytes, limits: Limits) -> object:
    if len(data) > limits.max_size:
        raise DecodeError(
            ErrorCode.TOO_LARGE,
            f"input of {len(data)} bytes exceeds the limit of {limits.max_size}",
            expected=limits.max_size,
            found=len(data),
        )
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,  # any map is refused by object_pairs_hook
            ext_hook=_reject_ext,
            object_pairs_hook=_reject_map,
            max_bin_len=limits.max_bytes,
            max_str_len=limits.max_bytes,
            max_array_len=limits.max_array,
            # Maps and ext values are refused by the hooks (and _check_profile, for the
            # timestamp ext that msgpack decodes itself), not by a zero length limit, so
            # the error says what was wrong.
            max_map_len=limits.max_array,
            max_ext_len=limits.max_bytes,
        )
    except DecodeError:
        raise
    except msgpack.ExtraData as exc:
        raise DecodeError(
            ErrorCode.TRAILING_DATA,
            f"{len(exc.extra)} bytes of trailing data after the value",
            expected="end of input",
            found=len(exc.extra),
        ) from None
    except msgpack.StackError:
        raise DecodeError(
            ErrorCode.TOO_DEEP,
            f"arrays nest deeper than the parsing limit of {MAX_NESTING}",
            expected=MAX_NESTING,
        ) from None
    except UnicodeDecodeError as exc:
        raise DecodeError(
            ErrorCode.MALFORMED, f"str is not valid utf-8: {exc.reason}", expected="utf-8"
        ) from None
    except msgpack.FormatError:
        raise DecodeError(
            ErrorCode.MALFORMED, "reserved or invalid msgpack type byte", expected="msgpack"
        ) from None
    except ValueError as exc:
        text = str(exc)
        if "incomplete" in text:
            raise DecodeError(
                ErrorCode.TRUNCATED, "input ends inside a value", expected="more bytes"
            ) from None
        if "timestamp" in text:
            raise DecodeError(
                ErrorCode.FORBIDDEN_TYPE, "ext type -1 (timestamp) is not allowed", found="ext -1"
            ) from None
        if "exceeds max" in text:
            raise DecodeError(ErrorCode.TOO_LARGE, f"a length exceeds a limit ({text})") from None
        raise DecodeError(ErrorCode.MALFORMED, f"undecodable input ({text})") from None
    except (TypeError, OverflowError) as exc:  # pragma: no cover - msgpack internals
        raise DecodeError(ErrorCode.MALFORMED, f"undecodable input ({exc})") from None


def _check_profile(value: object, depth: int, limits: Limits) -> None:
    """D4: depth and floats, in input order (depth first, left to right)."""
    if isinstance(value, list):
        if depth >= limits.max_depth:
            raise DecodeError(
                ErrorCode.TOO_DEEP,
                f"arrays nest deeper than {limits.max_depth}",
                expected=limits.max_depth,
                found=depth + 1,
            )
        for item in value:
            _check_profile(item, depth + 1, limits)
    elif isinstance(value, float):
        raise DecodeError(
            ErrorCode.FORBIDDEN_TYPE, "floats are not allowed", expected="int", found="float"
        )
    elif isinstance(value, int):
        if not INT_MIN <= value <= UINT_MAX:  # pragma: no cover - msgpack cannot produce it
            raise DecodeError(ErrorCode.OUT_OF_RANGE, f"integer {value} out of range")
    elif not (value is None or isinstance(value, bytes | str)):
        # msgpack.Timestamp (ext -1) and anything else outside the profile.
        raise DecodeError(
            ErrorCode.FORBIDDEN_TYPE,
            f"{type(value).__name__} is not allowed",
            expected="nil, bool, int, bin, str or array",
            found=type(value).__name__,
        )


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Value:
    """Decode one canonical value that must fill ``data`` exactly.

    Raises :class:`DecodeError` for truncation, trailing bytes, forbidden types,
    non-canonical encodings or exceeded limits.
    """
    value = _raw_unpack(data, limits)
    _check_profile(value, 0, limits)
    if msgpack.packb(value, use_bin_type=True) != data:
        raise DecodeError(
            ErrorCode.NOT_CANONICAL,
            "input is not the canonical (shortest) encoding of its value",
            expected="canonical msgpack",
        )
    return cast(Value, value)


def decode_canonical(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[Value]:
    """Decode a positional structure (spec 1.7: D1 to D3, D5, D6): the value must be an
    array, and the caller checks every position with the ``expect_*`` helpers.

    D4 is not run: a float or an array nested deeper than the layout is refused by the
    caller's position checks (``wrong-type``, T3), exactly as a structure decoder that
    checks every position itself would. ``limits.max_depth`` is the depth of the layout;
    for a value that holds a float or nests deeper than it, the canonical check (D6) is
    left out here, because the caller's checks, which come first (D5), always fail on it.
    """
    value = _raw_unpack(data, limits)
    if not isinstance(value, list):
        raise DecodeError(
            ErrorCode.WRONG_TYPE,
            f"expected an array, found {_type_name(value)}",
            expected="array",
            found=_type_name(value),
        )
    if _within_layout(value, limits.max_depth) and _packb(value) != data:
        raise DecodeError(
            ErrorCode.NOT_CANONICAL,
            "input is not the canonical (shortest) encoding of its value",
            expected="canonical msgpack",
        )
    return cast(list[Value], value)


def _packb(value: object) -> bytes:
    return cast(bytes, msgpack.packb(value, use_bin_type=True))


def _within_layout(value: list[object], max_depth: int) -> bool:
    """True if ``value`` holds no float and nests no deeper than ``max_depth``."""
    stack: list[tuple[list[object], int]] = [(value, 1)]
    while stack:
        items, depth = stack.pop()
        if depth > max_depth:
            return False
        for item in items:
            if isinstance(item, float):
                return False
            if isinstance(item, list):
                stack.append((item, depth + 1))
    return True


def _type_name(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _wrong_type(what: str, expected: str, value: object) -> DecodeError:
    found = _type_name(value)
    return DecodeError(
        ErrorCode.WRONG_TYPE,
        f"{what}: expected {expected}, found {found}",
        expected=expected,
        found=found,
    )


def expect_array(
    value: object, what: str, *, length: int | None = None, max_length: int | None = None
) -> list[Value]:
    """``value`` as an array, with an exact ``length`` or at most ``max_length`` items."""
    if not isinstance(value, list):
        raise _wrong_type(what, "array", value)
    if length is not None and len(value) != length:
        raise DecodeError(
            ErrorCode.WRONG_LENGTH,
            f"{what}: expected an array of {length} items, found {len(value)}",
            expected=length,
            found=len(value),
        )
    if max_length is not None and len(value) > max_length:
        raise DecodeError(
            ErrorCode.TOO_LARGE,
            f"{what}: expected at most {max_length} items, found {len(value)}",
            expected=max_length,
            found=len(value),
        )
    return cast(list[Value], value)


def expect_bytes(
    value: object, what: str, *, length: int | None = None, max_length: int | None = None
) -> bytes:
    """``value`` as bin, with an exact ``length`` or at most ``max_length`` bytes."""
    if not isinstance(value, bytes):
        raise _wrong_type(what, "bin", value)
    if length is not None and len(value) != length:
        raise DecodeError(
            ErrorCode.WRONG_LENGTH,
            f"{what}: expected {length} bytes, found {len(value)}",
            expected=length,
            found=len(value),
        )
    if max_length is not None and len(value) > max_length:
        raise DecodeError(
            ErrorCode.TOO_LARGE,
            f"{what}: expected at most {max_length} bytes, found {len(value)}",
            expected=max_length,
            found=len(value),
        )
    return value


def expect_optional_bytes(value: object, what: str, *, length: int | None = None) -> bytes | None:
    """``value`` as nil or bin of ``length`` bytes."""
    if value is None:
        return None
    return expect_bytes(value, what, length=length)


def expect_str(value: object, what: str, *, max_length: int | None = None) -> str:
    """``value`` as str, at most ``max_length`` UTF-8 bytes."""
    if not isinstance(value, str):
        raise _wrong_type(what, "str", value)
    if max_length is not None and len(value) > max_length // 4 and len(value.encode()) > max_length:
        raise DecodeError(
            ErrorCode.TOO_LARGE,
            f"{what}: expected at most {max_length} utf-8 bytes",
            expected=max_length,
            found=len(value.encode()),
        )
    return value


def expect_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong_type(what, "bool", value)
    return value


def expect_int(value: object, what: str, *, minimum: int, maximum: int) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (bools are not ints here)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong_type(what, "int", value)
    if not minimum <= value <= maximum:
        raise DecodeError(
            ErrorCode.OUT_OF_RANGE,
            f"{what}: expected an integer in [{minimum}, {maximum}], found {value}",
            expected=(minimum, maximum),
            found=value,
        )
    return value


def expect_uint(value: object, what: str, *, maximum: int = UINT_MAX, minimum: int = 0) -> int:
    """``value`` as a non-negative int no larger than ``maximum``."""
    return expect_int(value, what, minimum=minimum, maximum=maximum)
