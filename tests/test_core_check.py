"""`coffer check --read-data` against damage to every kind of stored object, and wrong secrets.

The repository holds every object kind: config, key slots (four), index checkpoints, two snapshots of one
device (a third was forgotten, so a tombstone exists), packs of several categories, and a fossil record
left by the mark phase of prune. Each object in turn gets a byte flipped, is truncated or is deleted; the
command must exit 4 naming what is damaged, and change nothing. Deleting the newest snapshot of a device
cannot be seen from the repository alone, so the deleted snapshot is always one another snapshot follows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TEST_PASSPHRASE, CofferCli, coffer_cli, tree_digest
from ios_helpers import Entry, build_backup

from agent.cli import main
from agent.keys.kdf import KdfParams
from agent.repository.check import referenced_chunks
from agent.repository.index import decode_index
from agent.storage.local import LocalStorage

UDID = "00008030-001A2B3C4D5E6F70"
PLACES = (
    ("CameraRollDomain", "Media/DCIM/100APPLE/IMG_{}.HEIC"),
    ("CameraRollDomain", "Media/DCIM/100APPLE/IMG_{}.MOV"),
    ("HomeDomain", "Library/SMS/sms-{}.db"),
    ("MediaDomain", "Library/SMS/Attachments/00/{}.jpeg"),
    ("AppDomain-com.example.app", "Documents/{}.bin"),
    ("HomeDomain", "Library/Preferences/com.example.{}.plist"),
)
EXTRA_PASSPHRASES = ("second passphrase", "third passphrase")


def library(seed: int) -> tuple[Entry, ...]:
    rng = random.Random(seed)
    return tuple(Entry(domain, path.format(seed), rng.randbytes(rng.randint(20_000, 150_000))) for domain, path in PLACES)


@dataclass
class Damaged:
    cli: CofferCli
    snapshots: list[str]  # oldest first, the forgotten one excluded


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Damaged:
    base = tmp_path_factory.mktemp("check")
    cli = coffer_cli(base / "repo")
    cli.init()
    cli.set_pack_sizes(64 << 10, 128 << 10)
    for passphrase in EXTRA_PASSPHRASES:
        cli("key", "add", env={"COFFER_NEW_PASSWORD": passphrase})
    ids = [cli("--json", "import", build_backup(base / f"b{n}" / UDID, library(n)).path).json()["id"] for n in range(3)]
    cli("forget", "--keep-last", "2")
    cli("prune")  # the default grace period: this run only marks the forgotten snapshot's packs
    return Damaged(cli, ids[1:])


def objects_of(repo: Path, prefix: str) -> list[str]:
    return sorted(info.name for info in LocalStorage(repo).list(prefix))


def test_fixture_holds_every_object_kind(repository: Damaged) -> None:
    repo = repository.cli.repo
    assert objects_of(repo, "config") == ["config"]
    assert len(objects_of(repo, "keys/")) == 4
    assert len(objects_of(repo, "index/")) >= 3
    assert len(objects_of(repo, "snapshots/")) == 2
    assert len(objects_of(repo, "tombstones/")) == 1
    assert len(objects_of(repo, "fossils/")) == 1
    assert len({name.split("/")[1] for name in objects_of(repo, "data/")}) >= 4, "several categories"
    assert len(objects_of(repo, "data/")) >= 15


def run_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], repo: Path, passphrase: str = TEST_PASSPHRASE) -> tuple[int, str]:
    """`coffer check --read-data` in this process (the real CLI code path, without a process start)."""
    monkeypatch.setenv("COFFER_REPOSITORY", str(repo))
    monkeypatch.setenv("COFFER_PASSWORD", passphrase)
    code = main(["check", "--read-data"])
    return code, capsys.readouterr().err


def test_good_repository_passes(repository: Damaged) -> None:
    run = repository.cli("--json", "check", "--read-data")
    report = run.json()
    assert report["ok"] and report["errors"] == []
    assert report["packs_read"] == report["packs"] >= 15


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def delete(path: Path) -> None:
    path.unlink()


DAMAGES: dict[str, Callable[[Path], None]] = {"flip": flip, "truncate": truncate, "delete": delete}


def needed_index_objects(cli: CofferCli) -> set[str]:
    """Index objects that list a chunk some snapshot references (losing one of the others loses nothing)."""
    repository = cli.open()
    assert repository.keys.index_key is not None
    used = set().union(*(referenced_chunks(repository, sid) for sid in repository.snapshot_ids()))
    needed = set()
    for name in objects_of(cli.repo, "index/"):
        records, _ = decode_index(repository.storage.get(name), repository.keys.index_key, name)
        if any((record.space, blob[0]) in used for record in records for blob in record.blobs):
            needed.add(name)
    return needed


def targets(repository: Damaged, damage: str) -> list[tuple[str, str]]:
    """(object name, text the error must contain) for every object this damage must be detected on."""
    repo = repository.cli.repo
    names = objects_of(repo, "")
    if damage != "delete":
        return [(name, name.split("/")[-1][:12] if name.startswith("snapshots/") else name) for name in names]
    # Deleting a fossil record only delays reclaiming space, and the newest snapshot's deletion is the
    # rollback only local state can reveal; an index object that lists nothing still needed loses nothing.
    followed = repository.snapshots[0]
    needed_index = needed_index_objects(repository.cli)
    chosen = []
    for name in names:
        kind = name.split("/")[0]
        if kind == "snapshots" and name.endswith(followed):
            chosen.append((name, followed[:12]))
        elif kind == "index" and name in needed_index:
            chosen.append((name, "no index lists"))
        elif kind == "tombstones":
            chosen.append((name, "missing"))
        elif kind in ("config", "keys", "data"):
            chosen.append((name, name))
    return chosen


@pytest.mark.parametrize("damage", DAMAGES)
def test_damage_to_any_object_exits_4_naming_it(
    repository: Damaged, damage: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = repository.cli.repo
    chosen = targets(repository, damage)
    kinds = {name.split("/")[0] for name, _ in chosen}
    assert {"config", "keys", "index", "snapshots", "data", "tombstones"} <= kinds
    for name, expected in chosen:
        path = repo / name
        original = path.read_bytes()
        try:
            DAMAGES[damage](path)
            before = tree_digest(repo)
            code, stderr = run_check(monkeypatch, capsys, repo)
            assert (code, len(stderr.splitlines())) == (4, 1), f"{damage} {name}: {code} {stderr}"
            assert expected in stderr, f"{damage} {name}: {stderr}"
            assert tree_digest(repo) == before, f"check changed the repository after {damage} {name}"
        finally:
            path.write_bytes(original)
    assert run_check(monkeypatch, capsys, repo)[0] == 0


@pytest.mark.parametrize("kind", ["config", "keys/", "data/"])
def test_damage_exits_4_through_the_command(repository: Damaged, kind: str) -> None:
    path = repository.cli.repo / objects_of(repository.cli.repo, kind)[0]
    original = path.read_bytes()
    try:
        flip(path)
        run = repository.cli("check", "--read-data", expect=4)
        assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("coffer: ")
    finally:
        path.write_bytes(original)


def test_wrong_passphrase_exits_3_after_one_key_derivation(
    repository: Damaged, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    derivations = []
    real_derive = KdfParams.derive

    def counting_derive(self: KdfParams, passphrase: str) -> bytes:
        derivations.append(passphrase)
        return real_derive(self, passphrase)

    monkeypatch.setattr(KdfParams, "derive", counting_derive)
    repo = repository.cli.repo
    before = tree_digest(repo)
    code, stderr = run_check(monkeypatch, capsys, repo, passphrase="not the passphrase")
    assert (code, len(stderr.splitlines())) == (3, 1), stderr
    assert derivations == ["not the passphrase"], "one derivation for three passphrase slots"
    for passphrase in EXTRA_PASSPHRASES:
        derivations.clear()
        assert run_check(monkeypatch, capsys, repo, passphrase=passphrase)[0] == 0
        assert derivations == [passphrase]
    assert tree_digest(repo) == before


def test_wrong_passphrase_through_the_command(repository: Damaged) -> None:
    before = tree_digest(repository.cli.repo)
    run = repository.cli("check", expect=3, env={"COFFER_PASSWORD": "not the passphrase"})
    assert run.stderr.splitlines() == [run.stderr.strip()] and "wrong passphrase" in run.stderr
    assert tree_digest(repository.cli.repo) == before
