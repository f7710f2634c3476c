"""The read-only verbs restic and idevicebackup2 users reach for — diff, find, stats, dump, info — through the
real `coffer` command, on imported generated backups of three phones (one device-encrypted) and, for `info`,
a simulated iPhone."""

from __future__ import annotations

import base64
import os
import pty
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, CofferCli, coffer_cli
from ios_helpers import DEVICE, PASSWORD, Entry, build_backup, directory, symlink

from agent.ios.identity import DeviceIdentity
from agent.sim.server import SimServer

PHONE_B = DeviceIdentity(
    udid="00008101-000B0B0B0B0B0B0B", name="Second iPhone", product_type="iPhone13,2", product_version="16.1",
    serial="G0B0B0B0B0B0", build="20B82",
)
PHONE_C = DeviceIdentity(
    udid="00008101-000C0C0C0C0C0C0C", name="Third iPhone", product_type="iPhone14,5", product_version="17.0",
    serial="H0C0C0C0C0C0", build="21A329",
)
DCIM = "Media/DCIM/100APPLE"
_rng = random.Random(16)
PHOTO_1, PHOTO_2, PHOTO_3 = (_rng.randbytes(n) for n in (310_000, 220_000, 180_000))
SMS_1 = b"SQLite format 3\x00" + b"hello " * 20_000
SMS_2 = SMS_1 + b"one more message"
TAB_NAME = "Library/Notes/tab\there.txt"  # extract writes the tab as '_'


def _photo(n: int, content: bytes) -> Entry:
    return Entry("CameraRollDomain", f"{DCIM}/IMG_{n:04d}.HEIC", content)


COMMON = (
    directory("HomeDomain", "Library"),
    Entry("HomeDomain", "Library/Notes/notes.txt", b"buy milk\n" * 50),
    Entry("HomeDomain", TAB_NAME, b"tabbed"),
    symlink("HomeDomain", "Library/Links/latest", "../SMS/sms.db"),
)
PHONE_A_FIRST = (*COMMON, _photo(1, PHOTO_1), _photo(2, PHOTO_2), Entry("HomeDomain", "Library/SMS/sms.db", SMS_1))
PHONE_A_SECOND = (*COMMON, _photo(1, PHOTO_1), _photo(3, PHOTO_3), Entry("HomeDomain", "Library/SMS/sms.db", SMS_2))
PHONE_B_ONLY = (_photo(1, PHOTO_1), Entry("HomeDomain", "Library/SMS/sms.db", b"SQLite format 3\x00 other"))
SECRET = b"the encrypted phone's note\n" * 100
PHONE_C_ONLY = (Entry("HomeDomain", "Library/Notes/secret.txt", SECRET), Entry("KeychainDomain", "keychain-backup.plist",
                                                                              b"<plist/>", protection_class=11))


@dataclass
class Repo:
    cli: CofferCli
    base: Path
    ids: dict[str, str]  # a1, a2, b, c -> snapshot ID


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    base = tmp_path_factory.mktemp("inspect")
    cli = coffer_cli(base / "repo")
    cli.init()
    password_file = base / "backup-password"
    password_file.write_text(PASSWORD)
    ids = {}
    for name, entries, device, extra in (
        ("a1", PHONE_A_FIRST, DEVICE, []),
        ("a2", PHONE_A_SECOND, DEVICE, []),
        ("b", PHONE_B_ONLY, PHONE_B, []),
        ("c", PHONE_C_ONLY, PHONE_C, ["--backup-password-file", password_file]),
    ):
        built = build_backup(base / name / device.udid, entries, device=device,
                             password=PASSWORD if extra else None)
        ids[name] = cli.inline("--json", "import", built.path, *extra).json()["id"]
    return Repo(cli, base, ids)


def _dump(cli: CofferCli, *args: str, expect: int = 0) -> bytes:
    """`coffer dump …` with stdout kept as bytes (file contents are not text)."""
    done = subprocess.run([sys.executable, "-m", "agent", "dump", *args], env=cli.environment(), cwd=ROOT,
                          capture_output=True, check=False, timeout=120)
    assert done.returncode == expect, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    return done.stdout


