"""The local cache of index and snapshot objects in front of a real S3 server: listing snapshots, loading the
index and running a backup fetch each of those objects from the bucket once, ever; a damaged cached copy is
fetched again; a snapshot `forget` removed leaves the cache. Fetches are counted by a real S3 backend."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from conftest import TEST_PASSPHRASE, CofferCli, sample_library
from ios_helpers import DEVICE, build_backup

from agent.archive.importer import import_folder
from agent.keys.slots import Passphrase
from agent.repository.repository import Repository
from agent.storage.cache import CachedStorage
from agent.storage.s3 import S3Storage


class CountingS3Storage(S3Storage):
    """A real S3 backend that counts the whole objects it fetches, by top-level folder."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetched: Counter[str] = Counter()

    def get(self, name: str) -> bytes:
        self.fetched[name.split("/")[0]] += 1
        return super().get(name)


def open_counted(cli: CofferCli, cache: Path) -> tuple[Repository, Counter[str]]:
    """The repository through the cache in `cache`, and the live count of what it fetches from the bucket."""
    counting = CountingS3Storage.from_url(cli.env["COFFER_REPOSITORY"])
    return Repository.open(CachedStorage(counting, cache), Passphrase(TEST_PASSPHRASE)), counting.fetched


def test_index_and_snapshots_are_fetched_once(s3_coffer: CofferCli, tmp_path: Path) -> None:
    s3_coffer.inline("init")
    for seed in (1, 2):
        s3_coffer.inline(
            "import", build_backup(tmp_path / f"b{seed}" / DEVICE.udid, sample_library(seed)).path
        )
    cache = tmp_path / "cache"

    cold, fetches = open_counted(s3_coffer, cache)
    assert len(cold.snapshots()) == 2 and len(cold.load_index()) > 0
    index_objects = fetches["index"]
    assert fetches["snapshots"] == 2 and index_objects >= 2

    warm, fetches = open_counted(s3_coffer, cache)
    assert len(warm.snapshots()) == 2 and len(warm.load_index()) > 0
    newer = build_backup(tmp_path / "b3" / DEVICE.udid, sample_library(3))
    new_id = import_folder(warm, newer.path, backup_password=None, progress=False).commit.snapshot_id
    assert fetches["snapshots"] == fetches["index"] == 0, "a warm cache serves them all, a backup included"

    after, fetches = open_counted(s3_coffer, cache)
    assert [e.snapshot_id for e in after.snapshots()][-1] == new_id
    after.load_index()
    assert fetches["snapshots"] == fetches["index"] == 0, "what a backup writes is cached as it is written"

    damaged = cache / "snapshots" / new_id
    damaged.write_bytes(b"not the snapshot")
    again, fetches = open_counted(s3_coffer, cache)
    assert [e.snapshot_id for e in again.snapshots()][-1] == new_id
    assert fetches["snapshots"] == 1, "a damaged copy is fetched again"
    assert damaged.read_bytes() == again.storage.get(f"snapshots/{new_id}")

    s3_coffer.inline("forget", "--keep-last", "1")
    listing, _ = open_counted(s3_coffer, cache)
    assert listing.snapshot_ids() == [new_id]
    assert sorted(path.name for path in (cache / "snapshots").iterdir()) == [new_id]

    # The command line keeps the same cache, under COFFER_CACHE_DIR.
    cli_cache = Path(s3_coffer.env["COFFER_CACHE_DIR"]) / "objects"
    assert new_id in {path.name for path in cli_cache.rglob("*")}
