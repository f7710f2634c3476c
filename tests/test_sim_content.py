"""The simulated iPhone's content: determinism, profiles, categories, databases, evolve, persistence, restore."""

from __future__ import annotations

import plistlib
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from agent.errors import UsageError
from agent.ios.categories import Category, classify
from agent.sim.content import DeviceFilesystem, FileKind, RestoredEntry, SimFile
from agent.sim.content.profiles import PROFILES

MB = 1_000_000
SQLITE_SUFFIXES = (
    ".sqlite",
    ".sqlitedb",
    ".db",
    ".storedata",
    ".sqlite3",
    "Envelope Index",
    "MapsSync_0.0.1",
)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> DeviceFilesystem:
    return DeviceFilesystem.create(tmp_path_factory.mktemp("small") / "device", profile="small", seed=7)


def content(device: DeviceFilesystem, key: str) -> bytes:
    domain, relative_path = key.split("/", 1)
    entry = device.get(domain, relative_path)
    assert entry is not None, key
    return b"".join(device.read(entry))


def open_database(device: DeviceFilesystem, key: str, scratch: Path) -> sqlite3.Connection:
    path = scratch / key.replace("/", "_")
    path.write_bytes(content(device, key))
    return sqlite3.connect(path)


def restored_entries(device: DeviceFilesystem) -> Iterator[RestoredEntry]:
    for f in device.files():
        yield device.as_restored(f)


