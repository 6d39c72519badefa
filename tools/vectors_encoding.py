"""Vectors for spec/01-encoding.md: the p2pcomm msgpack profile.

The table below is written by hand from the msgpack specification, not produced by
p2pcomm's encoder, so the tests that consume ``spec/vectors/encoding.json`` check the
implementation against an independent statement of the canonical forms.

Values are written in the tagged JSON notation of spec/README.md §5:
``{"nil": null}``, ``{"bool": true}``, ``{"int": "<decimal>"}``, ``{"bin": "<hex>"}``,
``{"str": "<text>"}``, ``{"array": [<value>, ...]}``.
"""

from __future__ import annotations

from typing import Any

REVISION = 6

Json = dict[str, Any]


def nil() -> Json:
    return {"nil": None}


def boolean(b: bool) -> Json:
    return {"bool": b}


def integer(i: int) -> Json:
    return {"int": str(i)}


def binary(b: bytes) -> Json:
    return {"bin": b.hex()}


def text(s: str) -> Json:
    return {"str": s}


def array(*items: Json) -> Json:
    return {"array": list(items)}


def _nested(depth: int) -> Json:
    value = integer(1)
    for _ in range(depth):
        value = array(value)
    return value


# (name, value, canonical encoding in hex, note)
_CANONICAL: list[tuple[str, Json, str, str]] = [
    ("nil", nil(), "c0", "nil"),
    ("false", boolean(False), "c2", "false"),
    ("true", boolean(True), "c3", "true"),
    ("int-0", integer(0), "00", "positive fixint"),
    ("int-1", integer(1), "01", "positive fixint"),
    ("int-127", integer(127), "7f", "largest positive fixint"),
    ("int-128", integer(128), "cc80", "uint 8"),
    ("int-255", integer(255), "ccff", "largest uint 8"),
    ("int-256", integer(256), "cd0100", "uint 16"),
    ("int-65535", integer(65535), "cdffff", "largest uint 16"),
    ("int-65536", integer(65536), "ce00010000", "uint 32"),
    ("int-4294967295", integer(2**32 - 1), "ceffffffff", "largest uint 32"),
    ("int-4294967296", integer(2**32), "cf0000000100000000", "uint 64"),
    ("int-2^63-1", integer(2**63 - 1), "cf7fffffffffffffff", "non-negative: always unsigned"),
    ("int-2^64-1", integer(2**64 - 1), "cfffffffffffffffff", "largest integer of the profile"),
    ("int-minus-1", integer(-1), "ff", "negative fixint"),
    ("int-minus-32", integer(-32), "e0", "smallest negative fixint"),
    ("int-minus-33", integer(-33), "d0df", "int 8"),
    ("int-minus-128", integer(-128), "d080", "smallest int 8"),
    ("int-minus-129", integer(-129), "d1ff7f", "int 16"),
    ("int-minus-32768", integer(-32768), "d18000", "smallest int 16"),
    ("int-minus-32769", integer(-32769), "d2ffff7fff", "int 32"),
    ("int-minus-2^31", integer(-(2**31)), "d280000000", "smallest int 32"),
    ("int-minus-2^31-1", integer(-(2**31) - 1), "d3ffffffff7fffffff", "int 64"),
    ("int-minus-2^63", integer(-(2**63)), "d38000000000000000", "smallest integer of the profile"),
    ("bin-empty", binary(b""), "c400", "bin 8 (bin has no fix form)"),
    ("bin-1", binary(b"\x00"), "c40100", "bin 8"),
    ("bin-32", binary(bytes(range(32))), "c420" + bytes(range(32)).hex(), "a 32-byte id"),
    ("bin-255", binary(b"\xab" * 255), "c4ff" + "ab" * 255, "largest bin 8"),
    ("bin-256", binary(b"\xab" * 256), "c50100" + "ab" * 256, "bin 16"),
    ("str-empty", text(""), "a0", "fixstr"),
    ("str-a", text("a"), "a161", "fixstr"),
    ("str-utf8", text("\u00e9\u20ac"), "a5c3a9e282ac", "fixstr; the length counts UTF-8 bytes"),
    ("str-31", text("x" * 31), "bf" + "78" * 31, "largest fixstr"),
    ("str-32", text("x" * 32), "d920" + "78" * 32, "str 8"),
    ("str-255", text("x" * 255), "d9ff" + "78" * 255, "largest str 8"),
    ("str-256", text("x" * 256), "da0100" + "78" * 256, "str 16"),
    ("array-empty", array(), "90", "fixarray"),
    (
        "array-mixed",
        array(integer(1), nil(), boolean(True), binary(b"\x01"), text("a")),
        "9501c0c3c40101a161",
        "fixarray of mixed items",
    ),
    ("array-15", {"array": [integer(0)] * 15}, "9f" + "00" * 15, "largest fixarray"),
    ("array-16", {"array": [integer(0)] * 16}, "dc0010" + "00" * 16, "array 16"),
    ("array-nested", array(integer(1), array(integer(2), array())), "9201920290", "nested arrays"),
    (
        "array-depth-8",
        _nested(8),
        "91" * 8 + "01",
        "8 nested arrays: the deepest the default limits allow",
    ),
    (
        "positional-structure",
        array(integer(1), binary(bytes(32)), integer(1795392000000), nil()),
        "9401c420" + "00" * 32 + "cf000001a205b3d000" + "c0",
        "a versioned positional array, as every p2pcomm structure is written",
    ),
]

