"""`coffer forget` policies: which snapshots to keep, per device, restic-style, and why.

Per device (UDID), the `keep-*` rules count only its *complete* snapshots (agent/repository/
selection.py: a device never backed up complete counts its whole-device ones instead):
* `keep-last N` keeps the N newest; `keep-hourly/daily/weekly/monthly/yearly N` keep the newest
  snapshot of each of the N most recent hours, days, ISO weeks, months, years that have one;
* `keep-within D` keeps those less than D (e.g. `7d`, `2w`, `1y2m`) older than the device's
  newest counted snapshot (not than now: a repository left alone for a year keeps its last ones).
A snapshot kept by any rule stays. Partial snapshots (a chosen subset of categories, or lacking
what only device encryption brings) are never counted, so they cannot push a complete one out:
they are kept while newer than the newest kept counted snapshot of their device (every one,
when the device has none), and `keep-partial N` keeps the N newest of each kind besides.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.errors import UsageError
from agent.repository.repository import SnapshotEntry
from agent.repository.selection import COMPLETE, COVERAGE_NAMES, by_device, counted, coverage

_DURATION = re.compile(r"(\d+)([ymwdh])")


@dataclass(frozen=True)
class Duration:
    """A calendar span: years and months by the calendar, then weeks, days and hours."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Duration:
        """`7d`, `2w`, `1y2m`, `36h`: numbers with y(ears), m(onths), w(eeks), d(ays), h(ours)."""
        compact = text.strip().lower()
        parts = _DURATION.findall(compact)
        if not compact or "".join(n + u for n, u in parts) != compact:
            raise UsageError(f"a duration is like 7d, 2w, 1y2m or 36h (y, m, w, d, h), not {text!r}")
        amounts = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
        for number, unit in parts:
            amounts[unit] += int(number)
        if not any(amounts.values()):
            raise UsageError(f"the duration {text!r} is empty: give a positive one")
        return cls(amounts["y"], amounts["m"], amounts["w"], amounts["d"], amounts["h"], compact)

    def before(self, moment: dt.datetime) -> dt.datetime:
        """`moment` minus this span (the day clamped to the month's length: 31 March − 1m = 28/29 Feb)."""
        month_index = moment.year * 12 + moment.month - 1 - (self.years * 12 + self.months)
        year, month = divmod(month_index, 12)
        year = max(year, dt.MINYEAR)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        try:
            shifted = moment.replace(year=year, month=month + 1, day=day)
            return shifted - dt.timedelta(weeks=self.weeks, days=self.days, hours=self.hours)
        except OverflowError:  # a span longer than the calendar: everything is within it
            return dt.datetime.min.replace(tzinfo=moment.tzinfo)


@dataclass(frozen=True)
class RetentionPolicy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    partial: int = 0  # besides the default rule, keep this many newest partial snapshots per device

    @property
    def empty(self) -> bool:
        """No rule for counted snapshots (`keep-partial` alone would forget every complete one)."""
        return not any((self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly, self.within))


@dataclass
class RetentionPlan:
    """`keep` and `forget` partition the snapshots given (each oldest first); `reasons` say why each kept one is."""

    keep: list[SnapshotEntry] = field(default_factory=list)
    forget: list[SnapshotEntry] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)  # snapshot ID -> reasons, for kept ones


def _local(entry: SnapshotEntry) -> dt.datetime:
    return dt.datetime.fromtimestamp(entry.header.time).astimezone()


def _calendar(*fields: str) -> Callable[[SnapshotEntry], object]:
    return lambda entry: tuple(getattr(_local(entry), name) for name in fields)


def _periods(policy: RetentionPolicy) -> list[tuple[int, str, Callable[[SnapshotEntry], object]]]:
    """(count, reason, period of a snapshot): `last` counts snapshots, even two of the same time."""
    return [
        (policy.last, "last snapshot", lambda entry: entry.snapshot_id),
        (policy.hourly, "hourly snapshot", _calendar("year", "month", "day", "hour")),
        (policy.daily, "daily snapshot", _calendar("year", "month", "day")),
        (policy.weekly, "weekly snapshot", lambda entry: _local(entry).isocalendar()[:2]),
        (policy.monthly, "monthly snapshot", _calendar("year", "month")),
        (policy.yearly, "yearly snapshot", _calendar("year")),
    ]


def _counted_reasons(newest_first: list[SnapshotEntry], policy: RetentionPolicy) -> dict[str, list[str]]:
    reasons: dict[str, list[str]] = {}
    for count, reason, period in _periods(policy):
        remaining = count
        last_seen: object = None
        for entry in newest_first:
            if remaining <= 0:
                break
            key = period(entry)
            if key != last_seen:
                reasons.setdefault(entry.snapshot_id, []).append(reason)
                last_seen = key
                remaining -= 1
    if policy.within is not None and newest_first:
        cutoff = policy.within.before(_local(newest_first[0]))
        for entry in newest_first:
            if _local(entry) > cutoff:
                reasons.setdefault(entry.snapshot_id, []).append(f"within {policy.within.text}")
    return reasons


def _partial_reasons(
    newest_first: list[SnapshotEntry], newest_kept: SnapshotEntry | None, rank: int, policy: RetentionPolicy
) -> dict[str, list[str]]:
    """Reasons for the snapshots no keep rule counts. `keep-partial N` counts within each kind (partial,
    unencrypted), so adding a partial snapshot never pushes out an unencrypted whole-device one."""
    reasons: dict[str, list[str]] = {}
    kind = "complete" if rank == COMPLETE else "whole-device"
    seen: dict[int, int] = {}
    for entry in newest_first:
        label = COVERAGE_NAMES[coverage(entry)]  # "partial" or "unencrypted"
        if newest_kept is None:
            reasons.setdefault(entry.snapshot_id, []).append(f"{label}, and its device has no {kind} snapshot")
        elif (entry.header.time, entry.header.recorded) > (newest_kept.header.time, newest_kept.header.recorded):
            reasons.setdefault(entry.snapshot_id, []).append(f"{label}, newer than the newest kept {kind} snapshot")
        position = seen[coverage(entry)] = seen.get(coverage(entry), 0) + 1
        if position <= policy.partial:
            reasons.setdefault(entry.snapshot_id, []).append(f"{label} snapshot (keep-partial)")
    return reasons


def plan(entries: Iterable[SnapshotEntry], policy: RetentionPolicy) -> RetentionPlan:
    """Decide, per device, which snapshots `policy` keeps and why; an empty policy keeps everything."""
    entries = list(entries)
    if policy.empty:
        return RetentionPlan(keep=entries, reasons={e.snapshot_id: ["no keep rule"] for e in entries})
    reasons: dict[str, list[str]] = {}
    for group in by_device(entries).values():
        rank, counted_entries = counted(group)
        counted_ids = {e.snapshot_id for e in counted_entries}
        newest_first = list(reversed(counted_entries))
        kept = _counted_reasons(newest_first, policy)
        newest_kept = next((e for e in newest_first if e.snapshot_id in kept), None)
        others = [e for e in reversed(group) if e.snapshot_id not in counted_ids]
        reasons |= kept | _partial_reasons(others, newest_kept, rank, policy)
    result = RetentionPlan(reasons=reasons)
    for entry in entries:
        (result.keep if entry.snapshot_id in reasons else result.forget).append(entry)
    return result
