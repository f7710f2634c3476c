"""File contents for the benchmark data set, each one a function of a seed string.

Media is the AES-256-CTR keystream under a key hashed from the seed: incompressible like HEIC or H.264, and
fast enough (gigabytes per second) that generating a data set costs seconds. Raw bitmaps and caches are that
keystream squeezed to 16 values a byte, which zstd about halves. Text is made of phrases drawn from a
Zipf-weighted vocabulary, so plists, JSON and logs compress about as well as real ones.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import plistlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PIECE_SIZE = 1 << 20
_ZEROS = memoryview(bytes(PIECE_SIZE))
# Four bits of entropy per byte: the keystream through this table looks like raw pixels to a compressor.
_SIXTEEN_LEVELS = bytes(0x30 + (value & 0x0F) * 8 for value in range(256))

_VOCABULARY_SIZE = 6000
_PHRASE_POOL_SIZE = 150_000
_ZIPF_EXPONENT = 1.07
# English-like letter frequencies, so that words look and compress like words.
_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_WEIGHTS = (
    12,
    9,
    8,
    7.5,
    7,
    6.7,
    6.3,
    6,
    6,
    4.3,
    4,
    2.8,
    2.8,
    2.4,
    2.4,
    2.2,
    2,
    2,
    1.9,
    1.5,
    1,
    0.8,
    0.2,
    0.2,
    0.1,
    0.1,
)
_LOG_LEVELS = ("Default", "Info", "Debug", "Error", "Fault")


def random_pieces(seed: str, size: int) -> Iterator[bytes]:
    """`size` incompressible bytes in pieces of PIECE_SIZE: the AES-256-CTR keystream of a key hashed from `seed`."""
    key = hashlib.sha256(seed.encode()).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    for offset in range(0, size, PIECE_SIZE):
        yield encryptor.update(_ZEROS[: min(PIECE_SIZE, size - offset)])


def bitmap_pieces(seed: str, size: int) -> Iterator[bytes]:
    """`size` bytes that zstd compresses about 2:1, like a raw bitmap or an app cache."""
    for piece in random_pieces(seed, size):
        yield piece.translate(_SIXTEEN_LEVELS)


def random_uuid(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032X}"


class TextSource:
    """Phrases of a made-up language with Zipf-distributed word frequencies (one per data set seed)."""

    def __init__(self, seed: str) -> None:
        rng = random.Random(f"{seed}:vocabulary")
        vocabulary = sorted(
            {
                "".join(rng.choices(_LETTERS, _LETTER_WEIGHTS, k=rng.randint(2, 10)))
                for _ in range(_VOCABULARY_SIZE)
            }
        )
        rng.shuffle(vocabulary)
        weights = list(
            itertools.accumulate(1 / rank**_ZIPF_EXPONENT for rank in range(1, len(vocabulary) + 1))
        )
        self.vocabulary = vocabulary
        self._phrases = [
            " ".join(rng.choices(vocabulary, cum_weights=weights, k=rng.randint(3, 9)))
            for _ in range(_PHRASE_POOL_SIZE)
        ]

    def line(self, rng: random.Random, most_phrases: int = 4) -> str:
        """A sentence of one to `most_phrases` phrases."""
        return ", ".join(rng.choices(self._phrases, k=rng.randint(1, most_phrases))).capitalize() + "."

    def name(self, rng: random.Random, words: int = 2) -> str:
        """A CamelCase identifier made of vocabulary words."""
        return "".join(word.capitalize() for word in rng.choices(self.vocabulary[:500], k=words))


def _plist_value(rng: random.Random, text: TextSource) -> Any:
    roll = rng.random()
    if roll < 0.35:
        return text.line(rng, 4)
    if roll < 0.55:
        return rng.randrange(1 << 31)
    if roll < 0.65:
        return rng.random() < 0.5
    if roll < 0.75:
        return datetime.fromtimestamp(rng.randrange(1_500_000_000, 1_720_000_000), UTC).replace(tzinfo=None)
    if roll < 0.85:
        return rng.randbytes(rng.randint(16, 512))
    if roll < 0.93:
        return [text.line(rng, 2) for _ in range(rng.randint(1, 12))]
    return {text.name(rng): rng.randrange(1000) for _ in range(rng.randint(1, 5))}


def plist_document(rng: random.Random, text: TextSource, target_size: int) -> bytes:
    """A binary property list (preferences, app state: iOS writes them binary) of at least `target_size`
    bytes."""
    document: dict[str, Any] = {}
    entry_size = 100  # a first guess, then measured
    while True:
        data = plistlib.dumps(document, fmt=plistlib.FMT_BINARY)
        if len(data) >= target_size:
            return data
        if document:
            entry_size = max(1, len(data) // len(document))
        for _ in range(max(1, (target_size - len(data)) // entry_size + 1)):
            document[text.name(rng, rng.randint(1, 3))] = _plist_value(rng, text)


def json_document(rng: random.Random, text: TextSource, target_size: int) -> bytes:
    """Compact JSON of app records (feeds, drafts, caches) of about `target_size` bytes."""
    items = []
    estimated = 0
    while estimated < target_size:
        item = {
            "id": rng.randrange(1 << 40),
            "uuid": random_uuid(rng),
            "created": datetime.fromtimestamp(rng.randrange(1_500_000_000, 1_720_000_000), UTC).isoformat(),
            "title": text.line(rng, 1),
            "body": text.line(rng, 6),
            "tags": rng.sample(text.vocabulary[:200], rng.randint(0, 4)),
            "score": round(rng.random() * 100, 3),
            "read": rng.random() < 0.7,
        }
        if rng.random() < 0.1:
            item["thumbnail"] = base64.b64encode(rng.randbytes(rng.randint(200, 2000))).decode()
        items.append(item)
        estimated += len(item["body"]) + len(item["title"]) + len(item.get("thumbnail", "")) + 170
    return json.dumps({"version": 3, "items": items}, separators=(",", ":")).encode()


def log_lines(rng: random.Random, text: TextSource, target_size: int, start_time: int) -> bytes:
    """Timestamped log lines from `start_time` (Unix seconds) on, about `target_size` bytes."""
    components = [text.name(rng) for _ in range(8)]
    pid = rng.randint(100, 9999)
    moment = start_time
    lines = []
    size = 0
    while size < target_size:
        moment += rng.randint(0, 90)
        stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{stamp}.{rng.randrange(1000):03d} {rng.choice(_LOG_LEVELS)} {rng.choice(components)}[{pid}]: {text.line(rng, 3)}\n"
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()