# --- diff -----------------------------------------------------------------------


def test_diff_reports_added_removed_and_changed_files_per_category(repo: Repo) -> None:
    result = repo.cli("--json", "diff", repo.ids["a1"][:8], repo.ids["a2"]).json()
    assert result["a"]["id"] == repo.ids["a1"] and result["b"]["id"] == repo.ids["a2"]
    changes = {(c["change"], c["domain"], c["path"], c["size"]) for c in result["changes"]}
    assert changes == {
        ("added", "CameraRollDomain", f"{DCIM}/IMG_0003.HEIC", len(PHOTO_3)),
        ("removed", "CameraRollDomain", f"{DCIM}/IMG_0002.HEIC", len(PHOTO_2)),
        ("changed", "HomeDomain", "Library/SMS/sms.db", len(SMS_2)),
    }
    photos, messages = result["categories"]["photos"], result["categories"]["messages"]
    assert photos["added"] == {"files": 1, "bytes": len(PHOTO_3)}
    assert photos["removed"] == {"files": 1, "bytes": len(PHOTO_2)}
    assert photos["changed"] == {"files": 0, "bytes": 0}
    assert messages["changed"] == {"files": 1, "bytes": len(SMS_2)}
    assert result["totals"]["added"]["files"] == 1 and result["totals"]["changed"]["files"] == 1
    assert set(result["categories"]) == {"photos", "messages"}  # unchanged notes and symlink are not listed

    text = repo.cli("diff", repo.ids["a1"], repo.ids["a2"]).stdout
    assert f"+    CameraRollDomain/{DCIM}/IMG_0003.HEIC" in text
    assert f"-    CameraRollDomain/{DCIM}/IMG_0002.HEIC" in text
    assert "M    HomeDomain/Library/SMS/sms.db" in text
    assert "notes.txt" not in text


def test_diff_latest_of_one_device_and_bad_references(repo: Repo) -> None:
    # With --udid (a UDID or a device name), `latest` is that device's newest snapshot.
    by_name = repo.cli.inline("--json", "diff", "--udid", DEVICE.name, repo.ids["a1"][:8], "latest").json()
    assert by_name["b"]["id"] == repo.ids["a2"]
    same = repo.cli.inline("--json", "diff", "--udid", PHONE_C.udid, "latest", "latest").json()
    assert same["changes"] == [] and same["a"]["id"] == repo.ids["c"]
    missing = repo.cli("diff", "deadbeefdeadbeef", repo.ids["a2"], expect=2)
    assert "deadbeef" in missing.stderr and missing.stderr.count("\n") == 1
    other = repo.cli("diff", "--udid", PHONE_B.udid, repo.ids["a1"][:8], "latest", expect=2)  # A's ID, B's device
    assert other.stderr.count("\n") == 1


# --- find -----------------------------------------------------------------------


def test_find_globs_the_name_or_domain_path_across_snapshots(repo: Repo) -> None:
    found = repo.cli("--json", "find", "*.HEIC").json()
    hits = {f["id"]: sorted(m["path"].rsplit("/", 1)[-1] for m in f["matches"]) for f in found}
    assert hits == {
        repo.ids["a1"]: ["IMG_0001.HEIC", "IMG_0002.HEIC"],
        repo.ids["a2"]: ["IMG_0001.HEIC", "IMG_0003.HEIC"],
        repo.ids["b"]: ["IMG_0001.HEIC"],
    }
    assert all(f["hits"] == len(f["matches"]) for f in found)
    match = found[0]["matches"][0]
    assert match["category"] == "photos" and match["type"] == "file" and match["size"] == len(PHOTO_1)

    by_path = repo.cli.inline("--json", "find", "HomeDomain/Library/SMS/*", "--udid", DEVICE.udid).json()
    assert [f["id"] for f in by_path] == [repo.ids["a1"], repo.ids["a2"]]
    assert {m["path"] for f in by_path for m in f["matches"]} == {"Library/SMS/sms.db"}

    assert repo.cli.inline("--json", "find", "*.heic").json() == []
    assert len(repo.cli.inline("--json", "find", "-i", "*.heic").json()) == 3
    only = repo.cli.inline("--json", "find", "*.HEIC", "--snapshot", repo.ids["b"][:8]).json()
    assert [f["id"] for f in only] == [repo.ids["b"]]
    text = repo.cli.inline("find", "IMG_0003.HEIC").stdout
    assert f"found in snapshot {repo.ids['a2'][:8]}" in text and f"CameraRollDomain/{DCIM}/IMG_0003.HEIC" in text
    assert "no file matches" in repo.cli.inline("find", "nothing-like-this").stdout


