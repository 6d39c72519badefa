"""Vectors for spec/04-membership.md: constants, operation and content bodies, invitation
codes and join proofs, and histories with the membership and visible content every
replica must compute from them (negative cases name their reason per entry).

Keys are the spec's named test keys (seed ``BLAKE2b-256("p2pcomm test key " || name)``),
timestamps come from a logical clock starting at 2026-11-23T00:00:00Z with one second
per entry, invitation secrets are fixed, and Ed25519 is deterministic: the output never
changes. ``tools/gen_vectors.py`` writes ``spec/vectors/membership.json`` from
:func:`generate`; running this file directly writes it too.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from p2pcomm.core import crypto
from p2pcomm.core.content import (
    CONTENT_KINDS,
    MAX_EMOJI,
    MAX_TEXT,
    Delete,
    Hide,
    Post,
    React,
    Reply,
    Retract,
    Unhide,
    content_view,
)
from p2pcomm.core.epochs import KeyBlock
from p2pcomm.core.invitation import (
    CODE_PREFIX,
    CODE_VERSION,
    INVITATION_SECRET_SIZE,
    MAX_HINT_LENGTH,
    MAX_HINTS,
    NS_INVITATION_CODE,
    NS_INVITATION_KEY,
    NS_JOIN,
    InvitationCode,
)
from p2pcomm.core.log import Entry, encode_entry
from p2pcomm.core.membership import (
    BODY_VERSION,
    FIRST_APP_KIND,
    LEVEL_BANNED,
    LEVEL_EQUIVOCATED,
    LEVEL_NONE,
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_NOTE,
    MAX_REASON,
    MAX_RULES,
    MEMBERSHIP_KINDS,
    PERMISSIONS,
    AddMember,
    Ban,
    ClaimAdmin,
    GenesisBody,
    Invite,
    Join,
    Kind,
    Leave,
    RemoveMember,
    RevokeInvite,
    Role,
    SetMetadata,
    SetRole,
    resolve,
)
from p2pcomm.core.membership.ops import KeysOp, RelayGrant
from p2pcomm.testing.history import T0, History, Replica, named_keypair

REVISION = 6

Json = dict[str, Any]

NAMES = ["alice", "bob", "carol", "dave", "erin"]
KEYS = {n: named_keypair(n) for n in NAMES}
BY_KEY = {k.public_key: n for n, k in KEYS.items()}


def secret(label: str) -> bytes:
    """A fixed invitation secret: ``BLAKE2b-256("p2pcomm test invitation " || label)[0..16]``."""
    return crypto.blake2b_256(b"p2pcomm test invitation " + label.encode())[:INVITATION_SECRET_SIZE]


def _pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- constants


def constants() -> Json:
    return {
        "type": "constants",
        "name": "membership-constants",
        "description": "kinds, roles, levels, the permission table, namespaces and limits of chapter 04",
        "kinds": {k.name.lower(): int(k) for k in Kind},
        "membership_kinds": sorted(MEMBERSHIP_KINDS),
        "content_kinds": sorted(int(k) for k in CONTENT_KINDS),
        "first_app_kind": FIRST_APP_KIND,
        "roles": {r.name.lower(): int(r) for r in Role},
        "levels": {"equivocated": LEVEL_EQUIVOCATED, "banned": LEVEL_BANNED, "none": LEVEL_NONE},
        "permissions": {p.value: int(r) for p, r in PERMISSIONS.items()},
        "body_version": BODY_VERSION,
        "limits": {
            "name": MAX_NAME,
            "description": MAX_DESCRIPTION,
            "rules": MAX_RULES,
            "reason": MAX_REASON,
            "note": MAX_NOTE,
            "text": MAX_TEXT,
            "emoji": MAX_EMOJI,
            "invitation_secret": INVITATION_SECRET_SIZE,
            "invitation_code_prefix": CODE_PREFIX,
            "invitation_code_version": CODE_VERSION,
            "invitation_hints": MAX_HINTS,
            "invitation_hint_length": MAX_HINT_LENGTH,
        },
        "namespaces": {
            "p2pcomm/1/invitation-key": NS_INVITATION_KEY.hex(),
            "p2pcomm/1/join": NS_JOIN.hex(),
            "p2pcomm/1/invitation-code": NS_INVITATION_CODE.hex(),
        },
    }


# --------------------------------------------------------------------------- bodies

M = b"\x11" * 32  # a member id in body vectors
I = b"\x22" * 32  # an entry id  # noqa: E741
#: A key block (spec/12-encryption.md 12.9): a receive key alone, the bytes of vector
#: ``key-block-receive`` of encryption.json. Chapter 04 does not read inside it.
BLOCK = KeyBlock(
    receive=crypto.x25519_public(crypto.blake2b_256(b"p2pcomm test encryption receive key alice"))
).encode()
#: Sealed fields (spec/12-encryption.md 12.11a): opaque bytes here; chapter 04 does not
#: read inside them.
SEALED = b"\x44" * 40


def _fields(body: object) -> Json:
    out: Json = {}
    for name in getattr(body, "__dataclass_fields__", {}):
        value = getattr(body, name)
        out[name] = (
            value.hex()
            if isinstance(value, bytes)
            else int(value)
            if isinstance(value, Role)
            else value
        )
    return out


def body_vectors() -> list[Json]:
    good: list[tuple[str, Any]] = [
        (
            "genesis",
            GenesisBody(
                name="garden club",
                description="we grow things",
                rules="be kind",
                founder_name="alice",
            ),
        ),
        ("add", AddMember(member=M, role=Role.MEMBER, cut=0, name="bob")),
        ("remove", RemoveMember(member=M, cut=7, reason="spam")),
        ("set-role", SetRole(member=M, role=Role.MODERATOR, cut=3)),
        ("leave", Leave()),
        ("ban", Ban(member=M, cut=2**63 - 1, reason="")),
        ("set-metadata", SetMetadata(name="garden club", description="", rules="no spam")),
        (
            "invite",
            Invite(
                invitation_key=M,
                role=Role.MEMBER,
                max_uses=1,
                expires_at=1_795_478_400_000,
                note="for dave",
            ),
        ),
        ("revoke-invite", RevokeInvite(invite=I)),
        ("join", Join(invite=I, proof=b"\x33" * 64, name="dave")),
        ("claim-admin", ClaimAdmin()),
        ("keys", KeysOp(keys=BLOCK)),
        ("remove-keys", RemoveMember(member=M, cut=7, reason="spam", keys=BLOCK)),
        ("join-keys", Join(invite=I, proof=b"\x33" * 64, name="dave", keys=BLOCK)),
        (
            "genesis-sealed",
            GenesisBody(name="", founder_name="alice", keys=BLOCK, sealed=SEALED),
        ),
        ("set-metadata-sealed", SetMetadata(name="", sealed=SEALED)),
        ("relay", RelayGrant(relay=M)),
        ("relay-revoke", RelayGrant(relay=M, revoke=True)),
        ("post", Post(text="hello, gardeners")),
        ("reply", Reply(parent=I, text="hi!")),
        ("react", React(target=I, emoji="\U0001f331", on=True)),
        ("retract", Retract(target=I)),
        ("hide", Hide(target=I, reason="off topic")),
        ("unhide", Unhide(target=I)),
        ("delete", Delete(target=I, reason="abuse")),
    ]
    out: list[Json] = []
    for name, body in good:
        out.append(
            {
                "type": "body",
                "name": f"body-{name}",
                "description": f"a {name} body",
                "kind": int(body.KIND),
                "fields": _fields(body),
                "encoded": body.encode().hex(),
            }
        )
    bad: list[tuple[str, str, int, bytes, str]] = [
        ("version-2", "an unknown body version", Kind.LEAVE, _pack([2]), "unknown-version"),
        ("short", "an add with four fields", Kind.ADD, _pack([1, M, 2, 0]), "wrong-length"),
        ("role-0", "role 0 is not a role", Kind.ADD, _pack([1, M, 0, 0, ""]), "out-of-range"),
        ("role-5", "role 5 is not a role", Kind.SET_ROLE, _pack([1, M, 5, 0]), "out-of-range"),
        (
            "member-31",
            "a 31-byte member id",
            Kind.REMOVE,
            _pack([1, M[:31], 0, ""]),
            "wrong-length",
        ),
        (
            "proof-63",
            "a 63-byte join proof",
            Kind.JOIN,
            _pack([1, I, b"\x33" * 63, ""]),
            "wrong-length",
        ),
        ("name-65", "a 65-byte name", Kind.GENESIS, _pack([1, "n" * 65, "", "", ""]), "too-large"),
        (
            "uses-bool",
            "max_uses given as a bool",
            Kind.INVITE,
            _pack([1, M, 2, True, 0, ""]),
            "wrong-type",
        ),
        ("not-canonical", "[1] with 1 as int8", Kind.LEAVE, b"\x91\xd0\x01", "not-canonical"),
        ("map", "a map instead of an array", Kind.LEAVE, _pack({1: 1}), "forbidden-type"),
        (
            "trailing",
            "one byte after the body",
            Kind.CLAIM_ADMIN,
            _pack([1]) + b"\xc0",
            "trailing-data",
        ),
        (
            "empty-emoji",
            "a reaction without an emoji",
            Kind.REACT,
            _pack([1, I, "", True]),
            "wrong-length",
        ),
        ("text-bin", "post text as bin", Kind.POST, _pack([1, b"hi"]), "wrong-type"),
        (
            "uses-2-63",
            "max_uses of 2^63, above the 2^63 - 1 bound",
            Kind.INVITE,
            _pack([1, M, 2, 2**63, 0, ""]),
            "out-of-range",
        ),
        (
            "keys-empty",
            "a remove whose optional key block is present and empty (B5)",
            Kind.REMOVE,
            _pack([1, M, 7, "spam", b""]),
            "wrong-length",
        ),
        (
            "keys-str",
            "a ban whose key block is a str",
            Kind.BAN,
            _pack([1, M, 7, "", "keys"]),
            "wrong-type",
        ),
        (
            "keys-missing",
            "a KEYS body without its key block",
            Kind.KEYS,
            _pack([1]),
            "wrong-length",
        ),
        (
            "keys-op-empty",
            "a KEYS body whose key block is empty",
            Kind.KEYS,
            _pack([1, b""]),
            "wrong-length",
        ),
        (
            "genesis-six",
            "a genesis whose sealed fields are present and empty (B5)",
            Kind.GENESIS,
            _pack([1, "g", "", "", "", BLOCK, b""]),
            "wrong-length",
        ),
        (
            "genesis-sealed-without-keys",
            "a genesis with sealed fields and an empty key block before them (B5)",
            Kind.GENESIS,
            _pack([1, "", "", "", "", b"", SEALED]),
            "wrong-length",
        ),
        (
            "genesis-eight",
            "a genesis with an item after its sealed fields",
            Kind.GENESIS,
            _pack([1, "", "", "", "", BLOCK, SEALED, SEALED]),
            "wrong-length",
        ),
        (
            "set-metadata-sealed-empty",
            "a set_metadata whose sealed fields are present and empty (B5)",
            Kind.SET_METADATA,
            _pack([1, "", "", "", b""]),
            "wrong-length",
        ),
        (
            "set-metadata-sealed-str",
            "a set_metadata whose sealed fields are a str",
            Kind.SET_METADATA,
            _pack([1, "", "", "", "sealed"]),
            "wrong-type",
        ),
        (
            "relay-short",
            "a relay body without its revoke flag",
            Kind.RELAY,
            _pack([1, M]),
            "wrong-length",
        ),
        (
            "relay-revoke-int",
            "a relay body whose revoke flag is the integer 1",
            Kind.RELAY,
            _pack([1, M, 1]),
            "wrong-type",
        ),
        (
            "expires-2-64",
            "expires_at of 2^64 - 1, above the 2^63 - 1 bound",
            Kind.INVITE,
            _pack([1, M, 2, 1, 2**64 - 1, ""]),
            "out-of-range",
        ),
    ]
    for name, description, kind, data, fail in bad:
        out.append(
            {
                "type": "body",
                "name": f"body-fail-{name}",
                "description": description,
                "kind": int(kind),
                "encoded": data.hex(),
                "fail": fail,
            }
        )
    return out


# --------------------------------------------------------------------------- invitations


def _code_text(payload: bytes) -> str:
    """A code text around ``payload`` with the checksum of IC5, written independently of
    :meth:`InvitationCode.text` so that malformed payloads can be wrapped too."""
    check = crypto.blake2b_256(NS_INVITATION_CODE + payload)[:4]
    return CODE_PREFIX + base64.b32encode(payload + check).decode("ascii").rstrip("=").lower()


def _code_fields(code: InvitationCode) -> Json:
    return {
        "group": code.group.hex(),
        "secret": code.secret.hex(),
        "inviter": code.inviter.hex(),
        "role": code.role,
        "max_uses": code.max_uses,
        "expires_at": code.expires_at,
        "hints": list(code.hints),
    }


def _grouped(text: str, size: int) -> str:
    return "-".join(text[i : i + size] for i in range(0, len(text), size))


def invitation_vectors() -> list[Json]:
    group = crypto.blake2b_256(b"p2pcomm test group")
    alice, carol = KEYS["alice"].public_key, KEYS["carol"].public_key
    code = InvitationCode(
        group=group,
        secret=secret("dave"),
        inviter=alice,
        role=int(Role.MEMBER),
        max_uses=1,
        expires_at=0,
        hints=("192.168.1.20:7777",),
    )
    bare = InvitationCode(
        group=group,
        secret=secret("erin"),
        inviter=carol,
        role=int(Role.READER),
        max_uses=0,
        expires_at=T0 + 7 * 24 * 3600 * 1000,
    )
    full = InvitationCode(
        group=group,
        secret=secret("frank"),
        inviter=alice,
        role=int(Role.ADMIN),
        max_uses=2**63 - 1,
        expires_at=2**63 - 1,
        hints=(
            "192.168.1.20:7777",
            "[2001:db8::7]:7447",
            "garden.example.org:7447",
            "a" * 62 + "." + "b" * 31 + ":65535",
        ),
    )
    invite_id = crypto.blake2b_256(b"p2pcomm test invite entry")
    member = KEYS["dave"].public_key
    text = code.text()

    def valid(name: str, description: str, c: InvitationCode, **extra: Any) -> Json:
        payload = _pack(
            [1, c.group, c.secret, c.inviter, c.role, c.max_uses, c.expires_at, list(c.hints)]
        )
        assert _code_text(payload) == c.text()
        return {
            "type": "invitation",
            "name": name,
            "description": description,
            "fields": _code_fields(c),
            "payload": payload.hex(),
            "checksum": crypto.blake2b_256(NS_INVITATION_CODE + payload)[:4].hex(),
            "text": c.text(),
            **extra,
        }

    def fail(name: str, description: str, text: str, error: str, **extra: Any) -> Json:
        return {
            "type": "invitation",
            "name": name,
            "description": description,
            "text": text,
            "fail": error,
            **extra,
        }

    def bad_payload(
        name: str, description: str, items: list[Any], decode_error: str | None, raw: bytes = b""
    ) -> Json:
        payload = raw or _pack(items)
        extra: Json = {"payload": payload.hex()}
        if decode_error is not None:
            extra["decode_error"] = decode_error
        return fail(name, description, _code_text(payload), "bad-invitation", **extra)

    items = [1, group, secret("dave"), alice, 2, 1, 0, ["192.168.1.20:7777"]]

    def changed(index: int, value: Any) -> list[Any]:
        out = list(items)
        out[index] = value
        return out

    canonical = _pack(items)
    old_prefix = group[:10]
    old_check = crypto.blake2b_256(NS_INVITATION_CODE + old_prefix + secret("dave"))[:4]
    old = "pci1" + base64.b32encode(old_prefix + secret("dave") + old_check).decode().lower()
    typo_at = len(CODE_PREFIX) + 10
    typo = text[:typo_at] + ("b" if text[typo_at] != "b" else "c") + text[typo_at + 1 :]
    last = "abcdefghijklmnopqrstuvwxyz234567".index(text[-1])
    unused = text[:-1] + "abcdefghijklmnopqrstuvwxyz234567"[last | 1]
    assert unused != text
    return [
        valid(
            "invitation-code",
            "a member invitation by alice with one hint, its key pair and a join proof by dave",
            code,
            accept=[
                _grouped(text, 4).upper(),
                " " + _grouped(text, 5)[:50] + "\r\n\t" + _grouped(text, 5)[50:] + " ",
            ],
            invitation_seed=crypto.blake2b_256(NS_INVITATION_KEY + code.secret).hex(),
            invitation_key=code.public_key.hex(),
            invite=invite_id.hex(),
            member=member.hex(),
            join_signable=(NS_JOIN + group + invite_id + member).hex(),
            join_proof=code.join_proof(invite_id, member).hex(),
        ),
        valid(
            "invitation-code-no-hints",
            "a reader invitation by carol, unlimited uses, expiring after a week, no hints: "
            "the shortest code (158 characters)",
            bare,
            accept=[_grouped(bare.text(), 6)],
        ),
        valid(
            "invitation-code-four-hints",
            "an admin invitation with the largest integers and four hints (ipv4, bracketed "
            "ipv6, a dns name, a 100-character name): the longest code (836 characters)",
            full,
        ),
        fail("invitation-fail-typo", "one character changed", typo, "bad-checksum"),
        fail(
            "invitation-fail-unused-bits",
            "the last character's unused low bit set (IC4)",
            unused,
            "bad-invitation",
        ),
        fail(
            "invitation-fail-prefix",
            "another prefix (pcj2)",
            "pcj2" + text[4:],
            "bad-invitation",
        ),
        fail(
            "invitation-fail-member-id",
            "a member id text (pc1...) where a code was expected",
            "pc1" + base64.b32encode(alice + bytes(3)).decode().lower(),
            "bad-invitation",
        ),
        fail(
            "invitation-fail-old-format",
            "a first-format code (pci1, 10-byte group prefix, unchecked hint) for the same "
            "invitation: refused as an old-format code",
            old + "@192.168.1.20:7777",
            "bad-invitation",
        ),
        fail(
            "invitation-fail-alphabet",
            "a character outside base32 (the digit 1)",
            text[:typo_at] + "1" + text[typo_at + 1 :],
            "bad-invitation",
        ),
        fail(
            "invitation-fail-non-ascii-space",
            "a no-break space (U+00A0) between groups: only ascii white space is removed",
            text[:20] + "\u00a0" + text[20:],
            "bad-invitation",
        ),
        fail(
            "invitation-fail-text-truncated",
            "the shortest code without its last character (153 base32 characters)",
            bare.text()[:-1],
            "bad-invitation",
        ),
        fail(
            "invitation-fail-text-length",
            "a body of 1 more than a multiple of 8 characters, which no byte string encodes to",
            text + "a" * ((1 - len(text) + len(CODE_PREFIX)) % 8),
            "bad-invitation",
        ),
        bad_payload(
            "invitation-fail-payload-truncated",
            "the payload without its last byte, with a correct checksum",
            [],
            "truncated",
            raw=canonical[:-1],
        ),
        bad_payload(
            "invitation-fail-payload-trailing-data",
            "the payload followed by a nil byte, with a correct checksum",
            [],
            "trailing-data",
            raw=canonical + b"\xc0",
        ),
        bad_payload(
            "invitation-fail-not-canonical",
            "the payload array written with a 3-byte array16 header",
            [],
            "not-canonical",
            raw=b"\xdc\x00\x08" + canonical[1:],
        ),
        bad_payload(
            "invitation-fail-version", "payload version 2", changed(0, 2), "unknown-version"
        ),
        bad_payload(
            "invitation-fail-fields",
            "seven items (no hints array)",
            [*items[:6], T0],
            "wrong-length",
        ),
        bad_payload("invitation-fail-role", "role 5", changed(4, 5), "out-of-range"),
        bad_payload("invitation-fail-role-zero", "role 0", changed(4, 0), "out-of-range"),
        bad_payload(
            "invitation-fail-group-length",
            "a 33-byte group id",
            changed(1, group + b"\x00"),
            "wrong-length",
        ),
        bad_payload(
            "invitation-fail-too-many-hints",
            "five hints",
            changed(7, ["a.example:1"] * 5),
            "too-large",
        ),
        bad_payload(
            "invitation-fail-hint-no-port",
            "a hint without a port",
            changed(7, ["192.168.1.20"]),
            None,
        ),
        bad_payload(
            "invitation-fail-hint-upper-case",
            "a dns name in upper case (hints are not normalised: they are checked bytes)",
            changed(7, ["Garden.example.org:7447"]),
            None,
        ),
        bad_payload(
            "invitation-fail-hint-ipv6-unbracketed",
            "an ipv6 address without brackets",
            changed(7, ["2001:db8::7:7447"]),
            None,
        ),
        bad_payload(
            "invitation-fail-hint-port", "port 65536", changed(7, ["192.168.1.20:65536"]), None
        ),
    ]


# --------------------------------------------------------------------------- histories


class Story:
    """A history being written, with a label per entry (``author-seq``)."""

    def __init__(
        self, founder: str = "alice", *, name: str, description: str = "", rules: str = ""
    ) -> None:
        self.history, alice = History.found(
            KEYS[founder], name=name, description=description, rules=rules, founder_name=founder
        )
        self.replicas: dict[str, Replica] = {founder: alice}
        self.labels: dict[bytes, str] = {self.history.genesis.id: f"{founder}-1"}
        #: Entries the vector gives without their body (as a replica that synced
        #: headers first holds them).
        self.bodiless: set[bytes] = set()

    def __getitem__(self, name: str) -> Replica:
        if name not in self.replicas:
            self.replicas[name] = self.history.replica(KEYS[name])
        return self.replicas[name]

    def label(self, entry: Entry, name: str | None = None) -> Entry:
        who = BY_KEY.get(entry.header.author, "?")
        self.labels[entry.id] = name or f"{who}-{entry.header.seq}"
        return entry

    def twin(self, name: str) -> Replica:
        """A second device of ``name`` (for a fork)."""
        return self[name].fork()


def _history_vector(name: str, description: str, story: Story) -> Json:
    entries = [e.without_body() if e.id in story.bodiless else e for e in story.history.entries]
    for e in entries:
        if e.id not in story.labels:
            story.label(e)
    labels = story.labels
    if len(set(labels.values())) != len(labels):
        # Forks: two entries share author and sequence.
        seen: dict[str, int] = {}
        for e in entries:
            base = labels[e.id]
            seen[base] = seen.get(base, 0) + 1
            if seen[base] > 1:
                labels[e.id] = f"{base}{chr(ord('a') + seen[base] - 1)}"
    state = resolve(entries)
    view = content_view(state, entries)

    def who(member: bytes) -> str:
        return BY_KEY.get(member, member.hex())

    return {
        "type": "history",
        "name": name,
        "description": description,
        "authors": {n: KEYS[n].public_key.hex() for n in NAMES},
        "group": story.history.group.hex(),
        "entries": [{"label": labels[e.id], "entry": encode_entry(e).hex()} for e in entries],
        "expect": {
            "metadata": {
                "name": state.metadata.name,
                "description": state.metadata.description,
                "rules": state.metadata.rules,
            },
            "members": {
                who(m): info.role.name.lower() for m, info in sorted(state.members.items())
            },
            "banned": sorted(who(m) for m in state.banned),
            "relays": sorted(who(m) for m in state.relays),
            "equivocators": {who(m): s for m, s in sorted(state.equivocators.items())},
            "verdicts": {labels[e.id]: state.verdicts[e.id].reason.value for e in entries},
            "items": [
                {
                    "entry": labels[i.id],
                    "text": i.text,
                    "parent": labels[i.parent] if i.parent is not None else None,
                    "hidden": i.hidden,
                    "reactions": [list(r) for r in i.reactions],
                }
                for i in view.items
            ],
            "drop_bodies": sorted(labels.get(x, x.hex()) for x in view.drop_bodies),
        },
    }


def story_basic() -> Story:
    s = Story(name="garden club", description="we grow things", rules="be kind")
    alice, bob, carol, dave = s["alice"], s["bob"], s["carol"], s["dave"]
    alice.add(bob, Role.MODERATOR, name="bob")
    bob.sync(alice)
    inv, code = bob.invite(secret("carol"), max_uses=1, note="for carol")
    carol.sync(bob)
    carol.join(code, inv, name="carol")
    hello = carol.post("hello, gardeners")
    alice.sync(carol)
    alice.reply(hello, "welcome, carol")
    alice.react(hello, "\U0001f331")
    bob.sync(alice)
    bob.react(hello, "\U0001f331")
    spam = carol.post("buy seeds at my shop")
    bob.sync(carol)
    bob.hide(spam, "advertising")
    rude = carol.post("you all grow badly")
    bob.sync(carol)
    bob.delete(rude, "rude")
    carol.sync(bob)
    carol.retract(spam)
    dave.sync(alice)
    dave.post("can I join?")  # not a member
    carol.add(dave, Role.MEMBER)  # members cannot add
    alice.set_metadata("garden club", "we grow things together", "be kind; no ads")
    return s


def story_mutual_removal() -> Story:
    s = Story(name="mutual")
    alice, bob = s["alice"], s["bob"]
    alice.add(bob, Role.ADMIN)
    bob.sync(alice)
    alice.remove(bob)
    bob.remove(alice)
    bob.post("I run this place now")
    return s


def story_strong_removal() -> Story:
    s = Story(name="strong removal")
    alice, bob, dave = s["alice"], s["bob"], s["dave"]
    alice.add(bob, Role.ADMIN)
    bob.sync(alice)
    bob.post("before")
    alice.sync(bob)
    alice.remove(bob)
    bob.add(dave, Role.MEMBER)
    bob.post("after")
    dave.sync(bob)
    dave.post("Bob let me in")
    return s


def story_demotion_race() -> Story:
    s = Story(name="demotion")
    alice, bob, carol = s["alice"], s["bob"], s["carol"]
    alice.add(bob, Role.ADMIN)
    alice.add(carol, Role.MEMBER)
    bob.sync(alice)
    carol.sync(alice)
    p = carol.post("a post")
    bob.sync(carol)
    alice.set_role(bob, Role.MEMBER)
    bob.add(KEYS["dave"].public_key, Role.MEMBER)
    bob.delete(p)
    bob.post("still a member")
    return s


def story_remove_and_re_add() -> Story:
    s = Story(name="re-add")
    alice, bob = s["alice"], s["bob"]
    alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    alice.remove(bob, reason="cooling off")
    bob.post("written while being removed")
    alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    bob.post("back again")
    return s


def story_last_admin() -> Story:
    s = Story(name="succession")
    alice, bob, carol = s["alice"], s["bob"], s["carol"]
    alice.add(bob, Role.MODERATOR)
    alice.add(carol, Role.MEMBER)
    bob.sync(alice)
    carol.sync(alice)
    bob.claim_admin()  # refused: Alice is admin
    alice.leave()
    bob.sync(alice)
    carol.sync(alice)
    carol.claim_admin()  # refused: Bob outranks Carol
    bob.claim_admin()
    return s


def story_equivocation() -> Story:
    s = Story(name="fork")
    alice, bob = s["alice"], s["bob"]
    alice.add(bob, Role.ADMIN)
    bob.sync(alice)
    bob.add(KEYS["carol"].public_key, Role.MEMBER)
    twin = bob.fork()
    bob.add(KEYS["dave"].public_key, Role.MEMBER)
    twin.remove(KEYS["carol"].public_key)
    carol = s["carol"]
    carol.sync(bob)
    carol.post("still here")
    return s


def story_invitation_uses() -> Story:
    s = Story(name="invitation uses")
    alice, carol, dave, erin, bob = s["alice"], s["carol"], s["dave"], s["erin"], s["bob"]
    inv, code = alice.invite(secret("open"), max_uses=2)
    alice.ban(KEYS["carol"].public_key, reason="known troll")
    for r in (carol, dave, erin, bob):
        r.sync(alice)
    carol.join(code, inv)  # banned: refused, and uses nothing
    dave.join(code, inv)
    erin.join(code, inv)
    bob.join(code, inv)  # three concurrent joins for two uses: order T decides
    alice.sync(carol, dave, erin, bob)
    alice.add(carol, Role.READER)  # an explicit add lifts the ban
    carol.sync(alice)
    carol.post("readers cannot post")
    alice.ban(KEYS["erin"].public_key)
    return s


def story_invitation_refusals() -> Story:
    s = Story(name="invitation refusals")
    alice, bob, carol, dave = s["alice"], s["bob"], s["carol"], s["dave"]
    short, short_code = alice.invite(secret("short"), max_uses=0, expires_at=s.history.clock + 1)
    revoked, revoked_code = alice.invite(secret("revoked"))
    kept, _kept_code = alice.invite(secret("kept"))
    for r in (bob, carol, dave):
        r.sync(alice)
    alice.revoke_invite(revoked)
    bob.join(revoked_code, revoked)  # concurrent with the revocation
    carol.join(short_code, short)  # after the expiry
    dave.join(short_code, kept)  # a proof made with the wrong code
    return s


def story_unauthorized() -> Story:
    s = Story(name="unauthorized")
    alice, bob, carol = s["alice"], s["bob"], s["carol"]
    alice.add(bob, Role.MODERATOR)
    alice.add(carol, Role.MEMBER)
    bob.sync(alice)
    carol.sync(alice)
    bob.remove(alice)  # a moderator cannot remove an admin
    bob.set_role(carol, Role.ADMIN)  # only admins set roles
    carol.invite(secret("carol-invites"))  # members cannot invite
    alice.remove(alice)  # self-targeted
    alice.append(Kind.ADD, b"\x92\x01\x02")  # malformed
    alice.append(13, _pack([1]))  # a reserved kind
    alice.append(FIRST_APP_KIND, b"application data")
    carol.append(Kind.POST, b"\x92\x01\xc0")  # malformed post: authorized, not shown
    return s


def _relay(r: Replica, relay: Replica, *, revoke: bool = False) -> Entry:
    """A RELAY operation by ``r`` that grants (or revokes) ``relay``'s key."""
    return r.append(Kind.RELAY, RelayGrant(relay=relay.id, revoke=revoke).encode())


