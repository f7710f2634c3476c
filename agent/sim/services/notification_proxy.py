"""com.apple.mobile.notification_proxy, device side (ios-protocol.md section 3.2).

Hosts post and observe notifications here for the whole backup. The device never answers a post or
an observation, keeps the connection open until the host closes it, and answers `Shutdown` with
`ProxyDeath` (libimobiledevice blocks until it arrives).
"""

from __future__ import annotations

import asyncio

from agent.sim.framing import read_plist, write_plist


async def serve_notification_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Take notification requests until the host shuts the proxy down or closes the connection."""
    while True:
        message = await read_plist(reader)
        if message is None:
            return
        if isinstance(message, dict) and message.get("Command") == "Shutdown":
            await write_plist(writer, {"Command": "ProxyDeath"})
            return
