"""`coffer sim`: run simulated devices in the foreground until SIGINT/SIGTERM.

Once every device is plugged in, the first output line is `USBMUXD_SOCKET_ADDRESS=127.0.0.1:PORT`
(flushed at once: a script that has read it can use the devices), the second
`COFFER_SIM_CONTROL=127.0.0.1:PORT` (the control socket of `agent.sim.control_server`), then one
line per device.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.sim.replay import RecordedTrace, install
from agent.sim.server import SimServer


def run_sim(
    state_dir: Path | None,
    devices: int,
    profile: str,
    seed: int,
    password: str | None,
    port: int = 0,
    replay: Path | None = None,
    faults: dict[str, Any] | None = None,
) -> int:
    """Serve `devices` simulated iPhones until SIGINT/SIGTERM; the exit code (0 after a clean stop).

    Devices already in `state_dir` are served again as they were (pairings included); only the
    devices added to reach `devices` get `profile`, `seed` and `password` (backup encryption on).
    Without `state_dir` everything lives in a temporary folder removed at the end. With `replay`
    (a `--trace` recording) one more device plays that recording back (agent.sim.replay). `faults`
    (agent.sim.faults) are switched on for every device."""
    recorded = RecordedTrace.load(replay) if replay is not None else None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    sim = SimServer(state_dir, port=port)
    try:
        sim.start()
        if recorded is not None:
            device = sim.add_device(profile="tiny", seed=seed, plugged=False)
            install(device, recorded)
            sim.plug(device.udid)
        for _ in range(len(sim.devices()), devices):
            sim.add_device(profile=profile, seed=seed, password=password)
        for device in sim.devices():
            try:
                sim.set_faults(device.udid, **(faults or {}))
            except ValueError as error:
                raise UsageError(f"--fault: {error}") from error
        print(f"USBMUXD_SOCKET_ADDRESS={sim.address}", flush=True)
        print(f"COFFER_SIM_CONTROL={sim.control_address}", flush=True)
        for device in sim.devices():
            encryption = "encrypted backups" if device.will_encrypt else "unencrypted backups"
            print(
                f"{device.udid}  {device.name}  iOS {device.product_version}  "
                f"{device.filesystem.profile} profile  {encryption}",
                flush=True,
            )
        stop.wait()
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
