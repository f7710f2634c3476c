"""`coffer fleet status/run/pause/resume` against a real `coffer watch` and simulated iPhones: the last
error per device, backing a device up now, holding backups daemon-wide or per device, requests refused
over TCP, and the start-up warning when the policy asks for retention a station key cannot do."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import CofferCli, CofferRun
from fleet_harness import FleetRun, fleet_cli

from agent.sim.server import SimServer


def test_status_run_pause_resume(tmp_path: Path, sim: SimServer, runs: list[FleetRun]) -> None:
    cli: CofferCli = fleet_cli(tmp_path, sim)
    station = tmp_path / "station.key"
    cli.inline("key", "add", "--put-only", "--output", station)
    device = sim.add_device(profile="tiny", seed=3, plugged=False)
    sim.set_transfer_rate(device.udid, 500_000)  # a slow cable: there is time to unplug it mid-backup
    config = f"""
[repository]
key_file = "{station}"

[policy]
min_interval = "12h"

[retention]
keep_daily = 7
"""
    run = FleetRun(cli, tmp_path / "fleet", config, "--http", "127.0.0.1:0")
    runs.append(run.start())

    def fleet(action: str, *rest: str, expect: int = 0) -> CofferRun:
        return cli("fleet", action, "--config", run.config, *rest, expect=expect)

    # The policy's retention cannot be done with a put-only key: said once, at start-up.
    warning = run.wait_event("retention_unavailable")
    assert "put-only" in warning["reason"] and "coffer forget" in warning["reason"]
    assert "retention_unavailable" in run.stderr()

    # A failure stays visible as the device's last error.
    sim.plug(device.udid)
    started = run.wait_event("backup_started", device.udid)
    assert started["interrupted"] is False
    deadline = time.monotonic() + 60
    while not (device.backups and device.backups[-1].uploaded_bytes) and time.monotonic() < deadline:
        time.sleep(0.02)
    sim.unplug(device.udid)
    failed = run.wait_event("backup_failed", device.udid)
    status = run.device(device.udid)
    assert status["last_error"] == failed["reason"] and status["last_failure"]
    table = fleet("status").stdout
    assert "Last error" in table and failed["reason"][:30] in table, table

    # Paused daemon-wide: a plugged-in device waits, and `run` is refused.
    assert fleet("pause", "--json").json()["paused"] is True
    sim.set_transfer_rate(device.udid, None)
    sim.plug(device.udid)
    run.wait_event("device_attached", device.udid, count=2)
    time.sleep(0.5)
    assert len(run.events("backup_started", device.udid)) == 1
    status = run.device(device.udid)
    assert status["paused"] is True and status["reason"].startswith("paused"), status
    refused = fleet("run", device.udid, expect=2)
    assert "paused" in refused.stderr and len(refused.stderr.splitlines()) == 1

    fleet("resume")
    first = run.wait_event("backup_succeeded", device.udid)
    assert run.device(device.udid)["last_error"] == failed["reason"]  # kept after a success

    # `run` backs up now, min_interval notwithstanding.
    answer = fleet("run", device.udid, "--json").json()
    assert answer["devices"] == [device.udid]
    second = run.wait_event("backup_succeeded", device.udid, count=2)
    assert second["snapshot"] != first["snapshot"]
    assert run.events("backup_requested", device.udid)

    # Paused per device; unknown devices are usage errors.
    fleet("pause", device.udid)
    assert run.device(device.udid)["paused"] is True
    assert "paused" in fleet("run", device.udid, expect=2).stderr
    fleet("resume", device.udid)
    assert run.device(device.udid)["paused"] is False
    unknown = fleet("run", "00008101-FFFFFFFFFFFFFFFF", "--json", expect=2)
    assert "has not seen" in unknown.json()["error"]["message"]

    # The TCP listener (no authentication) takes no control request.
    request = urllib.request.Request(f"http://{run.started_event['http']}/pause", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused_over_tcp:
        urllib.request.urlopen(request, timeout=10)
    assert refused_over_tcp.value.code == 405
    assert run.device(device.udid)["paused"] is False
    assert run.stop() == 0
