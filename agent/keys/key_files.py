"""Writing and reading the small JSON files that carry key material outside the repository
(station and category key files, contact key files, recovery requests): created 0600, never
overwritten, with errors a user can act on."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from agent.errors import UsageError


def write_new(path: Path, document: dict[str, object]) -> None:
    """Create `path` holding `document`, atomically: a crash leaves the whole file or none (no empty key file)."""
    data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except FileNotFoundError as exc:
        raise UsageError(f"the folder {path.parent} does not exist") from exc
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp creates it 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)  # fails if the name is taken: never overwrites
    except FileExistsError as exc:
        raise UsageError(f"{path} exists; choose another file (Coffer never overwrites key material)") from exc
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror}") from exc
    finally:
        os.unlink(temporary)


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
