"""`coffer forget` policies: which snapshots to keep, per device, restic-style.

Each `keep-*` rule walks a device's snapshots from newest to oldest and keeps the newest
snapshot of each of its N most recent periods (hour, day, ISO week, month, year);
`keep-last` keeps the N newest. A snapshot kept by any rule stays.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from agent.repository.repository import SnapshotEntry


@dataclass(frozen=True)
class RetentionPolicy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    @property
    def empty(self) -> bool:
        return not any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly))


def _periods(policy: RetentionPolicy) -> list[tuple[int, Callable[[dt.datetime], object]]]:
    return [
        (policy.last, lambda t: t.timestamp()),
        (policy.hourly, lambda t: (t.year, t.month, t.day, t.hour)),
        (policy.daily, lambda t: (t.year, t.month, t.day)),
        (policy.weekly, lambda t: t.isocalendar()[:2]),
        (policy.monthly, lambda t: (t.year, t.month)),
        (policy.yearly, lambda t: t.year),
    ]


def select(entries: list[SnapshotEntry], policy: RetentionPolicy) -> tuple[list[SnapshotEntry], list[SnapshotEntry]]:
    """Split snapshots into (keep, forget), grouped per device UDID."""
    if policy.empty:
        return list(entries), []
    by_device: dict[str, list[SnapshotEntry]] = defaultdict(list)
    for entry in entries:
        by_device[entry.header.device.get("udid", "")].append(entry)
    keep_ids: set[str] = set()
    for group in by_device.values():
        newest_first = sorted(group, key=lambda e: e.header.time, reverse=True)
        for count, period in _periods(policy):
            remaining = count
            last_seen: object = None
            for entry in newest_first:
                if remaining <= 0:
                    break
                key = period(dt.datetime.fromtimestamp(entry.header.time).astimezone())
                if key != last_seen:
                    keep_ids.add(entry.snapshot_id)
                    last_seen = key
                    remaining -= 1
    keep = [e for e in entries if e.snapshot_id in keep_ids]
    forget = [e for e in entries if e.snapshot_id not in keep_ids]
    return keep, forget
