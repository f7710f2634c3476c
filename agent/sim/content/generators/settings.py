"""Settings and system stores: preference plists, system containers, privacy and usage databases."""

from __future__ import annotations

import plistlib
import random
import sqlite3

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.text import guid, plist_bytes, preferences_dict

HOME = "HomeDomain"
PREFERENCES = "Library/Preferences"

# Preferences every phone has, with their real sizes (bytes) from the iOS 14 sample.
_HOME_PREFERENCES = {
    ".GlobalPreferences": 633,
    "com.apple.springboard": 2495,
    "com.apple.Preferences": 2089,
    "com.apple.mobilephone": 175,
    "com.apple.camera": 146,
    "com.apple.MobileSMS": 10111,
    "com.apple.mobilecal": 426,
    "com.apple.mobilenotes": 141,
    "com.apple.Accessibility": 1116,
    "com.apple.locationd": 211,
    "com.apple.identityservices.idstatuscache": 409,
    "com.apple.keyboard": 81,
}
_SYSTEM_PREFERENCES = {
    "SystemConfiguration/preferences.plist": 2400,
    "SystemConfiguration/com.apple.radios.plist": 120,
    "SystemConfiguration/NetworkInterfaces.plist": 900,
    "com.apple.purplebuddy.plist": 500,
}


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("settings")
    for name, size in _HOME_PREFERENCES.items():
        b.put_bytes(HOME, f"{PREFERENCES}/{name}.plist", plist_bytes(rng, size, name))
    for path, size in _SYSTEM_PREFERENCES.items():
        b.put_bytes("SystemPreferencesDomain", path, plist_bytes(rng, size, path.rsplit("/", 1)[-1]))
    b.put_bytes("ManagedPreferencesDomain", "mobile/com.apple.webcontentfilter.plist", plist_bytes(rng, 200))
    b.put_bytes(
        "SysContainerDomain-com.apple.geod", "Library/Preferences/com.apple.geod.plist", plist_bytes(rng, 700)
    )
    b.put_bytes(
        "SysSharedContainerDomain-systemgroup.com.apple.configurationprofiles",
        "Library/ConfigurationProfiles/PublicInfo/MCMeta.plist",
        plist_bytes(rng, 72),
    )
    b.put_sqlite(HOME, "Library/TCC/TCC.db", lambda db: _create_tcc(db, rng))
    b.put_sqlite(
        "WirelessDomain", "Library/Databases/DataUsage.sqlite", lambda db: _create_data_usage(db, rng)
    )


def evolve(b: DeviceBuilder) -> None:
    """Change a setting: SpringBoard rewrites its preferences plist."""
    path = f"{PREFERENCES}/com.apple.springboard.plist"
    existing = b.get(HOME, path)
    if existing is None:
        return
    rng = b.rng("settings")
    values = plistlib.loads(b.bytes_of(existing))
    values.update(preferences_dict(rng, 200, "com.apple.springboard"))
    values["SBLastUnlockDate"] = b.now - rng.randint(0, 3600)
    b.put_bytes(HOME, path, plistlib.dumps(values, fmt=plistlib.FMT_BINARY, sort_keys=True))


def _create_tcc(db: sqlite3.Connection, rng: random.Random) -> None:
    db.execute(
        "CREATE TABLE access (service TEXT NOT NULL, client TEXT NOT NULL, client_type INTEGER NOT NULL,"
        " auth_value INTEGER NOT NULL, auth_reason INTEGER NOT NULL, auth_version INTEGER NOT NULL,"
        " last_modified INTEGER NOT NULL DEFAULT (0), PRIMARY KEY (service, client, client_type))"
    )
    services = ("kTCCServicePhotos", "kTCCServiceCamera", "kTCCServiceMicrophone", "kTCCServiceAddressBook")
    clients = (
        "net.whatsapp.WhatsApp",
        "com.spotify.client",
        "ph.telegra.Telegraph",
        "com.apple.mobileslideshow",
    )
    db.executemany(
        "INSERT INTO access VALUES (?, ?, 0, ?, 2, 1, ?)",
        [
            (s, c, rng.choice((0, 2)), rng.randint(1_600_000_000, 1_700_000_000))
            for s in services
            for c in clients
        ],
    )


def _create_data_usage(db: sqlite3.Connection, rng: random.Random) -> None:
    db.executescript(
        """
        CREATE TABLE ZPROCESS (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZFIRSTTIMESTAMP TIMESTAMP,
            ZTIMESTAMP TIMESTAMP, ZBUNDLENAME VARCHAR, ZPROCNAME VARCHAR);
        CREATE TABLE ZLIVEUSAGE (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZHASPROCESS INTEGER,
            ZTIMESTAMP TIMESTAMP, ZWIFIIN FLOAT, ZWIFIOUT FLOAT, ZWWANIN FLOAT, ZWWANOUT FLOAT, ZIDENTIFIER VARCHAR);
        """
    )
    for number, bundle in enumerate(
        ("com.apple.mobilesafari", "net.whatsapp.WhatsApp", "com.spotify.client"), 1
    ):
        db.execute(
            "INSERT INTO ZPROCESS VALUES (?, 1, 1, 6.3e8, 7e8, ?, ?)",
            (number, bundle, bundle.rsplit(".", 1)[-1]),
        )
        db.execute(
            "INSERT INTO ZLIVEUSAGE VALUES (?, 2, 1, ?, 7e8, ?, ?, ?, ?, ?)",
            (number, number, *(rng.uniform(1e5, 1e9) for _ in range(4)), guid(rng)),
        )
