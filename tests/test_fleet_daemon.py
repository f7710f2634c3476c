"""`coffer watch` against simulated iPhones: plug events, concurrency, failures, retries, retention, shutdown.

Each test runs its own simulator (real usbmuxd protocol on loopback, Listen included) in this process and
the daemon as a real `coffer watch` subprocess; what the daemon did is read from its JSON-lines event log,
from `coffer fleet status --json` and from the repository itself.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import CofferCli, host_directories
from fleet_harness import FleetRun, fleet_cli, peak_concurrency

from agent.sim.server import SimServer


@pytest.fixture
def cli(tmp_path: Path, sim: SimServer) -> CofferCli:
    return fleet_cli(tmp_path, sim)



def _snapshots_by_device(cli: CofferCli) -> dict[str, list[str]]:
    by_device: dict[str, list[str]] = {}
    for snapshot in cli("--json", "snapshots").json():
        by_device.setdefault(snapshot["device"]["udid"], []).append(snapshot["id"])
    return by_device


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _hook_script(tmp_path: Path) -> tuple[Path, Path]:
    """A hook that writes its whole environment to `<out>/<event>-<udid>.env`."""
    out = tmp_path / "hook-output"
    out.mkdir()
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\nenv > "{out}/$COFFER_EVENT-$COFFER_UDID.env"\n')
    script.chmod(0o755)
    return script, out


def _wait_for_files(folder: Path, count: int, timeout: float = 30) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(files := sorted(folder.glob("*.env"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return files


def test_eight_devices_plugged_at_staggered_times(
    tmp_path: Path, sim: SimServer, cli: CofferCli, runs: list[FleetRun]
) -> None:
    station = tmp_path / "station.key"
    cli.inline("key", "add", "--put-only", "--output", station)
    hook, hook_output = _hook_script(tmp_path)
    devices = [sim.add_device(profile="tiny", seed=index, plugged=False) for index in range(8)]
    for device in devices:
        sim.set_transfer_rate(device.udid, 2_000_000)  # about a second each: the backups overlap
    config = f"""
[repository]
key_file = "{station}"

[policy]
devices = "all"
min_interval = "12h"
max_concurrent = 3

[retention]
keep_daily = 7

[hooks]
on_success = "{hook}"
on_attach = ["{hook}"]
"""
    run = FleetRun(cli, tmp_path / "fleet", config)
    runs.append(run.start())
    assert run.started_event["key"] == "put-only"
    for device in devices:
        sim.plug(device.udid)
        time.sleep(0.3)
    succeeded = {d.udid: run.wait_event("backup_succeeded", d.udid, timeout=120) for d in devices}

    events = run.events()
    print(f"peak concurrency {peak_concurrency(events)}")
    assert 2 <= peak_concurrency(events) <= 3  # side by side, never above max_concurrent
    assert max(e.get("running", 0) for e in events) <= 3
    snapshots = _snapshots_by_device(cli)
    assert {udid: [event["snapshot"]] for udid, event in succeeded.items()} == snapshots
    assert all(len(sim.device(d.udid).backups) == 1 for d in devices)

    # A station key cannot read snapshots: retention is left to an admin host, and said so.
    skipped = run.events("retention_skipped")
    assert len(skipped) == 8 and "coffer forget" in skipped[0]["reason"]

    files = _wait_for_files(hook_output, 16)
    assert len(files) == 16
    for device in devices:
        assert _env_file(hook_output / f"attach-{device.udid}.env")["COFFER_UDID"] == device.udid
        env = _env_file(hook_output / f"success-{device.udid}.env")
        assert env["COFFER_EVENT"] == "success"
        assert env["COFFER_UDID"] == device.udid
        assert env["COFFER_DEVICE_NAME"] == device.name
        assert env["COFFER_SNAPSHOT_ID"] == succeeded[device.udid]["snapshot"]
        assert "COFFER_PASSWORD" not in env  # the daemon's secrets stay out of hooks
    assert run.stop() == 0


def test_unplugged_mid_backup_is_failed_then_retried_when_plugged_back(
    tmp_path: Path, sim: SimServer, cli: CofferCli, runs: list[FleetRun]
) -> None:
    hook, hook_output = _hook_script(tmp_path)
    device = sim.add_device(profile="tiny", seed=1, plugged=False)
    sim.set_transfer_rate(device.udid, 500_000)  # a slow cable: the backup lasts seconds
    config = f"""
[policy]
min_interval = "12h"
max_concurrent = 2

