"""Backup folders written by something other than Coffer (pymobiledevice3's `backup2 backup` against
the simulated iPhone) survive import → export byte for byte, decrypt with pyiosbackup, and come out
of selective export and extract as the tools and the user expect."""

from __future__ import annotations

import filecmp
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CofferCli, coffer_cli
from pyiosbackup import Backup

from agent.ios.categories import classify
from agent.sim.host_tools import HostTools
from agent.sim.server import SimServer
from agent.sim.verify import backup_digest

PASSWORD = "device backup password"


def _same_tree(left: Path, right: Path) -> None:
    """Every file of both trees identical (empty blob folders are allowed to differ)."""
    files = {p.relative_to(left) for p in left.rglob("*") if p.is_file()}
    assert files == {p.relative_to(right) for p in right.rglob("*") if p.is_file()}
    _, mismatch, errors = filecmp.cmpfiles(left, right, sorted(str(f) for f in files), shallow=False)
    assert not mismatch and not errors, (mismatch[:5], errors[:5])


@pytest.fixture(scope="module")
def backups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimServer, Path, Path, str, str]]:
    """A plain and a device-encrypted backup folder, each written by `pymobiledevice3 backup2 backup`."""
    root = tmp_path_factory.mktemp("interop")
    with SimServer(root / "sim") as sim:
        plain = sim.add_device(profile="small", seed=71)
        encrypted = sim.add_device(profile="tiny", seed=72, password=PASSWORD)
        host = HostTools(sim.address, root / "home")
        for device in (plain, encrypted):
            done = host.pymobiledevice3("backup2", "backup", "--full", str(root / "backups"), "--udid", device.udid)
            assert done.returncode == 0, done.stderr[-3000:]
        yield sim, root / "backups" / plain.udid, root / "backups" / encrypted.udid, plain.udid, encrypted.udid


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CofferCli:
    monkeypatch.setenv("COFFER_KDF_TARGET_SECONDS", "0")
    cli = coffer_cli(tmp_path / "repo")
    cli.init()
    (tmp_path / "password").write_text(PASSWORD)
    return cli


def test_plain_backup_round_trips_byte_for_byte(repo: CofferCli, backups: tuple, tmp_path: Path) -> None:
    _, plain, _, _, _ = backups
    snapshot = repo("--json", "import", plain).json()["id"]
    repo("export", snapshot, tmp_path / "out")
    _same_tree(plain, tmp_path / "out")


def test_encrypted_backup_round_trips_and_decrypts_with_the_original_password(
    repo: CofferCli, backups: tuple, tmp_path: Path
) -> None:
    _, _, encrypted, _, _ = backups
    wrong = tmp_path / "wrong"
    wrong.write_text("not it")
    run = repo("import", encrypted, "--backup-password-file", wrong, expect=3)
    assert "wrong backup password" in run.stderr
    assert repo("--json", "snapshots").json() == []  # nothing written

    snapshot = repo("--json", "import", encrypted, "--backup-password-file", tmp_path / "password").json()["id"]
    repo("export", snapshot, tmp_path / "out")
    _same_tree(encrypted, tmp_path / "out")
    original = backup_digest(encrypted, PASSWORD)
    exported = Backup.from_path(tmp_path / "out", PASSWORD)
    assert len(list(exported.iter_files())) == sum(1 for v in original.values() if v != "dir" and not v.startswith("symlink:"))
    repo("export", snapshot, tmp_path / "plain", "--decrypt")
    assert backup_digest(tmp_path / "plain") == original


def test_selective_export_is_a_valid_backup_of_exactly_those_categories(
    repo: CofferCli, backups: tuple, tmp_path: Path
) -> None:
    sim, _, encrypted, _, _ = backups
    snapshot = repo("--json", "import", encrypted, "--backup-password-file", tmp_path / "password").json()["id"]
    out = tmp_path / "backups" / Path(encrypted).name
    repo("export", snapshot, out, "--categories", "photos,messages")
    digest = backup_digest(out, PASSWORD)
    assert {classify(*k.split("/", 1)).value for k in digest} == {"photos", "messages"}
    original = backup_digest(encrypted, PASSWORD)
    assert digest == {k: v for k, v in original.items() if classify(*k.split("/", 1)).value in ("photos", "messages")}
    assert len(list(Backup.from_path(out, PASSWORD).iter_files())) == sum(1 for v in digest.values() if v != "dir")
    # pymobiledevice3 accepts it: restore it onto another simulated device.
    target = sim.add_device(profile="tiny", seed=73)
    host = HostTools(sim.address, tmp_path / "home")
    done = host.pymobiledevice3("backup2", "restore", "--password", PASSWORD, "--source", Path(encrypted).name,
                                "--no-reboot", str(tmp_path / "backups"), "--udid", target.udid)
    assert done.returncode == 0, done.stderr[-3000:]
    restored = target.filesystem.snapshot_digest()
    for key, value in digest.items():
        if value != "dir":
            assert restored.get(key) == value, key


def test_extract_photos_writes_exactly_the_photo_files_with_their_times(
    repo: CofferCli, backups: tuple, tmp_path: Path
) -> None:
    sim, plain, _, udid, _ = backups
    snapshot = repo("--json", "import", plain).json()["id"]
    result = repo("--json", "extract", snapshot, tmp_path / "photos", "--categories", "photos").json()
    device = sim.device(udid).filesystem
    expected = {
        f"{f.domain}/{f.relative_path}": f
        for f in device.files()
        if f.kind == "file" and not f.encrypted_only and classify(f.domain, f.relative_path).value == "photos"
    }
    written = {p.relative_to(tmp_path / "photos").as_posix(): p for p in (tmp_path / "photos").rglob("*") if p.is_file()}
    assert set(written) == set(expected) and result["files"] == len(expected)
    for key, path in written.items():
        source = expected[key]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(b"".join(device.read(source))).hexdigest()
        assert int(os.stat(path).st_mtime) == source.mtime
