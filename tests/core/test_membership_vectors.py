"""spec/vectors/membership.json against the library, read as a second implementation
would read it (spec/README.md section 5), and regenerated to prove spec and code agree.
"""

from __future__ import annotations

import base64
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core.content import CONTENT_KINDS, ContentMachine, content_view, decode_content
from p2pcomm.core.invitation import NS_JOIN, InvitationCode, join_signable, verify_join_proof
from p2pcomm.core.log import decode_entry
from p2pcomm.core.membership import (
    MEMBERSHIP_KINDS,
    PERMISSIONS,
    Kind,
    Role,
    decode_op,
    resolve,
)
from p2pcomm.errors import DecodeError, ValidationError

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "spec" / "vectors" / "membership.json"
sys.path.insert(0, str(ROOT / "tools"))
import gen_vectors  # noqa: E402
import vectors_membership  # noqa: E402

DOC = json.loads(FILE.read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DOC["vectors"]


def of_type(kind: str) -> list[dict[str, Any]]:
    return [v for v in VECTORS if v["type"] == kind]


def test_the_file_is_what_the_generator_writes() -> None:
    assert FILE.read_text(encoding="utf-8") == gen_vectors.render(vectors_membership.generate()), (
        "spec/vectors/membership.json is stale: run python tools/gen_vectors.py"
    )


def test_names_are_unique_and_every_type_is_present() -> None:
    names = [v["name"] for v in VECTORS]
    assert len(names) == len(set(names))
    assert {v["type"] for v in VECTORS} == {"constants", "body", "invitation", "history"}


def test_constants() -> None:
    (c,) = of_type("constants")
    assert c["kinds"] == {k.name.lower(): int(k) for k in Kind}
    assert c["roles"] == {r.name.lower(): int(r) for r in Role}
    assert set(c["membership_kinds"]) == set(MEMBERSHIP_KINDS)
    assert set(c["content_kinds"]) == {int(k) for k in CONTENT_KINDS}
    assert c["permissions"] == {p.value: int(r) for p, r in PERMISSIONS.items()}


@pytest.mark.parametrize("v", of_type("body"), ids=lambda v: v["name"])
def test_body(v: dict[str, Any]) -> None:
    kind, data = v["kind"], bytes.fromhex(v["encoded"])
    decoder = decode_op if kind in MEMBERSHIP_KINDS else decode_content
    if "fail" in v:
        with pytest.raises(DecodeError) as exc:
            decoder(kind, data)
        assert exc.value.code.value == v["fail"]
        return
    body = decoder(kind, data)
    assert body.encode() == data
    for name, expected in v["fields"].items():
        value = getattr(body, name)
        assert (value.hex() if isinstance(value, bytes) else value) == expected


def _raw(text: str) -> bytes:
    """The bytes under a code's base32 (payload and checksum), decoded by hand."""
    body = text[4:].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


@pytest.mark.parametrize("v", of_type("invitation"), ids=lambda v: v["name"])
def test_invitation(v: dict[str, Any]) -> None:
    if "payload" in v:  # the vector is self-consistent: its text carries its payload
        assert _raw(v["text"])[:-4].hex() == v["payload"]
    if "fail" in v:
        with pytest.raises(ValidationError) as exc:
            InvitationCode.parse(v["text"])
        assert exc.value.code.value == v["fail"]
        cause = exc.value.__cause__
        if "decode_error" in v:
            assert isinstance(cause, DecodeError) and cause.code.value == v["decode_error"]
        else:
            assert cause is None
        return
    f = v["fields"]
    fields = {
        "group": bytes.fromhex(f["group"]),
        "secret": bytes.fromhex(f["secret"]),
        "inviter": bytes.fromhex(f["inviter"]),
        "role": f["role"],
        "max_uses": f["max_uses"],
        "expires_at": f["expires_at"],
        "hints": tuple(f["hints"]),
    }
    # fields -> text
    code = InvitationCode(**fields)
    assert code.text() == v["text"]
    assert _raw(v["text"]).hex() == v["payload"] + v["checksum"]
    # text -> fields, for the canonical text and every other accepted spelling
    for text in [v["text"], *v.get("accept", [])]:
        parsed = InvitationCode.parse(text)
        assert {name: getattr(parsed, name) for name in fields} == fields
    group = fields["group"]
    if "join_proof" in v:
        invite, member = bytes.fromhex(v["invite"]), bytes.fromhex(v["member"])
        assert code.public_key.hex() == v["invitation_key"]
        assert code.keypair().seed().hex() == v["invitation_seed"]
        assert (NS_JOIN + join_signable(group, invite, member)).hex() == v["join_signable"]
        assert code.join_proof(invite, member).hex() == v["join_proof"]
        assert verify_join_proof(
            code.public_key, group, invite, member, bytes.fromhex(v["join_proof"])
        )


def test_invitation_vectors_cover_every_parse_rule() -> None:
    """Valid codes with and without hints, and a fail case per way a code can be wrong."""
    names = {v["name"] for v in of_type("invitation")}
    for name in (
        "invitation-code",
        "invitation-code-no-hints",
        "invitation-code-four-hints",
        "invitation-fail-typo",
        "invitation-fail-prefix",
        "invitation-fail-old-format",
        "invitation-fail-text-truncated",
        "invitation-fail-payload-truncated",
        "invitation-fail-payload-trailing-data",
        "invitation-fail-role",
        "invitation-fail-hint-no-port",
    ):
        assert name in names


@pytest.mark.parametrize("v", of_type("history"), ids=lambda v: v["name"])
def test_history(v: dict[str, Any]) -> None:
    entries = [decode_entry(bytes.fromhex(x["entry"])) for x in v["entries"]]
    label = {e.id: x["label"] for e, x in zip(entries, v["entries"], strict=True)}
    name = {bytes.fromhex(k): n for n, k in v["authors"].items()}
    expect = v["expect"]
    orders = [entries, list(reversed(entries))] + [
        random.Random(s).sample(entries, len(entries)) for s in range(3)
    ]
    for order in orders:
        state = resolve(order)
        machine = ContentMachine()
        for e in order:
            machine.apply(e)
        assert machine.state == state
        view = content_view(state, order)
        assert machine.view() == view
        assert state.group.hex() == v["group"]
        assert {name[m]: i.role.name.lower() for m, i in state.members.items()} == expect["members"]
        assert sorted(name[m] for m in state.banned) == expect["banned"]
        assert sorted(name[m] for m in state.relays) == expect["relays"]
        assert {name[m]: s for m, s in state.equivocators.items()} == expect["equivocators"]
        assert {label[e.id]: state.verdicts[e.id].reason.value for e in entries} == expect[
            "verdicts"
        ]
        meta = state.metadata
        assert {"name": meta.name, "description": meta.description, "rules": meta.rules} == expect[
            "metadata"
        ]
        items = [
            {
                "entry": label[i.id],
                "text": i.text,
                "parent": label[i.parent] if i.parent else None,
                "hidden": i.hidden,
                "reactions": [list(r) for r in i.reactions],
            }
            for i in view.items
        ]
        assert items == expect["items"]
        assert sorted(label.get(x, x.hex()) for x in view.drop_bodies) == expect["drop_bodies"]


def test_the_relay_history_shows_every_relay_rule() -> None:
    """RELAY (kind 12, spec/12-encryption.md 12.14): who may grant, that a granted key
    is never a member, and that a revocation wins over a concurrent grant."""
    (v,) = [v for v in of_type("history") if v["name"] == "history-relay"]
    entries = [decode_entry(bytes.fromhex(x["entry"])) for x in v["entries"]]
    kind = {x["label"]: e.header.kind for e, x in zip(entries, v["entries"], strict=True)}
    got: dict[tuple[int, str], int] = {}
    for label, reason in v["expect"]["verdicts"].items():
        got[kind[label], reason] = got.get((kind[label], reason), 0) + 1
    assert got[Kind.ADD, "bad-target"] == got[Kind.JOIN, "bad-target"] == 1
    assert got[Kind.RELAY, "insufficient-role"] == 1
    assert got[Kind.RELAY, "bad-target"] == 2  # oneself, a member
    assert v["expect"]["relays"] == ["dave"]
    assert v["expect"]["members"]["erin"] == "reader"


def test_the_example_code_in_the_spec_is_the_vector() -> None:
    """04 section 4.7 shows vector ``invitation-code`` in three lines; IC2 joins them."""
    (v,) = [v for v in of_type("invitation") if v["name"] == "invitation-code"]
    spec = (ROOT / "spec" / "04-membership.md").read_text(encoding="utf-8")
    shown = re.search(r"```\n(pci2[a-z2-7\n]+)```", spec)
    assert shown is not None
    assert shown.group(1).replace("\n", "") == v["text"]
    assert InvitationCode.parse(shown.group(1)).text() == v["text"]
    assert f"checksum `{v['checksum']}`" in spec


def test_an_old_format_code_is_named_as_one() -> None:
    (v,) = [v for v in of_type("invitation") if v["name"] == "invitation-fail-old-format"]
    with pytest.raises(ValidationError) as exc:
        InvitationCode.parse(v["text"])
    assert "old-format code" in exc.value.message
