"""Key files (p2pcomm/keys.py): plain and passphrase-sealed round trips, file modes,
and every way a file can be refused. A cheap scrypt cost keeps the suite fast."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgpack
import pytest

from p2pcomm.errors import ErrorCode, IdentityError
from p2pcomm.keys import generate_keypair, load_keypair, save_keypair
from tests.helpers import keypair

CHEAP = (10, 8, 1)
PASS = "correct horse battery staple \u00e9"


def _code(path: Path, passphrase: str | None = None) -> ErrorCode:
    with pytest.raises(IdentityError) as info:
        load_keypair(path, passphrase=passphrase)
    return info.value.code


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.key"
    save_keypair(path, keypair(1))
    return path


@pytest.fixture
def sealed(tmp_path: Path) -> Path:
    path = tmp_path / "sealed.key"
    save_keypair(path, keypair(1), passphrase=PASS, scrypt=CHEAP)
    return path


def _rewrite(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


def test_plain_round_trip(plain: Path) -> None:
    kp = load_keypair(plain)
    assert kp.public_key == keypair(1).public_key and kp.seed() == keypair(1).seed()


def test_sealed_round_trip(sealed: Path) -> None:
    kp = load_keypair(sealed, passphrase=PASS)
    assert kp.seed() == keypair(1).seed()
    assert keypair(1).seed() not in sealed.read_bytes()


def test_generated_keys_round_trip(tmp_path: Path) -> None:
    a, b = generate_keypair(), generate_keypair()
    assert a.public_key != b.public_key
    save_keypair(tmp_path / "a.key", a, passphrase="", scrypt=CHEAP)  # empty passphrase
    assert load_keypair(tmp_path / "a.key", passphrase="").seed() == a.seed()
    assert _code(tmp_path / "a.key", passphrase=" ") is ErrorCode.WRONG_PASSPHRASE


def test_sealing_uses_a_fresh_salt(tmp_path: Path) -> None:
    save_keypair(tmp_path / "1.key", keypair(1), passphrase=PASS, scrypt=CHEAP)
    save_keypair(tmp_path / "2.key", keypair(1), passphrase=PASS, scrypt=CHEAP)
    assert (tmp_path / "1.key").read_bytes() != (tmp_path / "2.key").read_bytes()


@pytest.mark.parametrize("kind", ["plain", "sealed"])
def test_files_are_written_with_mode_0600(kind: str, tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        path = tmp_path / f"{kind}.key"
        save_keypair(path, keypair(2), passphrase=PASS if kind == "sealed" else None, scrypt=CHEAP)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o700 | 0o010, 0o601])
def test_files_readable_by_others_are_refused(plain: Path, mode: int) -> None:
    os.chmod(plain, mode)
    with pytest.raises(IdentityError) as info:
        load_keypair(plain)
    assert info.value.code is ErrorCode.KEY_FILE_INSECURE
    assert info.value.found == f"{mode:o}"


def test_owner_only_modes_are_accepted(plain: Path) -> None:
    for mode in (0o400, 0o600, 0o700):
        os.chmod(plain, mode)
        assert load_keypair(plain).public_key == keypair(1).public_key


def test_wrong_passphrase(sealed: Path) -> None:
    assert _code(sealed, "wrong") is ErrorCode.WRONG_PASSPHRASE
    assert _code(sealed, PASS.upper()) is ErrorCode.WRONG_PASSPHRASE


def test_passphrase_required(sealed: Path) -> None:
    assert _code(sealed) is ErrorCode.PASSPHRASE_REQUIRED


def test_plain_file_ignores_a_passphrase(plain: Path) -> None:
    assert load_keypair(plain, passphrase="anything").public_key == keypair(1).public_key


@pytest.mark.parametrize("kind", ["plain", "sealed"])
def test_every_truncation_is_corrupt(kind: str, plain: Path, sealed: Path) -> None:
    path = plain if kind == "plain" else sealed
    data = path.read_bytes()
    for n in range(len(data)):
        _rewrite(path, data[:n])
        for passphrase in (None, PASS):
            assert _code(path, passphrase) is ErrorCode.KEY_FILE_CORRUPT, (n, passphrase)


@pytest.mark.parametrize("kind", ["plain", "sealed"])
def test_trailing_bytes_are_corrupt(kind: str, plain: Path, sealed: Path) -> None:
    path = plain if kind == "plain" else sealed
    _rewrite(path, path.read_bytes() + b"\x00")
    assert _code(path, PASS) is ErrorCode.KEY_FILE_CORRUPT


def test_every_flipped_ciphertext_byte_is_a_wrong_passphrase(sealed: Path) -> None:
    data = sealed.read_bytes()
    fields = msgpack.unpackb(data)
    ciphertext = fields[7]
    assert len(ciphertext) == 48
    start = data.index(ciphertext)
    for i in range(start, start + len(ciphertext)):
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        _rewrite(sealed, bytes(flipped))
        assert _code(sealed, PASS) is ErrorCode.WRONG_PASSPHRASE, i


def test_flipped_salt_is_a_wrong_passphrase(sealed: Path) -> None:
    data = sealed.read_bytes()
    salt = msgpack.unpackb(data)[3]
    start = data.index(salt)
    flipped = bytearray(data)
    flipped[start] ^= 0x80
    _rewrite(sealed, bytes(flipped))
    assert _code(sealed, PASS) is ErrorCode.WRONG_PASSPHRASE


def _packed(fields: list[object]) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(["p2pcomm-kez", 1, 0, bytes(32)], id="wrong-magic"),
        pytest.param(["p2pcomm-key", 2, 0, bytes(32)], id="future-version"),
        pytest.param(["p2pcomm-key", 1, 0, bytes(31)], id="short-seed"),
        pytest.param(["p2pcomm-key", 1, 0, bytes(32), 0], id="plain-extra-field"),
        pytest.param(["p2pcomm-key", 1, 2, bytes(32)], id="unknown-mode"),
        pytest.param(["p2pcomm-key", 1, 1, bytes(16), 10, 8, 1], id="sealed-missing-field"),
        pytest.param(["p2pcomm-key", 1, 1, bytes(15), 10, 8, 1, bytes(48)], id="short-salt"),
        pytest.param(["p2pcomm-key", 1, 1, bytes(16), 9, 8, 1, bytes(48)], id="cost-too-low"),
        pytest.param(["p2pcomm-key", 1, 1, bytes(16), 40, 8, 1, bytes(48)], id="cost-too-high"),
        pytest.param(["p2pcomm-key", 1, 1, bytes(16), 10, 0, 1, bytes(48)], id="r-zero"),
        pytest.param(["p2pcomm-key", 1, 1, bytes(16), 10, 8, 99, bytes(48)], id="p-too-high"),
        pytest.param(["p2pcomm-key", 1, 1, bytes(16), 10, 8, 1, bytes(47)], id="short-ciphertext"),
        pytest.param([1, 1, 0, bytes(32)], id="magic-not-str"),
        pytest.param(["p2pcomm-key", True, 0, bytes(32)], id="version-bool"),
        pytest.param(["p2pcomm-key"], id="too-short"),
    ],
)
def test_malformed_files_are_corrupt(tmp_path: Path, fields: list[object]) -> None:
    path = tmp_path / "bad.key"
    _rewrite(path, _packed(fields))
    assert _code(path, PASS) is ErrorCode.KEY_FILE_CORRUPT


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"-----BEGIN OPENSSH PRIVATE KEY-----\n", id="text"),
        pytest.param(msgpack.packb({"magic": "p2pcomm-key"}), id="map"),
        pytest.param(
            b"\xdc\x00\x04" + _packed(["p2pcomm-key", 1, 0, bytes(32)])[1:], id="non-canonical"
        ),
        pytest.param(b"\xc1", id="reserved-byte"),
    ],
)
def test_non_key_files_are_corrupt(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.key"
    _rewrite(path, data)
    assert _code(path) is ErrorCode.KEY_FILE_CORRUPT


def test_refuses_to_overwrite(plain: Path) -> None:
    before = plain.read_bytes()
    with pytest.raises(FileExistsError):
        save_keypair(plain, keypair(3))
    assert plain.read_bytes() == before
    save_keypair(plain, keypair(3), overwrite=True)
    assert load_keypair(plain).public_key == keypair(3).public_key
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_keypair(tmp_path / "nothing.key")


# The fix a refusal names is for the path at fault: a key file others may read wants
# mode 0600; a directory others may write to (they could swap the key) wants 0700, or
# the key kept elsewhere. Never "chmod 600" on a directory (as `p2pcomm id DIR` once
# advised, for a key path that was a directory).


def test_directory_writable_by_others_is_refused_naming_the_directory(plain: Path) -> None:
    directory = plain.parent
    os.chmod(directory, 0o777)
    try:
        with pytest.raises(IdentityError) as info:
            load_keypair(plain)
    finally:
        os.chmod(directory, 0o700)
    err = info.value
    assert err.code is ErrorCode.KEY_FILE_INSECURE
    assert (err.expected, err.found) == ("0700", "777")
    assert f"chmod 700 {directory.absolute()}" in err.message
    assert "chmod 600" not in err.message
    assert "directory only you can write to" in err.message
    assert load_keypair(plain).public_key == keypair(1).public_key  # once it is 0700


def test_relative_key_path_names_its_directory(
    plain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(plain.parent)
    os.chmod(plain.parent, 0o757)
    try:
        with pytest.raises(IdentityError) as info:
            load_keypair(plain.name)
    finally:
        os.chmod(plain.parent, 0o700)
    assert f"chmod 700 {plain.parent.absolute()}" in info.value.message


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o775, 0o2770])
def test_directory_writable_by_group_or_others_is_refused(plain: Path, mode: int) -> None:
    os.chmod(plain.parent, mode)
    try:
        with pytest.raises(IdentityError) as info:
            load_keypair(plain)
    finally:
        os.chmod(plain.parent, 0o700)
    assert info.value.code is ErrorCode.KEY_FILE_INSECURE
    assert info.value.found == f"{mode:o}"


def test_sticky_and_read_only_directories_are_accepted(plain: Path) -> None:
    # Sticky (like /tmp): others cannot rename or delete our file there.
    for mode in (0o1777, 0o1770, 0o755, 0o500):
        os.chmod(plain.parent, mode)
        try:
            assert load_keypair(plain).public_key == keypair(1).public_key
        finally:
            os.chmod(plain.parent, 0o700)


def test_file_readable_by_others_names_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    path = directory / "a.key"
    save_keypair(path, keypair(1))
    os.chmod(path, 0o644)
    os.chmod(directory, 0o777)  # both wrong: the readable key is the one to fix first
    try:
        with pytest.raises(IdentityError) as info:
            load_keypair(path)
    finally:
        os.chmod(directory, 0o700)
    assert info.value.message.endswith(f"run: chmod 600 {path}")


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir()
    os.chmod(directory, 0o777)
    with pytest.raises(IsADirectoryError):
        load_keypair(directory)


def test_save_refuses_a_directory_others_may_write_to(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, 0o777)
    with pytest.raises(IdentityError) as info:
        save_keypair(directory / "a.key", keypair(1))
    assert info.value.code is ErrorCode.KEY_FILE_INSECURE
    assert f"chmod 700 {directory}" in info.value.message
    assert list(directory.iterdir()) == []
