"""The import files cache: unchanged files are not read again; changed or pruned ones are."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from conftest import ROOT, CofferCli, sample_library
from ios_helpers import build_backup

from agent.archive.files_cache import CachedFile, FilesCache


def test_second_import_reads_only_what_changed(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    built = build_backup(tmp_path / "backup", sample_library(5))
    files = [r for r in built.records if r.is_file]
    first = coffer.inline("--json", "import", tmp_path / "backup").json()
    assert first["files_unchanged"] == 0

    second = coffer.inline("--json", "import", tmp_path / "backup").json()
    assert second["files_unchanged"] == len(files)
    assert second["bytes"] == first["bytes"] and second["new_bytes"] == 0

    changed = next(r for r in files if r.size > 1000)
    blob = tmp_path / "backup" / changed.blob_name
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))
    os.utime(blob, ns=(blob.stat().st_atime_ns, blob.stat().st_mtime_ns + 1_000_000_000))
    third = coffer.inline("--json", "import", tmp_path / "backup").json()
    assert third["files_unchanged"] == len(files) - 1
    coffer("check", "--read-data")
    out = tmp_path / "out"
    coffer("export", third["id"], out)
    assert (out / changed.blob_name).read_bytes() == bytes(data)


def _cache_files(coffer: CofferCli) -> list[Path]:
    """Every file of the files cache, temporary ones included."""
    return sorted(Path(coffer.env["COFFER_STATE_DIR"]).rglob("*files-*"))


@pytest.mark.parametrize(
    "damage",
    [
        b"",  # emptied
        b"SQLite format 3\x00" + bytes(4080),  # a header and nothing behind it
        "truncate",
        "hostile rows",
    ],
)
def test_a_damaged_cache_only_costs_a_second_read(coffer: CofferCli, tmp_path: Path, damage: bytes | str) -> None:
    """Whatever the cache file holds, the import reads every file it cannot vouch for, and the snapshot restores
    byte for byte: a row naming another category, chunk IDs of the wrong length or types sqlite allows in any
    column never reach a snapshot."""
    coffer.init()
    built = build_backup(tmp_path / "backup", sample_library(5))
    coffer.inline("import", tmp_path / "backup")
    [cache] = _cache_files(coffer)
    if damage == "truncate":
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    elif damage == "hostile rows":
        with contextlib.closing(sqlite3.connect(cache)) as database:
            rows = database.execute("SELECT file_id FROM files").fetchall()
            for number, (file_id,) in enumerate(rows):
                change = [
                    ("category", "no-such-category"),
                    ("chunks", b"\x00" * 31),
                    ("size", -1),
                    ("size", "12"),
                    ("fingerprint", 7),
                ][number % 5]
                database.execute(f"UPDATE files SET {change[0]} = ? WHERE file_id = ?", (change[1], file_id))
            database.commit()
    else:
        assert isinstance(damage, bytes)
        cache.write_bytes(damage)
    again = coffer.inline("--json", "import", tmp_path / "backup").json()
    assert again["files_unchanged"] == 0
    out = tmp_path / "out"
    coffer("export", again["id"], out)
    for record in (r for r in built.records if r.is_file):
        assert (out / record.blob_name).read_bytes() == (tmp_path / "backup" / record.blob_name).read_bytes()
    third = coffer.inline("--json", "import", tmp_path / "backup").json()
    assert third["files_unchanged"] == len([r for r in built.records if r.is_file])  # rebuilt by the second run


def test_an_import_killed_midway_keeps_the_previous_cache_and_leaves_no_file(
    coffer: CofferCli, tmp_path: Path
) -> None:
    """Killed (as `kill -9`) at its first storage write, after one file changed: the cache is the previous run's,
    byte for byte, with no temporary file beside it, and the next import still skips the unchanged files."""
    coffer.init()
    built = build_backup(tmp_path / "backup", sample_library(5))
    coffer.inline("import", tmp_path / "backup")
    before = {path: path.read_bytes() for path in _cache_files(coffer)}
    files = [r for r in built.records if r.is_file]
    changed = max(files, key=lambda r: r.size)
    blob = tmp_path / "backup" / changed.blob_name
    blob.write_bytes(bytes(b ^ 0xFF for b in blob.read_bytes()))
    killed = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "crash_launcher.py"), "import", str(tmp_path / "backup")],
        env={**coffer.environment(None), "CRASH_AT": "1", "CRASH_MODE": "after"},
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert killed.returncode == 137, killed.stderr
    assert {path: path.read_bytes() for path in _cache_files(coffer)} == before
    again = coffer.inline("--json", "import", tmp_path / "backup").json()
    assert again["files_unchanged"] == len(files) - 1


def test_the_cache_holds_no_entry_in_memory() -> None:
    """This run's entries go to a file as they come: remembering 50,000 files costs no Python memory."""
    with tempfile.TemporaryDirectory() as root, FilesCache("repository", "device", Path(root)) as cache:
        entry = CachedFile("0" * 32, "photos", 1 << 20, [bytes(32), bytes(range(32))])
        cache.remember("warm-up", entry)
        tracemalloc.start()
        try:
            for number in range(50_000):
                cache.remember(f"{number:040x}", entry)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert held < 64 << 10
        cache.save()
        with contextlib.closing(sqlite3.connect(cache.path)) as database:
            assert database.execute("SELECT count(*) FROM files").fetchone() == (50_001,)
            assert database.execute("SELECT chunks FROM files WHERE file_id = 'warm-up'").fetchone() == (
                bytes(32) + bytes(range(32)),
            )
