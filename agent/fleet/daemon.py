"""`coffer watch`: the fleet daemon that backs up each device when it is plugged in.

Threads: the main thread schedules (and handles SIGTERM/SIGINT), the usbmux watcher feeds
plug events into the queue, a pool of `max_concurrent` workers runs the jobs, the status
servers answer requests, hooks run on threads of their own. A stop request stops new jobs,
cancels the device transfers of running ones (a job already committing its snapshot
finishes: that is the checkpoint), waits for the workers, and returns 0; the state file
then says which backups were interrupted, and the next start runs those first.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from agent import __version__
from agent.commands.format import iso
from agent.errors import UsageError
from agent.fleet.config import FleetConfig
from agent.fleet.events import EventLog
from agent.fleet.hooks import HookRunner
from agent.fleet.jobs import DeviceRecord, Failed, Outcome, Succeeded
from agent.fleet.queue import FleetQueue
from agent.fleet.status_server import StatusServer
from agent.fleet.store import StateFile
from agent.fleet.watcher import UsbmuxWatcher
from agent.fleet.worker import DeviceFacts, DeviceJob
from agent.repository.repository import Repository

IDLE_WAIT_SECONDS = 30.0  # with nothing due, look again at least this often (the clock moves)
HOOK_GRACE_SECONDS = 10.0
LOCK_FILE_NAME = "daemon.lock"


@dataclass(frozen=True)
class DaemonOptions:
    http: tuple[str, int] | None = None
    metrics_port: int | None = None
    json_events: bool = False


@contextmanager
def single_instance(state_dir: Path) -> Iterator[None]:
    """Hold the state folder's lock: two daemons on one state file would undo each other."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state_dir / LOCK_FILE_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise UsageError(
                f"another `coffer watch` (pid {handle.read().strip() or '?'}) already uses {state_dir}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


