"""Plausible content for a file known only by its name and size.

The real-phone layout and the generic parts of app containers name thousands of files
whose content does not matter beyond looking like their kind: SQLite names get a real
database of about that size, plists a binary plist, JSON a JSON document, media and big
binary files an incompressible stream with the right header, and small files text.
"""

from __future__ import annotations

import random
import sqlite3

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.sqlite_common import core_data_scaffold, sync_primary_keys
from agent.sim.content.stream import header_for
from agent.sim.content.text import guid, json_bytes, log_bytes, plist_bytes, sentence

SQLITE_SUFFIXES = (".sqlite", ".sqlitedb", ".db", ".storedata", ".sqlite3")
SMALL_FILE_LIMIT = 64_000  # unknown binary files above this are streamed, below it written as text
_ROW_BYTES = 260  # what one generic row adds to a database, pages included
_ENTITIES = {"Record": "ZRECORD"}


def put_filler(b: DeviceBuilder, rng: random.Random, domain: str, relative_path: str, size: int) -> None:
    name = relative_path.rsplit("/", 1)[-1].lower()
    if size == 0:
        b.put_bytes(domain, relative_path, b"")
    elif name.endswith(SQLITE_SUFFIXES):
        b.put_sqlite(domain, relative_path, lambda db: generic_database(db, rng, size))
    elif name.endswith(".plist"):
        b.put_bytes(domain, relative_path, plist_bytes(rng, size, name.removesuffix(".plist")))
    elif name.endswith(".json"):
        b.put_bytes(domain, relative_path, json_bytes(rng, size))
    elif header_for(relative_path) or size > SMALL_FILE_LIMIT:
        b.put_stream(domain, relative_path, size)
    else:
        b.put_bytes(domain, relative_path, log_bytes(rng, size))


def generic_database(db: sqlite3.Connection, rng: random.Random, approx_size: int) -> None:
    """A Core Data store of one entity, filled to about `approx_size` bytes."""
    core_data_scaffold(db, _ENTITIES, guid(rng))
    db.execute(
        "CREATE TABLE ZRECORD (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZTIMESTAMP TIMESTAMP,"
        " ZIDENTIFIER VARCHAR, ZTITLE VARCHAR, ZVALUE VARCHAR)"
    )
    db.execute("CREATE INDEX ZRECORD_ZTIMESTAMP_INDEX ON ZRECORD (ZTIMESTAMP)")
    rows = max(0, (approx_size - 5 * 4096) // _ROW_BYTES)
    db.executemany(
        "INSERT INTO ZRECORD (Z_ENT, Z_OPT, ZTIMESTAMP, ZIDENTIFIER, ZTITLE, ZVALUE) VALUES (1, 1, ?, ?, ?, ?)",
        (
            (rng.uniform(6e8, 7.3e8), guid(rng), sentence(rng, 2, 5), sentence(rng, 8, 20))
            for _ in range(rows)
        ),
    )
    sync_primary_keys(db, _ENTITIES)
