"""Body layouts, declared once (spec/04-membership.md sections 4.5 and 4.10).

Every body of chapter 04 is a positional array ``[1, field, field, ...]`` (01). A body
class declares its layout once, as annotated dataclass fields (name, wire type with its
limit, default), and :func:`layout` gives it ``encode``, ``decode`` and its spec name:

```
@layout("remove")
@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveMember(Body):
    KIND: ClassVar[Kind] = Kind.REMOVE
    member: Id
    cut: U63Int
    reason: Annotated[str, Str(MAX_REASON)] = ""
```

``encode`` checks each field in declaration order and raises :class:`ValidationError`
(``BAD_OPERATION``) for a value outside its layout; ``decode`` reads the items in the
same order and raises :class:`DecodeError` with the 01 error name. Decoding messages name
the item as ``<layout>.<field>`` (``remove.cut``), encoding messages by the field's
label (``cut``, ``group name``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import (
    Annotated,
    Any,
    ClassVar,
    Final,
    Protocol,
    Self,
    TypeAlias,
    TypeVar,
    get_type_hints,
)

from ...errors import DecodeError, ErrorCode, ValidationError
from ..encoding import (
    Limits,
    Value,
    decode,
    encode,
    expect_array,
    expect_bool,
    expect_bytes,
    expect_str,
    expect_uint,
)
from ..log import MAX_BODY_SIZE, MAX_U63
from .kinds import Role

__all__ = [
    "BOOL",
    "BODY_VERSION",
    "ID",
    "ROLE",
    "U63",
    "Bin",
    "Body",
    "Id",
    "RoleField",
    "Str",
    "Tail",
    "U63Int",
    "WireType",
    "body_fields",
    "layout",
]

#: Version of every body layout defined by this chapter.
BODY_VERSION: Final = 1

_BODY_LIMITS: Final = Limits(
    max_size=MAX_BODY_SIZE, max_bytes=MAX_BODY_SIZE, max_array=8, max_depth=1
)


def body_fields(data: bytes, what: str, length: int, optional: int = 0) -> list[Value]:
    """Decode a body ``[version, ...]`` of ``length`` items, version 1; the last
    ``optional`` of them may be absent.

    Raises :class:`DecodeError` (``UNKNOWN_VERSION`` for another version)."""
    items = expect_array(decode(data, _BODY_LIMITS), what)
    if (
        items
        and isinstance(items[0], int)
        and not isinstance(items[0], bool)
        and items[0] != BODY_VERSION
    ):
        raise DecodeError(
            ErrorCode.UNKNOWN_VERSION,
            f"{what} version {items[0]} is not supported",
            expected=BODY_VERSION,
            found=items[0],
        )
    if not optional or not length - optional <= len(items) <= length:
        expect_array(items, what, length=length)
    expect_uint(items[0], f"{what}.version", minimum=BODY_VERSION, maximum=BODY_VERSION)
    return items


# --------------------------------------------------------------------------- wire types


class WireType(Protocol):
    """One item of a layout: how it is read from a decoded body and checked for writing."""

    def read(self, value: Value, what: str) -> Any:
        """The field's value from the decoded item; raises :class:`DecodeError`."""

    def write(self, value: Any, label: str) -> Value:
        """The item to encode for the field's value; raises :class:`ValidationError`."""


def _bad(message: str, **info: object) -> ValidationError:
    return ValidationError(ErrorCode.BAD_OPERATION, message, **info)


@dataclasses.dataclass(frozen=True, slots=True)
class Str:
    """``str(min ..= limit)``: UTF-8 text of at most ``limit`` bytes. ``empty`` is the
    encoder's message when the text must not be empty (``min`` 1); ``label`` names the
    field in the encoder's messages."""

    limit: int
    label: str | None = None
    empty: str | None = None

    def read(self, value: Value, what: str) -> str:
        text = expect_str(value, what, max_length=self.limit)
        if self.empty is not None and not text:
            raise DecodeError(
                ErrorCode.WRONG_LENGTH,
                f"{what}: expected 1 to {self.limit} bytes, found 0",
                found=0,
            )
        return text

    def write(self, value: str, label: str) -> Value:
        size = len(value.encode("utf-8"))
        if size > self.limit:
            raise _bad(
                f"{label} is {size} utf-8 bytes, at most {self.limit} allowed",
                expected=self.limit,
                found=size,
            )
        if self.empty is not None and not value:
            raise _bad(self.empty, expected=f"1..{self.limit} bytes")
        return value


@dataclasses.dataclass(frozen=True, slots=True)
class Bin:
    """``bin(length)``: exactly ``length`` bytes. The encoder says ``<label> <says>
    <length> bytes`` otherwise."""

    length: int
    label: str | None = None
    says: str = "must be"

    def read(self, value: Value, what: str) -> bytes:
        return expect_bytes(value, what, length=self.length)

    def write(self, value: bytes, label: str) -> Value:
        if not isinstance(value, bytes) or len(value) != self.length:
            raise _bad(
                f"{label} {self.says} {self.length} bytes",
                expected=self.length,
                found=len(value) if isinstance(value, bytes) else None,
            )
        return value


