"""A device's backup encryption: on, off, a new password (as `idevicebackup2 encryption`/`changepw`).

Coffer sets random passwords and seals each one in the repository *before* the device gets it
(agent.repository.device_secrets): a run that dies after the device changed can never leave a
password nobody holds. A change that the device refused is recorded back, so the newest record
stays the one the device uses.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from pymobiledevice3.exceptions import PyMobileDevice3Exception
from pymobiledevice3.lockdown import UsbmuxLockdownClient

from agent.archive.passwords import passwords_to_try
from agent.device.connect import lockdown_session, translate
from agent.device.mirror import BackupMirror
from agent.device.session import MirrorBackupService
from agent.errors import CofferError, UsageError, WrongSecretError
from agent.repository.device_secrets import device_passwords, record_password
from agent.repository.repository import Repository

T = TypeVar("T")


class _NoFiles:
    """The host side of a ChangePassword exchange: the device asks for no files."""

    def __init__(self) -> None:
        self.mirror = BackupMirror()

    async def begin_upload(self, file_name: str, device_name: str) -> object:
        raise OSError(f"unexpected upload of {file_name} during a password change")

    async def download(self, path: str) -> AsyncIterator[bytes]:
        raise FileNotFoundError(2, "No such file or directory", path)
        yield b""  # an async generator, like the other hosts' download

    def free_space(self) -> int:
        return 1 << 40


def new_password() -> str:
    return secrets.token_urlsafe(24)


async def device_encrypts(lockdown: UsbmuxLockdownClient) -> bool:
    """Lockdown's `WillEncrypt`: whether the device encrypts its backups."""
    return bool(await lockdown.get_value("com.apple.mobile.backup", "WillEncrypt") or False)


async def _change(lockdown: UsbmuxLockdownClient, scratch: Path, *, old: str = "", new: str = "") -> None:
    # A mobilebackup2 session serves one request: ChangePassword gets its own.
    await MirrorBackupService(lockdown, _NoFiles(), scratch).change_password(str(scratch), old=old, new=new)  # type: ignore[arg-type]


async def turn_on_encryption(repository: Repository, lockdown: UsbmuxLockdownClient, scratch: Path) -> str:
    """Give the device a random backup password, sealed in the repository first; return it."""
    password = new_password()
    record_password(repository, lockdown.udid, password)
    await _change(lockdown, scratch, new=password)
    return password


async def _change_from_known(
    repository: Repository, lockdown: UsbmuxLockdownClient, scratch: Path, new: str | None
) -> str:
    """Change the device's password to `new` (None: turn encryption off) from whichever known one it has."""
    udid = lockdown.udid
    known = passwords_to_try(repository, udid)
    if not known:
        raise WrongSecretError(f"no backup password of device {udid} is sealed for this key in the repository")
    record_password(repository, udid, new)
    for old in known:
        try:
            await _change(lockdown, scratch, old=old, new=new or "")
        except (PyMobileDevice3Exception, WrongSecretError):
            continue  # the device refused this one (MBErrorDomain 207): try the next known password
        return old
    record_password(repository, udid, known[0])  # nothing changed on the device
    raise WrongSecretError(f"device {udid} refused every backup password sealed for this key")


def _run(udid: str, work: Callable[[UsbmuxLockdownClient, Path], Awaitable[T]]) -> T:
    async def session() -> T:
        async with lockdown_session(udid) as lockdown:
            with tempfile.TemporaryDirectory(prefix="coffer-link-") as scratch:
                return await work(lockdown, Path(scratch))

    try:
        return asyncio.run(session())
    except CofferError:
        raise
    except Exception as exc:
        raise translate(exc, udid) from exc


def set_encryption(repository: Repository, udid: str, on: bool) -> bool:
    """Turn the device's backup encryption on (a random sealed password) or off; False if it already was."""
    repository.keys.require_write()

    async def work(lockdown: UsbmuxLockdownClient, scratch: Path) -> bool:
        if await device_encrypts(lockdown) == on:
            return False
        if on:
            await turn_on_encryption(repository, lockdown, scratch)
        else:
            await _change_from_known(repository, lockdown, scratch, None)
        return True

    return _run(udid, work)


def change_password(repository: Repository, udid: str) -> str:
    """A new random backup password for an encrypting device; return it."""
    repository.keys.require_full()
    password = new_password()

    async def work(lockdown: UsbmuxLockdownClient, scratch: Path) -> None:
        if not await device_encrypts(lockdown):
            raise UsageError(f"device {udid} does not encrypt its backups: turn it on with `coffer encryption on`")
        await _change_from_known(repository, lockdown, scratch, password)

    _run(udid, work)
    return password


def sealed_password(repository: Repository, udid: str) -> str:
    """The newest backup password sealed for `udid`, else the newest a snapshot of it keeps (full key only:
    a station never reads one back)."""
    repository.keys.require_full()
    records = device_passwords(repository, udid)
    if records:
        if records[0].password is None:
            raise CofferError(f"backup encryption of device {udid} was turned off: it has no password")
        return records[0].password
    known = passwords_to_try(repository, udid)
    if not known:
        raise CofferError(f"no backup password of device {udid} is sealed in the repository")
    return known[0]
