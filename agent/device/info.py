"""`coffer info`: what a device says about itself over lockdown, as `ideviceinfo` and
`idevicebackup2 info` show it, and what the last backup of it in the repository says.

The device part needs a trusted, unlocked device (lockdown session); the backup part needs a
key that reads snapshot headers, and is left out when no repository is given.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

from pymobiledevice3.exceptions import LockdownError

from agent.device.connect import lockdown_session
from agent.errors import BackupFormatError
from agent.ios.plists import load_plist_dict
from agent.repository.repository import Repository, SnapshotEntry

# Lockdown domains read besides the default one: backup encryption and disk usage.
DOMAINS = ("com.apple.mobile.backup", "com.apple.disk_usage")

# Info.plist keys that iTunes and Finder write about the device (`idevicebackup2 info` prints them all).
_INFO_PLIST_SKIP = ("iTunes Files", "iTunes Settings", "Applications", "iBooks Data 2")


@dataclass
class DeviceReport:
    udid: str
    values: dict[str, Any]  # the default domain: DeviceName, ProductType, ProductVersion, …
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)


def json_safe(value: Any) -> Any:
    """Lockdown and plist values as JSON: bytes as base64, dates as ISO text, containers recursively."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


async def _read_device(udid: str) -> DeviceReport:
    async with lockdown_session(udid) as lockdown:
        report = DeviceReport(udid, dict(await lockdown.get_value() or lockdown.all_values))
        for domain in DOMAINS:
            try:
                values = await lockdown.get_value(domain)
            except LockdownError:
                continue  # an older iOS, or a domain this device does not answer
            if isinstance(values, dict):
                report.domains[domain] = values
    return report


def read_device(udid: str) -> DeviceReport:
    """The device's lockdown values; DeviceError (exit 5) when it is absent, locked or untrusted."""
    return asyncio.run(_read_device(udid))


def last_backup(repository: Repository, udid: str) -> SnapshotEntry | None:
    """The newest snapshot of `udid`, complete or not (None when the repository has none)."""
    entries = [e for e in repository.snapshots() if e.header.device.get("udid") == udid]
    return entries[-1] if entries else None


def backup_info_plist(entry: SnapshotEntry) -> dict[str, Any]:
    """The snapshot's Info.plist, without the bulky per-app sections; empty if it does not parse."""
    try:
        values = load_plist_dict(entry.header.info_plist, "Info.plist")
    except BackupFormatError:
        return {}
    return {k: v for k, v in values.items() if k not in _INFO_PLIST_SKIP}
