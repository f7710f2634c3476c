"""The cryptographic compositions every Coffer object uses, built only from `cryptography`.

* `seal_box` / `open_box`: symmetric AEAD for objects encrypted under a long-lived key.
  Each object draws a fresh 32-byte salt; HKDF turns (key, salt, purpose) into a one-time
  AES-256-GCM key, so the all-zero nonce is never used twice under one key.
* `seal_to` / `open_sealed`: public-key sealing in the style of HPKE base mode
  (X25519 ephemeral-static, HKDF-SHA256, AES-256-GCM), so a writer that holds only a
  public key can encrypt something it can never decrypt again.
* `seal_object` / `open_object`: `seal_box` with the plaintext framed and padded to a size class
  first (`padding`), for whole stored objects.
* `sign` / `verify`: Ed25519, for the config, which only a full key set may write.
* `mac`: HMAC-SHA256 (opaque tags, config authentication, device tags); `chunk_id`: keyed BLAKE3;
  `pack_digest`: BLAKE3, the name of a pack.

Associated data always names the object's type (and ID where it has one), so an object
cannot be replayed in another role.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Sequence

from blake3 import blake3
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.keys import padding

KEY_SIZE = 32
SALT_SIZE = 32
TAG_SIZE = 16
PUBLIC_KEY_SIZE = 32
ZERO_NONCE = bytes(12)


class DecryptionError(Exception):
    """Authentication failed: wrong key, or the bytes were altered."""


def random_key() -> bytes:
    return os.urandom(KEY_SIZE)


def hkdf(key: bytes, *, salt: bytes | None, info: bytes, length: int = KEY_SIZE) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def mac(key: bytes, data: bytes) -> bytes:
    # hashlib's HMAC releases the GIL on large inputs, which the chunk-ID stage relies on.
    return hmac.digest(key, data, "sha256")


def chunk_id(key: bytes, data: bytes) -> bytes:
    """A chunk's ID: keyed BLAKE3 of its plaintext (DESIGN.md §3), 32 bytes; about 3× cheaper than HMAC-SHA256."""
    return blake3(data, key=key).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def pack_digest(data: bytes) -> bytes:
    """A pack's name: unkeyed BLAKE3-256 of its bytes (format 2). Packs are nearly every byte stored, and
    BLAKE3 hashes them about four times faster than SHA-256 does with SHA-NI (docs/design-notes.md)."""
    return blake3(data, max_threads=1).digest()


def seal_box(key: bytes, plaintext: bytes, *, purpose: bytes, associated: bytes = b"") -> bytes:
    salt = os.urandom(SALT_SIZE)
    one_time_key = hkdf(key, salt=salt, info=b"coffer box v1 " + purpose)
    return salt + AESGCM(one_time_key).encrypt(ZERO_NONCE, plaintext, purpose + b"\0" + associated)


def open_box(key: bytes, sealed: bytes, *, purpose: bytes, associated: bytes = b"") -> bytes:
    if len(sealed) < SALT_SIZE + TAG_SIZE:
        raise DecryptionError("sealed object too short")
    salt, body = sealed[:SALT_SIZE], sealed[SALT_SIZE:]
    one_time_key = hkdf(key, salt=salt, info=b"coffer box v1 " + purpose)
    try:
        return AESGCM(one_time_key).decrypt(ZERO_NONCE, body, purpose + b"\0" + associated)
    except InvalidTag as exc:
        raise DecryptionError("authentication failed") from exc


def _first_that_opens(open_with: Callable[[bytes], bytes], keys: Sequence[bytes]) -> bytes:
    """Try the keys in order (current generation first, then retired ones)."""
    for key in keys:
        try:
            return open_with(key)
        except DecryptionError:
            continue
    raise DecryptionError("authentication failed")


def open_box_any(keys: Sequence[bytes], sealed: bytes, *, purpose: bytes, associated: bytes = b"") -> bytes:
    """`open_box` with the first of `keys` that opens it."""
    return _first_that_opens(lambda key: open_box(key, sealed, purpose=purpose, associated=associated), keys)


def generate_keypair() -> tuple[bytes, bytes]:
    """Return (private, public) raw X25519 keys."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def public_from_private(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def open_sealed_any(privates: Sequence[bytes], sealed: bytes, *, purpose: bytes, associated: bytes = b"") -> bytes:
    """`open_sealed` with the first of `privates` that opens it."""
    return _first_that_opens(lambda key: open_sealed(key, sealed, purpose=purpose, associated=associated), privates)


def _sealing_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes, purpose: bytes) -> bytes:
    return hkdf(shared, salt=ephemeral_public + recipient_public, info=b"coffer seal v1 " + purpose)


def seal_to(recipient_public: bytes, plaintext: bytes, *, purpose: bytes, associated: bytes = b"") -> bytes:
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    key = _sealing_key(shared, ephemeral_public, recipient_public, purpose)
    return ephemeral_public + AESGCM(key).encrypt(ZERO_NONCE, plaintext, purpose + b"\0" + associated)


def open_sealed(recipient_private: bytes, sealed: bytes, *, purpose: bytes, associated: bytes = b"") -> bytes:
    if len(sealed) < PUBLIC_KEY_SIZE + TAG_SIZE:
        raise DecryptionError("sealed object too short")
    ephemeral_public, body = sealed[:PUBLIC_KEY_SIZE], sealed[PUBLIC_KEY_SIZE:]
    private = X25519PrivateKey.from_private_bytes(recipient_private)
    shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    key = _sealing_key(shared, ephemeral_public, private.public_key().public_bytes_raw(), purpose)
    try:
        return AESGCM(key).decrypt(ZERO_NONCE, body, purpose + b"\0" + associated)
    except InvalidTag as exc:
        raise DecryptionError("authentication failed") from exc


# --- whole stored objects: padded, then sealed ----------------------------------------------------
def seal_object(key: bytes, plaintext: bytes, *, purpose: bytes, associated: bytes = b"") -> bytes:
    """`seal_box` of `plaintext` padded so the sealed object has a padded size (`padding.object_size`)."""
    return seal_box(key, padding.frame(plaintext, SALT_SIZE + TAG_SIZE), purpose=purpose, associated=associated)


def open_object(keys: Sequence[bytes], sealed: bytes, *, purpose: bytes, associated: bytes = b"") -> bytes:
    """Open a `seal_object` result with the first of `keys` that opens it."""
    framed = open_box_any(keys, sealed, purpose=purpose, associated=associated)
    try:
        return padding.unframe(framed)
    except padding.PaddingError as exc:
        raise DecryptionError(str(exc)) from exc


# --- signatures ---------------------------------------------------------------------------------------
SIGNATURE_SIZE = 64


def generate_signing_key() -> tuple[bytes, bytes]:
    """Return (private, public) raw Ed25519 keys."""
    private = Ed25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def sign(private: bytes, data: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(private).sign(data)


def verify_signature(public: bytes, signature: bytes, data: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