def story_relay() -> Story:
    s = Story(name="relays")
    alice, bob, carol, dave, erin = s["alice"], s["bob"], s["carol"], s["dave"], s["erin"]
    alice.add(bob, Role.ADMIN)
    alice.add(carol, Role.MODERATOR)
    _relay(alice, erin)  # alice grants erin's node the right to carry the group
    bob.sync(alice)
    carol.sync(alice)
    bob.add(erin, Role.MEMBER)  # a granted relay is never a member: bad-target
    inv, code = carol.invite(secret("relay-joins"))
    erin.sync(carol)
    erin.join(code, inv)  # nor can it join: bad-target
    _relay(carol, dave)  # a moderator cannot grant
    _relay(alice, alice)  # nor can anyone grant itself
    _relay(alice, bob)  # a member cannot be a relay
    _relay(alice, erin, revoke=True)
    _relay(bob, erin)  # concurrent with the revocation, which wins
    alice.sync(bob)
    _relay(alice, dave)  # dave's node carries the group
    alice.add(erin, Role.READER)  # erin is no relay at this cut: she becomes a member
    return s


def story_genesis_without_body() -> Story:
    s = Story(name="headers first", description="the body comes later")
    alice, bob = s["alice"], s["bob"]
    alice.add(bob, Role.MEMBER, name="bob")
    hello = alice.post("hello")
    bob.sync(alice)
    bob.reply(hello, "hi, alice")
    s.bodiless.add(s.history.genesis.id)
    return s


