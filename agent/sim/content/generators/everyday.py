"""The smaller Apple stores: Maps, Siri Shortcuts, Screen Time, keyboard vocabulary, Home, Memoji, Mail, Music."""

from __future__ import annotations

import plistlib
import random
import sqlite3
from collections.abc import Callable

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.sqlite_common import core_data_scaffold, sync_primary_keys
from agent.sim.content.text import CITIES, WORDS, cocoa_seconds, guid, people, person, plist_bytes, sentence

HOME = "HomeDomain"


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("everyday")
    scale = max(1, b.profile.events // 10)
    stamps = sorted(b.timestamp() for _ in range(scale * 4))
    _maps(b, rng, stamps)
    _core_data_store(
        b, HOME, "Library/Shortcuts/Shortcuts.sqlite", "ZSHORTCUT", _shortcut_columns, rng, stamps[:scale]
    )
    screen_time = "Library/Application Support/com.apple.remotemanagementd"
    _core_data_store(
        b, HOME, f"{screen_time}/RMAdminStore-Local.sqlite", "ZUSAGETIMEDITEM", _usage_columns, rng, stamps
    )
    _keyboard(b, rng, scale)
    _core_data_store(
        b,
        "HomeKitDomain",
        "Library/homed/datastore3.sqlite",
        "ZMKFACCESSORY",
        _accessory_columns,
        rng,
        stamps[:scale],
    )
    b.put_bytes("HomeKitDomain", "Library/homed/homed.plist", plist_bytes(rng, 600, "homed"))
    _core_data_store(
        b,
        HOME,
        "Library/Avatar/CoreDataBackend/avatars.db",
        "ZAVATARRECORD",
        _avatar_columns,
        rng,
        stamps[:2],
    )
    _mail(b, rng, stamps)
    _music_library(b, rng, scale * 20)


# One Core Data store with a single entity table; each row is described by a column function.
ColumnMaker = Callable[[random.Random, int], dict[str, object]]


def _core_data_store(
    b: DeviceBuilder,
    domain: str,
    path: str,
    table: str,
    columns: ColumnMaker,
    rng: random.Random,
    stamps: list[int],
) -> None:
    rows = [columns(rng, when) for when in stamps]

    def build(db: sqlite3.Connection) -> None:
        entities = {table.removeprefix("Z").capitalize(): table}
        core_data_scaffold(db, entities, guid(rng))
        names = list(rows[0])
        db.execute(
            f"CREATE TABLE {table} (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, {', '.join(names)})"
        )
        placeholders = ", ".join("?" for _ in names)
        db.executemany(
            f"INSERT INTO {table} (Z_ENT, Z_OPT, {', '.join(names)}) VALUES (1, 1, {placeholders})",
            [tuple(row[name] for name in names) for row in rows],
        )
        sync_primary_keys(db, entities)

    b.put_sqlite(domain, path, build)


def _shortcut_columns(rng: random.Random, when: int) -> dict[str, object]:
    actions = [{"WFWorkflowActionIdentifier": f"is.workflow.actions.{rng.choice(WORDS)}"} for _ in range(3)]
    return {
        "ZNAME": sentence(rng, 1, 4),
        "ZWORKFLOWID": guid(rng),
        "ZACTIONCOUNT": len(actions),
        "ZCREATIONDATE": cocoa_seconds(when),
        "ZACTIONSDATA": plistlib.dumps(actions, fmt=plistlib.FMT_BINARY),
    }


def _usage_columns(rng: random.Random, when: int) -> dict[str, object]:
    return {
        "ZBUNDLEIDENTIFIER": rng.choice(
            ("com.apple.mobilesafari", "net.whatsapp.WhatsApp", "com.spotify.client")
        ),
        "ZTOTALTIMEINSECONDS": rng.randint(30, 7200),
        "ZSTARTDATE": cocoa_seconds(when - when % 3600),
    }


def _accessory_columns(rng: random.Random, when: int) -> dict[str, object]:
    return {
        "ZNAME": f"{rng.choice(('Living room', 'Kitchen', 'Bedroom', 'Hall'))} {rng.choice(('Lamp', 'Plug', 'Sensor'))}",
        "ZMANUFACTURER": "Example Home",
        "ZMODEL": f"EH-{rng.randint(100, 999)}",
        "ZUNIQUEIDENTIFIER": guid(rng),
        "ZCONFIGURATIONDATE": cocoa_seconds(when),
    }


def _avatar_columns(rng: random.Random, when: int) -> dict[str, object]:
    features = {
        "faceColor": rng.randint(0, 40),
        "hairStyle": rng.randint(0, 90),
        "eyewear": rng.randint(0, 12),
    }
    return {
        "ZIDENTIFIER": guid(rng),
        "ZAVATARDATA": plistlib.dumps(features, fmt=plistlib.FMT_BINARY),
        "ZDATECREATED": cocoa_seconds(when),
    }


def _maps(b: DeviceBuilder, rng: random.Random, stamps: list[int]) -> None:
    def build(db: sqlite3.Connection) -> None:
        entities = {"HistoryItem": "ZHISTORYITEM"}
        core_data_scaffold(db, entities, guid(rng))
        db.execute(
            "CREATE TABLE ZHISTORYITEM (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZCREATETIME TIMESTAMP,"
            " ZLATITUDE FLOAT, ZLONGITUDE FLOAT, ZQUERY VARCHAR, ZLOCATIONDISPLAY VARCHAR)"
        )
        db.executemany(
            "INSERT INTO ZHISTORYITEM (Z_ENT, Z_OPT, ZCREATETIME, ZLATITUDE, ZLONGITUDE, ZQUERY, ZLOCATIONDISPLAY)"
            " VALUES (1, 1, ?, ?, ?, ?, ?)",
            [
                (
                    cocoa_seconds(when),
                    rng.uniform(45.8, 47.8),
                    rng.uniform(5.9, 10.5),
                    rng.choice(WORDS),
                    rng.choice(CITIES),
                )
                for when in stamps
            ],
        )
        sync_primary_keys(db, entities)

    b.put_sqlite("AppDomainGroup-group.com.apple.Maps", "Maps/MapsSync_0.0.1", build)
    history = [
        {"query": rng.choice(CITIES), "lat": rng.uniform(45.8, 47.8), "lng": rng.uniform(5.9, 10.5)}
        for _ in stamps
    ]
    b.put_bytes(
        "AppDomain-com.apple.Maps",
        "Library/Maps/GeoHistory.mapsdata",
        plistlib.dumps(history, fmt=plistlib.FMT_BINARY),
    )
    b.put_bytes(
        "AppDomain-com.apple.Maps", "Library/Preferences/com.apple.Maps.plist", plist_bytes(rng, 1200, "Maps")
    )


def _keyboard(b: DeviceBuilder, rng: random.Random, scale: int) -> None:
    """QuickType's learned vocabulary: the dynamic lexicon and the typing model database."""
    lexicon = sorted({f"{rng.choice(WORDS)}{rng.choice(('', 's', 'ing', 'ed'))}" for _ in range(scale * 60)})
    b.put_bytes(HOME, "Library/Keyboard/en-dynamic.lm/dynamic-lexicon.dat", "\x00".join(lexicon).encode())

    def build(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE usage (word TEXT PRIMARY KEY, count INTEGER, last_used REAL)")
        db.executemany(
            "INSERT INTO usage VALUES (?, ?, ?)", [(word, rng.randint(1, 500), 7e8) for word in lexicon]
        )

    b.put_sqlite(HOME, "Library/Keyboard/user_model_database.sqlite", build)
    b.put_bytes(
        "KeyboardDomain", "Library/Keyboard/UserDictionary.sqlite.plist", plist_bytes(rng, 300, "keyboard")
    )


def _mail(b: DeviceBuilder, rng: random.Random, stamps: list[int]) -> None:
    senders = people(rng, 12)

    def build(db: sqlite3.Connection) -> None:
        db.executescript(
            """
            CREATE TABLE mailboxes (ROWID INTEGER PRIMARY KEY, url UNIQUE, total_count INTEGER DEFAULT 0);
            CREATE TABLE addresses (ROWID INTEGER PRIMARY KEY, address COLLATE NOCASE, comment, UNIQUE(address, comment));
            CREATE TABLE subjects (ROWID INTEGER PRIMARY KEY, subject COLLATE RTRIM, normalized_subject COLLATE RTRIM);
            CREATE TABLE messages (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, message_id INTEGER, sender INTEGER,
                subject INTEGER, date_sent INTEGER, date_received INTEGER, mailbox INTEGER, read INTEGER,
                flagged INTEGER, size INTEGER);
            """
        )
        db.execute(
            "INSERT INTO mailboxes (url, total_count) VALUES ('imap://account/INBOX', ?)", (len(stamps),)
        )
        db.executemany(
            "INSERT INTO addresses (address, comment) VALUES (?, ?)", [(p.email, p.name) for p in senders]
        )
        for when in stamps:
            subject = db.execute(
                "INSERT INTO subjects (subject, normalized_subject) VALUES (?, ?)", (sentence(rng, 2, 7),) * 2
            ).lastrowid
            db.execute(
                "INSERT INTO messages (message_id, sender, subject, date_sent, date_received, mailbox, read, flagged,"
                " size) VALUES (?, ?, ?, ?, ?, 1, ?, 0, ?)",
                (
                    rng.getrandbits(62),
                    rng.randint(1, len(senders)),
                    subject,
                    when - 60,
                    when,
                    int(rng.random() < 0.8),
                    rng.randint(2_000, 200_000),
                ),
            )

    b.put_sqlite(HOME, "Library/Mail/Envelope Index", build)
    b.put_bytes(HOME, "Library/Mail/MailboxCollections.plist", plist_bytes(rng, 640, "mail"))
    b.put_bytes(
        "AppDomain-com.apple.mobilemail",
        "Library/Preferences/com.apple.mobilemail.plist",
        plist_bytes(rng, 900, "mobilemail"),
    )


def _music_library(b: DeviceBuilder, rng: random.Random, tracks: int) -> None:
    """MediaDomain's MediaLibrary.sqlitedb: the Music app's catalogue of songs on the phone."""

    def build(db: sqlite3.Connection) -> None:
        db.executescript(
            """
            CREATE TABLE album (album_pid INTEGER PRIMARY KEY, album TEXT, album_artist TEXT, year INTEGER);
            CREATE TABLE item (item_pid INTEGER PRIMARY KEY, album_pid INTEGER, title TEXT, artist TEXT,
                track_number INTEGER, total_time_ms INTEGER, play_count INTEGER, date_added INTEGER);
            CREATE INDEX item_album ON item (album_pid);
            """
        )
        albums = [
            db.execute(
                "INSERT INTO album (album_pid, album, album_artist, year) VALUES (?, ?, ?, ?)",
                (rng.getrandbits(62), sentence(rng, 1, 3), person(rng).name, rng.randint(1970, 2024)),
            ).lastrowid
            for _ in range(max(1, tracks // 10))
        ]
        db.executemany(
            "INSERT INTO item VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    rng.getrandbits(62),
                    rng.choice(albums),
                    sentence(rng, 1, 4),
                    rng.choice(WORDS).capitalize(),
                    number % 12 + 1,
                    rng.randint(120_000, 420_000),
                    rng.randint(0, 80),
                    rng.randint(600_000_000, 730_000_000),
                )
                for number in range(tracks)
            ],
        )

    b.put_sqlite("MediaDomain", "Media/iTunes_Control/iTunes/MediaLibrary.sqlitedb", build)
