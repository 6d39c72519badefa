"""The control protocol between a running node and its local clients, sans-IO.

``p2pcomm run`` serves it on a Unix socket (``p2pcomm.net.control``); the CLI speaks it
(``p2pcomm.cli.client``). docs/control-protocol.md is the full description; in short:

* UTF-8 JSON, one object per line, each line ending in ``\\n`` and at most
  :data:`MAX_LINE_LENGTH` bytes long (the ``\\n`` not counted);
* the server speaks first, a :class:`Hello` naming the protocol, its version, the node
  and its methods (each a ``"call"`` or a ``"stream"``);
* the client sends a :class:`Request`; the server answers with a :class:`Result` or an
  :class:`ErrorReply`, or, for a stream, with :class:`Event` lines and then a final
  :class:`Result` or :class:`ErrorReply`. One request at a time per connection.

Theory of operation. This module only turns bytes into messages and back: a
:class:`LineBuffer` cuts the byte stream into lines (and enforces the length limit before
it has seen a whole line, so a hostile client cannot make it hold more than the limit),
``decode_*`` turn one line into one validated message or raise :class:`ControlError`
``CONTROL_PROTOCOL`` (``expected``/``found`` say what was wrong), and ``encode()`` on each
message gives its line. Error objects carry an :class:`~p2pcomm.errors.ErrorCode` value
(or one of the control-only codes :data:`INTERNAL` and :data:`LAGGED`);
:func:`error_to_json` and :func:`error_from_json` carry a :class:`P2PCommError` across,
rebuilt as the matching subclass. Receivers ignore object members they do not know, so
protocol 1 can grow optional members; anything else changes :data:`PROTOCOL_VERSION`.

What this module does not know: sockets, tasks, who may connect, which methods exist, or
what their params mean. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from ..errors import (
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

__all__ = [
    "INTERNAL",
    "LAGGED",
    "MAX_ID",
    "MAX_LINE_LENGTH",
    "METHOD_KINDS",
    "PROTOCOL_VERSION",
    "ControlReplyError",
    "ErrorReply",
    "Event",
    "Hello",
    "LineBuffer",
    "MethodKind",
    "Reply",
    "Request",
    "Result",
    "decode_hello",
    "decode_line",
    "decode_reply",
    "decode_request",
    "encode_line",
    "error_from_json",
    "error_to_json",
]

PROTOCOL_VERSION: Final = 1
"""The ``proto`` of the hello; a client refuses a node that speaks another one."""

MAX_LINE_LENGTH: Final = 1 << 20
"""The longest line either side accepts: 1 MiB, the terminating ``\\n`` not counted."""

MAX_ID: Final = 2**53 - 1
"""Request ids are integers from 0 to 2**53 - 1 (exact in every JSON implementation)."""

MethodKind: TypeAlias = Literal["call", "stream"]
METHOD_KINDS: Final[tuple[MethodKind, ...]] = ("call", "stream")

INTERNAL: Final = "internal"
"""Error code: the node failed while handling the request (a bug; the node logged it)."""

LAGGED: Final = "lagged"
"""Error code ending a stream whose client did not read its events fast enough."""


def _protocol_error(message: str, *, expected: object = None, found: object = None) -> ControlError:
    return ControlError(ErrorCode.CONTROL_PROTOCOL, message, expected=expected, found=found)


# -- framing ----------------------------------------------------------------------------


class LineBuffer:
    """Bytes received but not yet cut into lines, plus an end-of-stream flag.

    ``feed`` bytes as they arrive (``feed(b"")`` marks the end), then take whole lines
    with :meth:`next_line` until it returns ``None``. It raises :class:`ControlError`
    ``CONTROL_PROTOCOL`` as soon as the pending line is longer than ``limit`` (before its
    end arrives) or when the stream ended in the middle of a line; after that the
    buffer is unusable. Each byte is scanned once, however the input is split.
    """

    __slots__ = ("_data", "_eof", "_limit", "_scanned")

    def __init__(self, limit: int = MAX_LINE_LENGTH) -> None:
        if limit < 1:
            raise ValueError(f"line limit must be at least 1, found {limit}")
        self._limit = limit
        self._data = bytearray()
        self._scanned = 0
        self._eof = False

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"<LineBuffer {len(self._data)} bytes{' eof' if self._eof else ''}>"

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def eof(self) -> bool:
        """True once ``feed(b"")`` was called."""
        return self._eof

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; empty ``data`` marks the end of the stream. Never raises for
        what a peer sends (``ValueError`` for data after the end: a caller's bug)."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise ValueError("data fed after the end of the stream")
        self._data += data

    def ready(self) -> bool:
        """Whether :meth:`next_line` would return a line or raise (rather than ``None``)."""
        if self._data.find(b"\n", self._scanned) >= 0:
            return True
        self._scanned = len(self._data)
        return len(self._data) > self._limit or (self._eof and bool(self._data))

    def next_line(self) -> bytes | None:
        """The next whole line without its ``\\n``, or ``None`` if none is complete yet
        (and none can come: check :attr:`eof`)."""
        end = self._data.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._data)
            if len(self._data) > self._limit:
                raise _protocol_error(
                    f"line longer than {self._limit} bytes",
                    expected=self._limit,
                    found=len(self._data),
                )
            if self._eof and self._data:
                raise _protocol_error(
                    f"the connection ended in the middle of a line ({len(self._data)} bytes)",
                    expected="a line ending in \\n",
                    found=len(self._data),
                )
            return None
        if end > self._limit:
            raise _protocol_error(
                f"line longer than {self._limit} bytes", expected=self._limit, found=end
            )
        line = bytes(self._data[:end])
        del self._data[: end + 1]
        self._scanned = 0
        return line


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def decode_line(line: bytes | bytearray | memoryview) -> dict[str, Any]:
    """One line (without its ``\\n``) as a JSON object. Strict: UTF-8 only, no NaN or
    Infinity, no duplicate keys, an object at the top. Raises ``CONTROL_PROTOCOL``."""
    try:
        text = bytes(line).decode("utf-8")
        value = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as exc:
        raise _protocol_error(f"line is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    except RecursionError as exc:
        raise _protocol_error("line nests JSON too deeply") from exc
    except ValueError as exc:  # json.JSONDecodeError is one
        raise _protocol_error(f"line is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _protocol_error(
            "line is not a JSON object", expected="object", found=type(value).__name__
        )
    return value


def encode_line(obj: Mapping[str, Any], *, limit: int = MAX_LINE_LENGTH) -> bytes:
    """``obj`` as one compact UTF-8 JSON line ending in ``\\n``.

    Raises :class:`ControlError` ``TOO_LARGE`` when it would be longer than ``limit``,
    and ``TypeError`` / ``ValueError`` for what JSON cannot hold (bytes, NaN, ...).
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    data = text.encode("utf-8")
    if len(data) > limit:
        raise ControlError(
            ErrorCode.TOO_LARGE,
            f"a control message of {len(data)} bytes is over the {limit}-byte line limit",
            expected=limit,
            found=len(data),
        )
    return data + b"\n"


