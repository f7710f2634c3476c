"""The benchmark data set: a valid backup folder, reproducible from its seed, with a realistic day of changes."""

from __future__ import annotations

import filecmp
import plistlib
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.ios.folder import BackupFolder
from benchmarks.datagen import parse_size
from benchmarks.dataset.backup import FIRST_BACKUP_DATE, generate, mutate
from benchmarks.dataset.plan import DATABASES, SHARES, Kind, kind_of, plan_backup
from benchmarks.dataset.sqlite_db import PAGE_SIZE

SIZE = 24 << 20
SEED = 7


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dataset") / "backup"
    generate(path, SIZE, SEED)
    return path


def _blobs(path: Path) -> dict[str, Path]:
    return {blob.name: blob for blob in path.glob("??/*")}


def test_the_folder_opens_cleanly_with_every_kind_of_content(generated: Path) -> None:
    folder = BackupFolder.open(generated)
    assert folder.skipped == [] and folder.warnings == [] and folder.other_files == []
    files = [record for record in folder.records if record.is_file]
    assert {kind_of(r.domain, r.relative_path) for r in files} == set(Kind)
    assert len(_blobs(generated)) == len(files)
    for record in files:
        assert (generated / record.blob_name).stat().st_size == record.size
    total = sum(record.size for record in files)
    media = sum(r.size for r in files if kind_of(r.domain, r.relative_path) is Kind.MEDIA)
    assert 0.65 < media / total < 0.85
    assert 0.9 * SIZE < total < 1.5 * SIZE  # small data sets overshoot: every category has whole files


def test_databases_are_real_sqlite_with_4096_byte_pages(generated: Path) -> None:
    folder = BackupFolder.open(generated)
    databases = [r for r in folder.records if kind_of(r.domain, r.relative_path) is Kind.SQLITE]
    assert len(databases) == len(DATABASES)
    for record in databases:
        connection = sqlite3.connect(f"file:{generated / record.blob_name}?mode=ro", uri=True)
        try:
            assert connection.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            connection.close()


def test_the_same_seed_gives_the_same_files_and_another_seed_does_not(
    generated: Path, tmp_path: Path
) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    generate(again, SIZE, SEED)
    generate(other, SIZE, SEED + 1)
    first, second = _blobs(generated), _blobs(again)
    assert first.keys() == second.keys()
    assert all(filecmp.cmp(first[name], second[name], shallow=False) for name in first)
    assert filecmp.cmp(generated / "Manifest.db", again / "Manifest.db", shallow=False)
    assert not filecmp.cmp(generated / "Manifest.db", other / "Manifest.db", shallow=False)


def test_a_day_of_use_adds_changes_and_deletes_and_leaves_the_rest_alone(
    generated: Path, tmp_path: Path
) -> None:
    path = tmp_path / "backup"
    shutil.copytree(generated, path)
    before = {r.file_id: r for r in BackupFolder.open(path).records if r.is_file}

    day = mutate(path, SEED)

    folder = BackupFolder.open(path)
    assert folder.skipped == [] and folder.warnings == []
    after = {r.file_id: r for r in folder.records if r.is_file}
    added, deleted = after.keys() - before.keys(), before.keys() - after.keys()
    changed = {
        i
        for i in after.keys() & before.keys()
        if not filecmp.cmp(generated / after[i].blob_name, path / after[i].blob_name, shallow=False)
    }
    assert (len(added), len(deleted), len(changed)) == (day.added_files, day.deleted_files, day.changed_files)
    assert any(after[i].relative_path.startswith("Media/DCIM/") for i in added)
    assert all(not (path / before[i].blob_name).exists() for i in deleted)
    assert {kind_of(after[i].domain, after[i].relative_path) for i in changed} >= {Kind.SQLITE, Kind.LOG}
    for file_id in after.keys() & before.keys() - changed:
        assert after[file_id].blob == before[file_id].blob  # untouched rows keep their metadata
    status = plistlib.loads((path / "Status.plist").read_bytes())
    assert status["Date"] == (FIRST_BACKUP_DATE + timedelta(days=1)).replace(tzinfo=None)
    assert mutate(path, SEED).day == 2


def test_a_day_changes_scattered_pages_of_a_database_not_all_of_it(generated: Path, tmp_path: Path) -> None:
    path = tmp_path / "backup"
    shutil.copytree(generated, path)
    sms = next(r for r in BackupFolder.open(path).records if r.relative_path == "Library/SMS/sms.db")
    old = (path / sms.blob_name).read_bytes()
    mutate(path, SEED)
    new = (path / sms.blob_name).read_bytes()
    pages = len(old) // PAGE_SIZE
    changed = sum(old[i : i + PAGE_SIZE] != new[i : i + PAGE_SIZE] for i in range(0, len(old), PAGE_SIZE))
    assert len(new) >= len(old)
    assert 0 < changed < pages / 2


def test_plans_follow_the_shares_and_never_repeat_a_name() -> None:
    assert sum(SHARES.values()) == pytest.approx(1)
    plan = plan_backup(2 << 30, 1)
    assert len({(spec.domain, spec.relative_path) for spec in plan}) == len(plan)
    media = sum(spec.size for spec in plan if spec.kind is Kind.MEDIA)
    assert 0.7 < media / sum(spec.size for spec in plan) < 0.8
    assert plan == plan_backup(2 << 30, 1)


def test_generating_into_a_folder_that_is_not_empty_is_refused(generated: Path) -> None:
    with pytest.raises(UsageError, match="not empty"):
        generate(generated, SIZE, SEED)


@pytest.mark.parametrize(
    ("text", "size"),
    [("300M", 300 << 20), ("2.5G", int(2.5 * (1 << 30))), ("4GiB", 4 << 30), ("20000000", 20_000_000)],
)
def test_sizes_are_read_in_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "4X", "1M"])
def test_unreadable_or_tiny_sizes_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)
