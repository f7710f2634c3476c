"""Damage stays where it is: one damaged index or snapshot object never blocks the other snapshots.

Three imports of one device with disjoint content, so each snapshot's data is indexed by the index objects
its own import wrote (found by listing `index/` around each import, never by reading an object). Each test
damages one object the way storage can — a flipped byte, a deletion — and then drives the real command line:
every other snapshot still exports byte-identical to its export before the damage, the damaged object is
named, `check` exits 4, and `coffer repair` brings everything back that the packs still hold.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CofferCli, coffer_cli, tree_digest
from ios_helpers import Entry, build_backup

from agent.storage.local import LocalStorage

UDID = "00008030-001A2B3C4D5E6F70"


def library(seed: int) -> tuple[Entry, ...]:
    rng = random.Random(seed)
    return (
        *(
            Entry("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{seed}{n:03d}.HEIC", rng.randbytes(rng.randint(40_000, 120_000)))
            for n in range(4)
        ),
        Entry("HomeDomain", f"Library/SMS/sms-{seed}.db", rng.randbytes(90_000)),
        Entry("AppDomain-com.example.app", f"Documents/{seed}.bin", rng.randbytes(60_000)),
    )


def names(repo: Path, prefix: str) -> set[str]:
    return {info.name for info in LocalStorage(repo).list(prefix)}


@dataclass
class Damageable:
    cli: CofferCli
    snapshots: list[str]  # in import order
    index_objects: list[set[str]]  # the index objects each import wrote
    exports: dict[str, str]  # snapshot -> tree digest of its export before any damage
    pristine: Path  # a copy of the repository to reset from


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Damageable:
    base = tmp_path_factory.mktemp("damage")
    cli = coffer_cli(base / "repo")
    cli.init()
    cli.set_pack_sizes(64 << 10, 128 << 10)
    snapshots, index_objects = [], []
    for seed in range(3):
        before = names(cli.repo, "index/")
        backup = build_backup(base / f"backup{seed}" / UDID, library(seed))
        snapshots.append(cli.inline("--json", "import", backup.path).json()["id"])
        index_objects.append(names(cli.repo, "index/") - before)
    exports = {}
    for snapshot_id in snapshots:
        target = base / f"export-{snapshot_id[:8]}"
        cli.inline("export", snapshot_id, target)
        exports[snapshot_id] = tree_digest(target)
    pristine = base / "pristine"
    shutil.copytree(cli.repo, pristine)
    return Damageable(cli, snapshots, index_objects, exports, pristine)


@pytest.fixture
def repo(built: Damageable) -> Damageable:
    """The module's repository, reset to its undamaged state."""
    shutil.rmtree(built.cli.repo)
    shutil.copytree(built.pristine, built.cli.repo)
    return built


