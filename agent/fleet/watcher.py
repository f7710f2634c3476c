"""Plug and unplug events from usbmuxd (its `Listen` request), on a thread of their own.

pymobiledevice3's MuxConnection does the protocol: `listen()`, then each
`receive_device_state_update()` applies one Attached/Detached message to `mux.devices`; the
difference to the previous list is the event. On subscribing, usbmuxd first reports every
device already plugged in, so a restarted daemon sees them all. usbmuxd may be missing for
a while (on Linux, udev or systemd start it when the first iPhone is plugged in and it exits
after the last one goes): the watcher keeps trying, and reports the loss and return once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from pymobiledevice3 import usbmux
from pymobiledevice3.exceptions import MuxException

from agent.device.connect import usbmux_address
from agent.fleet.events import EventLog

RECONNECT_SECONDS = 2.0


class UsbmuxWatcher:
    def __init__(
        self,
        on_attached: Callable[[str], None],
        on_detached: Callable[[str], None],
        events: EventLog,
        address: str | None = None,
    ) -> None:
        self.on_attached = on_attached
        self.on_detached = on_detached
        self.events = events
        self.address = address if address is not None else usbmux_address()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="coffer-usbmux", daemon=True
        )
        self._thread.start()
        self._started.wait()

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread is not None:
            self._thread.join()

    async def _main(self) -> None:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        self._started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._follow()

    async def _follow(self) -> None:
        reachable: bool | None = None
        while True:
            plugged: dict[int, str] = {}
            try:
                mux = await usbmux.create_mux(usbmux_address=self.address)
            except (MuxException, OSError) as exc:
                if reachable is not False:
                    self.events.emit(
                        "usbmuxd_unreachable", address=self.address, reason=str(exc) or type(exc).__name__
                    )
                reachable = False
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            try:
                await mux.listen()
                if reachable is not True:
                    self.events.emit("usbmuxd_connected", address=self.address)
                reachable = True
                while True:
                    await mux.receive_device_state_update()
                    current = {device.devid: device.serial for device in mux.devices if device.is_usb}
                    self._report(plugged, current)
                    plugged = current
            except (MuxException, OSError) as exc:
                self.events.emit(
                    "usbmuxd_unreachable", address=self.address, reason=str(exc) or type(exc).__name__
                )
                reachable = False
                self._report(plugged, {})  # without usbmuxd, no device is reachable
            finally:
                await mux.close()
            await asyncio.sleep(RECONNECT_SECONDS)

    def _report(self, before: dict[int, str], after: dict[int, str]) -> None:
        for device_id in before.keys() - after.keys():
            self.on_detached(before[device_id])
        for device_id in after.keys() - before.keys():
            self.on_attached(after[device_id])
