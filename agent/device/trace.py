"""`--trace FILE`: the metadata of a device conversation as JSON lines, safe to attach to a bug report.

One JSON object per line (format in docs/cli.md, "Traces"): a header, then one event per usbmux
listing, lockdown session and request, and DeviceLink message in either direction (`DLMessage*` names,
status codes, sizes, progress figures, the device's own error strings, seconds since the start), then
the command's result (exit code and message). What is never written:

* file contents: only sizes;
* names: every path component that is not one of Apple's fixed backup-layout names (`Manifest.db`,
  `Snapshot`, a two-hex-digit prefix folder, …) becomes `#` + the first 64 bits of an HMAC-SHA256 under a
  random key kept on this host only (`trace-key` in the state folder). A plain or salted-in-the-file hash
  of `HomeDomain-Library/SMS/sms.db` or `IMG_0001.HEIC` could be looked up in a dictionary; without the key
  it cannot. The same host gives the same name the same token, so two traces can be compared. A fileID
  (itself an unkeyed SHA-1 of domain and path) becomes `@` + its token, and the prefix folder before it `%`;
* the UDID, serial number, device name, ECID, IMEI, phone number and Wi-Fi/Bluetooth addresses: `<udid>`,
  `<serial>`, … wherever they appear, error strings included; of lockdown values only a fixed list of
  non-identifying keys (model, iOS version, backup encryption, disk usage, the clock) is kept.

Recording is off unless a command runs inside `recording()`; the hooks (`active()`) then cost nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from agent.errors import CofferError

TRACE_VERSION = 1
KEY_FILE = "trace-key"
TOKEN_HEX = 16  # 64 bits: no collision among a device's files in practice, and nothing to brute-force without the key
# Apple's fixed names in a backup folder (and the host side of a restore): structure, not user data.
LAYOUT_NAMES = frozenset({
    "Status.plist", "Manifest.plist", "Manifest.db", "Manifest.mbdb", "Manifest.mbdx", "Info.plist", "Snapshot",
    "iTunesRestore", "RestoreApplications.plist",
})
_HEX2 = re.compile(r"[0-9a-f]{2}")
_FILE_ID = re.compile(r"[0-9a-f]{40}")
# A user-data path inside an error string the device wrote (it names the file it could not read).
_USER_PATH = re.compile(r"(?:/private)?/var/mobile/[^\s:,;()'\"]*")
# Lockdown values that identify no one: kept in the trace (the rest is dropped).
SAFE_VALUES = frozenset({
    "ActivationState", "BuildVersion", "CPUArchitecture", "DeviceClass", "HardwareModel", "HostAttached",
    "PasswordProtected", "ProductName", "ProductType", "ProductVersion", "ProtocolVersion", "TimeIntervalSince1970",
    "TrustedHostAttached", "WillEncrypt", "RequiresEncrypt", "TotalDiskCapacity", "TotalDataCapacity",
    "TotalDataAvailable", "AmountDataAvailable", "IsAssociated",
})
# Lockdown values that identify the device or its owner: scrubbed from every string of the trace.
IDENTITIES = {
    "UniqueDeviceID": "<udid>", "SerialNumber": "<serial>", "DeviceName": "<name>", "UniqueChipID": "<ecid>",
    "InternationalMobileEquipmentIdentity": "<imei>", "PhoneNumber": "<phone>", "WiFiAddress": "<wifi>",
    "BluetoothAddress": "<bluetooth>",
}

_active: Trace | None = None


def host_key(state: Path) -> bytes:
    """This host's trace key, made on first use (never written into a trace)."""
    path = state / KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        state.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key.hex())
        return key


