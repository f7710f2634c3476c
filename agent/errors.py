"""The one exception hierarchy of Coffer.

Every error a user can meet is a `CofferError` with a message they can act on and
the exit code of the command-line contract (DESIGN.md section 4): 1 failure,
2 usage, 3 wrong key or missing right, 4 repository damaged, 5 device problem.
The CLI prints `coffer: <message>` on one line and exits with `exit_code`.
"""

from __future__ import annotations


class CofferError(Exception):
    """Base of every error Coffer reports to a user."""

    exit_code = 1


class UsageError(CofferError):
    """The command line or a configuration file is wrong."""

    exit_code = 2


class WrongSecretError(CofferError):
    """A passphrase, recovery key, key file or backup password does not unlock."""

    exit_code = 3


class AccessDeniedError(CofferError):
    """The key in use unlocks the repository but lacks the right for this operation."""

    exit_code = 3


class RepositoryDamagedError(CofferError):
    """An object in the repository is missing, truncated or fails authentication."""

    exit_code = 4


class DeviceError(CofferError):
    """A device is unreachable, locked, untrusted or went away."""

    exit_code = 5


class DeviceLockedError(DeviceError):
    """The device asks for its passcode."""


class DeviceNotTrustedError(DeviceError):
    """The device waits for the user to tap Trust."""


class DeviceDisconnectedError(DeviceError):
    """The device was unplugged or stopped answering."""


class StorageError(CofferError):
    """The storage backend failed (outage, permissions, full disk)."""


class ObjectNotFoundError(StorageError):
    """A named object does not exist in storage."""


class ObjectExistsError(StorageError):
    """A put-if-absent found the name already taken."""


class UnsupportedFormatError(CofferError):
    """The repository was written in an on-storage format version this Coffer does not read."""


class BackupFormatError(CofferError):
    """An iOS backup folder is malformed or hostile."""
