"""Progress: tqdm bars on stderr (bytes, rate, ETA), and with `--json` restic-style status lines on stdout.

A `Progress` is one bar for one phase (receive, ingest, upload, restore, check, …). Updates are
thread-safe. While `status_lines(stream)` is active (the CLI turns it on for `--json` backup,
restore, import, check and prune), every bar also writes, at most every `STATUS_INTERVAL`
seconds when it has moved, and once more when it closes, a line such as

    {"message_type": "status", "phase": "receive", "bytes_done": 1048576, "total_bytes": 4194304,
     "percent_done": 0.25, "bytes_per_second": 524288.0, "seconds_elapsed": 2.0, "seconds_remaining": 6.0}

`total_bytes` (and so `percent_done` and `seconds_remaining`) is null while the total is unknown;
a bar whose total was unknown or estimated closes with its total set to what it counted, so the
last line of a phase always reaches 100 %.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TextIO

from tqdm import tqdm

STATUS_INTERVAL = 0.5  # seconds between two status lines of one bar

# BackupAgent2 reports about 10 % before it sends files and 90 % when the last batch is out
# (shared/ios-protocol.md, "_uploadInBatches"): the bytes sent so far scale to that range.
DEVICE_UPLOAD_START, DEVICE_UPLOAD_END = 10.0, 90.0

# The stream of the command running in this thread: a bar opened here keeps writing to it from any
# thread (uploads, ingest workers), while bars of other threads (a fleet daemon's backups) do not.
_local = threading.local()
_write_lock = threading.Lock()


@contextlib.contextmanager
def status_lines(stream: TextIO) -> Iterator[None]:
    """Make every bar opened meanwhile in this thread also write JSON status lines to `stream`."""
    _local.sink = stream
    try:
        yield
    finally:
        _local.sink = None


def _current_sink() -> TextIO | None:
    return getattr(_local, "sink", None)


def streaming_status() -> bool:
    """Whether this thread's command streams status lines (then its final document must be one line too)."""
    return _current_sink() is not None


def write_status(document: dict[str, object], sink: TextIO | None = None) -> None:
    """One status line (`message_type` first, as restic writes it) to `sink`, else to this thread's stream."""
    sink = sink or _current_sink()
    if sink is None:
        return
    line = {"message_type": "status", **dict(sorted(document.items()))}
    with _write_lock:
        sink.write(json.dumps(line) + "\n")
        sink.flush()


def estimate_device_total(bytes_done: int, device_percent: float | None, fallback: int | None = None) -> int | None:
    """The bytes a device will send in all, from its own progress figure once it is sending files, else
    `fallback` (e.g. the data on the device, for a first backup); never less than what already came."""
    span = DEVICE_UPLOAD_END - DEVICE_UPLOAD_START
    if device_percent is not None and bytes_done > 0 and device_percent > DEVICE_UPLOAD_START + 1:
        fraction = min((device_percent - DEVICE_UPLOAD_START) / span, 1.0)
        return max(bytes_done, round(bytes_done / fraction))
    if fallback:
        return max(bytes_done, fallback)
    return None


class Progress:
    def __init__(self, description: str, total: float | None, *, enabled: bool, estimated: bool = False) -> None:
        """`estimated`: `total` is a forecast (e.g. what a device may ask for), corrected to the count at the end."""
        self.phase = description
        self._bar = tqdm(
            total=total,
            desc=description,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
            mininterval=0.2,
        )
        self._lock = threading.Lock()
        self._done = 0.0
        self._total = total
        self._estimated = estimated or total is None  # such a total becomes the count at the end
        self._started = time.monotonic()
        self._last_status = 0.0
        self._last_reported: tuple[float, float | None] | None = None  # no line repeats the one before
        self._touched = False
        self._sink = _current_sink()

    @property
    def done(self) -> float:
        return self._done

    def advance(self, amount: float) -> None:
        with self._lock:
            self._done += amount
            self._bar.update(amount)
            self._maybe_status_locked()

    def set_to(self, value: float) -> None:
        """Move the bar forward to `value` (a count kept elsewhere, e.g. bytes a device sent); never back."""
        with self._lock:
            if value > self._done:
                self._bar.update(value - self._done)
                self._done = value
            self._maybe_status_locked()

    def estimate_total(self, total: float | None) -> None:
        """A new estimate of the total (e.g. from the device's own progress figure); None keeps the last one."""
        with self._lock:
            self._estimated = True
            if total is not None and total != self._total:
                self._total = total
                self._bar.total = total
                self._bar.refresh()

    def counted(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        """Pass pieces through, advancing the bar by their sizes."""
        for piece in pieces:
            self.advance(len(piece))
            yield piece

    def close(self) -> None:
        with self._lock:
            if self._estimated or self._total is None or self._total < self._done:
                self._total = self._done
                self._bar.total = self._done
                self._bar.refresh()
            if self._touched or self._total:
                self._write_status_locked()
        self._bar.close()

    def _maybe_status_locked(self) -> None:
        self._touched = True
        now = time.monotonic()
        if now - self._last_status >= STATUS_INTERVAL and (self._done, self._total) != self._last_reported:
            self._last_status = now
            self._last_reported = (self._done, self._total)
            self._write_status_locked()

    def _write_status_locked(self) -> None:
        if self._sink is None:
            return
        elapsed = time.monotonic() - self._started
        rate = self._done / elapsed if elapsed > 0 else 0.0
        total = self._total
        remaining = (total - self._done) / rate if total is not None and rate > 0 else None
        write_status(sink=self._sink, document={
            "phase": self.phase,
            "bytes_done": int(self._done),
            "total_bytes": None if total is None else int(total),
            "percent_done": None if not total else round(min(self._done / total, 1.0), 4),
            "bytes_per_second": round(rate, 1),
            "seconds_elapsed": round(elapsed, 2),
            "seconds_remaining": None if remaining is None else round(max(remaining, 0.0), 2),
        })

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
