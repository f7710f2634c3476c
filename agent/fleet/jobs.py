"""Per-device job state: what the daemon knows about each device and the moves between states.

    waiting ──▶ backing_up ──▶ done ──(min_interval later)──▶ waiting
       ▲            │  ├──▶ failed (reason, retry_at) ──(retry_at / plugged back)──▶ backing_up
       │            │  ├──▶ waiting_for_trust / waiting_for_unlock ──(recheck, replug)──▶ backing_up
       └────────────┘  └──▶ ignored (not selected by the policy)
        interrupted by a shutdown

A record is plain data; `FleetQueue` (queue.py) holds the records, the lock and the clock.
`to_state`/`from_state` are what the state file keeps, so a restarted daemon knows when each
device was last backed up and which backups a shutdown interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent.archive.progress import estimate_device_total


class JobState(StrEnum):
    WAITING = "waiting"
    WAITING_FOR_TRUST = "waiting_for_trust"
    WAITING_FOR_UNLOCK = "waiting_for_unlock"
    BACKING_UP = "backing_up"
    DONE = "done"
    FAILED = "failed"
    IGNORED = "ignored"


@dataclass(frozen=True)
class BackupProgress:
    phase: str  # "connecting", "transferring", "committing", "retention"
    bytes: int = 0  # received from the device so far
    files: int = 0
    expected_bytes: int | None = None  # an estimate (a first backup: the data on the device), if any
    device_percent: float | None = None  # what the device itself reports, when it does

    @property
    def total_bytes(self) -> int | None:
        """The best estimate of what the device sends in all: `percent` is always `bytes` of this."""
        if self.phase in ("committing", "retention"):
            return self.bytes
        return estimate_device_total(self.bytes, self.device_percent, self.expected_bytes)

    @property
    def fraction(self) -> float | None:
        if self.phase in ("committing", "retention"):
            return 1.0
        total = self.total_bytes
        return min(self.bytes / total, 0.99) if total else None

    def to_json(self) -> dict[str, Any]:
        fraction = self.fraction
        return {
            "phase": self.phase,
            "bytes": self.bytes,
            "files": self.files,
            "expected_bytes": self.total_bytes,
            "percent": None if fraction is None else round(fraction * 100, 1),
        }


# --- how a job ended (worker.py produces these, FleetQueue.finish consumes them) -----------------


@dataclass(frozen=True)
class Succeeded:
    snapshot_id: str
    bytes: int  # received from the device
    files: int
    seconds: float
    complete: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class NeedsUser:
    """The device waits for its user: to tap Trust, or to unlock it."""

    state: JobState  # WAITING_FOR_TRUST or WAITING_FOR_UNLOCK
    reason: str


@dataclass(frozen=True)
class Failed:
    reason: str
    exit_code: int
    transient: bool  # retried with backoff while plugged; otherwise only when plugged back
    disconnected: bool = False  # the device went away


@dataclass(frozen=True)
class Interrupted:
    reason: str


@dataclass(frozen=True)
class NotSelected:
    reason: str


Outcome = Succeeded | NeedsUser | Failed | Interrupted | NotSelected

_PERSISTED = (
    "name", "model", "ios_version", "reason", "retry_at", "failures", "interrupted", "last_attempt",
    "last_success", "last_snapshot", "last_duration", "last_bytes", "last_notes", "last_failure", "last_error",
    "backups_succeeded",
    "backups_failed", "bytes_total", "seconds_total",
)  # fmt: skip


@dataclass
class DeviceRecord:
    udid: str
    name: str = ""
    model: str = ""
    ios_version: str = ""
    state: JobState = JobState.WAITING
    reason: str = ""
    plugged: bool = False
    retry_at: float | None = None  # not before this time (backoff, recheck of Trust/unlock)
    failures: int = 0  # consecutive transient failures, for the backoff
    interrupted: bool = False  # a shutdown stopped its backup: it goes first after a restart
    last_attempt: float | None = None
    last_success: float | None = None
    last_snapshot: str | None = None
    last_duration: float | None = None
    last_bytes: int | None = None
    last_notes: str = ""  # what the last successful backup noted (e.g. device encryption turned on): history
    last_failure: float | None = None
    last_error: str = ""  # the reason of the last failed backup (kept after later successes)
    paused: bool = False  # `coffer fleet pause UDID`: no backup starts (not kept across restarts)
    run_requested: bool = False  # `coffer fleet run UDID`: due now, whatever min_interval or a backoff say
    backups_succeeded: int = 0
    backups_failed: int = 0
    bytes_total: int = 0
    seconds_total: float = 0.0
    attached_at: float = 0.0
    started_at: float | None = None
    progress: BackupProgress | None = field(default=None, repr=False)

    # --- moves --------------------------------------------------------------------------------
    def attach(self, now: float) -> None:
        self.plugged, self.attached_at = True, now
        if self.state in (JobState.FAILED, JobState.WAITING_FOR_TRUST, JobState.WAITING_FOR_UNLOCK):
            self.retry_at = now  # plugging back in is the user asking for another try
        if self.state is JobState.IGNORED:
            self.state, self.reason = JobState.WAITING, ""  # the policy may have changed: look again

    def detach(self) -> None:
        self.plugged = False
        if self.state in (JobState.WAITING_FOR_TRUST, JobState.WAITING_FOR_UNLOCK):
            self.state, self.reason, self.retry_at = (
                JobState.WAITING,
                "unplugged before it was backed up",
                None,
            )

    def ignore(self, reason: str) -> None:
        self.state, self.reason, self.retry_at = JobState.IGNORED, reason, None

    def begin(self, now: float) -> None:
        if self.state is JobState.BACKING_UP:
            raise RuntimeError(f"device {self.udid} is already being backed up")
        self.state, self.reason, self.run_requested = JobState.BACKING_UP, "", False
        self.started_at = self.last_attempt = now
        self.progress = BackupProgress("connecting")

    def finish(self, outcome: Outcome, now: float, *, backoff: float, recheck: float) -> None:
        """Apply a job's outcome: a transient failure is retried after `backoff` seconds, a device
        waiting for its user is looked at again after `recheck` seconds."""
        replugged = self.plugged and self.started_at is not None and self.attached_at > self.started_at
        self.progress, self.started_at = None, None
        if isinstance(outcome, Succeeded):
            # Notes belong to that backup, not to the device's state: a resolved one must not linger there.
            self.state, self.reason, self.last_notes = JobState.DONE, "", "; ".join(outcome.notes)
            self.retry_at, self.failures, self.interrupted = None, 0, False
            self.last_success, self.last_snapshot = now, outcome.snapshot_id
            self.last_duration, self.last_bytes = outcome.seconds, outcome.bytes
            self.backups_succeeded += 1
            self.bytes_total += outcome.bytes
            self.seconds_total += outcome.seconds
        elif isinstance(outcome, NeedsUser):
            self.state, self.reason, self.retry_at = outcome.state, outcome.reason, now + recheck
        elif isinstance(outcome, Failed):
            self.state, self.reason = JobState.FAILED, outcome.reason
            if outcome.disconnected and not self.plugged:
                self.reason = (
                    "unplugged during the backup: it starts again when the device is plugged back in"
                )
            self.backups_failed += 1
            self.last_failure, self.last_error = now, self.reason
            if outcome.disconnected and replugged:
                self.retry_at = now  # unplugged and back already: that was the user, not a fault
            elif outcome.transient and self.plugged:
                self.failures += 1
                self.retry_at = now + backoff
            else:
                self.retry_at = None  # waits for the device to be plugged back in
        elif isinstance(outcome, Interrupted):
            self.state, self.reason, self.interrupted = JobState.WAITING, outcome.reason, True
        else:
            self.ignore(outcome.reason)

    # --- the state file -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        doc = {name: getattr(self, name) for name in _PERSISTED}
        doc["udid"] = self.udid
        doc["state"] = self.state.value
        return doc

    @classmethod
    def from_state(cls, doc: dict[str, Any]) -> DeviceRecord:
        record = cls(udid=str(doc["udid"]), **{name: doc[name] for name in _PERSISTED if name in doc})
        record.state = JobState(doc.get("state", JobState.WAITING))
        if record.state is JobState.BACKING_UP:  # the daemon died mid-backup: resume it
            record.state, record.interrupted = JobState.WAITING, True
            record.reason = "interrupted: the daemon stopped during the backup"
        return record
