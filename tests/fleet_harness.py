"""Running `coffer watch` as a real process against the simulator, and reading what it did.

`FleetRun` writes a configuration file, starts the daemon (`python -m agent watch`), waits on its
JSON-lines event log, asks it for `fleet status --json` and stops it with a signal. Used by the
test_fleet_* modules.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from conftest import ROOT, CofferCli, coffer_cli

from agent.sim.server import SimServer

T = TypeVar("T")
OUTCOME_EVENTS = {
    "backup_succeeded",
    "backup_failed",
    "backup_waiting",
    "backup_interrupted",
    "device_ignored",
}


def fleet_cli(
    tmp_path: Path, sim: SimServer, name: str = "repo", *, repository: str | None = None
) -> CofferCli:
    """`coffer` talking to the simulator, with host folders of its own: on a fresh repository it
    initialises under `tmp_path / name`, or on the existing `repository` URL."""
    cli = coffer_cli(tmp_path / name)
    cli.env.update(
        {
            "USBMUXD_SOCKET_ADDRESS": sim.address,
            "HOME": str(tmp_path / f"{name}-home"),
            "COFFER_PAIR_RECORDS_DIR": str(tmp_path / f"{name}-pair-records"),
        }
    )
    if repository is None:
        cli.init()
    else:
        cli.env["COFFER_REPOSITORY"] = repository
    return cli


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def peak_concurrency(events: list[dict[str, Any]]) -> int:
    """The most backups running at once, replayed from the started/ended events of one run, in log order."""
    running = peak = 0
    for event in events:
        if event["event"] == "backup_started":
            running += 1
        elif event["event"] in OUTCOME_EVENTS and running and event.get("udid"):
            running -= 1
        peak = max(peak, running)
    return peak


class FleetRun:
    """One configuration file and the `coffer watch` processes started with it (one at a time)."""

    def __init__(self, cli: CofferCli, folder: Path, config: str, *args: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.cli = cli
        self.folder = folder
        self.config = folder / "coffer.toml"
        self.config.write_text(config + f'\n[daemon]\nstate_dir = "{folder / "state"}"\n', encoding="utf-8")
        self.event_log = folder / "state" / "events.jsonl"
        self.args = args
        self.process: subprocess.Popen[str] | None = None
        self.runs = 0

    def start(self, *extra: str) -> FleetRun:
        self.runs += 1
        self.stderr_path = self.folder / f"daemon-{self.runs}.stderr"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "watch", "--config", str(self.config), *self.args, *extra],
            env=self.cli.environment(),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr_path.open("w"),
            text=True,
        )
        self.wait_for(lambda events: self._started(events), timeout=30, what="the daemon to start")
        return self

    def _started(self, events: list[dict[str, Any]]) -> dict[str, Any] | None:
        starts = [e for e in events if e["event"] == "daemon_started"]
        return starts[-1] if len(starts) >= self.runs else None

    @property
    def started_event(self) -> dict[str, Any]:
        started = self._started(self.events())
        assert started is not None
        return started

    def events(
        self, kind: str | None = None, udid: str | None = None, *, run: int | None = None
    ) -> list[dict[str, Any]]:
        """Events in log order, of every run of the daemon or of the `run`-th (1, 2, …)."""
        events, runs = [], 0
        for event in read_events(self.event_log):
            runs += event["event"] == "daemon_started"
            if run is not None and runs != run:
                continue
            if (kind is None or event["event"] == kind) and (udid is None or event.get("udid") == udid):
                events.append(event)
        return events

    def wait_for(self, probe: Callable[[list[dict[str, Any]]], T | None], *, timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = probe(self.events())
            if result:
                return result
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.process.returncode}) waiting for {what}\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; events:\n" + "\n".join(map(str, self.events()))
                )
            time.sleep(0.05)

    def wait_event(
        self, kind: str, udid: str | None = None, *, count: int = 1, timeout: float = 60
    ) -> dict[str, Any]:
        """The `count`-th event `kind` (of `udid`), waiting for it."""
        return self.wait_for(
            lambda _: (lambda found: found[count - 1] if len(found) >= count else None)(
                self.events(kind, udid)
            ),
            timeout=timeout,
            what=f"{count} × {kind} {udid or ''}",
        )

    def status(self) -> list[dict[str, Any]]:
        return self.cli("--json", "fleet", "status", "--config", self.config).json()

    def device(self, udid: str) -> dict[str, Any]:
        return next(d for d in self.status() if d["udid"] == udid)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout=timeout)
        assert "Traceback" not in self.stderr(), self.stderr()
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

