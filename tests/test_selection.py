"""Choosing snapshots cannot pick someone else's phone or a one-character accident: `latest` is one device's
latest complete snapshot (never a restore's safety snapshot, never a partial one), a bare `latest` with several
devices exits 2 naming them, `--udid` takes a UDID or a device name, ID prefixes need 8 hex digits; imports
carry the backup's own date; a partial export says so; `snapshots` shows roles, per device, in a readable
width; `init` refuses a location that holds other files.

Backups come from generated backup folders (`import`), except where the USB path is the point: a selective
restore's safety snapshot and `backup --categories`, against the simulator."""

from __future__ import annotations

import datetime as dt
import itertools
import plistlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CofferCli, coffer_cli, sample_library
from ios_helpers import DEVICE, build_backup
from s3server import SeaweedServer
from test_core_prune import OTHER_UDID, rebrand

from agent.archive.partial_marker import PARTIAL_KEY
from agent.ios.folder import BackupFolder
from agent.sim.server import SimServer

LAST_YEAR = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=365)


def set_dates(folder: Path, *, status: dt.datetime | None, info: dt.datetime | None) -> Path:
    """Say in the folder's plists when the backup was made (None removes the date)."""
    for name, key, when, form in (("Status.plist", "Date", status, plistlib.FMT_BINARY),
                                  ("Info.plist", "Last Backup Date", info, plistlib.FMT_XML)):
        plist = plistlib.loads((folder / name).read_bytes())
        plist.pop(key, None)
        if when is not None:
            plist[key] = when.astimezone(dt.UTC).replace(tzinfo=None)
        (folder / name).write_bytes(plistlib.dumps(plist, fmt=form))
    return folder


def two_devices(coffer: CofferCli, tmp_path: Path) -> dict[str, str]:
    """A repository holding one snapshot of DEVICE ("Test iPhone") and one of OTHER_UDID ("Other iPad")."""
    coffer.init()
    ids = {}
    for udid, seed in ((DEVICE.udid, 1), (OTHER_UDID, 2)):
        built = build_backup(tmp_path / f"backup-{seed}" / udid, sample_library(seed))
        if udid == OTHER_UDID:
            rebrand(built, OTHER_UDID, "Other iPad")
        ids[udid] = coffer.inline("--json", "import", built.path).json()["id"]
    return ids


