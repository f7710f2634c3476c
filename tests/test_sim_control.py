"""`python -m agent.sim` (the body of `coffer sim`): its output contract, its control socket, and a
clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.sim.control import SimControl, SimControlError
from agent.sim.host_tools import HostTools

REPO = Path(__file__).resolve().parents[1]


def test_sim_process_prints_addresses_obeys_its_control_socket_and_stops_on_sigterm(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "agent.sim", "--devices", "2", "--seed", "7", "--password", "pw"]
    process = subprocess.Popen(
        [*command, "--state-dir", str(tmp_path / "state")],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        usbmux_line, control_line = process.stdout.readline(), process.stdout.readline()
        assert usbmux_line.startswith("USBMUXD_SOCKET_ADDRESS=127.0.0.1:"), process.stderr
        assert control_line.startswith("COFFER_SIM_CONTROL=127.0.0.1:")
        host = HostTools(usbmux_line.split("=", 1)[1].strip(), tmp_path / "home")

        with SimControl(control_line.split("=", 1)[1].strip()) as control:
            devices = control.list()
            assert len(devices) == 2
            assert all(d["plugged"] and d["will_encrypt"] and not d["locked"] for d in devices)
            first, second = (d["udid"] for d in devices)

            control.unplug(first)
            listed = host.pymobiledevice3("usbmux", "list")
            assert [entry["UniqueDeviceID"] for entry in json.loads(listed.stdout)] == [second]
            control.plug(first)
            control.lock(first)
            control.untrust(second)
            control.throttle(second, 5_000_000)
            states = {d["udid"]: d for d in control.list()}
            assert states[first]["plugged"] and states[first]["locked"]
            assert not states[second]["trusted"] and states[second]["transfer_rate"] == 5_000_000
            control.unlock(first)
            control.trust(second)
            control.throttle(second, None)

            changes = control.evolve(first, 3)
            assert changes["added"] and set(changes) == {"added", "modified", "removed"}
            with pytest.raises(SimControlError, match="no simulated device"):
                control.plug("00000000-0000000000000000")
            with pytest.raises(SimControlError, match="unknown command"):
                control.request("reboot", udid=first)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
