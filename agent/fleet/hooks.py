"""Hook commands the daemon runs on device events, as Apple Configurator's cfgutil does.

A hook is run without a shell, in the background (a slow hook never holds a backup up),
with the event's facts in its environment (`COFFER_EVENT`, `COFFER_UDID`,
`COFFER_DEVICE_NAME`, `COFFER_SNAPSHOT_ID`, …) and, of the daemon's own environment, only
what a program needs to run (`PATH`, `HOME`, locale, time zone, …): never the storage
credentials (`AWS_*`) or Coffer's secrets (`COFFER_PASSWORD*`, `COFFER_CONTACT_PASSWORD`,
`COFFER_RECOVERY_KEY`, `COFFER_KEY_FILE`, …). Its exit status is logged as an event.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.fleet.events import EventLog

HOOK_EVENTS = ("attach", "detach", "success", "failure")
# What a hook gets of the daemon's environment: an allow-list, so a secret added to the daemon's environment
# later (a new cloud credential, a new COFFER_* variable) never reaches a hook by default.
PASSED_VARIABLES = frozenset(
    ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "PWD")
)
PASSED_PREFIXES = ("LC_",)
OUTPUT_TAIL = 400  # characters of a failing hook's output kept in the event


@dataclass(frozen=True)
class HookCommands:
    commands: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)  # event -> argv
    timeout: float = 60.0


def hook_environment(event: str, facts: Mapping[str, object]) -> dict[str, str]:
    """The allowed part of the daemon's environment, plus `COFFER_EVENT` and `COFFER_<FACT>` per fact."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name in PASSED_VARIABLES or name.startswith(PASSED_PREFIXES)
    }
    env["COFFER_EVENT"] = event
    for name, value in facts.items():
        if value is not None:
            env[f"COFFER_{name.upper()}"] = str(value)
    return env


class HookRunner:
    def __init__(self, hooks: HookCommands, events: EventLog) -> None:
        self.hooks = hooks
        self.events = events
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def fire(self, event: str, facts: Mapping[str, object]) -> None:
        """Run the hook of `event` (if one is configured) in the background."""
        argv = self.hooks.commands.get(event)
        if not argv:
            return
        thread = threading.Thread(
            target=self._run,
            args=(event, argv, hook_environment(event, facts), facts.get("udid")),
            name=f"coffer-hook-{event}",
            daemon=True,
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _run(self, event: str, argv: tuple[str, ...], env: dict[str, str], udid: object) -> None:
        try:
            done = subprocess.run(
                list(argv),
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.hooks.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self.events.emit(
                "hook_failed", hook=event, udid=udid, reason=f"timed out after {self.hooks.timeout:g} s"
            )
            return
        except OSError as exc:
            self.events.emit(
                "hook_failed", hook=event, udid=udid, reason=f"cannot run {argv[0]}: {exc.strerror}"
            )
            return
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()[-OUTPUT_TAIL:]
            self.events.emit("hook_failed", hook=event, udid=udid, exit_code=done.returncode, reason=output)
        else:
            self.events.emit("hook_ran", hook=event, udid=udid)

    def wait(self, timeout: float) -> None:
        """Give running hooks up to `timeout` seconds to finish (at shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
