"""spec/vectors/membership.json against the library, read as a second implementation
would read it (spec/README.md section 5), and regenerated to prove spec and code agree.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from p2pcomm.core.content import CONTENT_KINDS, ContentMachine, content_view, decode_content
from p2pcomm.core.invitation import InvitationCode, verify_join_proof
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


@pytest.mark.parametrize("v", of_type("invitation"), ids=lambda v: v["name"])
def test_invitation(v: dict[str, Any]) -> None:
    if "fail" in v:
        with pytest.raises(ValidationError) as exc:
            InvitationCode.parse(v["text"])
        assert exc.value.code.value == v["fail"]
        return
    code = InvitationCode.parse(v["text"])
    group = bytes.fromhex(v["group"])
    assert code.secret.hex() == v["secret"] and code.matches_group(group) and code.hint == v["hint"]
    if "join_proof" in v:
        invite, member = bytes.fromhex(v["invite"]), bytes.fromhex(v["member"])
        assert code.public_key.hex() == v["invitation_key"]
        assert code.join_proof(group, invite, member).hex() == v["join_proof"]
        assert verify_join_proof(
            code.public_key, group, invite, member, bytes.fromhex(v["join_proof"])
        )


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
