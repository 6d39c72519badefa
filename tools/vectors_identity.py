"""Vectors for spec/02-identity.md: keys, member ids, namespaces, signatures, key files.

Every key is made from a fixed seed (``test_seed(name)`` below, also stated in the
spec), and Ed25519 signatures are deterministic, so the output never changes.
"""

from __future__ import annotations

import base64
from typing import Any

from p2pcomm.core import crypto, encoding
from p2pcomm.core.identity import ID_TEXT_PREFIX, KeyPair

REVISION = 6

Json = dict[str, Any]

#: Order of the Ed25519 base point (RFC 8032 §5.1).
ED25519_L = 2**252 + 27742317777372353535851937790883648493

NAMESPACE_LABELS = [
    ("p2pcomm/1/entry", "signatures of log entries (spec/03-log.md)"),
    ("p2pcomm/1/handshake", "identity proof in the channel handshake (spec/05-channel.md)"),
    ("p2pcomm/1/id-checksum", "checksum of the text form of a member id (not a signature)"),
    ("p2pcomm/1/join", "invitation proof in a JOIN body (spec/04-membership.md 4.7)"),
    (
        "p2pcomm/1/invitation-key",
        "invitation seed from the invitation secret (spec/04-membership.md 4.7; not a signature)",
    ),
    (
        "p2pcomm/1/invitation-code",
        "checksum of an invitation code (spec/04-membership.md 4.7; not a signature)",
    ),
]

NAMES = ["alice", "bob", "carol", "dave"]

#: RFC 8032 §7.1, TEST 1.
RFC8032_TEST1 = {
    "seed": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "public_key": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "signature": (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
    ),
}

PASSPHRASE = "correct horse battery staple"
SALT = bytes(range(16))
SCRYPT = (10, 8, 1)  # log2 N, r, p: the smallest N a reader accepts, to keep tests fast


def test_seed(name: str) -> bytes:
    """The fixed seed of a named test key: BLAKE2b-256 of ``"p2pcomm test key " + name``."""
    return crypto.blake2b_256(b"p2pcomm test key " + name.encode("ascii"))


def test_key(name: str) -> KeyPair:
    return KeyPair(test_seed(name))


def _checksum(public_key: bytes) -> bytes:
    return crypto.blake2b_256(crypto.namespace("p2pcomm/1/id-checksum") + public_key)[:3]


def _id_text(public_key: bytes) -> str:
    return ID_TEXT_PREFIX + base64.b32encode(public_key + _checksum(public_key)).decode().lower()


