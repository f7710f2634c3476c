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
    return tuple(
        Entry(domain, path.format(seed), rng.randbytes(rng.randint(20_000, 150_000)))
        for domain, path in PLACES
    )


@dataclass
class CheckedRepository:
    cli: CofferCli
    snapshots: list[str]  # oldest first, the forgotten one excluded


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> CheckedRepository:
    base = tmp_path_factory.mktemp("check")
    cli = coffer_cli(base / "repo")
    cli.init()
    cli.set_pack_sizes(64 << 10, 128 << 10)
    for passphrase in EXTRA_PASSPHRASES:
        cli.inline("key", "add", env={"COFFER_NEW_PASSWORD": passphrase})
    ids = [
        cli.inline("--json", "import", build_backup(base / f"b{n}" / UDID, library(n)).path).json()["id"]
        for n in range(3)
    ]
    cli.inline("forget", "--keep-last", "2")
    cli.inline("prune")  # the default grace period: this run only marks the forgotten snapshot's packs
    return CheckedRepository(cli, ids[1:])


def objects_of(repo: Path, prefix: str) -> list[str]:
    return sorted(info.name for info in LocalStorage(repo).list(prefix))


def test_fixture_holds_every_object_kind(repository: CheckedRepository) -> None:
    repo = repository.cli.repo
    assert objects_of(repo, "config") == ["config"]
    assert len(objects_of(repo, "keys/")) == 4
    assert len(objects_of(repo, "index/")) >= 3
    assert len(objects_of(repo, "snapshots/")) == 2
    assert len(objects_of(repo, "tombstones/")) == 1
    assert len(objects_of(repo, "fossils/")) == 1
    assert len({name.split("/")[1] for name in objects_of(repo, "data/")}) >= 4, "several categories"
    assert len(objects_of(repo, "data/")) >= 15


def run_check(cli: CofferCli, passphrase: str = TEST_PASSPHRASE) -> tuple[int, str]:
    run = cli.inline("check", "--read-data", expect=None, env={"COFFER_PASSWORD": passphrase})
    return run.returncode, run.stderr


def test_good_repository_passes(repository: CheckedRepository) -> None:
    run = repository.cli.inline("--json", "check", "--read-data")
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
        records, _ = decode_index(repository.storage.get(name), repository.keys.index_keys(), name)
        if any((record.space, blob[0]) in used for record in records for blob in record.blobs):
            needed.add(name)
    return needed


def how_errors_name(name: str) -> str:
    """Snapshots are named by their ID prefix in messages, other objects by their full name."""
    return name.removeprefix("snapshots/")[:12] if name.startswith("snapshots/") else name


def targets(repository: CheckedRepository, damage: str) -> list[tuple[str, str]]:
    """(object name, text the error must contain) for every object this damage must be detected on."""
    names = objects_of(repository.cli.repo, "")
    if damage == "flip":
        return [(name, how_errors_name(name)) for name in names]
    # One object of each kind, and every key slot: the slot in use must be among them.
    first_of_each_kind = {name.split("/")[0]: name for name in reversed(names)}
    some = sorted({*first_of_each_kind.values(), *objects_of(repository.cli.repo, "keys/")})
    if damage == "truncate":
        return [(name, how_errors_name(name)) for name in some]
    # Deleting a fossil record only delays reclaiming space, and the newest snapshot's deletion is the
    # rollback only local state can reveal; an index object that lists nothing still needed loses nothing.
    followed = "snapshots/" + repository.snapshots[0]
    needed_index = sorted(needed_index_objects(repository.cli))
    chosen = []
    for name in [*some, needed_index[0], followed]:
        kind = name.split("/")[0]
        if name == followed:
            chosen.append((name, how_errors_name(name)))
        elif kind == "index" and name in needed_index:
            chosen.append((name, "no index lists"))
        elif kind == "tombstones":
            chosen.append((name, "missing"))
        elif kind in ("config", "keys", "data"):
            chosen.append((name, name))
    return chosen


@pytest.mark.parametrize("damage", DAMAGES)
def test_damage_exits_4_naming_the_object(repository: CheckedRepository, damage: str) -> None:
    """A flipped byte in any object; truncation and deletion of one object of each kind."""
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
            code, stderr = run_check(repository.cli)
            assert (code, len(stderr.splitlines())) == (4, 1), f"{damage} {name}: {code} {stderr}"
            assert expected in stderr, f"{damage} {name}: {stderr}"
            assert tree_digest(repo) == before, f"check changed the repository after {damage} {name}"
        finally:
            path.write_bytes(original)
    assert run_check(repository.cli)[0] == 0


def test_a_damaged_slot_does_not_lock_out_the_others(repository: CheckedRepository) -> None:
    in_use = repository.cli.open().slot_name
    others = [name for name in objects_of(repository.cli.repo, "keys/") if name != in_use]
    assert len(others) == 3
    for name in others:
        path = repository.cli.repo / name
        original = path.read_bytes()
        try:
            flip(path)
            repository.cli.inline("snapshots")
        finally:
            path.write_bytes(original)


def test_damaged_key_slot_exits_4_through_the_command(repository: CheckedRepository) -> None:
    path = repository.cli.repo / objects_of(repository.cli.repo, "keys/")[0]
    original = path.read_bytes()
    try:
        flip(path)
        run = repository.cli("check", "--read-data", expect=4)
        assert len(run.stderr.splitlines()) == 1 and run.stderr.startswith("coffer: ")
    finally:
        path.write_bytes(original)


def test_wrong_passphrase_exits_3_after_one_key_derivation(
    repository: CheckedRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    derivations = []
    real_derive = KdfParams.derive

    def counting_derive(self: KdfParams, passphrase: str) -> bytes:
        derivations.append(passphrase)
        return real_derive(self, passphrase)

    monkeypatch.setattr(KdfParams, "derive", counting_derive)
    repo = repository.cli.repo
    before = tree_digest(repo)
    code, stderr = run_check(repository.cli, passphrase="not the passphrase")
    assert (code, len(stderr.splitlines())) == (3, 1), stderr
    assert derivations == ["not the passphrase"], "one derivation for three passphrase slots"
    for passphrase in EXTRA_PASSPHRASES:
        derivations.clear()
        assert run_check(repository.cli, passphrase=passphrase)[0] == 0
        assert derivations == [passphrase]
    assert tree_digest(repo) == before


def test_wrong_passphrase_through_the_command(repository: CheckedRepository) -> None:
    before = tree_digest(repository.cli.repo)
    run = repository.cli("check", expect=3, env={"COFFER_PASSWORD": "not the passphrase"})
    assert run.stderr.splitlines() == [run.stderr.strip()] and "wrong passphrase" in run.stderr
    assert tree_digest(repository.cli.repo) == before
