"""Vectors for the building blocks of content encryption (spec/12-encryption.md).

Types:

* ``constants``: sizes, limits, labels and the epoch-id namespace (12.2);
* ``padding``: a plaintext size, its Padmé length and the padded size (12.3 PD1);
* ``unpad``: padded bytes that must be refused (12.3 PD2);
* ``envelope``: a key, an epoch id, a nonce, an entry context (group, author, seq, kind)
  with its associated data, a plaintext, the padded plaintext and the body (12.4);
* ``envelope-open``: a key, an entry context and a body that must be refused, with the
  error (12.4 EO1 to EO3);
* ``slots``: a secret, group, context and recipients (private and public keys), the
  ephemeral key pair, every slot, and which slot each of a list of private keys opens
  (``null``: none) (12.5);
* ``slots-verify``: a secret, recipients, a rekey (ephemeral key and slots) and the bad
  indices verification finds (12.5 SV1, SV2);
* ``pointers``: a secret, the previous secrets and the blob (12.6); with ``fail``, a
  secret and a blob that must be refused;
* ``epoch``: a group and a frontier (entry id and secret pairs, in the order given), the
  epoch id and the epoch key (12.7);
* ``keyring``: a member seed, its keyring key, a nonce, the ring (receive private keys
  and their public keys, epoch secrets by entry id) and the blob (12.8);
* ``keyring-open``: a key and a blob that must be refused, with the error (12.8 KR4);
* ``key-block``: the fields of a key block (eight items, ``epoch`` included) and its
  bytes, with the secret, group, slot context, recipients and previous secrets its slots
  and pointers seal (12.9 KB1 to KB5, KB8); with ``fail``, bytes that must be refused
  (KB1 to KB3);
* ``sealed-fields``: the sealed name, description and rules of an encrypted group's
  GENESIS (the secret, founder, derived key, nonce, fields, plaintext, sealed bytes, body
  and signed entry, 12.11a SM1) and of a SET_METADATA after it (the epoch key, entry
  context, plaintext, envelope, body and entry, SM2), once for a since-join group (a
  fourth item ``1``, 12.11b); with ``unknown``, sealed bytes whose fields a reader takes
  as unknown, and the step that refuses them (SM3);
* ``history``: an encrypted group's entries, in a causal order, with every member's
  receive private keys, and what every replica must compute from them: the recipients
  of each key block and what its pointers carry (KB6 to KB8), and for each encrypted
  content entry its frontier, epoch id, holders, members at its cut, verdict (X1), which
  members can derive its key, the key and the plaintext (12.10). Built with
  :class:`p2pcomm.testing.crypted.CryptReplica`, which writes by W1 to W5 (12.11) and,
  in a since-join group, HM1 to HM4 (12.11b).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pcomm.core import crypto
from p2pcomm.core import keyring as kr
from p2pcomm.core import seal as s
from p2pcomm.core.content import Post
from p2pcomm.core.encoding import Limits, decode, decode_canonical, encode, expect_array
from p2pcomm.core.epochs import (
    HISTORY_FULL,
    HISTORY_SINCE_JOIN,
    LABEL_GENESIS_FIELDS,
    GroupKeys,
    KeyBlock,
    decode_fields_and_mode,
    encode_fields,
    encrypted_kind,
    open_genesis_fields,
    seal_genesis_fields,
    slot_context,
)
from p2pcomm.core.log import MAX_BODY_SIZE, Entry, create_entry, create_genesis, encode_entry
from p2pcomm.core.membership import MEMBERSHIP_KINDS, Kind, MembershipMachine, Role
from p2pcomm.core.membership.ops import (
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_RULES,
    GenesisBody,
    KeysOp,
    SetMetadata,
)
from p2pcomm.errors import DecodeError, SealError
from p2pcomm.testing.crypted import CryptReplica
from p2pcomm.testing.history import Replica, invitation_secret, named_keypair

REVISION = 6


def fixed(label: str, n: int = 32) -> bytes:
    """Fixed test bytes: ``BLAKE2b-256("p2pcomm test encryption " || label)[0..n]``."""
    return crypto.blake2b_256(b"p2pcomm test encryption " + label.encode("ascii"))[:n]


def test_key(name: str) -> bytes:
    """A member id of README 5.1's test keys."""
    return crypto.ed25519_public_from_seed(crypto.blake2b_256(b"p2pcomm test key " + name.encode()))


GROUP = fixed("group")
KEY = fixed("epoch key")
EPOCH = fixed("epoch id", 8)
NONCE = fixed("nonce", 12)
CTX = s.AadContext(GROUP, test_key("alice"), 3, 20)
HELLO = Post(text="hello, group").encode()
NAMES = ["alice", "bob", "carol", "dave"]
RECEIVE = {name: fixed(f"receive key {name}") for name in NAMES}
RECEIVE_PUB = {name: crypto.x25519_public(k) for name, k in RECEIVE.items()}
SECRET = fixed("epoch secret 1")
CONTEXT = fixed("rekey context")


def ctx_json(ctx: s.AadContext) -> dict[str, Any]:
    return {
        "group": ctx.group.hex(),
        "author": ctx.author.hex(),
        "seq": ctx.seq,
        "kind": ctx.kind,
        "aad": ctx.aad().hex(),
    }


def error_of(fn: Any, *args: Any) -> str:
    try:
        fn(*args)
    except (DecodeError, SealError) as exc:
        return exc.code.value
    raise AssertionError(f"{fn.__name__} accepted what a vector says it refuses")


def constants() -> dict[str, Any]:
    return {
        "type": "constants",
        "name": "constants",
        "description": "the sizes, limits and labels of chapter 12",
        "envelope_version": s.ENVELOPE_VERSION,
        "epoch_id_size": s.EPOCH_ID_SIZE,
        "nonce_size": s.NONCE_SIZE,
        "secret_size": s.SECRET_SIZE,
        "slot_size": s.SLOT_SIZE,
        "max_context_size": s.MAX_CONTEXT_SIZE,
        "max_plaintext_size": s.MAX_PLAINTEXT_SIZE,
        "max_body_size": MAX_BODY_SIZE,
        "labels": {
            "epoch_id": s.LABEL_EPOCH_ID,
            "epoch_key": s.LABEL_EPOCH_KEY,
            "slot_ephemeral": s.LABEL_SLOT_EPHEMERAL,
            "slot": s.LABEL_SLOT,
            "pointers": s.LABEL_POINTERS,
            "keyring_key": kr.LABEL_KEYRING_KEY,
            "genesis_fields": LABEL_GENESIS_FIELDS,
        },
        "epoch_id_namespace": crypto.namespace(s.LABEL_EPOCH_ID).hex(),
        "keyring_magic": kr.KEYRING_MAGIC,
        "keyring_version": kr.KEYRING_VERSION,
        "keyring_max_entries": kr.MAX_ENTRIES,
    }


def padding() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    zeros = [0, 5, 6, 7, 98, 126, 127, 222, 223, 997, 4093, 47100, 47101, 47997, 49148]
    for k in zeros:
        plaintext = encode(bytes(k))
        n = len(plaintext)
        out.append(
            {
                "type": "padding",
                "name": f"padding-{n}",
                "description": f"a plaintext of {n} bytes, the bin of {k} zero bytes,"
                f" pads to Padmé({n})",
                "zeros": k,
                "size": n,
                "padme": s.padme_length(n),
                "padded_size": len(s.pad(plaintext)),
            }
        )
    nine = encode(bytes(7))  # 9 bytes: Padmé(9) = 10
    hundred = encode(bytes(98))  # 100 bytes: Padmé(100) = 104
    for name, padded, what in [
        ("unpad-empty", b"", "nothing at all: no value"),
        ("unpad-zeros", bytes(8), "the value 0 and seven zeros: Padmé(1) is 1"),
        ("unpad-c1", b"\xc1\x00", "c1, which is no msgpack value"),
        ("unpad-truncated", b"\x92\xc0", "an array of two values holding one"),
        ("unpad-nonzero-after-value", nine + b"\x01", "a nonzero byte after the value"),
        ("unpad-terminator", nine + b"\x80", "a 0x80 terminator (revision 5) after the value"),
        ("unpad-too-long", hundred + bytes(8), "100 bytes padded to 108, not 104"),
        ("unpad-too-short", hundred + bytes(3), "100 bytes padded to 103, not 104"),
        ("unpad-too-short-none", nine, "9 bytes not padded to 10"),
    ]:
        out.append(
            {
                "type": "unpad",
                "name": name,
                "description": what,
                "padded": padded.hex(),
                "fail": error_of(s.unpad, padded),
            }
        )
    return out


