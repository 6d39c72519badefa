"""Tests of p2pcomm.core.encoding: the canonical msgpack profile (spec/01-encoding.md).

One case table drives both directions (h11 ``SIMPLE_CASES`` style): canonical rows are
encoded and decoded, rejected rows must fail with exactly their ``ErrorCode``. Every
decoder is also fed each strict prefix of its input and the input plus trailing bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcomm.core.encoding import (
    DEFAULT_LIMITS,
    MAX_NESTING,
    Limits,
    Value,
    decode,
    decode_canonical,
    encode,
    expect_array,
    expect_bool,
    expect_bytes,
    expect_int,
    expect_optional_bytes,
    expect_str,
    expect_uint,
    value_length,
)
from p2pcomm.errors import DecodeError, ErrorCode

INT_MIN = -(2**63)
UINT_MAX = 2**64 - 1

# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT_MIN, max_value=UINT_MAX),
    # Bias towards the boundaries where msgpack switches representation.
    st.sampled_from(
        [
            *(0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, UINT_MAX),
            *(-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, INT_MIN),
        ]
    ),
    st.binary(max_size=300),
    st.text(max_size=40),
)


def values(depth: int = DEFAULT_LIMITS.max_depth) -> st.SearchStrategy[Value]:
    """Every value of the profile nesting at most ``depth`` arrays deep."""
    if depth == 0:
        return scalars
    return st.one_of(scalars, st.lists(st.deferred(lambda: values(depth - 1)), max_size=5))


# --------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------


@given(values())
def test_decode_encode_round_trip(value: Value) -> None:
    data = encode(value)
    assert decode(data) == value
    # ... and the encoding is the canonical one, which re-encodes to itself.
    assert encode(decode(data)) == data
    assert data == msgpack.packb(value, use_bin_type=True)


@given(values())
def test_tuples_encode_like_lists(value: Value) -> None:
    def as_tuples(v: Value) -> Value:
        return tuple(as_tuples(x) for x in v) if isinstance(v, list) else v

    assert encode(as_tuples(value)) == encode(value)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_fail_typed(data: bytes) -> None:
    """A fuzz property: any input either decodes to a value whose encoding is exactly
    the input, or fails with a DecodeError (never another exception type)."""
    try:
        value = decode(data)
    except DecodeError as exc:
        assert isinstance(exc.code, ErrorCode)
    else:
        assert encode(value) == data


# --------------------------------------------------------------------------------------
# The case table
# --------------------------------------------------------------------------------------

_nested: Value = None
for _ in range(8):
    _nested = [_nested]  # 8 arrays around a nil: the deepest value allowed

#: (id, hex bytes, value) -- canonical: encode(value) == bytes and decode(bytes) == value.
CANONICAL: list[tuple[str, str, Value]] = [
    ("nil", "c0", None),
    ("false", "c2", False),
    ("true", "c3", True),
    ("zero", "00", 0),
    ("fixint-max", "7f", 127),
    ("uint8-min", "cc80", 128),
    ("uint8-max", "ccff", 255),
    ("uint16-min", "cd0100", 256),
    ("uint16-max", "cdffff", 65535),
    ("uint32-min", "ce00010000", 65536),
    ("uint32-max", "ceffffffff", 2**32 - 1),
    ("uint64-min", "cf0000000100000000", 2**32),
    ("uint64-max", "cfffffffffffffffff", UINT_MAX),
    ("negfixint-max", "ff", -1),
    ("negfixint-min", "e0", -32),
    ("int8-max", "d0df", -33),
    ("int8-min", "d080", -128),
    ("int16-max", "d1ff7f", -129),
    ("int16-min", "d18000", -32768),
    ("int32-max", "d2ffff7fff", -32769),
    ("int32-min", "d280000000", -(2**31)),
    ("int64-max", "d3ffffffff7fffffff", -(2**31) - 1),
    ("int64-min", "d38000000000000000", INT_MIN),
    ("bin-empty", "c400", b""),
    ("bin8", "c403616263", b"abc"),
    ("bin8-max", "c4ff" + "00" * 255, bytes(255)),
    ("bin16-min", "c50100" + "00" * 256, bytes(256)),
    ("str-empty", "a0", ""),
    ("fixstr", "a3616263", "abc"),
    ("fixstr-max", "bf" + "61" * 31, "a" * 31),
    ("str8-min", "d920" + "61" * 32, "a" * 32),
    ("str16-min", "da0100" + "61" * 256, "a" * 256),
    ("str-utf8", "a2c3a9", "\u00e9"),
    ("array-empty", "90", []),
    ("fixarray-max", "9f" + "00" * 15, [0] * 15),
    ("array16-min", "dc0010" + "00" * 16, [0] * 16),
    ("nested", "93c0c391a0", [None, True, [""]]),
    ("depth-8", "91" * 8 + "c0", _nested),
]

#: (id, hex bytes, code) -- decode(bytes) fails with exactly this code.
REJECTED: list[tuple[str, str, ErrorCode]] = [
    # forbidden types
    ("float32", "ca3f800000", ErrorCode.FORBIDDEN_TYPE),
    ("float64", "cb3ff0000000000000", ErrorCode.FORBIDDEN_TYPE),
    ("float-in-array", "9201ca3f800000", ErrorCode.FORBIDDEN_TYPE),
    ("fixmap-empty", "80", ErrorCode.FORBIDDEN_TYPE),
    ("fixmap", "810102", ErrorCode.FORBIDDEN_TYPE),
    ("fixmap-str-key", "81a16101", ErrorCode.FORBIDDEN_TYPE),
    ("fixmap-bin-key", "81c4016101", ErrorCode.FORBIDDEN_TYPE),
    ("map16", "de00010102", ErrorCode.FORBIDDEN_TYPE),
    ("map-in-array", "91810102", ErrorCode.FORBIDDEN_TYPE),
    ("ext8-empty", "c70005", ErrorCode.FORBIDDEN_TYPE),
    ("fixext1", "d40100", ErrorCode.FORBIDDEN_TYPE),
    ("fixext4", "d60500000000", ErrorCode.FORBIDDEN_TYPE),
    ("timestamp32", "d6ff00000001", ErrorCode.FORBIDDEN_TYPE),
    ("timestamp64", "d7ff0000000000000001", ErrorCode.FORBIDDEN_TYPE),
    # non-shortest forms
    ("uint8-for-fixint", "cc05", ErrorCode.NOT_CANONICAL),
    ("uint16-for-uint8", "cd00ff", ErrorCode.NOT_CANONICAL),
    ("uint32-for-uint16", "ce0000ffff", ErrorCode.NOT_CANONICAL),
    ("uint64-for-uint32", "cf00000000ffffffff", ErrorCode.NOT_CANONICAL),
    ("int8-for-positive", "d005", ErrorCode.NOT_CANONICAL),
    ("int8-for-negfixint", "d0ff", ErrorCode.NOT_CANONICAL),
    ("int16-for-int8", "d1ff80", ErrorCode.NOT_CANONICAL),
    ("int64-for-int32", "d3ffffffff80000000", ErrorCode.NOT_CANONICAL),
    ("str8-for-fixstr", "d90161", ErrorCode.NOT_CANONICAL),
    ("str16-for-fixstr", "da000161", ErrorCode.NOT_CANONICAL),
    ("str32-for-fixstr", "db0000000161", ErrorCode.NOT_CANONICAL),
    ("bin16-for-bin8", "c5000161", ErrorCode.NOT_CANONICAL),
    ("bin32-for-bin8", "c60000000161", ErrorCode.NOT_CANONICAL),
    ("array16-for-fixarray", "dc000101", ErrorCode.NOT_CANONICAL),
    ("array32-for-fixarray", "dd0000000101", ErrorCode.NOT_CANONICAL),
    ("nested-non-canonical", "920191cc05", ErrorCode.NOT_CANONICAL),
    # malformed
    ("reserved-c1", "c1", ErrorCode.MALFORMED),
    ("reserved-c1-in-array", "91c1", ErrorCode.MALFORMED),
    ("invalid-utf8", "a1ff", ErrorCode.MALFORMED),
    ("utf8-surrogate", "a3eda080", ErrorCode.MALFORMED),
    ("utf8-overlong", "a2c0af", ErrorCode.MALFORMED),
    # limits
    ("depth-9", "91" * 9 + "c0", ErrorCode.TOO_DEEP),
    ("depth-10000", "91" * 10000 + "c0", ErrorCode.TOO_DEEP),
    # truncation and trailing data
    ("empty", "", ErrorCode.TRUNCATED),
    ("truncated-uint16", "cd01", ErrorCode.TRUNCATED),
    ("truncated-bin", "c40561", ErrorCode.TRUNCATED),
    ("truncated-array", "9201", ErrorCode.TRUNCATED),
    ("trailing", "0100", ErrorCode.TRAILING_DATA),
    ("trailing-reserved", "c0c1", ErrorCode.TRAILING_DATA),
]


@pytest.mark.parametrize(("data", "value"), [pytest.param(h, v, id=i) for i, h, v in CANONICAL])
def test_canonical_cases_both_directions(data: str, value: Value) -> None:
    raw = bytes.fromhex(data)
    assert encode(value) == raw
    assert decode(raw) == value


@pytest.mark.parametrize(("data", "code"), [pytest.param(h, c, id=i) for i, h, c in REJECTED])
def test_rejected_cases(data: str, code: ErrorCode) -> None:
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex(data))
    assert info.value.code is code


@pytest.mark.parametrize(("data", "value"), [pytest.param(h, v, id=i) for i, h, v in CANONICAL])
def test_every_strict_prefix_is_truncated(data: str, value: Value) -> None:
    raw = bytes.fromhex(data)
    for n in range(len(raw)):
        with pytest.raises(DecodeError) as info:
            decode(raw[:n])
        assert info.value.code is ErrorCode.TRUNCATED, n


@pytest.mark.parametrize("garbage", [b"\x00", b"\xc1", b"\x91", b"\xff" * 9])
@pytest.mark.parametrize(("data", "value"), [pytest.param(h, v, id=i) for i, h, v in CANONICAL])
def test_trailing_data(data: str, value: Value, garbage: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex(data) + garbage)
    assert info.value.code is ErrorCode.TRAILING_DATA
    assert info.value.found == len(garbage)


@given(values(), st.binary(min_size=1, max_size=8))
def test_prefixes_and_trailing_data_of_any_value(value: Value, garbage: bytes) -> None:
    data = encode(value)
    for n in range(len(data)):
        with pytest.raises(DecodeError) as info:
            decode(data[:n])
        assert info.value.code is ErrorCode.TRUNCATED
    with pytest.raises(DecodeError) as info:
        decode(data + garbage)
    assert info.value.code is ErrorCode.TRAILING_DATA


# --------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------


def test_depth_limit_reports_expected_and_found() -> None:
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex("91" * 9 + "c0"))
    assert (info.value.expected, info.value.found) == (8, 9)
    assert decode(bytes.fromhex("9191c0"), Limits(max_depth=2)) == [[None]]
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex("919191c0"), Limits(max_depth=2))
    assert info.value.code is ErrorCode.TOO_DEEP


def test_whole_input_size_limit() -> None:
    data = encode(bytes(100))
    assert decode(data, Limits(max_size=len(data))) == bytes(100)
    with pytest.raises(DecodeError) as info:
        decode(data, Limits(max_size=len(data) - 1))
    assert info.value.code is ErrorCode.TOO_LARGE
    assert (info.value.expected, info.value.found) == (len(data) - 1, len(data))


@pytest.mark.parametrize(
    ("value", "limits"),
    [
        pytest.param(bytes(11), Limits(max_bytes=10), id="bin"),
        pytest.param("a" * 11, Limits(max_bytes=10), id="str"),
        pytest.param([0] * 11, Limits(max_array=10), id="array"),
        pytest.param([[0] * 11], Limits(max_array=10), id="inner-array"),
    ],
)
def test_length_limits(value: Value, limits: Limits) -> None:
    with pytest.raises(DecodeError) as info:
        decode(encode(value), limits)
    assert info.value.code is ErrorCode.TOO_LARGE


def test_default_array_limit() -> None:
    ok = [0] * DEFAULT_LIMITS.max_array
    assert decode(encode(ok)) == ok
    with pytest.raises(DecodeError) as info:
        decode(encode([*ok, 0]))
    assert info.value.code is ErrorCode.TOO_LARGE


def test_huge_declared_length_fails_without_allocating() -> None:
    # bin32 / str32 / array32 headers claiming ~4 GiB, with nothing behind them.
    for head in ("c6ffffffff", "dbffffffff", "ddffffffff"):
        with pytest.raises(DecodeError) as info:
            decode(bytes.fromhex(head))
        assert info.value.code in {ErrorCode.TRUNCATED, ErrorCode.TOO_LARGE}


# --------------------------------------------------------------------------------------
# encode() refuses values outside the profile (programming errors, not bad input)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "exc"),
    [
        (1.5, TypeError),
        ({1: 2}, TypeError),
        (bytearray(b"x"), TypeError),
        ([1, {2}], TypeError),
        (UINT_MAX + 1, ValueError),
        (INT_MIN - 1, ValueError),
        ([[UINT_MAX + 1]], ValueError),
    ],
)
def test_encode_refuses_values_outside_the_profile(value: object, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        encode(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# decode_canonical and the expect_* helpers
# --------------------------------------------------------------------------------------


def test_decode_canonical_requires_an_array() -> None:
    assert decode_canonical(encode([1, b"x"])) == [1, b"x"]
    with pytest.raises(DecodeError) as info:
        decode_canonical(encode(b"x"))
    assert (info.value.code, info.value.expected, info.value.found) == (
        ErrorCode.WRONG_TYPE,
        "array",
        "bin",
    )


def _fails(fn: Callable[..., object], *args: object, **kw: object) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        fn(*args, **kw)
    return info.value


def test_expect_array() -> None:
    assert expect_array([1, 2], "x", length=2) == [1, 2]
    assert expect_array([1, 2], "x", max_length=2) == [1, 2]
    e = _fails(expect_array, (1, 2), "x")  # a tuple is not a decoded array
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "array", "array")
    e = _fails(expect_array, 5, "x")
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "array", "int")
    e = _fails(expect_array, [1, 2], "x", length=3)
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_LENGTH, 3, 2)
    e = _fails(expect_array, [1, 2, 3], "x", max_length=2)
    assert (e.code, e.expected, e.found) == (ErrorCode.TOO_LARGE, 2, 3)


def test_expect_bytes() -> None:
    assert expect_bytes(b"ab", "x", length=2) == b"ab"
    e = _fails(expect_bytes, "ab", "x")
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "bin", "str")
    e = _fails(expect_bytes, None, "x")
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "bin", "nil")
    e = _fails(expect_bytes, b"ab", "x", length=32)
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_LENGTH, 32, 2)
    e = _fails(expect_bytes, b"abc", "x", max_length=2)
    assert (e.code, e.expected, e.found) == (ErrorCode.TOO_LARGE, 2, 3)


def test_expect_optional_bytes() -> None:
    assert expect_optional_bytes(None, "x", length=32) is None
    assert expect_optional_bytes(bytes(32), "x", length=32) == bytes(32)
    e = _fails(expect_optional_bytes, bytes(31), "x", length=32)
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_LENGTH, 32, 31)
    e = _fails(expect_optional_bytes, False, "x")
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "bin", "bool")


def test_expect_str() -> None:
    assert expect_str("\u00e9\u00e9", "x", max_length=4) == "\u00e9\u00e9"
    e = _fails(expect_str, b"ab", "x")
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "str", "bin")
    # The limit counts UTF-8 bytes, not characters.
    e = _fails(expect_str, "\u00e9\u00e9\u00e9", "x", max_length=5)
    assert (e.code, e.expected, e.found) == (ErrorCode.TOO_LARGE, 5, 6)


def test_expect_bool() -> None:
    assert expect_bool(True, "x") is True
    assert expect_bool(False, "x") is False
    e = _fails(expect_bool, 1, "x")
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "bool", "int")


def test_expect_int_and_uint() -> None:
    assert expect_int(-5, "x", minimum=-5, maximum=5) == -5
    assert expect_uint(UINT_MAX, "x") == UINT_MAX
    e = _fails(expect_int, True, "x", minimum=0, maximum=5)
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "int", "bool")
    e = _fails(expect_int, b"1", "x", minimum=0, maximum=5)
    assert (e.code, e.expected, e.found) == (ErrorCode.WRONG_TYPE, "int", "bin")
    e = _fails(expect_int, 6, "x", minimum=0, maximum=5)
    assert (e.code, e.expected, e.found) == (ErrorCode.OUT_OF_RANGE, (0, 5), 6)
    e = _fails(expect_uint, -1, "x")
    assert (e.code, e.expected, e.found) == (ErrorCode.OUT_OF_RANGE, (0, UINT_MAX), -1)
    e = _fails(expect_uint, 3, "x", minimum=4, maximum=9)
    assert (e.code, e.expected, e.found) == (ErrorCode.OUT_OF_RANGE, (4, 9), 3)


# --------------------------------------------------------------------------------------
# Decoding order (spec 1.7): the parsing limit, floats after D3, structures without D4
# --------------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\x01"


def test_parsing_limit_is_1024_nested_arrays_in_every_decoder() -> None:
    assert MAX_NESTING == 1024
    decode_canonical(_nested(MAX_NESTING))  # D1 to D3 pass; a layout would refuse it
    for decoder in (decode, decode_canonical):
        e = _fails(decoder, _nested(MAX_NESTING + 1))
        assert (e.code, e.expected) == (ErrorCode.TOO_DEEP, MAX_NESTING)
    # Left to right: the 1025th array header is reached before the input ends.
    assert _fails(decode, b"\x91" * 2000).code is ErrorCode.TOO_DEEP


def test_limits_max_depth_is_bounded() -> None:
    Limits(max_depth=64)
    with pytest.raises(ValueError):
        Limits(max_depth=65)


def test_floats_are_refused_after_trailing_data_and_truncation() -> None:
    assert _fails(decode, bytes.fromhex("ca3f800000c0")).code is ErrorCode.TRAILING_DATA
    assert _fails(decode, bytes.fromhex("92ca3f800000")).code is ErrorCode.TRUNCATED
    assert _fails(decode, bytes.fromhex("ca3f800000")).code is ErrorCode.FORBIDDEN_TYPE


@pytest.mark.parametrize(
    "hexed",
    ["9201ca3f800000", "9201cb3ff0000000000000", "92019191c0"],
    ids=["float32", "float64", "deeper-than-layout"],
)
def test_structure_positions_refuse_floats_and_nesting_as_wrong_type(hexed: str) -> None:
    """A structure decoder runs D5 instead of D4: the position check is what fails (T3),
    not D4 (forbidden-type, too-deep) and not D6 (a float 32 re-encodes as float 64)."""
    items = decode_canonical(bytes.fromhex(hexed), Limits(max_depth=1))
    expect_uint(items[0], "version")
    assert _fails(expect_uint, items[1], "x").code is ErrorCode.WRONG_TYPE


def test_structure_canonical_check_still_applies() -> None:
    assert _fails(decode_canonical, bytes.fromhex("92cc0101")).code is ErrorCode.NOT_CANONICAL
    assert _fails(decode_canonical, bytes.fromhex("9191cc01")).code is ErrorCode.NOT_CANONICAL


# ------------------------------------------------------------------ value_length (12.3)

_ANY_MSGPACK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=300)
    | st.text(max_size=300)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)),
    lambda inner: st.lists(inner, max_size=20)
    | st.dictionaries(st.integers(0, 1000), inner, max_size=5),
    max_leaves=40,
)


@given(_ANY_MSGPACK, st.binary(max_size=20))
def test_value_length_finds_where_any_msgpack_value_ends(value: object, tail: bytes) -> None:
    packed = msgpack.packb(value, use_bin_type=True)
    assert value_length(packed) == len(packed)
    assert value_length(packed + tail) == len(packed)
    for cut in range(len(packed)):
        assert value_length(packed[:cut]) is None


@given(st.binary(max_size=64))
def test_value_length_agrees_with_msgpack_on_any_bytes(data: bytes) -> None:
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False, use_list=True)
    unpacker.feed(data)
    try:
        unpacker.skip()
        expected: int | None = unpacker.tell()
    except (msgpack.OutOfData, ValueError, msgpack.FormatError, msgpack.StackError):
        expected = None
    assert value_length(data) == expected


@pytest.mark.parametrize(
    ("data", "length"),
    [
        (b"", None),
        (b"\xc1", None),
        (b"\x90", 1),
        (b"\x80", 1),
        (b"\x92\xc0", None),
        (b"\x81\x01", None),
        (b"\xdd\xff\xff\xff\xff" + bytes(10), None),  # claims 2^32 - 1 items
        (b"\xc6\xff\xff\xff\xff", None),  # claims 2^32 - 1 bytes
        (b"\xd8\x01" + bytes(16), 18),  # fixext 16
        (b"\xc7\x02\x05ab", 5),  # ext 8: length, type, data
        (b"\x91" * 5000 + b"\xc0", 5001),  # deep nesting: no recursion
    ],
)
def test_value_length_cases(data: bytes, length: int | None) -> None:
    assert value_length(data) == length
