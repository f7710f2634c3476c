"""`coffer key rotate`: new keys for new data, old secrets revoked, and honest about what old keys still read."""

from __future__ import annotations

from pathlib import Path

from conftest import CofferCli, sample_library
from ios_helpers import build_backup

from agent.keys import primitives
from agent.keys.keyset import HEADER_SPACE, KeySet
from agent.keys.slots import Passphrase
from agent.repository.pack import HEADER_READ_SIZE
from agent.repository.snapshot import SNAPSHOT_PREFIX


def test_rotate_revokes_old_secrets_and_keeps_every_snapshot(coffer: CofferCli, tmp_path: Path) -> None:
    old_recovery = coffer.init()["recovery_key"]
    coffer("key", "add", "--put-only", "--output", tmp_path / "station.key")
    coffer("key", "export-category", "photos", "--output", tmp_path / "photos.key")
    build_backup(tmp_path / "one", sample_library(1))
    coffer("--json", "import", tmp_path / "one")
    coffer("export", "latest", tmp_path / "before")
    leaked = coffer.open().keys.to_bytes()  # an old full key set, copied before the rotation

    report = coffer("--json", "key", "rotate").json()
    assert report["snapshots_resealed"] == 1 and report["packs_under_old_keys"] > 0
    assert report["recovery_key"] != old_recovery
    assert sorted(report["revoked"]) == ["category", "put-only"]

    # Old secrets open nothing; the passphrase and the new recovery key do.
    coffer("snapshots", env={"COFFER_PASSWORD": None, "COFFER_RECOVERY_KEY": old_recovery}, expect=3)
    coffer("import", tmp_path / "one", env={"COFFER_KEY_FILE": str(tmp_path / "station.key")}, expect=3)
    coffer("ls", "latest", env={"COFFER_KEY_FILE": str(tmp_path / "photos.key")}, expect=3)
    coffer("snapshots", env={"COFFER_PASSWORD": None, "COFFER_RECOVERY_KEY": report["recovery_key"]})

    coffer("export", "latest", tmp_path / "after")
    assert sorted(p.read_bytes() for p in (tmp_path / "before").rglob("*") if p.is_file()) == sorted(
        p.read_bytes() for p in (tmp_path / "after").rglob("*") if p.is_file()
    )
    build_backup(tmp_path / "two", sample_library(2))
    coffer("import", tmp_path / "two")
    coffer("check", "--read-data")

    # The honest part: the leaked old key still opens the packs that existed at rotation time,
    # but neither the re-sealed snapshots nor the packs written afterwards.
    old = KeySet.from_bytes(leaked)
    repository = coffer.open(Passphrase("correct battery staple"))
    index = repository.load_index()
    readable, unreadable = 0, 0
    for record in index.packs():
        header = repository.storage.get_range(repository.pack_name(record.space, record.pack_id), 0, HEADER_READ_SIZE)
        try:
            primitives.open_sealed(old.private_keys[record.space], header, purpose=b"pack key",
                                   associated=repository.tag(record.space).encode())
            readable += 1
        except primitives.DecryptionError:
            unreadable += 1
    assert readable == report["packs_under_old_keys"] and unreadable > 0
    for info in repository.storage.list(SNAPSHOT_PREFIX):
        sealed = repository.read_sealed(info.name.removeprefix(SNAPSHOT_PREFIX))
        try:
            primitives.open_sealed(old.private_keys[HEADER_SPACE], sealed.header, purpose=b"snapshot header")
            raise AssertionError("an old key opened a re-sealed snapshot")
        except primitives.DecryptionError:
            pass
