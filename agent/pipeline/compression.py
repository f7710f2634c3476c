"""Whether and how to compress a chunk: zstd where it pays, nothing for media.

Photos, videos and audio are already compressed; trying zstd on them costs CPU for nothing.
Other files are compressed, and a chunk is stored raw when zstd saves less than 3 %.
A `ZstdCompressor` is not safe to share between threads, so each thread keeps its own.
"""

from __future__ import annotations

import threading
from pathlib import PurePosixPath

import zstandard

LEVEL = 3
MIN_SAVING = 0.03
INCOMPRESSIBLE_SUFFIXES = frozenset(
    {".heic", ".heif", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".mov", ".mp4", ".m4v", ".m4a", ".aac", ".mp3",
     ".amr", ".caf", ".zip", ".gz", ".bz2", ".xz", ".zst", ".7z", ".ipa", ".pkpass", ".pdf", ".jxl", ".avif",
     ".dng", ".3gp"}
)


def likely_compressible(relative_path: str) -> bool:
    return PurePosixPath(relative_path).suffix.lower() not in INCOMPRESSIBLE_SUFFIXES


_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


def compress(chunk: bytes) -> tuple[bytes, bool]:
    """Return (payload, compressed); the payload is the chunk itself when zstd does not pay."""
    packed = _compressor().compress(chunk)
    if len(packed) <= len(chunk) * (1 - MIN_SAVING):
        return packed, True
    return chunk, False


def decompress(payload: bytes, raw_length: int) -> bytes:
    return _decompressor().decompress(payload, max_output_size=raw_length)
