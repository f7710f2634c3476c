"""`coffer demo`: the whole product on the embedded defaults, verified end to end.

A simulated iPhone (in-process, real sockets, real pymobiledevice3) is backed up into a fresh
local encrypted repository with device backup encryption turned on (so Health and Keychain
are included), used for a day and backed up again incrementally. The latest snapshot is restored
in full onto a "replacement" iPhone (complete, as Finder does: its own files go, it takes the
name and restarts) and compared category by category; the replacement's next backup must hold
exactly the same files. Only the photos are restored onto a third phone, which keeps the rest.
A second, fresh host (no state, caches or pair records of the first) backs the device-encrypted
phone up with the passphrase alone, then a photos-only (partial) backup is made and retention
runs with it present: the newest complete snapshot must stay. Exit 0 only if every step verified.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from agent.archive.view import open_view
from agent.commands.format import size, table
from agent.device.backup import BackupOptions, DeviceBackup, DeviceBackupResult
from agent.device.restore import RestoreOptions, restore_snapshot
from agent.errors import CofferError
from agent.ios.categories import classify
from agent.keys.slots import Passphrase
from agent.repository.check import check_repository
from agent.repository.repository import Repository
from agent.repository.retention import RetentionPolicy, plan
from agent.repository.tombstones import forget_snapshots
from agent.sim.device import SimulatedDevice
from agent.sim.server import SimServer
from agent.storage.local import LocalStorage


class DemoFailure(CofferError):
    """A verification step of the demo failed."""


@dataclass
class DemoSettings:
    workdir: Path | None = None
    profile: str = "small"
    seed: int = 7
    progress: bool = False


def _say(text: str) -> None:
    print(text, flush=True)


def _by_category(digest: dict[str, str]) -> dict[str, dict[str, str]]:
    grouped: dict[str, dict[str, str]] = defaultdict(dict)
    for key, value in digest.items():
        domain, _, path = key.partition("/")
        grouped[classify(domain, path).value][key] = value
    return grouped


def _summarise(label: str, result: DeviceBackupResult, seconds: float) -> str:
    stats = result.writer.spaces
    read = sum(s.bytes for s in stats.values())
    stored = sum(s.stored_bytes for s in stats.values())
    return (
        f"{label}: snapshot {result.commit.snapshot_id[:8]}, {result.uploads.files} files sent by the device, "
        f"{size(read)} read, {size(stored)} stored, {seconds:.1f} s ({size(result.uploads.bytes / max(seconds, 1e-6))}/s)"
    )


def _use_host(workdir: Path, name: str) -> None:
    """Point this process's host-local folders (state, caches, staging, pair records) at a host of its own."""
    for variable, sub in (("COFFER_STATE_DIR", "state"), ("COFFER_CACHE_DIR", "cache"),
                          ("COFFER_STAGING_DIR", "staging"), ("COFFER_PAIR_RECORDS_DIR", "pair-records")):
        os.environ[variable] = str(workdir / name / sub)


def _compare(label: str, expected: dict[str, dict[str, str]], got: dict[str, dict[str, str]]) -> None:
    """Per category: every file of `expected` identical in `got`; fail naming the categories that differ."""
    rows, failures = [], []
    for category in sorted(expected):
        files = expected[category]
        same = sum(1 for k, v in files.items() if got.get(category, {}).get(k) == v)
        rows.append([category, len(files), same, "ok" if same == len(files) else "DIFFERS"])
        if same != len(files):
            failures.append(category)
    _say(table(["Category", "Files expected", f"Identical on {label}", ""], rows))
    if failures:
        raise DemoFailure(f"{label} differs in: {', '.join(failures)}")