[hooks]
on_failure = "{hook}"
"""
    run = FleetRun(cli, tmp_path / "fleet", config)
    runs.append(run.start())
    sim.plug(device.udid)
    run.wait_event("backup_started", device.udid)
    deadline = time.monotonic() + 60
    while not (device.backups and device.backups[-1].uploaded_bytes) and time.monotonic() < deadline:
        time.sleep(0.02)
    sim.unplug(device.udid)

    failed = run.wait_event("backup_failed", device.udid)
    assert failed["exit_code"] == 5
    assert re.search(r"went away|unplugged|not connected", failed["reason"]), failed
    status = run.device(device.udid)
    assert status["state"] == "failed" and status["plugged"] is False
    assert status["reason"] == failed["reason"]
    assert status["retry_at"] is None  # waits for the cable, not for a timer
    env = _env_file(_wait_for_files(hook_output, 1)[0])
    assert env["COFFER_EVENT"] == "failure" and env["COFFER_UDID"] == device.udid
    assert env["COFFER_ERROR"] == failed["reason"] and env["COFFER_EXIT_CODE"] == "5"

    sim.set_transfer_rate(device.udid, None)
    sim.plug(device.udid)
    succeeded = run.wait_event("backup_succeeded", device.udid, timeout=90)
    assert len(run.events("backup_started", device.udid)) == 2
    status = run.device(device.udid)
    assert status["state"] == "done" and status["last_snapshot"] == succeeded["snapshot"]
    assert status["backups_failed"] == 1 and status["backups_succeeded"] == 1
    assert run.stop() == 0
    cli("check")


def test_min_interval_is_honoured_and_retention_applied(
    tmp_path: Path, sim: SimServer, cli: CofferCli, runs: list[FleetRun]
) -> None:
    interval = 4.0
    device = sim.add_device(profile="tiny", seed=2, plugged=False)
    config = f"""
[policy]
devices = ["{device.udid}"]
min_interval = "{interval:g}s"

[retention]
keep_last = 2
"""
    run = FleetRun(cli, tmp_path / "fleet", config)
    runs.append(run.start())
    sim.plug(device.udid)
    first = run.wait_event("backup_succeeded", device.udid)
    # Plugged straight back in: not due yet, so no new backup.
    sim.unplug(device.udid)
    sim.plug(device.udid)
    run.wait_event("device_attached", device.udid, count=2)
    assert run.device(device.udid)["state"] == "done"
    sim.evolve(device.udid, 7)
    for count in (2, 3):
        run.wait_event("backup_succeeded", device.udid, count=count, timeout=60)

    ends = [e["ts"] for e in run.events("backup_succeeded", device.udid)]
    starts = [e["ts"] for e in run.events("backup_started", device.udid)]
    gaps = [start - end for end, start in zip(ends, starts[1:], strict=False)]
    print(f"gaps between a backup's end and the next start: {gaps}")
    # The interval runs from the backup's end as the queue records it; the `backup_succeeded` event comes
    # after retention, which on a loaded machine takes a while: allow for it (a violation is a gap near 0).
    assert len(starts) == 3 and all(gap >= interval - 1.0 for gap in gaps)

    retention = run.events("retention_applied", device.udid)
    assert [e["forgotten"] for e in retention] == [[], [], [first["snapshot"]]]
    kept = _snapshots_by_device(cli)[device.udid]
    assert len(kept) == 2 and first["snapshot"] not in kept
    assert run.stop() == 0
    cli("check")  # the forgotten snapshot's missing chain link is covered by its tombstone


def test_sigterm_during_backups_then_restart_completes_them(
    tmp_path: Path, sim: SimServer, cli: CofferCli, runs: list[FleetRun]
) -> None:
    devices = [sim.add_device(profile="tiny", seed=10 + index, plugged=False) for index in range(3)]
    for device in devices:
        sim.set_transfer_rate(device.udid, 500_000)  # slow cables: the backups are caught mid-transfer
    config = """
[policy]
min_interval = "12h"
max_concurrent = 2
"""
    run = FleetRun(cli, tmp_path / "fleet", config)
    runs.append(run.start())
    for device in devices:
        sim.plug(device.udid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = [
            d
            for d in devices
            if d.backups and d.backups[-1].uploaded_bytes and d.backups[-1].error_code is None
        ]
        if len(busy) == 2:
            break
        time.sleep(0.02)
    assert len(busy) == 2, "two backups should be transferring"
    stopping = time.monotonic()
    assert run.stop(signal.SIGTERM) == 0
    print(f"stopped {time.monotonic() - stopping:.2f} s after SIGTERM")
    interrupted = {e["udid"] for e in run.events("backup_interrupted")}
    assert interrupted == {d.udid for d in busy}
    assert run.events("daemon_stopped")[-1]["interrupted"] == 2
    assert not run.events("backup_succeeded")

    for device in devices:
        sim.set_transfer_rate(device.udid, None)
    run.start()
    for device in devices:
        run.wait_event("backup_succeeded", device.udid, timeout=120)
    resumed = run.events("backup_started", run=2)
    assert {e["udid"] for e in resumed[:2]} == interrupted  # the interrupted ones go first
    assert all(e.get("interrupted") for e in resumed[:2])
    assert run.stop(signal.SIGINT) == 0
    assert set(_snapshots_by_device(cli)) == {d.udid for d in devices}
    cli("check", "--read-data")


def test_status_json_metrics_and_devices_waiting_for_their_user(
    tmp_path: Path, sim: SimServer, cli: CofferCli, runs: list[FleetRun]
) -> None:
    ready = sim.add_device(profile="tiny", seed=20, plugged=False)
    untrusted = sim.add_device(profile="tiny", seed=21, trusted=False, plugged=False)
    locked = sim.add_device(profile="tiny", seed=22, locked=True, plugged=False)
    config = """
