"""Calendars and Reminders: HomeDomain Library/Calendar/Calendar.sqlitedb and the Reminders stores."""

from __future__ import annotations

import random
import sqlite3

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.sqlite_common import (
    core_data_scaffold,
    database_properties,
    sync_primary_keys,
)
from agent.sim.content.text import CITIES, cocoa_seconds, guid, sentence

DOMAIN = "HomeDomain"
CALENDAR = "Library/Calendar/Calendar.sqlitedb"
REMINDERS_DIRECTORY = "Library/Reminders/Container_v1/Stores"

_REMINDER_ENTITIES = {"REMCDObject": "ZREMCDOBJECT"}
_LIST_ENTITY, _REMINDER_ENTITY = 24, 27


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("calendars")
    starts = sorted(b.timestamp() + rng.randint(0, 60) * 86_400 for _ in range(b.profile.events))
    b.put_sqlite(DOMAIN, CALENDAR, lambda db: _create_calendar(db, rng, starts))
    local = [b.timestamp() for _ in range(3)]
    b.put_sqlite(
        DOMAIN, f"{REMINDERS_DIRECTORY}/Data-local.sqlite", lambda db: _create_reminders(db, rng, local)
    )
    if b.profile.events >= 50:  # an iCloud account's store next to the local one
        synced = [b.timestamp() for _ in range(b.profile.events // 4)]
        store = f"{REMINDERS_DIRECTORY}/Data-{guid(rng)}.sqlite"
        b.put_sqlite(DOMAIN, store, lambda db: _create_reminders(db, rng, synced))


def _create_calendar(db: sqlite3.Connection, rng: random.Random, starts: list[int]) -> None:
    db.executescript(
        """
        CREATE TABLE Store (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, type INTEGER, enabled INTEGER);
        CREATE TABLE Calendar (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, store_id INTEGER, title TEXT,
            color TEXT, type TEXT, UUID TEXT, display_order INTEGER);
        CREATE TABLE Location (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, address TEXT,
            latitude REAL, longitude REAL, item_owner_id INTEGER);
        CREATE TABLE CalendarItem (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, summary TEXT, location_id INTEGER,
            description TEXT, start_date REAL, start_tz TEXT, end_date REAL, all_day INTEGER,
            calendar_id INTEGER, orig_item_id INTEGER DEFAULT 0, unique_identifier TEXT, UUID TEXT,
            entity_type INTEGER, status INTEGER, creation_date REAL, last_modified REAL);
        CREATE TABLE Alarm (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, trigger_date REAL, trigger_interval INTEGER,
            calendaritem_owner_id INTEGER, UUID TEXT);
        CREATE INDEX CalendarItemStartDate ON CalendarItem(start_date);
        """
    )
    database_properties(db, {"_ClientVersion": "20006", "CalendarDBVersion": "20006"})
    db.execute("INSERT INTO Store (name, type, enabled) VALUES ('Default', 0, 1)")
    calendars = [
        db.execute(
            "INSERT INTO Calendar (store_id, title, color, type, UUID, display_order) VALUES (1, ?, ?, 'local', ?, ?)",
            (title, f"#{rng.randrange(1 << 24):06X}", guid(rng), order),
        ).lastrowid
        for order, title in enumerate(("Home", "Work", "Birthdays"))
    ]
    for start in starts:
        location = db.execute(
            "INSERT INTO Location (title, address, latitude, longitude) VALUES (?, ?, ?, ?)",
            (sentence(rng, 1, 3), rng.choice(CITIES), rng.uniform(45.8, 47.8), rng.uniform(5.9, 10.5)),
        ).lastrowid
        item = db.execute(
            "INSERT INTO CalendarItem (summary, location_id, description, start_date, start_tz, end_date, all_day,"
            " calendar_id, unique_identifier, UUID, entity_type, status, creation_date, last_modified)"
            " VALUES (?, ?, ?, ?, 'Europe/Zurich', ?, ?, ?, ?, ?, 2, 0, ?, ?)",
            (
                sentence(rng, 2, 5),
                location,
                sentence(rng) if rng.random() < 0.3 else None,
                cocoa_seconds(start),
                cocoa_seconds(start + rng.choice((1800, 3600, 7200))),
                int(rng.random() < 0.1),
                rng.choice(calendars),
                guid(rng),
                guid(rng),
                cocoa_seconds(start - 86_400 * 7),
                cocoa_seconds(start - 86_400 * 7),
            ),
        ).lastrowid
        if rng.random() < 0.5:
            db.execute(
                "INSERT INTO Alarm (trigger_interval, calendaritem_owner_id, UUID) VALUES (-900, ?, ?)",
                (item, guid(rng)),
            )


def _create_reminders(db: sqlite3.Connection, rng: random.Random, created: list[int]) -> None:
    core_data_scaffold(db, _REMINDER_ENTITIES, guid(rng))
    db.execute(
        "CREATE TABLE ZREMCDOBJECT (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZCOMPLETED INTEGER,"
        " ZPRIORITY INTEGER, ZLIST INTEGER, ZDUEDATE TIMESTAMP, ZCREATIONDATE TIMESTAMP, ZNAME VARCHAR,"
        " ZTITLE VARCHAR, ZNOTES VARCHAR, ZCKIDENTIFIER VARCHAR)"
    )
    lists = [
        db.execute(
            "INSERT INTO ZREMCDOBJECT (Z_ENT, Z_OPT, ZNAME, ZCKIDENTIFIER) VALUES (?, 1, ?, ?)",
            (_LIST_ENTITY, name, guid(rng)),
        ).lastrowid
        for name in ("Reminders", "Groceries")
    ]
    for when in created:
        db.execute(
            "INSERT INTO ZREMCDOBJECT (Z_ENT, Z_OPT, ZCOMPLETED, ZPRIORITY, ZLIST, ZDUEDATE, ZCREATIONDATE, ZTITLE,"
            " ZNOTES, ZCKIDENTIFIER) VALUES (?, 1, ?, 0, ?, ?, ?, ?, ?, ?)",
            (
                _REMINDER_ENTITY,
                int(rng.random() < 0.6),
                rng.choice(lists),
                cocoa_seconds(when + 86_400 * rng.randint(1, 14)),
                cocoa_seconds(when),
                sentence(rng, 2, 5),
                sentence(rng) if rng.random() < 0.2 else None,
                guid(rng),
            ),
        )
    sync_primary_keys(db, _REMINDER_ENTITIES)
