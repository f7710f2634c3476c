"""What answers a port of a plugged-in device, and the connections that die when it is unplugged.

An `Attachment` is one plug-in of a device: its usbmuxd DeviceID, the service ports lockdownd
opened (each accepts one connection, even after the session that opened it has ended), and every
open tunnel, so that unplugging aborts them all at once.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

from agent.sim.device import SimulatedDevice
from agent.sim.framing import FrameError
from agent.sim.lockdown import LOCKDOWN_PORT, LockdownConnection
from agent.sim.mobilebackup.device_link import DeviceLinkError
from agent.sim.mobilebackup.service import serve_mobilebackup2
from agent.sim.services.afc import AfcSession, serve_afc
from agent.sim.services.installation_proxy import serve_installation_proxy
from agent.sim.services.notification_proxy import serve_notification_proxy
from agent.sim.services.springboard import serve_springboard
from agent.sim.usbmux import RESULT_CONNREFUSED, ConnectionHandler

logger = logging.getLogger(__name__)

ServiceHandler = Callable[[SimulatedDevice, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
FIRST_SERVICE_PORT = 49152
# A host that vanished mid-conversation: the connection ends, the simulator goes on.
PEER_ERRORS = (
    ConnectionError,
    asyncio.IncompleteReadError,
    FrameError,
    DeviceLinkError,
    ssl.SSLError,
    TimeoutError,
)


async def _afc(device: SimulatedDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    model = device.hardware.model
    await serve_afc(AfcSession(device.media, model.product_type, model.capacity_bytes), reader, writer)


async def _installation_proxy(
    device: SimulatedDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await serve_installation_proxy(device.udid, device.installed_apps(), reader, writer)


async def _springboard(
    _device: SimulatedDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await serve_springboard(reader, writer)


SERVICES: dict[str, ServiceHandler] = {
    "com.apple.mobilebackup2": serve_mobilebackup2,
    "com.apple.mobile.notification_proxy": serve_notification_proxy,
    "com.apple.afc": _afc,
    "com.apple.mobile.installation_proxy": _installation_proxy,
    "com.apple.springboardservices": _springboard,
}


class Attachment:
    """One plug-in of `device` under usbmuxd DeviceID `device_id`."""

    def __init__(self, device: SimulatedDevice, device_id: int) -> None:
        self.device = device
        self.device_id = device_id
        self._pending_services: dict[int, str] = {}
        self._next_port = FIRST_SERVICE_PORT
        self._connections: set[tuple[asyncio.Task[None], asyncio.StreamWriter]] = set()

    def open_service_port(self, service: str) -> int:
        """A fresh port on which `service` accepts the next connection (lockdownd StartService)."""
        port = self._next_port
        self._next_port = port + 1 if port < 65535 else FIRST_SERVICE_PORT
        self._pending_services[port] = service
        return port

    def route(self, port: int) -> ConnectionHandler | int:
        """The handler of a usbmuxd Connect to `port`, or CONNREFUSED."""
        if port == LOCKDOWN_PORT:
            return self._tracked(self._lockdown, "lockdownd")
        service = self._pending_services.pop(port, None)
        if service is None:
            return RESULT_CONNREFUSED
        handler = self.device.service_overrides.get(service) or SERVICES[service]
        return self._tracked(lambda reader, writer: handler(self.device, reader, writer), service)

    async def _lockdown(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = LockdownConnection(
            self.device, frozenset(SERVICES), self.open_service_port, reader, writer
        )
        await connection.serve()

    def _tracked(self, handler: ConnectionHandler, name: str) -> ConnectionHandler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            entry = (task, writer)
            self._connections.add(entry)
            try:
                await handler(reader, writer)
            except PEER_ERRORS as error:
                logger.debug("%s of %s ended: %r", name, self.device.udid, error)
            except Exception:
                logger.exception("%s of %s failed", name, self.device.udid)
            finally:
                self._connections.discard(entry)

        return run

    def detach(self) -> None:
        """The cable is pulled: every open connection of this device dies now."""
        self._pending_services.clear()
        for task, writer in list(self._connections):
            writer.transport.abort()
            task.cancel()
        self._connections.clear()
