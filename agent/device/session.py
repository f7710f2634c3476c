"""A mobilebackup2 session whose host side is Coffer's mirror (pymobiledevice3 does the protocol).

Since iOS 16.1 a device asks for its passcode before it starts a backup or changes its backup password,
and says so through notification_proxy (`com.apple.LocalAuthentication.ui.presented`, then `...dismissed`).
Coffer tells the user, waits, and gives up after COFFER_PASSCODE_TIMEOUT seconds (default five minutes)
with a message; apart from that prompt nothing on the host times out while the device works.
"""

from __future__ import annotations

import asyncio
import os
import plistlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from pymobiledevice3.exceptions import ConnectionTerminatedError, PyMobileDevice3Exception
from pymobiledevice3.lockdown_service_provider import LockdownServiceProvider
from pymobiledevice3.services.afc import AfcService
from pymobiledevice3.services.mobilebackup2 import (
    NP_LOCAL_AUTH_DISMISSED,
    NP_LOCAL_AUTH_PRESENTED,
    Mobilebackup2Service,
)
from pymobiledevice3.services.notification_proxy import NotificationProxyService

from agent.device.link import HostFiles, MirrorDeviceLink
from agent.errors import DeviceLockedError

T = TypeVar("T")
PASSCODE_TIMEOUT_SECONDS = 300.0


def passcode_timeout() -> float:
    """How long to wait for the user to enter the passcode the device asks for: COFFER_PASSCODE_TIMEOUT."""
    try:
        return max(0.0, float(os.environ.get("COFFER_PASSCODE_TIMEOUT", PASSCODE_TIMEOUT_SECONDS)))
    except ValueError:
        return PASSCODE_TIMEOUT_SECONDS


def _tell(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class PasscodePrompt:
    """Follows the device's passcode prompt on notification_proxy while `guard` runs the DeviceLink loop."""

    def __init__(self, proxy: NotificationProxyService, udid: str, notice: Callable[[str], None] = _tell) -> None:
        self.proxy = proxy
        self.udid = udid
        self.notice = notice
        self.timeout = passcode_timeout()

    async def watch(self) -> None:
        """Return when the proxy closes; DeviceLockedError when a prompt stays open past the time-out."""
        events = aiter(self.proxy.receive_notification())
        prompt_open = False
        while True:
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that meets a
                # notification arriving, and the watcher would then outlive the backup.
                async with asyncio.timeout(self.timeout if prompt_open else None):
                    event = await anext(events)
            except TimeoutError:
                raise DeviceLockedError(
                    f"device {self.udid} asked for its passcode and nobody entered it within {self.timeout:g} s: "
                    "run again and enter the passcode on the device when asked (COFFER_PASSCODE_TIMEOUT sets the wait)"
                ) from None
            except (StopAsyncIteration, PyMobileDevice3Exception, OSError):
                return  # the proxy closed or garbled: stop watching, the backup itself goes on
            name = event.get("Name")
            if name == NP_LOCAL_AUTH_PRESENTED and not prompt_open:
                prompt_open = True
                self.notice(f"coffer: device {self.udid}: enter the passcode on the device to let it go on")
            elif name == NP_LOCAL_AUTH_DISMISSED:
                prompt_open = False

    async def guard(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work`; if the prompt times out first, stop it and raise the time-out."""
        task = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(self.watch())
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and watcher.done() and watcher.exception() is not None:
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
                raise watcher.exception()  # type: ignore[misc]
            return await task
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await watcher
            if not task.done():
                task.cancel()


class MirrorBackupService(Mobilebackup2Service):
    """pymobiledevice3's Mobilebackup2Service with the DeviceLink answered from a `HostFiles`."""

    def __init__(self, lockdown: LockdownServiceProvider, host: HostFiles, scratch: Path) -> None:
        super().__init__(lockdown)
        self.host = host
        self.scratch = scratch

    @asynccontextmanager
    async def device_link(  # type: ignore[override]
        self, backup_directory: Path, filter_callback: object = None, password: str = ""
    ) -> AsyncIterator[MirrorDeviceLink]:
        await self.connect()
        assert self._service is not None
        link = MirrorDeviceLink(self._service, self.scratch, self.host, str(self.lockdown.udid))
        await link.version_exchange()
        await self.version_exchange(link)
        try:
            yield link
        finally:
            with suppress(ConnectionTerminatedError, OSError):
                await link.disconnect()

    @asynccontextmanager
    async def _sync_session(self) -> AsyncIterator[tuple[MirrorDeviceLink, AfcService, PasscodePrompt]]:
        """The device link with the sync lock held, as Finder and pymobiledevice3 take it."""
        async with (
            self.device_link(self.scratch) as link,
            NotificationProxyService(self.lockdown) as notification_proxy,
            AfcService(self.lockdown) as afc,
            self._backup_lock(afc, notification_proxy),
        ):
            await self._observe_backup_notifications(notification_proxy)
            yield link, afc, PasscodePrompt(notification_proxy, str(self.lockdown.udid))

    async def change_password(self, backup_directory: str | Path = ".", old: str = "", new: str = "") -> None:
        """pymobiledevice3's ChangePassword, with the device's passcode prompt followed as in a backup."""
        async with (
            self.device_link(Path(backup_directory)) as link,
            NotificationProxyService(self.lockdown) as notification_proxy,
        ):
            await self._observe_backup_notifications(notification_proxy)
            message: dict[str, Any] = {"MessageName": "ChangePassword", "TargetIdentifier": self.lockdown.udid}
            if old:
                message["OldPassword"] = old
            if new:
                message["NewPassword"] = new
            await link.send_process_message(message)
            await PasscodePrompt(notification_proxy, str(self.lockdown.udid)).guard(link.dl_loop())

    async def run_backup(
        self, *, on_info: Callable[[dict[str, Any]], None], progress: Callable[[Any], None], full: bool
    ) -> dict[str, Any]:
        async with self._sync_session() as (link, afc, prompt):
            info = await self.init_mobile_backup_factory_info(afc)
            on_info(info)
            request: dict[str, Any] = {"MessageName": "Backup", "TargetIdentifier": self.lockdown.udid}
            if full:
                request["Options"] = {"ForceFullBackup": True}
            await link.send_process_message(request)
            await prompt.guard(link.dl_loop(progress))
        return info

    async def run_restore(self, *, source: str, options: dict[str, Any], applications: dict[str, Any] | None,
                          progress: Callable[[Any], None]) -> None:
        async with self._sync_session() as (link, afc, prompt):
            await link.send_process_message(
                {"MessageName": "Restore", "TargetIdentifier": self.lockdown.udid, "SourceIdentifier": source,
                 "Options": options}
            )
            if applications:
                await afc.makedirs("/iTunesRestore")
                await afc.set_file_contents("/iTunesRestore/RestoreApplications.plist", plistlib.dumps(applications))
            await prompt.guard(link.dl_loop(progress))

