"""The job queue: device records, which backups may start now, and what happened to each.

One lock guards every record; each change is saved to the state file and logged as an
event while it is held, so the event log's order is the true order (the `running` field of
an event is the number of backups running right after it). Rules kept here: never two
backups of one device at once, never more than `max_concurrent`, nothing new during quiet
hours or after `stop_accepting()`, and interrupted backups first.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agent.commands.format import iso
from agent.fleet.events import EventLog
from agent.fleet.jobs import (
    BackupProgress,
    DeviceRecord,
    Failed,
    Interrupted,
    JobState,
    NeedsUser,
    NotSelected,
    Outcome,
    Succeeded,
)
from agent.fleet.policy import Policy, normalise_udid
from agent.fleet.store import StateFile

ProgressSource = Callable[[], BackupProgress]
_OUTCOME_EVENTS: dict[type, str] = {
    Succeeded: "backup_succeeded",
    Failed: "backup_failed",
    NeedsUser: "backup_waiting",
    Interrupted: "backup_interrupted",
    NotSelected: "device_ignored",
}


def _time(seconds: float | None) -> str | None:
    return iso(seconds) if seconds else None


def _progress_json(progress: BackupProgress | None, record: DeviceRecord, now: float) -> dict[str, Any] | None:
    """The progress document, with the mean rate since the backup started (bytes per second)."""
    if progress is None:
        return None
    document = progress.to_json()
    elapsed = now - record.started_at if record.started_at is not None else 0.0
    document["bytes_per_second"] = round(progress.bytes / elapsed) if elapsed > 0 else None
    return document


class FleetQueue:
    def __init__(
        self, policy: Policy, store: StateFile, events: EventLog, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy
        self.store = store
        self.events = events
        self.clock = clock
        self._lock = threading.RLock()  # re-entrant: a signal handler may wake the queue
        self._changed = threading.Condition(self._lock)
        self._records = store.load()
        self._running: set[str] = set()
        self._progress: dict[str, ProgressSource] = {}
        self._accepting = True
        self._paused = False  # `coffer fleet pause` without a UDID
        self._generation = 0

    # --- devices coming and going ----------------------------------------------------------------
    def _record(self, udid: str) -> DeviceRecord:
        key = normalise_udid(udid)
        for record in self._records.values():
            if normalise_udid(record.udid) == key:
                return record
        record = self._records[udid] = DeviceRecord(udid)
        return record

    def attached(self, udid: str) -> DeviceRecord:
        with self._lock:
            record = self._record(udid)
            record.attach(self.clock())
            if not self.policy.selects_udid(record.udid):
                record.ignore("not in the [policy] devices list")
            self._changed_locked("device_attached", record, state=record.state.value)
            return replace(record)

    def detached(self, udid: str) -> DeviceRecord:
        with self._lock:
            record = self._record(udid)
            record.detach()
            self._changed_locked("device_detached", record, state=record.state.value)
            return replace(record)

    # --- scheduling -----------------------------------------------------------------------------
    def _eligible_at(self, record: DeviceRecord, now: float) -> float | None:
        """When `record`'s next backup may start (ignoring free slots), None when not scheduled."""
        if record.state in (JobState.IGNORED, JobState.BACKING_UP) or self._paused or record.paused:
            return None
        waits_for_retry = record.state in (
            JobState.FAILED,
            JobState.WAITING_FOR_TRUST,
            JobState.WAITING_FOR_UNLOCK,
        )
        if record.run_requested:  # `coffer fleet run`: due now, whatever min_interval or a backoff say
            at = now
        elif waits_for_retry and record.retry_at is None:
            return None
        else:
            at = max(self.policy.next_due(record.last_success), record.retry_at or 0.0)
        quiet_end = self.policy.quiet_until(max(at, now))
        return quiet_end if quiet_end is not None else at

    def claim_ready(self) -> list[DeviceRecord]:
        """Mark as started (and return) the devices whose backup may start now, best first."""
        with self._lock:
            if not self._accepting:
                return []
            now = self.clock()
            free = self.policy.max_concurrent - len(self._running)
            ready = []
            for record in self._records.values():
                at = self._eligible_at(record, now) if record.plugged else None
                if at is not None and at <= now:
                    ready.append(record)
                elif at is not None and self.policy.quiet_until(now) == at:
                    record.reason = f"quiet hours until {dt.datetime.fromtimestamp(at):%H:%M}"
                elif (self._paused or record.paused) and record.plugged and record.state not in (
                    JobState.IGNORED, JobState.BACKING_UP
                ):
                    record.reason = "paused: `coffer fleet resume` lets backups start again"
            ready.sort(key=lambda r: (not r.interrupted, r.last_success or 0.0, r.attached_at))
            claimed = []
            for record in ready[: max(free, 0)]:
                record.begin(now)
                self._running.add(record.udid)
                self._changed_locked("backup_started", record, interrupted=record.interrupted)
                claimed.append(replace(record))
            for record in ready[max(free, 0) :]:
                if record.state is JobState.DONE:
                    record.state = JobState.WAITING
                record.reason = f"queued: {len(self._running)} backups running (max_concurrent)"
            return claimed

    def wake_time(self) -> float | None:
        """The earliest time a plugged device becomes eligible (None: only an event can change that)."""
        with self._lock:
            now = self.clock()
            times = [
                at for r in self._records.values()
                if r.plugged and (at := self._eligible_at(r, now)) is not None
            ]  # fmt: skip
            return min(times) if times else None

    @property
    def generation(self) -> int:
        """Grows with every change: `wait(generation, …)` then misses no change made since reading it."""
        with self._lock:
            return self._generation

    def wait(self, generation: int, timeout: float) -> None:
        """Until something changed since `generation` was read, or `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._generation != generation, timeout)

    def wake(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def stop_accepting(self) -> None:
        with self._lock:
            self._accepting = False
            self._generation += 1
            self._changed.notify_all()

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    # --- operator requests (`coffer fleet run/pause/resume`, over the status socket) -----------------
    def _known(self, udid: str) -> DeviceRecord:
        key = normalise_udid(udid)
        for record in self._records.values():
            if normalise_udid(record.udid) == key:
                return record
        raise LookupError(f"the daemon has not seen a device {udid}")

    def request_run(self, udid: str) -> DeviceRecord:
        """Back `udid` up as soon as a slot is free (quiet hours still hold). LookupError for an unknown
        device, ValueError when it cannot start (unplugged, ignored, paused, already running)."""
        with self._lock:
            record = self._known(udid)
            problem = (
                "is not plugged in" if not record.plugged
                else f"is not selected by the policy ({record.reason})" if record.state is JobState.IGNORED
                else "is being backed up already" if record.state is JobState.BACKING_UP
                else "is paused: `coffer fleet resume` first" if record.paused or self._paused
                else None
            )  # fmt: skip
            if problem is not None:
                raise ValueError(f"device {record.udid} {problem}")
            record.run_requested = True
            record.reason = "requested by `coffer fleet run`"
            self._changed_locked("backup_requested", record)
            return replace(record)

    def set_paused(self, paused: bool, udid: str | None = None) -> list[str]:
        """Pause (or resume) one device or, without `udid`, the whole daemon; running backups finish.
        Returns the UDIDs concerned (every known one when daemon-wide). LookupError for an unknown device."""
        with self._lock:
            if udid is None:
                self._paused = paused
                if not paused:  # a daemon-wide resume resumes every device
                    for record in self._records.values():
                        record.paused = False
                targets = list(self._records.values())
            else:
                targets = [self._known(udid)]
                targets[0].paused = paused
            for record in targets:
                if not paused and record.reason.startswith("paused"):
                    record.reason = ""
            self.events.emit("fleet_paused" if paused else "fleet_resumed", udid=udid, running=len(self._running))
            self._generation += 1
            self._changed.notify_all()
            return [record.udid for record in targets]

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._paused

    # --- a running job ----------------------------------------------------------------------------
    def identified(self, udid: str, *, name: str, model: str, ios_version: str) -> None:
        with self._lock:
            record = self._record(udid)
            record.name, record.model, record.ios_version = name, model, ios_version
            self._save_locked()

    def watch_progress(self, udid: str, source: ProgressSource) -> None:
        """Where the status reads the progress of `udid`'s running backup (until it finishes)."""
        with self._lock:
            self._progress[udid] = source

    def finish(self, udid: str, outcome: Outcome) -> DeviceRecord:
        """Record how the job of `udid` ended; returns a copy of the device's record."""
        with self._lock:
            record = self._record(udid)
            self._running.discard(record.udid)
            self._progress.pop(record.udid, None)
            now = self.clock()
            record.finish(
                outcome,
                now,
                backoff=self.policy.retry_delay(record.failures + 1),
                recheck=self.policy.recheck_interval,
            )
            fields: dict[str, Any] = {"state": record.state.value, "reason": record.reason or None}
            if isinstance(outcome, Succeeded):
                fields.update(
                    snapshot=outcome.snapshot_id,
                    bytes=outcome.bytes,
                    files=outcome.files,
                    seconds=round(outcome.seconds, 3),
                    complete=outcome.complete,
                )
            elif isinstance(outcome, Failed):
                fields.update(exit_code=outcome.exit_code, retry_at=_time(record.retry_at))
            self._changed_locked(_OUTCOME_EVENTS[type(outcome)], record, **fields)
            return replace(record)

    # --- reading ---------------------------------------------------------------------------------
    def statuses(self) -> list[dict[str, Any]]:
        """One document per known device (the `fleet status` shape), sorted by name then UDID."""
        with self._lock:
            now = self.clock()
            documents = []
            for record in sorted(self._records.values(), key=lambda r: (r.name.lower(), r.udid)):
                source = self._progress.get(record.udid)
                progress = source() if source is not None else record.progress
                due = self._eligible_at(record, now)
                documents.append({
                    "udid": record.udid,
                    "name": record.name,
                    "model": record.model,
                    "ios_version": record.ios_version,
                    "state": record.state.value,
                    "reason": record.reason,
                    "plugged": record.plugged,
                    "progress": _progress_json(progress, record, now) if record.state is JobState.BACKING_UP else None,
                    "started": _time(record.started_at),
                    "last_snapshot": record.last_snapshot,
                    "last_success": _time(record.last_success),
                    "last_success_ts": record.last_success,
                    "last_duration": record.last_duration,
                    "last_bytes": record.last_bytes,
                    "last_notes": record.last_notes or None,
                    "next_due": _time(max(due, now)) if due is not None else None,
                    "retry_at": _time(record.retry_at),
                    "last_error": record.last_error or None,
                    "last_failure": _time(record.last_failure),
                    "paused": record.paused or self._paused,
                    "interrupted": record.interrupted,
                    "backups_succeeded": record.backups_succeeded,
                    "backups_failed": record.backups_failed,
                    "bytes_total": record.bytes_total,
                    "seconds_total": round(record.seconds_total, 3),
                })  # fmt: skip
            return documents

    # --- internals --------------------------------------------------------------------------------
    def _save_locked(self) -> None:
        self.store.save(list(self._records.values()))

    def _changed_locked(self, event: str, record: DeviceRecord, **fields: Any) -> None:
        self._save_locked()
        self.events.emit(
            event, udid=record.udid, name=record.name or None, running=len(self._running), **fields
        )
        self._generation += 1
        self._changed.notify_all()