# --- stats ----------------------------------------------------------------------


def _sizes(entries: tuple[Entry, ...]) -> int:
    return sum(len(e.content or b"") for e in entries if e.flags == 1)


def test_stats_restore_size_stored_size_and_dedup(repo: Repo) -> None:
    stats = repo.cli("--json", "stats").json()
    snapshots = (PHONE_A_FIRST, PHONE_A_SECOND, PHONE_B_ONLY, PHONE_C_ONLY)
    total = stats["total"]
    assert total["snapshots"] == 4
    assert total["restore_bytes"] == sum(_sizes(s) for s in snapshots)
    assert total["files"] == sum(1 for s in snapshots for e in s if e.flags == 1)
    photos = stats["categories"]["photos"]
    # PHOTO_1 is in three snapshots of two phones and stored once.
    assert photos["restore_bytes"] == 3 * len(PHOTO_1) + len(PHOTO_2) + len(PHOTO_3)
    assert photos["unique_bytes"] == len(PHOTO_1) + len(PHOTO_2) + len(PHOTO_3)
    assert photos["dedup_ratio"] == pytest.approx(photos["restore_bytes"] / photos["unique_bytes"], abs=0.001)
    assert photos["stored_bytes"] >= photos["unique_bytes"]  # random bytes do not compress; encryption adds a little
    assert sum(c["stored_bytes"] for c in stats["categories"].values()) == total["stored_bytes"]
    assert total["stored_bytes"] <= stats["repository_bytes"]
    assert total["missing_chunks"] == 0

    devices = {d["udid"]: d for d in stats["devices"]}
    assert devices[DEVICE.udid]["name"] == DEVICE.name and devices[DEVICE.udid]["snapshots"] == 2
    assert devices[DEVICE.udid]["restore_bytes"] == _sizes(PHONE_A_FIRST) + _sizes(PHONE_A_SECOND)
    assert devices[PHONE_B.udid]["restore_bytes"] == _sizes(PHONE_B_ONLY)
    # Phones A and B share PHOTO_1: counted in each device's stored size, once in the total.
    assert sum(d["stored_bytes"] for d in devices.values()) > total["stored_bytes"]

    one = repo.cli.inline("--json", "stats", "--udid", PHONE_B.udid, "--categories", "photos").json()
    assert one["total"]["restore_bytes"] == len(PHOTO_1) and set(one["categories"]) == {"photos"}
    text = repo.cli.inline("stats").stdout
    assert "Restore size" in text and "Dedup" in text and PHONE_B.name in text and "photos" in text


# --- dump -----------------------------------------------------------------------


def test_dump_writes_the_file_that_extract_writes(repo: Repo) -> None:
    target = repo.base / "extracted"
    repo.cli.inline("extract", repo.ids["a2"], target)
    extracted = [p for p in target.rglob("*") if p.is_file()]
    assert len(extracted) == 5
    for path in extracted:
        assert _dump(repo.cli, repo.ids["a2"], path.relative_to(target).as_posix()) == path.read_bytes(), path
    assert _dump(repo.cli, repo.ids["a2"], "HomeDomain/Library/Notes/tab_here.txt") == b"tabbed"
    assert _dump(repo.cli, repo.ids["a1"], f"CameraRollDomain/{DCIM}/IMG_0002.HEIC") == PHOTO_2


