"""The Prometheus text exposition (format 0.0.4) of the daemon's status.

Counters (backups, bytes, durations, failures) are kept in the state file, so they survive a
restart of the daemon; every device series carries `udid` and `name` labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agent.fleet.jobs import JobState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[str, str, float]]) -> None:
        """One metric family: `samples` are (name suffix, labels, value)."""
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines.extend(f"{name}{suffix}{labels} {_number(value)}" for suffix, labels, value in samples)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(daemon: dict[str, Any], devices: list[dict[str, Any]]) -> str:
    out = _Exposition()

    def per_device(
        value: Callable[[dict[str, Any]], float | None], **extra: object
    ) -> list[tuple[str, str, float]]:
        samples = []
        for device in devices:
            number = value(device)
            if number is not None:
                samples.append(("", _labels(udid=device["udid"], name=device["name"], **extra), number))
        return samples

    out.family(
        "coffer_fleet_backups_total",
        "counter",
        "Backups finished, by device and result (success or failure).",
        per_device(lambda d: d["backups_succeeded"], result="success")
        + per_device(lambda d: d["backups_failed"], result="failure"),
    )
    out.family(
        "coffer_fleet_backup_bytes_total",
        "counter",
        "Bytes received from each device by successful backups.",
        per_device(lambda d: d["bytes_total"]),
    )
    durations = []
    for device in devices:
        labels = _labels(udid=device["udid"], name=device["name"])
        durations += [
            ("_sum", labels, float(device["seconds_total"])),
            ("_count", labels, device["backups_succeeded"]),
        ]
    out.family(
        "coffer_fleet_backup_duration_seconds", "summary", "Duration of successful backups.", durations
    )
    out.family(
        "coffer_fleet_last_backup_duration_seconds",
        "gauge",
        "Duration of the last successful backup.",
        per_device(lambda d: d["last_duration"]),
    )
    out.family(
        "coffer_fleet_last_success_timestamp_seconds",
        "gauge",
        "When the last successful backup of each device ended (Unix time).",
        per_device(lambda d: d["last_success_ts"]),
    )
    out.family(
        "coffer_fleet_device_plugged",
        "gauge",
        "1 while the device is plugged in.",
        per_device(lambda d: int(d["plugged"])),
    )
    out.family(
        "coffer_fleet_device_state",
        "gauge",
        "1 for the state each device is in.",
        [
            sample
            for state in JobState
            for sample in per_device(lambda d, s=state: int(d["state"] == s.value), state=state.value)
        ],
    )
    out.family(
        "coffer_fleet_backup_progress_bytes",
        "gauge",
        "Bytes received so far by running backups.",
        per_device(lambda d: d["progress"]["bytes"] if d["progress"] else None),
    )
    out.family("coffer_fleet_running_backups", "gauge", "Backups running now.", [("", "", daemon["running"])])
    out.family(
        "coffer_fleet_max_concurrent_backups",
        "gauge",
        "The configured maximum of concurrent backups.",
        [("", "", daemon["max_concurrent"])],
    )
    out.family(
        "coffer_fleet_start_time_seconds",
        "gauge",
        "When the daemon started (Unix time).",
        [("", "", daemon["started_ts"])],
    )
    return out.text()
