"""Leases in `locks/`: the exclusive one prune takes, and the markers running backups leave.

Backups never wait for a lock: they only announce themselves (`locks/backup-<random>`,
with a start time and an expiry) so that prune knows the start of the oldest running
backup and never deletes a pack such a backup may have deduplicated against. Prune takes
`locks/prune` with put-if-absent; a lease past its expiry (a crashed prune) is taken over.
Leases hold times only, nothing about the data.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from agent.errors import CofferError, ObjectExistsError, ObjectNotFoundError
from agent.storage.base import Storage

LOCK_PREFIX = "locks/"
PRUNE_LOCK = LOCK_PREFIX + "prune"
BACKUP_MARKER_PREFIX = LOCK_PREFIX + "backup-"
PRUNE_LEASE_SECONDS = 6 * 3600
BACKUP_LEASE_SECONDS = 30 * 60
BACKUP_RENEW_SECONDS = 5 * 60


class LockedError(CofferError):
    """Another exclusive operation holds the lease."""


@dataclass(frozen=True)
class Lease:
    name: str
    start: float
    expires: float


def _read(storage: Storage, name: str) -> Lease | None:
    try:
        doc = json.loads(storage.get(name))
        return Lease(name, float(doc["start"]), float(doc["expires"]))
    except ObjectNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return Lease(name, 0.0, 0.0)  # unreadable: treat as expired


def _lease_bytes(start: float, expires: float) -> bytes:
    return json.dumps({"start": start, "expires": expires}).encode()


def _write(storage: Storage, name: str, seconds: float) -> Lease:
    now = time.time()
    lease = Lease(name, now, now + seconds)
    storage.put(name, _lease_bytes(lease.start, lease.expires))
    return lease


@contextmanager
def exclusive(storage: Storage, *, seconds: float = PRUNE_LEASE_SECONDS) -> Iterator[Lease]:
    try:
        lease = _write(storage, PRUNE_LOCK, seconds)
    except ObjectExistsError:
        held = _read(storage, PRUNE_LOCK)
        if held is not None and held.expires > time.time():
            raise LockedError(
                f"another prune holds the repository lease until {time.ctime(held.expires)}; "
                "if no prune is running, remove locks/prune"
            ) from None
        storage.delete(PRUNE_LOCK)  # expired: its holder died
        lease = _write(storage, PRUNE_LOCK, seconds)
    try:
        yield lease
    finally:
        storage.delete(PRUNE_LOCK)


@contextmanager
def running_backup(storage: Storage) -> Iterator[Lease]:
    """Announce a running backup; the marker is renewed while the backup runs, so one left by a
    killed process expires within `BACKUP_LEASE_SECONDS` instead of blocking prune for long."""
    name = BACKUP_MARKER_PREFIX + os.urandom(12).hex()
    lease = _write(storage, name, BACKUP_LEASE_SECONDS)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(BACKUP_RENEW_SECONDS):
            with contextlib.suppress(CofferError):
                storage.put(name, _lease_bytes(lease.start, time.time() + BACKUP_LEASE_SECONDS), if_absent=False)

    renewer = threading.Thread(target=renew, name="coffer-lease", daemon=True)
    renewer.start()
    try:
        yield lease
    except BaseException:
        stop.set()
        renewer.join()
        with contextlib.suppress(CofferError):  # the storage may be why we fail: keep that error
            storage.delete(name)
        raise
    stop.set()
    renewer.join()
    storage.delete(name)


def oldest_running_backup(storage: Storage) -> float | None:
    now = time.time()
    starts = []
    for info in storage.list(BACKUP_MARKER_PREFIX):
        lease = _read(storage, info.name)
        if lease is not None and lease.expires > now:
            starts.append(lease.start)
    return min(starts) if starts else None
