"""Device backup passwords, sealed in the repository so that no host keeps one (DESIGN.md §3, Keys).

Each change of a device's password (set, learnt, changed, turned off) adds one record under
`secrets/`, stored with `write_sealed_record` (outer layer under the index key, so any writer
can list them). Inside, the password is sealed twice:

* `full`: to the `_manifest` public key — any holder of the full key set opens it, from any host;
* `station`: under the station key of the put-only key set that wrote it — that station, with its
  key file alone, regains what it set after losing its state folder; another station cannot.

The device is named by its keyed device tag, so storage learns nothing. The newest record a key
set can open wins (by a counter inside the sealed content); older ones stay as fallbacks, tried
against the backup's keybag when the newest does not open it.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from agent.keys import primitives
from agent.keys.keyset import MANIFEST_SPACE
from agent.repository.repository import Repository, read_sealed_records, write_sealed_record

SECRET_PREFIX = "secrets/"
_RECORD = b"device secret"
_FULL = b"device secret full"
_STATION = b"device secret station"


@dataclass(frozen=True)
class DevicePassword:
    udid: str
    password: str | None  # None: backup encryption was turned off
    counter: int  # nanoseconds since the epoch when it was recorded: the newest wins


def record_password(repository: Repository, udid: str, password: str | None) -> None:
    """Seal `password` (None: encryption turned off) for the full key set and, on a station, for itself."""
    repository.keys.require_write()
    tag = repository.device_tag(udid)
    content = json.dumps({"udid": udid, "password": password, "counter": time.time_ns()}).encode("utf-8")
    manifest_public = repository.keys.public_keys[MANIFEST_SPACE]
    document: dict[str, object] = {
        "device": tag,
        "full": _b64(primitives.seal_to(manifest_public, content, purpose=_FULL, associated=tag.encode())),
    }
    station_key = repository.keys.station_key
    if station_key is not None:
        document["station"] = _b64(primitives.seal_box(station_key, content, purpose=_STATION, associated=tag.encode()))
    write_sealed_record(repository, SECRET_PREFIX, document, _RECORD)


def device_passwords(repository: Repository, udid: str) -> list[DevicePassword]:
    """Every record of `udid` this key set can open, newest first (empty for a key that opens none)."""
    return _opened(repository, repository.device_tag(udid))


def newest_per_device(repository: Repository) -> list[DevicePassword]:
    """The newest record of each device this key set can open (what `key rotate` re-seals)."""
    newest: dict[str, DevicePassword] = {}
    for record in _opened(repository, None):
        newest.setdefault(record.udid, record)
    return list(newest.values())


def _opened(repository: Repository, tag: str | None) -> list[DevicePassword]:
    """Records of the device with `tag` (None: of every device) this key set opens, newest first."""
    keys = repository.keys
    if keys.index_key is None:
        return []
    found = []
    for _name, document in read_sealed_records(repository, SECRET_PREFIX, _RECORD):
        # Any writer can add a record: one that is not what Coffer writes is skipped, never trusted.
        device = document.get("device") if isinstance(document, dict) else None
        if not isinstance(device, str) or (tag is not None and device != tag):
            continue
        content = _open(document, device, keys.private_keys_for(MANIFEST_SPACE), keys.station_key)
        if not isinstance(content, dict):
            continue
        udid = content.get("udid")
        if not isinstance(udid, str) or repository.device_tag(udid) != device:
            continue
        password, counter = content.get("password"), content.get("counter")
        found.append(DevicePassword(udid, password if isinstance(password, str) else None,
                                    counter if isinstance(counter, int) else 0))
    return sorted(found, key=lambda p: p.counter, reverse=True)


def candidate_passwords(repository: Repository, udid: str) -> list[str]:
    """The distinct passwords this key set knows for `udid`, newest first (what the device uses is
    what opens its keybag: older ones are fallbacks, e.g. after a change the device never confirmed)."""
    return list(dict.fromkeys(r.password for r in device_passwords(repository, udid) if r.password is not None))


def _open(document: dict[str, object], tag: str, manifest_privates: list[bytes], station_key: bytes | None) -> object:
    try:
        if manifest_privates and isinstance(document.get("full"), str):
            sealed = _unb64(str(document["full"]))
            return json.loads(primitives.open_sealed_any(manifest_privates, sealed, purpose=_FULL, associated=tag.encode()))
        if station_key is not None and isinstance(document.get("station"), str):
            sealed = _unb64(str(document["station"]))
            return json.loads(primitives.open_box(station_key, sealed, purpose=_STATION, associated=tag.encode()))
    except (primitives.DecryptionError, ValueError):
        return None  # another station's record, or one sealed before this key set existed
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
