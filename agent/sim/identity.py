"""Who a simulated device is: its hardware identifiers and its RSA key with the TLS certificate it serves.

Identifiers (UDID, ECID, serial number, IMEI, MAC addresses) come from a seeded generator, so
`coffer sim --seed S` names the same devices on every run; the RSA key is random and persisted with
the device so that pair records stay valid across restarts.
"""

from __future__ import annotations

import datetime
import os
import random
import ssl
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class HardwareModel:
    """One iPhone model: what lockdownd reports about the hardware."""

    product_type: str  # "iPhone15,3"
    hardware_model: str  # "D74AP"
    chip_id: int  # the first half of a modern UDID
    marketing_name: str
    capacity_bytes: int


MODELS: tuple[HardwareModel, ...] = (
    HardwareModel("iPhone15,3", "D74AP", 0x8120, "iPhone 14 Pro Max", 256 * 10**9),
    HardwareModel("iPhone16,1", "D83AP", 0x8130, "iPhone 15 Pro", 128 * 10**9),
    HardwareModel("iPhone14,5", "D17AP", 0x8110, "iPhone 13", 128 * 10**9),
    HardwareModel("iPhone17,1", "D93AP", 0x8140, "iPhone 16 Pro", 512 * 10**9),
)
PRODUCT_VERSION = "18.5"
BUILD_VERSION = "22F76"
_SERIAL_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"


@dataclass(frozen=True)
class HardwareIdentity:
    """The identifiers of one device, as lockdownd reports them."""

    udid: str  # modern dashed form: "<ChipID:08X>-<ECID:016X>"
    unique_chip_id: int  # the ECID
    serial_number: str
    imei: str
    wifi_address: str
    bluetooth_address: str
    model: HardwareModel

    @classmethod
    def generate(cls, seed: int, index: int) -> HardwareIdentity:
        """The `index`-th device of simulator seed `seed`; the same inputs always give the same device."""
        rng = random.Random(f"coffer-sim-device:{seed}:{index}")
        model = MODELS[index % len(MODELS)]
        ecid = rng.getrandbits(52) | (1 << 48)  # real ECIDs are 13-14 hex digits
        mac = [0xF0, 0x99, 0xB6, *(rng.getrandbits(8) for _ in range(3))]
        bluetooth = [*mac[:5], (mac[5] + 1) & 0xFF]
        return cls(
            udid=f"{model.chip_id:08X}-{ecid:016X}",
            unique_chip_id=ecid,
            serial_number="".join(rng.choice(_SERIAL_ALPHABET) for _ in range(10)),
            imei=_imei(rng),
            wifi_address=":".join(f"{octet:02x}" for octet in mac),
            bluetooth_address=":".join(f"{octet:02x}" for octet in bluetooth),
            model=model,
        )


def _imei(rng: random.Random) -> str:
    """A 15-digit IMEI with a valid Luhn check digit (TAC 35 + random)."""
    body = "35" + "".join(str(rng.randrange(10)) for _ in range(12))
    total = 0
    for position, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class DeviceKeys:
    """The device's RSA key (PKCS#8 PEM) and the self-signed certificate lockdownd presents in TLS.

    Neither client verifies the device certificate (ios-protocol.md section 2.5), so one certificate
    serves every paired host."""

    private_key_pem: bytes
    certificate_pem: bytes

    @classmethod
    def generate(cls, common_name: str) -> DeviceKeys:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        )

    @property
    def public_key_pem(self) -> bytes:
        """`DevicePublicKey` as lockdownd reports it: PEM PKCS#1 (`BEGIN RSA PUBLIC KEY`)."""
        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)

    def server_ssl_context(self) -> ssl.SSLContext:
        """The TLS server context of lockdownd sessions.

        SECLEVEL 0 because hosts bring SHA-1 era pair records; no client certificate is requested,
        as neither client needs the device to check it."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.verify_mode = ssl.CERT_NONE
        # load_cert_chain only reads files: hand it a private temporary file, removed at once.
        handle, path = tempfile.mkstemp(prefix="coffer-sim-tls-", suffix=".pem")
        try:
            with os.fdopen(handle, "wb") as pem:
                pem.write(self.certificate_pem + self.private_key_pem)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
        return context