def disk_usage(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_same_seed_gives_the_same_device_and_another_seed_another(tmp_path: Path) -> None:
    first = DeviceFilesystem.create(tmp_path / "a", profile="tiny", seed=3)
    second = DeviceFilesystem.create(tmp_path / "b", profile="tiny", seed=3)
    other = DeviceFilesystem.create(tmp_path / "c", profile="tiny", seed=4)

    assert first.files() == second.files()
    assert first.snapshot_digest() == second.snapshot_digest()
    assert first.snapshot_digest() != other.snapshot_digest()
    sms = "HomeDomain/Library/SMS/sms.db"
    assert first.snapshot_digest()[sms] != other.snapshot_digest()[sms]


@pytest.mark.parametrize(
    ("profile", "min_files", "max_files", "min_bytes", "max_bytes"),
    [
        ("tiny", 24, 200, 1 * MB, 5 * MB),
        ("small", 200, 800, 20 * MB, 50 * MB),
        ("medium", 1000, 5000, 800 * MB, 1300 * MB),
        ("large", 2000, 10_000, 3200 * MB, 4800 * MB),
    ],
)
def test_profile_sizes(
    tmp_path: Path, profile: str, min_files: int, max_files: int, min_bytes: int, max_bytes: int
) -> None:
    device = DeviceFilesystem.create(tmp_path / "device", profile=profile, seed=11)
    files = [f for f in device.files() if f.kind is FileKind.FILE]

    assert min_files <= len(files) <= max_files
    assert min_bytes <= device.total_size() <= max_bytes
    assert device.total_size() == sum(f.size for f in files)
    # Media is generated on read, never stored: the state folder holds a few percent at most.
    assert disk_usage(tmp_path / "device") < max(5 * MB, device.total_size() // 20)


def test_tiny_still_has_the_essentials(tmp_path: Path) -> None:
    device = DeviceFilesystem.create(tmp_path / "device", profile="tiny", seed=1)
    categories = Counter(
        classify(f.domain, f.relative_path) for f in device.files() if f.kind is FileKind.FILE
    )

    for category in (Category.MESSAGES, Category.PHOTOS, Category.NOTES, Category.KEYCHAIN, Category.HEALTH):
        assert categories[category] > 0, category
    assert device.get("HomeDomain", "Library/SMS/sms.db") is not None
    assert any(f.relative_path.startswith("Media/DCIM/") for f in device.files() if f.kind is FileKind.FILE)


def test_small_covers_every_category(small: DeviceFilesystem) -> None:
    categories = Counter(
        classify(f.domain, f.relative_path) for f in small.files() if f.kind is FileKind.FILE
    )

    assert {category for category in Category if categories[category] == 0} == set()


def test_small_has_the_shape_of_a_real_phone(small: DeviceFilesystem) -> None:
    files = small.files()
    domains = {f.domain for f in files}
    roots = {f.domain for f in files if f.relative_path == "" and f.kind is FileKind.DIRECTORY}
    symlinks = [f for f in files if f.kind is FileKind.SYMLINK]

    assert roots == domains
    assert len(domains) > 100
    assert len(symlinks) == 14 and all(f.target and f.mode == 0o120755 and f.size == 0 for f in symlinks)
    assert any(f.kind is FileKind.FILE and f.size == 0 for f in files)
    assert all(f.mode == 0o40755 and f.protection_class == 0 for f in files if f.kind is FileKind.DIRECTORY)
    assert all(f.mode == 0o100644 and 1 <= f.protection_class <= 4 for f in files if f.kind is FileKind.FILE)
    assert Counter(f.protection_class for f in files if f.kind is FileKind.FILE).most_common(1)[0][0] == 3
    assert len({f.inode for f in files}) == len(files)
    assert {"AppDomain-net.whatsapp.WhatsApp", "AppDomain-com.spotify.client"} <= domains
    assert small.get("AppDomainGroup-group.net.whatsapp.WhatsApp.shared", "ChatStorage.sqlite") is not None


def test_encrypted_only_entries_are_the_ones_apple_names(small: DeviceFilesystem) -> None:
    everything = small.snapshot_digest()
    unencrypted = small.snapshot_digest(include_encrypted_only=False)
    left_out = set(everything) - set(unencrypted)

    for key in (
        "KeychainDomain/keychain-backup.plist",
        "HealthDomain/Health/healthdb.sqlite",
        "HealthDomain/Health/healthdb_secure.sqlite",
        "SystemPreferencesDomain/SystemConfiguration/com.apple.wifi.plist",
        "HomeDomain/Library/CallHistoryDB/CallHistory.storedata",
        "HomeDomain/Library/Safari/History.db",
    ):
        assert key in left_out
    assert "HomeDomain/Library/SMS/sms.db" in unencrypted
    assert "HomeDomain/Library/Safari/Bookmarks.db" in unencrypted
    assert all(
        key.split("/", 1)[0] in {"HealthDomain", "KeychainDomain", "HomeDomain", "SystemPreferencesDomain"}
        for key in left_out
    )


def test_databases_are_real_sqlite_with_rows(small: DeviceFilesystem, tmp_path: Path) -> None:
    databases = [
        f for f in small.files() if f.kind is FileKind.FILE and f.relative_path.endswith(SQLITE_SUFFIXES)
    ]
    assert len(databases) > 40
    for f in databases:
        with open_database(small, f.key, tmp_path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), f.key
            assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0

    profile = PROFILES["small"]
    with open_database(small, "HomeDomain/Library/SMS/sms.db", tmp_path) as sms:
        assert sms.execute("SELECT COUNT(*) FROM message").fetchone()[0] == profile.messages
        attachment_paths = [
            row[0].removeprefix("~/") for row in sms.execute("SELECT filename FROM attachment")
        ]
    assert len(attachment_paths) == profile.attachments
    for path in attachment_paths:
        assert content(small, f"MediaDomain/{path}").startswith(b"\xff\xd8\xff")

    with open_database(small, "CameraRollDomain/Media/PhotoData/Photos.sqlite", tmp_path) as photos:
        library = {
            f"Media/{d}/{name}" for d, name in photos.execute("SELECT ZDIRECTORY, ZFILENAME FROM ZASSET")
        }
    camera_roll = {f.relative_path for f in small.files() if f.relative_path.startswith("Media/DCIM/1")}
    assert library == {
        path for path in camera_roll if small.get("CameraRollDomain", path).kind is FileKind.FILE
    }

    with open_database(small, "AppDomainGroup-group.com.apple.notes/NoteStore.sqlite", tmp_path) as notes:
        assert notes.execute("SELECT COUNT(*) FROM ZICNOTEDATA").fetchone()[0] == profile.notes

    keychain = plistlib.loads(content(small, "KeychainDomain/keychain-backup.plist"))
    assert keychain["genp"] and keychain["inet"]
    wifi = plistlib.loads(content(small, "SystemPreferencesDomain/SystemConfiguration/com.apple.wifi.plist"))
    assert wifi["List of known networks"]


def test_media_is_incompressible_and_text_compresses(small: DeviceFilesystem) -> None:
    def ratio(data: bytes) -> float:
        return len(data) / len(zstandard.compress(data, 3))

    photos = [
        f for f in small.files() if f.relative_path.startswith("Media/DCIM/") and f.kind is FileKind.FILE
    ]
    heic = next(f for f in photos if f.relative_path.endswith(".HEIC"))
    heic_bytes = content(small, heic.key)
    assert heic_bytes[4:12] == b"ftypheic" and len(heic_bytes) == heic.size
    assert MB <= heic.size <= 4 * MB
    assert ratio(heic_bytes) < 1.01
    movie = next(f for f in photos if f.relative_path.endswith(".MOV"))
    assert content(small, movie.key)[4:8] == b"ftyp"

    assert ratio(content(small, "HomeDomain/Library/SMS/sms.db")) > 1.5
    assert ratio(content(small, "HomeDomain/Library/Preferences/com.apple.MobileSMS.plist")) > 1.5
    assert ratio(content(small, "AppDomain-com.spotify.client/Documents/state.json")) > 2


def test_read_streams_pieces_of_at_most_one_mebibyte(small: DeviceFilesystem) -> None:
    biggest = max(small.files(), key=lambda f: f.size)
    pieces = list(small.read(biggest))

    assert biggest.size > 2 * MB
    assert all(0 < len(piece) <= 1 << 20 for piece in pieces)
    assert sum(map(len, pieces)) == biggest.size
    assert list(small.read(small.get("HomeDomain", "Library"))) == []


def test_concurrent_reads_agree(small: DeviceFilesystem) -> None:
    files = [f for f in small.files() if f.kind is FileKind.FILE][:200]
    expected = small.snapshot_digest()
    results: list[dict[str, int]] = []

    def reader() -> None:
        results.append({f.key: sum(len(piece) for piece in small.read(f)) for f in files})

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [{f.key: f.size for f in files}] * 4
    assert small.snapshot_digest() == expected


def test_evolve_changes_exactly_what_it_reports(tmp_path: Path) -> None:
    device = DeviceFilesystem.create(tmp_path / "device", profile="small", seed=5)
    before_files = {f.key: f for f in device.files()}
    before = device.snapshot_digest()
    clock = device.clock

    report = device.evolve(seed=1)
    after_files = {f.key: f for f in device.files()}
    after = device.snapshot_digest()

    assert set(report.added) == set(after) - set(before)
    assert set(report.removed) == set(before) - set(after)
    assert set(report.modified) == {key for key in set(before) & set(after) if before[key] != after[key]}
    for key in set(before) & set(after):
        old, new = before_files[key], after_files[key]
        assert new.inode == old.inode
        assert (new.mtime == old.mtime) == (key not in report.modified)
    assert all(clock < after_files[key].mtime <= device.clock for key in report.modified)
    assert device.clock == clock + 86_400

    assert {
        "HomeDomain/Library/SMS/sms.db",
        "AppDomainGroup-group.com.apple.notes/NoteStore.sqlite",
        "CameraRollDomain/Media/PhotoData/Photos.sqlite",
        "HomeDomain/Library/Preferences/com.apple.springboard.plist",
    } <= set(report.modified)
    new_photos = [
        key for key in report.added if key.startswith("CameraRollDomain/Media/DCIM/") and "." in key
    ]
    assert len(new_photos) == PROFILES["small"].daily_photos
    assert any(key.startswith("AppDomain-") and key.endswith("/") for key in report.added)  # a new app
    assert any(key.startswith("CameraRollDomain/Media/DCIM/") for key in report.removed)
    assert len({f.inode for f in after_files.values()}) == len(after_files)
    with open_database(device, "HomeDomain/Library/SMS/sms.db", tmp_path) as sms:
        expected = PROFILES["small"].messages + PROFILES["small"].daily_messages
        assert sms.execute("SELECT COUNT(*) FROM message").fetchone()[0] == expected


def test_evolve_edits_sqlite_pages_in_place(tmp_path: Path) -> None:
    device = DeviceFilesystem.create(tmp_path / "device", profile="small", seed=5)
    before = content(device, "AppDomainGroup-group.com.apple.notes/NoteStore.sqlite")
    device.evolve(seed=1)
    after = content(device, "AppDomainGroup-group.com.apple.notes/NoteStore.sqlite")

    pages = max(len(before), len(after)) // 4096
    changed = sum(before[i * 4096 : (i + 1) * 4096] != after[i * 4096 : (i + 1) * 4096] for i in range(pages))
    assert 0 < changed < pages // 2


def test_evolve_is_deterministic(tmp_path: Path) -> None:
    devices = [DeviceFilesystem.create(tmp_path / name, profile="tiny", seed=2) for name in ("a", "b", "c")]
    reports = [devices[0].evolve(8), devices[1].evolve(8), devices[2].evolve(9)]

    assert reports[0] == reports[1]
    assert devices[0].snapshot_digest() == devices[1].snapshot_digest()
    assert devices[0].snapshot_digest() != devices[2].snapshot_digest()


def test_load_reopens_the_same_device(tmp_path: Path) -> None:
    created = DeviceFilesystem.create(tmp_path / "device", profile="tiny", seed=9)
    assert DeviceFilesystem.load(tmp_path / "device").files() == created.files()

    created.evolve(4)
    reopened = DeviceFilesystem.load(tmp_path / "device")
    assert reopened.files() == created.files()
    assert reopened.snapshot_digest() == created.snapshot_digest()
    assert (reopened.profile, reopened.seed, reopened.clock) == ("tiny", 9, created.clock)


def test_restore_makes_a_device_a_copy_of_the_source(tmp_path: Path) -> None:
    source = DeviceFilesystem.create(tmp_path / "source", profile="small", seed=1)
    source.evolve(2)
    target = DeviceFilesystem.create(tmp_path / "target", profile="tiny", seed=2)
    survivor = target.get("HomeDomain", "Library/SMS/sms.db")
    assert survivor is not None

    target.apply_restore(restored_entries(source), remove_missing=True)

    assert target.snapshot_digest() == source.snapshot_digest()
    assert DeviceFilesystem.load(tmp_path / "target").snapshot_digest() == source.snapshot_digest()
    assert target.get("HomeDomain", "Library/SMS/sms.db").inode == survivor.inode
    # Restored media is recognised as generated streams, so the target stores no more than the source.
    assert disk_usage(tmp_path / "target") < 2 * disk_usage(tmp_path / "source")


def test_restore_keeps_unnamed_entries_unless_told_and_stores_altered_media(tmp_path: Path) -> None:
    source = DeviceFilesystem.create(tmp_path / "source", profile="tiny", seed=1)
    target = DeviceFilesystem.create(tmp_path / "target", profile="tiny", seed=2)
    photo = next(f for f in source.files() if f.relative_path.endswith((".HEIC", ".JPG")))
    altered = bytearray(content(source, photo.key))
    altered[len(altered) // 2] ^= 0xFF
    own_keys = set(target.snapshot_digest())

    target.apply_restore(
        [
            RestoredEntry(
                photo.domain,
                photo.relative_path,
                FileKind.FILE,
                0o100644,
                1_700_000_000,
                None,
                iter([bytes(altered[:100_000]), bytes(altered[100_000:])]),
            )
        ],
        remove_missing=False,
    )

    restored = target.get(photo.domain, photo.relative_path)
    assert restored.size == len(altered) and restored.mtime == 1_700_000_000
    assert content(target, photo.key) == bytes(altered)
    assert own_keys <= set(target.snapshot_digest())


def test_bad_requests_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown device profile"):
        DeviceFilesystem.create(tmp_path / "device", profile="huge", seed=1)
    with pytest.raises(UsageError, match="holds no simulated device"):
        DeviceFilesystem.load(tmp_path / "nothing")
    DeviceFilesystem.create(tmp_path / "device", profile="tiny", seed=1)
    with pytest.raises(UsageError, match="already holds"):
        DeviceFilesystem.create(tmp_path / "device", profile="tiny", seed=1)


def test_files_are_sorted_and_typed(small: DeviceFilesystem) -> None:
    files = small.files()
    assert files == sorted(files, key=lambda f: (f.domain, f.relative_path))
    assert all(isinstance(f, SimFile) and f.key == f"{f.domain}/{f.relative_path}" for f in files)
