"""Large writes past the page cache: the bytes on disk are the parts, whatever the sizes and the file system says."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.storage import direct_io
from agent.storage.local import LocalStorage

MIB = 1 << 20
# Sizes around what matters: the direct-write threshold, the buffer size, block boundaries.
EDGES = [0, 1, 511, 512, 4095, 4096, 4097, MIB - 1, MIB, MIB + 1, direct_io.BUFFER_SIZE - 1, direct_io.BUFFER_SIZE,
         direct_io.BUFFER_SIZE + 1, 2 * direct_io.BUFFER_SIZE + 123]


def write_file(path: Path, parts: list[bytes]) -> bytes:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        direct_io.write_parts(fd, parts)
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0), "O_DIRECT left on"
    finally:
        os.close(fd)
    return path.read_bytes()


def split(data: bytes, rng: random.Random) -> list[bytes]:
    parts, at = [], 0
    while at < len(data):
        size = rng.choice([1, 17, 4096, 100_000, MIB, 3 * MIB])
        parts.append(data[at : at + size])
        at += size
    return parts


@pytest.mark.parametrize("size", EDGES)
def test_the_file_holds_exactly_the_parts(tmp_path: Path, size: int) -> None:
    rng = random.Random(size)
    data = rng.randbytes(size)
    assert write_file(tmp_path / "object", split(data, rng)) == data


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 3 * MIB), max_size=6), seed=st.integers(0, 1000))
def test_any_parts_in_any_sizes(tmp_path_factory: pytest.TempPathFactory, sizes: list[int], seed: int) -> None:
    rng = random.Random(seed)
    parts = [rng.randbytes(size) for size in sizes]
    path = tmp_path_factory.mktemp("direct") / "object"
    assert write_file(path, parts) == b"".join(parts)


def test_a_file_system_refusing_direct_io_gets_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tmpfs before Linux 6.6 and some FUSE file systems refuse O_DIRECT: the page cache takes over."""
    real_fcntl = fcntl.fcntl

    def refusing(fd: int, command: int, argument: int = 0) -> int:
        if command == fcntl.F_SETFL and argument & direct_io._O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, command, argument)

    monkeypatch.setattr(direct_io.fcntl, "fcntl", refusing)
    data = random.Random(5).randbytes(6 * MIB + 7)
    assert write_file(tmp_path / "object", [data]) == data


@pytest.mark.parametrize("when", ["first", "tail"])
def test_a_short_or_refused_direct_write_finishes_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A direct write that comes back short, or is refused for its alignment, part-way through the file."""
    real_write = os.write
    calls = {"n": 0}

    def flaky(fd: int, data: memoryview) -> int:
        calls["n"] += 1
        direct = fcntl.fcntl(fd, fcntl.F_GETFL) & direct_io._O_DIRECT
        if direct and when == "first" and calls["n"] == 1:
            return real_write(fd, data[:4096])  # short
        if direct and when == "tail" and len(data) < direct_io.BUFFER_SIZE:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(direct_io.os, "write", flaky)
    data = random.Random(9).randbytes(direct_io.BUFFER_SIZE + 5000)
    assert write_file(tmp_path / "object", [data]) == data


@pytest.mark.parametrize("aligned", [False, True])
def test_other_write_errors_are_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aligned: bool) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    # Both calls fail: whether a part goes by write or writev depends on where it happens to lie in memory.
    monkeypatch.setattr(direct_io.os, "write", full)
    monkeypatch.setattr(direct_io.os, "writev", full)
    parts = aligned_parts(random.Random(1), [2 * MIB]) if aligned else [bytes(2 * MIB)]
    with pytest.raises(OSError) as raised:
        write_file(tmp_path / "object", parts)
    assert raised.value.errno == errno.ENOSPC


def test_a_local_repository_writes_large_objects_whole(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "repo")
    rng = random.Random(3)
    parts = [rng.randbytes(size) for size in (80, 3 * MIB + 11, 1_000_001, 512)]
    storage.put_parts("data/x/pack", parts)
    assert storage.get("data/x/pack") == b"".join(parts)
    assert storage.get_range("data/x/pack", 80, 100) == parts[1][:100]
    writable = storage.get_range_writable("data/x/pack", 80, 100)  # what a blob is decrypted in place in
    assert isinstance(writable, bytearray) and writable == parts[1][:100]
    whole = b"".join(parts)
    assert storage.get_range_writable("data/x/pack", len(whole) - 5, 100) == whole[-5:]  # short only at the end
    assert [p.name for p in (tmp_path / "repo" / "data" / "x").iterdir()] == ["pack"]  # no temporary left


def resident_bytes(path: Path) -> int:
    """How much of a file the page cache holds, from util-linux's fincore (mincore(2))."""
    result = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                            capture_output=True, text=True, check=True)
    return int(result.stdout.strip())


@pytest.mark.skipif(shutil.which("fincore") is None or not direct_io._O_DIRECT, reason="needs fincore and O_DIRECT")
def test_a_pack_does_not_stay_in_the_page_cache(tmp_path: Path) -> None:
    """The point of it all: 8 MiB of pack leave at most the last block in the cache (a buffered write leaves all)."""
    storage = LocalStorage(tmp_path / "repo")
    data = random.Random(4).randbytes(8 * MIB + 100)
    storage.put_parts("data/x/direct", [data])
    buffered = tmp_path / "buffered"
    buffered.write_bytes(data)
    assert resident_bytes(buffered) >= 8 * MIB
    assert resident_bytes(tmp_path / "repo" / "data" / "x" / "direct") <= 2 * direct_io.ALIGNMENT


def aligned_parts(rng: random.Random, sizes: list[int]) -> list[memoryview]:
    """Parts that lie page-aligned in memory, as a pack's segments do (anonymous mappings)."""
    parts = []
    for size in sizes:
        mapping = mmap.mmap(-1, size)
        mapping.write(rng.randbytes(size))
        parts.append(memoryview(mapping))
    return parts


def test_whole_aligned_segments_go_out_in_one_writev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack's full segments: one request for all of them; the partial last one and the small parts after it
    take the buffered direct path."""
    vectors: list[int] = []
    real_writev = os.writev

    def counting(fd: int, buffers: list[memoryview]) -> int:
        vectors.append(len(buffers))
        return real_writev(fd, buffers)

    monkeypatch.setattr(direct_io.os, "writev", counting)
    rng = random.Random(11)
    parts: list[bytes | memoryview] = [*aligned_parts(rng, [MIB] * 6 + [5 * 4096]), rng.randbytes(3000), b"footer"]
    expected = b"".join(bytes(part) for part in parts)
    assert write_file(tmp_path / "pack", parts) == expected
    if direct_io._O_DIRECT:
        assert vectors == [7]


@pytest.mark.parametrize("outcome", ["short", "refused"])
def test_a_short_or_refused_writev_finishes_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    real_writev = os.writev

    def failing(fd: int, buffers: list[memoryview]) -> int:
        if outcome == "refused":
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_writev(fd, buffers[:1])  # short: only the first block went

    monkeypatch.setattr(direct_io.os, "writev", failing)
    rng = random.Random(12)
    parts: list[bytes | memoryview] = [*aligned_parts(rng, [MIB] * 4), rng.randbytes(MIB + 17), *aligned_parts(rng, [MIB] * 2)]
    assert write_file(tmp_path / "pack", parts) == b"".join(bytes(part) for part in parts)
