"""Packs assembled in reused segments: the bytes are the format's, the memory comes back whatever happens,
and what the pool keeps is bounded."""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import pytest
from blake3 import blake3
from conftest import CofferCli
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import CofferError
from agent.pipeline.writer import BlobWriter
from agent.repository import pack_memory
from agent.repository.pack import PackBuilder, open_blob, open_pack_key, read_trailer
from agent.repository.pack_memory import SEGMENT_SIZE, PackMemory, SegmentPool
from agent.storage import direct_io
from agent.storage.local import LocalStorage

MIB = 1 << 20


@settings(max_examples=40, deadline=None)
@given(writes=st.lists(st.binary(min_size=1, max_size=3 * MIB // 2), min_size=1, max_size=5))
def test_bytes_written_at_any_offset_read_back_across_segments(writes: list[bytes]) -> None:
    memory = PackMemory(SegmentPool())
    offset = 0
    for data in writes:
        memory.reserve(offset + len(data))
        memory.write(offset, data)
        offset += len(data)
    parts = memory.parts(offset)
    assert b"".join(parts) == b"".join(writes)
    assert all(len(part) == SEGMENT_SIZE for part in parts[:-1])
    for part in parts:
        part.release()
    memory.release()


def test_the_pool_keeps_only_so_many_free_segments_and_counts_what_is_out() -> None:
    pool = SegmentPool(keep_free=3)
    memories = [PackMemory(pool) for _ in range(4)]
    for memory in memories:
        memory.reserve(2 * SEGMENT_SIZE + 1)  # three segments each
    assert pool.outstanding == 12
    for memory in memories:
        memory.release()
    assert pool.outstanding == 0
    assert pool.free_segments == 3


def test_a_pack_built_in_segments_opens_with_its_key(coffer: CofferCli) -> None:
    """Blobs of every size around the segment size, sealed in place: each opens at its offset, the trailer
    lists them, and the stored object is the parts' bytes."""
    coffer.init()
    repository = coffer.open()
    space = repository.config.categories[0]
    pack = PackBuilder(repository.keys.public_keys[space], repository.tag(space))
    rng = random.Random(11)
    payloads = [rng.randbytes(size) for size in (1, SEGMENT_SIZE - 200, SEGMENT_SIZE, 3 * SEGMENT_SIZE + 5, 17)]
    blobs = [pack.reserve(os.urandom(32), len(p), raw_length=len(p)) for p in payloads]
    for blob, payload in reversed(list(zip(blobs, payloads, strict=True))):  # any order, as worker threads fill them
        pack.fill(blob, payload, compressed=False)
    pack_id, parts = pack.finish()
    data = b"".join(parts)
    pack.release()
    key = open_pack_key(data, repository.keys.private_keys_for(space), repository.tag(space), "pack")
    assert [b.offset for b in read_trailer(data, key, "pack")] == [b.offset for b in blobs]
    for blob, payload in zip(blobs, payloads, strict=True):
        sealed = data[blob.offset : blob.offset + blob.length]
        assert open_blob(key, blob.offset, blob.chunk_id, sealed, "pack") == (payload, False)
    assert pack_id == blake3(data).hexdigest()  # the pack's name is still the BLAKE3 of its bytes


class FailingStorage(LocalStorage):
    def put_parts(self, name: str, parts: object, *, tags: dict[str, str] | None = None) -> None:
        raise OSError("the disk went away")


@pytest.mark.parametrize("upload", ["succeeds", "fails"])
def test_no_pack_memory_outlives_a_backup(coffer: CofferCli, upload: str) -> None:
    """Every segment a backup took is back in the pool after `flush`, whether the uploads worked or not, so
    memory stays flat from one backup (or fleet device) to the next."""
    coffer.init()
    repository = coffer.open()
    if upload == "fails":
        repository.storage = FailingStorage(coffer.repo)
    before = pack_memory.POOL.outstanding
    writer = BlobWriter(repository, repository.load_index())
    rng = random.Random(5)
    spaces = repository.config.categories[:4]
    with pytest.raises(CofferError) if upload == "fails" else contextlib.nullcontext():
        for _ in range(120):
            writer.store_chunk(rng.choice(spaces), rng.randbytes(rng.randint(1, 600_000)), compress=False)
        writer.flush()
    assert pack_memory.POOL.outstanding == before
    assert pack_memory.POOL.free_segments <= pack_memory.KEEP_FREE
    if upload == "succeeds":
        assert writer.stats.packs_uploaded >= 2
        coffer("check", "--read-data")


def test_segments_are_written_past_the_page_cache_without_a_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Page-aligned parts (a pack's segments) go to the file from where they are; only the tail is copied."""
    copied = []
    real_copy = direct_io.copy_into

    def counting(target: object, offset: int, source: memoryview) -> None:
        copied.append(len(source))
        real_copy(target, offset, source)

    monkeypatch.setattr(direct_io, "copy_into", counting)
    memory = PackMemory(SegmentPool())
    data = random.Random(2).randbytes(3 * SEGMENT_SIZE + 5000)
    memory.reserve(len(data))
    memory.write(0, data)
    parts = [*memory.parts(len(data)), b"trailer", b"footer"]
    path = tmp_path / "pack"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        direct_io.write_parts(fd, parts)
    finally:
        os.close(fd)
    assert path.read_bytes() == data + b"trailer" + b"footer"
    if direct_io._O_DIRECT:
        assert sum(copied) == 5000 % 4096 + len(b"trailer") + len(b"footer")
    for part in parts[:-2]:
        assert isinstance(part, memoryview)
        part.release()
    memory.release()
