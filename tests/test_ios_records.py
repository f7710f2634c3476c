"""`PackedRecords`, the compressed form a backup folder keeps its rows in: what goes in comes out, in order."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ios.records import FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK, FileRecord, PackedRecords

_NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"), min_size=1, max_size=12)


@st.composite
def records(draw: st.DrawFn) -> FileRecord:
    flags = draw(st.sampled_from([FLAG_FILE, FLAG_DIRECTORY, FLAG_SYMLINK]))
    path = "/".join(draw(st.lists(_NAMES, min_size=1, max_size=3)))
    extra: dict[str, object] = {"target": draw(_NAMES)} if flags == FLAG_SYMLINK else {}
    if flags == FLAG_FILE:
        extra["size"] = draw(st.integers(0, 2**63 - 1))
        extra["wrapped_key"] = draw(st.none() | st.binary(min_size=44, max_size=44))
    return FileRecord.create(
        draw(st.sampled_from(["HomeDomain", "CameraRollDomain", "AppDomain-é.app"])),
        path,
        flags,
        mtime=draw(st.integers(0, 2**40)),
        inode=draw(st.integers(0, 2**64 - 1)),
        **extra,
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(records(), max_size=40), st.integers(0, 600))
def test_every_record_comes_back_in_order(sample: list[FileRecord], repeat: int) -> None:
    """Across batch edges (256 rows a batch): iteration, indexing, equality and draining all give the rows back."""
    rows = (sample * (repeat // max(1, len(sample)) + 1))[:repeat] if sample else []
    packed = PackedRecords()
    for record in rows:
        packed.append(record)
    assert len(packed) == len(rows)
    assert list(packed) == rows and packed == rows
    for index in {0, 255, 256, 257, len(rows) - 1, -1} & set(range(-len(rows), len(rows))):
        assert packed[index] == rows[index]
    assert packed[250:260] == rows[250:260]
    assert list(packed.drain()) == rows
    assert len(packed) == 0


def test_an_index_past_the_end_is_an_index_error() -> None:
    packed = PackedRecords()
    packed.append(FileRecord.create("HomeDomain", "a", FLAG_FILE, size=1))
    with pytest.raises(IndexError):
        packed[1]
    with pytest.raises(IndexError):
        packed[-2]


def test_a_row_costs_a_fraction_of_its_record() -> None:
    """The point of the class: 20,000 MBFile-bearing rows held in well under 100 bytes each."""
    made = [
        FileRecord.create("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{n:05}.HEIC", FLAG_FILE, size=n * 977,
                          mtime=1_700_000_000 + n, inode=100_000 + n, protection_class=3)
        for n in range(20_000)
    ]
    tracemalloc.start()
    try:
        packed = PackedRecords()
        for record in made:
            packed.append(record)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 20_000 * 100
    assert packed[12_345] == made[12_345]


def test_a_row_comes_back_without_parsing_its_mbfile_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading rows back is on every import's path twice: the decoded fields travel with the row. A row whose
    integers do not fit 64 bits (a plist integer may be 128) is parsed again, and comes back the same."""
    usual = FileRecord.create("HomeDomain", "Library/a.plist", FLAG_FILE, size=12, mtime=-5, inode=7,
                              wrapped_key=bytes(range(44)), protection_class=3)
    link = FileRecord.create("HomeDomain", "Library/link", FLAG_SYMLINK, target="Library/a.plist")
    huge = FileRecord.create("HomeDomain", "Library/b", FLAG_FILE, size=1, inode=2**64 - 1)
    packed = PackedRecords()
    for record in (usual, link, huge):
        packed.append(record)
    parsed: list[bytes] = []
    real_from_row = FileRecord.from_row.__func__  # type: ignore[attr-defined]

    def counting(cls: type[FileRecord], file_id: str, domain: str, path: str, flags: int, blob: bytes) -> FileRecord:
        parsed.append(blob)
        return real_from_row(cls, file_id, domain, path, flags, blob)

    monkeypatch.setattr(FileRecord, "from_row", classmethod(counting))
    assert list(packed.drain()) == [usual, link, huge]
    assert parsed == [huge.blob]