def story_delete_outside_the_past() -> Story:
    s = Story(name="blind deletes")
    alice, bob, carol = s["alice"], s["bob"], s["carol"]
    alice.add(bob, Role.MODERATOR)
    alice.add(carol, Role.MEMBER)
    bob.sync(alice)
    carol.sync(alice)
    post = carol.post("bob has not seen this")
    app = carol.append(FIRST_APP_KIND, b"application data")
    alice.sync(carol)
    hide = alice.hide(post, "checking")
    op = alice.add(KEYS["dave"].public_key, Role.MEMBER)
    # Bob knows the ids from elsewhere: none is in his causal past.
    for target in (post, app, hide, op):
        bob.delete(target.id)
    bob.delete(crypto.blake2b_256(b"an entry no one holds"))
    return s


def story_application_content() -> Story:
    s = Story(name="application content")
    alice, carol = s["alice"], s["carol"]
    alice.add(carol, Role.MEMBER)
    carol.sync(alice)
    mine = carol.append(FIRST_APP_KIND, b"carol's data")
    kept = carol.append(FIRST_APP_KIND + 1, b"kept")
    carol.retract(mine)
    alice.sync(carol)
    carol_second = carol.append(FIRST_APP_KIND, b"more")
    alice.sync(carol)
    alice.delete(carol_second)
    carol.retract(alice.append(FIRST_APP_KIND, b"alice's data"))  # not hers: nothing
    del kept
    return s


