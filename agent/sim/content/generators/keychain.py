"""Keychain and Wi-Fi (encrypted backups only): keychain-backup.plist and the known-network plists.

In a real `keychain-backup.plist` every item's secret (`v_Data`) is wrapped with a
keychain class key (classes 6-11), so it is opaque bytes here too.
"""

from __future__ import annotations

import plistlib
import random
from datetime import datetime, timedelta

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.text import WEBSITES, WORDS, guid

KEYCHAIN_DOMAIN = "KeychainDomain"
KEYCHAIN = "keychain-backup.plist"
PREFERENCES_DOMAIN = "SystemPreferencesDomain"
WIFI = "SystemConfiguration/com.apple.wifi.plist"
KNOWN_NETWORKS = "com.apple.wifi.known-networks.plist"

_ACCESS_GROUPS = (
    "com.apple.cfnetwork",
    "apple",
    "com.apple.safari.credit-cards",
    "com.apple.ProtectedCloudStorage",
)


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("keychain")
    networks = [
        f"{rng.choice(WORDS).capitalize()}-{rng.choice(('Home', 'Office', 'Guest', '5G'))}" for _ in range(6)
    ]
    b.put_bytes(KEYCHAIN_DOMAIN, KEYCHAIN, _keychain(rng, max(20, b.profile.contacts), networks))
    b.put_bytes(PREFERENCES_DOMAIN, WIFI, _wifi_list(rng, networks))
    b.put_bytes(PREFERENCES_DOMAIN, KNOWN_NETWORKS, _known_networks(rng, networks))


def _wrapped_secret(rng: random.Random) -> bytes:
    """A class-wrapped keychain secret: class number, wrapped key, AES-GCM ciphertext and tag."""
    return rng.choice((6, 7, 8, 9, 10, 11)).to_bytes(4, "little") + rng.randbytes(40 + rng.randint(40, 200))


def _keychain(rng: random.Random, items: int, networks: list[str]) -> bytes:
    def item(access_group: str, account: str, service: str) -> dict[str, object]:
        return {
            "v_Data": _wrapped_secret(rng),
            "v_PersistentRef": rng.randbytes(12),
            "agrp": access_group,
            "acct": account,
            "svce": service,
            "pdmn": "ak",
            "sha1": rng.randbytes(20),
        }

    generic = [
        item(rng.choice(_ACCESS_GROUPS), guid(rng), f"com.apple.{rng.choice(WORDS)}") for _ in range(items)
    ]
    generic += [item("apple", network, "AirPort") for network in networks]  # Wi-Fi passwords live here
    internet = [item("com.apple.cfnetwork", f"{rng.choice(WORDS)}@example.com", site) for site in WEBSITES]
    keys = [{"v_Data": _wrapped_secret(rng), "agrp": "com.apple.security.sos", "kcls": 1} for _ in range(4)]
    return plistlib.dumps(
        {"genp": generic, "inet": internet, "cert": [], "keys": keys}, fmt=plistlib.FMT_BINARY
    )


def _wifi_list(rng: random.Random, networks: list[str]) -> bytes:
    known = [
        {
            "SSID_STR": name,
            "SSID": name.encode(),
            "BSSID": ":".join(f"{rng.randrange(256):x}" for _ in range(6)),
            "SecurityMode": "WPA2 Personal",
            "lastJoined": datetime(2024, 1, 1) + timedelta(days=rng.randint(0, 300)),
            "enabled": True,
        }
        for name in networks
    ]
    return plistlib.dumps({"List of known networks": known, "Version": 14}, fmt=plistlib.FMT_BINARY)


def _known_networks(rng: random.Random, networks: list[str]) -> bytes:
    entries = {
        f"wifi.network.ssid.{name}": {
            "SSID": name.encode(),
            "AddedAt": datetime(2023, 6, 1) + timedelta(days=rng.randint(0, 300)),
            "SupportedSecurityTypes": 8,
            "__OSSpecific__": {"WiFiNetworkPasswordModificationDate": datetime(2024, 1, 1)},
        }
        for name in networks
    }
    return plistlib.dumps(entries, fmt=plistlib.FMT_BINARY)
