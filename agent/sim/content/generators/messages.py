"""Messages: HomeDomain Library/SMS/sms.db and the attachments under MediaDomain Library/SMS/Attachments."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.sqlite_common import database_properties
from agent.sim.content.text import cocoa_nanoseconds, guid, people, sentence

HOME = "HomeDomain"
MEDIA = "MediaDomain"
DATABASE = "Library/SMS/sms.db"

_SCHEMA = """
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, country TEXT,
    service TEXT NOT NULL, uncanonicalized_id TEXT, person_centric_id TEXT, UNIQUE (id, service));
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER,
    state INTEGER, account_id TEXT, chat_identifier TEXT, service_name TEXT, room_name TEXT,
    is_archived INTEGER DEFAULT 0, display_name TEXT, group_id TEXT,
    last_read_message_timestamp INTEGER DEFAULT 0);
CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT,
    handle_id INTEGER DEFAULT 0, subject TEXT, service TEXT, account TEXT, error INTEGER DEFAULT 0,
    date INTEGER, date_read INTEGER, date_delivered INTEGER, is_delivered INTEGER DEFAULT 0,
    is_finished INTEGER DEFAULT 0, is_from_me INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0,
    is_sent INTEGER DEFAULT 0, cache_has_attachments INTEGER DEFAULT 0, item_type INTEGER DEFAULT 0,
    associated_message_guid TEXT, thread_originator_guid TEXT);
CREATE TABLE attachment (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
    created_date INTEGER DEFAULT 0, start_date INTEGER DEFAULT 0, filename TEXT, uti TEXT, mime_type TEXT,
    transfer_state INTEGER DEFAULT 0, is_outgoing INTEGER DEFAULT 0, transfer_name TEXT,
    total_bytes INTEGER DEFAULT 0, is_sticker INTEGER DEFAULT 0, hide_attachment INTEGER DEFAULT 0);
CREATE TABLE chat_handle_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
    handle_id INTEGER REFERENCES handle (ROWID) ON DELETE CASCADE, UNIQUE(chat_id, handle_id));
CREATE TABLE chat_message_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
    message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE, message_date INTEGER DEFAULT 0,
    PRIMARY KEY (chat_id, message_id));
CREATE TABLE message_attachment_join (message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE,
    attachment_id INTEGER REFERENCES attachment (ROWID) ON DELETE CASCADE, UNIQUE(message_id, attachment_id));
CREATE INDEX message_idx_handle ON message(handle_id, date);
CREATE INDEX chat_message_join_idx_message_date_id_chat_id ON chat_message_join(chat_id, message_date, message_id);
CREATE INDEX message_attachment_join_idx_message_id ON message_attachment_join(message_id);
"""


@dataclass(frozen=True)
class Attachment:
    guid: str
    path: str  # MediaDomain relative path
    size: int
    created: int


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("messages")
    dates = sorted(b.timestamp() for _ in range(b.profile.messages))
    attachments = [_new_attachment(b, rng) for _ in range(b.profile.attachments)]
    b.put_sqlite(HOME, DATABASE, lambda db: _create(db, rng, dates, attachments))
    b.directory(HOME, "Library/SMS/Drafts")
    b.directory(MEDIA, "Library/SMS/StickerCache")


def evolve(b: DeviceBuilder) -> None:
    """Today's conversation: new messages appended to sms.db (real INSERTs), one with a photo."""
    if not b.exists(HOME, DATABASE):
        return
    rng = b.rng("messages")
    dates = sorted(b.timestamp() for _ in range(b.profile.daily_messages))
    attachment = _new_attachment(b, rng)
    b.edit_sqlite(HOME, DATABASE, lambda db: _append_messages(db, rng, dates, [attachment]))