@dataclasses.dataclass(frozen=True, slots=True)
class Tail:
    """``bin(1 ..= limit)``. When ``optional``, the body's last item, absent when empty
    (the writer omits it, and a reader refuses it present and empty), so one value has
    one encoding."""

    limit: int
    label: str | None = None
    optional: bool = True

    def read(self, value: Value, what: str) -> bytes:
        data = expect_bytes(value, what, max_length=self.limit)
        if not data:
            raise DecodeError(
                ErrorCode.WRONG_LENGTH,
                f"{what}: expected 1 to {self.limit} bytes when present, found 0",
                found=0,
            )
        return data

    def write(self, value: bytes, label: str) -> Value:
        if not isinstance(value, bytes) or len(value) > self.limit:
            raise _bad(
                f"{label} is more than {self.limit} bytes",
                expected=self.limit,
                found=len(value) if isinstance(value, bytes) else None,
            )
        if not value and not self.optional:
            raise _bad(
                f"{label} must not be empty",
                expected=self.limit,
                found=len(value) if isinstance(value, bytes) else None,
            )
        return value


class _U63:
    """``uint (0 ..= 2^63-1)``."""

    __slots__ = ()

    def read(self, value: Value, what: str) -> int:
        return expect_uint(value, what, maximum=MAX_U63)

    def write(self, value: int, label: str) -> Value:
        if not 0 <= value <= MAX_U63:
            raise _bad(f"{label} {value} is outside 0 ..= 2^63-1", found=value)
        return value


_READER: Final = int(Role.READER)
_ADMIN: Final = int(Role.ADMIN)


class _Role:
    """``uint (1 ..= 4)``, a :class:`Role`."""

    __slots__ = ()

    def read(self, value: Value, what: str) -> Role:
        return Role(expect_uint(value, what, minimum=_READER, maximum=_ADMIN))

    def write(self, value: Role, label: str) -> Value:
        return int(Role(value))


class _Bool:
    """``bool``."""

    __slots__ = ()

    def read(self, value: Value, what: str) -> bool:
        return expect_bool(value, what)

    def write(self, value: bool, label: str) -> Value:
        return value


#: A member or entry id: ``bin(32)``.
ID: Final = Bin(32)
U63: Final = _U63()
ROLE: Final = _Role()
BOOL: Final = _Bool()


#: Field types for the common items.
Id: TypeAlias = Annotated[bytes, ID]
U63Int: TypeAlias = Annotated[int, U63]
RoleField: TypeAlias = Annotated[Role, ROLE]


# --------------------------------------------------------------------------- declaring


class _Item:
    __slots__ = ("label", "name", "type", "what")

    def __init__(self, name: str, type_: WireType, label: str, what: str) -> None:
        self.name = name
        self.type = type_
        self.label = label
        self.what = what


class Body:
    """Base of the body classes: ``encode`` and ``decode`` from the declared layout."""

    __slots__ = ()

    #: The layout's name in the spec (``add``, ``set_role``, ``post``), set by
    #: :func:`layout`.
    LAYOUT: ClassVar[str]
    _ITEMS: ClassVar[Sequence[_Item]]

    def encode(self) -> bytes:
        """The canonical body bytes; :class:`ValidationError` (``BAD_OPERATION``) for a
        field outside its layout."""
        out: list[Value] = [BODY_VERSION]
        for item in self._ITEMS:
            out.append(item.type.write(getattr(self, item.name), item.label))
        for item in reversed(self._ITEMS):
            if not getattr(item.type, "optional", False) or out[-1] != b"":
                break
            out.pop()
        for item, value in zip(self._ITEMS, out[1:], strict=False):
            if getattr(item.type, "optional", False) and value == b"":
                # An empty optional item before a present one: a reader refuses it.
                raise _bad(
                    f"{item.label} is empty but a later optional item is present",
                    found=item.name,
                )
        return encode(out)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """The body from its bytes; :class:`DecodeError` if they break the layout."""
        items = cls._ITEMS
        optional = sum(1 for it in items if getattr(it.type, "optional", False))
        f = body_fields(data, cls.LAYOUT, len(items) + 1, optional)
        return cls(
            **{it.name: it.type.read(v, it.what) for it, v in zip(items, f[1:], strict=False)}
        )


B = TypeVar("B", bound=Body)


def layout(name: str) -> Callable[[type[B]], type[B]]:
    """Class decorator (above ``@dataclass``): the body's layout is its fields, in
    order, after the version; each field is annotated ``Annotated[type, wire type]``.
    ``name`` is the layout's name in the spec."""

    def declare(cls: type[B]) -> type[B]:
        hints = get_type_hints(cls, include_extras=True)
        items: list[_Item] = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            kinds = [m for m in getattr(hints[f.name], "__metadata__", ()) if hasattr(m, "read")]
            if len(kinds) != 1:
                raise TypeError(f"{cls.__name__}.{f.name} needs one wire type in Annotated[]")
            kind: WireType = kinds[0]
            label = getattr(kind, "label", None) or f.name
            items.append(_Item(f.name, kind, label, f"{name}.{f.name}"))
        cls.LAYOUT = name
        cls._ITEMS = tuple(items)
        return cls

    return declare
