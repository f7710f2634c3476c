"""One device's job, run on a worker thread: identify the device, back it up, apply retention.

`DeviceBackup.run()` is blocking and runs its own event loop (`asyncio.run`), so each job
runs on a thread of the daemon's pool. `FleetBackup` is `DeviceBackup` plus what a daemon
needs while it runs: the bytes and files received so far (for the status page) and
`cancel()`, which cancels the device transfer from another thread. A cancelled transfer
unwinds through DeviceBackup's own failure path (what reached the repository is indexed, the
repository stays consistent, this host's previous metadata is untouched), so the next run
resumes. Once the transfer is over, the snapshot is committed even during a shutdown: that
is the checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.device.backup import BackupOptions, DeviceBackup
from agent.device.connect import PAIR_TIMEOUT_SECONDS, lockdown_session, translate
from agent.device.state import DeviceStateStore
from agent.errors import (
    AccessDeniedError,
    BackupFormatError,
    CofferError,
    DeviceDisconnectedError,
    DeviceLockedError,
    DeviceNotTrustedError,
    RepositoryDamagedError,
    UsageError,
    WrongSecretError,
)
from agent.fleet.events import EventLog
from agent.fleet.jobs import (
    BackupProgress,
    Failed,
    Interrupted,
    JobState,
    NeedsUser,
    NotSelected,
    Outcome,
    Succeeded,
)
from agent.fleet.policy import Policy
from agent.fleet.retention import RetentionSkipped, apply_retention
from agent.repository.repository import Repository

logger = logging.getLogger(__name__)

SHUTDOWN_REASON = "interrupted by a shutdown: it resumes when the daemon starts again"
# Failures that another try will not fix until someone acts (a key, a password, the repository).
_PERMANENT = (WrongSecretError, AccessDeniedError, UsageError, BackupFormatError, RepositoryDamagedError)


@dataclass(frozen=True)
class DeviceFacts:
    name: str
    model: str
    ios_version: str
    data_bytes: int | None  # data on the device: about what a first backup transfers


async def probe(udid: str) -> DeviceFacts:
    """Name, model, iOS version and data size of a device (pairs with it if needed: the Trust prompt)."""
    async with lockdown_session(udid, trust_timeout=PAIR_TIMEOUT_SECONDS) as lockdown:
        values = lockdown.all_values
        usage = await lockdown.get_value("com.apple.disk_usage") or {}
    capacity, available = usage.get("TotalDataCapacity"), usage.get("TotalDataAvailable")
    data = capacity - available if isinstance(capacity, int) and isinstance(available, int) else None
    return DeviceFacts(
        name=str(values.get("DeviceName", "")),
        model=str(values.get("ProductType", "")),
        ios_version=str(values.get("ProductVersion", "")),
        data_bytes=data,
    )


def _failure(exc: BaseException) -> Outcome:
    if isinstance(exc, DeviceNotTrustedError):
        return NeedsUser(JobState.WAITING_FOR_TRUST, str(exc))
    if isinstance(exc, DeviceLockedError):
        return NeedsUser(JobState.WAITING_FOR_UNLOCK, str(exc))
    if isinstance(exc, CofferError):
        return Failed(
            str(exc),
            exc.exit_code,
            transient=not isinstance(exc, _PERMANENT),
            disconnected=isinstance(exc, DeviceDisconnectedError),
        )
    logger.debug("internal error in a fleet job", exc_info=exc)
    return Failed(f"internal error: {type(exc).__name__}: {exc}", 1, transient=True)


class DeviceJob:
    """The job of one device; `run()` on a worker thread, `cancel()` and `progress()` from any thread."""

    def __init__(self, repository: Repository, udid: str, policy: Policy, events: EventLog) -> None:
        self.repository = repository
        self.udid = udid
        self.policy = policy
        self.events = events
        self._backup: DeviceBackup | None = None
        self._expected: int | None = None
        self._cancelled = threading.Event()
        self._phase: str | None = "connecting"  # None while the backup reports its own phase

    def cancel(self) -> None:
        self._cancelled.set()
        backup = self._backup
        if backup is not None:
            backup.cancel()

    def progress(self) -> BackupProgress:
        backup = self._backup
        if backup is None:
            return BackupProgress(self._phase)
        received, files = backup.received()
        return BackupProgress(self._phase or backup.phase, received, files, self._expected, backup.device_percent)

    def run(self, on_identified: Callable[[DeviceFacts], None]) -> Outcome:
        """Identify, back up, apply retention. `on_identified(facts)` is called once the device is known."""
        try:
            facts = asyncio.run(probe(self.udid))
        except Exception as exc:
            return _failure(translate(exc, self.udid))
        on_identified(facts)
        if not self.policy.selects_name(facts.name):
            return NotSelected(f"its name {facts.name!r} matches no [policy] device_names pattern")
        if self._cancelled.is_set():
            return Interrupted(SHUTDOWN_REASON)
        first = DeviceStateStore(self.repository.config.repository_id).load(self.udid) is None
        self._expected = facts.data_bytes if first else None
        options = BackupOptions(
            enable_device_encryption=self.policy.require_encryption,
            categories=list(self.policy.categories) if self.policy.categories else None,
        )
        self._backup = DeviceBackup(self.repository, self.udid, options)
        if self._cancelled.is_set():
            return Interrupted(SHUTDOWN_REASON)
        self._phase = None
        started = time.monotonic()
        try:
            result = self._backup.run()
        except asyncio.CancelledError:
            return Interrupted(SHUTDOWN_REASON)
        except Exception as exc:
            return _failure(exc)
        seconds = time.monotonic() - started
        self._phase = "retention"
        self._retention(facts)
        return Succeeded(
            snapshot_id=result.commit.snapshot_id,
            bytes=result.uploads.bytes,
            files=result.uploads.files,
            seconds=seconds,
            complete=result.complete,
            notes=tuple(result.notes),
        )

    def _retention(self, facts: DeviceFacts) -> None:
        if self.policy.retention.empty:
            return
        try:
            forgotten = apply_retention(self.repository, self.policy.retention, self.udid)
        except RetentionSkipped as note:
            self.events.emit("retention_skipped", udid=self.udid, name=facts.name, reason=str(note))
        except CofferError as exc:
            self.events.emit("retention_failed", udid=self.udid, name=facts.name, reason=str(exc))
        else:
            self.events.emit("retention_applied", udid=self.udid, name=facts.name, forgotten=forgotten)
