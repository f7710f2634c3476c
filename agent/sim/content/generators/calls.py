"""Call history (CallHistory.storedata, encrypted backups only) and visual voicemail (voicemail.db + .amr)."""

from __future__ import annotations

import random
import sqlite3

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.sqlite_common import (
    core_data_scaffold,
    database_properties,
    sync_primary_keys,
)
from agent.sim.content.text import cocoa_seconds, guid, people, plist_bytes

DOMAIN = "HomeDomain"
CALL_HISTORY = "Library/CallHistoryDB/CallHistory.storedata"
VOICEMAIL = "Library/Voicemail/voicemail.db"

_CALL_ENTITIES = {"CallRecord": "ZCALLRECORD"}
_AMR_BYTES_PER_SECOND = 1_600  # AMR-NB at 12.2 kbit/s


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("calls")
    calls = sorted(b.timestamp() for _ in range(b.profile.calls))
    b.put_sqlite(DOMAIN, CALL_HISTORY, lambda db: _create_call_history(db, rng, calls))
    b.put_bytes(
        DOMAIN, "Library/CallHistoryDB/com.apple.callhistory.databaseInfo.plist", plist_bytes(rng, 300)
    )
    b.put_bytes(DOMAIN, "Library/CallHistoryTransactions/transactions.log", b"")
    messages = sorted((b.timestamp(), rng.randint(4, 90)) for _ in range(b.profile.voicemails))
    b.put_sqlite(DOMAIN, VOICEMAIL, lambda db: _create_voicemail(db, rng, messages))
    for number, (when, seconds) in enumerate(messages, start=1):
        b.put_stream(DOMAIN, f"Library/Voicemail/{number}.amr", seconds * _AMR_BYTES_PER_SECOND, mtime=when)


def _create_call_history(db: sqlite3.Connection, rng: random.Random, calls: list[int]) -> None:
    core_data_scaffold(db, _CALL_ENTITIES, guid(rng))
    db.execute(
        "CREATE TABLE ZCALLRECORD (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZANSWERED INTEGER,"
        " ZCALLTYPE INTEGER, ZDISCONNECTED_CAUSE INTEGER, ZFACE_TIME_DATA BLOB, ZNUMBER_AVAILABILITY INTEGER,"
        " ZORIGINATED INTEGER, ZREAD INTEGER, ZDATE TIMESTAMP, ZDURATION FLOAT, ZADDRESS VARCHAR, ZLOCATION VARCHAR,"
        " ZNAME VARCHAR, ZSERVICE_PROVIDER VARCHAR, ZUNIQUE_ID VARCHAR, ZISO_COUNTRY_CODE VARCHAR)"
    )
    db.execute("CREATE INDEX ZCALLRECORD_ZDATE_INDEX ON ZCALLRECORD (ZDATE)")
    callers = people(rng, max(3, len(calls) // 10))
    for when in calls:
        caller = rng.choice(callers)
        answered = rng.random() < 0.8
        db.execute(
            "INSERT INTO ZCALLRECORD (Z_ENT, Z_OPT, ZANSWERED, ZCALLTYPE, ZDISCONNECTED_CAUSE, ZNUMBER_AVAILABILITY,"
            " ZORIGINATED, ZREAD, ZDATE, ZDURATION, ZADDRESS, ZLOCATION, ZSERVICE_PROVIDER, ZUNIQUE_ID,"
            " ZISO_COUNTRY_CODE) VALUES (1, 1, ?, ?, 0, 0, ?, 1, ?, ?, ?, 'Switzerland', ?, ?, 'ch')",
            (
                int(answered),
                rng.choice((1, 1, 1, 8, 16)),  # phone, FaceTime video, FaceTime audio
                int(rng.random() < 0.5),
                cocoa_seconds(when),
                rng.uniform(20, 1200) if answered else 0.0,
                caller.phone,
                "com.apple.Telephony",
                guid(rng),
            ),
        )
    sync_primary_keys(db, _CALL_ENTITIES)


def _create_voicemail(db: sqlite3.Connection, rng: random.Random, messages: list[tuple[int, int]]) -> None:
    db.execute(
        "CREATE TABLE voicemail (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, remote_uid INTEGER, date INTEGER,"
        " token TEXT, sender TEXT, callback_num TEXT, duration INTEGER, expiration INTEGER, trashed_date INTEGER,"
        " flags INTEGER)"
    )
    database_properties(db, {"_ClientVersion": "2", "__CSDBRecordSequenceNumber": str(len(messages))})
    senders = people(rng, max(1, len(messages)))
    db.executemany(
        "INSERT INTO voicemail (remote_uid, date, token, sender, callback_num, duration, expiration, trashed_date,"
        " flags) VALUES (?, ?, 'Complete', ?, ?, ?, ?, 0, 3)",
        [
            (100 + number, when, sender.phone, sender.phone, seconds, when + 30 * 86_400)
            for number, ((when, seconds), sender) in enumerate(zip(messages, senders, strict=True))
        ],
    )
