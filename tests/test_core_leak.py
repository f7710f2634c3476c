"""What a storage provider sees: every object of a repository that holds two imports (one of a
device-encrypted backup), key slots of every kind with labels, a tombstone and a fossil record, searched for
anything that names the device, the files or their content."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest
from conftest import TEST_PASSPHRASE, CofferCli, iter_objects, sample_library
from ios_helpers import DEVICE, PASSWORD, build_backup

WINDOW = 64
WINDOWS_PER_FILE = 24
# Shorter strings turn up by chance in megabytes of ciphertext (a 3-byte one about once per 16 MiB).
MIN_NEEDLE = 5


def encodings(text: str) -> list[bytes]:
    raw = text.encode()
    return [
        raw,
        text.encode("utf-16-le"),
        text.encode("utf-16-be"),
        raw.hex().encode(),
        raw.hex().upper().encode(),
    ]


@pytest.fixture
def stored(coffer: CofferCli, tmp_path: Path) -> list[tuple[str, bytes]]:
    coffer.init()
    coffer.set_pack_sizes(256 << 10, 512 << 10)
    plain = build_backup(tmp_path / "plain" / DEVICE.udid, sample_library(3))
    encrypted = build_backup(tmp_path / "encrypted" / DEVICE.udid, sample_library(4), password=PASSWORD)
    (tmp_path / "backup-password").write_text(PASSWORD)
    coffer.inline("import", plain.path)
    coffer.inline("import", encrypted.path, "--backup-password-file", tmp_path / "backup-password")
    coffer.inline(
        "key", "add", "--label", "Alice's MacBook", env={"COFFER_NEW_PASSWORD": "another passphrase"}
    )
    coffer.inline(
        "key", "add", "--put-only", "--output", tmp_path / "station.key", "--label", "Kiosk Station 7"
    )
    coffer.inline("key", "export-category", "photos", "--output", tmp_path / "photos.key")
    coffer.inline("forget", "--keep-last", "1")
    coffer.inline("prune")
    objects = list(iter_objects(coffer.repo))
    kinds = {name.split("/")[0] for name, _ in objects}
    assert kinds == {"config", "keys", "index", "snapshots", "data", "tombstones", "fossils"}
    return objects


def test_no_object_reveals_the_device_the_files_or_their_content(stored: list[tuple[str, bytes]]) -> None:
    library = sample_library(3) + sample_library(4)
    needles: dict[bytes, str] = {}
    for what, text in [
        ("UDID", DEVICE.udid),
        ("device name", DEVICE.name),
        ("serial number", DEVICE.serial),
        ("backup password", PASSWORD),
        ("passphrase", TEST_PASSPHRASE),
        ("slot label", "Alice's MacBook"),
        ("slot label", "Kiosk Station 7"),
        ("host name", socket.gethostname()),
    ]:
        needles.update((encoded, what) for encoded in encodings(text))
    for entry in library:
        needles[entry.domain.encode()] = "domain"
        if entry.relative_path:
            needles[entry.relative_path.encode()] = "relative path"
            needles[entry.relative_path.rsplit("/", 1)[-1].encode()] = "file name"
    for magic in (b"SQLite format 3", b"bplist00", b"<plist", b"<?xml"):
        needles[magic] = "file format marker"
    rng = random.Random(5)
    for entry in library:
        content = entry.content or b""
        if len(content) >= 100_000:
            for _ in range(WINDOWS_PER_FILE):
                start = rng.randrange(len(content) - WINDOW)
                needles[content[start : start + WINDOW]] = f"content of {entry.relative_path}"

    haystack = b"\0".join(name.encode() + b"\0" + data for name, data in stored)
    assert len(haystack) > 10 << 20
    searched = {needle: what for needle, what in needles.items() if len(needle) >= MIN_NEEDLE}
    assert len(searched) > 150
    found = sorted({f"{what} {needle[:40]!r}" for needle, what in searched.items() if needle in haystack})
    assert found == [], f"the storage can read: {found}"
