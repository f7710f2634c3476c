"""`coffer demo`: the whole product on the embedded defaults, verified end to end.

A simulated iPhone (in-process, real sockets, real pymobiledevice3) is backed up into a fresh
local encrypted repository with device backup encryption turned on (so Health and Keychain
are included), used for a day and backed up again incrementally, then the latest snapshot is
restored onto a second simulated "replacement" iPhone. The replacement's content is then
compared with the original category by category, and the replacement is backed up too: its
snapshot must hold the same files. Exit 0 only if every step verified.
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


def run_demo(settings: DemoSettings) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coffer-demo-") as scratch:
        workdir = settings.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        for name, sub in (("COFFER_STATE_DIR", "host-state"), ("COFFER_STAGING_DIR", "staging"),
                          ("COFFER_PAIR_RECORDS_DIR", "pair-records")):
            os.environ[name] = str(workdir / sub)
        os.environ.setdefault("COFFER_KDF_TARGET_SECONDS", "0.5")
        with SimServer(workdir / "simulator") as sim:
            os.environ["USBMUXD_SOCKET_ADDRESS"] = sim.address
            phone = sim.add_device(profile=settings.profile, seed=settings.seed, name="Alice's iPhone")
            replacement = sim.add_device(profile="tiny", seed=settings.seed + 1, name="Replacement iPhone")
            _say(f"simulated devices on {sim.address}: {phone.udid} ({settings.profile}), {replacement.udid} (replacement)")

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

            t0 = time.monotonic()
            result = restore_snapshot(
                repository, second.commit.snapshot_id, replacement.udid,
                RestoreOptions(system=True, yes=True, progress=settings.progress),
            )
            _say(f"restore onto the replacement: {result.files} files, {size(result.bytes)}, {time.monotonic() - t0:.1f} s")

            original = _by_category(phone.filesystem.snapshot_digest())
            restored = _by_category(replacement.filesystem.snapshot_digest())
            rows, failures = [], []
            for category in sorted(original):
                expected = original[category]
                got = {k: v for k, v in restored.get(category, {}).items() if k in expected}
                same = sum(1 for k, v in expected.items() if got.get(k) == v)
                rows.append([category, len(expected), same, "ok" if same == len(expected) else "DIFFERS"])
                if same != len(expected):
                    failures.append(category)
            _say(table(["Category", "Files on the original", "Identical on the replacement", ""], rows))
            if failures:
                raise DemoFailure(f"the replacement differs in: {', '.join(failures)}")

            check = DeviceBackup(
                repository, replacement.udid, BackupOptions(enable_device_encryption=True, progress=settings.progress)
            ).run()
            _verify_same_files(repository, second.commit.snapshot_id, check.commit.snapshot_id)
            _say(f"backup of the replacement: snapshot {check.commit.snapshot_id[:8]} holds every file of "
                 f"{second.commit.snapshot_id[:8]} with identical content")
            verify = check_repository(Repository.open(storage, Passphrase(passphrase)), read_data_fraction=1.0)
            if not verify.ok:
                raise DemoFailure(f"check --read-data failed: {verify.errors[0]}")
            logical = sum(s.bytes for r in (first, second, check) for s in r.commit.header.categories.values())
            stored = sum(i.size for i in storage.list("data/"))
            _say(
                f"check --read-data: {verify.packs_read} packs, {verify.blobs_read} blobs verified\n"
                f"dedup: three snapshots of {size(logical)} in all take {size(stored)} in the repository "
                f"({logical / max(stored, 1):.1f}x)\n"
                f"demo verified in {time.monotonic() - started:.1f} s"
            )
    return 0


def _verify_same_files(repository: Repository, original: str, copy: str) -> None:
    def contents(snapshot_id: str) -> dict[tuple[str, str], list[bytes]]:
        view = open_view(repository, snapshot_id, None)
        return {(r.domain, r.relative_path): row.chunks for _, row, r in view.records() if r.is_file}

    expected, got = contents(original), contents(copy)
    different = [key for key, chunks in expected.items() if got.get(key) != chunks]
    if different:
        domain, path = different[0]
        raise DemoFailure(f"the replacement's backup differs in {len(different)} files, e.g. {domain}/{path}")


def _categories() -> list[str]:
    from agent.ios.categories import Category

    return [c.value for c in Category]
