"""Health (encrypted backups only): HealthDomain Health/healthdb.sqlite and healthdb_secure.sqlite."""

from __future__ import annotations

import random
import sqlite3

from agent.sim.content.builder import DAY, DeviceBuilder
from agent.sim.content.text import cocoa_seconds, guid

DOMAIN = "HealthDomain"
SOURCES = "Health/healthdb.sqlite"
SAMPLES = "Health/healthdb_secure.sqlite"

# HealthKit data type codes: steps, distance walked, active energy, heart rate
_QUANTITY_TYPES = ((7, 0, 2000), (8, 0.0, 1.5), (10, 0.0, 120.0), (5, 55.0, 140.0))
_SOURCE_NAMES = (("com.apple.health", "iPhone"), ("com.apple.health.watch", "Apple Watch"))


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("health")
    times = sorted(b.timestamp() for _ in range(b.profile.health_samples))
    b.put_sqlite(DOMAIN, SOURCES, lambda db: _create_sources(db, rng))
    b.put_sqlite(DOMAIN, SAMPLES, lambda db: _create_samples(db, rng, times))


def evolve(b: DeviceBuilder) -> None:
    """A day of steps and heart-rate samples."""
    if not b.exists(DOMAIN, SAMPLES):
        return
    rng = b.rng("health")
    times = sorted(b.timestamp() for _ in range(max(4, b.profile.health_samples // 200)))
    b.edit_sqlite(DOMAIN, SAMPLES, lambda db: _insert_samples(db, rng, times))


def _create_sources(db: sqlite3.Connection, rng: random.Random) -> None:
    db.executescript(
        """
        CREATE TABLE sources (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, uuid BLOB UNIQUE, bundle_id TEXT,
            name TEXT, source_options INTEGER, local_device INTEGER, product_type TEXT, deleted INTEGER,
            mod_date REAL);
        CREATE TABLE source_devices (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, uuid BLOB UNIQUE, name TEXT,
            manufacturer TEXT, model TEXT, hardware TEXT, firmware TEXT, software TEXT, localIdentifier TEXT,
            creation_date REAL);
        CREATE TABLE key_value (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, category INTEGER, domain TEXT,
            key TEXT, value, provenance INTEGER, mod_date REAL, UNIQUE(category, domain, key));
        """
    )
    for bundle, device in _SOURCE_NAMES:
        db.execute(
            "INSERT INTO sources (uuid, bundle_id, name, source_options, local_device, product_type, deleted,"
            " mod_date) VALUES (?, ?, ?, 5, 1, ?, 0, 6.3e8)",
            (rng.randbytes(16), bundle, device, "iPhone13,2" if device == "iPhone" else "Watch6,1"),
        )
        db.execute(
            "INSERT INTO source_devices (uuid, name, manufacturer, model, hardware, software, localIdentifier,"
            " creation_date) VALUES (?, ?, 'Apple Inc.', ?, ?, '17.4', ?, 6.3e8)",
            (
                rng.randbytes(16),
                device,
                device,
                "iPhone13,2" if device == "iPhone" else "Watch6,1",
                guid(rng),
            ),
        )
    db.executemany(
        "INSERT INTO key_value (category, domain, key, value, provenance, mod_date) VALUES (0, '', ?, ?, 0, 6.3e8)",
        [("DateOfBirth", "1988-04-12"), ("BiologicalSex", 2), ("Height", 1.78), ("Weight", 72.5)],
    )


def _create_samples(db: sqlite3.Connection, rng: random.Random, times: list[int]) -> None:
    db.executescript(
        """
        CREATE TABLE objects (data_id INTEGER PRIMARY KEY AUTOINCREMENT, uuid BLOB UNIQUE, provenance INTEGER,
            type INTEGER, creation_date REAL);
        CREATE TABLE samples (data_id INTEGER PRIMARY KEY, start_date REAL, end_date REAL, data_type INTEGER);
        CREATE TABLE quantity_samples (data_id INTEGER PRIMARY KEY, quantity REAL, original_quantity REAL,
            original_unit INTEGER);
        CREATE TABLE workouts (data_id INTEGER PRIMARY KEY, total_distance REAL, total_energy_burned REAL,
            duration REAL, workout_activity_type INTEGER);
        CREATE TABLE data_provenances (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, origin_product_type TEXT,
            origin_build TEXT, source_version TEXT, tz_name TEXT, source_id INTEGER, device_id INTEGER);
        CREATE INDEX samples_type_start ON samples (data_type, start_date);
        """
    )
    db.executemany(
        "INSERT INTO data_provenances (origin_product_type, origin_build, source_version, tz_name, source_id,"
        " device_id) VALUES (?, '21E219', '17.4', 'Europe/Zurich', ?, ?)",
        [("iPhone13,2", 1, 1), ("Watch6,1", 2, 2)],
    )
    _insert_samples(db, rng, times)
    for start in times[:: max(1, len(times) // 8)]:  # a few workouts
        object_id = _insert_object(db, rng, 2, 79, start)
        duration = rng.uniform(1200, 5400)
        db.execute(
            "INSERT INTO samples VALUES (?, ?, ?, 79)",
            (object_id, cocoa_seconds(start), cocoa_seconds(start) + duration),
        )
        db.execute(
            "INSERT INTO workouts VALUES (?, ?, ?, ?, ?)",
            (object_id, rng.uniform(2000, 15000), rng.uniform(150, 900), duration, rng.choice((37, 13, 52))),
        )


def _insert_object(
    db: sqlite3.Connection, rng: random.Random, provenance: int, data_type: int, when: int
) -> int:
    cursor = db.execute(
        "INSERT INTO objects (uuid, provenance, type, creation_date) VALUES (?, ?, ?, ?)",
        (rng.randbytes(16), provenance, data_type, cocoa_seconds(when)),
    )
    return cursor.lastrowid or 0


def _insert_samples(db: sqlite3.Connection, rng: random.Random, times: list[int]) -> None:
    for when in times:
        data_type, low, high = rng.choice(_QUANTITY_TYPES)
        object_id = _insert_object(db, rng, rng.choice((1, 2)), data_type, when)
        start = cocoa_seconds(when - rng.randint(60, DAY // 24))
        db.execute(
            "INSERT INTO samples VALUES (?, ?, ?, ?)", (object_id, start, cocoa_seconds(when), data_type)
        )
        quantity = rng.uniform(low, high)
        db.execute("INSERT INTO quantity_samples VALUES (?, ?, ?, 0)", (object_id, quantity, quantity))
