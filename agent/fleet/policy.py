"""The fleet policy: which devices to back up, how often, when not, and how to retry.

Pure decisions on wall-clock seconds (`time.time()` values, so they survive a restart);
quiet hours are read in the host's local time.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from agent.repository.retention import RetentionPolicy

# Lightning iPhones talk USB 2 (480 Mbit/s, about 35 MB/s in practice): two backups fill one bus.
BACKUPS_PER_USB2_BUS = 2
MAX_DEFAULT_CONCURRENT = 4
_USB_ROOT_HUBS = Path("/sys/bus/usb/devices")


@dataclass(frozen=True)
class QuietHours:
    """A daily window (local time) in which no new backup starts; `end` before `start` wraps midnight."""

    start: dt.time
    end: dt.time

    def window_end(self, moment: dt.datetime) -> dt.datetime | None:
        """The end of the window `moment` falls in, or None when it falls outside."""
        now = moment.time()
        today_end = dt.datetime.combine(moment.date(), self.end)
        if self.start <= self.end:
            return today_end if self.start <= now < self.end else None
        if now >= self.start:
            return today_end + dt.timedelta(days=1)
        return today_end if now < self.end else None

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def normalise_udid(udid: str) -> str:
    """usbmuxd may report a UDID with or without its dash; compare without, upper case."""
    return udid.replace("-", "").upper()


@dataclass(frozen=True)
class Policy:
    devices: tuple[str, ...] | None = None  # UDIDs; None means every device
    name_patterns: tuple[str, ...] = ()  # glob patterns on the device name; empty means any name
    min_interval: float = 12 * 3600.0
    max_concurrent: int = 2
    require_encryption: bool = False
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    quiet_hours: tuple[QuietHours, ...] = ()
    retry_initial: float = 30.0
    retry_max: float = 1800.0
    recheck_interval: float = 10.0  # how often a device waiting for Trust or unlock is looked at again
    categories: tuple[str, ...] | None = None  # store only these; None means every category

    def selects_udid(self, udid: str) -> bool:
        return self.devices is None or normalise_udid(udid) in {normalise_udid(d) for d in self.devices}

    def selects_name(self, name: str) -> bool:
        return not self.name_patterns or any(fnmatch.fnmatchcase(name, p) for p in self.name_patterns)

    def next_due(self, last_success: float | None) -> float:
        """When the device should be backed up again (0: now)."""
        return 0.0 if last_success is None else last_success + self.min_interval

    def quiet_until(self, now: float) -> float | None:
        """The end of the quiet hours `now` falls in (windows that touch are followed), else None."""
        moment = dt.datetime.fromtimestamp(now)
        end: dt.datetime | None = None
        for _ in range(len(self.quiet_hours) + 1):
            ends = [
                e
                for window in self.quiet_hours
                if (e := window.window_end(moment)) is not None and e > moment
            ]
            if not ends:
                break
            end = moment = max(ends)
        return end.timestamp() if end is not None else None

    def retry_delay(self, failures: int) -> float:
        """Exponential backoff after the `failures`-th consecutive transient failure (1, 2, …)."""
        return min(self.retry_max, self.retry_initial * 2 ** max(failures - 1, 0))


def usb2_bus_count(root: Path = _USB_ROOT_HUBS) -> int | None:
    """How many USB 2 root hubs Linux reports (sysfs), None when it cannot be read (other systems)."""
    try:
        hubs = [p for p in root.iterdir() if p.name.startswith("usb")]
    except OSError:
        return None
    count = 0
    for hub in hubs:
        try:
            if (hub / "speed").read_text().strip() == "480":
                count += 1
        except OSError:
            continue
    return count or None


def default_max_concurrent(cpu_count: int | None = None, usb2_buses: int | None = None) -> int:
    """One backup keeps about one core busy at USB 2 speed, and a USB 2 bus carries about two:
    the smaller of the two limits, at most MAX_DEFAULT_CONCURRENT."""
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    limit = min(cores, MAX_DEFAULT_CONCURRENT)
    if usb2_buses:
        limit = min(limit, usb2_buses * BACKUPS_PER_USB2_BUS)
    return max(limit, 1)