class Trace:
    """One trace file being written."""

    def __init__(self, stream: IO[str], command: str, key: bytes) -> None:
        from agent import __version__

        self._stream = stream
        self._key = key
        self._started = time.monotonic()
        self._secrets: dict[str, str] = {}  # identifying strings -> placeholder
        self._names: dict[str, str] = {}  # names and paths seen -> what the trace shows, for scrubbing free text
        self.write({
            "trace": "coffer", "version": TRACE_VERSION, "command": command, "coffer": __version__,
            "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "names": "HMAC-SHA256/64 under a key kept on the recording host",
        })

    # --- redaction ------------------------------------------------------------------------------

    def identify(self, udid: str, values: Mapping[str, Any] | None = None) -> None:
        """Register a device's identifying values, so no string of the trace shows them."""
        self._secrets.setdefault(udid, "<udid>")
        for key, placeholder in IDENTITIES.items():
            value = (values or {}).get(key)
            if value not in (None, "") and len(str(value)) >= 4:
                self._secrets.setdefault(str(value), placeholder)

    def token(self, name: str, mark: str = "#") -> str:
        """`mark` + the keyed hash of `name`."""
        token = mark + hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()[:TOKEN_HEX]
        self._names.setdefault(name, token)
        return token

    def path(self, path: str) -> str:
        """A backup-folder path with every name replaced (see the module docstring)."""
        parts = path.split("/")
        out: list[str] = []
        for n, part in enumerate(parts):
            following = parts[n + 1] if n + 1 < len(parts) else ""
            if part in self._secrets:
                out.append(self._secrets[part])
            elif part in LAYOUT_NAMES or part == "":
                out.append(part)
            elif _HEX2.fullmatch(part) and _FILE_ID.fullmatch(following) and following.startswith(part):
                out.append("%")
            elif _HEX2.fullmatch(part):
                out.append(part)
            elif _FILE_ID.fullmatch(part):
                out.append(self.token(part, "@"))
            else:
                out.append(self.token(part))
        redacted = "/".join(out)
        if redacted != path:
            self._names.setdefault(path, redacted)
        return redacted

    def text(self, text: str) -> str:
        """Free text (an error string) with identities, the names seen so far and user-data paths replaced."""
        if not text:
            return text
        for secret, placeholder in sorted(self._secrets.items(), key=lambda item: -len(item[0])):
            text = text.replace(secret, placeholder)
        for name, token in sorted(self._names.items(), key=lambda item: -len(item[0])):
            if len(name) >= 4 and name in text:
                text = text.replace(name, token)
        return _USER_PATH.sub(lambda match: self.token(match.group(0)), text)

    def values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The non-identifying lockdown values (see SAFE_VALUES)."""
        return {k: v for k, v in values.items() if k in SAFE_VALUES and isinstance(v, str | int | float | bool)}

    # --- writing --------------------------------------------------------------------------------

    def write(self, record: dict[str, Any]) -> None:
        self._stream.write(json.dumps(record, sort_keys=False, default=str) + "\n")

    def event(self, layer: str, message: str, /, **fields: Any) -> None:
        self.write({"t": round(time.monotonic() - self._started, 4), "layer": layer, "msg": message, **fields})

    def result(self, exit_code: int, message: str = "") -> None:
        self.write({"t": round(time.monotonic() - self._started, 4), "result": {"exit_code": exit_code,
                                                                               "message": self.text(message)}})


def active() -> Trace | None:
    """The trace being recorded, if any."""
    return _active


@contextlib.contextmanager
def recording(path: Path | None, command: str) -> Iterator[Trace | None]:
    """Record the conversation of the command run inside into `path` (nothing when None), ending with its
    result: 0, or the exit code and message of the CofferError it raised (130 when interrupted, 1 and the
    exception for a bug: the trace a bug report needs most)."""
    global _active
    if path is None:
        yield None
        return
    from agent.paths import state_root

    try:
        stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below, after the result
    except OSError as exc:
        raise CofferError(f"cannot write the trace {path}: {exc.strerror or exc}") from exc
    trace = Trace(stream, command, host_key(state_root()))
    _active = trace
    try:
        yield trace
        trace.result(0)
    except CofferError as exc:
        trace.result(exc.exit_code, str(exc))
        raise
    except KeyboardInterrupt:
        trace.result(130, "interrupted")
        raise
    except Exception as exc:
        trace.result(1, f"internal error: {type(exc).__name__}: {exc}")
        raise
    finally:
        _active = None
        stream.close()


# --- DeviceLink messages (agent.device.link records them) ----------------------------------------------


def _progress(message: Any, index: int) -> Any:
    return message[index] if len(message) > index and isinstance(message[index], int | float) else None


def device_message(trace: Trace, message: Any) -> dict[str, Any]:
    """The fields of a device-to-host DeviceLink message worth a trace line (names redacted)."""
    name = message[0] if message else None
    if name == "DLMessageVersionExchange":
        return {"versions": [v for v in message[1:] if isinstance(v, int | float)]}
    if name in ("DLMessageCreateDirectory", "DLContentsOfDirectory"):
        return {"path": trace.path(str(message[1])), "progress": _progress(message, 3)}
    if name == "DLMessageUploadFiles":
        return {"progress": _progress(message, 2), "bytes": _progress(message, 3)}
    if name in ("DLMessageDownloadFiles", "DLMessageRemoveItems", "DLMessageRemoveFiles"):
        return {"paths": [trace.path(str(p)) for p in message[1]], "progress": _progress(message, 3)}
    if name in ("DLMessageMoveItems", "DLMessageMoveFiles"):
        moves = message[1] if isinstance(message[1], dict) else {}
        return {"moves": [[trace.path(str(s)), trace.path(str(d))] for s, d in moves.items()],
                "progress": _progress(message, 3)}
    if name == "DLMessageCopyItem":
        return {"source": trace.path(str(message[1])), "destination": trace.path(str(message[2])),
                "progress": _progress(message, 4)}
    if name == "DLMessagePurgeDiskSpace":
        return {"amount": _progress(message, 1), "urgency": _progress(message, 2)}
    if name == "DLMessageProcessMessage":
        return {"message": process_message(trace, message[1] if len(message) > 1 else {})}
    return {"arguments": max(len(message) - 1, 0)} if name not in ("DLMessageDeviceReady", "DLMessageDisconnect",
                                                                     "DLMessageGetFreeDiskSpace") else {}


def process_message(trace: Trace, body: Any) -> dict[str, Any]:
    """A mobilebackup2 message (Hello, Backup, Response, …): its name, codes and option flags; no strings
    but the device's error text, scrubbed; no password, no identifier."""
    if not isinstance(body, dict):
        return {}
    kept: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("MessageName", "ErrorCode", "ProtocolVersion", "SupportedProtocolVersions"):
            kept[key] = value
        elif key == "ErrorDescription":
            kept[key] = trace.text(str(value))
        elif key == "Options" and isinstance(value, dict):
            kept[key] = {k: v for k, v in value.items() if isinstance(v, bool | int | float) and k != "Password"}
        else:
            kept.setdefault("other_keys", []).append(key)
    return kept


def status_value(value: Any) -> dict[str, Any]:
    """A status response's payload: a number as is (free disk space), a dictionary by its size only."""
    if isinstance(value, bool | int | float):
        return {"value": value}
    if isinstance(value, dict | list):
        return {"entries": len(value)}
    return {}


# --- lockdown (agent.device.connect records it) --------------------------------------------------------


class LockdownRecorder:
    """A lockdown client's service connection that records each request and its answer (values filtered)."""

    def __init__(self, service: Any, trace: Trace) -> None:
        self._service = service
        self._trace = trace

    async def send_recv_plist(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        response = await self._service.send_recv_plist(data, *args, **kwargs)
        request = data if isinstance(data, dict) else {}
        fields: dict[str, Any] = {k.lower(): request[k] for k in ("Domain", "Key", "Service") if request.get(k)}
        if isinstance(response, dict):
            if response.get("Error"):
                fields["error"] = self._trace.text(str(response["Error"]))
            value = response.get("Value")
            if isinstance(value, dict):
                fields["values"] = self._trace.values(value)
            elif value is not None and request.get("Key") in SAFE_VALUES:
                fields["value"] = value
        self._trace.event("lockdown", str(request.get("Request", "?")), **fields)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)
