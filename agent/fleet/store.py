"""The daemon's state file: every device's record, rewritten atomically after each change.

JSON, mode 0600, in the daemon's state folder. It holds device names, UDIDs, times and
snapshot IDs — never keys or file contents. A missing file is a first start; a damaged one
is reported, not silently replaced, since it decides which backups are due.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from agent.errors import CofferError
from agent.fleet.jobs import DeviceRecord

FORMAT_VERSION = 1


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, DeviceRecord]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CofferError(
                f"the fleet state file {self.path} is unreadable ({exc}); move it away to start afresh "
                "(every device is then backed up at its next plug-in)"
            ) from exc
        if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
            raise CofferError(
                f"the fleet state file {self.path} has an unknown format; move it away to start afresh"
            )
        try:
            records = [DeviceRecord.from_state(item) for item in doc["devices"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CofferError(
                f"the fleet state file {self.path} is damaged ({exc}); move it away to start afresh"
            ) from exc
        return {record.udid: record for record in records}

    def save(self, records: list[DeviceRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps({"version": FORMAT_VERSION, "devices": [r.to_state() for r in records]}, indent=1)
        fd, temporary = tempfile.mkstemp(prefix=".fleet-state-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
