"""What a backup host remembers about each device between backups: metadata, never contents.

For an incremental backup the device asks the host for its previous Status.plist,
Manifest.plist and Manifest.db and expects the host to still hold every file it does not
send again. Coffer keeps exactly those three metadata files plus, per fileID, the category
and chunk IDs of the content already in the repository — so it can answer the device and
write a complete snapshot without a copy of the phone. A put-only station could not read
this back from the repository, which is why it is kept here. Stored per repository and
device under `$COFFER_STATE_DIR` (default `~/.local/state/coffer`), written atomically,
mode 0600. The device backup password is never kept here: it is sealed in the repository
(agent.repository.device_secrets).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from agent.device.mirror import BlobRef
from agent.paths import state_root


@dataclass
class DeviceState:
    udid: str
    snapshot_id: str
    status_plist: bytes
    manifest_plist: bytes
    manifest_db: bytes
    blobs: dict[str, BlobRef] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc = {
            "udid": self.udid,
            "snapshot_id": self.snapshot_id,
            "status_plist": base64.b64encode(self.status_plist).decode(),
            "manifest_plist": base64.b64encode(self.manifest_plist).decode(),
            "manifest_db": base64.b64encode(self.manifest_db).decode(),
            "blobs": {
                file_id: [ref.category, ref.stored_size, ref.plain_size, [c.hex() for c in ref.chunks], ref.excluded]
                for file_id, ref in self.blobs.items()
            },
        }
        return zstandard.compress(json.dumps(doc).encode(), 3)

    @classmethod
    def from_bytes(cls, data: bytes) -> DeviceState:
        doc = json.loads(zstandard.decompress(data))
        return cls(
            udid=doc["udid"],
            snapshot_id=doc["snapshot_id"],
            status_plist=base64.b64decode(doc["status_plist"]),
            manifest_plist=base64.b64decode(doc["manifest_plist"]),
            manifest_db=base64.b64decode(doc["manifest_db"]),
            blobs={
                file_id: BlobRef(
                    file_id, stored, category=category, chunks=[bytes.fromhex(c) for c in chunks], plain_size=plain,
                    excluded=bool(excluded),
                )
                for file_id, (category, stored, plain, chunks, excluded) in doc["blobs"].items()
            },
        )


class DeviceStateStore:
    def __init__(self, repository_id: str, root: Path | None = None) -> None:
        self.directory = (root or state_root()) / repository_id

    def _path(self, udid: str, suffix: str = ".state") -> Path:
        return self.directory / f"{udid.replace('/', '_')}{suffix}"

    def load(self, udid: str) -> DeviceState | None:
        try:
            return DeviceState.from_bytes(self._path(udid).read_bytes())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, zstandard.ZstdError):
            return None  # unreadable state only costs a full backup

    def save(self, state: DeviceState) -> None:
        self._write(self._path(state.udid), state.to_bytes())

    def take_legacy_password(self, udid: str) -> str | None:
        """A password an earlier Coffer kept here in clear (`.password`, or inside the state file), removed
        still on disk until `drop_legacy_password`, which the caller runs once it sealed it in the repository."""
        password = None
        try:
            password = json.loads(zstandard.decompress(self._path(udid).read_bytes())).get("backup_password")
        except (OSError, ValueError, zstandard.ZstdError, AttributeError):
            pass
        try:
            password = self._path(udid, ".password").read_text(encoding="utf-8")
        except FileNotFoundError:
            pass
        return password if isinstance(password, str) and password else None

    def drop_legacy_password(self, udid: str) -> None:
        state = self.load(udid)
        if state is not None:
            self.save(state)  # rewritten without the password field
        self._path(udid, ".password").unlink(missing_ok=True)

    def _write(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, temporary = tempfile.mkstemp(prefix=".state-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def forget(self, udid: str) -> None:
        self._path(udid).unlink(missing_ok=True)