def _new_attachment(b: DeviceBuilder, rng: random.Random) -> Attachment:
    attachment_guid = guid(rng)
    number = rng.randint(1000, 9999)
    path = f"Library/SMS/Attachments/{rng.randrange(256):02x}/{rng.randrange(16):02d}/{attachment_guid}/IMG_{number}.jpeg"
    size = int(rng.randint(150_000, 900_000) * min(1.0, b.profile.photo_scale * 2))
    created = b.timestamp()
    b.put_stream(MEDIA, path, size, mtime=created)
    return Attachment(attachment_guid, path, size, created)


def _create(
    db: sqlite3.Connection, rng: random.Random, dates: list[int], attachments: list[Attachment]
) -> None:
    db.executescript(_SCHEMA)
    database_properties(
        db, {"counter_in_all": "0", "_ClientVersion": "14006", "__CSDBRecordSequenceNumber": "0"}
    )
    contacts = people(rng, max(3, len(dates) // 40))
    for contact in contacts:
        service = "iMessage" if rng.random() < 0.7 else "SMS"
        handle = db.execute(
            "INSERT INTO handle (id, country, service, uncanonicalized_id, person_centric_id) VALUES (?, 'ch', ?, ?, ?)",
            (contact.phone, service, contact.phone, guid(rng)),
        ).lastrowid
        chat = db.execute(
            "INSERT INTO chat (guid, style, state, account_id, chat_identifier, service_name, display_name)"
            " VALUES (?, 45, 3, ?, ?, ?, '')",
            (f"{service};-;{contact.phone}", guid(rng), contact.phone, service),
        ).lastrowid
        db.execute("INSERT INTO chat_handle_join VALUES (?, ?)", (chat, handle))
    _append_messages(db, rng, dates, attachments)


def _append_messages(
    db: sqlite3.Connection, rng: random.Random, dates: list[int], attachments: list[Attachment]
) -> None:
    """Insert one message per date into existing chats; the last ones carry the attachments."""
    chats = db.execute(
        "SELECT chat.ROWID, handle.ROWID, chat.service_name FROM chat"
        " JOIN chat_handle_join ON chat_handle_join.chat_id = chat.ROWID"
        " JOIN handle ON handle.ROWID = chat_handle_join.handle_id ORDER BY chat.ROWID"
    ).fetchall()
    first_with_attachment = len(dates) - len(attachments)
    for index, when in enumerate(dates):
        chat, handle, service = rng.choice(chats)
        from_me = rng.random() < 0.45
        stamp = cocoa_nanoseconds(when)
        attachment = attachments[index - first_with_attachment] if index >= first_with_attachment else None
        message = db.execute(
            "INSERT INTO message (guid, text, handle_id, service, account, date, date_read, date_delivered,"
            " is_delivered, is_finished, is_from_me, is_read, is_sent, cache_has_attachments)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 1, ?, 1, ?, ?)",
            (
                guid(rng),
                "\ufffc" if attachment else sentence(rng),
                handle,
                service,
                "e:" if service == "iMessage" else "p:",
                stamp,
                stamp + rng.randint(1, 600) * 1_000_000_000,
                stamp + 1_000_000_000,
                int(from_me),
                int(from_me),
                int(attachment is not None),
            ),
        ).lastrowid
        db.execute("INSERT INTO chat_message_join VALUES (?, ?, ?)", (chat, message, stamp))
        if attachment is not None:
            row = db.execute(
                "INSERT INTO attachment (guid, created_date, start_date, filename, uti, mime_type, transfer_state,"
                " is_outgoing, transfer_name, total_bytes) VALUES (?, ?, ?, ?, 'public.jpeg', 'image/jpeg', 5, ?, ?, ?)",
                (
                    attachment.guid,
                    cocoa_nanoseconds(attachment.created) // 1_000_000_000,
                    cocoa_nanoseconds(attachment.created) // 1_000_000_000,
                    f"~/{attachment.path}",
                    int(from_me),
                    attachment.path.rsplit("/", 1)[-1],
                    attachment.size,
                ),
            ).lastrowid
            db.execute("INSERT INTO message_attachment_join VALUES (?, ?)", (message, row))
