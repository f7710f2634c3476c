"""Trust and lock state as pymobiledevice3 sees them (distinct errors for a locked and an untrusted
device), and identity plus pairing surviving a restart of the simulator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.sim.host_tools import HostTools
from agent.sim.server import SimServer

# Reads UDIDs on stdin and answers, per line, how far pymobiledevice3's Python API gets with that
# device: "ready" (paired, mobilebackup2 started), "locked" or "untrusted".
PROBE = """
import asyncio, sys
from pymobiledevice3.exceptions import PairingDialogResponsePendingError, PasswordRequiredError
from pymobiledevice3.lockdown import create_using_usbmux
from pymobiledevice3.services.mobilebackup2 import Mobilebackup2Service

async def probe(udid):
    try:
        lockdown = await create_using_usbmux(serial=udid, pair_timeout=0)
    except PairingDialogResponsePendingError:
        return "untrusted"
    except PasswordRequiredError:
        return "locked"
    async with lockdown:
        try:
            async with Mobilebackup2Service(lockdown):
                return "ready"
        except PasswordRequiredError:
            return "locked"

for line in sys.stdin:
    print(asyncio.run(probe(line.strip())), flush=True)
"""



def test_locked_and_untrusted_devices_fail_differently(sim: SimServer, tmp_path: Path) -> None:
    device = sim.add_device(profile="tiny", seed=61)
    never_paired = sim.add_device(profile="tiny", seed=62, locked=True, trusted=False)
    host = HostTools(sim.address, tmp_path / "home")
    probe = host.start(sys.executable, "-c", PROBE)

    def state(udid: str) -> str:
        assert probe.stdin is not None and probe.stdout is not None
        probe.stdin.write(udid + "\n")
        answer = probe.stdout.readline().strip()
        assert answer, probe.communicate(timeout=10)[1][-3000:]
        return answer

    try:
        assert state(device.udid) == "ready"  # trusted on first sight: pairs
        sim.set_locked(device.udid, True)
        assert state(device.udid) == "locked"  # paired, but mobilebackup2 needs the passcode
        sim.set_locked(device.udid, False)
        sim.set_trusted(device.udid, False)  # forgets this host, the Trust dialog stays unanswered
        assert state(device.udid) == "untrusted"
        sim.set_trusted(device.udid, True)
        assert state(device.udid) == "ready"
        assert state(never_paired.udid) == "locked"  # pairing itself needs the passcode
        sim.set_locked(never_paired.udid, False)
        assert state(never_paired.udid) == "untrusted"
    finally:
        probe.stdin.close()
        probe.wait(timeout=10)

    sim.set_locked(device.udid, True)
    refused = host.pymobiledevice3("backup2", "backup", str(tmp_path / "backups"), "--udid", device.udid)
    assert refused.returncode != 0
    assert "password protected" in refused.stderr, refused.stderr[-3000:]


def test_identity_and_pairing_survive_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "sim"
    with SimServer(state_dir) as sim:
        device = sim.add_device(profile="tiny", seed=63, password="pw")
        udid, public_key = device.udid, device.keys.public_key_pem
        first = HostTools(sim.address, tmp_path / "home").pymobiledevice3("lockdown", "info", "--udid", udid)
        assert first.returncode == 0, first.stderr[-3000:]
        paired = set(device.paired_hosts)
    with SimServer(state_dir) as sim:
        restarted = sim.device(udid)
        assert (restarted.keys.public_key_pem, set(restarted.paired_hosts)) == (public_key, paired)
        assert restarted.will_encrypt and restarted.filesystem.profile == "tiny"
        again = HostTools(sim.address, tmp_path / "home").pymobiledevice3("lockdown", "info", "--udid", udid)
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout)["UniqueDeviceID"] == udid
        assert "Creating host key" not in again.stderr  # the old pairing still holds: no new one
        assert set(restarted.paired_hosts) == paired
