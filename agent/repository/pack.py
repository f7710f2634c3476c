"""Pack files: many encrypted blobs of one category in one object.

Layout of `data/<tag>/<blake3>` (format version 2), every byte of it indistinguishable from random:

    pack key sealed to the category's public key (80 bytes: ephemeral X25519 key, key, tag; AD = the tag)
    blob 0 | blob 1 | …   AES-256-GCM(pack key, nonce = offset, 1 flag byte + data, AD = "blob" + chunk ID)
    trailer               AES-256-GCM(pack key, nonce = all-ones, compressed list of blobs, AD = "trailer")
    random padding        so the object's size is a Padmé size class, at least 512 bytes
    footer                AES-256-GCM(pack key, nonce = all-ones but the last byte 0xfe, u32 trailer offset |
                          u32 trailer length, AD = "footer") — sealed, so not even the blob count shows

The pack key is random per pack and never used elsewhere, and blob offsets within a pack are distinct
(all above 80 and below 2^32), so nonces cannot repeat.
A put-only writer knows the key of the packs it writes and nothing else. The trailer lets a
reader with the category key rebuild the index from the packs alone.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

import zstandard
from blake3 import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent import _native as native
from agent.errors import RepositoryDamagedError
from agent.keys import padding as padding_module
from agent.keys import primitives
from agent.repository.pack_memory import PackMemory

FOOTER = struct.Struct("<II")
TRAILER_ENTRY = struct.Struct("<32sIII")  # chunk id, offset, length, raw length
TRAILER_NONCE = b"\xff" * 12
FOOTER_NONCE = b"\xff" * 11 + b"\xfe"
SEALED_KEY_SIZE = primitives.PUBLIC_KEY_SIZE + primitives.KEY_SIZE + primitives.TAG_SIZE
FOOTER_SIZE = FOOTER.size + primitives.TAG_SIZE
HEADER_READ_SIZE = SEALED_KEY_SIZE
FLAG_RAW = 0
FLAG_ZSTD = 1


def _blob_nonce(counter: int) -> bytes:
    return counter.to_bytes(12, "big")


def _blob_ad(chunk_id: bytes) -> bytes:
    return b"blob" + chunk_id


@dataclass(frozen=True)
class PackedBlob:
    chunk_id: bytes
    offset: int
    length: int  # stored (encrypted) length
    raw_length: int  # plaintext length


class PackBuilder:
    """Accumulates encrypted blobs of one category until the pack is full.

    Placing a blob (`reserve`, quick: it fixes the blob's offset, hence its nonce) is separate from encrypting
    it (`fill`, per byte), so that many threads encrypt blobs of one pack at once outside any shared lock. The
    blob's sealed length is known before encryption (flag byte + payload + tag). `finish` waits until every
    reserved blob is filled. AES-256-GCM is libcrypto's, through the native extension, sealing each blob
    straight into the pack's memory (`agent.repository.pack_memory`); `release` gives that memory back once
    the pack is stored.
    """

    def __init__(self, category_public_key: bytes, tag: str) -> None:
        self._key = primitives.random_key()
        self._aead = AESGCM(self._key)  # the small trailer and footer
        # The key is sealed to the category in `finish`, on the upload thread: a writer makes packs while it
        # holds the lock every chunk takes, and an X25519 exchange there held up every worker.
        self._category_public_key = category_public_key
        self._memory = PackMemory()
        self._memory.reserve(SEALED_KEY_SIZE)
        self._filled = threading.Condition()
        self._unfilled = 0
        self._fill_failure: BaseException | None = None
        self._parts: list[memoryview] = []
        self.size = SEALED_KEY_SIZE
        self.blobs: list[PackedBlob] = []
        self.tag = tag

    def reserve(self, chunk_id: bytes, payload_length: int, *, raw_length: int) -> PackedBlob:
        """Place a blob of `payload_length` bytes at the end of the pack; `fill` must follow."""
        length = 1 + payload_length + primitives.TAG_SIZE
        blob = PackedBlob(chunk_id=chunk_id, offset=self.size, length=length, raw_length=raw_length)
        self.size += length
        self._memory.reserve(self.size)
        self.blobs.append(blob)
        with self._filled:
            self._unfilled += 1
        return blob

    def fill(self, blob: PackedBlob, payload: bytes | memoryview, *, compressed: bool) -> None:
        """Encrypt a reserved blob (nonce = its offset, unique within the pack) into its place; safe from any
        thread."""
        try:
            flag = FLAG_ZSTD if compressed else FLAG_RAW
            regions = self._memory.regions(blob.offset, blob.length)
            native.gcm_seal_into(self._key, _blob_nonce(blob.offset), _blob_ad(blob.chunk_id), flag, payload, regions)
        except BaseException as exc:
            with self._filled:
                self._fill_failure = exc
            raise
        finally:
            with self._filled:
                self._unfilled -= 1
                self._filled.notify_all()

    def finish(self) -> tuple[str, list[bytes | memoryview]]:
        """Return (pack ID, the pack's bytes in parts); the ID is the BLAKE3 of the bytes
        (`primitives.pack_digest`). The parts are views of the pack's memory, valid until `release`: a local
        folder writes them one after the other, with no copy."""
        with self._filled:
            self._filled.wait_for(lambda: self._unfilled == 0)
            if self._fill_failure is not None:
                raise self._fill_failure
        sealed_key = primitives.seal_to(
            self._category_public_key, self._key, purpose=b"pack key", associated=self.tag.encode()
        )
        assert len(sealed_key) == SEALED_KEY_SIZE
        self._memory.write(0, sealed_key)
        listing = b"".join(TRAILER_ENTRY.pack(b.chunk_id, b.offset, b.length, b.raw_length) for b in self.blobs)
        trailer = self._aead.encrypt(TRAILER_NONCE, zstandard.compress(listing), b"trailer")
        footer = self._aead.encrypt(FOOTER_NONCE, FOOTER.pack(self.size, len(trailer)), b"footer")
        body_length = self.size + len(trailer) + len(footer)
        padding = os.urandom(padding_module.object_size(body_length) - body_length)
        self._parts = self._memory.parts(self.size)
        parts: list[bytes | memoryview] = [*self._parts, trailer, padding, footer]
        digest = blake3(max_threads=1)  # releases the GIL over each part
        for part in parts:
            digest.update(part)
        return digest.hexdigest(), parts

    def release(self) -> None:
        """Give the pack's memory back for the next packs; the parts `finish` returned are no longer valid."""
        for part in self._parts:
            part.release()
        self._parts = []
        self._memory.release()


def open_pack_key(header: bytes, category_private_keys: list[bytes], tag: str, pack_name: str) -> bytes:
    """Recover a pack's key from the first `HEADER_READ_SIZE` bytes of the pack."""
    if len(header) < SEALED_KEY_SIZE:
        raise RepositoryDamagedError(f"pack {pack_name} is truncated (no complete header)")
    try:
        return primitives.open_sealed_any(
            category_private_keys, header[:SEALED_KEY_SIZE], purpose=b"pack key", associated=tag.encode()
        )
    except primitives.DecryptionError as exc:
        raise RepositoryDamagedError(f"pack {pack_name}: its key does not open (damaged or not this category)") from exc


def open_blob(
    pack_key: bytes, offset: int, chunk_id: bytes, sealed: bytes | bytearray, where: str
) -> tuple[bytes | memoryview, bool]:
    """Return (payload, compressed) of the blob stored at `offset`; damage raises RepositoryDamagedError.

    A `bytearray` (what a local folder reads into) is decrypted in place and the payload is a view of it:
    no second buffer of the blob's size to allocate and fault in, which was half the page faults of a
    restore. Other sealed bytes are decrypted into a new object."""
    try:
        if isinstance(sealed, bytearray):
            flag, length = native.gcm_open_in_place(pack_key, _blob_nonce(offset), _blob_ad(chunk_id), sealed, True)
            payload: bytes | memoryview = memoryview(sealed)[1 : 1 + length]
        else:
            flag, payload = native.gcm_open(pack_key, _blob_nonce(offset), _blob_ad(chunk_id), sealed, True)
    except native.AuthenticationError as exc:
        raise RepositoryDamagedError(f"{where}: blob {chunk_id.hex()[:16]} fails authentication") from exc
    return payload, flag == FLAG_ZSTD


def read_footer(footer: bytes, pack_key: bytes, pack_name: str, pack_size: int) -> tuple[int, int]:
    """(offset, length) of the trailer, from the pack's last `FOOTER_SIZE` bytes."""
    try:
        offset, length = FOOTER.unpack(AESGCM(pack_key).decrypt(FOOTER_NONCE, footer[-FOOTER_SIZE:], b"footer"))
    except (InvalidTag, struct.error) as exc:
        raise RepositoryDamagedError(f"pack {pack_name} is truncated or its footer is damaged") from exc
    if offset < SEALED_KEY_SIZE or offset + length > pack_size - FOOTER_SIZE:
        raise RepositoryDamagedError(f"pack {pack_name} is truncated (its trailer lies outside it)")
    return offset, length


def read_trailer(data: bytes, pack_key: bytes, pack_name: str) -> list[PackedBlob]:
    """List the blobs of a whole pack from its encrypted trailer."""
    return read_trailer_ranged(lambda offset, length: data[offset : offset + length], len(data), pack_key, pack_name)


def read_trailer_ranged(
    get_range: Callable[[int, int], bytes], size: int, pack_key: bytes, pack_name: str
) -> list[PackedBlob]:
    """List the blobs of a pack of `size` bytes from two ranged reads (footer, then trailer).

    A truncated pack or a damaged trailer raises RepositoryDamagedError: the trailer is what
    the index can always be rebuilt from, so its entries are checked to lie inside the pack."""
    if size < SEALED_KEY_SIZE + FOOTER_SIZE:
        raise RepositoryDamagedError(f"pack {pack_name} is truncated")
    footer = get_range(size - FOOTER_SIZE, FOOTER_SIZE)
    if len(footer) != FOOTER_SIZE:
        raise RepositoryDamagedError(f"pack {pack_name} is truncated")
    offset, length = read_footer(footer, pack_key, pack_name, size)
    sealed = get_range(offset, length)
    try:
        listing = zstandard.decompress(AESGCM(pack_key).decrypt(TRAILER_NONCE, sealed, b"trailer"))
    except (InvalidTag, zstandard.ZstdError) as exc:
        raise RepositoryDamagedError(f"pack {pack_name}: its trailer fails authentication") from exc
    if len(listing) % TRAILER_ENTRY.size:
        raise RepositoryDamagedError(f"pack {pack_name}: its trailer is malformed")
    blobs = [PackedBlob(*TRAILER_ENTRY.unpack_from(listing, i)) for i in range(0, len(listing), TRAILER_ENTRY.size)]
    if any(blob.offset < SEALED_KEY_SIZE or blob.offset + blob.length > offset for blob in blobs):
        raise RepositoryDamagedError(f"pack {pack_name}: its trailer lists a blob outside the pack")
    return blobs
