"""`coffer demo`, the README's first command, runs every step and verifies it (exit 0 only if all hold)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_demo_verifies_every_step(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("COFFER_", "USBMUXD_"))}
    env.update({"PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home"), "COFFER_INSECURE_TEST_KDF": "1",
                "COFFER_KDF_TARGET_SECONDS": "0"})
    done = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--profile", "tiny", "--workdir", str(tmp_path / "demo")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    for step in ("selective restore", "fresh host", "retention", "check --read-data", "demo verified"):
        assert step in output, f"the demo no longer shows {step!r}"
    assert "Traceback" not in output
