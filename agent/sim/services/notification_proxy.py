"""com.apple.mobile.notification_proxy, device side (ios-protocol.md section 3.2).

Hosts post and observe notifications here for the whole backup. The device never answers a post or
an observation, relays each notification the host observes (`RelayNotification`) when the device posts
it (the passcode prompt of a backup, agent.sim.faults), keeps the connection open until the host closes
it, and answers `Shutdown` with `ProxyDeath` (libimobiledevice blocks until it arrives).
"""

from __future__ import annotations

import asyncio
import contextlib

from agent.sim.device import SimulatedDevice
from agent.sim.framing import read_plist, write_plist


async def serve_notification_proxy(
    device: SimulatedDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Take notification requests until the host shuts the proxy down or closes the connection."""
    observed: set[str] = set()
    posted = device.observe_notifications()
    relay = asyncio.create_task(_relay(posted, observed, writer))
    try:
        while True:
            message = await read_plist(reader)
            if message is None:
                return
            if not isinstance(message, dict):
                continue
            if message.get("Command") == "ObserveNotification" and isinstance(message.get("Name"), str):
                observed.add(message["Name"])
            elif message.get("Command") == "Shutdown":
                await write_plist(writer, {"Command": "ProxyDeath"})
                return
    finally:
        device.stop_observing(posted)
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await relay


async def _relay(posted: asyncio.Queue[str], observed: set[str], writer: asyncio.StreamWriter) -> None:
    while True:
        name = await posted.get()
        if name in observed:
            await write_plist(writer, {"Command": "RelayNotification", "Name": name})
