"""Wallet: HomeDomain Library/Passes/passes23.sqlite and the passes under Library/Passes/Cards."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3

from agent.sim.content.builder import DeviceBuilder
from agent.sim.content.text import CITIES, cocoa_seconds, guid

DOMAIN = "HomeDomain"
DATABASE = "Library/Passes/passes23.sqlite"

_PASS_TYPES = (
    ("pass.com.example.airline.boardingpass", "Example Air", "boardingPass"),
    ("pass.com.example.cinema.ticket", "Example Cinemas", "eventTicket"),
    ("pass.com.example.coffee.loyalty", "Example Coffee", "storeCard"),
)


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("wallet")
    passes = [
        (rng.choice(_PASS_TYPES), guid(rng), b.timestamp()) for _ in range(2 if b.profile.photos < 5 else 5)
    ]
    for (type_id, organisation, style), serial, when in passes:
        folder = f"Library/Passes/Cards/{hashlib.sha1(f'{type_id}{serial}'.encode()).hexdigest()}.pkpass"
        b.put_bytes(
            DOMAIN, f"{folder}/pass.json", _pass_json(rng, type_id, organisation, style, serial), mtime=when
        )
        b.put_stream(DOMAIN, f"{folder}/logo@2x.png", rng.randint(4_000, 20_000), mtime=when)
        b.put_bytes(
            DOMAIN, f"{folder}/manifest.json", json.dumps({"pass.json": rng.randbytes(20).hex()}).encode()
        )
    b.put_sqlite(DOMAIN, DATABASE, lambda db: _create(db, rng, passes))


def _pass_json(rng: random.Random, type_id: str, organisation: str, style: str, serial: str) -> bytes:
    document = {
        "formatVersion": 1,
        "passTypeIdentifier": type_id,
        "serialNumber": serial,
        "organizationName": organisation,
        "description": f"{organisation} pass",
        style: {"primaryFields": [{"key": "place", "label": "PLACE", "value": rng.choice(CITIES)}]},
        "barcode": {
            "format": "PKBarcodeFormatQR",
            "message": rng.randbytes(16).hex(),
            "messageEncoding": "utf-8",
        },
    }
    return json.dumps(document, indent=2).encode()


def _create(
    db: sqlite3.Connection, rng: random.Random, passes: list[tuple[tuple[str, str, str], str, int]]
) -> None:
    db.executescript(
        """
        CREATE TABLE pass (pid INTEGER PRIMARY KEY, unique_id TEXT UNIQUE, pass_type_id TEXT, serial_number TEXT,
            organization_name TEXT, card_type INTEGER, ingested_date REAL, modified_date REAL);
        CREATE TABLE payment_transaction (pid INTEGER PRIMARY KEY, identifier TEXT, amount INTEGER,
            currency_code TEXT, merchant_name TEXT, transaction_date REAL, transaction_status INTEGER);
        """
    )
    for (type_id, organisation, _style), serial, when in passes:
        db.execute(
            "INSERT INTO pass (unique_id, pass_type_id, serial_number, organization_name, card_type, ingested_date,"
            " modified_date) VALUES (?, ?, ?, ?, 0, ?, ?)",
            (guid(rng), type_id, serial, organisation, cocoa_seconds(when), cocoa_seconds(when)),
        )
    db.executemany(
        "INSERT INTO payment_transaction (identifier, amount, currency_code, merchant_name, transaction_date,"
        " transaction_status) VALUES (?, ?, 'CHF', ?, ?, 1)",
        [
            (guid(rng), rng.randint(250, 25_000), f"{rng.choice(CITIES)} Store", cocoa_seconds(when))
            for *_, when in passes * 4
        ],
    )
