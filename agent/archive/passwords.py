"""Every device backup password a key set can find for a device, newest first.

First the records sealed for this key set (agent.repository.device_secrets), then, for the full
key, the passwords kept in the device's snapshots (`_manifest` part): an encrypted Finder backup
imported with `--backup-password-file` left its password only there. Lazy: reading snapshots
costs a request each, so callers stop at the first password that opens what they hold.
"""

from __future__ import annotations

from collections.abc import Iterator

from agent.archive.view import read_manifest_part
from agent.repository.device_secrets import candidate_passwords
from agent.repository.repository import Repository


def known_passwords(repository: Repository, udid: str) -> Iterator[str]:
    seen: set[str] = set()
    for password in candidate_passwords(repository, udid):
        seen.add(password)
        yield password
    if not repository.keys.is_full:
        return
    for entry in reversed(repository.snapshots()):
        if entry.header.is_encrypted and entry.header.device.get("udid") == udid:
            password = read_manifest_part(repository, entry.snapshot_id).backup_password
            if password and password not in seen:
                seen.add(password)
                yield password


def passwords_to_try(repository: Repository, udid: str) -> list[str]:
    """The sealed records' passwords, newest first; only when there is none, the snapshots' copies."""
    return candidate_passwords(repository, udid) or list(known_passwords(repository, udid))
