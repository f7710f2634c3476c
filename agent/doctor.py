"""`coffer doctor`: what stands between this host and a working backup, one check at a time, each with its fix.

Checks, in order: usbmuxd reachable; per device: paired and trusted, backup encryption, free space on the
device, free space on the host for a backup of it, its clock against the host's; the repository reachable
and unlocked by the secret given; the host clock against the storage's own timestamps.

A check is `ok`, `warning` (a value the device does not report, backup encryption off, nothing to compare
with) or `failed`. Expected backup size: what the device says it uses of its data partition
(`com.apple.disk_usage` `TotalDataCapacity - TotalDataAvailable`), the most a full backup sends.
Clock references (no network time query, so the doctor runs offline): each device's lockdown
`TimeIntervalSince1970` (a phone keeps network time), and the newest modification time the storage
reports for the repository's `config` and snapshot objects (for S3 the provider's clock; a host clock behind
it is what breaks request signing and retention dates).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import (
    CofferError,
    DeviceError,
    DeviceLockedError,
    DeviceNotTrustedError,
    UsageError,
    WrongSecretError,
)
from agent.units import size

OK, WARNING, FAILED = "ok", "warning", "failed"
DEFAULT_HEADROOM = 1 << 30  # keep 1 GiB free on the host beyond what a backup may need
DEVICE_MIN_FREE = 1 << 30  # below this iOS fails backups with MBErrorDomain 106 (no room for its snapshot)
MAX_CLOCK_SKEW = 300.0  # seconds; S3 refuses requests past 15 minutes, snapshot times mislead well before


@dataclass
class Check:
    check: str  # usbmuxd, trust, encryption, device space, host space, repository space, repository, clock
    status: str
    message: str
    fix: str = ""
    udid: str | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        label = {OK: "ok", WARNING: "warn", FAILED: "FAIL"}[self.status]
        return f"{label:<5} {self.check}: {self.message}" + (f" (fix: {self.fix})" if self.fix else "")


@dataclass
class DeviceFacts:
    """What a trusted device told the doctor, for the host-side checks."""

    udid: str
    encrypts: bool | None = None
    used_bytes: int | None = None


def free_bytes(path: Path) -> tuple[Path, int]:
    """Free space of the file system holding `path` (its nearest existing ancestor, if it does not exist yet)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe, shutil.disk_usage(probe).free


# --- usbmuxd and devices -----------------------------------------------------------------------------


def usbmuxd_check() -> tuple[Check, list[str]]:
    from agent.device.connect import attached_devices, usbmux_address

    where = usbmux_address() or "the system socket"
    try:
        devices = asyncio.run(attached_devices())
    except DeviceError as exc:  # "cannot reach usbmuxd at …: fix", or "no permission to open … : fix"
        problem, _, fix = str(exc).partition(": ")
        return Check("usbmuxd", FAILED, problem, fix), []
    udids = [d.udid for d in devices]
    status, fix = (OK, "") if udids else (WARNING, "plug the device in with a data cable and unlock it")
    return Check("usbmuxd", status, f"reachable at {where}, {len(udids)} device(s) connected", fix,
                 values={"address": where, "devices": len(udids)}), udids


async def _device_checks(udid: str) -> tuple[list[Check], DeviceFacts | None]:
    from pymobiledevice3.exceptions import LockdownError

    from agent.device.connect import PAIR_TIMEOUT_SECONDS, lockdown_session

    checks: list[Check] = []
    try:
        async with lockdown_session(udid, trust_timeout=PAIR_TIMEOUT_SECONDS) as lockdown:
            values = dict(lockdown.all_values)
            facts = DeviceFacts(udid)
            name = values.get("DeviceName") or udid
            checks.append(Check("trust", OK, f"{name} is paired with this computer and trusts it", udid=udid))
            try:
                facts.encrypts = bool(await lockdown.get_value("com.apple.mobile.backup", "WillEncrypt"))
            except LockdownError:
                facts.encrypts = None
            checks.append(_encryption_check(udid, facts.encrypts))
            try:
                usage = await lockdown.get_value("com.apple.disk_usage")
            except LockdownError:
                usage = None
            checks.append(_device_space_check(udid, usage if isinstance(usage, dict) else {}, facts))
            checks.append(_device_clock_check(udid, values.get("TimeIntervalSince1970")))
    except DeviceNotTrustedError as exc:
        return [Check("trust", FAILED, str(exc), "unlock the device, tap Trust and enter its passcode", udid=udid)], None
    except DeviceLockedError:
        return [Check("trust", FAILED, f"device {udid} is locked", "unlock it with its passcode", udid=udid)], None
    except DeviceError as exc:
        return [Check("trust", FAILED, str(exc), "replug the cable (a data cable, not charge-only) and unlock the device",
                      udid=udid)], None
    return checks, facts


def _encryption_check(udid: str, encrypts: bool | None) -> Check:
    if encrypts is None:
        return Check("encryption", WARNING, "the device does not report whether it encrypts backups", udid=udid)
    if encrypts:
        return Check("encryption", OK, "backup encryption is on (health data, keychain and Wi-Fi are included)", udid=udid)
    return Check("encryption", WARNING, "backup encryption is off: iOS leaves health data, the keychain and Wi-Fi "
                 "passwords out of the backup", f"coffer backup --udid {udid} --enable-device-encryption", udid=udid)


