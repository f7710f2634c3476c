"""The simulator's control socket: one JSON object per line in, one per line out.

Requests are `{"command": NAME, ...}`; replies are `{"ok": true, ...}` or
`{"ok": false, "error": MESSAGE}`. Commands:

| command | arguments | reply |
| --- | --- | --- |
| `list` | - | `devices`: one summary per device (udid, name, plugged, locked, trusted, will_encrypt, ...) |
| `plug`, `unplug` | `udid` | - |
| `lock`, `unlock` | `udid` | - |
| `trust`, `untrust` | `udid` | - (`untrust` forgets every paired host) |
| `throttle` | `udid`, `bytes_per_second` (int, or null for unlimited) | - |
| `clock` | `udid`, `offset_seconds` (number: the device's clock ahead of the host's) | - |
| `free_space` | `udid`, `bytes` (int: what the device reports free, or null for capacity minus content) | - |
| `evolve` | `udid`, `seed` (int) | `added`, `modified`, `removed`: `"<domain>/<path>"` lists |
| `fault` | `udid`, `faults`: `{mode: value}` (modes in `agent.sim.faults`) | `faults`: every mode's value now |
| `clear_faults` | `udid` | - |
| `restart` | `udid` | - (the device leaves usbmuxd for a moment and comes back; clears a stale snapshot) |

`agent.sim.control.SimControl` is a blocking client for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from agent.errors import CofferError

if TYPE_CHECKING:
    from agent.sim.server import SimServer


class ControlServer:
    """Executes control commands on the simulator's loop."""

    def __init__(self, sim: SimServer) -> None:
        self.sim = sim

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = await self.execute(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the simulator stops
        finally:
            writer.close()

    async def execute(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            return {"ok": True, **await self._run(request)}
        except (CofferError, ValueError, KeyError, TypeError) as error:
            return {
                "ok": False,
                "error": str(error) if not isinstance(error, KeyError) else f"missing {error}",
            }

    async def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("command")
        if command == "list":
            return {"devices": [self.sim.summary(device.udid) for device in self.sim.devices()]}
        udid = str(request["udid"])
        if command == "plug":
            await self.sim.aplug(udid)
        elif command == "unplug":
            await self.sim.aunplug(udid)
        elif command in ("lock", "unlock"):
            await self.sim.aset_locked(udid, command == "lock")
        elif command in ("trust", "untrust"):
            await self.sim.aset_trusted(udid, command == "trust")
        elif command == "throttle":
            rate = request["bytes_per_second"]
            if rate is not None and (not isinstance(rate, int) or rate <= 0):
                raise ValueError("bytes_per_second is a positive integer or null")
            await self.sim.aset_transfer_rate(udid, rate)
        elif command == "fault":
            faults = request["faults"]
            if not isinstance(faults, dict):
                raise ValueError("fault needs a faults object {mode: value}")
            return {"faults": await self.sim.aset_faults(udid, faults)}
        elif command == "clear_faults":
            await self.sim.aclear_faults(udid)
        elif command == "restart":
            await self.sim.arestart(udid)
        elif command == "clock":
            offset = request["offset_seconds"]
            if not isinstance(offset, int | float):
                raise ValueError("offset_seconds is a number")
            await self.sim.aset_clock_offset(udid, float(offset))
        elif command == "free_space":
            available = request["bytes"]
            if available is not None and (not isinstance(available, int) or available < 0):
                raise ValueError("bytes is a non-negative integer or null")
            await self.sim.aset_data_available(udid, available)
        elif command == "evolve":
            seed = request["seed"]
            if not isinstance(seed, int):
                raise ValueError("evolve needs an integer seed")
            return dataclasses.asdict(await self.sim.aevolve(udid, seed))
        else:
            raise ValueError(f"unknown command {command!r}")
        return {}