def test_dump_decrypts_a_device_encrypted_backup_and_has_json(repo: Repo) -> None:
    assert _dump(repo.cli, "--udid", PHONE_C.name, "latest", "HomeDomain/Library/Notes/secret.txt") == SECRET
    document = repo.cli.inline("--json", "dump", repo.ids["c"][:8], "HomeDomain/Library/Notes/secret.txt").json()
    assert base64.b64decode(document["data"]) == SECRET
    assert document["size"] == len(SECRET) and document["category"] == "notes"
    assert document["snapshot"] == repo.ids["c"]


def test_dump_refuses_what_is_not_a_file_it_may_read(repo: Repo) -> None:
    a2 = repo.ids["a2"]
    missing = repo.cli("dump", a2, f"CameraRollDomain/{DCIM}/IMG_0002.HEIC", expect=1)
    assert "has no file" in missing.stderr and missing.stdout == ""
    as_json = repo.cli("--json", "dump", a2, f"CameraRollDomain/{DCIM}/IMG_0002.HEIC", expect=1).json()
    assert as_json["error"]["exit_code"] == 1 and "has no file" in as_json["error"]["message"]
    assert "is a directory" in repo.cli("dump", a2, "HomeDomain/Library", expect=2).stderr
    assert "is a symlink" in repo.cli("dump", a2, "HomeDomain/Library/Links/latest", expect=2).stderr
    assert "DOMAIN/PATH" in repo.cli("dump", a2, "/", expect=2).stderr
    key_file = repo.base / "messages.key"
    repo.cli.inline("key", "export-category", "messages", "--output", key_file)
    env = {"COFFER_PASSWORD": None}
    denied = repo.cli("--key-file", key_file, "dump", "--udid", DEVICE.udid, "latest",
                      f"CameraRollDomain/{DCIM}/IMG_0001.HEIC", expect=None, env=env)
    assert denied.returncode == 3, denied.describe()


def test_dump_refuses_to_write_to_a_terminal(repo: Repo) -> None:
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "agent", "dump", "latest", "HomeDomain/Library/Notes/secret.txt"],
                              env=repo.cli.environment(), cwd=ROOT, stdout=follower, stderr=subprocess.PIPE,
                              check=False, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2 and b"stdout is a terminal" in done.stderr


# --- info -----------------------------------------------------------------------


@pytest.fixture
def usb(tmp_path: Path, sim: SimServer) -> CofferCli:
    cli = coffer_cli(tmp_path / "repo")
    cli.env.update({"USBMUXD_SOCKET_ADDRESS": sim.address, "HOME": str(tmp_path / "home"),
                    "COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records")})
    return cli


def test_info_shows_the_device_and_its_last_backup(usb: CofferCli, sim: SimServer) -> None:
    device = sim.add_device(profile="tiny", seed=1601, name="Info Phone")
    alone = usb("--json", "info", "--udid", device.udid, env={"COFFER_REPOSITORY": None}).json()
    assert alone["udid"] == device.udid
    assert alone["device"]["DeviceName"] == "Info Phone"
    assert alone["device"]["UniqueDeviceID"] == device.udid
    assert alone["device"]["ProductVersion"] == device.product_version
    assert alone["backup_encryption"] is False
    assert alone["domains"]["com.apple.disk_usage"]["TotalDiskCapacity"] > 0
    assert "last_backup" not in alone

    usb.init()
    assert usb("--json", "info").json()["last_backup"] is None  # the only device: no --udid needed
    snapshot = usb("--json", "backup", "--udid", device.udid).json()["snapshot"]
    info = usb("--json", "info").json()
    assert info["last_backup"]["id"] == snapshot
    assert info["last_backup"]["info_plist"]["Device Name"] == "Info Phone"
    text = usb("info").stdout
    assert "Info Phone" in text and snapshot[:8] in text and "Backup encryption: off" in text

    gone = usb("info", "--udid", "00008030-FFFFFFFFFFFFFFFF", expect=5)
    assert "not connected" in gone.stderr
    sim.unplug(device.udid)
    assert "no device is connected" in usb("info", expect=5).stderr
