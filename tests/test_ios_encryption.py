"""Backup keybag, class and file keys, and AES-CBC streams, checked against the two reference readers."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from ios_helpers import FAST_DPIC, FAST_ITERATIONS
from iphone_backup_decrypt.utils import BackupKeyBag, aes_decrypt_cbc, remove_cbc_padding
from pyiosbackup.keybag import keybag_struct

from agent.errors import BackupFormatError, WrongSecretError
from agent.ios.encryption import (
    Keybag,
    decrypt_bytes,
    decrypt_manifest_db,
    decrypt_stream,
    encrypt_bytes,
    encrypt_manifest_db,
    encrypt_stream,
    encrypted_size,
    new_file_key,
    new_manifest_key,
    unwrap_file_key,
    wrap_file_key,
)

PASSWORD = "hunter2 ✓"


@pytest.fixture(scope="module")
def keybag_and_keys():
    return Keybag.create(PASSWORD, dpic=FAST_DPIC, iterations=FAST_ITERATIONS)


def test_created_keybag_has_the_real_tlv_layout(keybag_and_keys) -> None:
    keybag, class_keys = keybag_and_keys
    tags = [entry.tag for entry in keybag_struct.parse(keybag.data)]
    root = [b"VERS", b"TYPE", b"UUID", b"HMCK", b"WRAP", b"SALT", b"ITER", b"DPWT", b"DPIC", b"DPSL"]
    assert tags == root + [b"UUID", b"CLAS", b"WRAP", b"KTYP", b"WPKY"] * 11
    assert sorted(class_keys.keys) == list(range(1, 12))
    assert [entry[b"CLAS"] for entry in keybag.classes] == list(range(1, 12))
    assert keybag.root[b"DPIC"] == FAST_DPIC and keybag.root[b"ITER"] == FAST_ITERATIONS
    assert Keybag.parse(keybag.data) == keybag


def test_unlock_gives_the_created_class_keys(keybag_and_keys) -> None:
    keybag, class_keys = keybag_and_keys
    assert keybag.unlock(PASSWORD) == class_keys


def test_wrong_password_raises_wrong_secret(keybag_and_keys) -> None:
    keybag, _ = keybag_and_keys
    with pytest.raises(WrongSecretError, match="wrong backup password"):
        keybag.unlock("hunter3")


def test_iphone_backup_decrypt_unlocks_our_keybag(keybag_and_keys) -> None:
    keybag, class_keys = keybag_and_keys
    reference = BackupKeyBag(keybag.data)
    assert reference.unlock_with_passphrase(PASSWORD.encode())
    assert reference.classes_keys == class_keys.keys
    assert not BackupKeyBag(keybag.data).unlock_with_passphrase(b"wrong")


def test_password_key_derivation_matches_pyiosbackup_formula(keybag_and_keys) -> None:
    keybag, class_keys = keybag_and_keys
    root = {entry.tag: entry.data for entry in keybag_struct.parse(keybag.data)[:10]}
    stage1 = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), root[b"DPSL"], root[b"DPIC"], 32)
    password_key = hashlib.pbkdf2_hmac("sha1", stage1, root[b"SALT"], root[b"ITER"], 32)
    assert aes_key_unwrap(password_key, keybag.classes[2][b"WPKY"]) == class_keys.for_class(3)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda data: data[:-3],  # truncated value
        lambda data: data + b"XY",  # truncated tag header
        lambda data: b"",  # nothing
        lambda data: data[: data.index(b"SALT")] + b"SALX" + data[data.index(b"SALT") + 4 :],  # no SALT
        lambda data: b"VERS" + struct.pack(">I", 4) + struct.pack(">I", 5),  # no class keys
        lambda data: data[:-40] + bytes(12),  # WPKY of the wrong length (length field kept)
        lambda data: data.replace(
            b"ITER" + struct.pack(">II", 4, FAST_ITERATIONS), b"ITER" + struct.pack(">II", 4, 2**32 - 1)
        ),
        lambda data: data.replace(
            b"DPIC" + struct.pack(">II", 4, FAST_DPIC), b"DPIC" + struct.pack(">II", 4, 0)
        ),
    ],
    ids=[
        "truncated",
        "trailing-garbage",
        "empty",
        "no-salt",
        "no-classes",
        "bad-wpky-length",
        "huge-iter",
        "zero-dpic",
    ],
)
def test_unparseable_keybag_raises_format_error(keybag_and_keys, mutate) -> None:
    keybag, _ = keybag_and_keys
    with pytest.raises(BackupFormatError, match="keybag"):
        Keybag.parse(mutate(keybag.data))


def test_file_key_wrap_is_the_44_byte_form_and_deterministic(keybag_and_keys) -> None:
    _, class_keys = keybag_and_keys
    file_key = new_file_key()
    wrapped = wrap_file_key(class_keys, 3, file_key)
    assert len(wrapped) == 44 and wrapped[:4] == b"\x03\x00\x00\x00"
    assert wrap_file_key(class_keys, 3, file_key) == wrapped
    assert unwrap_file_key(class_keys, wrapped) == file_key
    # the readers unwrap NS.data[4:] with the class key of ProtectionClass / of the embedded class
    assert aes_key_unwrap(class_keys.for_class(3), wrapped[4:]) == file_key


def test_unwrap_rejects_damaged_or_foreign_keys(keybag_and_keys) -> None:
    _, class_keys = keybag_and_keys
    wrapped = wrap_file_key(class_keys, 3, new_file_key())
    with pytest.raises(BackupFormatError):
        unwrap_file_key(class_keys, wrapped[:-1])
    with pytest.raises(BackupFormatError):
        unwrap_file_key(class_keys, wrapped[:4] + bytes(40))
    with pytest.raises(BackupFormatError, match="protection class 12"):
        unwrap_file_key(class_keys, b"\x0c\x00\x00\x00" + wrapped[4:])


@pytest.mark.parametrize("size", [0, 1, 15, 16, 32, 1000, 65536 + 7])
def test_stream_round_trip_and_reference_decryption(size: int) -> None:
    key = new_file_key()
    plaintext = bytes((i * 7) % 256 for i in range(size))
    pieces = [plaintext[i : i + 333] for i in range(0, size, 333)]
    ciphertext = b"".join(encrypt_stream(key, pieces))
    assert len(ciphertext) == encrypted_size(size)
    assert ciphertext == encrypt_bytes(key, plaintext)  # piece boundaries do not matter
    assert remove_cbc_padding(aes_decrypt_cbc(data=ciphertext, key=key)) == plaintext
    odd_pieces = [ciphertext[i : i + 100] for i in range(0, len(ciphertext), 100)]
    assert b"".join(decrypt_stream(key, odd_pieces, size)) == plaintext


def test_empty_file_is_one_block_of_padding() -> None:
    key = new_file_key()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
    assert decryptor.update(encrypt_bytes(key, b"")) + decryptor.finalize() == b"\x10" * 16


def test_decrypt_stream_rejects_wrong_length_and_bad_padding() -> None:
    key = new_file_key()
    ciphertext = encrypt_bytes(key, b"x" * 40)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    unpadded = encryptor.update(b"x" * 48) + encryptor.finalize()  # last byte 0x78: never valid PKCS#7
    with pytest.raises(BackupFormatError, match="recorded size"):
        b"".join(decrypt_stream(key, [ciphertext], 41))
    with pytest.raises(BackupFormatError, match="longer"):
        b"".join(decrypt_stream(key, [ciphertext], 8))
    with pytest.raises(BackupFormatError, match="wrong length"):
        b"".join(decrypt_stream(key, [ciphertext[:-1]], 40))
    with pytest.raises(BackupFormatError, match="padding"):
        b"".join(decrypt_stream(key, [unpadded], 40))
    with pytest.raises(BackupFormatError, match="padding"):
        decrypt_bytes(key, unpadded)
    with pytest.raises(BackupFormatError, match="AES blocks"):
        decrypt_bytes(key, ciphertext[:-1])


def test_manifest_db_encryption_is_padded_and_deterministic(keybag_and_keys) -> None:
    _, class_keys = keybag_and_keys
    manifest_key = new_manifest_key(class_keys)
    assert manifest_key[:4] == b"\x04\x00\x00\x00"
    database = b"SQLite format 3\x00" + bytes(4096 - 16)  # a page multiple: padding adds a whole block
    encrypted = encrypt_manifest_db(class_keys, manifest_key, database)
    assert len(encrypted) == 4096 + 16
    assert encrypt_manifest_db(class_keys, manifest_key, database) == encrypted
    assert decrypt_manifest_db(class_keys, manifest_key, encrypted) == database
    with pytest.raises(BackupFormatError):
        decrypt_manifest_db(class_keys, manifest_key, encrypted[:-16])