def envelopes() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cases = [
        ("envelope-smallest", b"\x90", "the smallest plaintext, one byte: no padding"),
        ("envelope-hello", HELLO, "a short post: the POST body of 'hello, group'"),
        (
            "envelope-224",
            encode(bytes(range(222))),
            "the last size whose ciphertext has a 1-byte length",
        ),
        ("envelope-225", encode(bytes(range(223))), "the first with a 2-byte length"),
    ]
    for name, plaintext, what in cases:
        out.append(
            {
                "type": "envelope",
                "name": name,
                "description": what,
                "key": KEY.hex(),
                "epoch_id": EPOCH.hex(),
                "nonce": NONCE.hex(),
                "context": ctx_json(CTX),
                "plaintext": plaintext.hex(),
                "padded": s.pad(plaintext).hex(),
                "body": s.seal_body(KEY, EPOCH, NONCE, CTX, plaintext).hex(),
            }
        )
    body = s.seal_body(KEY, EPOCH, NONCE, CTX, HELLO)
    fields = s.decode_envelope(body)
    flipped = body[:-1] + bytes([body[-1] ^ 0x01])
    bad_pad = crypto.aead_seal(KEY, NONCE, CTX.aad(), HELLO + b"\x01")
    too_much_pad = crypto.aead_seal(KEY, NONCE, CTX.aad(), encode("hello") + bytes(10))
    other = {
        "group": s.AadContext(fixed("other group"), CTX.author, CTX.seq, CTX.kind),
        "author": s.AadContext(CTX.group, test_key("bob"), CTX.seq, CTX.kind),
        "seq": s.AadContext(CTX.group, CTX.author, CTX.seq + 1, CTX.kind),
        "kind": s.AadContext(CTX.group, CTX.author, CTX.seq, CTX.kind + 1),
    }
    fails: list[tuple[str, str, bytes, bytes, s.AadContext]] = [
        ("open-flipped-tag", "the last tag byte flipped", KEY, flipped, CTX),
        ("open-wrong-key", "another key", fixed("another key"), body, CTX),
        *(
            (f"open-other-{what}", f"the body moved to an entry with another {what}", KEY, body, c)
            for what, c in other.items()
        ),
        (
            "open-version-2",
            "envelope version 2",
            KEY,
            encode([2, EPOCH, NONCE, fields.ciphertext]),
            CTX,
        ),
        (
            "open-bad-padding",
            "a good tag over padding with a nonzero byte after the value",
            KEY,
            encode([1, EPOCH, NONCE, bad_pad]),
            CTX,
        ),
        (
            "open-too-much-padding",
            "a good tag over 6 bytes padded to 16, not 6",
            KEY,
            encode([1, EPOCH, NONCE, too_much_pad]),
            CTX,
        ),
        ("open-three-items", "no ciphertext", KEY, encode([1, EPOCH, NONCE]), CTX),
        (
            "open-epoch-id-9",
            "a 9-byte epoch id",
            KEY,
            encode([1, EPOCH + b"\x00", NONCE, fields.ciphertext]),
            CTX,
        ),
        (
            "open-nonce-24",
            "a 24-byte nonce (XChaCha20 is not used)",
            KEY,
            encode([1, EPOCH, NONCE * 2, fields.ciphertext]),
            CTX,
        ),
        (
            "open-ciphertext-16",
            "a ciphertext of only a tag: not even a one-byte plaintext",
            KEY,
            encode([1, EPOCH, NONCE, fields.ciphertext[-16:]]),
            CTX,
        ),
        ("open-truncated", "the last byte missing", KEY, body[:-1], CTX),
        ("open-trailing", "a byte after the array", KEY, body + b"\x00", CTX),
    ]
    for name, what, key, data, ctx in fails:
        out.append(
            {
                "type": "envelope-open",
                "name": name,
                "description": what,
                "key": key.hex(),
                "context": ctx_json(ctx),
                "body": data.hex(),
                "fail": error_of(s.open_body, key, data, ctx),
            }
        )
    return out


def slots() -> list[dict[str, Any]]:
    recipients = ["alice", "bob", "carol"]
    pubs = [RECEIVE_PUB[n] for n in recipients]
    rekey = s.seal_slots(SECRET, pubs, GROUP, CONTEXT)
    eph = s.slot_ephemeral(SECRET)
    opens: list[dict[str, Any]] = []
    for name in NAMES:
        index = None
        for i in range(rekey.count):
            try:
                assert s.open_slot(RECEIVE[name], i, rekey, GROUP, CONTEXT) == SECRET
            except SealError:
                continue
            index = i
        opens.append({"private": RECEIVE[name].hex(), "opens": index})
    out: list[dict[str, Any]] = [
        {
            "type": "slots",
            "name": "slots-three-recipients",
            "description": "a secret sealed to alice, bob and carol; dave opens nothing",
            "secret": SECRET.hex(),
            "group": GROUP.hex(),
            "context": CONTEXT.hex(),
            "recipients": [
                {"private": RECEIVE[n].hex(), "public": RECEIVE_PUB[n].hex()} for n in recipients
            ],
            "eph_private": eph.hex(),
            "eph_pub": rekey.eph_pub.hex(),
            "slots": [rekey.slot(i).hex() for i in range(rekey.count)],
            "trials": opens,
        }
    ]
    garbled = bytearray(rekey.slots)
    garbled[s.SLOT_SIZE + 7] ^= 0x40
    other = s.seal_slots(SECRET, [RECEIVE_PUB["dave"]], GROUP, CONTEXT)
    verify_cases = [
        ("slots-verify-good", "every slot right", rekey),
        (
            "slots-verify-garbled",
            "slot 1 has one bit flipped",
            s.Rekey(rekey.eph_pub, bytes(garbled)),
        ),
        (
            "slots-verify-swapped",
            "slot 2 is sealed to dave instead of carol",
            s.Rekey(rekey.eph_pub, rekey.slots[: 2 * s.SLOT_SIZE] + other.slots),
        ),
        (
            "slots-verify-missing",
            "carol's slot is missing",
            s.Rekey(rekey.eph_pub, rekey.slots[:96]),
        ),
        (
            "slots-verify-surplus",
            "a fourth slot for nobody",
            s.Rekey(rekey.eph_pub, rekey.slots + other.slots),
        ),
        (
            "slots-verify-other-ephemeral",
            "the ephemeral key is not the one derived from the secret",
            s.Rekey(crypto.x25519_public(fixed("some ephemeral")), rekey.slots),
        ),
    ]
    for name, what, r in verify_cases:
        out.append(
            {
                "type": "slots-verify",
                "name": name,
                "description": what,
                "secret": SECRET.hex(),
                "group": GROUP.hex(),
                "context": CONTEXT.hex(),
                "recipients": [p.hex() for p in pubs],
                "eph_pub": r.eph_pub.hex(),
                "slots": r.slots.hex(),
                "bad": s.verify_slots(SECRET, pubs, r, GROUP, CONTEXT),
            }
        )
    return out


def pointers() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in (0, 1, 2):
        previous = [fixed(f"previous secret {i}") for i in range(k)]
        out.append(
            {
                "type": "pointers",
                "name": f"pointers-{k}",
                "description": f"{k} previous secrets",
                "secret": SECRET.hex(),
                "previous": [p.hex() for p in previous],
                "blob": s.seal_pointers(SECRET, previous).hex(),
            }
        )
    blob = s.seal_pointers(SECRET, [fixed("previous secret 0")])
    for name, what, secret, data in [
        ("pointers-wrong-secret", "opened with another secret", fixed("epoch secret 2"), blob),
        ("pointers-flipped", "the first byte flipped", SECRET, bytes([blob[0] ^ 1]) + blob[1:]),
        ("pointers-15-bytes", "shorter than a tag", SECRET, blob[:15]),
        ("pointers-47-bytes", "not 16 + 32k bytes", SECRET, blob[:-1]),
    ]:
        out.append(
            {
                "type": "pointers",
                "name": name,
                "description": what,
                "secret": secret.hex(),
                "blob": data.hex(),
                "fail": error_of(s.open_pointers, secret, data),
            }
        )
    return out