def story_content_without_bodies() -> Story:
    s = Story(name="headers only")
    alice, bob = s["alice"], s["bob"]
    alice.add(bob, Role.MEMBER)
    post = alice.post("held without its body")
    bob.sync(alice)
    bare_reply = bob.reply(post, "held without its body too")
    bob.reply(post, "held whole")
    s.bodiless |= {post.id, bare_reply.id}
    return s


def story_leave_during_removal() -> Story:
    s = Story(name="leaving")
    alice, bob = s["alice"], s["bob"]
    alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    alice.remove(bob, reason="inactive")
    bob.leave()  # concurrent with the removal: still effective (R9)
    alice.add(bob, Role.MEMBER)  # has not seen the leave: the leave wins (R3)
    return s


def story_ban_during_join() -> Story:
    s = Story(name="ban and join")
    alice, carol = s["alice"], s["carol"]
    inv, code = alice.invite(secret("ban-race"))
    carol.sync(alice)
    alice.ban(KEYS["carol"].public_key, reason="troll")
    carol.join(code, inv)  # concurrent with the ban: revoked (O5, R8)
    carol.post("hello?")
    return s


def story_equivocator_everywhere() -> Story:
    s = Story(name="expelled")
    alice, bob, dave = s["alice"], s["bob"], s["dave"]
    alice.add(bob, Role.MODERATOR)
    bob.sync(alice)
    inv, code = bob.invite(secret("from-bob"))
    dave.sync(bob)
    dave.join(code, inv)  # does not see Bob's fork: inviter-revoked all the same (J8)
    twin = bob.fork()
    bob.post("one branch")
    twin.post("the other branch")
    alice.sync(bob)
    alice.ban(KEYS["bob"].public_key, reason="forked")  # an equivocator is not listed as banned
    return s


