"""The per-byte floor: it does the import's per-byte work on every file, writes what it says, and is reported
against the tools' full backups."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agent.errors import CofferError
from agent.ios.folder import BackupFolder
from agent.keys import primitives
from agent.pipeline.chunker import Chunker, ChunkerParams, is_sqlite_name
from agent.repository.config import ChunkerSettings
from benchmarks.dataset.backup import generate
from benchmarks.ingest.floor import (
    CPU_ONLY,
    DISK_ONLY,
    WITH_WRITES,
    FloorResult,
    measure_floor,
    run_disk_only,
    run_floor,
)
from benchmarks.ingest.measure import MIB, Measurement, TreeSize, tree_size
from benchmarks.ingest.report import FULL, Run, floor_markdown
from benchmarks.ingest.tools import TOOLS


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("floor") / "backup"
    generate(path, 12 * MIB, 5)
    return path


def _reference_chunks(folder: Path, keys: tuple[bytes, bytes]) -> tuple[int, set[bytes], int]:
    """Files, distinct chunk IDs and bytes of the folder, cut and hashed one file after the other."""
    backup = BackupFolder.open(folder, None)
    settings = ChunkerSettings()
    chunker = Chunker(keys[0], ChunkerParams(settings.min_size, settings.avg_size, settings.max_size))
    files, ids, size = 0, set(), 0
    for record in backup.take_records():
        if not record.is_file:
            continue
        files += 1
        size += record.size
        pieces = backup.open_plaintext(record)
        for chunk in chunker.chunks(pieces, sqlite_hint=is_sqlite_name(record.relative_path)):
            ids.add(primitives.chunk_id(keys[1], chunk))
    return files, ids, size


def test_the_floor_cuts_hashes_and_stores_every_file_of_the_folder(folder: Path, tmp_path: Path) -> None:
    keys = (os.urandom(32), os.urandom(32))
    files, ids, size = _reference_chunks(folder, keys)
    result = run_floor(folder, tmp_path / "packs", workers=2, write=True, keys=keys)
    assert (result.mode, result.files, result.input_bytes) == (WITH_WRITES, files, size)
    assert result.new_chunks == len(ids) and result.chunks >= len(ids)
    written = tree_size(tmp_path / "packs")
    assert (written.files, written.apparent_bytes) == (result.packs, result.stored_bytes)
    # Sealed and compressed: the packs hold less than the input (a quarter of it is text), but not nothing.
    assert 0.3 * size < result.stored_bytes < size
    assert result.wall_seconds > 0 and result.cpu_seconds > 0


def test_cpu_only_seals_the_same_packs_and_writes_none(folder: Path, tmp_path: Path) -> None:
    keys = (os.urandom(32), os.urandom(32))
    written = run_floor(folder, tmp_path / "written", workers=1, write=True, keys=keys)
    sealed = run_floor(folder, tmp_path / "sealed", workers=1, write=False, keys=keys)
    assert sealed.mode == CPU_ONLY
    assert (sealed.chunks, sealed.new_chunks, sealed.stored_bytes) == (
        written.chunks,
        written.new_chunks,
        written.stored_bytes,
    )
    assert not any((tmp_path / "sealed").rglob("*"))


def test_disk_only_writes_that_many_bytes_in_packs(tmp_path: Path) -> None:
    total = 5 * MIB + 123
    result = run_disk_only(tmp_path / "packs", total)
    written = tree_size(tmp_path / "packs")
    assert (result.mode, written.apparent_bytes, written.files, result.packs) == (DISK_ONLY, total, 1, 1)


def test_the_benchmark_runs_the_floor_in_a_process_of_its_own(folder: Path, tmp_path: Path) -> None:
    environment = TOOLS["coffer"].environment(tmp_path)
    log = tmp_path / "floor.log"
    result = measure_floor(folder, tmp_path / "packs", WITH_WRITES, env=environment, log=log)
    assert result.mode == WITH_WRITES and result.files > 0
    assert f"-m benchmarks.ingest.floor {folder}" in log.read_text()
    disk = measure_floor(folder, tmp_path / "disk", DISK_ONLY, env=environment, log=log, disk_bytes=MIB)
    assert disk.stored_bytes == MIB == tree_size(tmp_path / "disk").apparent_bytes
    with pytest.raises(CofferError, match=re.escape(str(log))):
        measure_floor(tmp_path / "no such folder", tmp_path / "none", CPU_ONLY, env=environment, log=log)


def _floor(mode: str, wall: float) -> FloorResult:
    return FloorResult(mode, 2, mode != CPU_ONLY, 10, 1000 * MIB, 100, 90, 900 * MIB, 40, wall, wall * 1.5)


def _full(tool: str, wall: float, round_number: int = 1) -> Run:
    measurement = Measurement(0, wall, wall, 0.0, 100 * MIB, 0.0)
    return Run(FULL, tool, round_number, 1, 10, 1000 * MIB, measurement, 0.0, TreeSize(1, MIB, MIB), MIB)


def test_the_report_sets_the_best_floor_against_each_tools_best_full_backup() -> None:
    floors = [
        _floor(WITH_WRITES, 4.0),
        _floor(WITH_WRITES, 2.0),
        _floor(CPU_ONLY, 1.0),
        _floor(DISK_ONLY, 0.5),
    ]
    runs = [_full("coffer", 4.0), _full("coffer", 2.5, 2), _full("restic", 10.0), _full("borg", 8.0)]
    report = floor_markdown(floors, runs, cores=2)
    assert "the floor is 5.00× restic's full backup (100.0 MiB/s net)" in report
    assert "the floor is 4.00× borg's full backup (125.0 MiB/s net)" in report
    assert "Coffer's full backup reaches 80% of the floor (400.0 MiB/s net)" in report
    assert "per-byte work, CPU only: 1000.0 MiB/s at best" in report
    # The best floor took 3.0 CPU-seconds: 1.5 s on two cores, 666.7 MiB/s, 5.33x borg's 125 MiB/s.
    assert (
        "its 3.00 CPU-seconds on 2 cores busy from end to end and nothing else done: 666.7 MiB/s at most = 5.33× borg's"
        in report
    )
    assert "pack writes only: 2000.0 MiB/s at best" in report
    assert report.count("| per-byte work, packs written |") == 2
    assert floor_markdown([], runs, cores=2) == ""


def test_the_floor_refuses_a_folder_that_is_not_a_backup(tmp_path: Path) -> None:
    with pytest.raises(CofferError):
        run_floor(tmp_path, tmp_path / "packs", workers=1, write=False)
