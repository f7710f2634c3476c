"""Key slots through the real `coffer` command: passphrase slots (add, list, remove, passwd), the recovery
key `init` prints, put-only station key files and category key files, each with exactly its rights."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CofferCli, sample_library, tree_digest
from ios_helpers import DEVICE, BuiltBackup, assert_same_tree, build_backup

from agent.ios.categories import classify
from agent.ios.folder import BackupFolder

NO_PASSPHRASE = {"COFFER_PASSWORD": None}


def kinds(coffer: CofferCli, env: dict[str, str | None] | None = None) -> list[str]:
    return sorted(slot["kind"] for slot in coffer.inline("--json", "key", "list", env=env).json())


def test_passphrase_slots_add_list_remove_passwd(coffer: CofferCli) -> None:
    coffer.init()
    added = coffer(
        "--json", "key", "add", "--label", "laptop", env={"COFFER_NEW_PASSWORD": "second passphrase"}
    )
    second = {"COFFER_PASSWORD": "second passphrase"}
    listing = coffer("--json", "key", "list", env=second).json()
    assert sorted(slot["kind"] for slot in listing) == ["passphrase", "passphrase", "recovery"]
    assert [s["label"] for s in listing if s["id"] == added.json()["id"]] == ["laptop"]
    assert [s["current"] for s in listing if s["id"] == added.json()["id"]] == [True]

    in_use = next(s["id"] for s in coffer.inline("--json", "key", "list").json() if s["current"])
    refused = coffer("key", "remove", in_use[:10], expect=2)
    assert len(refused.stderr.splitlines()) == 1
    coffer.inline("key", "remove", added.json()["id"][:10])
    assert coffer.inline("snapshots", env=second, expect=3).stderr.count("\n") == 1
    assert kinds(coffer) == ["passphrase", "recovery"]

    coffer.inline("key", "passwd", env={"COFFER_NEW_PASSWORD": "changed passphrase"})
    coffer.inline("snapshots", expect=3)
    changed = {"COFFER_PASSWORD": "changed passphrase"}
    assert kinds(coffer, changed) == ["passphrase", "recovery"]
    assert coffer.inline("--json", "check", env=changed).json()["ok"]


def mistype(recovery_key: str) -> str:
    """Change one character of the key into another base32 character (not a 0/1/8 look-alike)."""
    position = 7
    replacement = "Q" if recovery_key[position] != "Q" else "R"
    return recovery_key[:position] + replacement + recovery_key[position + 1 :]


def test_recovery_key_unlocks_and_a_typo_is_refused_before_the_repository_is_read(
    coffer: CofferCli, tmp_path: Path
) -> None:
    recovery_key = coffer.init()["recovery_key"]
    by_recovery = {"COFFER_RECOVERY_KEY": recovery_key, **NO_PASSPHRASE}
    coffer.inline("import", build_backup(tmp_path / DEVICE.udid).path)
    assert len(coffer("--json", "snapshots", env=by_recovery).json()) == 1
    assert kinds(coffer, {"COFFER_RECOVERY_KEY": recovery_key.lower().replace("-", " "), **NO_PASSPHRASE})

    # A lost passphrase: the recovery key sets a new one.
    coffer.inline("key", "passwd", env={**by_recovery, "COFFER_NEW_PASSWORD": "new passphrase"})
    coffer.inline("snapshots", env={"COFFER_PASSWORD": "new passphrase"})

    typo = coffer("snapshots", env={"COFFER_RECOVERY_KEY": mistype(recovery_key), **NO_PASSPHRASE}, expect=3)
    assert len(typo.stderr.splitlines()) == 1 and "typo" in typo.stderr
    missing_group = recovery_key.rsplit("-", 1)[0]
    coffer.inline("snapshots", env={"COFFER_RECOVERY_KEY": missing_group, **NO_PASSPHRASE}, expect=3)
    # Refused before any storage access: the same answer where no repository exists at all.
    nowhere = {"COFFER_REPOSITORY": str(tmp_path / "nowhere"), "COFFER_RECOVERY_KEY": mistype(recovery_key)}
    coffer.inline("snapshots", env={**nowhere, **NO_PASSPHRASE}, expect=3)


@pytest.fixture
def with_snapshot(coffer: CofferCli, tmp_path: Path) -> BuiltBackup:
    coffer.init()
    built = build_backup(tmp_path / "backup" / DEVICE.udid, sample_library(30))
    coffer.inline("import", built.path)
    return built


def test_put_only_key_adds_backups_and_reads_nothing(
    coffer: CofferCli, tmp_path: Path, with_snapshot: BuiltBackup
) -> None:
    station_key = tmp_path / "station.key"
    coffer.inline("key", "add", "--put-only", "--output", station_key, "--label", "kiosk")
    assert station_key.stat().st_mode & 0o077 == 0
    station = {"COFFER_KEY_FILE": str(station_key), **NO_PASSPHRASE}
    newer = build_backup(tmp_path / "newer" / DEVICE.udid, sample_library(31))
    imported = coffer.inline("--json", "import", newer.path, env=station).json()
    assert imported["reused_bytes"] > 0 or imported["new_bytes"] > 0

    before = tree_digest(coffer.repo)
    for command in (
        ["ls", "latest"],
        ["snapshots"],
        ["export", "latest", tmp_path / "out-export"],
        ["export", "latest", tmp_path / "out-photos", "--categories", "photos"],
        ["extract", "latest", tmp_path / "out-extract"],
        ["check", "--read-data"],
    ):
        run = coffer.inline(*command, env=station, expect=3)
        assert len(run.stderr.splitlines()) == 1, run.describe()
    coffer("export", "latest", tmp_path / "out-export", env=station, expect=3)
    assert tree_digest(coffer.repo) == before
    assert not any((tmp_path / name).exists() for name in ("out-export", "out-photos", "out-extract"))

    # What the station wrote, the full key reads back intact.
    target = tmp_path / "full-export"
    coffer.inline("export", imported["id"], target)
    assert_same_tree(newer.path, target)


def test_category_key_reads_its_category_only(
    coffer: CofferCli, tmp_path: Path, with_snapshot: BuiltBackup
) -> None:
    photos_key = tmp_path / "photos.key"
    coffer.inline("key", "export-category", "photos", "--output", photos_key)
    photos = {"COFFER_KEY_FILE": str(photos_key), **NO_PASSPHRASE}

    exported = tmp_path / "photos-export"
    coffer.inline("export", "latest", exported, "--categories", "photos", env=photos)
    folder = BackupFolder.open(exported)
    assert {classify(r.domain, r.relative_path).value for r in folder.records} == {"photos"}
    for record in folder.records:
        if record.is_file:
            assert (exported / record.blob_name).read_bytes() == with_snapshot.contents[record.file_id]

    extracted = tmp_path / "photos-extract"
    document = coffer.inline(
        "--json", "extract", "latest", extracted, "--categories", "photos", env=photos
    ).json()
    assert document["files"] == sum(1 for r in folder.records if r.is_file) >= 6
    listing = coffer.inline("--json", "ls", "latest", env=photos).json()
    assert {item["category"] for item in listing} == {"photos"}

    before = tree_digest(coffer.repo)
    for command in (
        ["export", "latest", tmp_path / "messages", "--categories", "messages"],
        ["extract", "latest", tmp_path / "messages-extract", "--categories", "messages"],
        ["export", "latest", tmp_path / "everything"],
        ["ls", "latest", "--category", "messages"],
    ):
        run = coffer.inline(*command, env=photos, expect=3)
        assert len(run.stderr.splitlines()) == 1, run.describe()
    coffer("export", "latest", tmp_path / "messages", "--categories", "messages", env=photos, expect=3)
    assert tree_digest(coffer.repo) == before
    assert not any((tmp_path / name).exists() for name in ("messages", "messages-extract", "everything"))
