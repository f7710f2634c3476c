"""`coffer sim --replay FILE`: a simulated device that plays back the device side of a `--trace` recording.

The device gets its facts from the trace's lockdown events (iOS version and build, backup encryption, locked
or untrusted when the recording met those errors) and its mobilebackup2 service plays the recorded DeviceLink
messages in order: each message the device sent is sent again, each host message it waited for is awaited,
and the final `Response` carries the recorded `ErrorCode` and `ErrorDescription`. The host's answers are
Coffer's own, live. The k-th mobilebackup2 connection plays the k-th recorded one (a selective restore opens
two), later ones the last. A trace that ended before mobilebackup2 (a locked or untrusted device) leaves the
simulator's own service in place, so once the fault is cleared (`unlock`, `trust`) a backup completes.

A trace holds no contents and no names, so the device makes them up, deterministically:

* a file name token `@H` (a fileID) becomes the fileID of `HomeDomain`/`Library/Replay/H`, `%` its prefix
  folder, `#H` the name `xH`, `<udid>` this device's UDID;
* a file's bytes are pseudo-random bytes of the recorded size, seeded by its token (the same on every replay);
  an upload the device ended with an error sends the recorded bytes, then the error;
* `Status.plist`, `Manifest.plist` and `Manifest.db` are built for this device: the Manifest.db lists the files
  the trace shows uploaded, with their recorded sizes, so Coffer can store the backup and `check` it.

Replaying a device-encrypted backup is not supported: the trace has no keybag and no password.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.ios.identity import DeviceIdentity
from agent.ios.manifest_db import manifest_db_bytes
from agent.ios.plists import build_manifest_plist, build_status_plist
from agent.ios.records import FLAG_FILE, FileRecord, file_id_for
from agent.sim.device import SimulatedDevice
from agent.sim.mobilebackup import errors
from agent.sim.mobilebackup.device_link import DeviceLinkChannel, Upload

REPLAY_DOMAIN = "HomeDomain"
REPLAY_FOLDER = "Library/Replay"
PIECE = 1 << 20
SNAPSHOT_STATES = ("uploading", "moving", "removing")
UNTRUSTED = frozenset({"PairingDialogResponsePendingError", "NotTrustedError", "NotPairedError", "UserDeniedPairingError",
                       "PairingDialogResponsePending", "InvalidHostID", "UserDeniedPairing"})
LOCKED = frozenset({"PasswordRequiredError", "PasscodeRequiredError", "PasswordProtected", "PasscodeRequired"})
MOBILEBACKUP2 = "com.apple.mobilebackup2"


@dataclass
class RecordedTrace:
    """A trace file: its header, events and result."""

    header: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: Path) -> RecordedTrace:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the trace {path}: {exc}") from exc
        try:
            records = [json.loads(line) for line in lines if line.strip()]
        except ValueError:
            records = []
        if not records or not all(isinstance(r, dict) for r in records) or records[0].get("trace") != "coffer" \
                or records[0].get("version") != 1:
            raise UsageError(f"{path} is not a Coffer trace (version 1): record one with `--trace FILE`")
        trace = cls(records[0])
        for number, record in enumerate(records[1:], start=2):
            if "result" in record:
                trace.result = record["result"]
            elif _well_formed(record):
                trace.events.append(record)
            else:
                raise UsageError(f"{path} line {number} is not a trace event: record the trace again with `--trace FILE`")
        return trace

    def conversations(self) -> list[list[dict[str, Any]]]:
        """The DeviceLink events, one list per mobilebackup2 connection (each opens with a version exchange)."""
        conversations: list[list[dict[str, Any]]] = []
        for event in self.events:
            if event["layer"] != "dl":
                continue
            if (event["msg"] == "DLMessageVersionExchange" and event.get("from") == "device") or not conversations:
                conversations.append([])
            conversations[-1].append(event)
        return conversations

    def lockdown_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for event in self.events:
            if event["layer"] == "lockdown":
                values.update(event.get("values") or {})
                if event.get("key") and "value" in event:
                    values[event["key"]] = event["value"]
        return values

    def lockdown_errors(self) -> set[str]:
        return {str(e["error"]) for e in self.events if e["layer"] == "lockdown" and e.get("error")}


def install(device: SimulatedDevice, trace: RecordedTrace) -> None:
    """Make `device` the recorded one: its facts, its lock and trust state, its mobilebackup2 conversation."""
    values = trace.lockdown_values()
    if values.get("WillEncrypt"):
        raise UsageError("the trace is of a device that encrypts its backups: replaying those is not supported")
    device.product_version = str(values.get("ProductVersion") or device.product_version)
    device.build_version = str(values.get("BuildVersion") or device.build_version)
    failures = trace.lockdown_errors()
    if failures & LOCKED:
        device.set_locked(True)
    if failures & UNTRUSTED:
        device.set_trusted(False)
    if trace.conversations():  # else (it ended before mobilebackup2) the simulator's own service answers
        device.service_overrides[MOBILEBACKUP2] = Replay(trace).serve


class Replay:
    """The mobilebackup2 service of a replaying device."""

    def __init__(self, trace: RecordedTrace) -> None:
        self.conversations = trace.conversations()
        self.connections = 0

    async def serve(self, device: SimulatedDevice, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        events = self.conversations[min(self.connections, len(self.conversations) - 1)]
        self.connections += 1
        link = DeviceLinkChannel(reader, writer, device.throttle)
        await _Conversation(device, link, events).play()


class _Conversation:
    def __init__(self, device: SimulatedDevice, link: DeviceLinkChannel, events: list[dict[str, Any]]) -> None:
        self.device = device
        self.link = link
        self.events = events
        self.backup_uuid = str(uuid.UUID(int=random.Random(device.udid).getrandbits(128))).upper()
        uploads = [e for e in events if e["msg"] == "file" and e.get("from") == "device"]
        self.blobs = {_last(e["name"]): int(e.get("size") or 0) for e in uploads if _last(e["name"]).startswith("@")}
        self.status_uploads = sum(1 for e in uploads if _last(e["name"]) == "Status.plist")
        self.status_sent = 0
        responses = [e for e in events if e["msg"] == "DLMessageProcessMessage" and e.get("from") == "device"]
        self.succeeds = bool(responses) and not (responses[-1].get("message") or {}).get("ErrorCode")

    async def play(self) -> None:
        position = 0
        while position < len(self.events):
            event = self.events[position]
            position += 1
            if event.get("from") == "host":
                if event["msg"] == "DLMessageProcessMessage" and await self.link.receive_request() is None:
                    return  # the host left earlier than in the recording
                continue  # the host's answers are Coffer's own, live
            if event["msg"] == "DLMessageUploadFiles":
                files = []
                while position < len(self.events) and self.events[position]["msg"] == "file":
                    files.append(self.events[position])
                    position += 1
                await self.link.upload([self._upload(f) for f in files], _number(event, "progress"),
                                       int(event.get("bytes") or sum(int(f.get("size") or 0) for f in files)))
            else:
                await self._device_message(event)
        while await self.link.receive_request() is not None:  # requests the recording never saw
            await self.link.send_response(errors.GENERIC, "not in the replayed trace")

    async def _device_message(self, event: dict[str, Any]) -> None:
        name, progress = event["msg"], _number(event, "progress")
        if name == "DLMessageVersionExchange":
            await self.link.version_exchange()
        elif name == "DLMessageProcessMessage":
            body = event.get("message") or {}
            extra = {"ProtocolVersion": body["ProtocolVersion"]} if "ProtocolVersion" in body else None
            await self.link.send_response(int(body.get("ErrorCode") or 0), str(body.get("ErrorDescription") or ""), extra)
        elif name == "DLMessageDownloadFiles":
            paths = [self.path(p) for p in event.get("paths", [])]
            await self.link.download(paths, {p: io.BytesIO() for p in paths}, progress)
        elif name in ("DLMessageCreateDirectory", "DLContentsOfDirectory"):
            await self.link.command([name, self.path(event["path"]), {}, progress])
        elif name in ("DLMessageRemoveItems", "DLMessageRemoveFiles"):
            await self.link.command([name, [self.path(p) for p in event.get("paths", [])], {}, progress])
        elif name in ("DLMessageMoveItems", "DLMessageMoveFiles"):
            moves = {self.path(s): self.path(d) for s, d in event.get("moves", [])}
            await self.link.command([name, moves, {}, progress])
        elif name == "DLMessageCopyItem":
            await self.link.command([name, self.path(event["source"]), self.path(event["destination"]), {}, progress, 0])
        elif name == "DLMessageGetFreeDiskSpace":
            await self.link.command([name])
        elif name == "DLMessagePurgeDiskSpace":
            await self.link.command([name, int(event.get("amount") or 0), int(event.get("urgency") or 0)])
        # DLMessageDeviceReady goes with the version exchange; a file event outside an upload has nothing to send

    # --- names and contents -----------------------------------------------------------------------

    def path(self, recorded: str) -> str:
        parts = recorded.split("/")
        out = []
        for n, part in enumerate(parts):
            if part == "<udid>":
                out.append(self.device.udid)
            elif part == "%" and n + 1 < len(parts):
                out.append(_file_id(parts[n + 1])[:2])
            elif part.startswith("@"):
                out.append(_file_id(part))
            elif part.startswith("#"):
                out.append("x" + part[1:])
            else:
                out.append(part)
        return "/".join(out)

    def _upload(self, event: dict[str, Any]) -> Upload:
        name = _last(event["name"])
        device_name = "/private/var/mobile/Library/Replay/" + str(event.get("device_name", "")).lstrip("#")
        if name == "Status.plist":
            self.status_sent += 1
            last = self.status_sent == self.status_uploads
            state = "finished" if last and self.succeeds else SNAPSHOT_STATES[min(self.status_sent - 1, 2)]
            data = build_status_plist(snapshot_state=state, is_full_backup=False, backup_uuid=self.backup_uuid)
            return Upload(device_name, self.path(event["name"]), [data])
        if name == "Manifest.plist":
            return Upload(device_name, self.path(event["name"]), [self._manifest_plist()])
        if name == "Manifest.db":
            return Upload(device_name, self.path(event["name"]), [self._manifest_db()])
        return Upload(device_name, self.path(event["name"]),
                      _content(name, int(event.get("size") or 0), str(event.get("error") or "")))

    def _manifest_plist(self) -> bytes:
        device = self.device
        identity = DeviceIdentity(udid=device.udid, name=device.name, product_type=device.hardware.model.product_type,
                                  product_version=device.product_version, serial=device.hardware.serial_number,
                                  build=device.build_version)
        return build_manifest_plist(device=identity, backup_keybag=device.backup_keybag, applications={})

    def _manifest_db(self) -> bytes:
        records = [
            FileRecord.create(REPLAY_DOMAIN, f"{REPLAY_FOLDER}/{token[1:]}", FLAG_FILE, size=size, mtime=1_700_000_000,
                              inode=n + 1, protection_class=3)
            for n, (token, size) in enumerate(sorted(self.blobs.items()))
        ]
        return manifest_db_bytes(records)


def _well_formed(event: dict[str, Any]) -> bool:
    """Whether an event has the fields a replay reads, of the types the recorder writes."""
    if not isinstance(event.get("layer"), str) or not isinstance(event.get("msg"), str):
        return False
    if event["msg"] == "file" and not isinstance(event.get("name"), str):
        return False
    if event["msg"] in ("DLMessageCreateDirectory", "DLContentsOfDirectory") and not isinstance(event.get("path"), str):
        return False
    if event["msg"] == "DLMessageCopyItem" and not all(isinstance(event.get(k), str) for k in ("source", "destination")):
        return False
    paths, moves = event.get("paths", []), event.get("moves", [])
    return (isinstance(paths, list) and all(isinstance(p, str) for p in paths) and isinstance(moves, list)
            and all(isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) for p in m) for m in moves))


def _file_id(token: str) -> str:
    return file_id_for(REPLAY_DOMAIN, f"{REPLAY_FOLDER}/{token[1:]}")


def _last(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _number(event: dict[str, Any], key: str) -> float:
    value = event.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _content(token: str, size: int, error: str) -> Iterator[bytes]:
    """`size` pseudo-random bytes seeded by `token`; then, for an upload the device failed, the error."""
    generator = random.Random(token)
    left = size
    while left > 0:
        piece = generator.randbytes(min(PIECE, left))
        left -= len(piece)
        yield piece
    if error:
        raise OSError(5, error)
