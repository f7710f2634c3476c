"""Retention and space reclaiming: `forget --keep-last` per device, two-phase `prune`, and prune beside
running backups (a backup's marker holds back deletion; a backup that starts after the marking never comes
to depend on a pack the sweep deletes)."""

from __future__ import annotations

import plistlib
from pathlib import Path

from conftest import TEST_PASSPHRASE, CofferCli, sample_library
from ios_helpers import DEVICE, BuiltBackup, assert_same_tree, build_backup

from agent.archive.importer import import_folder
from agent.keys.slots import Passphrase
from agent.repository import locks
from agent.repository.prune import PruneReport, prune
from agent.repository.repository import Repository
from agent.storage.local import LocalStorage

OTHER_UDID = "00008101-000A1B2C3D4E5F60"


def rebrand(built: BuiltBackup, udid: str, name: str) -> BuiltBackup:
    """Make a built backup another device's: its identity lives in Manifest.plist and Info.plist."""
    manifest_path = built.path / "Manifest.plist"
    manifest = plistlib.loads(manifest_path.read_bytes())
    manifest["Lockdown"] |= {"UniqueDeviceID": udid, "DeviceName": name}
    manifest_path.write_bytes(plistlib.dumps(manifest, fmt=plistlib.FMT_BINARY))
    info_path = built.path / "Info.plist"
    info = plistlib.loads(info_path.read_bytes())
    info |= {"Unique Identifier": udid.upper(), "Target Identifier": udid, "Device Name": name}
    info_path.write_bytes(plistlib.dumps(info))
    return built


def data_objects(repo: Path) -> dict[str, int]:
    return {info.name: info.size for info in LocalStorage(repo).list("data/")}


def test_forget_per_device_and_prune_reclaim_space(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    coffer.set_pack_sizes(256 << 10, 512 << 10)
    backups: dict[str, BuiltBackup] = {}
    for seed, udid in [
        (10, DEVICE.udid),
        (11, OTHER_UDID),
        (12, DEVICE.udid),
        (13, DEVICE.udid),
        (14, OTHER_UDID),
    ]:
        built = build_backup(tmp_path / f"backup-{seed}" / udid, sample_library(seed))
        if udid == OTHER_UDID:
            rebrand(built, OTHER_UDID, "Other iPad")
        backups[coffer.inline("--json", "import", built.path).json()["id"]] = built
    snapshots = coffer.inline("--json", "snapshots").json()
    assert [s["id"] for s in snapshots] == list(backups)
    newest = {s["device"]["udid"]: s["id"] for s in snapshots}  # oldest first: the last one wins

    before = data_objects(coffer.repo)
    document = coffer("--json", "forget", "--keep-last", "1").json()
    assert sorted(document["keep"]) == sorted(newest.values())
    assert len(document["remove"]) == 3
    first = coffer.inline("--json", "prune", "--grace", "0").json()
    assert first["packs_deleted"] == 0 and first["packs_marked"] > 0
    assert before.keys() <= data_objects(coffer.repo).keys(), "the mark phase deletes nothing (it may repack)"
    second = coffer("--json", "prune", "--grace", "0").json()
    after = data_objects(coffer.repo)

    forgotten = sum(len(c) for sid in document["remove"] for c in backups[sid].contents.values())
    reclaimed = sum(before.values()) - sum(after.values())
    print(
        f"\nforgot {forgotten} B of files; prune reclaimed {reclaimed} B in {second['packs_deleted']} packs"
    )
    assert second["bytes_deleted"] >= reclaimed  # net of the few small packs repacking added
    assert reclaimed >= 0.8 * forgotten
    assert [s["id"] for s in coffer.inline("--json", "snapshots").json()] == [
        sid for sid in backups if sid in document["keep"]
    ]
    for snapshot_id in document["keep"]:
        target = tmp_path / f"export-{snapshot_id[:8]}"
        coffer.inline("export", snapshot_id, target)
        assert_same_tree(backups[snapshot_id].path, target)
    assert coffer.inline("--json", "check", "--read-data").json()["ok"]


def forgotten_repository(coffer: CofferCli, tmp_path: Path) -> BuiltBackup:
    """Two snapshots of one device, the older forgotten; returns the forgotten one's backup folder."""
    coffer.init()
    coffer.set_pack_sizes(256 << 10, 512 << 10)
    forgotten = build_backup(tmp_path / "old" / DEVICE.udid, sample_library(20))
    coffer.inline("import", forgotten.path)
    coffer.inline("import", build_backup(tmp_path / "new" / DEVICE.udid, sample_library(21)).path)
    coffer.inline("forget", "--keep-last", "1")
    return forgotten


def test_prune_deletes_nothing_while_a_backup_runs(coffer: CofferCli, tmp_path: Path) -> None:
    forgotten_repository(coffer, tmp_path)
    before = data_objects(coffer.repo)
    with locks.running_backup(coffer.open()):
        for _ in range(2):
            report = coffer.inline("--json", "prune", "--grace", "0").json()
            assert report["packs_deleted"] == 0
        assert before.keys() <= data_objects(coffer.repo).keys()
    report = coffer.inline("--json", "prune", "--grace", "0").json()
    assert report["packs_deleted"] > 0
    assert sum(data_objects(coffer.repo).values()) < sum(before.values())


class PruneBeforeSnapshot(LocalStorage):
    """A real local storage on which a prune (grace 0) runs just before the snapshot object is written,
    i.e. while a backup is running, after it uploaded its packs and index."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.report: PruneReport | None = None

    def put(
        self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None
    ) -> None:
        if name.startswith("snapshots/") and self.report is None:
            self.report = prune(
                Repository.open(LocalStorage(self.root), Passphrase(TEST_PASSPHRASE)), grace_seconds=0
            )
        super().put(name, data, if_absent=if_absent, tags=tags)


def test_backup_started_after_marking_survives_the_sweep(coffer: CofferCli, tmp_path: Path) -> None:
    forgotten = forgotten_repository(coffer, tmp_path)
    coffer.inline("prune", "--grace", "0")  # marks the forgotten snapshot's packs

    # The same content again: a backup that started after the marking must not lean on those fossils.
    storage = PruneBeforeSnapshot(coffer.repo)
    result = import_folder(
        Repository.open(storage, Passphrase(TEST_PASSPHRASE)),
        forgotten.path,
        backup_password=None,
        progress=False,
    )
    assert storage.report is not None and storage.report.packs_deleted > 0, "the sweep ran during the backup"

    target = tmp_path / "export"
    coffer.inline("export", result.commit.snapshot_id, target)
    assert_same_tree(forgotten.path, target)
    for _ in range(2):
        coffer.inline("prune", "--grace", "0")
    assert coffer.inline("--json", "check", "--read-data").json()["ok"]
    target = tmp_path / "export-after-prune"
    coffer.inline("export", result.commit.snapshot_id, target)
    assert_same_tree(forgotten.path, target)
