"""Whether and how to compress a chunk: zstd where it pays, nothing for media.

Photos, videos and audio are already compressed; trying zstd on them costs CPU for nothing.
Other files are compressed, and a chunk is stored raw when zstd saves less than 3 %.
The work is libzstd's, through the native extension with the GIL released. A compressor
(a zstd context and its scratch buffer) is not safe to share between threads, so each thread
keeps its own and reuses it chunk after chunk.
"""

from __future__ import annotations

import threading

from agent._native import ZstdCompressor, ZstdDataError, ZstdDecompressor

# Level 1: a quarter less CPU than level 2 for 2 % more output on the compressible data (docs/design-notes.md).
LEVEL = 1
MIN_SAVING = 0.03
INCOMPRESSIBLE_SUFFIXES = frozenset(
    {".heic", ".heif", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".mov", ".mp4", ".m4v", ".m4a", ".aac", ".mp3",
     ".amr", ".caf", ".zip", ".gz", ".bz2", ".xz", ".zst", ".7z", ".ipa", ".pkpass", ".pdf", ".jxl", ".avif",
     ".dng", ".3gp"}
)


def likely_compressible(relative_path: str) -> bool:
    # PurePosixPath(relative_path).suffix, without building a path object per file.
    name = relative_path.rstrip("/").rpartition("/")[2]
    dot = name.rfind(".")
    suffix = name[dot:] if 0 < dot < len(name) - 1 else ""
    return suffix.lower() not in INCOMPRESSIBLE_SUFFIXES


# A frame that does not decompress, or not to the length the index records.
DecompressionError = ZstdDataError

_local = threading.local()


def _compressor() -> ZstdCompressor:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = ZstdCompressor(LEVEL)
    return compressor


def _decompressor() -> ZstdDecompressor:
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = ZstdDecompressor()
    return decompressor


def compress(chunk: bytes | memoryview) -> tuple[bytes | memoryview, bool]:
    """Return (payload, compressed); the payload is the chunk itself when zstd does not pay, else a view of
    this thread's compressor buffer, good until its next call: release it once used."""
    packed = _compressor().compress_within(chunk, int(len(chunk) * (1 - MIN_SAVING)))
    if packed is None:
        return chunk, False
    return packed, True


def decompress(payload: bytes, raw_length: int) -> bytes:
    """The chunk of a zstd frame that must hold exactly `raw_length` bytes; DecompressionError otherwise."""
    return _decompressor().decompress(payload, raw_length)
