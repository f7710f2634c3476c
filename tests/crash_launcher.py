"""Run `coffer ARGS…` with its storage wrapped so the process dies at one mutating storage call, as `kill -9` would.

The crash harness (tests/crash_harness.py) starts `python tests/crash_launcher.py ARGS…` instead of
`python -m agent ARGS…`. No production code knows about it: the launcher replaces the storage factory the
commands call (`open_storage`) by one whose storage counts every `put`, `delete`, `purge` and
`extend_retention`, and calls `os._exit(137)` — no clean-up, no `finally`, no flush — right after the
`CRASH_AT`-th one landed (`CRASH_MODE=after`) or right before it (`before`: a write that never happened).
Without `CRASH_AT` it only counts. Every call is appended to `CRASH_LOG` as `<n> <method> <name>`, so a
clean run tells the harness how many crash points an operation has and what each one is.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from agent.commands import context, copy_commands  # PYTHONPATH holds the project root (tests/conftest.py)
from agent.storage import url

MUTATING = ("put", "put_parts", "delete", "purge", "extend_retention")
KILLED = 137  # what a shell reports for a process killed by SIGKILL


class CrashingStorage:
    """A storage that behaves like the one it wraps until the chosen mutating call."""

    def __init__(self, inner: Any, crash_at: int | None, mode: str, log: Path | None) -> None:
        self._inner = inner
        self._crash_at = crash_at
        self._mode = mode
        self._log = log
        self._count = 0
        self._lock = threading.Lock()  # uploads run on several threads: each call gets one number

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in MUTATING:
            return attribute

        def mutate(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._count += 1
                number = self._count
                if self._log is not None:
                    with self._log.open("a") as handle:
                        handle.write(f"{number} {name} {args[0] if args else ''}\n")
            if number == self._crash_at and self._mode == "before":
                os._exit(KILLED)
            result = attribute(*args, **kwargs)
            if number == self._crash_at:
                os._exit(KILLED)
            return result

        return mutate

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)


def main() -> int:
    crash_at = int(os.environ["CRASH_AT"]) if os.environ.get("CRASH_AT") else None
    mode = os.environ.get("CRASH_MODE", "after")
    log = Path(os.environ["CRASH_LOG"]) if os.environ.get("CRASH_LOG") else None
    real_open = url.open_storage

    def open_crashing(location: str, **options: object) -> Any:
        return CrashingStorage(real_open(location, **options), crash_at, mode, log)

    for module in (url, context, copy_commands):
        module.open_storage = open_crashing  # type: ignore[attr-defined]
    from agent.cli import main as coffer_main

    return coffer_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