def flip(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


def export_digest(cli: CofferCli, snapshot_id: str, target: Path, expect: int = 0) -> tuple[str, str]:
    run = cli.inline("export", snapshot_id, target, expect=expect)
    return tree_digest(target), run.stderr


def test_imports_wrote_their_own_index_objects(built: Damageable) -> None:
    assert all(built.index_objects), "every import indexed its packs"
    assert not set.intersection(*built.index_objects)


def test_a_flipped_index_object_blocks_only_the_snapshot_that_needs_it(repo: Damageable, tmp_path: Path) -> None:
    damaged = sorted(repo.index_objects[0])[0]
    flip(repo.cli.repo / damaged)
    for n, snapshot_id in enumerate(repo.snapshots[1:], start=1):
        digest, stderr = export_digest(repo.cli, snapshot_id, tmp_path / f"other{n}")
        assert digest == repo.exports[snapshot_id], "every other snapshot exports byte-identical"
        assert damaged in stderr, "the skipped index object is named"
    run = repo.cli("check", expect=4)
    assert damaged in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr
    # The packs are intact: the index rebuilt from their trailers restores the first snapshot too.
    repair = repo.cli.inline("--json", "repair", "index").json()
    assert repair["index_objects_replaced"] >= len(set().union(*repo.index_objects))
    assert export_digest(repo.cli, repo.snapshots[0], tmp_path / "first")[0] == repo.exports[repo.snapshots[0]]
    assert damaged not in names(repo.cli.repo, "index/")
    repo.cli("check", "--read-data")


def test_a_deleted_index_object_is_rebuilt_from_the_packs(repo: Damageable, tmp_path: Path) -> None:
    for name in repo.index_objects[1]:
        (repo.cli.repo / name).unlink()
    run = repo.cli("check", expect=4)
    assert "no index lists" in run.stderr and "repair index" in run.stderr, run.stderr
    assert repo.snapshots[1][:12] in run.stderr
    export = repo.cli.inline("export", repo.snapshots[1], tmp_path / "before-repair", expect=4)
    assert "no pack the index knows" in export.stderr and "repair" in export.stderr, export.stderr
    extract = repo.cli.inline("--json", "extract", repo.snapshots[1], tmp_path / "extract", expect=4)
    assert len(extract.json()["damaged"]) == len(library(1)), "every file of that snapshot is listed"
    repo.cli("repair", "index")
    for snapshot_id in repo.snapshots:
        assert export_digest(repo.cli, snapshot_id, tmp_path / snapshot_id[:8])[0] == repo.exports[snapshot_id]
    repo.cli("check", "--read-data")


def test_a_flipped_snapshot_object_blocks_no_other(repo: Damageable, tmp_path: Path) -> None:
    damaged = repo.snapshots[1]
    flip(repo.cli.repo / f"snapshots/{damaged}")
    listing = repo.cli("--json", "snapshots")
    assert [s["id"] for s in listing.json()] == [repo.snapshots[0], repo.snapshots[2]]
    assert damaged[:12] in listing.stderr, "the skipped snapshot is named"
    for snapshot_id in (repo.snapshots[0], repo.snapshots[2]):
        digest, _ = export_digest(repo.cli, snapshot_id, tmp_path / snapshot_id[:8])
        assert digest == repo.exports[snapshot_id]
    run = repo.cli("export", damaged, tmp_path / "damaged", expect=4)
    assert damaged[:12] in run.stderr.splitlines()[-1]
    assert damaged[:12] in repo.cli("check", expect=4).stderr
    # `latest` still means the newest readable snapshot, and a backup still follows its chain.
    assert export_digest(repo.cli, "latest", tmp_path / "latest")[0] == repo.exports[repo.snapshots[2]]
    repair = repo.cli.inline("--json", "repair", "snapshots").json()
    assert repair["snapshots_removed"] == [damaged]
    repo.cli("check", "--read-data")


def test_exporting_a_deleted_snapshot_exits_4(repo: Damageable, tmp_path: Path) -> None:
    deleted = repo.snapshots[1]
    (repo.cli.repo / f"snapshots/{deleted}").unlink()
    run = repo.cli("export", deleted[:12], tmp_path / "deleted", expect=4)
    assert deleted[:12] in run.stderr and "missing" in run.stderr, run.stderr
    assert repo.cli("export", "0123456789ab", tmp_path / "typo", expect=2)


def test_another_repositorys_config_is_named(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    other = coffer_cli(tmp_path / "other")
    other.init()
    shutil.copy(other.repo / "config", coffer.repo / "config")
    run = coffer("snapshots", expect=4)
    assert "`config` lists none of the" in run.stderr and "another repository" in run.stderr, run.stderr


def test_a_rolled_back_config_is_not_called_an_injected_slot(coffer: CofferCli) -> None:
    coffer.init()
    older = (coffer.repo / "config").read_bytes()
    coffer.inline("key", "add", env={"COFFER_NEW_PASSWORD": "a second passphrase"})
    (coffer.repo / "config").write_bytes(older)
    run = coffer("check", expect=4)
    assert "rolled back" in run.stderr and "injected" not in run.stdout + run.stderr, run.stderr
    assert "not listed by the config" in run.stdout and "older `config` put back" in run.stdout, run.stdout