def _replace_char(text: str, index: int) -> str:
    """``text`` with the base32 character at ``index`` changed to another base32 one."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    c = text[index]
    new = alphabet[(alphabet.index(c) + 1) % 32]
    return text[:index] + new + text[index + 1 :]


def _namespace_vectors() -> list[Json]:
    return [
        {
            "type": "namespace",
            "name": f"namespace-{label.rsplit('/', 1)[1]}",
            "description": purpose,
            "label": label,
            "namespace": crypto.namespace(label).hex(),
        }
        for label, purpose in NAMESPACE_LABELS
    ]


def _keypair_vectors() -> list[Json]:
    out = []
    for name in NAMES:
        kp = test_key(name)
        out.append(
            {
                "type": "keypair",
                "name": f"key-{name}",
                "description": f'seed = BLAKE2b-256("p2pcomm test key {name}")',
                "seed": test_seed(name).hex(),
                "public_key": kp.public_key.hex(),
                "checksum": _checksum(kp.public_key).hex(),
                "id_text": _id_text(kp.public_key),
            }
        )
    out.append(
        {
            "type": "keypair",
            "name": "key-rfc8032-test1",
            "description": "RFC 8032 section 7.1 TEST 1 key",
            "seed": RFC8032_TEST1["seed"],
            "public_key": RFC8032_TEST1["public_key"],
            "checksum": _checksum(bytes.fromhex(RFC8032_TEST1["public_key"])).hex(),
            "id_text": _id_text(bytes.fromhex(RFC8032_TEST1["public_key"])),
        }
    )
    return out


def _id_text_vectors() -> list[Json]:
    alice = test_key("alice").public_key
    t = _id_text(alice)
    zero = bytes(32)
    # A text with a "k" after the prefix, to put KELVIN SIGN (U+212A) in its place.
    with_k = next(
        _id_text(test_key(n).public_key)
        for n in NAMES
        if "k" in _id_text(test_key(n).public_key)[3:]
    )
    k = with_k.index("k", 3)
    # Two neighbouring, different characters to swap.
    i = next(i for i in range(20, 56) if t[i] != t[i + 1])
    out: list[Json] = [
        {
            "name": "id-text-alice",
            "text": t,
            "public_key": alice.hex(),
            "description": "the canonical text form",
        },
        {
            "name": "id-text-uppercase",
            "text": t.upper(),
            "public_key": alice.hex(),
            "description": "ASCII letter case is ignored",
        },
        {
            "name": "id-text-whitespace",
            "text": "  " + t + "\n",
            "public_key": alice.hex(),
            "description": "leading and trailing ASCII whitespace is ignored",
        },
        {
            "name": "id-text-ascii-whitespace-all",
            "text": " \t\n\v\f\r" + t + "\r\f\v\n\t ",
            "public_key": alice.hex(),
            "description": "P1 removes exactly space, tab, LF, VT, FF and CR at both ends",
        },
        {
            "name": "id-text-nbsp",
            "text": "\u00a0" + t,
            "fail": "bad-id-text",
            "description": "NO-BREAK SPACE (U+00A0) before the id: P1 keeps it, P2 refuses it",
        },
        {
            "name": "id-text-ideographic-space",
            "text": t + "\u3000",
            "fail": "bad-id-text",
            "description": "IDEOGRAPHIC SPACE (U+3000) after the id: P1 keeps it, P2 refuses it",
        },
        {
            "name": "id-text-next-line",
            "text": "\u0085" + t + "\u0085",
            "fail": "bad-id-text",
            "description": "NEXT LINE (U+0085) around the id: P1 keeps it, P2 refuses it",
        },
        {
            "name": "id-text-unit-separator",
            "text": t + "\x1f",
            "fail": "bad-id-text",
            "description": "ASCII 1f after the id (some libraries strip it): P1 keeps it, P4 refuses it",
        },
        {
            "name": "id-text-inner-space",
            "text": t[:20] + " " + t[20:],
            "fail": "bad-id-text",
            "description": "a space inside the id: nothing inside is removed, so 57 characters follow pc1",
        },
        {
            "name": "id-text-zero-key",
            "text": _id_text(zero),
            "public_key": zero.hex(),
            "description": "any 32 bytes have a text form; parsing does not check the curve point",
        },
        # failures
        {
            "name": "id-text-wrong-prefix",
            "text": "pc2" + t[3:],
            "fail": "bad-id-text",
            "description": "prefix must be pc1",
        },
        {
            "name": "id-text-no-prefix",
            "text": t[3:] + "abc",
            "fail": "bad-id-text",
            "description": "59 characters but no prefix",
        },
        {
            "name": "id-text-short",
            "text": t[:-1],
            "fail": "bad-id-text",
            "description": "55 characters after the prefix",
        },
        {
            "name": "id-text-long",
            "text": t + "a",
            "fail": "bad-id-text",
            "description": "57 characters after the prefix",
        },
        {
            "name": "id-text-digit-1",
            "text": t[:10] + "1" + t[11:],
            "fail": "bad-id-text",
            "description": "1 is not in the base32 alphabet",
        },
        {
            "name": "id-text-digit-0",
            "text": t[:10] + "0" + t[11:],
            "fail": "bad-id-text",
            "description": "0 is not in the base32 alphabet",
        },
        {
            "name": "id-text-padding",
            "text": t[:-1] + "=",
            "fail": "bad-id-text",
            "description": "= (base32 padding) is not in the alphabet",
        },
        {
            "name": "id-text-non-ascii",
            "text": with_k[:k] + "\u212a" + with_k[k + 1 :],
            "fail": "bad-id-text",
            "description": "a valid id text with one k replaced by KELVIN SIGN (U+212A), whose "
            "Unicode lower case is k: not ASCII, so not an id text",
        },
        {
            "name": "id-text-typo",
            "text": _replace_char(t, 20),
            "fail": "bad-checksum",
            "description": "one character of the key changed",
        },
        {
            "name": "id-text-checksum-typo",
            "text": _replace_char(t, 58),
            "fail": "bad-checksum",
            "description": "the last character (checksum) changed",
        },
        {
            "name": "id-text-swap",
            "text": t[:i] + t[i + 1] + t[i] + t[i + 2 :],
            "fail": "bad-checksum",
            "description": "two neighbouring characters swapped",
        },
    ]
    for v in out:
        v["type"] = "id-text"
    return out


def _signature_vectors() -> list[Json]:
    alice = test_key("alice")
    ns_entry = crypto.namespace("p2pcomm/1/entry")
    ns_hs = crypto.namespace("p2pcomm/1/handshake")
    data = crypto.blake2b_256(b"an entry id")
    message = ns_entry + data
    sig = alice.sign(ns_entry, data)
    s_int = int.from_bytes(sig[32:], "little")
    high_s = sig[:32] + (s_int + ED25519_L).to_bytes(32, "little")
    flipped_r = bytes([sig[0] ^ 0x01]) + sig[1:]
    flipped_s = sig[:32] + bytes([sig[32] ^ 0x01]) + sig[33:]
    identity = (1).to_bytes(32, "little")
    identity_negative_zero = identity[:31] + b"\x80"
    p = 2**255 - 19
    identity_noncanonical = (p + 1).to_bytes(32, "little")
    weak_sig = identity + bytes(32)

    def vec(
        name: str,
        description: str,
        public_key: bytes,
        msg: bytes,
        signature: bytes,
        ok: bool,
        label: str | None = None,
    ) -> Json:
        v: Json = {
            "type": "signature",
            "name": name,
            "description": description,
            "public_key": public_key.hex(),
            "message": msg.hex(),
            "signature": signature.hex(),
        }
        if label is not None:
            v["namespace_label"] = label
            v["data"] = msg[32:].hex()
        if ok:
            v["valid"] = True
        else:
            v["fail"] = "bad-signature"
        return v

    rfc_pk = bytes.fromhex(RFC8032_TEST1["public_key"])
    rfc_sig = bytes.fromhex(RFC8032_TEST1["signature"])
    return [
        vec("sig-rfc8032-test1", "RFC 8032 TEST 1: the empty message", rfc_pk, b"", rfc_sig, True),
        vec(
            "sig-entry-namespace",
            "alice signs NS_ENTRY || 32 bytes",
            alice.public_key,
            message,
            sig,
            True,
            "p2pcomm/1/entry",
        ),
        vec(
            "sig-handshake-namespace",
            "alice signs NS_HANDSHAKE || 32 bytes",
            alice.public_key,
            ns_hs + data,
            alice.sign(ns_hs, data),
            True,
            "p2pcomm/1/handshake",
        ),
        vec(
            "sig-wrong-namespace",
            "the NS_ENTRY signature checked against NS_HANDSHAKE || data",
            alice.public_key,
            ns_hs + data,
            sig,
            False,
            "p2pcomm/1/handshake",
        ),
        vec("sig-flipped-r", "one bit of R changed", alice.public_key, message, flipped_r, False),
        vec("sig-flipped-s", "one bit of S changed", alice.public_key, message, flipped_s, False),
        vec(
            "sig-non-canonical-s",
            "S + L in place of S: the same point equation, rejected because S must be below L",
            alice.public_key,
            message,
            high_s,
            False,
        ),
        vec(
            "sig-other-key",
            "signature checked against bob's key",
            test_key("bob").public_key,
            message,
            sig,
            False,
        ),
        vec("sig-truncated", "a 63-byte signature", alice.public_key, message, sig[:63], False),
        vec(
            "sig-bad-key-length", "a 31-byte public key", alice.public_key[:31], message, sig, False
        ),
        vec(
            "sig-weak-key-identity",
            "small-order public key (the identity point) with "
            "R = identity and S = 0: the cofactorless equation holds for every message, and "
            "verification as specified accepts it (see spec/02-identity.md, weak keys)",
            identity,
            message,
            weak_sig,
            True,
        ),
        vec(
            "sig-weak-key-non-canonical",
            "the identity point written with y = p + 1: public "
            "keys are not required to be canonical",
            identity_noncanonical,
            message,
            weak_sig,
            True,
        ),
        vec(
            "sig-weak-key-negative-zero",
            "the identity point with the sign bit set (x = 0): accepted as a public key",
            identity_negative_zero,
            message,
            weak_sig,
            True,
        ),
        vec(
            "sig-non-canonical-r",
            "R written as the negative-zero identity: R is compared by "
            "its encoding, so a non-canonical R never verifies",
            identity,
            message,
            identity_negative_zero + bytes(32),
            False,
        ),
    ]


def _sealed_file(seed: bytes, passphrase: str, salt: bytes, scrypt: tuple[int, int, int]) -> bytes:
    log2_n, r, p = scrypt
    ad = encoding.encode(["p2pcomm-key", 1, 1, salt, log2_n, r, p])
    key = crypto.scrypt_key(passphrase.encode("utf-8"), salt, log2_n=log2_n, r=r, p=p)
    sealed = crypto.aead_encrypt(key, 0, ad, seed)
    return encoding.encode(["p2pcomm-key", 1, 1, salt, log2_n, r, p, sealed])


def _key_file_vectors() -> list[Json]:
    seed = test_seed("alice")
    plain = encoding.encode(["p2pcomm-key", 1, 0, seed])
    sealed = _sealed_file(seed, PASSPHRASE, SALT, SCRYPT)
    log2_n, r, p = SCRYPT
    ad = encoding.encode(["p2pcomm-key", 1, 1, SALT, log2_n, r, p])
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 0x01])
    low_n = _sealed_file(seed, PASSPHRASE, SALT, (9, 8, 1))

    def vec(
        name: str,
        description: str,
        data: bytes,
        *,
        mode: str = "600",
        passphrase: str | None = None,
        fail: str | None = None,
        **extra: Any,
    ) -> Json:
        v: Json = {
            "type": "key-file",
            "name": name,
            "description": description,
            "file": data.hex(),
            "mode": mode,
            "passphrase": passphrase,
        }
        v.update(extra)
        if fail is None:
            v["seed"] = seed.hex()
        else:
            v["fail"] = fail
        return v

    return [
        vec("key-file-plain", "alice's seed in the clear", plain),
        vec(
            "key-file-plain-passphrase-ignored",
            "a passphrase given for a plain file is not used",
            plain,
            passphrase="anything",
        ),
        vec(
            "key-file-sealed",
            "alice's seed sealed with scrypt(N=2^10, r=8, p=1) and ChaCha20-Poly1305",
            sealed,
            passphrase=PASSPHRASE,
            salt=SALT.hex(),
            scrypt={"log2_n": log2_n, "r": r, "p": p},
            associated_data=ad.hex(),
            aead_key=crypto.scrypt_key(PASSPHRASE.encode(), SALT, log2_n=log2_n, r=r, p=p).hex(),
            nonce=bytes(12).hex(),
        ),
        vec(
            "key-file-sealed-no-passphrase",
            "a sealed file read without a passphrase",
            sealed,
            fail="passphrase-required",
        ),
        vec(
            "key-file-sealed-wrong-passphrase",
            "a sealed file read with another passphrase",
            sealed,
            passphrase="Correct horse battery staple",
            fail="wrong-passphrase",
        ),
        vec(
            "key-file-sealed-tampered",
            "one bit of the Poly1305 tag changed",
            tampered,
            passphrase=PASSPHRASE,
            fail="wrong-passphrase",
        ),
        vec(
            "key-file-group-readable",
            "a correct plain file with mode 0640",
            plain,
            mode="640",
            fail="key-file-insecure",
        ),
        vec(
            "key-file-other-readable",
            "a correct sealed file with mode 0604",
            sealed,
            mode="604",
            passphrase=PASSPHRASE,
            fail="key-file-insecure",
        ),
        vec(
            "key-file-bad-magic",
            "magic p2pcomm-kex",
            encoding.encode(["p2pcomm-kex", 1, 0, seed]),
            fail="key-file-corrupt",
        ),
        vec(
            "key-file-version-2",
            "key file version 2",
            encoding.encode(["p2pcomm-key", 2, 0, seed]),
            fail="key-file-corrupt",
        ),
        vec(
            "key-file-unknown-mode",
            "mode 2",
            encoding.encode(["p2pcomm-key", 1, 2, seed]),
            fail="key-file-corrupt",
        ),
        vec(
            "key-file-short-seed",
            "a 31-byte seed",
            encoding.encode(["p2pcomm-key", 1, 0, seed[:31]]),
            fail="key-file-corrupt",
        ),
        vec(
            "key-file-truncated",
            "the plain file without its last byte",
            plain[:-1],
            fail="key-file-corrupt",
        ),
        vec(
            "key-file-trailing",
            "the plain file with one more byte",
            plain + b"\x00",
            fail="key-file-corrupt",
        ),
        vec(
            "key-file-non-canonical",
            "version written as uint 8",
            plain.replace(b"\xabp2pcomm-key\x01", b"\xabp2pcomm-key\xcc\x01", 1),
            fail="key-file-corrupt",
        ),
        vec(
            "key-file-scrypt-n-too-small",
            "log2 N = 9 (readers accept 10..22)",
            low_n,
            passphrase=PASSPHRASE,
            fail="key-file-corrupt",
        ),
    ]


def generate() -> dict[str, Any]:
    vectors: list[Json] = [
        {
            "type": "constants",
            "name": "identity-constants",
            "description": "sizes and the id text prefix",
            "constants": {
                "PUBLIC_KEY_SIZE": crypto.PUBLIC_KEY_SIZE,
                "SEED_SIZE": crypto.SEED_SIZE,
                "SIGNATURE_SIZE": crypto.SIGNATURE_SIZE,
                "ID_TEXT_PREFIX": ID_TEXT_PREFIX,
                "ID_CHECKSUM_SIZE": 3,
                "ID_TEXT_LENGTH": 59,
            },
        }
    ]
    vectors += _namespace_vectors()
    vectors += _keypair_vectors()
    vectors += _id_text_vectors()
    vectors += _signature_vectors()
    vectors += _key_file_vectors()
    return {
        "description": (
            "p2pcomm identities (spec/02-identity.md): signing namespaces, key pairs from "
            "fixed seeds, member id text forms, Ed25519 signatures and key files"
        ),
        "revision": REVISION,
        "vectors": vectors,
    }
