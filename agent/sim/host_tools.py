"""The real host-side tools, pointed at a simulator: pymobiledevice3's CLI and libimobiledevice's.

Each `HostTools` has its own HOME (and XDG folders), so the pair records a tool writes stay with
it; the simulator's usbmuxd keeps its own copies, as the real one does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PYMOBILEDEVICE3 = str(Path(sys.executable).parent / "pymobiledevice3")
DEFAULT_TIMEOUT = 180.0
# Variables that would send pymobiledevice3 elsewhere (another usbmuxd, an RSD tunnel).
_FOREIGN_PREFIXES = ("PYMOBILEDEVICE3_", "USBMUXD_")


@dataclass(frozen=True)
class HostTools:
    """Runs host tools against the usbmuxd at `usbmux_address` with `home` as their HOME."""

    usbmux_address: str
    home: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
        env.update(
            USBMUXD_SOCKET_ADDRESS=self.usbmux_address,
            HOME=str(self.home),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CONFIG_HOME=str(self.home / ".config"),
        )
        return env

    def run(self, *command: str, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run a tool to completion; its output is captured, a non-zero exit is not an error here."""
        self.home.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            command, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, *command: str) -> subprocess.Popen[str]:
        """Start a tool in the background, its standard streams piped (text, line-buffered)."""
        self.home.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            command,
            env=self.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def pymobiledevice3(
        self, *arguments: str, timeout: float = DEFAULT_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return self.run(PYMOBILEDEVICE3, *arguments, timeout=timeout)

    @staticmethod
    def libimobiledevice_available() -> bool:
        """Whether Debian's libimobiledevice-utils (idevicebackup2, ideviceinfo, ...) is installed."""
        return shutil.which("idevicebackup2") is not None
