"""The recovery key: 256 random bits shown once as grouped base32 with a checksum.

`XXXX-XXXX-…` (14 groups of 4 characters) encodes 32 key bytes and a 3-byte SHA-256
checksum, so a mistyped key is rejected before any key derivation runs. Letters are
case-insensitive and the digits 0/1/8 are read as O/I/B, the usual base32 confusions.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

from agent.errors import WrongSecretError

KEY_BYTES = 32
CHECKSUM_BYTES = 3
GROUP = 4


def _checksum(key: bytes) -> bytes:
    return hashlib.sha256(b"coffer recovery key v1" + key).digest()[:CHECKSUM_BYTES]


def generate() -> bytes:
    return os.urandom(KEY_BYTES)


def format_key(key: bytes) -> str:
    text = base64.b32encode(key + _checksum(key)).decode("ascii").rstrip("=")
    return "-".join(text[i : i + GROUP] for i in range(0, len(text), GROUP))


def parse_key(text: str) -> bytes:
    cleaned = re.sub(r"[\s-]", "", text).upper().translate(str.maketrans("018", "OIB"))
    expected_length = len(format_key(bytes(KEY_BYTES)).replace("-", ""))
    if len(cleaned) != expected_length:
        raise WrongSecretError(
            f"the recovery key has {len(cleaned)} characters, expected {expected_length}: check for a missing group"
        )
    padding = "=" * (-len(cleaned) % 8)
    try:
        raw = base64.b32decode(cleaned + padding)
    except ValueError as exc:
        raise WrongSecretError("the recovery key contains characters that are not base32") from exc
    key, checksum = raw[:KEY_BYTES], raw[KEY_BYTES:]
    if _checksum(key) != checksum:
        raise WrongSecretError("the recovery key has a typo (its checksum does not match)")
    return key