def epochs() -> list[dict[str, Any]]:
    a = (fixed("rekey entry a"), fixed("epoch secret a"))
    b = (fixed("rekey entry b"), fixed("epoch secret b"))
    out = []
    for name, frontier, what in [
        ("epoch-one", [a], "one rekey in the frontier"),
        ("epoch-two", [a, b], "two concurrent rekeys"),
        ("epoch-two-reversed", [b, a], "the same two, listed the other way: the same epoch"),
        (
            "epoch-two-secrets-swapped",
            [(a[0], b[1]), (b[0], a[1])],
            "the same ids and secrets, paired the other way",
        ),
    ]:
        out.append(
            {
                "type": "epoch",
                "name": name,
                "description": what,
                "group": GROUP.hex(),
                "frontier": [{"entry_id": e.hex(), "secret": x.hex()} for e, x in frontier],
                "epoch_id": s.epoch_id(GROUP, [e for e, _ in frontier]).hex(),
                "key": s.epoch_key(GROUP, frontier).hex(),
            }
        )
    return out


def opened(blob: bytes, key: bytes) -> bytes:
    """The plaintext inside a keyring blob, opened by hand (12.8 KR2)."""
    fields = decode(blob)
    assert isinstance(fields, list)
    nonce, ciphertext = fields[2], fields[3]
    assert isinstance(nonce, bytes) and isinstance(ciphertext, bytes)
    return crypto.aead_open(key, nonce, encode([kr.KEYRING_MAGIC, kr.KEYRING_VERSION]), ciphertext)


def keyrings() -> list[dict[str, Any]]:
    seed = crypto.blake2b_256(b"p2pcomm test key alice")
    key = kr.keyring_key(seed)
    nonce = fixed("keyring nonce", 12)
    ring = kr.Keyring()
    for name in ("alice", "bob"):
        ring.add_receive_key(RECEIVE[name])
    for i in range(3):
        ring.add_secret(fixed(f"rekey entry {i}"), fixed(f"epoch secret {i}"))
    blob = kr.seal_keyring(ring, key, nonce)
    empty = kr.seal_keyring(kr.Keyring(), key, nonce)

    def ring_json(r: kr.Keyring) -> dict[str, Any]:
        return {
            "receive_keys": [{"public": p.hex(), "private": k.hex()} for p, k in r.receive_keys()],
            "epoch_secrets": [
                {"entry_id": e.hex(), "secret": x.hex()} for e, x in r.epoch_secrets()
            ],
        }

    out: list[dict[str, Any]] = [
        {
            "type": "keyring",
            "name": name,
            "description": what,
            "seed": seed.hex(),
            "key": key.hex(),
            "nonce": nonce.hex(),
            "ring": ring_json(r),
            "plaintext": opened(b, key).hex(),
            "blob": b.hex(),
        }
        for name, what, r, b in [
            ("keyring-empty", "an empty ring of alice (test key seed)", kr.Keyring(), empty),
            ("keyring-two-keys-three-secrets", "two receive keys, three epoch secrets", ring, blob),
        ]
    ]
    flipped = bytearray(blob)
    flipped[-5] ^= 0x10
    for name, what, k, data in [
        (
            "keyring-wrong-key",
            "bob's keyring key",
            kr.keyring_key(crypto.blake2b_256(b"p2pcomm test key bob")),
            blob,
        ),
        ("keyring-flipped", "one ciphertext bit flipped", key, bytes(flipped)),
        ("keyring-truncated", "the last byte missing", key, blob[:-1]),
        ("keyring-trailing", "a byte after the array", key, blob + b"\x00"),
        ("keyring-version-2", "version 2", key, encode(["p2pcomm-keyring", 2, nonce, blob[-60:]])),
        ("keyring-magic", "a key file's magic", key, encode(["p2pcomm-key", 1, nonce, blob[-60:]])),
    ]:
        out.append(
            {
                "type": "keyring-open",
                "name": name,
                "description": what,
                "key": k.hex(),
                "blob": data.hex(),
                "fail": error_of(kr.open_keyring, data, k),
            }
        )
    return out


# --------------------------------------------------------------------------- key blocks


def _block_json(b: KeyBlock) -> dict[str, Any]:
    return {
        "receive": b.receive.hex(),
        "exclude": [m.hex() for m in b.exclude],
        "to": [m.hex() for m in b.to],
        "epoch": [i.hex() for i in b.epoch],
        "eph_pub": b.eph_pub.hex(),
        "slots": b.slots.hex(),
        "pointers": b.pointers.hex(),
    }


#: A point of order 8 on Curve25519 (RFC 7748's list of small-order u-coordinates).
ORDER_8 = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
#: The entry ids of two rekeys a forward names (``epoch``), ascending.
EPOCH_IDS = sorted([fixed("rekey entry 0"), fixed("rekey entry 1")])


