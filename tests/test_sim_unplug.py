"""Pulling the cable in the middle of a backup: the host gets an error at once, nothing hangs, and the
simulator keeps serving its other devices (and the unplugged one once it is back)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from pathlib import Path

from conftest import unencrypted_view
from pymobiledevice3.usbmux import create_mux

from agent.sim.host_tools import PYMOBILEDEVICE3, HostTools
from agent.sim.server import SimServer
from agent.sim.verify import backup_digest

ERROR_BOUND = 10.0  # seconds within which the host must see the device gone




async def _wait_for_detach(address: str, udid: str, listening: threading.Event) -> None:
    """Listen on usbmuxd as pymobiledevice3 does and return when `udid` is detached."""
    mux = await create_mux(usbmux_address=address)
    try:
        await mux.listen()
        while not any(device.serial == udid for device in mux.devices):
            await mux.receive_device_state_update()  # the Attached events of the plugged devices
        listening.set()
        while any(device.serial == udid for device in mux.devices):
            await mux.receive_device_state_update()
    finally:
        await mux.close()


def test_unplug_during_backup_fails_the_host_promptly_and_other_devices_carry_on(
    sim: SimServer, tmp_path: Path
) -> None:
    victim = sim.add_device(profile="tiny", seed=41)
    other = sim.add_device(profile="tiny", seed=42)
    host = HostTools(sim.address, tmp_path / "home")
    sim.set_transfer_rate(victim.udid, 100_000)  # a cable slow enough to be pulled mid-transfer
    listening = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        detach_seen = pool.submit(asyncio.run, _wait_for_detach(sim.address, victim.udid, listening))
        assert listening.wait(10)

        backup = host.start(
            PYMOBILEDEVICE3, "backup2", "backup", "--full", str(tmp_path / "victim"), "--udid", victim.udid
        )
        concurrent_backup = host.start(
            PYMOBILEDEVICE3, "backup2", "backup", "--full", str(tmp_path / "other"), "--udid", other.udid
        )
        snapshot = tmp_path / "victim" / victim.udid / "Snapshot"
        deadline = time.monotonic() + 60
        while not any(snapshot.glob("*/*")):  # file data has started to arrive on the host
            assert backup.poll() is None and time.monotonic() < deadline, backup.communicate()[1][-3000:]
            time.sleep(0.05)

        unplugged_at = time.monotonic()
        sim.unplug(victim.udid)
        _, errors = backup.communicate(timeout=ERROR_BOUND)
        assert time.monotonic() - unplugged_at < ERROR_BOUND
        assert backup.returncode != 0
        assert "terminated" in errors.lower() or "connection" in errors.lower(), errors[-3000:]
        detach_seen.result(timeout=ERROR_BOUND)

    listed = host.pymobiledevice3("usbmux", "list")
    assert [entry["UniqueDeviceID"] for entry in json.loads(listed.stdout)] == [other.udid]
    _, errors = concurrent_backup.communicate(timeout=120)
    assert concurrent_backup.returncode == 0, errors[-3000:]
    assert backup_digest(tmp_path / "other" / other.udid) == unencrypted_view(other)

    sim.set_transfer_rate(victim.udid, None)
    sim.plug(victim.udid)
    again = host.pymobiledevice3("backup2", "backup", str(tmp_path / "victim"), "--udid", victim.udid)
    assert again.returncode == 0, again.stderr[-3000:]
    assert victim.backups[-1].error_code == 0
    assert backup_digest(tmp_path / "victim" / victim.udid) == victim.filesystem.snapshot_digest(
        include_encrypted_only=False
    )
