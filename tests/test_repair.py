"""A damaged pack: restores go on through it, `coffer repair` marks what is lost, one more backup heals it.

Storage flips a byte inside one pack (the attacker's or the disk's means: no key). Then, through the real
command line: plain `check` (trailers only) and `check --read-data` find it (exit 4); `extract` writes every
file the damage does not touch, byte-identical, lists the damaged ones (stderr and `--json`) and exits 4;
`repair` rewrites the snapshot without the lost files and records them; the next import of the same data
stores those chunks again (deduplication does not count them as present) and `check --read-data` is clean,
with the new snapshot complete.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import TEST_PASSPHRASE, CofferCli
from ios_helpers import Entry, build_backup

from agent.keys.slots import Passphrase
from agent.repository.repair import repair
from agent.repository.repository import Repository
from agent.sim.server import SimServer
from agent.storage.local import LocalStorage

UDID = "00008030-001A2B3C4D5E6F70"


def library() -> tuple[Entry, ...]:
    rng = random.Random(7)
    return tuple(
        Entry("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{n:04d}.HEIC", rng.randbytes(rng.randint(30_000, 90_000)))
        for n in range(24)
    )


def extracted(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def expected_files() -> dict[str, bytes]:
    return {f"{e.domain}/{e.relative_path}": e.content or b"" for e in library()}


def flip_inside_a_blob(repo: Path) -> str:
    """Flip one byte early in the largest pack: inside its first blob, away from trailer and padding."""
    storage = LocalStorage(repo)
    name = max(storage.list("data/"), key=lambda info: info.size).name
    path = repo / name
    data = bytearray(path.read_bytes())
    data[len(data) // 8] ^= 0x01
    path.write_bytes(bytes(data))
    return name


def test_a_damaged_pack_restores_the_rest_and_repair_plus_one_backup_heals(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    coffer.set_pack_sizes(64 << 10, 128 << 10)
    backup = build_backup(tmp_path / "backup" / UDID, library())
    first = coffer.inline("--json", "import", backup.path).json()["id"]
    damaged_pack = flip_inside_a_blob(coffer.repo)

    assert damaged_pack in coffer("check", "--read-data", expect=4).stderr

    run = coffer("--json", "extract", first, tmp_path / "out", expect=4)
    damaged = run.json()["damaged"]
    assert damaged, "the damaged files are listed in --json"
    lost = {f"{d['domain']}/{d['path']}" for d in damaged}
    for entry in damaged:
        assert f"damaged {entry['domain']}/{entry['path']}" in run.stderr
    got = extracted(tmp_path / "out")
    want = expected_files()
    assert set(got) == set(want) - lost, "every intact file is written, no damaged one"
    assert all(got[name] == want[name] for name in got), "byte-identical"
    assert len(got) >= len(want) - 3

    repair = coffer("--json", "repair").json()
    assert repair["packs_damaged"] == [damaged_pack]
    assert {f"{f['domain']}/{f['path']}" for f in repair["files_lost"]} == lost
    assert list(repair["snapshots_rewritten"]) == [first]
    assert damaged_pack not in {info.name for info in LocalStorage(coffer.repo).list("data/")}
    coffer("check", "--read-data")
    rewritten = coffer.inline("--json", "snapshots").json()
    assert [s["id"] for s in rewritten] == [repair["snapshots_rewritten"][first]]
    assert rewritten[0]["skipped"] == len(lost), "the snapshot records which files are lost"

    # Its export is a consistent folder: Manifest.db lists exactly the files that remain.
    coffer.inline("export", rewritten[0]["id"], tmp_path / "repaired-export")
    reimported = coffer.inline("--json", "import", tmp_path / "repaired-export").json()
    assert not reimported["skipped"] and not reimported["warnings"]
    remaining = {(i["domain"], i["path"]) for i in coffer.inline("--json", "ls", reimported["id"]).json()}
    assert remaining == {tuple(name.split("/", 1)) for name in set(want) - lost}

    again = coffer.inline("--json", "import", backup.path).json()  # the files cache must not vouch for lost data
    assert again["new_bytes"] >= sum(len(want[name]) for name in lost), "the lost chunks are stored again"
    coffer("check", "--read-data")
    coffer.inline("extract", again["id"], tmp_path / "healed")
    assert extracted(tmp_path / "healed") == want


def test_plain_check_finds_a_truncated_pack_by_its_trailer(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    coffer.inline("import", build_backup(tmp_path / "backup" / UDID, library()[:4]).path)
    name = next(iter(LocalStorage(coffer.repo).list("data/"))).name
    path = coffer.repo / name
    path.write_bytes(path.read_bytes()[:-100])
    run = coffer("--json", "check", expect=4)
    assert run.json()["packs_read"] == 0, "no --read-data: only ranged reads"
    assert name in run.stderr and "truncated" in run.stderr, run.stderr


def test_a_device_restore_through_a_damaged_pack(coffer: CofferCli, sim: SimServer, tmp_path: Path) -> None:
    """USB: the restore names the damaged files (exit 4, not a device error); after `repair` the repaired
    snapshot restores onto a replacement (Manifest.db rebuilt from the rows left), and one more backup of
    the device heals the repository."""
    coffer.env.update(
        {
            "USBMUXD_SOCKET_ADDRESS": sim.address,
            "HOME": str(tmp_path / "home"),
            "COFFER_PAIR_RECORDS_DIR": str(tmp_path / "pair-records"),
        }
    )
    coffer.init()
    coffer.set_pack_sizes(64 << 10, 128 << 10)
    original = sim.add_device(profile="tiny", seed=901).udid
    replacement = sim.add_device(profile="tiny", seed=902).udid
    snapshot = coffer("--json", "backup", "--udid", original, "--enable-device-encryption").json()["snapshot"]
    flip_inside_a_blob(coffer.repo)

    run = coffer("restore", snapshot, "--to-udid", replacement, "--yes", expect=4)
    assert "damaged " in run.stderr and "not restored" in run.stderr, run.stderr

    repaired = coffer("--json", "repair").json()
    assert repaired["files_lost"]
    healed = repaired["snapshots_rewritten"][snapshot]
    coffer("restore", healed, "--to-udid", replacement, "--yes")
    assert sim.device(replacement).restores[-1].source_udid == original

    coffer("backup", "--udid", original)
    coffer("check", "--read-data")


class StopsAtFirstTombstone(LocalStorage):
    """Real local storage; the process stops (as at a kill) when it would write its first tombstone."""

    def put(self, name: str, data: bytes, *, if_absent: bool = True, tags: dict[str, str] | None = None) -> None:
        if name.startswith("tombstones/"):
            raise KeyboardInterrupt
        super().put(name, data, if_absent=if_absent, tags=tags)


def test_a_repair_stopped_after_its_new_snapshot_finishes_without_a_duplicate(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    coffer.set_pack_sizes(64 << 10, 128 << 10)
    first = coffer.inline("--json", "import", build_backup(tmp_path / "backup" / UDID, library()).path).json()["id"]
    flip_inside_a_blob(coffer.repo)
    with pytest.raises(KeyboardInterrupt):
        repair(Repository.open(StopsAtFirstTombstone(coffer.repo), Passphrase(TEST_PASSPHRASE)))
    assert len(coffer.inline("--json", "snapshots").json()) == 2, "stopped between the new snapshot and the forget"
    rerun = coffer("--json", "repair").json()
    listed = [s["id"] for s in coffer.inline("--json", "snapshots").json()]
    assert listed == [rerun["snapshots_rewritten"][first]]
    coffer("check", "--read-data")