def key_blocks() -> list[dict[str, Any]]:
    alice, bob, carol, dave = (test_key(n) for n in ("alice", "bob", "carol", "dave"))
    previous = [fixed("previous secret 0"), fixed("previous secret 1")]
    cases: list[tuple[str, str, dict[str, Any]]] = [
        (
            "key-block-receive",
            "a receive key alone: what a JOIN or a KEYS publishes (W1)",
            {"receive": RECEIVE_PUB["alice"]},
        ),
        (
            "key-block-genesis",
            "an encrypted group's genesis: alice's receive key and the first secret sealed to"
            " it, under the zero group (KB5), no pointers",
            {
                "receive": RECEIVE_PUB["alice"],
                "group": bytes(32),
                "context": (alice, 1, Kind.GENESIS),
                "recipients": ["alice"],
            },
        ),
        (
            "key-block-rekey",
            "a REMOVE's rekey by alice (seq 5) that also excludes dave: slots for bob and carol"
            " in member-id order, pointers to two previous secrets",
            {
                "exclude": [dave],
                "group": GROUP,
                "context": (alice, 5, Kind.REMOVE),
                "recipients": sorted(["bob", "carol"], key=test_key),
                "previous": previous,
            },
        ),
        (
            "key-block-forward",
            "a KEYS forward by bob (seq 3) to alice and carol, in member-id order, with the"
            " one secret of the epoch at its cut",
            {
                "to": sorted([alice, carol]),
                "group": GROUP,
                "context": (bob, 3, Kind.KEYS),
                "recipients": sorted(["alice", "carol"], key=test_key),
                "previous": previous[:1],
            },
        ),
        (
            "key-block-forward-epoch",
            "a KEYS forward by carol (seq 4) to dave of a named past epoch of two rekeys"
            " (ascending entry ids): its pointers carry their two secrets in that order (W5)",
            {
                "to": [dave],
                "epoch": EPOCH_IDS,
                "group": GROUP,
                "context": (carol, 4, Kind.KEYS),
                "recipients": ["dave"],
                "previous": previous,
            },
        ),
    ]
    out: list[dict[str, Any]] = []
    for name, what, c in cases:
        receive = c.get("receive", b"")
        extra: dict[str, Any] = {}
        eph_pub = slots_ = pointers_ = b""
        if "context" in c:
            author, seq, kind = c["context"]
            ctx = slot_context(author, seq, kind)
            rekey = s.seal_slots(SECRET, [RECEIVE_PUB[n] for n in c["recipients"]], c["group"], ctx)
            eph_pub, slots_ = rekey.eph_pub, rekey.slots
            if "previous" in c:
                pointers_ = s.seal_pointers(SECRET, c["previous"])
            extra = {
                "secret": SECRET.hex(),
                "group": c["group"].hex(),
                "context_of": {"author": author.hex(), "seq": seq, "kind": int(kind)},
                "context": ctx.hex(),
                "recipients": [RECEIVE_PUB[n].hex() for n in c["recipients"]],
                "previous": [p.hex() for p in c.get("previous", [])],
            }
        block = KeyBlock(
            receive=receive,
            exclude=tuple(c.get("exclude", ())),
            to=tuple(c.get("to", ())),
            epoch=tuple(c.get("epoch", ())),
            eph_pub=eph_pub,
            slots=slots_,
            pointers=pointers_,
        )
        data = block.encode()
        assert KeyBlock.decode(data) == block
        out.append(
            {
                "type": "key-block",
                "name": name,
                "description": what,
                "fields": _block_json(block),
                "rekey": block.is_rekey,
                "forward": block.is_forward,
                "encoded": data.hex(),
                **extra,
            }
        )
    eph = s.seal_slots(SECRET, [RECEIVE_PUB["bob"]], GROUP, CONTEXT)
    slot = eph.slots
    ptr = s.seal_pointers(SECRET, previous[:1])
    rpub = RECEIVE_PUB["alice"]
    ids = sorted([alice, bob])
    ep = EPOCH_IDS

    def items(**f: Any) -> list[Any]:
        base = {"receive": b"", "exclude": b"", "to": b"", "epoch": b"", "eph": eph.eph_pub}
        base["slots"] = slot
        base["pointers"] = b""
        base.update(f)
        return [
            1,
            base["receive"],
            base["exclude"],
            base["to"],
            base["epoch"],
            base["eph"],
            base["slots"],
            base["pointers"],
        ]

    good = encode(items(receive=rpub))
    # eph_pub written as bin 16 (c5 0020) instead of bin 8 (c4 20)
    at = good.index(b"\xc4\x20" + eph.eph_pub)
    wide = good[:at] + b"\xc5\x00\x20" + good[at + 2 :]
    fails: list[tuple[str, str, bytes]] = [
        ("version-2", "version 2", encode([2, *items(receive=rpub)[1:]])),
        ("seven-items", "no pointers item", encode(items(receive=rpub)[:7])),
        ("nine-items", "a ninth item, past the limit of 8", encode([*items(), b""])),
        ("receive-31", "a 31-byte receive key", encode(items(receive=rpub[:31]))),
        ("receive-zero", "the receive key 0 (small order, SK4)", encode(items(receive=bytes(32)))),
        ("receive-order-8", "a receive key of order 8 (SK4)", encode(items(receive=ORDER_8))),
        ("receive-str", "the receive key as str", encode(items(receive="k" * 32))),
        ("exclude-33", "exclude not a multiple of 32 bytes", encode(items(exclude=ids[0] + b"x"))),
        (
            "exclude-descending",
            "exclude ids in descending order",
            encode(items(exclude=ids[1] + ids[0])),
        ),
        ("exclude-twice", "one id excluded twice", encode(items(exclude=ids[0] + ids[0]))),
        (
            "to-descending",
            "to ids in descending order",
            encode(items(to=ids[1] + ids[0])),
        ),
        ("to-and-exclude", "both to and exclude", encode(items(to=ids[0], exclude=ids[1]))),
        (
            "epoch-33",
            "epoch not a multiple of 32 bytes",
            encode(items(to=ids[0], epoch=ep[0] + b"x")),
        ),
        (
            "epoch-descending",
            "epoch ids in descending order",
            encode(items(to=ids[0], epoch=ep[1] + ep[0])),
        ),
        ("epoch-twice", "one rekey named twice", encode(items(to=ids[0], epoch=ep[0] + ep[0]))),
        ("epoch-without-to", "an epoch in a rekey (no to list)", encode(items(epoch=ep[0]))),
        ("eph-31", "a 31-byte eph_pub", encode(items(eph=eph.eph_pub[:31]))),
        ("slots-47", "slots not a multiple of 48 bytes", encode(items(slots=slot[:47]))),
        ("pointers-15", "pointers shorter than a tag", encode(items(pointers=ptr[:15]))),
        ("pointers-47", "pointers not 16 + 32m bytes", encode(items(pointers=ptr[:47]))),
        ("slots-without-eph", "slots but no eph_pub", encode(items(eph=b""))),
        (
            "pointers-without-eph",
            "pointers but no eph_pub",
            encode(items(eph=b"", slots=b"", pointers=ptr)),
        ),
        (
            "to-without-eph",
            "a to list but no eph_pub",
            encode(items(eph=b"", slots=b"", to=ids[0])),
        ),
        (
            "exclude-without-eph",
            "an exclude list but no eph_pub",
            encode(items(eph=b"", slots=b"", exclude=ids[0])),
        ),
        ("empty", "every item empty", encode(items(eph=b"", slots=b""))),
        ("not-an-array", "a bin instead of an array", encode(b"keys")),
        ("nested", "an array where the receive key belongs", encode(items(receive=[rpub]))),
        ("not-canonical", "eph_pub written with a bin 16 header", wide),
        ("truncated", "the last byte missing", good[:-1]),
        ("trailing", "a byte after the array", good + b"\x00"),
    ]
    for name, what, data in fails:
        out.append(
            {
                "type": "key-block",
                "name": f"key-block-fail-{name}",
                "description": what,
                "encoded": data.hex(),
                "fail": error_of(KeyBlock.decode, data),
            }
        )
    return out


# --------------------------------------------------------------------------- sealed fields

#: The founder of the sealed-fields vectors (README 5.1's test key ``alice``), its
#: receive key pair (the one key-block-genesis seals to) and the genesis's timestamp.
FOUNDER = named_keypair("alice")
SEALED_TIMESTAMP = 1_795_478_400_000
#: 12 SM3: how the plaintext of sealed fields is decoded.
FIELD_LIMITS = Limits(max_size=MAX_BODY_SIZE, max_bytes=MAX_BODY_SIZE, max_array=4, max_depth=1)
FIELDS = ("garden club", "we grow things", "be kind")
NEW_FIELDS = ("allotment society", "", "no spam")


def fields_problem(plaintext: bytes) -> str | None:
    """SM3 on an opened plaintext: the error of the first rule it breaks, or None when it
    gives the three fields (the items 04 4.5 accepts in a SET_METADATA body), optionally
    followed by the history mode ``1`` (12.11b): a fourth item that is not an integer is
    ``wrong-type``, another integer ``out-of-range``."""
    try:
        items = decode_canonical(plaintext, FIELD_LIMITS)
        expect_array(items, "fields")
        if len(items) == 4:
            if type(items[3]) is not int:
                return "wrong-type"
            if items[3] != HISTORY_SINCE_JOIN:
                return "out-of-range"
            items = items[:3]
        expect_array(items, "fields", length=3)
        SetMetadata.decode(encode([1, *items]))
    except DecodeError as exc:
        return exc.code.value
    return None


def genesis_problem(secret: bytes, founder: bytes, sealed: bytes) -> str | None:
    """SM1 and SM3, step by step: the first rule ``sealed`` breaks, None if it opens."""
    if len(sealed) < s.NONCE_SIZE + 17:
        return "wrong-length"
    key = crypto.hkdf_sha256(b"", secret, LABEL_GENESIS_FIELDS.encode("ascii"))
    try:
        plaintext = s.unpad(crypto.aead_open(key, sealed[:12], founder, sealed[12:]))
    except crypto.AeadError:
        return "decrypt-failed"
    except SealError as exc:
        return exc.code.value
    return fields_problem(plaintext)


def set_metadata_problem(key: bytes, eid: bytes, ctx: s.AadContext, sealed: bytes) -> str | None:
    """SM2 and SM3, step by step (EN, RD2, EO2, EO3): the first rule ``sealed`` breaks."""
    try:
        env = s.decode_envelope(sealed)
        if env.epoch_id != eid:
            return "wrong-epoch"
        plaintext = s.open_envelope(key, env, ctx)
    except (DecodeError, SealError) as exc:
        return exc.code.value
    return fields_problem(plaintext)


def _fields_json(fields: tuple[str, str, str]) -> dict[str, str]:
    return dict(zip(("name", "description", "rules"), fields, strict=True))


