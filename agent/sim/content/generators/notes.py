"""Notes: AppDomainGroup-group.com.apple.notes NoteStore.sqlite and its media attachments."""

from __future__ import annotations

import gzip
import random
import sqlite3

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.sqlite_common import core_data_scaffold, sync_primary_keys
from agent.sim.content.text import cocoa_seconds, guid, paragraph, plist_bytes, sentence

DOMAIN = "AppDomainGroup-group.com.apple.notes"
DATABASE = "NoteStore.sqlite"

_ENTITIES = {"ICCloudSyncingObject": "ZICCLOUDSYNCINGOBJECT", "ICNoteData": "ZICNOTEDATA"}
_NOTE_ENTITY = 11  # Z_ENT of ICNote rows inside ZICCLOUDSYNCINGOBJECT, as on iOS 14
_FOLDER_ENTITY = 14


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("notes")
    account = guid(rng)
    dates = sorted(b.timestamp() for _ in range(b.profile.notes))
    b.put_sqlite(DOMAIN, DATABASE, lambda db: _create(db, rng, dates))
    if b.profile.notes >= 10:
        media = guid(rng)
        b.put_stream(DOMAIN, f"Accounts/{account}/Media/{media}/IMG_{rng.randint(1000, 9999)}.jpeg", 240_000)
    b.put_bytes(DOMAIN, "Library/Preferences/group.com.apple.notes.plist", plist_bytes(rng, 160, "notes"))


def evolve(b: DeviceBuilder) -> None:
    """Edit one note: new body, snippet and modification date (a few pages of the store change)."""
    if not b.exists(DOMAIN, DATABASE):
        return
    rng = b.rng("notes")
    b.edit_sqlite(DOMAIN, DATABASE, lambda db: _edit_one(db, rng, b.timestamp()))


def _body(rng: random.Random) -> tuple[str, bytes]:
    """A note's text and its stored form (gzip, as Notes stores its protobuf bodies)."""
    text = "\n".join(paragraph(rng, rng.randint(1, 5)) for _ in range(rng.randint(1, 4)))
    return text, gzip.compress(text.encode(), mtime=0)


def _create(db: sqlite3.Connection, rng: random.Random, dates: list[int]) -> None:
    core_data_scaffold(db, _ENTITIES, guid(rng))
    db.executescript(
        """
        CREATE TABLE ZICCLOUDSYNCINGOBJECT (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER,
            ZMARKEDFORDELETION INTEGER, ZFOLDER INTEGER, ZNOTEDATA INTEGER, ZISPINNED INTEGER,
            ZCREATIONDATE1 TIMESTAMP, ZMODIFICATIONDATE1 TIMESTAMP, ZIDENTIFIER VARCHAR, ZTITLE1 VARCHAR,
            ZSNIPPET VARCHAR, ZTITLE2 VARCHAR);
        CREATE TABLE ZICNOTEDATA (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZNOTE INTEGER,
            ZDATA BLOB);
        CREATE INDEX ZICCLOUDSYNCINGOBJECT_ZFOLDER_INDEX ON ZICCLOUDSYNCINGOBJECT (ZFOLDER);
        CREATE INDEX ZICNOTEDATA_ZNOTE_INDEX ON ZICNOTEDATA (ZNOTE);
        """
    )
    folder = db.execute(
        "INSERT INTO ZICCLOUDSYNCINGOBJECT (Z_ENT, Z_OPT, ZMARKEDFORDELETION, ZIDENTIFIER, ZTITLE2)"
        " VALUES (?, 1, 0, ?, 'Notes')",
        (_FOLDER_ENTITY, guid(rng)),
    ).lastrowid
    for when in dates:
        text, data = _body(rng)
        note = db.execute(
            "INSERT INTO ZICCLOUDSYNCINGOBJECT (Z_ENT, Z_OPT, ZMARKEDFORDELETION, ZFOLDER, ZISPINNED,"
            " ZCREATIONDATE1, ZMODIFICATIONDATE1, ZIDENTIFIER, ZTITLE1, ZSNIPPET) VALUES (?, 1, 0, ?, ?, ?, ?, ?, ?, ?)",
            (
                _NOTE_ENTITY,
                folder,
                int(rng.random() < 0.1),
                cocoa_seconds(when),
                cocoa_seconds(when),
                guid(rng),
                sentence(rng, 2, 6),
                text[:100],
            ),
        ).lastrowid
        data_row = db.execute(
            "INSERT INTO ZICNOTEDATA (Z_ENT, Z_OPT, ZNOTE, ZDATA) VALUES (2, 1, ?, ?)", (note, data)
        )
        db.execute(
            "UPDATE ZICCLOUDSYNCINGOBJECT SET ZNOTEDATA = ? WHERE Z_PK = ?", (data_row.lastrowid, note)
        )
    sync_primary_keys(db, _ENTITIES)


def _edit_one(db: sqlite3.Connection, rng: random.Random, when: int) -> None:
    notes = [
        row[0]
        for row in db.execute("SELECT Z_PK FROM ZICCLOUDSYNCINGOBJECT WHERE Z_ENT = ?", (_NOTE_ENTITY,))
    ]
    if not notes:
        return
    note = rng.choice(notes)
    text, data = _body(rng)
    db.execute("UPDATE ZICNOTEDATA SET ZDATA = ?, Z_OPT = Z_OPT + 1 WHERE ZNOTE = ?", (data, note))
    db.execute(
        "UPDATE ZICCLOUDSYNCINGOBJECT SET ZSNIPPET = ?, ZMODIFICATIONDATE1 = ?, Z_OPT = Z_OPT + 1 WHERE Z_PK = ?",
        (text[:100], cocoa_seconds(when), note),
    )
