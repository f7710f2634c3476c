"""Incompressible media bytes generated on demand instead of stored.

A streamed file is `header ‖ MARKER ‖ key ‖ AES-256-CTR keystream(key)`, cut to the
file's size. The header makes the file look like what its name says (JPEG SOI, an
ISO-BMFF `ftyp` box, `#!AMR`, ...); the keystream is AES run as a fast seeded PRNG
(hundreds of MB/s), so a several-GB device never stores its photos and videos.

Carrying the key inside the bytes lets a restore recognise a streamed file in the data
it receives and keep only the key (`recognise_stream`), after checking every byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.sim.content.entries import StreamContent

MARKER = b"CofferSm"
KEY_SIZE = 32
MAX_HEADER_SIZE = 64
# How many leading bytes `recognise_stream` needs to see.
RECOGNITION_PREFIX = MAX_HEADER_SIZE + len(MARKER) + KEY_SIZE

_ZEROS = memoryview(bytes(1 << 20))

# Leading bytes per file extension (lower case); anything else gets no header.
_HEADERS: dict[str, bytes] = {
    "jpg": b"\xff\xd8\xff\xe1\x00\x22Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08",
    "jpeg": b"\xff\xd8\xff\xe1\x00\x22Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08",
    "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
    "mov": b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ",
    "mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "m4a": b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom\x00\x00\x00\x00",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "amr": b"#!AMR\n",
    "webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
    "tiff": b"MM\x00\x2a\x00\x00\x00\x08",
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00",
}


def header_for(relative_path: str) -> bytes:
    """The format header a file of this name starts with."""
    extension = relative_path.rsplit(".", 1)[-1].lower() if "." in relative_path else ""
    return _HEADERS.get(extension, b"")


def derive_stream(*parts: str | int, header: bytes) -> StreamContent:
    """A stream keyed by a hash of `parts` (seed, domain, path, version, ...)."""
    material = "\x00".join(str(part) for part in parts).encode()
    key = hashlib.sha256(b"coffer-sim-stream\x00" + material).digest()
    return StreamContent(key=key, header=header)


def stream_pieces(source: StreamContent, size: int, piece_size: int) -> Iterator[bytes]:
    """Yield the first `size` bytes of the stream in pieces of at most `piece_size` bytes."""
    generator = _StreamGenerator(source)
    remaining = size
    while remaining > 0:
        piece = generator.next_bytes(min(piece_size, remaining))
        remaining -= len(piece)
        yield piece


def recognise_stream(prefix: bytes) -> StreamContent | None:
    """The stream whose bytes would start with `prefix`, if its marker is there.

    Only the marker is checked: the caller compares the rest (`StreamComparer`).
    """
    marker_at = prefix.find(MARKER, 0, MAX_HEADER_SIZE + len(MARKER))
    key_at = marker_at + len(MARKER)
    if marker_at < 0 or len(prefix) < key_at + KEY_SIZE:
        return None
    return StreamContent(key=bytes(prefix[key_at : key_at + KEY_SIZE]), header=bytes(prefix[:marker_at]))


class StreamComparer:
    """Checks piece by piece that incoming bytes are exactly a stream's bytes."""

    def __init__(self, source: StreamContent) -> None:
        self._generator = _StreamGenerator(source)
        self.matched = 0  # bytes confirmed so far

    def matches(self, piece: bytes) -> bool:
        expected = self._generator.next_bytes(len(piece))
        if expected != piece:
            return False
        self.matched += len(piece)
        return True


class _StreamGenerator:
    """Sequential reader of the (unbounded) byte sequence of one stream."""

    def __init__(self, source: StreamContent) -> None:
        self._prefix = source.header + MARKER + source.key
        self._position = 0
        self._keystream = Cipher(algorithms.AES(source.key), modes.CTR(bytes(16))).encryptor()

    def next_bytes(self, count: int) -> bytes:
        parts: list[bytes] = []
        if self._position < len(self._prefix):
            head = self._prefix[self._position : self._position + count]
            parts.append(head)
            count -= len(head)
            self._position += len(head)
        while count > 0:
            step = min(count, len(_ZEROS))
            parts.append(self._keystream.update(_ZEROS[:step]))
            count -= step
            self._position += step
        return parts[0] if len(parts) == 1 else b"".join(parts)