def sealed_fields() -> list[dict[str, Any]]:
    alice, bob = FOUNDER.public_key, test_key("bob")
    assert alice == test_key("alice")
    receive = {"public": RECEIVE_PUB["alice"].hex(), "private": RECEIVE["alice"].hex()}
    # The genesis: the block of vector key-block-genesis (SECRET sealed to alice's
    # receive key under the zero group) and the fields sealed under a key from SECRET.
    rekey = s.seal_slots(
        SECRET, [RECEIVE_PUB["alice"]], bytes(32), slot_context(alice, 1, Kind.GENESIS)
    )
    block = KeyBlock(receive=RECEIVE_PUB["alice"], eph_pub=rekey.eph_pub, slots=rekey.slots)
    keys = block.encode()
    gkey = crypto.hkdf_sha256(b"", SECRET, LABEL_GENESIS_FIELDS.encode("ascii"))
    gnonce = fixed("genesis fields nonce", 12)

    def genesis_sealed(fields: tuple[str, str, str], **kw: Any) -> bytes:
        secret = kw.get("secret", SECRET)
        ad = kw.get("founder", alice)
        history = kw.get("history", HISTORY_FULL)
        return seal_genesis_fields(secret, ad, encode_fields(*fields, history), gnonce)

    plaintext = encode_fields(*FIELDS)
    sealed = genesis_sealed(FIELDS)
    body = GenesisBody(name="", founder_name="alice", keys=keys, sealed=sealed).encode()
    genesis = create_genesis(FOUNDER, timestamp=SEALED_TIMESTAMP, body=body)
    group = genesis.id
    assert genesis_problem(SECRET, alice, sealed) is None
    assert open_genesis_fields(SECRET, alice, sealed) == plaintext
    out: list[dict[str, Any]] = [
        {
            "type": "sealed-fields",
            "name": "sealed-fields-genesis",
            "description": "an encrypted group's genesis by alice: its first secret, in the"
            " block of key-block-genesis, seals the name, description and rules (SM1); the"
            " clear fields are empty",
            "operation": "genesis",
            "secret": SECRET.hex(),
            "receive": receive,
            "founder": alice.hex(),
            "key": gkey.hex(),
            "nonce": gnonce.hex(),
            "fields": _fields_json(FIELDS),
            "plaintext": plaintext.hex(),
            "padded": s.pad(plaintext).hex(),
            "sealed": sealed.hex(),
            "founder_name": "alice",
            "keys": keys.hex(),
            "body": body.hex(),
            "timestamp": SEALED_TIMESTAMP,
            "entry": encode_entry(genesis).hex(),
            "group": group.hex(),
        }
    ]
    # The same genesis for a since-join group (12.11b): the fields end with the integer 1.
    sj_plaintext = encode_fields(*FIELDS, HISTORY_SINCE_JOIN)
    assert sj_plaintext == encode([*FIELDS, 1])
    sj_sealed = genesis_sealed(FIELDS, history=HISTORY_SINCE_JOIN)
    sj_body = GenesisBody(name="", founder_name="alice", keys=keys, sealed=sj_sealed).encode()
    sj_genesis = create_genesis(FOUNDER, timestamp=SEALED_TIMESTAMP, body=sj_body)
    assert genesis_problem(SECRET, alice, sj_sealed) is None
    assert decode_fields_and_mode(sj_plaintext) == (*FIELDS, HISTORY_SINCE_JOIN)
    out.append(
        {
            "type": "sealed-fields",
            "name": "sealed-fields-genesis-since-join",
            "description": "as sealed-fields-genesis, for a since-join group (12.11b): the"
            " sealed fields have a fourth item, the integer 1",
            "operation": "genesis",
            "secret": SECRET.hex(),
            "receive": receive,
            "founder": alice.hex(),
            "key": gkey.hex(),
            "nonce": gnonce.hex(),
            "fields": _fields_json(FIELDS),
            "history": HISTORY_SINCE_JOIN,
            "plaintext": sj_plaintext.hex(),
            "padded": s.pad(sj_plaintext).hex(),
            "sealed": sj_sealed.hex(),
            "founder_name": "alice",
            "keys": keys.hex(),
            "body": sj_body.hex(),
            "timestamp": SEALED_TIMESTAMP,
            "entry": encode_entry(sj_genesis).hex(),
            "group": sj_genesis.id.hex(),
        }
    )
    # A SET_METADATA by alice right after it (seq 2): an envelope under the epoch of its
    # cut, whose frontier is the genesis alone.
    eid = s.epoch_id(group, [group])
    ekey = s.epoch_key(group, [(group, SECRET)])
    ctx = s.AadContext(group, alice, 2, Kind.SET_METADATA)
    nonce = fixed("set_metadata nonce", 12)

    def envelope(fields: tuple[str, str, str], **kw: Any) -> bytes:
        return s.seal_body(
            kw.get("key", ekey),
            kw.get("epoch", eid),
            nonce,
            kw.get("ctx", ctx),
            kw.get("plaintext", encode_fields(*fields)),
        )

    def set_metadata_vector(name: str, what: str, fields: tuple[str, str, str]) -> None:
        plaintext = encode_fields(*fields)
        sealed = envelope(fields)
        body = SetMetadata(name="", sealed=sealed).encode()
        entry = create_entry(
            FOUNDER,
            group=group,
            seq=2,
            prev=group,
            links=(),
            timestamp=SEALED_TIMESTAMP + 1,
            kind=Kind.SET_METADATA,
            body=body,
        )
        assert set_metadata_problem(ekey, eid, ctx, sealed) is None
        out.append(
            {
                "type": "sealed-fields",
                "name": name,
                "description": what,
                "operation": "set_metadata",
                "group": group.hex(),
                "frontier": [group.hex()],
                "epoch_id": eid.hex(),
                "key": ekey.hex(),
                "nonce": nonce.hex(),
                "context": ctx_json(ctx),
                "fields": _fields_json(fields),
                "plaintext": plaintext.hex(),
                "sealed": sealed.hex(),
                "body": body.hex(),
                "timestamp": SEALED_TIMESTAMP + 1,
                "entry": encode_entry(entry).hex(),
            }
        )

    set_metadata_vector(
        "sealed-fields-set-metadata",
        "alice renames the group at seq 2: an envelope under the key of the genesis's epoch"
        " with the entry's context (SM2); the clear fields are empty",
        NEW_FIELDS,
    )
    limits = ("n" * MAX_NAME, "d" * MAX_DESCRIPTION, "r" * MAX_RULES)
    set_metadata_vector(
        "sealed-fields-set-metadata-limits",
        "every field at 04's limit (64, 1024 and 8192 bytes): they open (SM3)",
        limits,
    )
    # Refusals: the fields are unknown (SM3); ``unknown`` names the step that refuses them.
    over = ("n" * (MAX_NAME + 1), "", "")
    gsealed = bytearray(sealed)
    gsealed[20] ^= 0x01
    gfails: list[tuple[str, str, bytes]] = [
        (
            "genesis-wrong-key",
            "sealed under a key from another secret",
            genesis_sealed(FIELDS, secret=fixed("another secret")),
        ),
        (
            "genesis-other-founder",
            "sealed with bob as associated data, read in alice's genesis",
            genesis_sealed(FIELDS, founder=bob),
        ),
        ("genesis-flipped", "one ciphertext bit flipped", bytes(gsealed)),
        ("genesis-truncated", "the last byte missing", sealed[:-1]),
        (
            "genesis-short",
            "28 bytes: a nonce and a tag, not even a one-byte plaintext",
            sealed[:12] + sealed[-16:],
        ),
        ("genesis-name-65", "a 65-byte name, above 04's limit of 64", genesis_sealed(over)),
        (
            "genesis-two-fields",
            "a plaintext of two strings",
            seal_genesis_fields(SECRET, alice, encode(["garden club", ""]), gnonce),
        ),
        (
            "genesis-history-0",
            "a fourth item 0: full history is written by leaving it out (12.11b)",
            seal_genesis_fields(SECRET, alice, encode([*FIELDS, 0]), gnonce),
        ),
        (
            "genesis-history-2",
            "a fourth item 2, no history mode",
            seal_genesis_fields(SECRET, alice, encode([*FIELDS, 2]), gnonce),
        ),
        (
            "genesis-history-string",
            'a fourth item "1", a str',
            seal_genesis_fields(SECRET, alice, encode([*FIELDS, "1"]), gnonce),
        ),
    ]
    for name, what, data in gfails:
        fail = genesis_problem(SECRET, alice, data)
        assert fail is not None, name
        opened = open_genesis_fields(SECRET, alice, data)
        assert opened is None or decode_fields_and_mode(opened) is None or fields_problem(opened)
        out.append(
            {
                "type": "sealed-fields",
                "name": f"sealed-fields-unknown-{name}",
                "description": what,
                "operation": "genesis",
                "secret": SECRET.hex(),
                "founder": alice.hex(),
                "sealed": data.hex(),
                "unknown": fail,
            }
        )
    good = envelope(NEW_FIELDS)
    flipped = bytearray(good)
    flipped[-20] ^= 0x01
    sfails: list[tuple[str, str, bytes]] = [
        (
            "set-metadata-wrong-key",
            "sealed under another key, naming the right epoch",
            envelope(NEW_FIELDS, key=fixed("another key")),
        ),
        (
            "set-metadata-wrong-epoch",
            "an envelope naming another epoch (12 RD2)",
            envelope(NEW_FIELDS, epoch=EPOCH),
        ),
        (
            "set-metadata-other-seq",
            "sealed for the entry at seq 3, read at seq 2",
            envelope(NEW_FIELDS, ctx=s.AadContext(group, alice, 3, Kind.SET_METADATA)),
        ),
        (
            "set-metadata-post",
            "sealed as a POST (kind 20) of the same position",
            envelope(NEW_FIELDS, ctx=s.AadContext(group, alice, 2, Kind.POST)),
        ),
        ("set-metadata-flipped", "one ciphertext bit flipped", bytes(flipped)),
        ("set-metadata-truncated", "the last byte missing", good[:-1]),
        (
            "set-metadata-rules-8193",
            "rules of 8193 bytes, above 04's limit of 8192",
            envelope(("", "", "r" * (MAX_RULES + 1))),
        ),
        (
            "set-metadata-name-65",
            "a 65-byte name, above 04's limit of 64",
            envelope(over),
        ),
        (
            "set-metadata-bin-name",
            "the name as a bin",
            envelope(NEW_FIELDS, plaintext=encode([b"garden", "", ""])),
        ),
    ]
    for name, what, data in sfails:
        fail = set_metadata_problem(ekey, eid, ctx, data)
        assert fail is not None, name
        out.append(
            {
                "type": "sealed-fields",
                "name": f"sealed-fields-unknown-{name}",
                "description": what,
                "operation": "set_metadata",
                "group": group.hex(),
                "epoch_id": eid.hex(),
                "key": ekey.hex(),
                "context": ctx_json(ctx),
                "sealed": data.hex(),
                "unknown": fail,
            }
        )
    return out


