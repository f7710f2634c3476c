"""Restores through damage: every intact file is written, each damaged one is listed, and the
command exits 4 at the end (`restore`, `extract`, `export`)."""

from __future__ import annotations

from collections.abc import Callable

from agent.errors import RepositoryDamagedError
from agent.ios.records import FileRecord


def damaged_entry(category: str, record: FileRecord, error: RepositoryDamagedError) -> dict[str, str]:
    """One damaged file as the outputs list it (human and `--json`)."""
    return {"category": category, "domain": record.domain, "path": record.relative_path, "reason": str(error)}


def report_damage(damaged: list[dict[str, str]], done: str, note: Callable[[str], None]) -> None:
    """List each damaged file through `note`, then fail with exit 4 if there is any."""
    for entry in damaged:
        note(f"damaged {entry['domain']}/{entry['path']}: {entry['reason']}")
    if damaged:
        raise RepositoryDamagedError(
            f"{len(damaged)} files are damaged in the repository and were not {done} (listed above); every other "
            "file was. `coffer check` names the damage, `coffer repair` marks what is lost"
        )
