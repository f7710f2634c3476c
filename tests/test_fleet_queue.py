"""The job queue on its own: slots, one backup per device, intervals, backoff, quiet hours, restart order.

A real `FleetQueue` with its real state file and event log in a temporary folder; only the clock is the
test's, so hours pass in microseconds.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from agent.fleet.events import EventLog
from agent.fleet.jobs import Failed, Interrupted, JobState, NeedsUser, NotSelected, Succeeded
from agent.fleet.policy import Policy, QuietHours
from agent.fleet.queue import FleetQueue
from agent.fleet.store import StateFile

START = dt.datetime(2026, 3, 2, 10, 0).timestamp()
DONE = Succeeded(snapshot_id="ab" * 32, bytes=1000, files=3, seconds=2.5, complete=False)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _queue(tmp_path: Path, clock: Clock, **policy: object) -> FleetQueue:
    settings: dict[str, object] = {
        "max_concurrent": 2,
        "min_interval": 3600.0,
        "retry_initial": 30.0,
        "retry_max": 600.0,
    }
    settings.update(policy)
    events = EventLog(tmp_path / "events.jsonl")
    return FleetQueue(Policy(**settings), StateFile(tmp_path / "state.json"), events, clock=clock)  # type: ignore[arg-type]


def _claimed(queue: FleetQueue) -> list[str]:
    return [record.udid for record in queue.claim_ready()]


def _events(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]


def test_slots_and_one_backup_per_device(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock)
    for udid in ("A", "B", "C"):
        queue.attached(udid)
    assert _claimed(queue) == ["A", "B"]
    assert _claimed(queue) == []  # both slots taken; A and B are not claimed twice
    queue.detached("A")
    queue.attached("A")  # a replug mid-backup does not start a second backup of A
    assert _claimed(queue) == []
    queue.finish("A", DONE)
    assert _claimed(queue) == ["C"]
    assert queue.running == 2
    running = [
        e["running"] for e in _events(tmp_path) if e["event"] in ("backup_started", "backup_succeeded")
    ]
    assert running == [1, 2, 1, 2]


def test_the_minimum_interval(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock)
    queue.attached("A")
    _claimed(queue)
    queue.finish("A", DONE)
    assert queue.wake_time() == START + 3600
    clock.now += 3599
    assert _claimed(queue) == []
    clock.now += 1
    assert _claimed(queue) == ["A"]


def test_transient_failures_back_off_and_permanent_ones_wait_for_a_replug(
    tmp_path: Path, clock: Clock
) -> None:
    queue = _queue(tmp_path, clock)
    queue.attached("A")
    retry_times = []
    for _ in range(3):
        assert _claimed(queue) == ["A"]
        record = queue.finish("A", Failed("the storage is down", 1, transient=True))
        assert record.state is JobState.FAILED and record.reason == "the storage is down"
        retry_times.append(record.retry_at - clock.now)  # type: ignore[operator]
        clock.now = record.retry_at  # type: ignore[assignment]
    assert retry_times == [30, 60, 120]
    assert _claimed(queue) == ["A"]
    record = queue.finish("A", Failed("wrong key", 3, transient=False))
    assert record.retry_at is None
    clock.now += 86400
    assert _claimed(queue) == [] and queue.wake_time() is None
    queue.detached("A")
    queue.attached("A")
    assert _claimed(queue) == ["A"]
    assert queue.finish("A", DONE).failures == 0  # success resets the backoff


def test_a_device_unplugged_mid_backup_waits_for_the_cable(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock)
    queue.attached("A")
    _claimed(queue)
    queue.detached("A")
    record = queue.finish("A", Failed("device A went away", 5, transient=True, disconnected=True))
    assert record.state is JobState.FAILED and record.retry_at is None
    assert "plugged back in" in record.reason
    clock.now += 3600
    assert _claimed(queue) == []
    queue.attached("A")
    assert _claimed(queue) == ["A"]
    # Pulled and plugged back while the failing backup still unwinds: tried again at once, no backoff.
    clock.now += 10
    queue.detached("A")
    clock.now += 1
    queue.attached("A")
    record = queue.finish("A", Failed("device A went away", 5, transient=True, disconnected=True))
    assert record.retry_at == clock.now and record.failures == 0
    assert _claimed(queue) == ["A"]


def test_devices_waiting_for_trust_or_unlock_are_looked_at_again(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock, recheck_interval=5.0)
    queue.attached("A")
    _claimed(queue)
    record = queue.finish("A", NeedsUser(JobState.WAITING_FOR_TRUST, "tap Trust"))
    assert record.state is JobState.WAITING_FOR_TRUST and record.backups_failed == 0
    assert queue.wake_time() == START + 5
    clock.now += 5
    assert _claimed(queue) == ["A"]
    queue.finish("A", NeedsUser(JobState.WAITING_FOR_UNLOCK, "unlock it"))
    assert queue.statuses()[0]["state"] == "waiting_for_unlock"
    queue.detached("A")
    assert queue.statuses()[0]["state"] == "waiting"  # unplugged: nobody to wait for
    queue.attached("A")
    assert _claimed(queue) == ["A"]  # plugged back in: looked at straight away


def test_quiet_hours_hold_new_backups(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock, quiet_hours=(QuietHours(dt.time(9, 30), dt.time(11)),))
    queue.attached("A")
    assert _claimed(queue) == []
    assert queue.wake_time() == dt.datetime(2026, 3, 2, 11, 0).timestamp()
    assert queue.statuses()[0]["reason"] == "quiet hours until 11:00"
    clock.now = dt.datetime(2026, 3, 2, 11, 0).timestamp()
    assert _claimed(queue) == ["A"]


def test_devices_outside_the_policy_are_ignored(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock, devices=("A",))
    queue.attached("B")
    assert _claimed(queue) == []
    assert queue.statuses()[0]["state"] == "ignored"
    queue.attached("A")
    assert _claimed(queue) == ["A"]
    queue.finish("A", NotSelected("its name does not match"))
    assert {s["udid"]: s["state"] for s in queue.statuses()} == {"A": "ignored", "B": "ignored"}


def test_a_restart_resumes_interrupted_backups_first(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock)
    for udid in ("A", "B", "C"):
        queue.attached(udid)
    assert _claimed(queue) == ["A", "B"]
    queue.finish("A", Interrupted("shutdown"))
    # B's daemon dies without a word (SIGKILL): the state file still says backing_up.
    clock.now += 60
    restarted = _queue(tmp_path, clock)
    for udid in ("C", "B", "A"):
        restarted.attached(udid)
    first = restarted.claim_ready()
    assert sorted(r.udid for r in first) == ["A", "B"] and all(r.interrupted for r in first)
    restarted.finish("A", DONE)
    assert restarted.statuses()[0]["interrupted"] is False


def test_status_documents(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock)
    queue.attached("A")
    _claimed(queue)
    queue.identified("A", name="Shop 1", model="iPhone15,2", ios_version="17.5")
    queue.finish("A", DONE)
    [status] = queue.statuses()
    assert status["udid"] == "A" and status["name"] == "Shop 1" and status["state"] == "done"
    assert status["last_snapshot"] == DONE.snapshot_id and status["plugged"] is True
    assert status["backups_succeeded"] == 1 and status["bytes_total"] == 1000
    assert status["next_due"] == dt.datetime.fromtimestamp(START + 3600, dt.UTC).isoformat().replace(
        "+00:00", "Z"
    )
    # The state file keeps what the next start needs, and nothing of the live progress.
    saved = json.loads((tmp_path / "state.json").read_text())["devices"][0]
    assert saved["last_snapshot"] == DONE.snapshot_id and "progress" not in saved and "plugged" not in saved


def test_run_now_pause_and_resume(tmp_path: Path, clock: Clock) -> None:
    queue = _queue(tmp_path, clock, quiet_hours=(QuietHours(dt.time(12), dt.time(13)),))
    queue.attached("A")
    assert _claimed(queue) == ["A"]
    with pytest.raises(ValueError, match="being backed up already"):
        queue.request_run("A")
    queue.finish("A", DONE)
    assert _claimed(queue) == []  # min_interval
    queue.request_run("a")  # UDIDs compare as the daemon normalises them
    assert _claimed(queue) == ["A"]  # due now, min_interval notwithstanding
    queue.finish("A", Failed("the storage is down", 1, transient=True))
    assert queue.statuses()[0]["last_error"] == "the storage is down"

    queue.set_paused(True)
    clock.now += 3600
    assert _claimed(queue) == [] and queue.statuses()[0]["paused"] is True
    assert queue.statuses()[0]["reason"].startswith("paused")
    with pytest.raises(ValueError, match="paused"):
        queue.request_run("A")
    queue.set_paused(False)
    queue.set_paused(True, "A")  # per device: only A is held
    queue.attached("B")
    assert _claimed(queue) == ["B"]
    queue.set_paused(False, "A")
    clock.now = dt.datetime(2026, 3, 2, 12, 30).timestamp()
    queue.request_run("A")
    assert _claimed(queue) == []  # quiet hours still hold a request
    clock.now = dt.datetime(2026, 3, 2, 13, 0).timestamp()
    assert _claimed(queue) == ["A"]
    assert queue.statuses()[0]["last_error"] == "the storage is down"  # kept until a later failure replaces it
    with pytest.raises(LookupError):
        queue.request_run("Z")
    queue.detached("B")
    queue.finish("B", DONE)
    with pytest.raises(ValueError, match="not plugged in"):
        queue.request_run("B")
