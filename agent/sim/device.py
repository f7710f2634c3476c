"""One simulated iPhone: identity, keys, trust and lock state, backup password, and its filesystem.

Everything but the runtime history is persisted in the device's state folder
(`device.plist` next to the `content/` folder of its `DeviceFilesystem`), so a restarted simulator
serves the same device and the hosts it paired with stay paired. The device's own secrets (its RSA
key, its backup password) are kept there as the phone itself keeps them; none of them is a Coffer key.
"""

from __future__ import annotations

import asyncio
import plistlib
import secrets
import shutil
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.ios.encryption import ClassKeys, Keybag
from agent.sim.content import PROFILE_NAMES, DeviceFilesystem
from agent.sim.faults import DeviceFaults
from agent.sim.identity import BUILD_VERSION, MODELS, PRODUCT_VERSION, DeviceKeys, HardwareIdentity
from agent.sim.reports import BackupReport, RestoreReport
from agent.sim.services.afc import MediaStore
from agent.sim.throttle import TransferThrottle

STATE_FILE = "device.plist"
CONTENT_DIR = "content"
SCRATCH_DIR = "scratch"
# Small key-derivation costs keep tests fast; both backup readers take DPIC/ITER from the keybag.
DEFAULT_KEYBAG_DPIC = 1000
DEFAULT_KEYBAG_ITERATIONS = 100
APP_DOMAIN_PREFIX = "AppDomain-"
REPORTS_KEPT = 32  # per kind, so a simulator serving for days keeps a bounded history


@dataclass(frozen=True)
class PairedHost:
    """A host the user trusted: lockdownd accepts its HostID in StartSession."""

    host_id: str
    system_buid: str
    escrow_bag: bytes
    host_name: str


