"""Snapshot parts streamed row by row (`PartEncoder`) open to exactly the rows given, in order, as a part
made from the whole list does: the builder no longer holds a snapshot's rows, only their compressed JSON."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.keys import primitives
from agent.repository.snapshot import (
    ChainRecord,
    FileRow,
    PartEncoder,
    SealedSnapshot,
    SnapshotHeader,
    encode_item,
    open_part,
    seal_snapshot,
)

INDEX_KEY = primitives.random_key()
HEADER_PRIVATE, HEADER_PUBLIC = primitives.generate_keypair()
PART_PRIVATE, PART_PUBLIC = primitives.generate_keypair()
HEADER = SnapshotHeader(
    time=1.0, device={"udid": "u"}, source="import", host="h", info_plist=b"", status_plist=b"",
    manifest_plist=b"", is_encrypted=False, categories={},
)

rows = st.lists(
    st.builds(
        FileRow,
        file_id=st.text("0123456789abcdef", min_size=40, max_size=40),
        domain=st.text(max_size=30),
        relative_path=st.text(max_size=80),
        flags=st.sampled_from([1, 2, 4]),
        mbfile=st.binary(max_size=300),
        size=st.integers(0, 1 << 40),
        chunks=st.lists(st.binary(min_size=32, max_size=32), max_size=5),
    ),
    max_size=40,
)


def sealed_and_opened(content: object) -> object:
    data = seal_snapshot(
        index_key=INDEX_KEY,
        chain=ChainRecord(device_tag="d", previous=None, time=1.0),
        header_public=HEADER_PUBLIC,
        header=HEADER,
        parts={"t": (PART_PUBLIC, content)},
        stats_keys={},
    )
    sealed = SealedSnapshot.parse(primitives.sha256(data).hex(), data, [INDEX_KEY])
    return open_part(sealed, "t", [PART_PRIVATE])


class SmallBlocks(PartEncoder):
    _BLOCK = 100  # a frame every row or two, so items straddle frames


@settings(max_examples=60, deadline=None)
@given(rows, st.sampled_from([PartEncoder, SmallBlocks]))
def test_a_streamed_part_opens_to_its_rows_in_order(items: list[FileRow], kind: type[PartEncoder]) -> None:
    encoder = kind()
    for row in items:
        encoder.add(encode_item(row.to_json()))
    streamed = sealed_and_opened(encoder.finish())
    whole = sealed_and_opened([row.to_json() for row in items])  # a part made whole, with its content size
    assert streamed == whole
    assert [FileRow.from_json(item) for item in streamed] == items  # type: ignore[union-attr, arg-type]


def test_a_part_of_many_rows_is_many_frames_and_opens_whole() -> None:
    items = [FileRow(f"{i:040x}", "HomeDomain", f"Library/{i}.plist", 1, b"bplist00" * 60, i, [bytes(32)])
             for i in range(3000)]  # about 2 MB of JSON: several blocks of the real size
    encoder = PartEncoder()
    for row in items:
        encoder.add(encode_item(row.to_json()))
    part = encoder.finish()
    assert part.data.count(b"\x28\xb5\x2f\xfd") >= 4  # zstd frame magic: one frame per block
    assert [FileRow.from_json(item) for item in sealed_and_opened(part)] == items  # type: ignore[union-attr, arg-type]