def _device_space_check(udid: str, usage: dict[str, Any], facts: DeviceFacts) -> Check:
    capacity, available = usage.get("TotalDataCapacity"), usage.get("TotalDataAvailable")
    if not isinstance(capacity, int) or not isinstance(available, int):
        return Check("device space", WARNING, "the device does not report its free space", udid=udid)
    facts.used_bytes = max(capacity - available, 0)
    values = {"available": available, "capacity": capacity, "expected_backup_bytes": facts.used_bytes}
    if available < DEVICE_MIN_FREE:
        return Check("device space", FAILED, f"{size(available)} free on the device, a backup needs "
                     f"{size(DEVICE_MIN_FREE)} there for its snapshot", "free space on the device (Settings › "
                     "General › iPhone Storage), then back up", udid=udid, values=values)
    return Check("device space", OK, f"{size(available)} free on the device; a full backup is about "
                 f"{size(facts.used_bytes)}", udid=udid, values=values)


def _device_clock_check(udid: str, device_time: object) -> Check:
    if not isinstance(device_time, int | float):
        return Check("clock", WARNING, "the device does not report its time", udid=udid)
    return clock_check(f"device {udid}", float(device_time), udid)


def device_checks(udid: str) -> tuple[list[Check], DeviceFacts | None]:
    return asyncio.run(_device_checks(udid))


# --- host ---------------------------------------------------------------------------------------------


def host_space_check(facts: DeviceFacts, staging: Path, headroom: int) -> Check:
    """Staging holds every file whose category is not known yet; all of them for a device-encrypted
    backup (its file keys arrive last), so then the whole expected size must fit, plus the headroom."""
    where, free = free_bytes(staging)
    expected = facts.used_bytes
    if expected is None:
        return Check("host space", WARNING, f"{size(free)} free for staging at {where}; the device does not "
                     "report its size", udid=facts.udid, values={"free": free, "path": str(where)})
    needed = (expected if facts.encrypts is not False else 0) + headroom
    values = {"free": free, "needed": needed, "path": str(where), "headroom": headroom}
    if free < needed:
        return Check("host space", FAILED, f"{size(free)} free for staging at {where}, a backup of this device "
                     f"needs {size(needed)}", "free space there, or point COFFER_STAGING_DIR at a larger disk",
                     udid=facts.udid, values=values)
    return Check("host space", OK, f"{size(free)} free for staging at {where} ({size(needed)} needed)",
                 udid=facts.udid, values=values)


def repository_space_check(root: Path, expected: int, headroom: int) -> Check:
    """A local repository receives at most the new data: up to a full backup's size, less after compression and
    deduplication, so only the headroom is a hard floor."""
    _, free = free_bytes(root)
    values = {"free": free, "expected_backup_bytes": expected, "path": str(root), "headroom": headroom}
    if free < headroom:
        return Check("repository space", FAILED, f"{size(free)} free at {root}", "free space there or move the "
                     "repository to a larger disk", values=values)
    if free < expected + headroom:
        return Check("repository space", WARNING, f"{size(free)} free at {root}; a first backup stores up to "
                     f"{size(expected)} (less after deduplication)", values=values)
    return Check("repository space", OK, f"{size(free)} free at {root}", values=values)


def clock_check(reference: str, their_time: float, udid: str | None = None) -> Check:
    skew = time.time() - their_time
    values = {"skew_seconds": round(skew, 3), "reference": reference}
    if abs(skew) > MAX_CLOCK_SKEW:
        direction = "ahead of" if skew > 0 else "behind"
        return Check("clock", FAILED, f"this host's clock is {_duration(abs(skew))} {direction} {reference}'s",
                     "turn on network time (Linux: `timedatectl set-ntp true`; macOS and Windows: set the date "
                     "and time automatically)", udid=udid, values=values)
    return Check("clock", OK, f"this host's clock agrees with {reference}'s (within {abs(skew):.0f} s)",
                 udid=udid, values=values)


def _duration(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.1f} {unit}"
    return f"{seconds:.0f} s"


# --- repository ---------------------------------------------------------------------------------------


def repository_checks(open_storage: Callable[[], Any], open_repository: Callable[[], Any]) -> list[Check]:
    """Reachable (the config reads), unlockable (the secret given opens it), and the storage's clock."""
    from agent.repository.config import CONFIG_NAME
    from agent.repository.repository import Repository

    try:
        storage = open_storage()
    except UsageError as exc:
        if "no repository" not in str(exc):
            raise  # a malformed --repo is a usage error (exit 2), as for every command
        return [Check("repository", WARNING, "no repository given: only the device checks ran",
                      "give --repo URL or set COFFER_REPOSITORY")]
    try:
        Repository.read_config(storage)
    except UsageError as exc:
        return [Check("repository", FAILED, str(exc), "correct --repo, or create one with `coffer init`")]
    except CofferError as exc:
        return [Check("repository", FAILED, f"{storage.location}: {exc}",
                      "check the network, the credentials (AWS_*) and that the location exists")]
    try:
        open_repository()
    except WrongSecretError as exc:
        return [Check("repository", FAILED, f"{storage.location}: {exc}",
                      "give the right passphrase (--password-file, COFFER_PASSWORD…) or key (--key-file)")]
    except UsageError as exc:
        return [Check("repository", FAILED, f"{storage.location}: {exc}",
                      "give a secret: --password-file F, --key-file F or COFFER_PASSWORD")]
    except CofferError as exc:
        return [Check("repository", FAILED, f"{storage.location}: {exc}", "run `coffer check`")]
    checks = [Check("repository", OK, f"{storage.location} is reachable and the secret given unlocks it")]
    newest = max([storage.stat(CONFIG_NAME).mtime, *(info.mtime for info in storage.list("snapshots/"))])
    checks.append(clock_check(f"the storage at {storage.location}", newest) if newest > time.time() else
                  Check("clock", OK, f"no object at {storage.location} is dated in this host's future"))
    return checks