class FleetDaemon:
    def __init__(self, config: FleetConfig, repository: Repository, options: DaemonOptions) -> None:
        self.config = config
        self.policy = config.policy
        self.repository = repository
        self.options = options
        self.started = time.time()
        self._stop = threading.Event()
        self._stop_signal: str | None = None
        self._jobs: dict[str, DeviceJob] = {}
        self._jobs_lock = threading.Lock()
        self.addresses: dict[str, str] = {}

    # --- the run ---------------------------------------------------------------------------------
    def run(self) -> int:
        settings = self.config.daemon
        with single_instance(settings.state_dir):
            self.events = EventLog(
                settings.event_log,
                json_stream=sys.stdout if self.options.json_events else None,
                text_stream=None if self.options.json_events else sys.stderr,
            )
            try:
                self.queue = FleetQueue(self.policy, StateFile(settings.state_file), self.events)
                self.hooks = HookRunner(self.config.hooks, self.events)
                self._serve()
            except BaseException:
                self.events.close()
                raise
            previous = self._install_signal_handlers()
            try:
                self._main_loop()
            finally:
                self._shutdown()
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        return 0

    def _serve(self) -> None:
        settings = self.config.daemon
        self.status = StatusServer(self.status_document, self.control)
        try:
            self.status.serve_unix(settings.status_socket)
            http = self.options.http or settings.http
            if http is not None:
                self.addresses["http"] = "{}:{}".format(*self.status.serve_tcp(*http))
            metrics_port = (
                self.options.metrics_port if self.options.metrics_port is not None else settings.metrics_port
            )
            if metrics_port is not None:
                self.addresses["metrics"] = "{}:{}".format(*self.status.serve_tcp("127.0.0.1", metrics_port))
        except BaseException:
            self.status.close()
            raise
        self.pool = ThreadPoolExecutor(
            max_workers=self.policy.max_concurrent, thread_name_prefix="coffer-backup"
        )
        self.events.emit(
            "daemon_started",
            pid=os.getpid(),
            version=__version__,
            config=str(self.config.path),
            repository=self.repository.storage.location,
            key=self.repository.keys.kind,
            max_concurrent=self.policy.max_concurrent,
            socket=str(settings.status_socket),
            **self.addresses,
        )
        self._warn_about_retention()
        self.watcher = UsbmuxWatcher(self._attached, self._detached, self.events)
        self.watcher.start()

    def _warn_about_retention(self) -> None:
        """A policy asking for retention that this station's key cannot do (a put-only key cannot forget):
        said once at start-up, not only as a `retention_skipped` after every backup."""
        if self.policy.retention.empty or self.repository.keys.is_full:
            return
        reason = (
            f"[retention] asks to forget old snapshots, but the {self.repository.keys.kind} key of this station "
            "cannot: run `coffer forget` from an admin host (docs/fleet.md)"
        )
        self.events.emit("retention_unavailable", reason=reason)
        if self.options.json_events:  # else the event's own line is on stderr already
            print(f"coffer: warning: {reason}", file=sys.stderr, flush=True)

    def _main_loop(self) -> None:
        while not self._stop.is_set():
            generation = self.queue.generation
            for record in self.queue.claim_ready():
                self._start(record)
            wake = self.queue.wake_time()
            timeout = IDLE_WAIT_SECONDS
            if wake is not None and self.queue.running < self.policy.max_concurrent:
                timeout = min(max(wake - time.time(), 0.05), IDLE_WAIT_SECONDS)
            self.queue.wait(generation, timeout)

    def _shutdown(self) -> None:
        self.queue.stop_accepting()
        with self._jobs_lock:
            running = list(self._jobs.values())
        self.events.emit("daemon_stopping", signal=self._stop_signal, running=len(running))
        for job in running:
            job.cancel()
        self.pool.shutdown(wait=True)
        self.watcher.stop()
        self.hooks.wait(HOOK_GRACE_SECONDS)
        self.status.close()
        resume = sum(1 for device in self.queue.statuses() if device["interrupted"])
        self.events.emit("daemon_stopped", interrupted=resume)
        self.events.close()

    # --- signals ---------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Runs on the main thread between two bytecodes, maybe inside EventLog.emit: so no event
        # here, only the flag and a wake-up (the queue's lock is re-entrant).
        if not self._stop.is_set():
            self._stop_signal = signal.Signals(signum).name
            self._stop.set()
            self.queue.wake()

    # --- plug events (watcher thread) ---------------------------------------------------------
    def _attached(self, udid: str) -> None:
        record = self.queue.attached(udid)
        self.hooks.fire("attach", _facts(record))

    def _detached(self, udid: str) -> None:
        record = self.queue.detached(udid)
        self.hooks.fire("detach", _facts(record))

    # --- jobs (worker threads) -------------------------------------------------------------------
    def _start(self, record: DeviceRecord) -> None:
        job = DeviceJob(self.repository, record.udid, self.policy, self.events)
        with self._jobs_lock:
            self._jobs[record.udid] = job
        self.queue.watch_progress(record.udid, job.progress)
        self.pool.submit(self._run_job, job)

    def _run_job(self, job: DeviceJob) -> None:
        def identified(facts: DeviceFacts) -> None:
            self.queue.identified(job.udid, name=facts.name, model=facts.model, ios_version=facts.ios_version)

        outcome: Outcome
        try:
            outcome = job.run(identified)
        except BaseException as exc:  # a bug must not leave the device claimed forever
            outcome = Failed(f"internal error: {type(exc).__name__}: {exc}", 1, transient=True)
        finally:
            with self._jobs_lock:
                self._jobs.pop(job.udid, None)
        record = self.queue.finish(job.udid, outcome)
        if isinstance(outcome, Succeeded):
            self.hooks.fire(
                "success",
                _facts(
                    record,
                    snapshot_id=outcome.snapshot_id,
                    bytes=outcome.bytes,
                    seconds=round(outcome.seconds, 3),
                ),
            )
        elif isinstance(outcome, Failed):  # a device waiting for Trust or unlock has not failed
            self.hooks.fire("failure", _facts(record, error=record.reason, exit_code=outcome.exit_code))

    # --- operator requests (status socket threads) ------------------------------------------------
    def control(self, action: str, udid: str | None) -> tuple[int, dict[str, Any]]:
        """`run` (needs a UDID), `pause`, `resume`: the answer is the devices concerned, or an error."""
        try:
            if action == "run":
                if not udid:
                    return 400, {"error": "`run` needs a UDID"}
                devices = [self.queue.request_run(udid).udid]
            else:
                devices = self.queue.set_paused(action == "pause", udid)
        except LookupError as exc:
            return 404, {"error": str(exc.args[0])}
        except ValueError as exc:
            return 409, {"error": str(exc)}
        self.queue.wake()
        return 200, {"action": action, "udid": udid, "devices": devices, "paused": self.queue.paused}

    # --- status ----------------------------------------------------------------------------------
    def status_document(self) -> dict[str, Any]:
        return {
            "daemon": {
                "pid": os.getpid(),
                "version": __version__,
                "config": str(self.config.path),
                "repository": self.repository.storage.location,
                "key": self.repository.keys.kind,
                "started": iso(self.started),
                "started_ts": self.started,
                "running": self.queue.running,
                "max_concurrent": self.policy.max_concurrent,
                "stopping": self._stop.is_set(),
                "paused": self.queue.paused,
                **self.addresses,
            },
            "devices": self.queue.statuses(),
        }


def _facts(record: DeviceRecord, **extra: object) -> dict[str, object]:
    """What a hook learns about a device (its environment: COFFER_UDID, COFFER_DEVICE_NAME, …)."""
    return {
        "udid": record.udid,
        "device_name": record.name,
        "device_model": record.model,
        "ios_version": record.ios_version,
        **extra,
    }
