"""The device-side restore (ios-protocol.md section 5): read a backup from the host and become it.

The device downloads `<Source>/Manifest.plist`, `Manifest.db`, `Status.plist` and `Info.plist`,
checks them, unlocks an encrypted backup with `Options.Password` (207 on a wrong one), fetches
every blob it restores into its scratch folder, then applies the entries to its filesystem, so a
later backup of this device shows the restored data.

Options: `RestoreSystemFiles` false leaves the system domains (everything outside
`/private/var/mobile`, the keychain included) as they are; `RemoveItemsNotRestored` removes the
device's entries the restore did not bring, within the restored scope only;
`RestoreDontCopyBackup` false first has the host copy the device's own backup aside.
`RestorePreserveSettings` false carries the backup's settings over: the device name (Info.plist)
and backup encryption (on with the backup's password, or off). `RestoreShouldReboot` (default
true) restarts the device once the host lets go of mobilebackup2: it disconnects from usbmuxd and
comes back under a new DeviceID.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from agent.errors import BackupFormatError, WrongSecretError
from agent.ios.encryption import (
    ClassKeys,
    Keybag,
    decrypt_manifest_db,
    decrypt_stream,
    encrypted_size,
    unwrap_file_key,
)
from agent.ios.manifest_db import records_from_bytes
from agent.ios.plists import load_plist_dict
from agent.ios.records import FLAG_DIRECTORY, FLAG_FILE, FLAG_SYMLINK, FileRecord
from agent.sim.content import FileKind, RestoredEntry
from agent.sim.device import SimulatedDevice
from agent.sim.device_paths import is_system_domain
from agent.sim.mobilebackup import errors
from agent.sim.mobilebackup.device_link import DeviceLinkChannel
from agent.sim.mobilebackup.versions import version_tuple
from agent.sim.reports import RestoreReport

BATCH_SIZE = 128  # blobs per DownloadFiles message
READ_PIECE_SIZE = 1024 * 1024
MIN_STATUS_VERSION = (2, 4)
_KINDS = {FLAG_FILE: FileKind.FILE, FLAG_DIRECTORY: FileKind.DIRECTORY, FLAG_SYMLINK: FileKind.SYMLINK}


class RestoreEngine:
    """One `Restore` request, run against the host through `link`."""

    def __init__(self, device: SimulatedDevice, link: DeviceLinkChannel, request: dict) -> None:
        self.device = device
        self.link = link
        options = request.get("Options")
        self.options = options if isinstance(options, dict) else {}
        self.source = str(request.get("SourceIdentifier") or "")
        self.report = RestoreReport(source_udid=self.source)
        self._backup_name: object = None

    async def run(self) -> RestoreReport:
        """Restore the device; raises MobileBackupFailure with the code the Response must carry."""
        self.device.restores.append(self.report)
        if not self.source:
            raise errors.MobileBackupFailure(errors.GENERIC, "a Restore needs a SourceIdentifier")
        records, class_keys = await self._read_backup()
        if self.options.get("RestoreDontCopyBackup", True) is False:
            await self._copy_own_backup()
        restore_system = bool(self.options.get("RestoreSystemFiles", True))
        selected = [
            r for r in records if r.flags in _KINDS and (restore_system or not is_system_domain(r.domain))
        ]
        self.report.skipped_system = sum(1 for r in records if r.flags in _KINDS) - len(selected)
        staging = self.device.scratch_dir / f"restore-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            await self._download_blobs(selected, staging)
            entries = self._restored_entries(selected, staging, class_keys, restore_system)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        await self._apply(entries, staging)
        if self.options.get("RestorePreserveSettings", True) is False:
            self._take_settings()
        self.device.reboot_pending = bool(self.options.get("RestoreShouldReboot", True))
        self.report.restored_files = sum(1 for r in selected if r.is_file)
        self.report.restored_bytes = sum(r.size for r in selected if r.is_file)
        return self.report

    async def _read_backup(self) -> tuple[list[FileRecord], ClassKeys | None]:
        """Manifest rows of the source backup (decrypted), after the status and version checks."""
        metadata: dict[str, bytes] = {}
        for progress, name in enumerate(("Manifest.plist", "Manifest.db", "Status.plist", "Info.plist")):
            data = await self.link.fetch(f"{self.source}/{name}", float(progress))
            if data is None:
                raise errors.MobileBackupFailure(
                    errors.BACKUP_MISSING, f"the backup of {self.source} has no {name}"
                )
            metadata[name] = data
        try:
            status = load_plist_dict(metadata["Status.plist"], "Status.plist")
            if (
                version_tuple(status.get("Version")) < MIN_STATUS_VERSION
                or status.get("BackupState") != "new"
                or status.get("SnapshotState") != "finished"
            ):
                raise errors.MobileBackupFailure(
                    errors.BACKUP_INCOMPLETE, "the backup is not a finished snapshot"
                )
            info = load_plist_dict(metadata["Info.plist"], "Info.plist")
            self._backup_name = info.get("Device Name")
            backup_version = str(info.get("Product Version", "0"))
            if version_tuple(backup_version) > version_tuple(self.device.product_version):
                raise errors.MobileBackupFailure(
                    errors.GENERIC,
                    f"the backup comes from iOS {backup_version}, newer than this device's {self.device.product_version}",
                )
            manifest = load_plist_dict(metadata["Manifest.plist"], "Manifest.plist")
            manifest_db, class_keys = metadata["Manifest.db"], None
            self.report.encrypted = bool(manifest.get("IsEncrypted"))
            if self.report.encrypted:
                class_keys = self._unlock(manifest)
                manifest_key = manifest.get("ManifestKey")
                if not isinstance(manifest_key, bytes):
                    raise BackupFormatError("an encrypted backup's Manifest.plist has no ManifestKey")
                manifest_db = decrypt_manifest_db(class_keys, manifest_key, manifest_db)
            return records_from_bytes(manifest_db), class_keys
        except BackupFormatError as error:
            raise errors.MobileBackupFailure(errors.BACKUP_CORRUPT, str(error)) from error

    def _unlock(self, manifest: dict) -> ClassKeys:
        password = self.options.get("Password")
        keybag = manifest.get("BackupKeyBag")
        if not isinstance(keybag, bytes):
            raise BackupFormatError("an encrypted backup's Manifest.plist has no BackupKeyBag")
        if not isinstance(password, str) or not password:
            raise errors.MobileBackupFailure(
                errors.INVALID_PASSWORD, "the backup is encrypted: a password is needed"
            )
        try:
            return Keybag.parse(keybag).unlock(password)
        except WrongSecretError as error:
            raise errors.MobileBackupFailure(errors.INVALID_PASSWORD, "Invalid password") from error

    def _take_settings(self) -> None:
        """The backup's device name and backup encryption become the device's own."""
        if isinstance(self._backup_name, str) and self._backup_name:
            self.device.name = self._backup_name
            self.device.save()
        password = self.options.get("Password") if self.report.encrypted else None
        if password != self.device.backup_password:
            self.device.set_backup_password(password if isinstance(password, str) else None)

    async def _copy_own_backup(self) -> None:
        """Before being overwritten, the device has the host set its own backup aside."""
        own = self.device.udid
        if await self.link.fetch(f"{own}/Info.plist", 4.0) is not None:
            await self.link.copy_item(own, f"{own}-{datetime.now():%Y%m%d-%H%M%S}", 5.0)

    async def _download_blobs(self, selected: list[FileRecord], staging: Path) -> None:
        files = [r for r in selected if r.is_file]
        for start in range(0, len(files), BATCH_SIZE):
            batch = files[start : start + BATCH_SIZE]
            handles = {f"{self.source}/{r.blob_name}": open(staging / r.file_id, "wb") for r in batch}  # noqa: SIM115
            try:
                failures = await self.link.download(list(handles), handles, 10.0 + 80.0 * start / len(files))
            finally:
                for handle in handles.values():
                    handle.close()
            if failures:
                raise errors.MobileBackupFailure(
                    errors.MISSING_BLOBS, f"Manifest references files not in backup ({len(failures)} missing)"
                )
            for record in batch:
                expected = encrypted_size(record.size) if record.wrapped_key is not None else record.size
                if (staging / record.file_id).stat().st_size != expected:
                    raise errors.MobileBackupFailure(
                        errors.BACKUP_CORRUPT,
                        f"{record.domain}/{record.relative_path} has the wrong size in the backup",
                    )

    def _restored_entries(
        self, selected: list[FileRecord], staging: Path, class_keys: ClassKeys | None, restore_system: bool
    ) -> list[RestoredEntry]:
        entries = list(self._entries(selected, staging, class_keys))
        if self.options.get("RemoveItemsNotRestored") and not restore_system:
            entries.extend(self._kept_system_entries())
        return entries

    async def _apply(self, entries: list[RestoredEntry], staging: Path) -> None:
        """Apply in a worker thread. Past this point the device finishes the restore even if the
        host goes away; the staged blobs are removed once the filesystem has taken them."""
        remove_missing = bool(self.options.get("RemoveItemsNotRestored", False))
        applying = asyncio.ensure_future(
            asyncio.to_thread(self.device.filesystem.apply_restore, entries, remove_missing=remove_missing)
        )

        def clean_up(task: asyncio.Future[None]) -> None:
            shutil.rmtree(staging, ignore_errors=True)
            if not task.cancelled():
                task.exception()  # retrieved here; `await` below re-raises it to a live caller

        applying.add_done_callback(clean_up)
        await asyncio.shield(applying)

    def _entries(
        self, records: list[FileRecord], staging: Path, class_keys: ClassKeys | None
    ) -> Iterator[RestoredEntry]:
        for record in records:
            data = None
            if record.is_file:
                pieces = _read_pieces(staging / record.file_id)
                if record.wrapped_key is not None:
                    if class_keys is None:
                        raise errors.MobileBackupFailure(
                            errors.BACKUP_CORRUPT, "a file key in an unencrypted backup"
                        )
                    pieces = decrypt_stream(
                        unwrap_file_key(class_keys, record.wrapped_key), pieces, record.size
                    )
                data = pieces
            yield RestoredEntry(
                domain=record.domain,
                relative_path=record.relative_path,
                kind=_KINDS[record.flags],
                mode=record.mode,
                mtime=record.mtime,
                target=record.target,
                data=data,
                protection_class=record.protection_class or None,
            )

    def _kept_system_entries(self) -> Iterator[RestoredEntry]:
        """The device's own system entries, handed back so that `RemoveItemsNotRestored` spares
        what `RestoreSystemFiles` left out of the restore."""
        filesystem = self.device.filesystem
        for f in filesystem.files():
            if is_system_domain(f.domain):
                yield filesystem.as_restored(f)


def _read_pieces(path: Path) -> Iterable[bytes]:
    """A staged blob, read lazily when the filesystem consumes the entry."""
    with open(path, "rb") as handle:
        while piece := handle.read(READ_PIECE_SIZE):
            yield piece
