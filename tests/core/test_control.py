"""Tests of p2pcomm.core.control: line framing, every message both ways, validation
failures, and errors carried across the control socket."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from p2pcomm.core.control import (
    INTERNAL,
    LAGGED,
    MAX_ID,
    MAX_LINE_LENGTH,
    PROTOCOL_VERSION,
    ControlReplyError,
    ErrorReply,
    Event,
    Hello,
    LineBuffer,
    Request,
    Result,
    decode_hello,
    decode_line,
    decode_reply,
    decode_request,
    encode_line,
    error_from_json,
    error_to_json,
)
from p2pcomm.errors import (
    BundleError,
    ControlError,
    DecodeError,
    ErrorCode,
    IdentityError,
    NotFoundError,
    P2PCommError,
    RefusedError,
    StoreError,
    ValidationError,
)

NODE = "pc1qexamplenodeid"


def protocol_error(fn: Callable[[], object]) -> ControlError:
    with pytest.raises(ControlError) as info:
        fn()
    assert info.value.code is ErrorCode.CONTROL_PROTOCOL, info.value
    return info.value


# -- framing ----------------------------------------------------------------------------

LINES = [b'{"a":1}', b"", b'{"text":"caf\xc3\xa9 \\n"}', b"x" * 40]
STREAM = b"".join(line + b"\n" for line in LINES)


def drain(buffer: LineBuffer) -> list[bytes]:
    out = []
    while (line := buffer.next_line()) is not None:
        out.append(line)
    return out


def test_lines_come_out_whole_however_the_bytes_are_split() -> None:
    for cut in range(len(STREAM) + 1):
        buffer = LineBuffer(limit=64)
        got = []
        for piece in (STREAM[:cut], STREAM[cut:]):
            if piece:
                buffer.feed(piece)
            got += drain(buffer)
        buffer.feed(b"")
        got += drain(buffer)
        assert got == LINES, cut
        assert buffer.eof and len(buffer) == 0


def test_lines_come_out_whole_byte_at_a_time() -> None:
    buffer = LineBuffer(limit=64)
    got = []
    for i in range(len(STREAM)):
        buffer.feed(STREAM[i : i + 1])
        got += drain(buffer)
    assert got == LINES


def test_a_line_of_exactly_the_limit_passes() -> None:
    buffer = LineBuffer(limit=10)
    buffer.feed(b"0123456789")
    assert buffer.next_line() is None and not buffer.ready()
    buffer.feed(b"\n")
    assert buffer.ready()
    assert buffer.next_line() == b"0123456789"


def test_a_line_over_the_limit_fails_before_its_end_arrives() -> None:
    buffer = LineBuffer(limit=10)
    buffer.feed(b"0123456789")
    assert buffer.next_line() is None
    buffer.feed(b"A")  # 11 bytes, no newline yet
    assert buffer.ready()
    err = protocol_error(buffer.next_line)
    assert (err.expected, err.found) == (10, 11)


def test_a_line_over_the_limit_fails_when_it_arrives_whole() -> None:
    buffer = LineBuffer(limit=10)
    buffer.feed(b"ok\n" + b"x" * 11 + b"\n")
    assert buffer.next_line() == b"ok"
    err = protocol_error(buffer.next_line)
    assert err.found == 11


def test_the_default_limit_is_one_mebibyte() -> None:
    assert MAX_LINE_LENGTH == 1 << 20 == LineBuffer().limit


def test_the_end_of_the_stream_in_the_middle_of_a_line_fails() -> None:
    buffer = LineBuffer()
    buffer.feed(b'{"a":')
    assert buffer.next_line() is None
    buffer.feed(b"")
    assert buffer.ready()
    protocol_error(buffer.next_line)


def test_the_end_of_the_stream_between_lines_is_clean() -> None:
    buffer = LineBuffer()
    buffer.feed(b"one\n")
    buffer.feed(b"")
    assert buffer.next_line() == b"one"
    assert buffer.next_line() is None and buffer.eof and not buffer.ready()


def test_data_after_the_end_is_a_caller_bug() -> None:
    buffer = LineBuffer()
    buffer.feed(b"")
    with pytest.raises(ValueError):
        buffer.feed(b"x")
    with pytest.raises(ValueError):
        LineBuffer(limit=0)


# -- one line, one JSON object ---------------------------------------------------------


def test_encode_line_is_compact_utf8_with_one_newline() -> None:
    line = encode_line({"text": "café\nnext", "n": [1, 2]})
    assert line == '{"text":"café\\nnext","n":[1,2]}\n'.encode()
    assert line.count(b"\n") == 1
    assert decode_line(line[:-1]) == {"text": "café\nnext", "n": [1, 2]}


def test_encode_line_refuses_what_the_limit_or_json_cannot_hold() -> None:
    with pytest.raises(ControlError) as info:
        encode_line({"x": "y" * 100}, limit=50)
    assert info.value.code is ErrorCode.TOO_LARGE and info.value.expected == 50
    with pytest.raises(ValueError):
        encode_line({"x": float("nan")})
    with pytest.raises(TypeError):
        encode_line({"x": b"bytes"})


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1, "a": 2}',
        b'{"a": 1} {"b": 2}',
        b'{"a": "\xff"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=lambda b: repr(b[:20]),
)
def test_decode_line_refuses(line: bytes) -> None:
    protocol_error(lambda: decode_line(line))


# -- every message, both ways ----------------------------------------------------------

HELLO = Hello(node=NODE, version="0.1.0", methods={"post": "call", "tail": "stream"})

# (message, its JSON object, the decoder that reads it)
CASES: list[tuple[Any, dict[str, Any] | None, Callable[[bytes], Any]]] = [
    (
        HELLO,
        {
            "type": "hello",
            "proto": 1,
            "version": "0.1.0",
            "node": NODE,
            "methods": {"post": "call", "tail": "stream"},
        },
        decode_hello,
    ),
    (Hello(node=NODE, version="9", methods={}), None, decode_hello),
    (
        Request(id=1, method="post", params={"text": "hi"}),
        {"id": 1, "method": "post", "params": {"text": "hi"}},
        decode_request,
    ),
    (Request(id=MAX_ID, method="m"), {"id": MAX_ID, "method": "m", "params": {}}, decode_request),
    (Result(id=0, result={"ok": True}), {"id": 0, "result": {"ok": True}}, decode_reply),
    (Result(id=7), {"id": 7, "result": {}}, decode_reply),
    (
        Event(id=2, event={"i": 1, "t": [None]}),
        {"id": 2, "event": {"i": 1, "t": [None]}},
        decode_reply,
    ),
    (
        ErrorReply(id=3, code="not-found", message="no group abc"),
        {"id": 3, "error": {"code": "not-found", "message": "no group abc"}},
        decode_reply,
    ),
    (
        ErrorReply(id=4, code="refused", message="not a member", reason="not-a-member"),
        {
            "id": 4,
            "error": {"code": "refused", "message": "not a member", "reason": "not-a-member"},
        },
        decode_reply,
    ),
    (
        ErrorReply(id=None, code="control-protocol", message="line is not JSON"),
        {"id": None, "error": {"code": "control-protocol", "message": "line is not JSON"}},
        decode_reply,
    ),
    (
        ErrorReply(id=5, code=LAGGED, message="too slow"),
        {"id": 5, "error": {"code": "lagged", "message": "too slow"}},
        decode_reply,
    ),
]


@pytest.mark.parametrize("message, obj, decode", CASES, ids=lambda x: type(x).__name__)
def test_each_message_encodes_to_its_line_and_back(
    message: Any, obj: dict[str, Any] | None, decode: Callable[[bytes], Any]
) -> None:
    line = message.encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    if obj is not None:
        assert json.loads(line) == obj
        assert message.to_json() == obj
    assert decode(line[:-1]) == message


def test_all_messages_split_at_every_byte() -> None:
    wire = b"".join(message.encode() for message, _, _ in CASES)
    for cut in range(0, len(wire) + 1, 3):
        buffer = LineBuffer()
        lines: list[bytes] = []
        for piece in (wire[:cut], wire[cut:]):
            if piece:
                buffer.feed(piece)
            lines += drain(buffer)
        decoded = [decode(line) for line, (_, _, decode) in zip(lines, CASES, strict=True)]
        assert decoded == [message for message, _, _ in CASES]


def test_params_may_be_left_out_and_unknown_members_are_ignored() -> None:
    assert decode_request(b'{"id": 1, "method": "status"}') == Request(id=1, method="status")
    assert decode_request(b'{"id": 1, "method": "m", "params": {}, "trace": "x"}') == Request(
        id=1, method="m"
    )
    hello = dict(HELLO.to_json(), features=["x"])
    assert decode_hello(json.dumps(hello).encode()) == HELLO
    assert decode_reply(b'{"id": 1, "result": {}, "took_ms": 3}') == Result(id=1)
    assert decode_reply(
        b'{"id": 1, "error": {"code": "not-found", "message": "m", "hint": "h"}}'
    ) == ErrorReply(id=1, code="not-found", message="m")


def test_messages_refuse_bad_ids_on_construction() -> None:
    for bad in (-1, MAX_ID + 1, True, 1.0, "1", None):
        with pytest.raises(ValueError):
            Request(id=bad, method="m")  # type: ignore[arg-type]
    assert ErrorReply(id=None, code="x", message="m").id is None


def hello_with(**changes: Any) -> bytes:
    obj: dict[str, Any] = dict(HELLO.to_json(), **changes)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "line",
    [
        hello_with(type="result"),
        hello_with(type=...),
        hello_with(proto="1"),
        hello_with(proto=True),
        hello_with(proto=...),
        hello_with(version=1),
        hello_with(node=None),
        hello_with(methods=["post"]),
        hello_with(methods={"post": "sink"}),
        b'{"id": 1, "result": {}}',
    ],
)
def test_decode_hello_refuses(line: bytes) -> None:
    protocol_error(lambda: decode_hello(line))


def test_a_node_with_another_protocol_is_refused_with_advice() -> None:
    err = protocol_error(lambda: decode_hello(hello_with(proto=2, methods=None)))
    assert "speaks control protocol 2" in err.message and "restart it" in err.message
    assert (err.expected, err.found) == (PROTOCOL_VERSION, 2)


def test_a_hello_that_is_an_error_raises_that_error() -> None:
    line = ErrorReply(id=None, code="refused", message="not yours", reason="other-user").encode()
    with pytest.raises(RefusedError) as info:
        decode_hello(line[:-1])
    assert info.value.reason == "other-user"


@pytest.mark.parametrize(
    "line",
    [
        b'{"method": "m"}',
        b'{"id": "1", "method": "m"}',
        b'{"id": true, "method": "m"}',
        b'{"id": 1.5, "method": "m"}',
        b'{"id": -1, "method": "m"}',
        b'{"id": 9007199254740992, "method": "m"}',
        b'{"id": null, "method": "m"}',
        b'{"id": 1}',
        b'{"id": 1, "method": ""}',
        b'{"id": 1, "method": 7}',
        b'{"id": 1, "method": "m", "params": []}',
        b'{"id": 1, "method": "m", "params": null}',
    ],
)
def test_decode_request_refuses(line: bytes) -> None:
    protocol_error(lambda: decode_request(line))


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": 1}',
        b'{"id": 1, "result": {}, "event": {}}',
        b'{"id": 1, "result": {}, "error": {"code": "x", "message": "m"}}',
        b'{"id": 1, "result": []}',
        b'{"id": 1, "event": "text"}',
        b'{"id": null, "result": {}}',
        b'{"result": {}}',
        b'{"id": 1, "error": "boom"}',
        b'{"id": 1, "error": {"message": "m"}}',
        b'{"id": 1, "error": {"code": "", "message": "m"}}',
        b'{"id": 1, "error": {"code": "x"}}',
        b'{"id": 1, "error": {"code": "x", "message": "m", "reason": 3}}',
        b'{"id": 1, "error": {"code": "refused", "message": "m"}}',
        b'{"id": "1", "error": {"code": "x", "message": "m"}}',
    ],
)
def test_decode_reply_refuses(line: bytes) -> None:
    protocol_error(lambda: decode_reply(line))


# -- errors across the socket ----------------------------------------------------------

FAMILY: dict[ErrorCode, type[P2PCommError]] = {
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.AMBIGUOUS: NotFoundError,
    ErrorCode.STORE_LOCKED: StoreError,
    ErrorCode.STORE_CORRUPT: StoreError,
    ErrorCode.STORE_CLOSED: StoreError,
    ErrorCode.STORE_VERSION: StoreError,
    ErrorCode.BAD_SIGNATURE: ValidationError,
    ErrorCode.UNAUTHORIZED: ValidationError,
    ErrorCode.BAD_INVITATION: ValidationError,
    ErrorCode.BAD_OPERATION: ValidationError,
    ErrorCode.NODE_UNREACHABLE: ControlError,
    ErrorCode.CONTROL_PROTOCOL: ControlError,
    ErrorCode.ADDRESS_IN_USE: ControlError,
    ErrorCode.TOO_LARGE: DecodeError,
    ErrorCode.MALFORMED: DecodeError,
    ErrorCode.BAD_ID_TEXT: IdentityError,
    ErrorCode.WRONG_PASSPHRASE: IdentityError,
    ErrorCode.BAD_BUNDLE: BundleError,
    ErrorCode.TIMEOUT: P2PCommError,
    ErrorCode.HANDSHAKE_FAILED: P2PCommError,
}


@pytest.mark.parametrize("code", [c for c in ErrorCode if c is not ErrorCode.REFUSED])
def test_every_error_code_round_trips(code: ErrorCode) -> None:
    original = P2PCommError(code, f"something about {code.value}")
    d = error_to_json(original)
    assert d == {"code": code.value, "message": f"something about {code.value}"}
    rebuilt = error_from_json(d)
    assert rebuilt.code is code and rebuilt.message == original.message
    assert str(rebuilt) == str(original)
    if code in FAMILY:
        assert type(rebuilt) is FAMILY[code]
    assert error_to_json(rebuilt) == d


def test_a_refusal_round_trips_with_its_reason() -> None:
    original = RefusedError("only admins may remove an admin", reason="insufficient-role")
    d = error_to_json(original)
    assert d == {
        "code": "refused",
        "message": "only admins may remove an admin",
        "reason": "insufficient-role",
    }
    rebuilt = error_from_json(d)
    assert isinstance(rebuilt, RefusedError)
    assert (rebuilt.code, rebuilt.reason, rebuilt.message) == (
        ErrorCode.REFUSED,
        "insufficient-role",
        original.message,
    )
    reply = ErrorReply.from_exception(9, original)
    assert reply == ErrorReply(
        id=9, code="refused", message=original.message, reason="insufficient-role"
    )
    rebuilt = reply.exception()
    assert isinstance(rebuilt, RefusedError) and rebuilt.reason == "insufficient-role"


def test_the_subclass_raised_is_the_subclass_rebuilt() -> None:
    for exc in (
        NotFoundError(ErrorCode.AMBIGUOUS, "3 groups start with ab"),
        StoreError(ErrorCode.STORE_LOCKED, "locked"),
        ValidationError(ErrorCode.BAD_OPERATION, "no such role"),
        ControlError(ErrorCode.NODE_UNREACHABLE, "gone"),
    ):
        rebuilt = error_from_json(error_to_json(exc))
        assert type(rebuilt) is type(exc) and rebuilt.code is exc.code


@pytest.mark.parametrize("wire_code", [INTERNAL, LAGGED, "from-a-newer-node"])
def test_codes_outside_error_code_arrive_as_control_reply_errors(wire_code: str) -> None:
    rebuilt = error_from_json({"code": wire_code, "message": "details"})
    assert isinstance(rebuilt, ControlReplyError) and isinstance(rebuilt, ControlError)
    assert rebuilt.wire_code == wire_code and rebuilt.code is ErrorCode.CONTROL_PROTOCOL
    assert str(rebuilt) == f"{wire_code}: details"
    assert error_to_json(rebuilt) == {"code": wire_code, "message": "details"}


def test_error_from_json_checks_its_input() -> None:
    protocol_error(lambda: error_from_json({"message": "no code"}))
    protocol_error(lambda: error_from_json({"code": "refused", "message": "no reason"}))
