"""Voice Memos: MediaDomain Media/Recordings/Recordings.db and the .m4a recordings."""

from __future__ import annotations

import sqlite3
import time

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.generators.sqlite_common import core_data_scaffold, sync_primary_keys
from agent.sim.content.text import cocoa_seconds, guid, sentence

DOMAIN = "MediaDomain"
DATABASE = "Media/Recordings/Recordings.db"

_ENTITIES = {"Recording": "ZRECORDING"}
_AAC_BYTES_PER_SECOND = 8_000  # 64 kbit/s


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("voice_memos")
    # (path, when, seconds, label, unique id)
    recordings = []
    for _ in range(b.profile.recordings):
        when = b.timestamp()
        seconds = int(rng.randint(10, 180) * min(1.0, b.profile.photo_scale * 2))
        name = time.strftime("%Y%m%d %H%M%S", time.gmtime(when))
        recordings.append((f"Media/Recordings/{name}.m4a", when, seconds, sentence(rng, 1, 3), guid(rng)))
    for path, when, seconds, _label, _unique in recordings:
        b.put_stream(DOMAIN, path, seconds * _AAC_BYTES_PER_SECOND, mtime=when)
    b.put_sqlite(DOMAIN, DATABASE, lambda db: _create(db, guid(rng), recordings))


def _create(
    db: sqlite3.Connection, store_uuid: str, recordings: list[tuple[str, int, int, str, str]]
) -> None:
    core_data_scaffold(db, _ENTITIES, store_uuid)
    db.execute(
        "CREATE TABLE ZRECORDING (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZDATE TIMESTAMP,"
        " ZDURATION FLOAT, ZCUSTOMLABEL VARCHAR, ZPATH VARCHAR, ZUNIQUEID VARCHAR)"
    )
    db.executemany(
        "INSERT INTO ZRECORDING (Z_ENT, Z_OPT, ZDATE, ZDURATION, ZCUSTOMLABEL, ZPATH, ZUNIQUEID)"
        " VALUES (1, 1, ?, ?, ?, ?, ?)",
        [
            (cocoa_seconds(when), float(seconds), label, path.rsplit("/", 1)[-1], unique)
            for path, when, seconds, label, unique in recordings
        ],
    )
    sync_primary_keys(db, _ENTITIES)