# (name, encoding in hex, error code, note[, limits])
_FAILING: list[tuple[str, str, str, str] | tuple[str, str, str, str, dict[str, int]]] = [
    # forbidden types
    ("float32", "ca3f800000", "forbidden-type", "float 32 (1.0)"),
    ("float64", "cb3ff0000000000000", "forbidden-type", "float 64 (1.0)"),
    ("float-in-array", "9201cb3ff0000000000000", "forbidden-type", "a float inside an array"),
    # floats are parsed in D2 and refused in D4, never earlier (1.7)
    ("float-truncated", "cb3ff0", "truncated", "float 64 with 2 of its 8 bytes (D2)"),
    (
        "float-then-trailing",
        "ca3f800000c0",
        "trailing-data",
        "float 32 followed by a byte: D3 comes before D4, where floats are refused",
    ),
    (
        "float-in-truncated-array",
        "92ca3f800000",
        "truncated",
        "an array of 2 holding only a float: D2 comes before D4",
    ),
    (
        "float-before-too-deep",
        "92ca3f8000009190",
        "forbidden-type",
        "[1.0, [[]]] with max_depth 1: D4 reports the first problem in input order",
        {"max_depth": 1},
    ),
    (
        "too-deep-before-float",
        "929190ca3f800000",
        "too-deep",
        "[[[]], 1.0] with max_depth 1: D4 reports the first problem in input order",
        {"max_depth": 1},
    ),
    ("map-empty", "80", "forbidden-type", "empty fixmap"),
    ("map-1", "81a161a162", "forbidden-type", 'fixmap {"a": "b"}'),
    ("map16-empty", "de0000", "forbidden-type", "empty map 16"),
    ("map-in-array", "9181a161a162", "forbidden-type", "a map inside an array"),
    ("ext8-empty", "c70001", "forbidden-type", "ext 8, type 1, no data"),
    ("fixext1", "d40100", "forbidden-type", "fixext 1, type 1"),
    ("timestamp32", "d6ff00000000", "forbidden-type", "the msgpack timestamp extension (type -1)"),
    ("reserved-c1", "c1", "malformed", "0xc1 is never used"),
    ("reserved-c1-in-array", "91c1", "malformed", "0xc1 inside an array"),
    # UTF-8
    ("str-invalid-utf8", "a1ff", "malformed", "0xff is not UTF-8"),
    ("str-surrogate", "a3eda080", "malformed", "an encoded UTF-16 surrogate (U+D800)"),
    ("str-overlong", "a2c080", "malformed", "an overlong encoding of U+0000"),
    # truncation
    ("empty-input", "", "truncated", "no bytes at all"),
    ("truncated-uint16", "cd01", "truncated", "uint 16 with one byte"),
    ("truncated-array", "9201", "truncated", "array of 2 with one item"),
    ("truncated-bin", "c40301", "truncated", "bin 8 of 3 bytes with one byte"),
    ("truncated-str", "a361", "truncated", "fixstr of 3 bytes with one byte"),
    # trailing data
    ("trailing-byte", "0100", "trailing-data", "a complete value followed by one byte"),
    ("two-values", "90c0", "trailing-data", "two complete values"),
    # non-canonical integers
    ("uint8-small", "cc01", "not-canonical", "1 as uint 8"),
    ("uint16-small", "cd00ff", "not-canonical", "255 as uint 16"),
    ("uint32-small", "ce0000ffff", "not-canonical", "65535 as uint 32"),
    ("uint64-small", "cf00000000ffffffff", "not-canonical", "2^32-1 as uint 64"),
    ("int8-positive", "d001", "not-canonical", "1 as int 8 (non-negative values are unsigned)"),
    ("int64-positive", "d30000000000000001", "not-canonical", "1 as int 64"),
    ("int8-fixint", "d0ff", "not-canonical", "-1 as int 8"),
    ("int16-small", "d1ff80", "not-canonical", "-128 as int 16"),
    ("int64-minus-1", "d3ffffffffffffffff", "not-canonical", "-1 as int 64"),
    # non-canonical lengths
    ("str8-short", "d90161", "not-canonical", '"a" as str 8'),
    ("str8-31", "d91f" + "78" * 31, "not-canonical", "31 bytes as str 8"),
    ("str16-short", "da000161", "not-canonical", '"a" as str 16'),
    ("str32-short", "db0000000161", "not-canonical", '"a" as str 32'),
    ("bin16-short", "c5000161", "not-canonical", "1 byte as bin 16"),
    ("bin32-short", "c60000000161", "not-canonical", "1 byte as bin 32"),
    ("array16-short", "dc000101", "not-canonical", "[1] as array 16"),
    ("array32-short", "dd0000000101", "not-canonical", "[1] as array 32"),
    ("noncanonical-inside", "9201cc01", "not-canonical", "a non-canonical integer inside an array"),
    # limits (default limits unless "limits" is given)
    ("depth-9", "91" * 9 + "01", "too-deep", "9 nested arrays; the default limit is 8"),
    (
        "nesting-1025",
        "91" * 1025 + "01",
        "too-deep",
        "1025 nested arrays: over the parsing limit of 1024 (D2), whatever max_depth says",
    ),
    ("limit-size", "93010203", "too-large", "4 bytes with max_size 3", {"max_size": 3}),
    ("limit-bin", "c403010203", "too-large", "bin of 3 bytes with max_bytes 2", {"max_bytes": 2}),
    ("limit-str", "a3616263", "too-large", "str of 3 bytes with max_bytes 2", {"max_bytes": 2}),
    ("limit-array", "93010203", "too-large", "array of 3 with max_array 2", {"max_array": 2}),
    ("limit-depth", "9191c0", "too-deep", "2 nested arrays with max_depth 1", {"max_depth": 1}),
]