# --------------------------------------------------------------------------- histories

HISTORY_NAMES = ["alice", "bob", "carol", "dave", "erin"]
HISTORY_KEYS = {n: named_keypair(n) for n in HISTORY_NAMES}
BY_ID = {k.public_key: n for n, k in HISTORY_KEYS.items()}


class Story:
    """An encrypted group's history being written by :class:`CryptReplica` devices of the
    named test keys; entries are labelled ``author-seq`` (a letter for a forked copy)."""

    def __init__(self, *, name: str, history: int = HISTORY_FULL) -> None:
        self.history, alice = CryptReplica.found(HISTORY_KEYS["alice"], name=name, history=history)
        self.replicas: dict[str, CryptReplica] = {"alice": alice}

    def __getitem__(self, name: str) -> CryptReplica:
        if name not in self.replicas:
            self.replicas[name] = CryptReplica(self.history, HISTORY_KEYS[name])
        return self.replicas[name]

    def group(self, roles: dict[str, Role]) -> None:
        """Alice adds the members with their roles; each publishes its receive key (W1)
        and alice forwards them the first epoch (W4): everyone holds it."""
        alice = self["alice"]
        for n, role in roles.items():
            alice.add(self[n], role)
        for n in roles:
            self[n].sync(alice)
            self[n].publish()
        alice.sync(*(self[n] for n in roles))
        alice.forward()
        for n in roles:
            self[n].sync(alice)

    def stale_post(self, name: str, text: str) -> Entry:
        """A post sealed under the key of the writer's cut without the rekey W3 asks for
        (an old or careless writer): X1 makes it void."""
        r = self[name]
        K = r.next_cut()
        r.enc.learn()
        ctx = s.AadContext(self.history.group, r.id, r.seq + 1, Kind.POST)
        body = r.enc.keys.seal(K, ctx, Post(text=text).encode(), r.random(s.NONCE_SIZE))
        return Replica.append(r, Kind.POST, body)

    def garbled_rekey(self, name: str, victim: str) -> Entry:
        """A KEYS rekey by ``name`` whose slot for ``victim`` has one bit flipped."""
        r = self[name]
        K = r.next_cut()
        body, secret = r.enc.keys_body(seq=r.seq + 1, K=K, rekey=True)
        block = KeyBlock.decode(KeysOp.decode(body).keys)
        view = r.enc.view
        names = sorted(m for m in view.members(K) if view.receive_key(m, K) is not None)
        i = names.index(HISTORY_KEYS[victim].public_key)
        slots = bytearray(block.slots)
        slots[i * s.SLOT_SIZE + 7] ^= 0x40
        garbled = KeyBlock(
            receive=block.receive,
            exclude=block.exclude,
            eph_pub=block.eph_pub,
            slots=bytes(slots),
            pointers=block.pointers,
        )
        entry = Replica.append(r, Kind.KEYS, KeysOp(keys=garbled.encode()).encode())
        r.enc.note(entry.id, secret)
        return entry


def _labels(entries: list[Entry]) -> dict[bytes, str]:
    labels: dict[bytes, str] = {}
    seen: dict[str, int] = {}
    for e in entries:
        base = f"{BY_ID[e.header.author]}-{e.header.seq}"
        seen[base] = seen.get(base, 0) + 1
        labels[e.id] = base if seen[base] == 1 else f"{base}{chr(ord('a') + seen[base] - 1)}"
    return labels


def _history_vector(name: str, description: str, story: Story) -> dict[str, Any]:
    entries = list(story.history.entries)
    labels = _labels(entries)
    group = story.history.group
    machine = MembershipMachine()
    machine.apply_many(entries)
    state = machine.state
    core = machine._core
    view = core.epochs
    assert view.encrypted
    receive = {n: dict(r.receive) for n, r in story.replicas.items() if r.receive}
    derivers = {}
    for n, keys in receive.items():
        gk = GroupKeys(view, HISTORY_KEYS[n].public_key, keys, {})
        gk.learn()
        derivers[n] = gk

    def who(members: object) -> list[str]:
        return sorted(BY_ID[m] for m in members)  # type: ignore[attr-defined]

    key_ops: dict[str, Any] = {}
    for e in entries:
        if e.header.kind not in MEMBERSHIP_KINDS:
            continue
        o = core.by_id[e.id]
        b = view.block(o)
        if b is None:
            continue
        entry: dict[str, Any] = {
            "receive": b.receive.hex() or None,
            "rekey": b.is_rekey,
            "forward": b.is_forward,
        }
        if b.eph_pub:
            entry["context"] = slot_context(o.author, o.seq, o.kind).hex()
            entry["recipients"] = [BY_ID[m] for m, _ in view.recipients(o)]
            entry["slots"] = b.slot_count
            entry["pointers"] = bool(b.pointers)
            entry["carries"] = [labels[p.id] for p in view.covered(o)]
        if b.is_forward:
            entry["epoch"] = [labels.get(i, i.hex()) for i in b.epoch]
        key_ops[labels[e.id]] = entry
    content: dict[str, Any] = {}
    for e in entries:
        h = e.header
        if h.kind in MEMBERSHIP_KINDS or not encrypted_kind(h.kind):
            continue
        K = core.K[e.id]
        eid, ids = view.epoch(K)
        can = sorted(n for n, gk in derivers.items() if gk.epoch_key(K) is not None)
        key = plaintext = None
        if can:
            got = derivers[can[0]].epoch_key(K)
            assert got is not None
            key = got[1].hex()
            opened = derivers[can[0]].open(
                K, s.AadContext(group, h.author, h.seq, h.kind), e.body or b""
            )
            plaintext = None if opened.plaintext is None else opened.plaintext.hex()
        content[labels[e.id]] = {
            "frontier": [labels[i] for i in ids],
            "epoch_id": eid.hex(),
            "holders": who(view.holders(K)),
            "members": who(view.members(K)),
            "verdict": state.verdicts[e.id].reason.value,
            "derive": can,
            "key": key,
            "plaintext": plaintext,
        }
    return {
        "type": "history",
        "name": name,
        "description": description,
        "authors": {n: HISTORY_KEYS[n].public_key.hex() for n in HISTORY_NAMES},
        "group": group.hex(),
        "receive": {
            n: [{"public": p.hex(), "private": k.hex()} for p, k in sorted(keys.items())]
            for n, keys in sorted(receive.items())
        },
        "entries": [{"label": labels[e.id], "entry": encode_entry(e).hex()} for e in entries],
        "expect": {
            "members": {BY_ID[m]: i.role.name.lower() for m, i in sorted(state.members.items())},
            "verdicts": {labels[e.id]: state.verdicts[e.id].reason.value for e in entries},
            "key_ops": key_ops,
            "content": content,
        },
    }


