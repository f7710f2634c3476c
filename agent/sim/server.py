"""`SimServer`: several simulated iPhones behind one fake usbmuxd, served from a background thread.

Usable in-process by tests and `coffer demo` (every public method is thread-safe and blocking)
and by `coffer sim`. State lives in a folder (a temporary one by default): `usbmuxd/` holds the
pair records and SystemBUID, `devices/<UDID>/` each device, so a restarted simulator serves the
same devices to the same paired hosts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import shutil
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from agent.errors import UsageError
from agent.sim.content import EvolveReport
from agent.sim.control_server import ControlServer
from agent.sim.device import DEFAULT_KEYBAG_DPIC, DEFAULT_KEYBAG_ITERATIONS, STATE_FILE, SimulatedDevice
from agent.sim.faults import DeviceFaults
from agent.sim.identity import HardwareIdentity
from agent.sim.routing import Attachment
from agent.sim.usbmux import RESULT_BADDEV, ConnectionHandler, PairRecordStore, UsbmuxServer, attached_message

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
CALL_TIMEOUT = 600.0  # seconds a blocking call waits for the simulator (device creation may be slow)
REBOOT_SETTLE_SECONDS = 0.05  # the host closes its lockdown session before the device goes
REBOOT_SECONDS = 0.3  # how long a rebooting device stays unplugged


class SimServer:
    """Fake usbmuxd + simulated devices, running in their own asyncio loop and thread."""

    def __init__(self, state_dir: Path | None = None, *, port: int = 0, control_port: int | None = 0) -> None:
        """`port` 0 picks a free port; `control_port` None runs no control socket."""
        self._owns_state_dir = state_dir is None
        self.state_dir = (
            Path(tempfile.mkdtemp(prefix="coffer-sim-")) if state_dir is None else Path(state_dir)
        )
        self._requested_port = port
        self._requested_control_port = control_port
        self._devices: dict[str, SimulatedDevice] = {}
        self._attachments: dict[str, Attachment] = {}
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._next_device_id = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._port = 0
        self._control_port = 0

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SimServer:
        """Load the devices of the state folder, plug them all in, and start serving."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        devices_dir = self.state_dir / "devices"
        devices_dir.mkdir(parents=True, exist_ok=True)
        for folder in sorted(devices_dir.iterdir()):
            if (folder / STATE_FILE).exists():
                device = SimulatedDevice.load(folder)
                self._devices[device.udid] = device
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run_loop, args=(ready,), name="coffer-sim", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=CALL_TIMEOUT)
        except OSError as error:
            self._thread.join()
            self._thread = None
            raise UsageError(
                f"the simulator cannot listen on {LOOPBACK}: {error.strerror or error}"
            ) from error
        return self

    def stop(self) -> None:
        """Unplug every device, close the sockets and stop the thread (a temporary state folder goes too)."""
        if self._loop is not None and self._thread is not None:
            self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CALL_TIMEOUT)
            self._thread, self._loop = None, None
            self._servers, self._listeners = [], set()
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """The usbmuxd address for `USBMUXD_SOCKET_ADDRESS`: `127.0.0.1:PORT`."""
        return f"{LOOPBACK}:{self._port}"

    @property
    def control_address(self) -> str | None:
        """The line-based JSON control socket (see `agent.sim.control`), if running."""
        return f"{LOOPBACK}:{self._control_port}" if self._control_port else None

    # --- devices (blocking, thread-safe) ---------------------------------------------------------

    def add_device(
        self,
        *,
        profile: str = "tiny",
        seed: int = 0,
        name: str | None = None,
        password: str | None = None,
        trusted: bool = True,
        locked: bool = False,
        plugged: bool = True,
        keybag_dpic: int = DEFAULT_KEYBAG_DPIC,
        keybag_iterations: int = DEFAULT_KEYBAG_ITERATIONS,
    ) -> SimulatedDevice:
        """Create a device (identity from `seed` and its position, content from `profile`), save it
        in the state folder and, unless `plugged` is False, plug it in. `password` turns backup
        encryption on; `keybag_dpic`/`keybag_iterations` are its key-derivation rounds (a real
        device uses 10,000,000 and 10,000; the small defaults keep tests fast)."""
        if self._loop is None:
            raise RuntimeError("start the simulator before adding devices")
        index = len(self._devices)
        folder = self.state_dir / "devices" / HardwareIdentity.generate(seed, index).udid
        if folder.exists():
            raise UsageError(f"a device {folder.name} already exists in {folder.parent}; use another seed")
        device = SimulatedDevice.create(
            folder,
            seed=seed,
            index=index,
            profile=profile,
            name=name,
            password=password,
            trusted=trusted,
            locked=locked,
            keybag_dpic=keybag_dpic,
            keybag_iterations=keybag_iterations,
        )
        self._call(self._register(device, plugged))
        return device

    def devices(self) -> list[SimulatedDevice]:
        return list(self._devices.values())

    def device(self, udid: str) -> SimulatedDevice:
        try:
            return self._devices[udid]
        except KeyError:
            raise UsageError(f"no simulated device {udid}") from None

    def plug(self, udid: str) -> None:
        self._call(self.aplug(udid))

    def unplug(self, udid: str) -> None:
        """Pull the cable: the device's open connections are aborted at once, others go on."""
        self._call(self.aunplug(udid))

    def set_locked(self, udid: str, locked: bool) -> None:
        self._call(self.aset_locked(udid, locked))

    def set_trusted(self, udid: str, trusted: bool) -> None:
        self._call(self.aset_trusted(udid, trusted))

    def evolve(self, udid: str, seed: int) -> EvolveReport:
        """Let a day of use pass on the device."""
        return self._call(self.aevolve(udid, seed))

    def set_transfer_rate(self, udid: str, bytes_per_second: int | None) -> None:
        """Cap the device's file transfers (None: as fast as loopback allows)."""
        self._call(self.aset_transfer_rate(udid, bytes_per_second))

    def set_clock_offset(self, udid: str, seconds: float) -> None:
        """Run the device's clock `seconds` ahead of the host's (negative: behind), as lockdown reports it."""
        self._call(self.aset_clock_offset(udid, seconds))

    def set_data_available(self, udid: str, available: int | None) -> None:
        """Have the device report `available` free bytes (None: its capacity minus its content)."""
        self._call(self.aset_data_available(udid, available))

    def is_plugged(self, udid: str) -> bool:
        return udid in self._attachments

    def summary(self, udid: str) -> dict[str, Any]:
        """What the control socket's `list` reports about one device."""
        device = self.device(udid)
        attachment = self._attachments.get(udid)
        return {
            "udid": udid,
            "name": device.name,
            "product_type": device.hardware.model.product_type,
            "product_version": device.product_version,
            "plugged": attachment is not None,
            "device_id": attachment.device_id if attachment else None,
            "locked": device.locked,
            "trusted": device.trusted,
            "will_encrypt": device.will_encrypt,
            "transfer_rate": device.throttle.bytes_per_second,
            "clock_offset": device.clock_offset,
            "data_available": device.data_available,
            "backups": len(device.backups),
            "restores": len(device.restores),
            "faults": device.faults.to_json(),
        }

    # --- the same operations, on the loop (the control socket uses these) -------------------------

    async def aplug(self, udid: str) -> None:
        device = self.device(udid)
        if udid in self._attachments:
            return
        attachment = Attachment(device, self._next_device_id)
        self._next_device_id += 1
        device.power_cycle = lambda: self._areboot(udid)
        self._attachments[udid] = attachment
        self._publish(attached_message(attachment.device_id, udid, device.faults.usb_speed))

    async def aunplug(self, udid: str) -> None:
        self.device(udid)
        attachment = self._attachments.pop(udid, None)
        if attachment is None:
            return
        attachment.detach()
        self._publish({"MessageType": "Detached", "DeviceID": attachment.device_id})

    async def _areboot(self, udid: str) -> None:
        """A device restarting on its own: off usbmuxd for a moment, then back with a new DeviceID."""
        await asyncio.sleep(REBOOT_SETTLE_SECONDS)
        await self.aunplug(udid)
        await asyncio.sleep(REBOOT_SECONDS)
        device = self.device(udid)
        device.reboots += 1
        device.faults.stale_snapshot = False  # a restart clears the snapshot an interrupted backup left
        await self.aplug(udid)

    async def aset_locked(self, udid: str, locked: bool) -> None:
        self.device(udid).set_locked(locked)

    async def aset_trusted(self, udid: str, trusted: bool) -> None:
        self.device(udid).set_trusted(trusted)

    async def aset_transfer_rate(self, udid: str, bytes_per_second: int | None) -> None:
        self.device(udid).throttle.bytes_per_second = bytes_per_second

    async def arestart(self, udid: str) -> None:
        """The user restarts the device (it leaves usbmuxd for a moment, as after a restore)."""
        await self._areboot(udid)

    def set_faults(self, udid: str, **faults: Any) -> None:
        """Switch field-failure modes on or off (agent.sim.faults); ValueError for a bad one."""
        self._call(self.aset_faults(udid, faults))

    async def aset_faults(self, udid: str, faults: dict[str, Any]) -> dict[str, Any]:
        device = self.device(udid)
        device.faults.update(faults)
        return device.faults.to_json()

    async def aclear_faults(self, udid: str) -> None:
        self.device(udid).faults = DeviceFaults()
    async def aset_clock_offset(self, udid: str, seconds: float) -> None:
        self.device(udid).clock_offset = seconds

    async def aset_data_available(self, udid: str, available: int | None) -> None:
        self.device(udid).data_available = available

    async def aevolve(self, udid: str, seed: int) -> EvolveReport:
        return await asyncio.to_thread(self.device(udid).filesystem.evolve, seed)

    # --- DeviceHub, for usbmuxd --------------------------------------------------------------------

    def attached_devices(self) -> list[tuple[int, str, int]]:
        return [(a.device_id, udid, a.device.faults.usb_speed) for udid, a in self._attachments.items()]

    def route(self, device_id: int, port: int) -> ConnectionHandler | int:
        for attachment in self._attachments.values():
            if attachment.device_id == device_id:
                return attachment.route(port)
        return RESULT_BADDEV

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._listeners.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._listeners.discard(queue)

    # --- internals -----------------------------------------------------------------------------------

    def _publish(self, message: dict[str, Any]) -> None:
        for queue in self._listeners:
            queue.put_nowait(message)

    async def _register(self, device: SimulatedDevice, plugged: bool) -> None:
        self._devices[device.udid] = device
        if plugged:
            await self.aplug(device.udid)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None or self._thread is None:
            coroutine.close()
            raise RuntimeError("the simulator is not running")
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "blocking SimServer calls cannot run on the simulator's own loop; use the a* methods"
            )
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=CALL_TIMEOUT)

    def _run_loop(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_servers())
        except BaseException as error:
            for server in self._servers:
                server.close()
            loop.close()
            ready.set_exception(error)
            return
        self._loop = loop
        ready.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start_servers(self) -> None:
        usbmuxd = UsbmuxServer(self, PairRecordStore(self.state_dir / "usbmuxd"))
        server = await asyncio.start_server(usbmuxd.handle_client, LOOPBACK, self._requested_port)
        self._servers.append(server)
        self._port = server.sockets[0].getsockname()[1]
        if self._requested_control_port is not None:
            control = ControlServer(self)
            control_server = await asyncio.start_server(
                control.handle_client, LOOPBACK, self._requested_control_port
            )
            self._servers.append(control_server)
            self._control_port = control_server.sockets[0].getsockname()[1]
        for udid in self._devices:
            await self.aplug(udid)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for udid in list(self._attachments):
            await self.aunplug(udid)
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
