"""Real SQLite databases for the benchmark data set, and the edits a day of use makes to them.

Each database is one table of app-like rows (a GUID, a date, a state, text, sometimes a binary payload such as
a thumbnail) indexed on the GUID and the date, in 4096-byte pages with a rollback journal, as iOS apps keep
them. A day of use appends rows, updates rows scattered over the whole file and deletes a few: small changes
on pages all over the file, the case page-aligned chunking is meant for.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.dataset.content import TextSource, random_uuid

PAGE_SIZE = 4096
_ROWS_PER_BATCH = 2000
_LEAST_ROWS_PER_BATCH = 20
_SECONDS_BETWEEN_ROWS = (5, 600)


@dataclass(frozen=True)
class DatabaseShape:
    """What one database's rows look like: text of up to `phrases` phrases, and with `payload_chance` a binary
    payload of `payload_size` bytes (incompressible, like an embedded thumbnail or an encrypted blob)."""

    table: str
    phrases: int
    payload_chance: float
    payload_size: tuple[int, int]


@dataclass(frozen=True)
class DayOfUse:
    """How many rows a day appends, updates in place and deletes."""

    appended: int
    updated: int
    deleted: int


def _rows(
    shape: DatabaseShape, rng: random.Random, text: TextSource, start_time: int
) -> Iterator[tuple[str, int, int, str, bytes | None]]:
    moment = start_time
    while True:
        moment += rng.randint(*_SECONDS_BETWEEN_ROWS)
        payload = (
            rng.randbytes(rng.randint(*shape.payload_size)) if rng.random() < shape.payload_chance else None
        )
        yield random_uuid(rng), moment, rng.randrange(8), text.line(rng, shape.phrases), payload


def _insert(connection: sqlite3.Connection, shape: DatabaseShape, rows: Iterator[tuple], count: int) -> None:
    connection.executemany(
        f"INSERT INTO {shape.table} (guid, date, state, text, payload) VALUES (?, ?, ?, ?, ?)",
        (next(rows) for _ in range(count)),
    )


def create_database(
    path: Path, shape: DatabaseShape, target_size: int, rng: random.Random, text: TextSource, start_time: int
) -> None:
    """Write a new database of about `target_size` bytes at `path`, rows dated from `start_time` on."""
    connection = sqlite3.connect(path)
    try:
        connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        # Not durable while it is being made (the folder is incomplete until the end anyway); it takes
        # one sync per batch off a shared disk. The setting lasts only as long as the connection.
        connection.execute("PRAGMA synchronous = OFF")
        connection.execute(
            f"CREATE TABLE {shape.table} (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, "
            "date INTEGER, state INTEGER, text TEXT, payload BLOB)"
        )
        connection.execute(f"CREATE INDEX {shape.table}_date ON {shape.table} (date)")
        rows = _rows(shape, rng, text, start_time)
        while (size := connection.execute("PRAGMA page_count").fetchone()[0] * PAGE_SIZE) < target_size:
            # Smaller batches near the end, so a small database does not overshoot its target by much.
            _insert(
                connection,
                shape,
                rows,
                max(_LEAST_ROWS_PER_BATCH, min(_ROWS_PER_BATCH, (target_size - size) // 1000)),
            )
            connection.commit()
    finally:
        connection.close()


def apply_day(
    path: Path, shape: DatabaseShape, day: DayOfUse, rng: random.Random, text: TextSource, moment: int
) -> None:
    """Change the database at `path` in place as a day of use does; new rows are dated from `moment` on."""
    connection = sqlite3.connect(path)
    try:
        last_row = connection.execute(f"SELECT max(ROWID) FROM {shape.table}").fetchone()[0] or 0
        _insert(connection, shape, _rows(shape, rng, text, moment), day.appended)
        if last_row:
            touched = [rng.randint(1, last_row) for _ in range(day.updated)]
            connection.executemany(
                f"UPDATE {shape.table} SET state = state + 1, text = ? WHERE ROWID = ?",
                ((text.line(rng, shape.phrases), row) for row in touched),
            )
            doomed = [rng.randint(1, last_row) for _ in range(day.deleted)]
            connection.executemany(f"DELETE FROM {shape.table} WHERE ROWID = ?", ((row,) for row in doomed))
        connection.commit()
    finally:
        connection.close()
