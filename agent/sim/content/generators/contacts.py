"""Contacts: HomeDomain Library/AddressBook/AddressBook.sqlitedb and AddressBookImages.sqlitedb."""

from __future__ import annotations

import random
import sqlite3

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.sqlite_common import database_properties
from agent.sim.content.text import CITIES, cocoa_seconds, guid, people, sentence

DOMAIN = "HomeDomain"
DATABASE = "Library/AddressBook/AddressBook.sqlitedb"
IMAGES = "Library/AddressBook/AddressBookImages.sqlitedb"

_PHONE, _EMAIL, _ADDRESS = 3, 4, 5  # ABMultiValue.property codes


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("contacts")
    created = sorted(b.timestamp() for _ in range(b.profile.contacts))
    b.put_sqlite(DOMAIN, DATABASE, lambda db: _create(db, rng, created))
    b.put_sqlite(DOMAIN, IMAGES, lambda db: _create_images(db, rng, len(created)))


def _create(db: sqlite3.Connection, rng: random.Random, created: list[int]) -> None:
    db.executescript(
        """
        CREATE TABLE ABPerson (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, First TEXT, Last TEXT, Middle TEXT,
            Organization TEXT, Department TEXT, Note TEXT, Kind INTEGER, Birthday TEXT, JobTitle TEXT,
            Nickname TEXT, CreationDate INTEGER, ModificationDate INTEGER, guid TEXT, DisplayName TEXT,
            StoreID INTEGER);
        CREATE TABLE ABMultiValue (UID INTEGER PRIMARY KEY, record_id INTEGER, property INTEGER,
            identifier INTEGER, label INTEGER, value TEXT, guid TEXT);
        CREATE TABLE ABMultiValueLabel (value TEXT, UNIQUE(value));
        CREATE TABLE ABGroup (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT, guid TEXT, StoreID INTEGER);
        CREATE TABLE ABGroupMembers (UID INTEGER PRIMARY KEY, group_id INTEGER, member_type INTEGER,
            member_id INTEGER, UNIQUE(group_id, member_type, member_id));
        CREATE TABLE ABStore (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT, Type INTEGER, guid TEXT);
        CREATE INDEX ABMultiValueRecordIDIndex ON ABMultiValue(record_id);
        """
    )
    database_properties(db, {"__ABAddressBookVersion": "1906", "__ABClientVersion": "1"})
    db.executemany("INSERT INTO ABMultiValueLabel VALUES (?)", [("_$!<Mobile>!$_",), ("_$!<Home>!$_",)])
    db.execute("INSERT INTO ABStore (Name, Type, guid) VALUES ('Local', 0, ?)", (guid(rng),))
    family = db.execute(
        "INSERT INTO ABGroup (Name, guid, StoreID) VALUES ('Family', ?, 1)", (guid(rng),)
    ).lastrowid
    for person, when in zip(people(rng, len(created)), created, strict=True):
        stamp = int(cocoa_seconds(when))
        row = db.execute(
            "INSERT INTO ABPerson (First, Last, Organization, Note, Kind, CreationDate, ModificationDate, guid,"
            " DisplayName, StoreID) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, 1)",
            (
                person.first,
                person.last,
                f"{person.last} AG" if rng.random() < 0.3 else None,
                sentence(rng) if rng.random() < 0.2 else None,
                stamp,
                stamp,
                guid(rng),
                person.name,
            ),
        ).lastrowid
        values = [(_PHONE, 1, person.phone), (_EMAIL, 2, person.email)]
        if rng.random() < 0.3:
            values.append((_ADDRESS, 2, f"{rng.randint(1, 99)} Bahnhofstrasse, {rng.choice(CITIES)}"))
        db.executemany(
            "INSERT INTO ABMultiValue (record_id, property, identifier, label, value, guid) VALUES (?, ?, 0, ?, ?, ?)",
            [(row, prop, label, value, guid(rng)) for prop, label, value in values],
        )
        if rng.random() < 0.1:
            db.execute(
                "INSERT INTO ABGroupMembers (group_id, member_type, member_id) VALUES (?, 0, ?)",
                (family, row),
            )


def _create_images(db: sqlite3.Connection, rng: random.Random, contacts: int) -> None:
    db.execute(
        "CREATE TABLE ABThumbnailImage (record_id INTEGER, format INTEGER, derived_from_format INTEGER,"
        " data BLOB, crop_rect TEXT, UNIQUE(record_id, format))"
    )
    with_photo = [row for row in range(1, contacts + 1) if rng.random() < 0.25]
    db.executemany(
        "INSERT INTO ABThumbnailImage VALUES (?, 0, 0, ?, '{{0, 0}, {120, 120}}')",
        [(row, b"\xff\xd8\xff\xe0" + rng.randbytes(rng.randint(3_000, 9_000))) for row in with_photo],
    )
