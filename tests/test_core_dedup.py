"""Deduplication through the real `coffer import`: a second backup stores little more than what changed,
whole files and scattered SQLite page edits alike."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from conftest import CofferCli
from ios_helpers import Entry, build_backup

from agent.pipeline import writer as writer_module
from agent.pipeline.writer import BlobWriter
from agent.storage.local import LocalStorage

UDID = "00008030-001A2B3C4D5E6F70"
# Per import: pack headers and trailers, Padmé padding of the few new packs, index and snapshot objects.
FIXED_OVERHEAD = 256 << 10


def stored_bytes(repo: Path) -> int:
    return sum(info.size for info in LocalStorage(repo).list())


def import_size(coffer: CofferCli, folder: Path) -> tuple[int, dict[str, int]]:
    """Import `folder`; return how many bytes the repository grew and the import's --json document."""
    before = stored_bytes(coffer.repo)
    document = coffer("--json", "import", folder).json()
    return stored_bytes(coffer.repo) - before, document


def test_second_import_stores_only_the_changed_files(coffer: CofferCli, tmp_path: Path) -> None:
    rng = random.Random(7)
    domains = [
        ("CameraRollDomain", "Media/DCIM/100APPLE/IMG_{}.HEIC"),
        ("MediaDomain", "Library/SMS/Attachments/00/{}.jpeg"),
        ("AppDomain-com.example.app", "Documents/{}.bin"),
        ("HomeDomain", "Library/Voicemail/{}.amr"),
    ]
    entries = [
        Entry(domain, pattern.format(n), rng.randbytes(rng.randint(64_000, 160_000)))
        for n in range(300)
        for domain, pattern in [domains[n % len(domains)]]
    ]
    changed = rng.sample(range(len(entries)), 3)  # 1 % of the blobs
    edited = list(entries)
    for position in changed:
        original = entries[position]
        edited[position] = Entry(
            original.domain, original.relative_path, rng.randbytes(len(original.content or b""))
        )
    changed_bytes = sum(len(entries[p].content or b"") for p in changed)

    coffer.init()
    first_size, _ = import_size(coffer, build_backup(tmp_path / "first" / UDID, tuple(entries)).path)
    second_size, document = import_size(coffer, build_backup(tmp_path / "second" / UDID, tuple(edited)).path)
    print(
        f"\nfirst import {first_size} B, second {second_size} B for {changed_bytes} B changed "
        f"(reused {document['reused_bytes']} B, new {document['new_bytes']} B)"
    )
    assert document["new_bytes"] == changed_bytes
    assert second_size <= changed_bytes * 2 + FIXED_OVERHEAD
    assert first_size > 20 * second_size


def sqlite_database(path: Path, rows: int) -> None:
    """A real database of `rows` rows of 3000 random bytes, about one row per 4 KiB page."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA page_size = 4096")
    connection.execute("CREATE TABLE message (id INTEGER PRIMARY KEY, body BLOB)")
    connection.execute(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
        "INSERT INTO message (body) SELECT randomblob(3000) FROM n",
        (rows,),
    )
    connection.commit()
    connection.close()


def test_scattered_sqlite_page_edits_store_a_few_blocks(coffer: CofferCli, tmp_path: Path) -> None:
    database = tmp_path / "sms.db"
    sqlite_database(database, 12_000)
    before = database.read_bytes()
    connection = sqlite3.connect(database)
    for row in random.Random(3).sample(range(1, 12_001), 8):
        connection.execute("UPDATE message SET body = randomblob(3000) WHERE id = ?", (row,))
        connection.commit()  # one transaction per edit, as an app writes
    connection.close()
    after = database.read_bytes()
    assert len(after) == len(before) >= 45 << 20
    changed_pages = sum(before[i : i + 4096] != after[i : i + 4096] for i in range(0, len(before), 4096))

    coffer.init()
    first_size, _ = import_size(
        coffer,
        build_backup(tmp_path / "first" / UDID, (Entry("HomeDomain", "Library/SMS/sms.db", before),)).path,
    )
    second_size, document = import_size(
        coffer,
        build_backup(tmp_path / "second" / UDID, (Entry("HomeDomain", "Library/SMS/sms.db", after),)).path,
    )
    print(
        f"\n{len(before) >> 20} MiB database, {changed_pages} pages changed: first import {first_size} B, "
        f"second {second_size} B (new {document['new_bytes']} B)"
    )
    assert second_size <= 3 << 20
    assert first_size > 10 * second_size


def test_open_packs_stay_within_the_memory_budget(coffer: CofferCli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many categories at once: the bytes held in open packs never exceed the budget."""
    budget = 3 << 20
    monkeypatch.setattr(writer_module, "OPEN_BYTES_BUDGET", budget)
    coffer.init()
    repository = coffer.open()
    writer = BlobWriter(repository, repository.load_index())
    rng = random.Random(7)
    spaces = repository.config.categories[:10]
    peak = 0
    for _ in range(200):
        writer.store_chunk(rng.choice(spaces), rng.randbytes(64 << 10), compress=False)
        peak = max(peak, writer._open_bytes)
    writer.flush()
    assert 0 < peak <= budget
    assert writer.stats.packs_uploaded > 1
    coffer("check", "--read-data")
