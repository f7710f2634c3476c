"""Third-party apps: their containers (AppDomain-*), app groups and extensions.

Every app gets the container a real one has (preferences, an Application Support
database, a JSON state file, one extension); WhatsApp and Spotify also get what makes
them interesting for a backup: WhatsApp's ChatStorage.sqlite with media, Spotify's
encrypted (incompressible) offline cache. A day of use may install the next app.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.filler import generic_database
from agent.sim.content.generators.sqlite_common import core_data_scaffold, sync_primary_keys
from agent.sim.content.text import Person, cocoa_seconds, guid, json_bytes, people, plist_bytes, sentence

SPOTIFY_CACHE = "Library/Application Support/PersistentCache/Storage"
_WHATSAPP_GROUP = "AppDomainGroup-group.net.whatsapp.WhatsApp.shared"
_CHAT_ENTITIES = {"WAChatSession": "ZWACHATSESSION", "WAMessage": "ZWAMESSAGE", "WAMediaItem": "ZWAMEDIAITEM"}


@dataclass(frozen=True)
class App:
    bundle_id: str
    group_id: str | None
    extension: str  # suffix of its one app extension
    extras: Callable[[DeviceBuilder, random.Random], None] | None = None


def _whatsapp(b: DeviceBuilder, rng: random.Random) -> None:
    contacts = people(rng, max(3, b.profile.chat_messages // 50))
    stamps = sorted(b.timestamp() for _ in range(b.profile.chat_messages))
    media: list[tuple[str, int]] = []
    for _ in range(max(1, b.profile.attachments // 2)):
        jid = f"{rng.choice(contacts).phone.lstrip('+')}@s.whatsapp.net"
        path = f"Message/Media/{jid}/{rng.randrange(16):x}/{rng.randrange(16):x}/{guid(rng)}.jpg"
        size = int(rng.randint(60_000, 400_000) * min(1.0, b.profile.photo_scale * 2))
        b.put_stream(_WHATSAPP_GROUP, path, size)
        media.append((path, size))
    b.put_sqlite(
        _WHATSAPP_GROUP, "ChatStorage.sqlite", lambda db: _chat_storage(db, rng, contacts, stamps, media)
    )
    b.put_sqlite(_WHATSAPP_GROUP, "ContactsV2.sqlite", lambda db: generic_database(db, rng, 40_000))
    b.put_bytes(
        "AppDomain-net.whatsapp.WhatsApp", "Documents/StatusMessages.plist", plist_bytes(rng, 600, "status")
    )


def _chat_storage(
    db: sqlite3.Connection,
    rng: random.Random,
    contacts: list[Person],
    stamps: list[int],
    media: list[tuple[str, int]],
) -> None:
    core_data_scaffold(db, _CHAT_ENTITIES, guid(rng))
    db.executescript(
        """
        CREATE TABLE ZWACHATSESSION (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZSESSIONTYPE INTEGER,
            ZUNREADCOUNT INTEGER, ZMESSAGECOUNTER INTEGER, ZLASTMESSAGEDATE TIMESTAMP, ZCONTACTJID VARCHAR,
            ZPARTNERNAME VARCHAR);
        CREATE TABLE ZWAMESSAGE (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZCHATSESSION INTEGER,
            ZISFROMME INTEGER, ZMESSAGETYPE INTEGER, ZMEDIAITEM INTEGER, ZMESSAGEDATE TIMESTAMP, ZSENTDATE TIMESTAMP,
            ZFROMJID VARCHAR, ZTOJID VARCHAR, ZSTANZAID VARCHAR, ZTEXT VARCHAR);
        CREATE TABLE ZWAMEDIAITEM (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZMESSAGE INTEGER,
            ZFILESIZE INTEGER, ZMEDIALOCALPATH VARCHAR, ZTITLE VARCHAR);
        CREATE INDEX ZWAMESSAGE_ZCHATSESSION_INDEX ON ZWAMESSAGE (ZCHATSESSION);
        """
    )
    sessions = []
    for contact in contacts:
        jid = f"{contact.phone.lstrip('+')}@s.whatsapp.net"
        session = db.execute(
            "INSERT INTO ZWACHATSESSION (Z_ENT, Z_OPT, ZSESSIONTYPE, ZUNREADCOUNT, ZMESSAGECOUNTER, ZCONTACTJID,"
            " ZPARTNERNAME) VALUES (1, 1, 0, 0, 0, ?, ?)",
            (jid, contact.name),
        ).lastrowid
        sessions.append((session, jid))
    media_start = len(stamps) - len(media)
    for index, when in enumerate(stamps):
        session, jid = rng.choice(sessions)
        from_me = rng.random() < 0.5
        item = media[index - media_start] if index >= media_start else None
        message = db.execute(
            "INSERT INTO ZWAMESSAGE (Z_ENT, Z_OPT, ZCHATSESSION, ZISFROMME, ZMESSAGETYPE, ZMESSAGEDATE, ZSENTDATE,"
            " ZFROMJID, ZTOJID, ZSTANZAID, ZTEXT) VALUES (2, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session,
                int(from_me),
                1 if item else 0,
                cocoa_seconds(when),
                cocoa_seconds(when),
                None if from_me else jid,
                jid if from_me else None,
                rng.randbytes(10).hex().upper(),
                None if item else sentence(rng),
            ),
        ).lastrowid
        if item is not None:
            media_id = db.execute(
                "INSERT INTO ZWAMEDIAITEM (Z_ENT, Z_OPT, ZMESSAGE, ZFILESIZE, ZMEDIALOCALPATH) VALUES (3, 1, ?, ?, ?)",
                (message, item[1], item[0]),
            ).lastrowid
            db.execute("UPDATE ZWAMESSAGE SET ZMEDIAITEM = ? WHERE Z_PK = ?", (media_id, message))
        db.execute(
            "UPDATE ZWACHATSESSION SET ZMESSAGECOUNTER = ZMESSAGECOUNTER + 1, ZLASTMESSAGEDATE = ? WHERE Z_PK = ?",
            (cocoa_seconds(when), session),
        )
    sync_primary_keys(db, _CHAT_ENTITIES)


def _spotify(b: DeviceBuilder, rng: random.Random) -> None:
    domain = "AppDomain-com.spotify.client"
    for _ in range(max(2, b.profile.attachments)):
        name = rng.randbytes(20).hex()
        size = int(rng.randint(100_000, 1_000_000) * b.profile.photo_scale)
        b.put_stream(domain, f"{SPOTIFY_CACHE}/{name[:2]}/{name}.file", size)
    b.put_bytes(
        domain, "Library/Application Support/PersistentCache/Browse/home.json", json_bytes(rng, 30_000)
    )
    b.put_sqlite(
        domain,
        "Library/Application Support/PersistentCache/mercury.db",
        lambda db: generic_database(db, rng, 60_000),
    )


APPS: tuple[App, ...] = (
    App("net.whatsapp.WhatsApp", "group.net.whatsapp.WhatsApp.shared", "ShareExtension", _whatsapp),
    App("com.spotify.client", None, "SpotifyWidgetExtension", _spotify),
    App("ph.telegra.Telegraph", "group.ph.telegra.Telegraph", "Share"),
    App("com.burbn.instagram", "group.com.burbn.instagram", "shareextension"),
    App("org.whispersystems.signal", "group.org.whispersystems.signal.group", "SignalShareExtension"),
    App("com.strava.stravaride", None, "StravaWidget"),
    App("com.duolingo.DuolingoMobile", "group.com.duolingo.DuolingoMobile", "Widgets"),
    App("ch.sbb.mobile", "group.ch.sbb.mobile", "TimetableWidget"),
    App("com.tinyspeck.chatlyio", "group.com.tinyspeck.chatlyio", "SlackShareExtension"),
    App("ch.threema.iapp", "group.ch.threema", "ShareExtension"),
    App("com.google.Maps", None, "WidgetExtension"),
    App("com.nytimes.NYTimes", "group.com.nytimes.NYTimes", "TodayExtension"),
    App("com.airbnb.app", None, "NotificationServiceExtension"),
    App("com.dropbox.Dropbox", "group.com.getdropbox.Dropbox", "FileProvider"),
)


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("apps")
    for app in APPS[: b.profile.third_party_apps]:
        _install(b, rng, app)


def evolve(b: DeviceBuilder) -> None:
    """Install the next app not on the device yet, and let Spotify evict one cached track."""
    rng = b.rng("apps")
    missing = [app for app in APPS if not b.exists(f"AppDomain-{app.bundle_id}", "")]
    if missing:
        _install(b, rng, missing[0])
    cached = [f for f in b.files_under("AppDomain-com.spotify.client", f"{SPOTIFY_CACHE}/")]
    if len(cached) > 1:
        evicted = rng.choice(cached)
        b.remove(evicted.domain, evicted.relative_path)


def _install(b: DeviceBuilder, rng: random.Random, app: App) -> None:
    domain = f"AppDomain-{app.bundle_id}"
    for folder in ("Documents", "Library/Preferences", "Library/Application Support", "SystemData"):
        b.directory(domain, folder)
    b.put_bytes(
        domain,
        f"Library/Preferences/{app.bundle_id}.plist",
        plist_bytes(rng, rng.randint(800, 4000), app.bundle_id),
    )
    b.put_bytes(domain, "Documents/state.json", json_bytes(rng, rng.randint(2_000, 20_000)))
    database_size = rng.randint(40_000, 200_000) * max(1, b.profile.third_party_apps // 4)
    b.put_sqlite(
        domain,
        f"Library/Application Support/{app.bundle_id.rsplit('.', 1)[-1]}.sqlite",
        lambda db: generic_database(db, rng, database_size),
    )
    if app.group_id is not None:
        group = f"AppDomainGroup-{app.group_id}"
        b.put_bytes(group, f"Library/Preferences/{app.group_id}.plist", plist_bytes(rng, 400, app.group_id))
    plugin = f"AppDomainPlugin-{app.bundle_id}.{app.extension}"
    b.directory(plugin, "Documents")
    b.directory(plugin, "Library/Preferences")
    if app.extras is not None:
        app.extras(b, rng)