def run_demo(settings: DemoSettings) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coffer-demo-") as scratch:
        workdir = settings.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        _use_host(workdir, "host-1")
        os.environ.setdefault("COFFER_KDF_TARGET_SECONDS", "0.5")
        with SimServer(workdir / "simulator") as sim:
            os.environ["USBMUXD_SOCKET_ADDRESS"] = sim.address
            phone = sim.add_device(profile=settings.profile, seed=settings.seed, name="Alice's iPhone")
            replacement = sim.add_device(profile="tiny", seed=settings.seed + 1, name="Replacement iPhone")
            other = sim.add_device(profile="tiny", seed=settings.seed + 2, name="Bob's iPhone")
            _say(f"simulated devices on {sim.address}: {phone.udid} ({settings.profile}), {replacement.udid} "
                 f"(replacement), {other.udid} (Bob's)")

            passphrase = "-".join(secrets.token_hex(3) for _ in range(4))
            storage = LocalStorage(workdir / "repository")
            repository, recovery = Repository.init(storage, passphrase, _categories())
            _say(f"repository {storage.root}\n  passphrase:   {passphrase}\n  recovery key: {recovery}")

            t0 = time.monotonic()
            first = DeviceBackup(repository, phone.udid, BackupOptions(enable_device_encryption=True,
                                                                         progress=settings.progress)).run()
            _say(_summarise("full backup", first, time.monotonic() - t0))
            if not first.complete:
                raise DemoFailure("the first backup is not complete (device encryption did not turn on)")

            report = sim.evolve(phone.udid, settings.seed + 100)
            _say(f"a day of use: {len(report.added)} added, {len(report.modified)} modified, {len(report.removed)} removed")
            t0 = time.monotonic()
            second = DeviceBackup(repository, phone.udid, BackupOptions(progress=settings.progress)).run()
            _say(_summarise("incremental backup", second, time.monotonic() - t0))
            changed = len(report.added) + len(report.modified)
            if second.uploads.files > changed + 5:
                raise DemoFailure(f"the incremental backup moved {second.uploads.files} files for {changed} changes")

            _full_restore(repository, sim, phone, replacement, second.commit.snapshot_id, settings)
            _selective_restore(repository, phone, other, second.commit.snapshot_id, settings)

            # Another computer: nothing of host 1, only the passphrase. The phone's backup password is sealed
            # in the repository, so its device-encrypted backups go on.
            _use_host(workdir, "host-2")
            elsewhere = Repository.open(storage, Passphrase(passphrase))
            t0 = time.monotonic()
            third = DeviceBackup(elsewhere, phone.udid, BackupOptions(progress=settings.progress)).run()
            _say(_summarise("backup from a second, fresh host", third, time.monotonic() - t0))
            if not third.complete:
                raise DemoFailure("the second host's backup of the device-encrypted phone is not complete")
            _verify_same_files(elsewhere, second.commit.snapshot_id, third.commit.snapshot_id)

            partial = DeviceBackup(elsewhere, phone.udid, BackupOptions(categories=["photos"])).run()
            _say(f"photos-only backup: snapshot {partial.commit.snapshot_id[:8]} (partial)")
            _retention(elsewhere, phone.udid, third.commit.snapshot_id, partial.commit.snapshot_id)

            verify = check_repository(Repository.open(storage, Passphrase(passphrase)), read_data_fraction=1.0)
            if not verify.ok:
                raise DemoFailure(f"check --read-data failed: {verify.errors[0]}")
            stored = sum(i.size for i in storage.list("data/"))
            _say(
                f"check --read-data: {verify.packs_read} packs, {verify.blobs_read} blobs verified; "
                f"the repository holds {size(stored)}\n"
                f"demo verified in {time.monotonic() - started:.1f} s"
            )
    return 0


