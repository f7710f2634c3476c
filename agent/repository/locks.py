"""Leases in `locks/`: the exclusive one maintenance takes, and the markers running backups leave.

Backups never wait for a lock: they only announce themselves (`locks/backup-<random>`) so that
prune knows the start of the oldest running backup and never deletes a pack such a backup may
have deduplicated against. Prune, `key rotate` and `repair` take `locks/exclusive` with
put-if-absent.

A lease names its owner — host, boot, process ID and the process's start time — and is sealed
under the index key (every writer holds it, a storage provider does not) and padded to one
size, so storage learns nothing from it. Leases are short (`LEASE_SECONDS`) and renewed from a
thread while held. A lease is stale when its owner is provably gone: on the same host (and
boot) a process that no longer runs is known at once, and the lease is taken over with a note;
another host's lease is stale once it was not renewed in time. `check` lists stale leases,
`coffer unlock` removes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.errors import CofferError, ObjectExistsError, ObjectNotFoundError
from agent.keys import primitives
from agent.repository.repository import Repository

LOCK_PREFIX = "locks/"
EXCLUSIVE_LOCK = LOCK_PREFIX + "exclusive"
BACKUP_MARKER_PREFIX = LOCK_PREFIX + "backup-"
LEASE_SECONDS = 5 * 60
RENEW_SECONDS = 60
PURPOSE = b"lease"


class LockedError(CofferError):
    """Another exclusive operation holds the lease."""


@dataclass(frozen=True)
class Owner:
    """The process holding a lease."""

    host: str
    boot: str  # the kernel's boot ID ('' where unknown): a reboot ends every process
    pid: int
    started: str  # the process's start time as the kernel counts it ('' where unknown): pids are reused

    @classmethod
    def current(cls) -> Owner:
        return cls(socket.gethostname(), _boot_id(), os.getpid(), _process_start(os.getpid()))

    def gone(self) -> bool:
        """Whether this owner provably no longer runs; only this host can know."""
        here = Owner.current()
        if self.host != here.host:
            return False
        if self.boot and here.boot and self.boot != here.boot:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        return bool(self.started) and _process_start(self.pid) not in ("", self.started)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""  # field 22 of stat(5), counted after the command name


@dataclass(frozen=True)
class Lease:
    name: str
    operation: str  # "prune", "key rotate", "repair", "backup"; '' when unreadable
    owner: Owner | None  # None: the lease does not open (damaged, or sealed under a key this host lacks)
    start: float
    expires: float
    token: str  # random per acquisition: a holder only renews and removes its own lease

    def stale_reason(self, now: float | None = None) -> str | None:
        """Why the lease no longer protects anything, or None while its holder may be running."""
        now = time.time() if now is None else now
        if self.owner is not None and self.owner.gone():
            return "its process is no longer running"
        if self.expires <= now:
            return f"not renewed since {time.ctime(self.expires - LEASE_SECONDS)}"
        return None

    def describe(self) -> str:
        who = (
            f"{self.operation} by process {self.owner.pid} on host {self.owner.host}"
            if self.owner is not None
            else "an unreadable lease"
        )
        reason = self.stale_reason()
        state = f"stale: {reason}" if reason else f"held until {time.ctime(self.expires)}"
        return f"lease {self.name}: {who}, since {time.ctime(self.start)} ({state})"

    def document(self) -> dict[str, object]:
        return {
            "name": self.name,
            "operation": self.operation,
            "owner": asdict(self.owner) if self.owner else None,
            "start": self.start,
            "expires": self.expires,
            "stale": self.stale_reason(),
        }


def _seal(repository: Repository, lease: Lease) -> bytes:
    assert repository.keys.index_key is not None and lease.owner is not None
    document = {
        "operation": lease.operation,
        "owner": asdict(lease.owner),
        "start": lease.start,
        "expires": lease.expires,
        "token": lease.token,
    }
    plain = json.dumps(document, sort_keys=True).encode()
    # Padded like every object (at least 512 bytes, a Padmé size class), so every lease looks alike.
    return primitives.seal_object(repository.keys.index_key, plain, purpose=PURPOSE, associated=lease.name.encode())


def read_lease(repository: Repository, name: str) -> Lease | None:
    """The lease stored under `name`; None when there is none."""
    storage = repository.storage
    try:
        data = storage.get(name)
    except ObjectNotFoundError:
        return None
    try:
        doc = json.loads(
            primitives.open_object(repository.keys.index_keys(), data, purpose=PURPOSE, associated=name.encode())
        )
        return Lease(
            name, str(doc["operation"]), Owner(**doc["owner"]), float(doc["start"]), float(doc["expires"]), str(doc["token"])
        )
    except (primitives.DecryptionError, ValueError, KeyError, TypeError):
        # Unreadable: judged by when it was last written, since a live holder rewrites it every RENEW_SECONDS.
        try:
            written = storage.stat(name).mtime
        except ObjectNotFoundError:
            return None
        return Lease(name, "", None, written, written + LEASE_SECONDS, "")


def _new_lease(name: str, operation: str) -> Lease:
    now = time.time()
    return Lease(name, operation, Owner.current(), now, now + LEASE_SECONDS, os.urandom(16).hex())


@contextmanager
def _renewed(repository: Repository, lease: Lease) -> Iterator[Lease]:
    """Keep `lease` fresh from a thread while the body runs; remove it afterwards (if still ours)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_SECONDS):
            with contextlib.suppress(CofferError):
                held = read_lease(repository, lease.name)
                if held is None or held.token != lease.token:
                    return  # taken over (we were judged gone): never overwrite the new holder
                fresh = Lease(lease.name, lease.operation, lease.owner, lease.start, time.time() + LEASE_SECONDS, lease.token)
                repository.storage.put(lease.name, _seal(repository, fresh), if_absent=False)

    renewer = threading.Thread(target=renew, name="coffer-lease", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join()
        with contextlib.suppress(CofferError):  # the storage may be why we stop: keep that error
            held = read_lease(repository, lease.name)
            if held is not None and held.token == lease.token:
                repository.storage.delete(lease.name)


@contextmanager
def exclusive(repository: Repository, operation: str = "prune") -> Iterator[Lease]:
    """Hold the repository's exclusive lease for `operation`; a stale one is taken over with a note."""
    lease = _new_lease(EXCLUSIVE_LOCK, operation)
    data = _seal(repository, lease)
    try:
        repository.storage.put(EXCLUSIVE_LOCK, data)
    except ObjectExistsError:
        held = read_lease(repository, EXCLUSIVE_LOCK)
        reason = held.stale_reason() if held is not None else "it vanished"
        if held is not None and reason is None:
            raise LockedError(
                f"{held.describe()}: wait for it to finish; if it is no longer running, run `coffer unlock`"
            ) from None
        if held is not None:
            repository.warn(f"took over {held.describe()}")
        repository.storage.delete(EXCLUSIVE_LOCK)
        try:
            repository.storage.put(EXCLUSIVE_LOCK, data)
        except ObjectExistsError:
            raise LockedError("another process took the repository lease at the same moment: try again") from None
    with _renewed(repository, lease):
        yield lease


@contextmanager
def running_backup(repository: Repository) -> Iterator[Lease]:
    """Announce a running backup; renewed while it runs, so a killed one stops counting at once on
    this host and within `LEASE_SECONDS` elsewhere."""
    lease = _new_lease(BACKUP_MARKER_PREFIX + os.urandom(12).hex(), "backup")
    repository.storage.put(lease.name, _seal(repository, lease))
    with _renewed(repository, lease):
        yield lease


def leases(repository: Repository) -> list[Lease]:
    found = (read_lease(repository, info.name) for info in repository.storage.list(LOCK_PREFIX))
    return sorted((lease for lease in found if lease is not None), key=lambda lease: lease.name)


def stale_leases(repository: Repository) -> list[Lease]:
    return [lease for lease in leases(repository) if lease.stale_reason() is not None]


def oldest_running_backup(repository: Repository) -> float | None:
    starts = [
        lease.start
        for lease in leases(repository)
        if lease.name.startswith(BACKUP_MARKER_PREFIX) and lease.stale_reason() is None
    ]
    return min(starts) if starts else None


def remove_leases(repository: Repository, *, everything: bool = False) -> tuple[list[Lease], list[Lease]]:
    """Remove the stale leases (every lease with `everything`); return (removed, kept)."""
    removed, kept = [], []
    for lease in leases(repository):
        if everything or lease.stale_reason() is not None:
            repository.storage.delete(lease.name)
            removed.append(lease)
        else:
            kept.append(lease)
    return removed, kept