[policy]
min_interval = "12h"
max_concurrent = 2
recheck_interval = "1s"
"""
    run = FleetRun(cli, tmp_path / "fleet", config, "--metrics-port", "0")
    runs.append(run.start())
    cli("watch", "--config", run.config, expect=2)  # one daemon per configuration
    for device in (ready, untrusted, locked):
        sim.plug(device.udid)
    done = run.wait_event("backup_succeeded", ready.udid)
    run.wait_for(
        lambda events: (
            {e["state"] for e in events if e["event"] == "backup_waiting"}
            >= {"waiting_for_trust", "waiting_for_unlock"}
        ),
        timeout=60,
        what="the untrusted and the locked device to wait",
    )

    status = {d["udid"]: d for d in run.status()}
    assert set(status) == {ready.udid, untrusted.udid, locked.udid}
    assert status[ready.udid]["state"] == "done" and status[ready.udid]["last_snapshot"] == done["snapshot"]
    assert status[ready.udid]["name"] == ready.name and status[ready.udid]["next_due"]
    assert status[untrusted.udid]["state"] in ("waiting_for_trust", "backing_up")
    assert status[locked.udid]["state"] in ("waiting_for_unlock", "backing_up")
    assert status[untrusted.udid]["last_snapshot"] is None

    metrics_address = run.started_event["metrics"]
    text = urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10).read().decode()
    labels = f'udid="{ready.udid}",name="{ready.name}"'
    assert f'coffer_fleet_backups_total{{{labels},result="success"}} 1' in text
    assert f"coffer_fleet_backup_bytes_total{{{labels}}} {done['bytes']}" in text
    assert f"coffer_fleet_backup_duration_seconds_count{{{labels}}} 1" in text
    last_success = re.search(
        rf"coffer_fleet_last_success_timestamp_seconds\{{{re.escape(labels)}\}} (\S+)", text
    )
    assert last_success and abs(float(last_success[1]) - done["ts"]) < 1
    assert "# TYPE coffer_fleet_backups_total counter" in text
    assert f'coffer_fleet_backups_total{{{labels},result="failure"}} 0' in text
    assert re.search(r"coffer_fleet_max_concurrent_backups 2\n", text)

    # The user taps Trust, unlocks: both get backed up without anyone touching the daemon.
    sim.set_trusted(untrusted.udid, True)
    sim.set_locked(locked.udid, False)
    for device in (untrusted, locked):
        run.wait_event("backup_succeeded", device.udid, timeout=60)
    assert {d["state"] for d in run.status()} == {"done"}
    text = urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10).read().decode()
    assert text.count('result="success"} 1') == 3
    assert run.stop() == 0


def test_fleet_status_without_a_daemon(tmp_path: Path, cli: CofferCli) -> None:
    config = tmp_path / "coffer.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    result = cli("fleet", "status", "--config", config, expect=1)
    assert "no `coffer watch` is running" in result.stderr


def test_a_reinstalled_station_keeps_backing_up_the_devices_it_encrypted(
    tmp_path: Path, sim: SimServer, cli: CofferCli, runs: list[FleetRun]
) -> None:
    """`require_encryption`: the station sets a random device backup password, sealed for the owner and for
    itself. With its state folder gone (a reinstall) and only the key file left, it backs the phone up again."""
    station = tmp_path / "station.key"
    cli.inline("key", "add", "--put-only", "--output", station)
    device = sim.add_device(profile="tiny", seed=90, plugged=False)
    config = f'[repository]\nkey_file = "{station}"\n\n[policy]\ndevices = "all"\nrequire_encryption = true\n'
    first = FleetRun(cli, tmp_path / "fleet", config)
    runs.append(first.start())
    sim.plug(device.udid)
    assert first.wait_event("backup_succeeded", device.udid, timeout=120)["complete"] is True
    assert device.will_encrypt
    assert first.stop() == 0
    sim.unplug(device.udid)

    cli.env.update(host_directories(tmp_path / "reinstalled"))
    second = FleetRun(cli, tmp_path / "fleet-reinstalled", config)
    runs.append(second.start())
    sim.plug(device.udid)
    assert second.wait_event("backup_succeeded", device.udid, timeout=120)["complete"] is True
    assert second.stop() == 0
    assert device.backups[-1].encrypted and device.backups[-1].mode == "full"  # a fresh host: a full one
