"""The in-memory index against a model (issue 14, "Memory"): the compact native table plus the side list of
further candidates must answer exactly as a dictionary of candidate lists would, whatever order packs and
index objects arrive in, duplicates and conflicts included."""

from __future__ import annotations

from agent._native import ChunkTable
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.repository.index import BlobLocation, Index, PackRecord

CHUNKS = [bytes([n]) * 32 for n in range(6)]
SPACES = ["photos", "messages", "manifest"]
PACKS = [f"{n:064x}" for n in range(5)]

blob = st.tuples(st.sampled_from(CHUNKS), st.sampled_from([80, 200, 4000]), st.sampled_from([17, 18]), st.just(1))
record = st.builds(PackRecord, st.sampled_from(PACKS), st.sampled_from(SPACES), st.lists(blob, max_size=5))
arrivals = st.lists(st.tuples(record, st.sampled_from(["", "index/a", "index/b"])), max_size=12)


def model(records: list[tuple[PackRecord, str]]) -> dict[tuple[str, bytes], list[BlobLocation]]:
    """What the index promises: every distinct location of a key, in the order first seen."""
    locations: dict[tuple[str, bytes], list[BlobLocation]] = {}
    for pack, source in records:
        for chunk_id, offset, length, raw in pack.blobs:
            candidates = locations.setdefault((pack.space, chunk_id), [])
            location = BlobLocation(pack.pack_id, pack.space, offset, length, raw, source)
            if location not in candidates:
                candidates.append(location)
    return locations


@settings(max_examples=300, deadline=None)
@given(arrivals)
def test_the_index_answers_as_the_model(records: list[tuple[PackRecord, str]]) -> None:
    index = Index()
    for pack, source in records:
        index.add_pack(pack, source)
    expected = model(records)
    assert len(index) == len(expected)
    for space in [*SPACES, "unknown"]:
        for chunk_id in CHUNKS:
            want = expected.get((space, chunk_id), [])
            got = index.locations(space, chunk_id)
            assert got == want
            assert [location.source for location in got] == [location.source for location in want]
            assert index.lookup(space, chunk_id) == (want[0] if want else None)
            assert ((space, chunk_id) in index) == bool(want)
    def flat(location: BlobLocation) -> tuple[str, str, int, int, int, str]:
        return (location.pack, location.space, location.offset, location.length, location.raw_length, location.source)

    listed = sorted((chunk_id, flat(location)) for chunk_id, location in index.entries())
    assert listed == sorted((key[1], flat(loc)) for key, candidates in expected.items() for loc in candidates)
    # A pack's listing is the union of what every object said of it.
    for pack_id in PACKS:
        if not any(pack.pack_id == pack_id for pack, _ in records):
            assert index.pack(pack_id) is None
            continue
        found = index.pack(pack_id)
        assert found is not None
        assert sorted(found.blobs) == sorted(
            {(key[1], loc.offset, loc.length, loc.raw_length) for key, candidates in expected.items()
             for loc in candidates if loc.pack == pack_id}
        )
    assert {record.pack_id for record in index.packs()} == {pack.pack_id for pack, _ in records}


def test_the_table_grows_and_keeps_every_entry() -> None:
    table = ChunkTable()
    keys = [n.to_bytes(4, "big") * 8 for n in range(50_000)]
    for number, key in enumerate(keys):
        assert table.add(number % 3, key, number, 80, 100, 99, 0) == 1
    assert len(table) == 50_000
    assert all(table.get(number % 3, key) == (number, 80, 100, 99, 0) for number, key in enumerate(keys))
    assert table.get(0, keys[1]) is None  # same ID, other space
    assert table.add(1, keys[1], 1, 80, 100, 99, 7) == 0  # the same location again
    assert table.add(1, keys[1], 2, 80, 100, 99, 0) == -1  # another location: the caller keeps it
    assert table.memory_bytes < 150 * 50_000
    assert sorted(item[2] for item in table.items()) == list(range(50_000))
