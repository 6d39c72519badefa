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
* ``keyring-open``: a key and a blob that must be refused, with the error (12.8 KR4).
"""

from __future__ import annotations

from typing import Any

from p2pcomm.core import crypto
from p2pcomm.core import keyring as kr
from p2pcomm.core import seal as s
from p2pcomm.core.encoding import decode, encode
from p2pcomm.core.log import MAX_BODY_SIZE
from p2pcomm.errors import DecodeError, SealError

REVISION = 5


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
        },
        "epoch_id_namespace": crypto.namespace(s.LABEL_EPOCH_ID).hex(),
        "keyring_magic": kr.KEYRING_MAGIC,
        "keyring_version": kr.KEYRING_VERSION,
        "keyring_max_entries": kr.MAX_ENTRIES,
    }


def padding() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    sizes = [0, 1, 2, 7, 8, 9, 100, 239, 240, 1000, 4096, 47103, 48000, 49151]
    for n in sizes:
        out.append(
            {
                "type": "padding",
                "name": f"padding-{n}",
                "description": f"a plaintext of {n} bytes and its terminator pad to Padmé({n + 1})",
                "size": n,
                "padme": s.padme_length(n),
                "padded_size": s.padme_length(n + 1),
            }
        )
    for name, padded, what in [
        ("unpad-empty", b"", "nothing at all: no terminator"),
        ("unpad-zeros", bytes(8), "only zeros"),
        ("unpad-wrong-terminator", b"abc\x81", "0x81 where the terminator belongs"),
        ("unpad-nonzero-after-terminator", b"abc\x80\x00\x01", "a nonzero byte after 0x80"),
        ("unpad-too-long", b"x" * 99 + b"\x80" + bytes(8), "99 bytes padded to 108, not 104"),
        ("unpad-too-short", b"x" * 100 + b"\x80" + bytes(2), "100 bytes padded to 103, not 104"),
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
        ("envelope-empty", b"", "an empty plaintext: one byte of padding"),
        ("envelope-hello", b"hello, group", "a short post"),
        ("envelope-239", bytes(range(239)), "the last size whose ciphertext has a 1-byte length"),
        ("envelope-240", bytes(range(240)), "the first with a 2-byte length"),
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
    body = s.seal_body(KEY, EPOCH, NONCE, CTX, b"hello, group")
    fields = s.decode_envelope(body)
    flipped = body[:-1] + bytes([body[-1] ^ 0x01])
    bad_pad = crypto.aead_seal(KEY, NONCE, CTX.aad(), b"hello, group\x80\x00\x00\x01")
    too_much_pad = crypto.aead_seal(KEY, NONCE, CTX.aad(), b"hello\x80" + bytes(10))
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
            "a good tag over padding with a nonzero byte after the terminator",
            KEY,
            encode([1, EPOCH, NONCE, bad_pad]),
            CTX,
        ),
        (
            "open-too-much-padding",
            "a good tag over 5 bytes padded to 16, not 6",
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
            "a ciphertext of only a tag: not even the padding terminator",
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


def generate() -> dict[str, Any]:
    vectors = [constants(), *padding(), *envelopes(), *slots(), *pointers(), *epochs(), *keyrings()]
    return {
        "description": (
            "the building blocks of content encryption (spec/12-encryption.md): Padmé padding,"
            " the content envelope, rekey slots and their verification, pointers, epoch ids"
            " and keys, sealed keyrings"
        ),
        "revision": REVISION,
        "vectors": vectors,
    }
