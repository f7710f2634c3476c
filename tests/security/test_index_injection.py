"""Attack: a station key makes every restore fail by adding one index object (issue 12, point 3).

The attacker holds only a put-only station key file (`coffer key add --put-only`) and write access to the
storage, as a stolen or hostile backup station does. With Coffer's own code and that key it reads the index
and adds one index object, ground until its name sorts before every other, that remaps every chunk to the
place of another blob in the existing packs. Nothing is deleted, so Object Lock would not help. The index
used to keep the first location seen for a chunk, so every restore failed authentication while `check
--read-data` passed. Fixed: the index keeps every candidate location and readers fall back to the next, so
the owner's exports stay byte-identical; plain `check` and `check --read-data` exit 4 naming the added object,
`prune` ignores it, and `coffer repair index` removes it.

These tests fail on the code of commit da2648b (checked: there the export of every snapshot exited 4 with
"blob … fails authentication" and `check --read-data` exited 0).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import CofferCli, sample_library, tree_digest
from ios_helpers import build_backup

from agent.keys.slots import KeyFile
from agent.repository.index import INDEX_PREFIX, PackRecord, encode_index
from agent.repository.repository import Repository
from agent.storage.url import open_storage

UDID = "00008030-001A2B3C4D5E6F70"


def forge_index_object(repository_url: str, station_key: Path) -> str:
    """The attack, with the station's means only: its key file and the storage. Returns the object's name."""
    storage = open_storage(repository_url)
    try:
        station = Repository.open(storage, KeyFile(station_key))
        index = station.load_index()
        by_space: dict[str, list[tuple[str, tuple[bytes, int, int, int]]]] = defaultdict(list)
        for record in index.packs():
            by_space[record.space].extend((record.pack_id, blob) for blob in record.blobs)
        forged: dict[str, PackRecord] = {}
        for space, blobs in by_space.items():
            for (pack_id, (_, offset, length, raw)), (_, (next_chunk, *_)) in zip(blobs, blobs[1:] + blobs[:1], strict=True):
                record = forged.setdefault(pack_id, PackRecord(pack_id, space))
                record.blobs.append((next_chunk, offset, length, raw))  # a chunk, at another blob's place
        first = min(info.name for info in storage.list(INDEX_PREFIX))
        assert station.keys.index_key is not None
        for _ in range(100_000):  # sealing is randomised: grind until the name sorts first
            data = encode_index(forged.values(), station.keys.index_key)
            name = INDEX_PREFIX + hashlib.sha256(data).hexdigest()
            if name < first:
                storage.put(name, data)
                return name
        raise AssertionError("no name sorted first")
    finally:
        storage.close()


def run_attack(cli: CofferCli, tmp_path: Path) -> None:
    cli.inline("init")
    backups = [build_backup(tmp_path / f"b{seed}" / UDID, sample_library(seed)) for seed in (1, 2)]
    ids = [cli.inline("--json", "import", backup.path).json()["id"] for backup in backups]
    before = {}
    for snapshot_id in ids:
        cli.inline("export", snapshot_id, tmp_path / f"before-{snapshot_id[:8]}")
        before[snapshot_id] = tree_digest(tmp_path / f"before-{snapshot_id[:8]}")
    station_key = tmp_path / "station.key"
    cli.inline("key", "add", "--put-only", "--output", station_key)

    added = forge_index_object(cli.env["COFFER_REPOSITORY"], station_key)

    for snapshot_id in ids:
        target = tmp_path / f"after-{snapshot_id[:8]}"
        cli("export", snapshot_id, target)
        assert tree_digest(target) == before[snapshot_id], "restores give the right bytes"
    for args in (("check", "--read-data"), ("check",)):
        run = cli(*args, expect=4)
        assert added in run.stderr and "conflicting index record" in run.stderr, run.stderr
        assert len(run.stderr.splitlines()) == 1
    # Prune decides only on entries the packs' trailers confirm: the added object cannot make it reclaim data.
    prune = cli.inline("--json", "prune", "--grace", "0").json()
    assert any("does not confirm" in note for note in prune["notes"]), prune
    cli.inline("prune", "--grace", "0")
    for snapshot_id in ids:
        target = tmp_path / f"pruned-{snapshot_id[:8]}"
        cli.inline("export", snapshot_id, target)
        assert tree_digest(target) == before[snapshot_id]
    cli("repair", "index")
    cli("check", "--read-data")


def test_an_added_index_object_denies_no_restore_local(coffer: CofferCli, tmp_path: Path) -> None:
    run_attack(coffer, tmp_path)


@pytest.mark.usefixtures("s3")
def test_an_added_index_object_denies_no_restore_s3(s3_coffer: CofferCli, tmp_path: Path) -> None:
    run_attack(s3_coffer, tmp_path)
