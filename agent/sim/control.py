"""A blocking client for the simulator's control socket (protocol in `agent.sim.control_server`).

with SimControl("127.0.0.1:PORT") as control:
    control.unplug(udid)
"""

from __future__ import annotations

import json
import socket
from typing import Any

from agent.errors import CofferError

DEFAULT_TIMEOUT = 60.0  # an evolve of a large device takes a while


class SimControlError(CofferError):
    """The simulator refused a control command."""


class SimControl:
    """One connection to a simulator's control socket."""

    def __init__(self, address: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        host, _, port = address.rpartition(":")
        self._socket = socket.create_connection((host, int(port)), timeout=timeout)
        self._lines = self._socket.makefile("rb")

    def close(self) -> None:
        self._lines.close()
        self._socket.close()

    def __enter__(self) -> SimControl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        """Send one command; its reply (without `ok`), or SimControlError."""
        self._socket.sendall(json.dumps({"command": command, **arguments}).encode() + b"\n")
        line = self._lines.readline()
        if not line:
            raise SimControlError("the simulator closed the control connection")
        reply = json.loads(line)
        if not reply.pop("ok", False):
            raise SimControlError(f"simulator: {reply.get('error', 'command failed')}")
        return reply

    def list(self) -> list[dict[str, Any]]:
        return self.request("list")["devices"]

    def plug(self, udid: str) -> None:
        self.request("plug", udid=udid)

    def unplug(self, udid: str) -> None:
        self.request("unplug", udid=udid)

    def lock(self, udid: str) -> None:
        self.request("lock", udid=udid)

    def unlock(self, udid: str) -> None:
        self.request("unlock", udid=udid)

    def trust(self, udid: str) -> None:
        self.request("trust", udid=udid)

    def untrust(self, udid: str) -> None:
        self.request("untrust", udid=udid)

    def throttle(self, udid: str, bytes_per_second: int | None) -> None:
        """Cap the device's transfer rate; None lifts the cap."""
        self.request("throttle", udid=udid, bytes_per_second=bytes_per_second)

    def fault(self, udid: str, **faults: Any) -> dict[str, Any]:
        """Switch field-failure modes on or off (names and values in `agent.sim.faults`); all modes now."""
        return self.request("fault", udid=udid, faults=faults)["faults"]

    def clear_faults(self, udid: str) -> None:
        self.request("clear_faults", udid=udid)

    def restart(self, udid: str) -> None:
        self.request("restart", udid=udid)
    def clock(self, udid: str, offset_seconds: float) -> None:
        """Run the device's clock this far ahead of the host's (negative: behind)."""
        self.request("clock", udid=udid, offset_seconds=offset_seconds)

    def free_space(self, udid: str, available: int | None) -> None:
        """Have the device report this many free bytes; None: its capacity minus its content."""
        self.request("free_space", udid=udid, bytes=available)

    def evolve(self, udid: str, seed: int) -> dict[str, list[str]]:
        """Let a day of use pass; the keys added, modified and removed."""
        return self.request("evolve", udid=udid, seed=seed)