DEFAULT_LIMITS = {"max_size": 1 << 20, "max_bytes": 1 << 20, "max_array": 4096, "max_depth": 8}


def generate() -> dict[str, Any]:
    vectors: list[Json] = [
        {
            "type": "limits",
            "name": "default-limits",
            "description": "the limits a decoder applies when a structure names no others",
            "limits": dict(DEFAULT_LIMITS),
        }
    ]
    for name, value, hexed, note in _CANONICAL:
        vectors.append(
            {"type": "value", "name": name, "description": note, "value": value, "encoded": hexed}
        )
    for item in _FAILING:
        name, hexed, code, note = item[:4]
        vector: Json = {
            "type": "value",
            "name": name,
            "description": note,
            "encoded": hexed,
            "fail": code,
        }
        if len(item) == 5:
            limits = dict(DEFAULT_LIMITS)
            limits.update(item[4])  # type: ignore[misc]
            vector["limits"] = limits
        vectors.append(vector)
    vectors.append(
        {
            "type": "structure",
            "name": "structure-not-array",
            "description": "a structure (positional array) was expected; a bare integer was found",
            "encoded": "01",
            "fail": "wrong-type",
        }
    )
    vectors.append(
        {
            "type": "structure",
            "name": "structure-float",
            "description": (
                "a float where a structure belongs: structure decoders refuse floats in D5 "
                "(T3), so this is wrong-type, not forbidden-type"
            ),
            "encoded": "ca3f800000",
            "fail": "wrong-type",
        }
    )
    vectors.append(
        {
            "type": "structure",
            "name": "structure-nesting-1024",
            "description": (
                "1024 nested arrays pass D1 to D3 (the parsing limit is 1024); a structure's "
                "layout then refuses them in D5"
            ),
            "encoded": "91" * 1024 + "01",
            "depth": 1024,
        }
    )
    vectors.append(
        {
            "type": "structure",
            "name": "structure-nesting-1025",
            "description": "1025 nested arrays: too-deep while parsing (D2), in every decoder",
            "encoded": "91" * 1025 + "01",
            "fail": "too-deep",
        }
    )
    return {
        "description": (
            "p2pcomm msgpack profile (spec/01-encoding.md): canonical encodings of values "
            "and inputs every decoder must reject"
        ),
        "revision": REVISION,
        "vectors": vectors,
    }
