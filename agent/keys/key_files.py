"""Writing and reading the small JSON files that carry key material outside the repository
(station and category key files, contact key files, recovery requests): created 0600, never
overwritten, with errors a user can act on."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent.errors import UsageError


def write_new(path: Path, document: dict[str, object]) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise UsageError(f"{path} exists; choose another file (Coffer never overwrites key material)") from exc
    except FileNotFoundError as exc:
        raise UsageError(f"the folder {path.parent} does not exist") from exc
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


def read(path: Path, what: str) -> dict[str, object]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{what} {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not a Coffer {what}") from exc
    if not isinstance(document, dict):
        raise UsageError(f"{path} is not a Coffer {what}")
    return document