# -- field checks -----------------------------------------------------------------------


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _field(obj: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    if key not in obj:
        raise _protocol_error(f"{what} has no {key!r}", expected=key, found=sorted(obj))
    value = obj[key]
    # bool is an int in Python, never in JSON
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _protocol_error(
            f"{what}'s {key!r} is {_type_name(value)}, expected {kind.__name__}",
            expected=kind.__name__,
            found=_type_name(value),
        )
    return value


def _id(obj: Mapping[str, Any], what: str, *, nullable: bool = False) -> int | None:
    if nullable and obj.get("id", 0) is None:
        return None
    value: int = _field(obj, "id", int, what)
    if not 0 <= value <= MAX_ID:
        raise _protocol_error(
            f"{what}'s id {value} is outside 0..{MAX_ID}", expected=f"0..{MAX_ID}", found=value
        )
    return value


def _check_id(value: int | None, *, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
        raise ValueError(f"a request id is an integer in 0..{MAX_ID}, found {value!r}")


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """The server's first line: who answers and what it offers."""

    node: str
    """The node's member id, in its ``pc1...`` text form."""
    version: str
    """The p2pcomm version the node runs (informative: clients only warn on a mismatch)."""
    methods: Mapping[str, MethodKind]
    """Every method the node serves, with its kind."""
    proto: int = PROTOCOL_VERSION
    """The control protocol version."""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "hello",
            "proto": self.proto,
            "version": self.version,
            "node": self.node,
            "methods": dict(self.methods),
        }

    def encode(self, *, limit: int = MAX_LINE_LENGTH) -> bytes:
        return encode_line(self.to_json(), limit=limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A client's request: call ``method`` with ``params``."""

    id: int
    """Chosen by the client; the replies carry it back."""
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id(self.id)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.method, "params": self.params}

    def encode(self, *, limit: int = MAX_LINE_LENGTH) -> bytes:
        return encode_line(self.to_json(), limit=limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The successful end of request ``id`` (for a stream: after its last event)."""

    id: int
    result: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id(self.id)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "result": self.result}

    def encode(self, *, limit: int = MAX_LINE_LENGTH) -> bytes:
        return encode_line(self.to_json(), limit=limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One event of stream ``id``; more may follow, then a :class:`Result` or an
    :class:`ErrorReply`."""

    id: int
    event: dict[str, Any]

    def __post_init__(self) -> None:
        _check_id(self.id)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event}

    def encode(self, *, limit: int = MAX_LINE_LENGTH) -> bytes:
        return encode_line(self.to_json(), limit=limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReply:
    """The failed end of request ``id``, or (``id`` ``None``) of the whole connection:
    the server closes it after an error that belongs to no request."""

    id: int | None
    code: str
    """An :class:`~p2pcomm.errors.ErrorCode` value, :data:`INTERNAL` or :data:`LAGGED`."""
    message: str
    reason: str | None = None
    """The membership reason of a refusal (code ``refused``); ``None`` otherwise."""

    def __post_init__(self) -> None:
        _check_id(self.id, nullable=True)

    @classmethod
    def from_exception(cls, id: int | None, exc: P2PCommError) -> ErrorReply:
        d = error_to_json(exc)
        return cls(id=id, code=d["code"], message=d["message"], reason=d.get("reason"))

    def exception(self) -> P2PCommError:
        """The error this reply carries, as the matching :class:`P2PCommError` subclass."""
        return error_from_json(self.error_json())

    def error_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.reason is not None:
            d["reason"] = self.reason
        return d

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "error": self.error_json()}

    def encode(self, *, limit: int = MAX_LINE_LENGTH) -> bytes:
        return encode_line(self.to_json(), limit=limit)


Reply: TypeAlias = Result | Event | ErrorReply
"""What the server sends after the hello."""


def decode_hello(line: bytes | bytearray | memoryview) -> Hello:
    """The server's first line as a :class:`Hello`.

    Raises ``CONTROL_PROTOCOL`` when it is not one, with a message telling the user to
    restart the node when it speaks another protocol version (checked before anything
    else in it). A server that refuses the connection sends an error object instead of
    the hello: its error is raised, rebuilt by :func:`error_from_json`.
    """
    obj = decode_line(line)
    if "type" not in obj and "error" in obj:
        raise _error_object(obj["error"]).exception()
    kind = _field(obj, "type", str, "the hello")
    if kind != "hello":
        raise _protocol_error(
            f"the node's first line is a {kind!r}, not a hello", expected="hello", found=kind
        )
    proto: int = _field(obj, "proto", int, "the hello")
    if proto != PROTOCOL_VERSION:
        raise _protocol_error(
            f"the running node speaks control protocol {proto}, this client "
            f"{PROTOCOL_VERSION}; restart it",
            expected=PROTOCOL_VERSION,
            found=proto,
        )
    version: str = _field(obj, "version", str, "the hello")
    node: str = _field(obj, "node", str, "the hello")
    raw_methods: dict[str, Any] = _field(obj, "methods", dict, "the hello")
    methods: dict[str, MethodKind] = {}
    for name, method_kind in raw_methods.items():
        if method_kind == "call":
            methods[name] = "call"
        elif method_kind == "stream":
            methods[name] = "stream"
        else:
            raise _protocol_error(
                f"method {name!r} has kind {method_kind!r}, not 'call' or 'stream'",
                expected=METHOD_KINDS,
                found=method_kind,
            )
    return Hello(node=node, version=version, methods=methods, proto=proto)


def decode_request(line: bytes | bytearray | memoryview) -> Request:
    """A client's line as a :class:`Request` (``params`` may be left out: ``{}``).
    Raises ``CONTROL_PROTOCOL``; whether the method exists is the server's business."""
    obj = decode_line(line)
    request_id = _id(obj, "a request")
    assert request_id is not None
    method: str = _field(obj, "method", str, "a request")
    if not method:
        raise _protocol_error("a request names no method", expected="a method name", found="")
    params: dict[str, Any] = _field(obj, "params", dict, "a request") if "params" in obj else {}
    return Request(id=request_id, method=method, params=params)


def decode_reply(line: bytes | bytearray | memoryview) -> Reply:
    """A server's line after the hello as a :class:`Result`, :class:`Event` or
    :class:`ErrorReply` (exactly one of ``result``, ``event``, ``error`` must be
    present). Raises ``CONTROL_PROTOCOL``."""
    obj = decode_line(line)
    present = [key for key in ("result", "event", "error") if key in obj]
    if len(present) != 1:
        raise _protocol_error(
            "a reply has exactly one of 'result', 'event' and 'error'",
            expected="one of result, event, error",
            found=present,
        )
    if present[0] == "error":
        reply = _error_object(obj["error"])
        return ErrorReply(
            id=_id(obj, "an error reply", nullable=True),
            code=reply.code,
            message=reply.message,
            reason=reply.reason,
        )
    reply_id = _id(obj, f"a {present[0]} reply")
    assert reply_id is not None
    if present[0] == "result":
        return Result(id=reply_id, result=_field(obj, "result", dict, "a result reply"))
    return Event(id=reply_id, event=_field(obj, "event", dict, "an event reply"))


def _error_object(value: object) -> ErrorReply:
    """The ``error`` member of a line, checked (its ``id`` filled in by the caller)."""
    if not isinstance(value, dict):
        raise _protocol_error(
            f"an error is {_type_name(value)}, expected object",
            expected="object",
            found=_type_name(value),
        )
    code: str = _field(value, "code", str, "an error")
    if not code:
        raise _protocol_error("an error has an empty code", expected="a code", found="")
    message: str = _field(value, "message", str, "an error")
    reason: str | None = None
    if value.get("reason") is not None:
        reason = _field(value, "reason", str, "an error")
    if code == ErrorCode.REFUSED.value and reason is None:
        raise _protocol_error(
            "a refusal carries no reason", expected="a reason", found=sorted(value)
        )
    return ErrorReply(id=None, code=code, message=message, reason=reason)


# -- errors across the socket -----------------------------------------------------------


class ControlReplyError(ControlError):
    """The node answered with an error code that is no :class:`ErrorCode` value:
    :data:`INTERNAL`, :data:`LAGGED`, or one from a newer node. ``code`` is
    ``CONTROL_PROTOCOL``; ``wire_code`` is the code the node sent (and ``str()`` starts
    with it)."""

    def __init__(self, wire_code: str, message: str) -> None:
        super().__init__(ErrorCode.CONTROL_PROTOCOL, message, found=wire_code)
        self.wire_code = wire_code
        self.args = (f"{wire_code}: {message}",)


def _codes(*codes: ErrorCode) -> frozenset[ErrorCode]:
    return frozenset(codes)


_DECODE_CODES = _codes(
    ErrorCode.TRUNCATED,
    ErrorCode.TRAILING_DATA,
    ErrorCode.MALFORMED,
    ErrorCode.NOT_CANONICAL,
    ErrorCode.FORBIDDEN_TYPE,
    ErrorCode.TOO_LARGE,
    ErrorCode.TOO_DEEP,
    ErrorCode.WRONG_TYPE,
    ErrorCode.WRONG_LENGTH,
    ErrorCode.OUT_OF_RANGE,
    ErrorCode.UNKNOWN_VERSION,
)
_IDENTITY_CODES = _codes(
    ErrorCode.BAD_ID_TEXT,
    ErrorCode.BAD_CHECKSUM,
    ErrorCode.BAD_KEY,
    ErrorCode.KEY_FILE_CORRUPT,
    ErrorCode.KEY_FILE_INSECURE,
    ErrorCode.WRONG_PASSPHRASE,
    ErrorCode.PASSPHRASE_REQUIRED,
)
_VALIDATION_CODES = _codes(
    ErrorCode.BAD_SIGNATURE,
    ErrorCode.WRONG_GROUP,
    ErrorCode.BAD_GENESIS,
    ErrorCode.BAD_SEQUENCE,
    ErrorCode.BAD_PREVIOUS,
    ErrorCode.BAD_LINKS,
    ErrorCode.BAD_TIMESTAMP,
    ErrorCode.BODY_MISMATCH,
    ErrorCode.PENDING_FULL,
    ErrorCode.BAD_FORK_PROOF,
    ErrorCode.UNAUTHORIZED,
    ErrorCode.BAD_OPERATION,
    ErrorCode.BAD_INVITATION,
)
_STORE_CODES = _codes(
    ErrorCode.STORE_CORRUPT,
    ErrorCode.STORE_CLOSED,
    ErrorCode.STORE_VERSION,
    ErrorCode.STORE_LOCKED,
)
_NOT_FOUND_CODES = _codes(ErrorCode.NOT_FOUND, ErrorCode.AMBIGUOUS)
_CONTROL_CODES = _codes(
    ErrorCode.NODE_UNREACHABLE, ErrorCode.CONTROL_PROTOCOL, ErrorCode.ADDRESS_IN_USE
)
_CLASS_BY_CODE: dict[ErrorCode, type[P2PCommError]] = {
    **dict.fromkeys(_DECODE_CODES, DecodeError),
    **dict.fromkeys(_IDENTITY_CODES, IdentityError),
    **dict.fromkeys(_VALIDATION_CODES, ValidationError),
    **dict.fromkeys(_STORE_CODES, StoreError),
    **dict.fromkeys(_NOT_FOUND_CODES, NotFoundError),
    **dict.fromkeys(_CONTROL_CODES, ControlError),
    ErrorCode.BAD_BUNDLE: BundleError,
}
_BY_VALUE = {code.value: code for code in ErrorCode}


def error_to_json(exc: P2PCommError) -> dict[str, Any]:
    """The ``error`` object for ``exc``: ``code``, ``message`` (without the code prefix
    ``str(exc)`` has) and, for a :class:`RefusedError`, its membership ``reason``."""
    code = exc.wire_code if isinstance(exc, ControlReplyError) else exc.code.value
    message = getattr(exc, "message", None)
    d: dict[str, Any] = {"code": code, "message": message if isinstance(message, str) else str(exc)}
    if isinstance(exc, RefusedError):
        d["reason"] = exc.reason
    return d


def error_from_json(d: Mapping[str, Any]) -> P2PCommError:
    """The :class:`P2PCommError` an ``error`` object describes, as the matching class:
    :class:`RefusedError` (with ``reason``) for a refusal, :class:`NotFoundError` for
    ``not-found`` and ``ambiguous``, :class:`StoreError`, :class:`ValidationError`,
    :class:`DecodeError`, :class:`IdentityError`, :class:`BundleError` and
    :class:`ControlError` for their families' codes, :class:`ControlReplyError` for a
    code outside :class:`ErrorCode`, else :class:`P2PCommError`.

    Raises ``CONTROL_PROTOCOL`` when ``d`` is not a valid error object.
    """
    checked = _error_object(dict(d))
    message = checked.message
    code = _BY_VALUE.get(checked.code)
    if code is None:
        return ControlReplyError(checked.code, message)
    if checked.reason is not None or code is ErrorCode.REFUSED:
        return RefusedError(message, reason=checked.reason or "", code=code)
    cls = _CLASS_BY_CODE.get(code, P2PCommError)
    return cls(code, message)
