"""Key generation and key files (spec/02-identity.md, "Key files").

A key file holds one Ed25519 seed, either in the clear or sealed with a passphrase::

    [ "p2pcomm-key", 1, 0, seed(32) ]                                        plain
    [ "p2pcomm-key", 1, 1, salt(16), log2_n, r, p, ciphertext(48) ]          sealed

``sealed`` derives a 32-byte key with scrypt(passphrase, salt, N=2**log2_n, r, p) and
encrypts the seed with ChaCha20-Poly1305 (nonce 0, associated data = the encoding of
the first seven fields), so a wrong passphrase and a tampered file both fail
authentication. Files are written atomically with mode 0600 and refused on load when
group or others may read them, or may write to the directory holding them (they could
replace the key; in a sticky directory such as /tmp they cannot).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

from .core import crypto
from .core.encoding import Limits, decode_canonical, encode, expect_bytes, expect_str, expect_uint
from .core.identity import KeyPair
from .errors import DecodeError, ErrorCode, IdentityError

__all__ = ["generate_keypair", "load_keypair", "save_keypair"]

_MAGIC: Final = "p2pcomm-key"
_VERSION: Final = 1
_PLAIN: Final = 0
_SEALED: Final = 1
_LIMITS: Final = Limits(max_size=512, max_bytes=64, max_array=8, max_depth=1)
#: scrypt cost for new files: N = 2**15, r = 8, p = 1 (about 32 MiB, ~0.1 s).
DEFAULT_SCRYPT: Final = (15, 8, 1)


def generate_keypair() -> KeyPair:
    """A new key pair from the operating system's random source."""
    return KeyPair(os.urandom(crypto.SEED_SIZE))


def _encode_file(keypair: KeyPair, passphrase: str | None, scrypt: tuple[int, int, int]) -> bytes:
    if passphrase is None:
        return encode([_MAGIC, _VERSION, _PLAIN, keypair.seed()])
    log2_n, r, p = scrypt
    salt = os.urandom(16)
    ad = encode([_MAGIC, _VERSION, _SEALED, salt, log2_n, r, p])
    key = crypto.scrypt_key(passphrase.encode("utf-8"), salt, log2_n=log2_n, r=r, p=p)
    sealed = crypto.aead_encrypt(key, 0, ad, keypair.seed())
    return encode([_MAGIC, _VERSION, _SEALED, salt, log2_n, r, p, sealed])


def _check_directory(path: Path) -> None:
    """Refuse a key file location whose directory group or others may write to."""
    directory = path.absolute().parent
    mode = stat.S_IMODE(os.stat(directory).st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        raise IdentityError(
            ErrorCode.KEY_FILE_INSECURE,
            f"{directory}, the directory of key file {path}, is writable by group or others"
            f" (mode {mode:o}), who could replace the key; run: chmod 700 {directory}, or"
            " keep the key file in a directory only you can write to",
            expected="0700",
            found=f"{mode:o}",
        )


def save_keypair(
    path: str | Path,
    keypair: KeyPair,
    *,
    passphrase: str | None = None,
    overwrite: bool = False,
    scrypt: tuple[int, int, int] = DEFAULT_SCRYPT,
) -> None:
    """Write ``keypair`` to ``path`` (mode 0600, atomically). Refuses to replace an
    existing file unless ``overwrite``, and (``KEY_FILE_INSECURE``) a directory group
    or others may write to, where :func:`load_keypair` would refuse the file."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite a key file")
    _check_directory(path)
    data = _encode_file(keypair, passphrase, scrypt)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _corrupt(message: str) -> IdentityError:
    return IdentityError(ErrorCode.KEY_FILE_CORRUPT, message)


def load_keypair(path: str | Path, *, passphrase: str | None = None) -> KeyPair:
    """Read a key file. Raises :class:`IdentityError` with ``KEY_FILE_INSECURE`` (the
    file is readable by group or others, or its directory writable by them),
    ``KEY_FILE_CORRUPT``, ``PASSPHRASE_REQUIRED`` or ``WRONG_PASSPHRASE``;
    ``FileNotFoundError`` if there is no file, ``IsADirectoryError`` if ``path`` is a
    directory."""
    path = Path(path)
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a key file", str(path))
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdentityError(
            ErrorCode.KEY_FILE_INSECURE,
            f"{path} is accessible by group or others (mode {mode:o}); run: chmod 600 {path}",
            expected="0600",
            found=f"{mode:o}",
        )
    _check_directory(path)
    data = path.read_bytes()
    try:
        fields = decode_canonical(data, _LIMITS)
        if len(fields) < 4 or expect_str(fields[0], "key file magic") != _MAGIC:
            raise _corrupt(f"{path} is not a p2pcomm key file")
        version = expect_uint(fields[1], "key file version")
        if version != _VERSION:
            raise _corrupt(f"{path} has key file version {version}; this p2pcomm reads {_VERSION}")
        mode = expect_uint(fields[2], "key file mode")
        if mode == _PLAIN and len(fields) == 4:
            return KeyPair(expect_bytes(fields[3], "seed", length=crypto.SEED_SIZE))
        if mode != _SEALED or len(fields) != 8:
            raise _corrupt(f"{path} has an unknown layout (mode {mode}, {len(fields)} fields)")
        salt = expect_bytes(fields[3], "salt", length=16)
        log2_n = expect_uint(fields[4], "scrypt log2 n", minimum=10, maximum=22)
        r = expect_uint(fields[5], "scrypt r", minimum=1, maximum=32)
        p = expect_uint(fields[6], "scrypt p", minimum=1, maximum=16)
        sealed = expect_bytes(fields[7], "sealed seed", length=crypto.SEED_SIZE + 16)
    except DecodeError as exc:
        raise _corrupt(f"{path} is damaged or not a key file ({exc.message})") from None
    if passphrase is None:
        raise IdentityError(ErrorCode.PASSPHRASE_REQUIRED, f"{path} is protected by a passphrase")
    ad = encode([_MAGIC, _VERSION, _SEALED, salt, log2_n, r, p])
    key = crypto.scrypt_key(passphrase.encode("utf-8"), salt, log2_n=log2_n, r=r, p=p)
    try:
        seed = crypto.aead_decrypt(key, 0, ad, sealed)
    except crypto.AeadError:
        raise IdentityError(
            ErrorCode.WRONG_PASSPHRASE, f"wrong passphrase for {path} (or the file was altered)"
        ) from None
    return KeyPair(seed)
