"""Safari: History.db (encrypted backups only), Bookmarks.db and BrowserState.db (open tabs)."""

from __future__ import annotations

import random
import sqlite3

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.text import cocoa_seconds, guid, sentence, url

DOMAIN = "HomeDomain"
HISTORY = "Library/Safari/History.db"
BOOKMARKS = "Library/Safari/Bookmarks.db"
TABS = "Library/Safari/BrowserState.db"


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("safari")
    visits = sorted(b.timestamp() for _ in range(b.profile.history_visits))
    b.put_sqlite(DOMAIN, HISTORY, lambda db: _create_history(db, rng, visits))
    b.put_sqlite(
        DOMAIN, BOOKMARKS, lambda db: _create_bookmarks(db, rng, max(5, b.profile.history_visits // 20))
    )
    b.put_sqlite(DOMAIN, TABS, lambda db: _create_tabs(db, rng, visits[-8:]))


def _create_history(db: sqlite3.Connection, rng: random.Random, visits: list[int]) -> None:
    db.executescript(
        """
        CREATE TABLE history_items (id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL UNIQUE,
            domain_expansion TEXT NULL, visit_count INTEGER NOT NULL, daily_visit_counts BLOB NOT NULL,
            weekly_visit_counts BLOB NULL, should_recompute_derived_visit_counts INTEGER NOT NULL,
            visit_count_score INTEGER NOT NULL, status_code INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE history_visits (id INTEGER PRIMARY KEY AUTOINCREMENT,
            history_item INTEGER NOT NULL REFERENCES history_items(id) ON DELETE CASCADE,
            visit_time REAL NOT NULL, title TEXT NULL, load_successful BOOLEAN NOT NULL DEFAULT 1,
            http_non_get BOOLEAN NOT NULL DEFAULT 0, synthesized BOOLEAN NOT NULL DEFAULT 0,
            redirect_source INTEGER NULL UNIQUE, redirect_destination INTEGER NULL UNIQUE, origin INTEGER NOT NULL
            DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0, attributes INTEGER NOT NULL DEFAULT 0,
            score INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX history_visits__last_visit ON history_visits (history_item, visit_time DESC, synthesized ASC);
        """
    )
    items: dict[str, int] = {}
    for when in visits:
        address = url(rng)
        if address not in items:
            items[address] = (
                db.execute(
                    "INSERT INTO history_items (url, domain_expansion, visit_count, daily_visit_counts,"
                    " should_recompute_derived_visit_counts, visit_count_score) VALUES (?, ?, 0, x'', 1, 0)",
                    (address, address.split("/")[2].split(".")[0]),
                ).lastrowid
                or 0
            )
        db.execute(
            "INSERT INTO history_visits (history_item, visit_time, title) VALUES (?, ?, ?)",
            (items[address], cocoa_seconds(when), sentence(rng, 2, 8)),
        )
        db.execute("UPDATE history_items SET visit_count = visit_count + 1 WHERE id = ?", (items[address],))


def _create_bookmarks(db: sqlite3.Connection, rng: random.Random, count: int) -> None:
    db.execute(
        "CREATE TABLE bookmarks (id INTEGER PRIMARY KEY AUTOINCREMENT, special_id INTEGER DEFAULT 0, parent INTEGER,"
        " type INTEGER, title TEXT, url TEXT, num_children INTEGER DEFAULT 0, editable INTEGER DEFAULT 1,"
        " deletable INTEGER DEFAULT 1, hidden INTEGER DEFAULT 0, order_index INTEGER NOT NULL,"
        " external_uuid TEXT UNIQUE, read INTEGER DEFAULT NULL, last_modified REAL DEFAULT NULL)"
    )
    db.execute(
        "INSERT INTO bookmarks (special_id, parent, type, title, order_index, external_uuid)"
        " VALUES (0, 0, 1, 'Root', 0, 'Root')"
    )
    for folder_index, folder in enumerate(("BookmarksBar", "BookmarksMenu", "com.apple.ReadingList")):
        folder_id = db.execute(
            "INSERT INTO bookmarks (parent, type, title, order_index, external_uuid) VALUES (1, 1, ?, ?, ?)",
            (folder, folder_index, guid(rng)),
        ).lastrowid
        children = count if folder == "BookmarksMenu" else count // 4
        db.executemany(
            "INSERT INTO bookmarks (parent, type, title, url, order_index, external_uuid) VALUES (?, 0, ?, ?, ?, ?)",
            [(folder_id, sentence(rng, 1, 4), url(rng), order, guid(rng)) for order in range(children)],
        )
        db.execute("UPDATE bookmarks SET num_children = ? WHERE id = ?", (children, folder_id))


def _create_tabs(db: sqlite3.Connection, rng: random.Random, recent: list[int]) -> None:
    db.execute(
        "CREATE TABLE tabs (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT, title TEXT, url TEXT,"
        " user_visible_url TEXT, order_index INTEGER, last_viewed_time REAL, opened_from_link INTEGER)"
    )
    db.executemany(
        "INSERT INTO tabs (uuid, title, url, user_visible_url, order_index, last_viewed_time, opened_from_link)"
        " VALUES (?, ?, ?, ?, ?, ?, 0)",
        [
            (guid(rng), sentence(rng, 2, 6), address, address, order, cocoa_seconds(when))
            for order, (when, address) in enumerate((when, url(rng)) for when in recent)
        ],
    )