def _full_restore(repository: Repository, sim: SimServer, phone: SimulatedDevice, replacement: SimulatedDevice,
                  snapshot_id: str, settings: DemoSettings) -> None:
    """Restore onto the replacement with the defaults (complete, as Finder does): it becomes the phone,
    its own files go, it restarts; its next backup holds exactly the snapshot's files."""
    own = set(replacement.filesystem.snapshot_digest()) - set(phone.filesystem.snapshot_digest())
    t0 = time.monotonic()
    result = restore_snapshot(repository, snapshot_id, replacement.udid,
                              RestoreOptions(yes=True, progress=settings.progress))
    _say(f"full restore onto the replacement: {result.files} files, {size(result.bytes)}, "
         f"{time.monotonic() - t0:.1f} s; {'; '.join(result.notes)}")
    _compare("the replacement", _by_category(phone.filesystem.snapshot_digest()),
             _by_category(replacement.filesystem.snapshot_digest()))
    left = own & set(replacement.filesystem.snapshot_digest())
    if left or replacement.reboots != 1 or not sim.is_plugged(replacement.udid):
        raise DemoFailure(f"the replacement kept {len(left)} of its own items or did not restart")
    if replacement.name != phone.name:
        raise DemoFailure(f"the replacement is still called {replacement.name!r}")
    copy = DeviceBackup(repository, replacement.udid, BackupOptions(progress=settings.progress)).run()
    _verify_same_files(repository, snapshot_id, copy.commit.snapshot_id, exact=True)
    _say(f"backup of the replacement ({replacement.name}): snapshot {copy.commit.snapshot_id[:8]} holds exactly the "
         f"files of {snapshot_id[:8]}, keychain included, with identical content")


def _selective_restore(repository: Repository, phone: SimulatedDevice, target: SimulatedDevice, snapshot_id: str,
                       settings: DemoSettings) -> None:
    """Restore only the photos onto another phone: they arrive, everything else it had stays."""
    before = _by_category(target.filesystem.snapshot_digest())
    result = restore_snapshot(repository, snapshot_id, target.udid,
                              RestoreOptions(categories=["photos"], yes=True, progress=settings.progress))
    _say(f"selective restore of photos onto {target.name}: {'; '.join(result.notes)}")
    after = _by_category(target.filesystem.snapshot_digest())
    kept = {c: files for c, files in before.items() if c != "photos"}
    _compare(target.name, {"photos": _by_category(phone.filesystem.snapshot_digest())["photos"], **kept}, after)


def _retention(repository: Repository, udid: str, newest_complete: str, partial: str) -> None:
    """`forget --keep-last 1` with a partial snapshot the newest: the newest complete snapshot must stay (keep
    rules count complete snapshots), the partial one too (it is newer), and the older complete ones go."""
    entries = [e for e in repository.snapshots() if e.header.device.get("udid") == udid]
    decided = plan(entries, RetentionPolicy(last=1))
    kept = {e.snapshot_id for e in decided.keep}
    if newest_complete not in kept or partial not in kept or not decided.forget:
        raise DemoFailure("retention with a partial snapshot present did not keep the newest complete one")
    forget_snapshots(repository, [e.snapshot_id for e in decided.forget])
    reasons = "; ".join(f"{sid[:8]}: {', '.join(why)}" for sid, why in decided.reasons.items())
    _say(f"retention (keep-last 1) with the partial snapshot present: kept {len(decided.keep)} ({reasons}), "
         f"forgot {len(decided.forget)}")


def _verify_same_files(repository: Repository, original: str, copy: str, *, exact: bool = False) -> None:
    """Every file of `original` in `copy` with the same content; with `exact`, nothing more either."""
    def contents(snapshot_id: str) -> dict[tuple[str, str], list[bytes]]:
        view = open_view(repository, snapshot_id, None)
        return {(r.domain, r.relative_path): row.chunks for _, row, r in view.records() if r.is_file}

    expected, got = contents(original), contents(copy)
    different = [key for key, chunks in expected.items() if got.get(key) != chunks]
    if exact:
        different += sorted(set(got) - set(expected))
    if different:
        domain, path = different[0]
        raise DemoFailure(f"the replacement's backup differs in {len(different)} files, e.g. {domain}/{path}")


def _categories() -> list[str]:
    from agent.ios.categories import Category

    return [c.value for c in Category]
