"""The daemon's event log: one JSON object per line, appended, flushed per event.

Every record has `time` (ISO 8601, UTC), `ts` (seconds since the epoch), `seq` (order within
this run of the daemon) and `event`; the other fields depend on the event (`udid`, `name`,
`snapshot`, `reason`, `running`, …; docs/fleet.md lists them). The same records can be
mirrored as JSON lines on stdout (`coffer --json watch`) or as short lines for humans on stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from agent.units import iso

_HUMAN_FIELDS = ("udid", "name", "snapshot", "state", "reason", "hook", "address")


def human_line(record: dict[str, Any]) -> str:
    moment = dt.datetime.fromtimestamp(record["ts"]).strftime("%H:%M:%S")
    details = " ".join(f"{key}={record[key]}" for key in _HUMAN_FIELDS if record.get(key) not in (None, ""))
    return f"{moment} {record['event']} {details}".rstrip()


class EventLog:
    def __init__(
        self, path: Path, *, json_stream: TextIO | None = None, text_stream: TextIO | None = None
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._json_stream = json_stream
        self._text_stream = text_stream
        self._lock = threading.Lock()
        self._seq = 0

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one event (fields that are None are left out); returns the record."""
        with self._lock:
            self._seq += 1
            now = time.time()
            record: dict[str, Any] = {
                "time": iso(now),  # to the second, as in every command's JSON; `ts` keeps the precision
                "ts": round(now, 6),
                "seq": self._seq,
                "event": event,
            }
            record.update({key: value for key, value in fields.items() if value is not None})
            line = json.dumps(record, sort_keys=False, default=str)
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
            if self._json_stream is not None:
                self._json_stream.write(line + "\n")
                self._json_stream.flush()
            if self._text_stream is not None:
                self._text_stream.write(human_line(record) + "\n")
                self._text_stream.flush()
            return record

    def close(self) -> None:
        with self._lock:
            self._file.close()