def test_an_import_is_dated_by_the_backup_not_by_the_import(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    today = dt.datetime.now(dt.UTC).replace(microsecond=0)
    recent = set_dates(build_backup(tmp_path / "today" / "dev").path, status=today, info=None)
    old = set_dates(build_backup(tmp_path / "old" / "dev").path, status=LAST_YEAR, info=today)
    by_info = set_dates(build_backup(tmp_path / "info" / "dev").path, status=None,
                        info=LAST_YEAR - dt.timedelta(days=1))
    ids = [coffer.inline("--json", "import", folder).json()["id"] for folder in (recent, old, by_info)]

    listed = coffer("--json", "snapshots").json()
    assert [s["id"] for s in listed] == [ids[2], ids[1], ids[0]], "sorted as the backups happened"
    iso = [s["time"] for s in listed]
    assert iso == [(LAST_YEAR - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   LAST_YEAR.strftime("%Y-%m-%dT%H:%M:%SZ"), today.strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert all(s["role"] == "import" for s in listed)
    assert "Role" in coffer("snapshots").stdout


def test_copy_keeps_an_import_that_shares_its_sources_date(coffer: CofferCli, tmp_path: Path) -> None:
    """A partial export imported back carries its source's date: `copy` must not take it for a copy of it."""
    coffer.init()
    coffer.inline("import", build_backup(tmp_path / "b" / "dev", sample_library(4)).path)
    coffer.inline("export", "latest", tmp_path / "partial", "--categories", "photos")
    coffer.inline("import", tmp_path / "partial")
    target = coffer_cli(tmp_path / "target")
    target.inline("init")
    source = {"COFFER_FROM_PASSWORD": coffer.env["COFFER_PASSWORD"]}
    assert target("--json", "copy", "--from-repo", coffer.repo, env=source).json()["copied"] == 2
    assert target("--json", "copy", "--from-repo", coffer.repo, env=source).json()["copied"] == 0
    assert sorted(s["partial"] for s in target("--json", "snapshots").json()) == [False, True]


def test_bare_latest_with_two_devices_exits_2_and_udid_or_name_chooses(coffer: CofferCli, tmp_path: Path) -> None:
    ids = two_devices(coffer, tmp_path)
    for command in (["ls", "latest"], ["export", "latest", tmp_path / "out"], ["extract", "latest", tmp_path / "x"],
                    ["restore", "latest", "--to-udid", OTHER_UDID, "--yes"]):
        refused = coffer(*command, expect=2)
        assert "Test iPhone" in refused.stderr and "Other iPad" in refused.stderr and "--udid" in refused.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()

    other = coffer("--json", "ls", "latest", "--udid", "other ipad").json()  # a name, case-insensitive
    mine = coffer("--json", "ls", "latest", "--udid", DEVICE.udid).json()
    assert other and mine and other != mine
    assert [s["id"] for s in coffer("--json", "snapshots", "--udid", "OTHER IPAD").json()] == [ids[OTHER_UDID]]
    coffer("export", "latest", tmp_path / "out", "--udid", "Other iPad", "--categories", "photos")
    exported = BackupFolder.open(tmp_path / "out")
    assert exported.device.udid == OTHER_UDID

    unknown = coffer("ls", "latest", "--udid", "Nobody's phone", expect=2)
    assert "Nobody's phone" in unknown.stderr and "Other iPad" in unknown.stderr
    wrong = coffer("ls", ids[DEVICE.udid][:8], "--udid", OTHER_UDID, expect=2)
    assert "Test iPhone" in wrong.stderr


def test_a_short_id_prefix_never_selects_a_snapshot(coffer: CofferCli, tmp_path: Path) -> None:
    ids = two_devices(coffer, tmp_path)
    target = ids[DEVICE.udid]
    refused = coffer("restore", "0", "--to-udid", OTHER_UDID, "--yes", expect=2)
    assert "at least 8 hex digits" in refused.stderr
    coffer("ls", target[:7], expect=2)
    coffer("ls", "zzzzzzzz", expect=2)
    coffer("ls", "0" * 8 if not target.startswith("0" * 8) else "f" * 8, expect=2)
    assert coffer("--json", "ls", target[:8]).json() == coffer("--json", "ls", target).json()


def test_a_partial_export_is_marked_and_imports_as_partial(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    whole = coffer.inline("--json", "import", build_backup(tmp_path / "b" / "dev", sample_library(3)).path).json()
    coffer("export", "latest", tmp_path / "partial", "--categories", "photos,messages")
    info = plistlib.loads((tmp_path / "partial" / "Info.plist").read_bytes())
    assert info[PARTIAL_KEY] == ["messages", "photos"]
    assert BackupFolder.open(tmp_path / "partial").records, "still a backup folder a host can read"

    imported = coffer("--json", "import", tmp_path / "partial").json()
    listed = {s["id"]: s for s in coffer("--json", "snapshots").json()}
    assert (listed[imported["id"]]["partial"], listed[imported["id"]]["complete"]) == (True, False)
    assert listed[whole["id"]]["partial"] is False
    # `latest` never means a partial snapshot, and exporting the partial one whole keeps the mark.
    assert coffer("--json", "ls", "latest", "--category", "notes").json()
    coffer("export", imported["id"][:8], tmp_path / "again")
    assert PARTIAL_KEY in plistlib.loads((tmp_path / "again" / "Info.plist").read_bytes())


def test_the_snapshots_table_is_grouped_per_device_and_readable(coffer: CofferCli, tmp_path: Path) -> None:
    two_devices(coffer, tmp_path)
    text = coffer("snapshots").stdout
    sections = text.strip().split("\n\n")
    assert len(sections) == 2
    assert sections[0].startswith("Test iPhone (") and sections[1].startswith("Other iPad (")
    assert max(len(line) for line in text.splitlines()) <= 120, text
    assert "more" in text and "photos 7" in text  # counts per category, cut to a width


def test_init_refuses_a_non_empty_folder(coffer: CofferCli, tmp_path: Path) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    refused = coffer("--repo", folder, "init", expect=2)
    assert str(folder) in refused.stderr and "not empty" in refused.stderr
    assert [p.name for p in folder.iterdir()] == ["thesis.txt"]
    coffer("--repo", tmp_path / "new", "init")  # a new folder is fine, and so is an empty one
    (tmp_path / "empty").mkdir()
    coffer("--repo", tmp_path / "empty", "init")
    again = coffer("--repo", tmp_path / "empty", "init", expect=2)
    assert "already exists" in again.stderr


def test_init_refuses_a_non_empty_s3_prefix(s3_coffer: CofferCli, s3: SeaweedServer) -> None:
    bucket, prefix = s3_coffer.env["COFFER_REPOSITORY"].removeprefix("s3://").split("/", 1)
    s3.client.create_bucket(Bucket=bucket)
    s3.client.put_object(Bucket=bucket, Key=f"{prefix}/exports/report.csv", Body=b"a,b\n")
    refused = s3_coffer("init", expect=2)
    assert f"s3://{bucket}/{prefix}" in refused.stderr and "not empty" in refused.stderr
    assert [o["Key"] for o in s3.client.list_objects_v2(Bucket=bucket)["Contents"]] == [f"{prefix}/exports/report.csv"]


# --- over USB: a selective restore's safety snapshot, and `backup --categories` ------------------------------

_seeds = itertools.count(900)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimServer]:
    with SimServer(tmp_path_factory.mktemp("sim")) as server:
        yield server


@pytest.fixture
def usb(tmp_path: Path, sim: SimServer) -> CofferCli:
    cli = coffer_cli(tmp_path / "repo")
    cli.env.update({"USBMUXD_SOCKET_ADDRESS": sim.address, "HOME": str(tmp_path / "home"),
                    "COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records")})
    cli.init()
    return cli


def test_after_a_selective_restore_latest_is_still_the_source_devices(usb: CofferCli, sim: SimServer) -> None:
    source = sim.add_device(profile="tiny", seed=next(_seeds))
    target = sim.add_device(profile="tiny", seed=next(_seeds))
    complete = usb("--json", "backup", "--udid", source.udid, "--enable-device-encryption").json()
    partial = usb("--json", "backup", "--udid", source.udid, "--categories", "photos").json()
    assert complete["complete"] is True and partial["complete"] is False

    done = usb("restore", "latest", "--to-udid", target.udid, "--categories", "photos", "--yes")
    assert f"restored snapshot {complete['short_id']} of {source.name} ({source.udid}) (" in done.stdout
    assert f"→ {target.udid}: " in done.stdout
    roles = {s["id"]: (s["role"], s["device"]["udid"], s["partial"]) for s in usb("--json", "snapshots").json()}
    assert roles[complete["snapshot"]] == ("backup", source.udid, False)
    assert roles[partial["snapshot"]] == ("backup", source.udid, True)
    safety = [sid for sid, (role, udid, _) in roles.items() if role == "safety"]
    assert len(safety) == 1 and roles[safety[0]][1] == target.udid
    assert "safety" in usb("snapshots").stdout

    # Re-running the same line cannot restore the target's own data onto it: two devices, so choose.
    again = usb("restore", "latest", "--to-udid", target.udid, "--categories", "photos", "--yes", expect=2)
    assert source.udid in again.stderr and target.udid in again.stderr
    only_safety = usb("ls", "latest", "--udid", target.udid, expect=2)
    assert "safety" in only_safety.stderr
    chosen = usb("--json", "restore", "latest", "--udid", source.name, "--to-udid", target.udid,
                 "--categories", "photos", "--yes").json()
    assert (chosen["snapshot"], chosen["source"], chosen["target"]) == (complete["snapshot"], source.udid, target.udid)