STORIES: list[tuple[str, str, Callable[[], Story]]] = [
    (
        "history-basic",
        "a small group: an add, an invitation and join, posts, a reply, reactions, a hide, a "
        "delete, a retract, a non-member's post, a member's refused add, new metadata",
        story_basic,
    ),
    (
        "history-mutual-removal",
        "1: Alice removes Bob / 2: Bob, concurrently, removes Alice, then posts; rule 6: the "
        "founder is senior, Bob's removal is excluded (conflict) and his post revoked",
        story_mutual_removal,
    ),
    (
        "history-strong-removal",
        "1: Alice removes Bob (cut 2) / 2: Bob, concurrently, adds Dave and posts; rule 2 voids "
        "both, so Dave's post is a non-member's; Bob's earlier post stands",
        story_strong_removal,
    ),
    (
        "history-demotion-race",
        "1: Alice demotes Bob to member / 2: Bob, concurrently, adds Dave, deletes Carol's post "
        "and posts; only what a member may do stands",
        story_demotion_race,
    ),
    (
        "history-remove-and-re-add",
        "1: Alice removes Bob / 2: Bob, concurrently, posts / 3: Alice adds Bob again / 4: Bob "
        "posts; he is a member, the post written while removed stays void",
        story_remove_and_re_add,
    ),
    (
        "history-last-admin",
        "an early claim is refused; Alice, the only admin, leaves; Carol's claim is refused "
        "(Bob outranks her); Bob's claim makes him admin",
        story_last_admin,
    ),
    (
        "history-equivocation",
        "Bob adds Carol, then forks: one branch adds Dave, the other removes Carol; both "
        "branches are void from the fork on and Bob is expelled; Carol stays",
        story_equivocation,
    ),
    (
        "history-invitation-uses",
        "a ban refuses a join (and uses nothing); three concurrent joins share two uses, "
        "given in order T; an add lifts the ban, to reader, and a reader cannot post; a "
        "member is banned at the end",
        story_invitation_uses,
    ),
    (
        "history-invitation-refusals",
        "a join concurrent with the revocation of its invitation, a join after the expiry, "
        "and a join whose proof was made with another invitation's code",
        story_invitation_refusals,
    ),
    (
        "history-unauthorized",
        "refused operations, each with its reason: insufficient role, self target, "
        "malformed body, reserved kind (13); an application kind is accepted",
        story_unauthorized,
    ),
    (
        "history-genesis-without-body",
        "the genesis is held without its body (rule B1): Alice is still the founder and "
        "admin, so her add of Bob and her post take effect and Bob's reply too; the "
        "metadata is empty until the body arrives",
        story_genesis_without_body,
    ),
    (
        "history-delete-outside-the-past",
        "rule V2: Bob, a moderator, deletes by id five entries he has not seen: Carol's post "
        "and application entry are removed, Alice's hide and her add of Dave are not (not "
        "removable), and an id no one holds is not listed; every arrival order gives this",
        story_delete_outside_the_past,
    ),
    (
        "history-application-content",
        "rule V1: application entries (kinds 256 and up) are removed by their author's "
        "retract and by a moderator's delete; a retract of someone else's removes nothing",
        story_application_content,
    ),
    (
        "history-content-without-bodies",
        "rule V3: a post held without its body is an item without text; a reply held "
        "without its body is not an item (its parent is in the body); a whole reply to the "
        "body-less post is",
        story_content_without_bodies,
    ),
    (
        "history-leave-during-removal",
        "rule R9 over O5: Bob leaves concurrently with Alice removing him; the leave stands, "
        "so Alice's re-add, which has not seen it, is outweighed by it (R3)",
        story_leave_during_removal,
    ),
    (
        "history-ban-during-join",
        "O5 applies to a join (need: the invitation's role): Carol joins concurrently with "
        "Alice banning her; the join is revoked, so her post is a non-member's",
        story_ban_during_join,
    ),
    (
        "history-equivocator-everywhere",
        "J8 and L2: Bob invites Dave, then forks; Dave's join, which has not seen the fork, "
        "is inviter-revoked (a fork anywhere in the set counts); Alice then bans Bob, and "
        "Bob is listed as an equivocator, not as banned",
        story_equivocator_everywhere,
    ),
    (
        "history-relay",
        "RELAY (kind 12): Alice grants Erin's key; Bob's add of Erin and Erin's join are "
        "bad-target (a granted relay is never a member); a moderator's grant, a grant to "
        "oneself and one to a member are refused; Alice revokes Erin while Bob, "
        "concurrently, grants her again: the revocation wins; Alice grants Dave, and adds "
        "Erin, no relay at that cut",
        story_relay,
    ),
]


def generate() -> Json:
    vectors: list[Json] = [constants(), *body_vectors(), *invitation_vectors()]
    for name, description, build in STORIES:
        vectors.append(_history_vector(name, description, build()))
    return {
        "description": (
            "p2pcomm membership (spec/04-membership.md): constants, operation and content bodies, "
            "invitation codes and join proofs, and histories with the members, verdicts and "
            "visible content they resolve to"
        ),
        "revision": REVISION,
        "vectors": vectors,
    }


if __name__ == "__main__":
    tools = Path(__file__).resolve().parent
    sys.path.insert(0, str(tools))
    import gen_vectors

    target = tools.parent / "spec" / "vectors" / "membership.json"
    target.write_text(gen_vectors.render(generate()), encoding="utf-8", newline="\n")
    print(f"wrote {target.relative_to(tools.parent)}")