class SimulatedDevice:
    """A device's persistent state and the rules lockdownd applies to it.

    Mutations happen on the simulator's event loop (or before the device is served); `save()`
    writes the state atomically after each one."""

    def __init__(
        self,
        state_dir: Path,
        *,
        hardware: HardwareIdentity,
        name: str,
        keys: DeviceKeys,
        filesystem: DeviceFilesystem,
        product_version: str = PRODUCT_VERSION,
        build_version: str = BUILD_VERSION,
        trusted: bool = True,
        locked: bool = False,
        paired_hosts: dict[str, PairedHost] | None = None,
        backup_password: str | None,
        backup_keybag: bytes,
        keybag_dpic: int = DEFAULT_KEYBAG_DPIC,
        keybag_iterations: int = DEFAULT_KEYBAG_ITERATIONS,
    ) -> None:
        self.state_dir = state_dir
        self.hardware = hardware
        self.name = name
        self.keys = keys
        self.filesystem = filesystem
        self.product_version = product_version
        self.build_version = build_version
        self.trusted = trusted
        self.locked = locked
        self.paired_hosts: dict[str, PairedHost] = dict(paired_hosts or {})
        self.backup_password = backup_password
        self.backup_keybag = backup_keybag
        self.keybag_dpic = keybag_dpic
        self.keybag_iterations = keybag_iterations
        # Runtime only: the latest backups and restores, the AFC media area, the cable, reboots.
        self.backups: deque[BackupReport] = deque(maxlen=REPORTS_KEPT)
        self.restores: deque[RestoreReport] = deque(maxlen=REPORTS_KEPT)
        self.media = MediaStore()
        self.throttle = TransferThrottle()
        self.reboot_pending = False  # a restore asked to restart once the host lets go of mobilebackup2
        self.reboots = 0
        self.power_cycle: Callable[[], Awaitable[None]] | None = None  # set by the simulator the device is plugged into
        self.faults = DeviceFaults()  # field failures switched on from the control socket
        self._observers: set[asyncio.Queue[str]] = set()  # notification_proxy connections
        self.clock_offset = 0.0  # seconds the device's clock runs ahead of the host's (negative: behind)
        self.data_available: int | None = None  # free bytes the device reports, instead of capacity minus content
        # Services answered by something else than the simulator's own (a trace replay's mobilebackup2).
        self.service_overrides: dict[str, Callable[..., Awaitable[None]]] = {}
        self._save_lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None
        self._background: set[asyncio.Task[None]] = set()

    # --- creation and persistence -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        state_dir: Path,
        *,
        seed: int,
        index: int,
        profile: str = "tiny",
        name: str | None = None,
        password: str | None = None,
        trusted: bool = True,
        locked: bool = False,
        keybag_dpic: int = DEFAULT_KEYBAG_DPIC,
        keybag_iterations: int = DEFAULT_KEYBAG_ITERATIONS,
    ) -> SimulatedDevice:
        """A new device, the `index`-th of simulator seed `seed`, with `profile` content, in a new
        folder `state_dir`."""
        if profile not in PROFILE_NAMES:
            raise UsageError(f"unknown device profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
        hardware = HardwareIdentity.generate(seed, index)
        state_dir.mkdir(parents=True)
        try:
            filesystem = DeviceFilesystem.create(
                state_dir / CONTENT_DIR, profile=profile, seed=seed * 1000 + index
            )
            device = cls(
                state_dir,
                hardware=hardware,
                name=name or f"{hardware.model.marketing_name} ({index + 1})",
                keys=DeviceKeys.generate(hardware.udid),
                filesystem=filesystem,
                trusted=trusted,
                locked=locked,
                backup_password=password,
                backup_keybag=_new_keybag(password, keybag_dpic, keybag_iterations),
                keybag_dpic=keybag_dpic,
                keybag_iterations=keybag_iterations,
            )
            device.save()
        except BaseException:
            shutil.rmtree(state_dir, ignore_errors=True)  # no half-made device left to trip a restart
            raise
        return device

    @classmethod
    def load(cls, state_dir: Path) -> SimulatedDevice:
        """Reopen a device that `create()` made in `state_dir`."""
        shutil.rmtree(state_dir / SCRATCH_DIR, ignore_errors=True)  # what an interrupted run left
        state = plistlib.loads((state_dir / STATE_FILE).read_bytes())
        hardware = state["Hardware"]
        model = next(m for m in MODELS if m.product_type == hardware["ProductType"])
        return cls(
            state_dir,
            hardware=HardwareIdentity(
                udid=hardware["UDID"],
                unique_chip_id=hardware["UniqueChipID"],
                serial_number=hardware["SerialNumber"],
                imei=hardware["IMEI"],
                wifi_address=hardware["WiFiAddress"],
                bluetooth_address=hardware["BluetoothAddress"],
                model=model,
            ),
            name=state["DeviceName"],
            keys=DeviceKeys(state["PrivateKey"], state["Certificate"]),
            filesystem=DeviceFilesystem.load(state_dir / CONTENT_DIR),
            product_version=state["ProductVersion"],
            build_version=state["BuildVersion"],
            trusted=state["Trusted"],
            locked=state["Locked"],
            paired_hosts={
                host["HostID"]: PairedHost(
                    host["HostID"], host["SystemBUID"], host["EscrowBag"], host["HostName"]
                )
                for host in state["PairedHosts"]
            },
            backup_password=state.get("BackupPassword"),
            backup_keybag=state["BackupKeyBag"],
            keybag_dpic=state["KeybagDPIC"],
            keybag_iterations=state["KeybagIterations"],
        )

    def save(self) -> None:
        state: dict[str, Any] = {
            "Hardware": {
                "UDID": self.hardware.udid,
                "UniqueChipID": self.hardware.unique_chip_id,
                "SerialNumber": self.hardware.serial_number,
                "IMEI": self.hardware.imei,
                "WiFiAddress": self.hardware.wifi_address,
                "BluetoothAddress": self.hardware.bluetooth_address,
                "ProductType": self.hardware.model.product_type,
            },
            "DeviceName": self.name,
            "PrivateKey": self.keys.private_key_pem,
            "Certificate": self.keys.certificate_pem,
            "ProductVersion": self.product_version,
            "BuildVersion": self.build_version,
            "Trusted": self.trusted,
            "Locked": self.locked,
            "PairedHosts": [
                {
                    "HostID": h.host_id,
                    "SystemBUID": h.system_buid,
                    "EscrowBag": h.escrow_bag,
                    "HostName": h.host_name,
                }
                for h in self.paired_hosts.values()
            ],
            "BackupKeyBag": self.backup_keybag,
            "KeybagDPIC": self.keybag_dpic,
            "KeybagIterations": self.keybag_iterations,
        }
        if self.backup_password is not None:
            state["BackupPassword"] = self.backup_password
        with self._save_lock:
            partial = self.state_dir / (STATE_FILE + ".partial")
            partial.write_bytes(plistlib.dumps(state, fmt=plistlib.FMT_BINARY))
            partial.replace(self.state_dir / STATE_FILE)

    # --- identity and lockdown values ---------------------------------------------------------

    @property
    def udid(self) -> str:
        return self.hardware.udid

    @property
    def scratch_dir(self) -> Path:
        """Where the device keeps transfer temporaries (a restore's downloaded blobs)."""
        path = self.state_dir / SCRATCH_DIR
        path.mkdir(exist_ok=True)
        return path

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS server context of lockdownd sessions, built once."""
        if self._ssl_context is None:
            self._ssl_context = self.keys.server_ssl_context()
        return self._ssl_context

    @property
    def will_encrypt(self) -> bool:
        """Whether backups are encrypted (lockdown `com.apple.mobile.backup` `WillEncrypt`)."""
        return self.backup_password is not None

    def lockdown_values(self, *, in_session: bool) -> dict[str, Any]:
        """The all-values `GetValue` answer; before a session only what identifies the device."""
        hardware = self.hardware
        values: dict[str, Any] = {
            "ActivationState": "Activated",
            "BuildVersion": self.build_version,
            "CPUArchitecture": "arm64e",
            "ChipID": hardware.model.chip_id,
            "DeviceClass": "iPhone",
            "DeviceName": self.name,
            "DevicePublicKey": self.keys.public_key_pem,
            "HardwareModel": hardware.model.hardware_model,
            "HostAttached": True,
            "PasswordProtected": self._password_protected(),
            "PasswordConfigured": self.faults.passcode_set,
            "ProductName": "iPhone OS",
            "ProductType": hardware.model.product_type,
            "ProductVersion": self.product_version,
            "SerialNumber": hardware.serial_number,
            "UniqueChipID": hardware.unique_chip_id,
            "UniqueDeviceID": hardware.udid,
            "WiFiAddress": hardware.wifi_address,
        }
        if not in_session:
            return values
        values.update(
            {
                "ActivationStateAcknowledged": True,
                "BasebandVersion": "2.60.02",
                "BluetoothAddress": hardware.bluetooth_address,
                "DeviceColor": "1",
                "FirmwareVersion": "iBoot-11881.122.1",
                "InternationalMobileEquipmentIdentity": hardware.imei,
                "ModelNumber": "MQ8X3",
                "PhoneNumber": f"+1 (555) 01{hardware.unique_chip_id % 100:02d}",
                "ProtocolVersion": "2",
                "RegionInfo": "LL/A",
                "TimeIntervalSince1970": time.time() + self.clock_offset,
                "TimeZone": "Europe/Berlin",
                "TrustedHostAttached": True,
                "Uses24HourClock": True,
            }
        )
        return values

    def _password_protected(self) -> bool:
        """`PasswordProtected` in the reading this device follows (faults.password_protected): "locked now",
        or "has a passcode" (then true while unlocked too)."""
        if self.faults.password_protected == "passcode":
            return self.faults.passcode_set
        return self.locked

    # --- notifications (notification_proxy) -----------------------------------------------------

    def observe_notifications(self) -> asyncio.Queue[str]:
        """A queue that receives the name of every notification the device posts from now on."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._observers.add(queue)
        return queue

    def stop_observing(self, queue: asyncio.Queue[str]) -> None:
        self._observers.discard(queue)

    def post_notification(self, name: str) -> None:
        for queue in self._observers:
            queue.put_nowait(name)

    def domain_values(self, domain: str) -> dict[str, Any] | None:
        """The values of a lockdown domain, None for a domain this device does not have."""
        if domain == "com.apple.mobile.backup":
            return {"WillEncrypt": self.will_encrypt, "RequiresEncrypt": False}
        if domain == "com.apple.mobile.iTunes":
            return {"MinITunesVersion": "12.5.1"}
        if domain == "com.apple.disk_usage":
            capacity = self.hardware.model.capacity_bytes
            available = self.data_available
            if available is None:
                available = max(capacity - 12 * 10**9 - self.filesystem.total_size(), 0)
            return {
                "TotalDiskCapacity": capacity,
                "TotalDataCapacity": capacity - 12 * 10**9,
                "TotalDataAvailable": available,
                "AmountDataAvailable": available,
            }
        return None

    def installed_apps(self) -> list[str]:
        """Bundle IDs of the third-party apps, from the app containers on the filesystem."""
        return sorted(
            {
                f.domain.removeprefix(APP_DOMAIN_PREFIX)
                for f in self.filesystem.files()
                if f.domain.startswith(APP_DOMAIN_PREFIX) and f.relative_path == ""
            }
        )

    # --- trust, lock and backup password ------------------------------------------------------

    def pair_host(self, host_id: str, system_buid: str, host_name: str) -> PairedHost:
        """Remember a host the user trusted and give it its escrow bag."""
        host = PairedHost(host_id, system_buid, secrets.token_bytes(256), host_name)
        self.paired_hosts[host_id] = host
        self.save()
        return host

    def unpair_host(self, host_id: str) -> None:
        if self.paired_hosts.pop(host_id, None) is not None:
            self.save()

    def set_trusted(self, trusted: bool) -> None:
        """`False` is "Reset Location & Privacy": every paired host is forgotten and new pairing
        requests stay pending; `True` is the user tapping Trust."""
        self.trusted = trusted
        if not trusted:
            self.paired_hosts.clear()
        self.save()

    def set_locked(self, locked: bool) -> None:
        self.locked = locked
        self.save()

    def reboot_if_pending(self) -> None:
        """Restart (cable out, back in) in the background, if a restore asked for it; on the simulator's loop."""
        if not self.reboot_pending or self.power_cycle is None:
            return
        self.reboot_pending = False
        task = asyncio.get_running_loop().create_task(self.power_cycle())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def set_backup_password(self, password: str | None) -> None:
        """Turn backup encryption on (a password) or off (None), with a fresh keybag either way."""
        self.backup_keybag = _new_keybag(password, self.keybag_dpic, self.keybag_iterations)
        self.backup_password = password
        self.save()

    def backup_class_keys(self) -> ClassKeys:
        """The class keys of the device's backup keybag (encrypted backups only)."""
        if self.backup_password is None:
            raise ValueError("backup encryption is off: the device keybag has no usable password")
        return Keybag.parse(self.backup_keybag).unlock(self.backup_password)


def _new_keybag(password: str | None, dpic: int, iterations: int) -> bytes:
    """A backup keybag for `password`; without one, for a random password nobody knows (an
    unencrypted backup still carries a keybag)."""
    keybag, _ = Keybag.create(
        password if password is not None else secrets.token_hex(16), dpic=dpic, iterations=iterations
    )
    return keybag.data
