"""Record the traces of this folder again: `python tests/traces/record_traces.py` (from the repository root).

Each is a real `coffer … --trace FILE` run against the simulator, in a temporary host whose trace key is
thrown away afterwards: nobody holds the key to these traces' name tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from agent.sim.server import SimServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _coffer(env: dict[str, str], *args: str) -> int:
    return subprocess.run([sys.executable, "-m", "agent", *args], env=env, cwd=ROOT, capture_output=True,
                          check=False).returncode


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, SimServer(Path(scratch) / "sim") as sim:
        host = Path(scratch)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "USBMUXD_SOCKET_ADDRESS": sim.address,
               "COFFER_REPOSITORY": str(host / "repo"), "COFFER_PASSWORD": "trace recording passphrase",
               "COFFER_KDF_TARGET_SECONDS": "0", "COFFER_INSECURE_TEST_KDF": "1",
               **{f"COFFER_{kind.upper()}_DIR": str(host / kind) for kind in ("state", "cache", "staging")},
               "COFFER_PAIR_RECORDS_DIR": str(host / "pair-records")}
        _coffer(env, "init")
        healthy = sim.add_device(profile="tiny", seed=1)
        _coffer(env, "backup", "--udid", healthy.udid, "--trace", str(HERE / "backup-tiny.jsonl"))
        sim.unplug(healthy.udid)
        locked = sim.add_device(profile="tiny", seed=2, locked=True)
        _coffer(env, "backup", "--udid", locked.udid, "--trace", str(HERE / "backup-locked.jsonl"))
        sim.unplug(locked.udid)
        sim.add_device(profile="tiny", seed=3, trusted=False)
        _coffer(env, "devices", "--trace", str(HERE / "devices-untrusted.jsonl"))
        sim.unplug(sim.devices()[-1].udid)
        # A file the device cannot read (its stored bytes gone): the device ends that upload with an error
        # and the backup with MBErrorDomain 104, as a real one does when a file vanishes mid-backup.
        unreadable = sim.add_device(profile="tiny", seed=4)
        min(p for p in (unreadable.state_dir / "content").rglob("*") if p.is_file() and len(p.name) == 64).unlink()
        _coffer(env, "backup", "--udid", unreadable.udid, "--trace", str(HERE / "backup-unreadable-file.jsonl"))


if __name__ == "__main__":
    main()
