"""Choosing snapshots on the command line: `--udid` (a UDID or a device name), `latest`, ID prefixes.

Rules (DESIGN.md §4, "Selectors"):
* `--udid U` names one device by its UDID or its name (case-insensitive, exact); a name that
  several devices share must be given as a UDID.
* `latest` is the newest *complete* snapshot of one device — never a safety snapshot taken of a
  restore's target, never a partial one. With several devices in the repository a bare
  `latest` is refused (exit 2) naming them.
* An ID prefix needs at least 8 hex digits and must match one snapshot among all of them, so a
  slip of one character (`restore 0`) never selects a whole device.

A device never backed up complete (device backup encryption off) has no complete snapshot;
for it "complete" falls back to its whole-device ones (every category the device sent, not a
chosen subset). `coverage` and `counted` express that ranking, shared with retention.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agent.errors import UsageError

if TYPE_CHECKING:
    from agent.repository.repository import SnapshotEntry

LATEST = "latest"
MIN_PREFIX = 8
SAFETY_ROLE = "safety"

# Coverage ranks: what a snapshot holds of its device.
PARTIAL, WHOLE, COMPLETE = 0, 1, 2
COVERAGE_NAMES = {COMPLETE: "complete", WHOLE: "unencrypted", PARTIAL: "partial"}


def chronological(entries: Iterable[SnapshotEntry]) -> list[SnapshotEntry]:
    """Oldest first by the backup's own date; snapshots of the same date in the order they were written."""
    return sorted(entries, key=lambda e: (e.header.time, e.header.recorded, e.snapshot_id))


def udid_of(entry: SnapshotEntry) -> str:
    return entry.header.device.get("udid", "")


def device_label(entry: SnapshotEntry) -> str:
    name = entry.header.device.get("name", "")
    return f"{name} ({udid_of(entry)})" if name else udid_of(entry)


def coverage(entry: SnapshotEntry) -> int:
    """COMPLETE, WHOLE (every category the device sent, but not the encrypted-only ones) or PARTIAL."""
    if entry.header.partial:
        return PARTIAL
    return COMPLETE if entry.header.complete else WHOLE


def counted(entries: Iterable[SnapshotEntry]) -> tuple[int, list[SnapshotEntry]]:
    """Of one device's snapshots, the best-covered tier that retention counts and `latest` picks from:
    the complete ones, else the whole-device ones; partial ones are never counted (rank PARTIAL, [])."""
    entries = list(entries)
    best = max((coverage(e) for e in entries), default=PARTIAL)
    if best == PARTIAL:
        return PARTIAL, []
    return best, [e for e in entries if coverage(e) == best]


def by_device(entries: Iterable[SnapshotEntry]) -> dict[str, list[SnapshotEntry]]:
    """Snapshots grouped per UDID, each group oldest first; groups in the order their devices first appear."""
    groups: dict[str, list[SnapshotEntry]] = {}
    for entry in chronological(entries):
        groups.setdefault(udid_of(entry), []).append(entry)
    return groups


def _devices_text(groups: dict[str, list[SnapshotEntry]]) -> str:
    return ", ".join(device_label(group[-1]) for group in groups.values())


def resolve_device(entries: Iterable[SnapshotEntry], device: str) -> str:
    """The UDID that `device` (a UDID or a device name, case-insensitive) names among the snapshots."""
    groups = by_device(entries)
    wanted = device.strip().casefold()
    for udid in groups:
        if udid.casefold() == wanted:
            return udid
    named = [udid for udid, group in groups.items() if any(e.header.device.get("name", "").casefold() == wanted
                                                             for e in group)]
    if len(named) == 1:
        return named[0]
    if named:
        raise UsageError(
            f"several devices are named {device!r}: choose one by UDID with --udid ({', '.join(named)})"
        )
    known = f" (devices: {_devices_text(groups)})" if groups else ""
    raise UsageError(f"no snapshots of a device {device!r} in the repository{known}")


def for_device(entries: Iterable[SnapshotEntry], device: str | None) -> list[SnapshotEntry]:
    """The snapshots of the device `device` names (all of them when None), oldest first."""
    entries = chronological(entries)
    if device is None:
        return entries
    udid = resolve_device(entries, device)
    return [e for e in entries if udid_of(e) == udid]


def latest(entries: Iterable[SnapshotEntry], device: str | None = None) -> SnapshotEntry:
    """The newest complete, non-safety snapshot of the one device in the repository, or of `device`."""
    entries = list(entries)
    groups = by_device(entries)
    if not groups:
        raise UsageError("the repository has no snapshots yet")
    if device is not None:
        udid = resolve_device(entries, device)
    elif len(groups) > 1:
        raise UsageError(
            f"`latest` is ambiguous: the repository holds snapshots of {len(groups)} devices — "
            f"{_devices_text(groups)}: choose one with --udid UDID (or --udid NAME)"
        )
    else:
        udid = next(iter(groups))
    group = groups[udid]
    own = [e for e in group if e.header.role != SAFETY_ROLE]
    _rank, candidates = counted(own)
    if not candidates:
        label = device_label(group[-1])
        kind = "partial or safety snapshots" if own else "safety snapshots (taken before a restore onto it)"
        raise UsageError(
            f"device {label} has no complete snapshot to call `latest`, only {kind}: "
            f"name one by ID (see `coffer snapshots --udid {udid}`)"
        )
    return candidates[-1]


def by_id(entries: Iterable[SnapshotEntry], reference: str) -> SnapshotEntry:
    """The one snapshot whose ID starts with `reference` (at least MIN_PREFIX hex digits)."""
    prefix = reference.strip().lower()
    if not prefix or any(c not in string.hexdigits for c in prefix):
        raise UsageError(f"{reference!r} is not a snapshot ID (hex digits) nor `latest` (see `coffer snapshots`)")
    if len(prefix) < MIN_PREFIX:
        raise UsageError(
            f"snapshot ID {reference!r} is too short: give at least {MIN_PREFIX} hex digits (see `coffer snapshots`)"
        )
    matches = [e for e in entries if e.snapshot_id.startswith(prefix)]
    if not matches:
        raise UsageError(f"no snapshot {reference!r} (see `coffer snapshots`)")
    if len(matches) > 1:
        raise UsageError(f"snapshot ID prefix {reference!r} matches {len(matches)} snapshots: give more digits")
    return matches[0]


def find(entries: Iterable[SnapshotEntry], reference: str, device: str | None = None) -> SnapshotEntry:
    """Resolve a SNAPSHOT argument (`latest` or an ID prefix), optionally of the device `device` names."""
    entries = list(entries)
    if not entries:
        raise UsageError("the repository has no snapshots yet")
    if reference == LATEST:
        return latest(entries, device)
    entry = by_id(entries, reference)
    if device is not None and udid_of(entry) != resolve_device(entries, device):
        raise UsageError(f"snapshot {entry.short_id} is of device {device_label(entry)}, not {device!r}")
    return entry