def story_concurrent_removals() -> Story:
    st = Story(name="two removals")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER, "dave": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    alice.post("before")
    alice.remove(carol)
    bob.remove(st["dave"])
    alice.sync(bob)
    bob.sync(alice)
    alice.post("after both removals")
    carol.post("carol has not seen her removal")
    return st


def story_same_removal() -> Story:
    st = Story(name="one removal twice")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER, "dave": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    alice.remove(st["dave"])
    bob.remove(st["dave"])
    carol.sync(alice, bob)
    carol.post("carol sees both removals")
    return st


def story_mutual_removal() -> Story:
    st = Story(name="mutual removal")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER, "dave": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    alice.remove(bob)
    bob.remove(alice)
    bob.post("bob, after removing alice")
    carol.sync(alice, bob)
    carol.post("carol sees both")
    carol.forward()
    alice.sync(carol)
    alice.post("alice, after carol's forward")
    return st


def story_removal_and_add() -> Story:
    st = Story(name="removal and add")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER})
    alice, bob, dave = st["alice"], st["bob"], st["dave"]
    alice.remove(st["carol"])
    bob.add(dave, Role.MEMBER)
    dave.sync(bob)
    dave.publish()
    bob.sync(dave)
    bob.forward()
    dave.sync(bob)
    dave.post("dave, welcomed by bob")
    alice.sync(bob, dave)
    alice.post("alice sees the add")
    alice.forward()
    dave.sync(alice)
    dave.post("dave, after alice's forward")
    return st


def story_removal_and_join() -> Story:
    st = Story(name="removal and join")
    st.group({"bob": Role.MODERATOR, "carol": Role.MEMBER})
    alice, bob, erin = st["alice"], st["bob"], st["erin"]
    inv, code = bob.invite(invitation_secret(1))
    alice.sync(bob)
    erin.sync(bob)
    alice.remove(st["carol"])
    erin.join(code, inv)
    bob.sync(erin)
    bob.forward()
    erin.sync(bob)
    erin.post("erin, welcomed by bob")
    alice.sync(bob, erin)
    alice.post("alice sees the join")
    alice.forward()
    erin.sync(alice)
    erin.post("erin, after alice's forward")
    return st


def story_leave() -> Story:
    st = Story(name="leave")
    st.group({"bob": Role.MEMBER, "carol": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    carol.leave()
    alice.sync(carol)
    st.stale_post("alice", "sealed for a group carol has left")
    alice.post("after a rekey")
    bob.sync(alice)
    bob.post("bob reads the new epoch")
    return st


def story_leave_after_a_forward() -> Story:
    st = Story(name="leave after a forward")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER})
    alice, bob, dave = st["alice"], st["bob"], st["dave"]
    alice.add(dave, Role.MEMBER)
    dave.sync(alice)
    dave.publish()
    alice.sync(dave)
    alice.forward()  # W4: dave is a member and no holder of the epoch
    dave.leave()  # before he has seen the forward
    bob.sync(dave)  # the add, dave's key and his leave, not alice's forward
    st.stale_post("bob", "sealed without a rekey: not stale at its cut, yet dave reads it")
    bob.post("after the rekey W3 asks for on dave's leave")
    alice.sync(bob)
    return st


def story_void_at_its_cut() -> Story:
    st = Story(name="void at its cut")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER, "dave": Role.MEMBER})
    alice, bob, carol, dave = st["alice"], st["bob"], st["carol"], st["dave"]
    dave.ban(alice)  # a member cannot ban: void at its own cut; its rekey leaves alice out
    dave.post("dave, after his void ban: in the epoch before it")
    carol.sync(dave)
    carol.leave()
    bob.sync(carol)
    bob.leave()
    alice.sync(bob)
    alice.post("alice reads dave's post though no one the ban's rekey reached stayed")
    return st


def story_void_at_its_cut_stands() -> Story:
    st = Story(name="void at its cut, effective in the end")
    st.group({"bob": Role.ADMIN, "carol": Role.ADMIN, "dave": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    cut = carol.seq
    carol.set_role(bob, Role.MEMBER)  # void in the end: alice removes carol concurrently
    bob.sync(carol)
    bob.remove(st["dave"])  # void at its cut (bob sees his demotion), effective in the end
    alice.remove(carol, cut=cut)
    alice.sync(bob)
    st.stale_post("alice", "sealed without a rekey: dave, removed, holds the epoch")
    alice.post("after the rekey W3 asks for")
    return st


def story_add_voided_after_a_rekey() -> Story:
    st = Story(name="add voided after a rekey")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER, "dave": Role.MEMBER})
    alice, bob, carol, dave, erin = st["alice"], st["bob"], st["carol"], st["dave"], st["erin"]
    cut = bob.seq
    bob.add(erin, Role.MEMBER)
    erin.sync(bob)
    erin.publish()
    bob.sync(erin)
    dave.sync(bob, erin)
    alice.set_role(bob, Role.MEMBER, cut=cut)  # R2 voids bob's ADD of erin
    dave.rekey()  # dave has not seen the demotion: a slot for erin
    carol.sync(alice, dave)
    st.stale_post("carol", "sealed for the epoch erin holds")
    carol.post("after the rekey W3 asks for")
    return st


def story_equivocation() -> Story:
    st = Story(name="equivocation")
    st.group({"bob": Role.MEMBER, "carol": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    twin = bob.fork()
    bob.post("one branch")
    twin.append(Kind.LEAVE, b"\x91\x01")
    alice.sync(bob, twin)
    alice.post("alice knows of the fork")
    alice.ban(bob, reason="forked")
    alice.post("after the ban")
    carol.sync(alice)
    carol.post("carol after the ban")
    return st


def story_offline_member() -> Story:
    st = Story(name="offline")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER, "dave": Role.MEMBER})
    alice, bob, carol, dave = st["alice"], st["bob"], st["carol"], st["dave"]
    alice.post("dave goes offline")
    alice.remove(carol)
    alice.post("after the first rekey")
    bob.sync(alice)
    bob.rekey()
    bob.post("after the second rekey")
    dave.sync(alice, bob)
    dave.post("dave is back")
    return st


def story_late_member() -> Story:
    st = Story(name="history for a newcomer")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER})
    alice, bob, erin = st["alice"], st["bob"], st["erin"]
    alice.post("in the first epoch")
    alice.remove(st["carol"])
    alice.post("in the second epoch")
    bob.sync(alice)
    alice.add(erin, Role.MEMBER)
    erin.sync(alice)
    erin.publish()
    bob.sync(erin)
    bob.forward()
    erin.sync(bob)
    erin.post("erin reads back through pointers")
    return st


def story_garbled_slot() -> Story:
    st = Story(name="garbled slot")
    st.group({"bob": Role.MEMBER, "carol": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    st.garbled_rekey("alice", "carol")
    alice.post("carol's slot does not open")
    carol.sync(alice)
    carol.post("carol rekeys before she writes")
    bob.sync(carol)
    bob.post("bob in carol's epoch")
    bob.forward()  # W5: carol's rekey has no pointers; bob names alice's epoch to her
    carol.sync(bob)
    return st


def story_mutual_removal_senior_first() -> Story:
    st = Story(name="mutual removal, the senior writes first")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER, "dave": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    alice.remove(bob)
    bob.remove(alice)
    carol.sync(alice, bob)
    carol.post("carol sees both")
    alice.sync(carol)
    alice.post("alice, before any forward")  # W3: a rekey without pointers first
    carol.sync(alice)
    carol.forward()  # W5: the epoch before alice's rekey, named, to alice
    alice.sync(carol)
    return st


def story_removed_member_rekeys() -> Story:
    st = Story(name="removed member rekeys")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER})
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    alice.remove(bob)
    bob.rekey()
    bob.post("bob, in his own epoch")
    carol.sync(alice, bob)
    carol.post("carol sees both")
    return st


