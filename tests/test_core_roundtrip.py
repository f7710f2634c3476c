"""Import → export round trips through the real `coffer` command: byte-identical folders (unencrypted and
device-encrypted), `--decrypt`, `--categories` that reads only the chosen categories' packs, and `extract`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_PASSPHRASE, CofferCli, RecordingStorage, coffer_cli, sample_library
from ios_helpers import PASSWORD, BuiltBackup, assert_same_tree, build_backup

from agent.archive.exporter import export_snapshot
from agent.ios.categories import classify
from agent.ios.folder import BackupFolder
from agent.ios.plists import load_plist_dict
from agent.ios.records import FileRecord
from agent.keys.slots import Passphrase
from agent.repository.repository import DATA_PREFIX, Repository

UDID = "00008030-001A2B3C4D5E6F70"


@dataclass
class Imported:
    cli: CofferCli
    base: Path
    plain: BuiltBackup
    encrypted: BuiltBackup
    plain_id: str
    encrypted_id: str
    packs: int


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    base = tmp_path_factory.mktemp("roundtrip")
    cli = coffer_cli(base / "repo")
    cli.init()
    cli.set_pack_sizes(256 << 10, 512 << 10)
    plain = build_backup(base / "plain" / UDID, sample_library(1))
    encrypted = build_backup(base / "encrypted" / UDID, sample_library(2), password=PASSWORD)
    password_file = base / "backup-password"
    password_file.write_text(PASSWORD)
    first = cli.inline("--json", "import", plain.path).json()
    second = cli.inline("--json", "import", encrypted.path, "--backup-password-file", password_file).json()
    return Imported(cli, base, plain, encrypted, first["id"], second["id"], first["packs"])


def rows(records: list[FileRecord]) -> list[tuple[str, str, int, bytes]]:
    return sorted((r.domain, r.relative_path, r.flags, r.blob) for r in records)


def test_import_spans_several_packs(imported: Imported) -> None:
    assert imported.packs >= 5


@pytest.mark.parametrize("kind", ["plain", "encrypted"])
def test_export_is_byte_identical(imported: Imported, kind: str) -> None:
    built = getattr(imported, kind)
    snapshot = getattr(imported, f"{kind}_id")
    target = imported.base / f"export-{kind}"
    imported.cli("export", snapshot[:12], target)
    assert_same_tree(built.path, target)
    password = PASSWORD if kind == "encrypted" else None
    exported = BackupFolder.open(target, password)
    assert rows(exported.records) == rows(BackupFolder.open(built.path, password).records)
    flags = {r.flags for r in exported.records}
    assert flags == {1, 2, 4}, "file, directory and symlink rows all come back"
    assert any(r.is_file and r.size == 0 for r in exported.records)


def test_decrypted_export_holds_the_plaintext(imported: Imported) -> None:
    target = imported.base / "export-decrypted"
    imported.cli("export", imported.encrypted_id, target, "--decrypt")
    manifest = load_plist_dict((target / "Manifest.plist").read_bytes(), "Manifest.plist")
    assert manifest["IsEncrypted"] is False and "ManifestKey" not in manifest
    folder = BackupFolder.open(target)
    files = [r for r in folder.records if r.is_file]
    assert len(files) == len(imported.encrypted.contents)
    for record in files:
        assert (target / record.blob_name).read_bytes() == imported.encrypted.contents[record.file_id]


def test_category_export_holds_and_reads_only_those_categories(imported: Imported) -> None:
    storage = RecordingStorage(imported.cli.repo)
    repository = Repository.open(storage, Passphrase(TEST_PASSPHRASE))
    target = imported.base / "export-categories"
    storage.reads.clear()
    result = export_snapshot(
        repository,
        imported.encrypted_id,
        target,
        categories=["photos", "messages"],
        decrypt=False,
        progress=False,
    )
    wanted = {"photos", "messages"}
    assert set(result.categories) == wanted

    exported = BackupFolder.open(target, PASSWORD)
    assert {classify(r.domain, r.relative_path).value for r in exported.records} == wanted
    original = BackupFolder.open(imported.encrypted.path, PASSWORD)
    expected = [r for r in original.records if classify(r.domain, r.relative_path).value in wanted]
    assert rows(exported.records) == rows(expected)
    for record in expected:
        if record.is_file:
            source = imported.encrypted.path / record.blob_name
            assert (target / record.blob_name).read_bytes() == source.read_bytes(), record.relative_path

    packs_read = {name.split("/")[1] for name in storage.reads if name.startswith(DATA_PREFIX)}
    assert packs_read == {repository.tag(c) for c in wanted}


def test_extract_writes_photos_with_their_mtimes(imported: Imported) -> None:
    target = imported.base / "extract-photos"
    document = imported.cli("--json", "extract", imported.plain_id, target, "--categories", "photos").json()
    photos = [
        r
        for r in imported.plain.records
        if r.is_file and classify(r.domain, r.relative_path).value == "photos"
    ]
    assert document["files"] == len(photos) >= 6
    written = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert written == sorted(f"{r.domain}/{r.relative_path}" for r in photos)
    for record in photos:
        path = target / record.domain / record.relative_path
        assert path.read_bytes() == imported.plain.contents[record.file_id]
        assert int(os.stat(path).st_mtime) == record.mtime
