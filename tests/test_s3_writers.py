"""Many writers, one S3 repository, no locks: concurrent backups in separate processes, duplicate uploads of
the same content reclaimed by prune, and a prune that runs in the middle of a backup."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ROOT, TEST_PASSPHRASE, CofferCli, sample_library
from ios_helpers import DEVICE, BuiltBackup, Entry, assert_same_tree, build_backup
from s3server import FaultPlan, FaultProxy, SeaweedServer, open_repository, set_pack_sizes
from test_core_prune import OTHER_UDID, rebrand

from agent.archive.importer import import_folder
from agent.keys.slots import Passphrase
from agent.repository.repository import Repository
from agent.storage.s3 import S3Storage

SMALL_PACKS = (256 << 10, 512 << 10)


def stored_copies(cli: CofferCli) -> Counter[tuple[str, bytes]]:
    """How many indexed packs hold each (category, chunk)."""
    repository = open_repository(cli)
    try:
        return Counter(
            (record.space, blob[0]) for record in repository.load_index().packs() for blob in record.blobs
        )
    finally:
        repository.storage.close()


def overlapping_library(writer: int) -> tuple[Entry, ...]:
    """Photos every writer has (the same bytes) and notes of its own."""
    shared = random.Random(100)
    own = random.Random(200 + writer)
    return (
        *(
            Entry("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{n:04d}.HEIC", shared.randbytes(400_000))
            for n in range(4)
        ),
        *(
            Entry("HomeDomain", f"Library/Notes/writer-{writer}-{n}.bin", own.randbytes(300_000))
            for n in range(2)
        ),
    )


def test_concurrent_writers_share_chunks_and_prune_stores_them_once(
    s3_coffer: CofferCli, s3: SeaweedServer, tmp_path: Path
) -> None:
    s3_coffer.inline("init")
    set_pack_sizes(s3_coffer, *SMALL_PACKS)
    backups: list[BuiltBackup] = []
    for writer in range(3):
        udid = f"00008030-00000000000000{writer:02d}"
        built = build_backup(tmp_path / f"writer-{writer}" / udid, overlapping_library(writer))
        backups.append(rebrand(built, udid, f"Phone {writer}"))

    # Every request takes a fifth of a second longer (a distant bucket), so the three backups overlap for
    # certain: each loads the index before the others have indexed the photos they share.
    latency = FaultPlan(probability=1.0, kinds=("delay",), delay_seconds=0.2)
    with FaultProxy(s3.s3_address, latency) as distant:
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "agent", "--json", "import", str(built.path)],
                env=s3_coffer.environment({"AWS_ENDPOINT_URL": distant.endpoint_url}),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for built in backups
        ]
        outputs = [process.communicate(timeout=120) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
    ids = [json.loads(stdout.splitlines()[-1])["id"] for stdout, _ in outputs]  # the summary follows status lines
    assert sorted(s["id"] for s in s3_coffer.inline("--json", "snapshots").json()) == sorted(ids)
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]

    duplicated = sum(1 for count in stored_copies(s3_coffer).values() if count > 1)
    for _ in range(2):
        s3_coffer.inline("prune", "--grace", "0")
    copies = stored_copies(s3_coffer)
    print(
        f"\n3 concurrent writers: {duplicated} chunks uploaded more than once, {len(copies)} chunks after prune"
    )
    assert set(copies.values()) == {1}, "every chunk is stored once"
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]
    for snapshot_id, built in zip(ids, backups, strict=True):
        target = tmp_path / f"export-{snapshot_id[:8]}"
        s3_coffer.inline("export", snapshot_id, target)
        assert_same_tree(built.path, target)


class BeforeFirstPut(S3Storage):
    """A real S3 backend that, once, runs `action` just before it stores the first object whose name starts
    with `trigger`, and keeps what the action returned. Other puts wait until the action is done."""

    trigger: str
    action: Callable[[], Any]
    outcome: Any = None
    _action_lock: threading.Lock

    def put(
        self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None
    ) -> None:
        if name.startswith(self.trigger):
            with self._action_lock:
                if self.outcome is None:
                    self.outcome = self.action()
        super().put(name, data, if_absent=if_absent, tags=tags)


def before_first_put(cli: CofferCli, trigger: str, action: Callable[[], Any]) -> BeforeFirstPut:
    storage = BeforeFirstPut.from_url(cli.env["COFFER_REPOSITORY"])
    storage.trigger = trigger
    storage.action = action
    storage._action_lock = threading.Lock()
    return storage


def backup_in_this_process(storage: S3Storage, built: BuiltBackup) -> str:
    repository = Repository.open(storage, Passphrase(TEST_PASSPHRASE))
    return import_folder(repository, built.path, backup_password=None, progress=False).commit.snapshot_id


def test_duplicate_uploads_are_reclaimed(s3_coffer: CofferCli, tmp_path: Path) -> None:
    s3_coffer.inline("init")
    set_pack_sizes(s3_coffer, *SMALL_PACKS)
    built = build_backup(tmp_path / "backup" / DEVICE.udid, sample_library(8))
    twin = rebrand(build_backup(tmp_path / "twin" / OTHER_UDID, sample_library(8)), OTHER_UDID, "Twin")
    # When this backup is about to write its first index object, its first packs are uploaded but not indexed:
    # a second writer (another process, another device with the same files) cannot see them and uploads the
    # same chunks again.
    storage = before_first_put(s3_coffer, "index/", lambda: s3_coffer("--json", "import", twin.path).json())
    first_id = backup_in_this_process(storage, built)
    duplicated = sum(1 for count in stored_copies(s3_coffer).values() if count > 1)
    assert duplicated > 0, "the two writers uploaded the same chunks"
    assert s3_coffer.inline("--json", "check").json()["ok"]

    reports = [s3_coffer.inline("--json", "prune", "--grace", "0").json() for _ in range(2)]
    print(f"\n{duplicated} chunks stored twice by two writers; prune: {reports}")
    assert set(stored_copies(s3_coffer).values()) == {1}, "every chunk is stored once"
    assert reports[1]["packs_deleted"] > 0
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]
    for snapshot_id, source in ((first_id, built), (storage.outcome["id"], twin)):
        target = tmp_path / f"export-{snapshot_id[:8]}"
        s3_coffer.inline("export", snapshot_id, target)
        assert_same_tree(source.path, target)


def test_prune_during_a_backup_leaves_it_restorable(s3_coffer: CofferCli, tmp_path: Path) -> None:
    s3_coffer.inline("init")
    set_pack_sizes(s3_coffer, *SMALL_PACKS)
    forgotten = build_backup(tmp_path / "old" / DEVICE.udid, sample_library(9))
    s3_coffer.inline("import", forgotten.path)
    s3_coffer.inline("import", build_backup(tmp_path / "new" / DEVICE.udid, sample_library(10)).path)
    s3_coffer.inline("forget", "--keep-last", "1")
    s3_coffer.inline("prune", "--grace", "0")  # marks the forgotten snapshot's packs

    # The forgotten content backed up again while `coffer prune` runs twice in another process, when the
    # backup has uploaded its first packs and not indexed them yet: the backup must neither lean on the
    # fossils that prune deletes nor lose the packs it uploaded (prune marks them, as it cannot tell them
    # from an interrupted backup's, but never deletes them while the backup runs).
    storage = before_first_put(
        s3_coffer, "index/", lambda: [s3_coffer("--json", "prune", "--grace", "0").json() for _ in range(2)]
    )
    snapshot_id = backup_in_this_process(storage, forgotten)
    sweep, again = storage.outcome
    print(f"\nprunes during the backup: {storage.outcome}")
    assert sweep["packs_deleted"] > 0, "the concurrent prune deleted the old fossils"
    assert sweep["packs_marked"] > 0, "and marked the packs of the running backup"
    assert again["packs_deleted"] == 0, "which a prune does not delete while that backup runs"

    after = [s3_coffer.inline("--json", "prune", "--grace", "0").json() for _ in range(2)]
    assert after[0]["packs_kept_alive"] > 0, "the packs marked while the backup ran are in use now: kept"
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]
    target = tmp_path / "export"
    s3_coffer.inline("export", snapshot_id, target)
    assert_same_tree(forgotten.path, target)
