"""Scaffolding shared by the generated SQLite stores: Core Data bookkeeping and Apple's properties table."""

from __future__ import annotations

import plistlib
import sqlite3


def core_data_scaffold(connection: sqlite3.Connection, entities: dict[str, str], store_uuid: str) -> None:
    """Create the tables Core Data keeps next to its entities (`entities`: entity name -> table)."""
    connection.executescript(
        "CREATE TABLE Z_PRIMARYKEY (Z_ENT INTEGER PRIMARY KEY, Z_NAME VARCHAR, Z_SUPER INTEGER, Z_MAX INTEGER);"
        "CREATE TABLE Z_METADATA (Z_VERSION INTEGER PRIMARY KEY, Z_UUID VARCHAR(255), Z_PLIST BLOB);"
        "CREATE TABLE Z_MODELCACHE (Z_CONTENT BLOB);"
    )
    connection.executemany(
        "INSERT INTO Z_PRIMARYKEY (Z_ENT, Z_NAME, Z_SUPER, Z_MAX) VALUES (?, ?, 0, 0)",
        [(number, name) for number, name in enumerate(entities, start=1)],
    )
    metadata = {"NSStoreType": "SQLite", "NSStoreUUID": store_uuid, "NSPersistenceFrameworkVersion": 1141}
    connection.execute(
        "INSERT INTO Z_METADATA VALUES (1, ?, ?)",
        (store_uuid, plistlib.dumps(metadata, fmt=plistlib.FMT_BINARY)),
    )


def sync_primary_keys(connection: sqlite3.Connection, entities: dict[str, str]) -> None:
    """Set each entity's Z_MAX to its table's highest Z_PK, as Core Data does on save."""
    for name, table in entities.items():
        connection.execute(
            f"UPDATE Z_PRIMARYKEY SET Z_MAX = (SELECT IFNULL(MAX(Z_PK), 0) FROM {table}) WHERE Z_NAME = ?",
            (name,),
        )


def database_properties(connection: sqlite3.Connection, properties: dict[str, str]) -> None:
    """Apple's `_SqliteDatabaseProperties` key/value table (sms.db, AddressBook, voicemail, ...)."""
    connection.execute("CREATE TABLE _SqliteDatabaseProperties (key TEXT, value TEXT, UNIQUE(key))")
    connection.executemany("INSERT INTO _SqliteDatabaseProperties VALUES (?, ?)", properties.items())