def story_removed_admin_welcomes() -> Story:
    st = Story(name="removed admin welcomes")
    st.group({"bob": Role.ADMIN, "carol": Role.MEMBER})
    alice, bob, carol, erin = st["alice"], st["bob"], st["carol"], st["erin"]
    alice.remove(bob)
    bob.add(erin, Role.MEMBER)
    erin.sync(bob)
    erin.publish()
    bob.sync(erin)
    bob.forward()
    carol.sync(bob)
    carol.post("carol has seen the add, not the removal")
    alice.sync(bob, carol)
    alice.post("alice after everything")
    return st


def story_since_join() -> Story:
    st = Story(name="since join", history=HISTORY_SINCE_JOIN)
    alice, bob, carol = st["alice"], st["bob"], st["carol"]
    alice.add(bob, Role.MEMBER)
    bob.sync(alice)
    bob.publish()
    alice.sync(bob)
    alice.forward()  # HM2: a rekey welcomes bob, not a forward; HM4: the fields again
    bob.sync(alice)
    bob.post("bob, before carol joins")
    inv, code = alice.invite(invitation_secret(1))
    alice.sync(bob)
    carol.sync(alice)
    carol.join(code, inv)
    alice.sync(carol)
    alice.post("alice, after carol joins")  # W3: carol is a newcomer, so a rekey first
    bob.sync(alice)
    carol.sync(alice)
    alice.forward()  # HM4: the fields, sealed again under the epoch carol holds
    bob.sync(alice)
    carol.sync(alice)
    carol.post("carol reads what follows her joining")
    return st


STORIES: list[tuple[str, str, Callable[[], Story]]] = [
    (
        "history-concurrent-removals",
        "alice removes carol while bob, concurrently, removes dave: the frontier is both"
        " rekeys, whose key only alice and bob hold, with no further message; carol, who"
        " has not seen her removal, writes in the old epoch: not stale at her cut (X1),"
        " but revoked (04 R2)",
        story_concurrent_removals,
    ),
    (
        "history-same-removal",
        "alice and bob both remove dave: two rekeys for the same members, all of whom hold"
        " both secrets",
        story_same_removal,
    ),
    (
        "history-mutual-removal",
        "alice removes bob while bob removes alice; bob's removal is void (04 R6) but its"
        " rekey counts: carol holds both secrets, alice lacks bob's until carol forwards it",
        story_mutual_removal,
    ),
    (
        "history-mutual-removal-senior-first",
        "as history-mutual-removal, but alice writes before anyone forwards: she cannot"
        " derive the epoch {alice's rekey, bob's rekey}, so her W3 rekey carries no"
        " pointers and nobody could walk back past it; carol, who holds that epoch,"
        " forwards it to her by name (W5), and alice reads carol's post",
        story_mutual_removal_senior_first,
    ),
    (
        "history-removal-and-add",
        "alice removes carol while bob adds dave and forwards him the old epoch; alice's"
        " rekey does not reach dave (not a member at its cut) until alice forwards it (W4)",
        story_removal_and_add,
    ),
    (
        "history-removal-and-join",
        "alice removes carol while erin joins with bob's invitation (her JOIN publishes her"
        " receive key); bob, then alice, forward erin the epoch at their cut",
        story_removal_and_join,
    ),
    (
        "history-leave",
        "carol leaves: the epoch's key reaches a non-member, so a post sealed without a"
        " rekey is stale (X1); the next post is preceded by a KEYS rekey (W3)",
        story_leave,
    ),
    (
        "history-leave-after-a-forward",
        "alice adds dave, who publishes his receive key, and forwards him the epoch (W4);"
        " dave leaves before he sees the forward. Bob sees the add, the key and the leave"
        " but not the forward: at his cut dave is no holder, so a post sealed there is not"
        " stale (X1), yet dave can derive its key; W3 has bob rekey because dave left after"
        " the frontier's rekey",
        story_leave_after_a_forward,
    ),
    (
        "history-void-at-its-cut",
        "dave, a plain member, bans alice: void at its own cut (insufficient-role), so its"
        " rekey, which leaves alice out, counts in no frontier (F1). Dave's post after it"
        " is in the epoch before, which alice holds; carol and bob, whom the rekey"
        " reached, leave, and alice still reads it",
        story_void_at_its_cut,
    ),
    (
        "history-void-at-its-cut-stands",
        "carol demotes bob while alice removes carol with a cut before the demotion (R2"
        " voids it); bob, who has seen his demotion and not carol's removal, removes dave:"
        " void at its cut, effective in the end. Its rekey counts in no frontier, so dave,"
        " removed, holds the epoch at alice's cut: a post sealed there is stale (X1), and"
        " W3 has alice rekey",
        story_void_at_its_cut_stands,
    ),
    (
        "history-add-voided-after-a-rekey",
        "bob adds erin, who publishes her receive key, while alice demotes bob with a cut"
        " before the ADD (R2 voids it); dave, who has not seen the demotion, rekeys and"
        " seals a slot to erin. Erin stays a recipient (KB6: the rekey's cut resolved"
        " alone) and so a holder; she is no member, so the epoch is stale (X1): carol's"
        " post sealed in it is void, and W3 has carol rekey",
        story_add_voided_after_a_rekey,
    ),
    (
        "history-equivocation",
        "bob forks; a fork lowers no level at a cut, so alice's next post still reaches"
        " him; her BAN's rekey leaves him out",
        story_equivocation,
    ),
    (
        "history-offline-member",
        "dave is offline across two rekeys (a REMOVE's and a KEYS); every slot he is"
        " entitled to is in the log, so he reads everything when he is back",
        story_offline_member,
    ),
    (
        "history-late-member",
        "erin is added after a rekey; bob's forward hands her the current epoch and its"
        " pointers lead back to the genesis: she reads the whole history",
        story_late_member,
    ),
    (
        "history-garbled-slot",
        "alice's rekey has a garbled slot for carol: carol counts as a holder (holders are"
        " public and slots cannot be checked without the secret) but cannot derive the key;"
        " she rekeys before she writes (W3), without pointers since she lacks the epoch"
        " before; bob, who holds it and finds carol's slot bad (SV1), forwards it to her by"
        " name (W5), and she reads alice's post",
        story_garbled_slot,
    ),
    (
        "history-removed-member-rekeys",
        "alice removes bob while bob writes a rekey: bob's KEYS is void (04 R2) but counts"
        " in the frontier, and alice's rekey leaves bob out of the joint key",
        story_removed_member_rekeys,
    ),
    (
        "history-removed-admin-welcomes",
        "alice removes bob while bob adds erin and forwards her the epoch: bob's ADD is void,"
        " but every recipient a forward names counts (H1), so erin, no member, is a holder;"
        " a post by carol, who saw the add and not the removal, is stale (X1), though erin"
        " can derive its key; alice's rekey leaves bob and erin out",
        story_removed_admin_welcomes,
    ),
    (
        "history-since-join",
        "a since-join group (12.11b): alice adds bob, whom a rekey welcomes (HM2), then"
        " seals the fields again for him (HM4); bob posts; carol joins by invitation;"
        " alice's post is preceded by a rekey (W3: carol is a newcomer), then her forward"
        " round seals the fields again; no rekey has pointers (HM1), and carol derives"
        " what follows her joining, not bob's post before it",
        story_since_join,
    ),
]


def histories() -> list[dict[str, Any]]:
    return [_history_vector(name, what, build()) for name, what, build in STORIES]


def generate() -> dict[str, Any]:
    vectors = [constants(), *padding(), *envelopes(), *slots(), *pointers(), *epochs(), *keyrings()]
    vectors += [*key_blocks(), *sealed_fields(), *histories()]
    return {
        "description": (
            "content encryption (spec/12-encryption.md): Padmé padding, the content envelope,"
            " rekey slots and their verification, pointers, epoch ids and keys, sealed"
            " keyrings, key blocks, sealed group fields, and encrypted histories with their"
            " frontiers, holders, verdicts and who can derive each key"
        ),
        "revision": REVISION,
        "vectors": vectors,
    }
