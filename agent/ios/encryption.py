"""Device-side backup encryption (ios-protocol.md section 6.5): the backup keybag and its class keys, per-file
keys wrapped under class keys, AES-256-CBC content encryption, and the Manifest.db key.

Everything here is deterministic given the keys (CBC with a zero IV, RFC 3394 key wrap), which is what lets
`coffer export` re-encrypt plaintext with a file's original key and reproduce the device's bytes exactly.
Only `cryptography` primitives and hashlib's PBKDF2 are used."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from agent.errors import BackupFormatError, WrongSecretError

AES_BLOCK = 16
KEY_SIZE = 32
WRAPPED_SIZE = 40
MANIFEST_KEY_CLASS = 4  # the class of ManifestKey in every sample seen
PROTECTION_CLASSES = range(1, 12)
DEFAULT_DPIC = 10_000_000  # iOS >= 10.2 PBKDF2-SHA256 rounds (pyiosbackup's test vector)
DEFAULT_ITERATIONS = 10_000  # PBKDF2-SHA1 rounds
MAX_DPIC = 20_000_000
MAX_ITERATIONS = 1_000_000
_ZERO_IV = bytes(AES_BLOCK)
_WRAP_PASSCODE = 2  # class key wrapped with the password-derived key
_INTEGER_TAGS = frozenset({b"VERS", b"TYPE", b"WRAP", b"ITER", b"DPWT", b"DPIC", b"CLAS", b"KTYP"})
_CLASS_TAGS = (b"UUID", b"CLAS", b"WRAP", b"KTYP", b"WPKY")


@dataclass(frozen=True)
class ClassKeys:
    """The unwrapped protection-class keys of one backup (class number -> 32-byte AES key)."""

    keys: dict[int, bytes] = field(repr=False)

    def for_class(self, protection_class: int) -> bytes:
        try:
            return self.keys[protection_class]
        except KeyError:
            raise BackupFormatError(
                f"the backup keybag has no key for protection class {protection_class}"
            ) from None


@dataclass(frozen=True)
class Keybag:
    """A parsed BackupKeyBag: `root` holds the root tags (VERS, TYPE, UUID, HMCK, WRAP, SALT, ITER, DPWT, DPIC,
    DPSL), `classes` one dict per class key (UUID, CLAS, WRAP, KTYP, WPKY). `data` is the TLV as stored."""

    data: bytes
    root: dict[bytes, int | bytes]
    classes: list[dict[bytes, int | bytes]]

    @classmethod
    def parse(cls, data: bytes) -> Keybag:
        """Parse the TLV (`tag[4] u32-BE length value`). pyiosbackup's construct parser silently stops at
        garbage, so the TLV walk is done here strictly: anything that does not parse raises BackupFormatError."""
        root: dict[bytes, int | bytes] = {}
        classes: list[dict[bytes, int | bytes]] = []
        offset = 0
        while offset < len(data):
            if offset + 8 > len(data):
                raise BackupFormatError("the backup keybag (Manifest.plist BackupKeyBag) is truncated")
            tag = data[offset : offset + 4]
            (length,) = struct.unpack(">I", data[offset + 4 : offset + 8])
            value: int | bytes = data[offset + 8 : offset + 8 + length]
            if len(value) != length:
                raise BackupFormatError("the backup keybag (Manifest.plist BackupKeyBag) is truncated")
            if tag in _INTEGER_TAGS and length == 4:
                (value,) = struct.unpack(">I", value)
            offset += 8 + length
            # The first UUID belongs to the root; every later UUID opens a class-key block.
            if tag == b"UUID" and b"UUID" in root:
                classes.append({})
            (classes[-1] if classes else root)[tag] = value
        keybag = cls(data=data, root=root, classes=classes)
        keybag._validate()
        return keybag

    @classmethod
    def create(
        cls, password: str, *, dpic: int = DEFAULT_DPIC, iterations: int = DEFAULT_ITERATIONS
    ) -> tuple[Keybag, ClassKeys]:
        """A fresh password-protected backup keybag (random salts and class keys 1..11) and its unwrapped class
        keys. The TLV layout is the one both pyiosbackup and iphone_backup_decrypt accept: the root tags in the
        real order, then exactly UUID, CLAS, WRAP, KTYP, WPKY per class."""
        salt, dp_salt = os.urandom(20), os.urandom(20)
        password_key = _password_key(password, salt, iterations, dp_salt, dpic)
        class_keys = {number: os.urandom(KEY_SIZE) for number in PROTECTION_CLASSES}
        tlv = [
            (b"VERS", _u32(5)),
            (b"TYPE", _u32(1)),
            (b"UUID", os.urandom(16)),
            (b"HMCK", aes_key_wrap(password_key, os.urandom(KEY_SIZE))),
            (b"WRAP", _u32(0)),
            (b"SALT", salt),
            (b"ITER", _u32(iterations)),
            (b"DPWT", _u32(1)),
            (b"DPIC", _u32(dpic)),
            (b"DPSL", dp_salt),
        ]
        for number, key in class_keys.items():
            tlv += [
                (b"UUID", os.urandom(16)),
                (b"CLAS", _u32(number)),
                (b"WRAP", _u32(_WRAP_PASSCODE)),
                (b"KTYP", _u32(0)),
                (b"WPKY", aes_key_wrap(password_key, key)),
            ]
        data = b"".join(tag + struct.pack(">I", len(value)) + value for tag, value in tlv)
        return cls.parse(data), ClassKeys(class_keys)

    def unlock(self, password: str) -> ClassKeys:
        """Derive the password key and unwrap every password-wrapped class key. A wrong password raises
        WrongSecretError."""
        password_key = _password_key(
            password, self.root[b"SALT"], self.root[b"ITER"], self.root.get(b"DPSL"), self.root.get(b"DPIC")
        )
        keys = {}
        for entry in self.classes:
            if entry[b"WRAP"] & _WRAP_PASSCODE:
                try:
                    keys[entry[b"CLAS"]] = aes_key_unwrap(password_key, entry[b"WPKY"])
                except InvalidUnwrap:
                    raise WrongSecretError(
                        "wrong backup password: it does not unlock this backup's keybag"
                    ) from None
        return ClassKeys(keys)

    def _validate(self) -> None:
        def fail(why: str) -> BackupFormatError:
            return BackupFormatError(f"the backup keybag (Manifest.plist BackupKeyBag) is malformed: {why}")

        for tag in (b"SALT", b"ITER"):
            if tag not in self.root:
                raise fail(f"the root has no {tag.decode()}")
        if (b"DPSL" in self.root) != (b"DPIC" in self.root):
            raise fail("DPSL and DPIC must come together")
        # A hostile keybag could ask for billions of PBKDF2 rounds; the caps are iphone_backup_decrypt's.
        for tag, maximum in ((b"ITER", MAX_ITERATIONS), (b"DPIC", MAX_DPIC)):
            value = self.root.get(tag, 1)
            if not isinstance(value, int) or not 1 <= value <= maximum:
                raise fail(f"{tag.decode()} is not an iteration count between 1 and {maximum:,}")
        if not self.classes:
            raise fail("it holds no class keys")
        for entry in self.classes:
            if not isinstance(entry.get(b"CLAS"), int) or not isinstance(entry.get(b"WRAP"), int):
                raise fail("a class-key block lacks CLAS or WRAP")
            wrapped = entry.get(b"WPKY")
            if entry[b"WRAP"] & _WRAP_PASSCODE and (
                not isinstance(wrapped, bytes) or len(wrapped) != WRAPPED_SIZE
            ):
                raise fail(f"class {entry[b'CLAS']} has no {WRAPPED_SIZE}-byte WPKY")


def new_file_key() -> bytes:
    """A fresh random 32-byte per-file (or Manifest.db) key."""
    return os.urandom(KEY_SIZE)


def wrap_file_key(class_keys: ClassKeys, protection_class: int, file_key: bytes) -> bytes:
    """The 44-byte EncryptionKey / ManifestKey form: u32 LE class || RFC 3394 wrap under the class key."""
    return struct.pack("<I", protection_class) + aes_key_wrap(
        class_keys.for_class(protection_class), file_key
    )


def unwrap_file_key(class_keys: ClassKeys, wrapped: bytes) -> bytes:
    """Inverse of `wrap_file_key`; a damaged or foreign wrapped key raises BackupFormatError."""
    if len(wrapped) != 4 + WRAPPED_SIZE:
        raise BackupFormatError(f"a wrapped file key is {len(wrapped)} bytes, expected {4 + WRAPPED_SIZE}")
    (protection_class,) = struct.unpack("<I", wrapped[:4])
    try:
        return aes_key_unwrap(class_keys.for_class(protection_class), wrapped[4:])
    except InvalidUnwrap:
        raise BackupFormatError("a wrapped file key does not unwrap with this backup's class keys") from None


def encrypted_size(plaintext_size: int) -> int:
    """Ciphertext length of a blob: PKCS#7 always adds 1..16 bytes."""
    return (plaintext_size // AES_BLOCK + 1) * AES_BLOCK


def encrypt_stream(key: bytes, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """AES-256-CBC, zero IV, PKCS#7 padding, as the device encrypts a file; ciphertext pieces as they come."""
    padder = padding.PKCS7(AES_BLOCK * 8).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).encryptor()
    for piece in pieces:
        out = encryptor.update(padder.update(piece))
        if out:
            yield out
    yield encryptor.update(padder.finalize()) + encryptor.finalize()


def decrypt_stream(key: bytes, pieces: Iterable[bytes | memoryview], expected_size: int) -> Iterator[bytes]:
    """Inverse of `encrypt_stream`, checking that the plaintext is exactly `expected_size` bytes. A wrong
    length or bad padding raises BackupFormatError (after the pieces before it were yielded: callers that must
    not emit partial output check the ciphertext length first, see `encrypted_size`)."""
    unpadder = padding.PKCS7(AES_BLOCK * 8).unpadder()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    produced = 0
    for piece in pieces:
        out = unpadder.update(decryptor.update(piece))
        produced += len(out)
        if produced > expected_size:
            raise BackupFormatError(
                f"encrypted content is longer than its recorded size of {expected_size} bytes"
            )
        if out:
            yield out
    try:
        out = unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise BackupFormatError("encrypted content has a wrong length or bad padding (damaged?)") from None
    produced += len(out)
    if produced != expected_size:
        raise BackupFormatError(
            f"encrypted content holds {produced} bytes, its recorded size is {expected_size}"
        )
    if out:
        yield out


def encrypt_bytes(key: bytes, plaintext: bytes) -> bytes:
    """`encrypt_stream` of one buffer."""
    return b"".join(encrypt_stream(key, [plaintext]))


def decrypt_bytes(key: bytes, ciphertext: bytes) -> bytes:
    """Decrypt one whole buffer of unknown plaintext length (Manifest.db); bad padding raises
    BackupFormatError."""
    if not ciphertext or len(ciphertext) % AES_BLOCK:
        raise BackupFormatError("encrypted content is not a whole number of AES blocks (damaged?)")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    unpadder = padding.PKCS7(AES_BLOCK * 8).unpadder()
    try:
        return unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise BackupFormatError("encrypted content has bad padding (damaged?)") from None


def new_manifest_key(class_keys: ClassKeys) -> bytes:
    """A fresh wrapped ManifestKey (class 4) for Manifest.plist."""
    return wrap_file_key(class_keys, MANIFEST_KEY_CLASS, new_file_key())


def encrypt_manifest_db(class_keys: ClassKeys, manifest_key: bytes, plaintext: bytes) -> bytes:
    """Encrypt a Manifest.db image with the wrapped `manifest_key` of Manifest.plist (always padded: strict
    readers such as iphone_backup_decrypt 0.11.2 require it)."""
    return encrypt_bytes(unwrap_file_key(class_keys, manifest_key), plaintext)


def decrypt_manifest_db(class_keys: ClassKeys, manifest_key: bytes, ciphertext: bytes) -> bytes:
    """Decrypt Manifest.db with the wrapped `manifest_key`; damage raises BackupFormatError."""
    return decrypt_bytes(unwrap_file_key(class_keys, manifest_key), ciphertext)


def _password_key(
    password: str, salt: object, iterations: object, dp_salt: object, dp_iterations: object
) -> bytes:
    """PBKDF2-SHA256 over DPSL/DPIC (iOS >= 10.2 keybags), then PBKDF2-SHA1 over SALT/ITER."""
    secret = password.encode("utf-8")
    if isinstance(dp_salt, bytes) and isinstance(dp_iterations, int):
        secret = hashlib.pbkdf2_hmac("sha256", secret, dp_salt, dp_iterations, KEY_SIZE)
    if not isinstance(salt, bytes) or not isinstance(iterations, int):
        raise BackupFormatError("the backup keybag has a malformed SALT or ITER")
    return hashlib.pbkdf2_hmac("sha1", secret, salt, iterations, KEY_SIZE)


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)
