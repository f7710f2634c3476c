"""A mobilebackup2 session whose host side is Coffer's mirror (pymobiledevice3 does the protocol)."""

from __future__ import annotations

import asyncio
import plistlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from pymobiledevice3.exceptions import ConnectionTerminatedError
from pymobiledevice3.lockdown_service_provider import LockdownServiceProvider
from pymobiledevice3.services.afc import AfcService
from pymobiledevice3.services.mobilebackup2 import Mobilebackup2Service
from pymobiledevice3.services.notification_proxy import NotificationProxyService

from agent.device.link import HostFiles, MirrorDeviceLink


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
        link = MirrorDeviceLink(self._service, self.scratch, self.host)
        await link.version_exchange()
        await self.version_exchange(link)
        try:
            yield link
        finally:
            with suppress(ConnectionTerminatedError, OSError):
                await link.disconnect()

    @asynccontextmanager
    async def _sync_session(self) -> AsyncIterator[tuple[MirrorDeviceLink, AfcService]]:
        """The device link with the sync lock held, as Finder and pymobiledevice3 take it."""
        async with (
            self.device_link(self.scratch) as link,
            NotificationProxyService(self.lockdown) as notification_proxy,
            AfcService(self.lockdown) as afc,
            self._backup_lock(afc, notification_proxy),
        ):
            await self._observe_backup_notifications(notification_proxy)
            notifications = asyncio.create_task(self._log_backup_notifications(notification_proxy))
            try:
                yield link, afc
            finally:
                notifications.cancel()
                with suppress(asyncio.CancelledError, ConnectionTerminatedError, OSError):
                    await notifications

    async def run_backup(
        self, *, on_info: Callable[[dict[str, Any]], None], progress: Callable[[Any], None], full: bool
    ) -> dict[str, Any]:
        async with self._sync_session() as (link, afc):
            info = await self.init_mobile_backup_factory_info(afc)
            on_info(info)
            request: dict[str, Any] = {"MessageName": "Backup", "TargetIdentifier": self.lockdown.udid}
            if full:
                request["Options"] = {"ForceFullBackup": True}
            await link.send_process_message(request)
            await link.dl_loop(progress)
        return info

    async def run_restore(self, *, source: str, options: dict[str, Any], applications: dict[str, Any] | None,
                          progress: Callable[[Any], None]) -> None:
        async with self._sync_session() as (link, afc):
            await link.send_process_message(
                {"MessageName": "Restore", "TargetIdentifier": self.lockdown.udid, "SourceIdentifier": source,
                 "Options": options}
            )
            if applications:
                await afc.makedirs("/iTunesRestore")
                await afc.set_file_contents("/iTunesRestore/RestoreApplications.plist", plistlib.dumps(applications))
            await link.dl_loop(progress)

