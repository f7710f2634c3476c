"""Staging of device files: encrypted under a key that only the running process holds, cleaned after a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.device.staging import PREFIX, StagingArea
from agent.errors import StorageError


def test_staged_bytes_are_not_on_disk_in_clear_and_come_back_intact(tmp_path: Path) -> None:
    area = StagingArea(tmp_path)
    secret = b"a private message from the phone " * 1000
    writer = area.writer(area.new_file())
    for start in range(0, len(secret), 4096):
        writer.write(secret[start : start + 4096])
    staged = writer.finish()
    on_disk = staged.path.read_bytes()
    assert b"private message" not in on_disk
    assert b"".join(area.read(staged)) == secret
    assert area.peak_bytes >= len(secret)
    area.discard(staged)
    assert not staged.path.exists()
    area.close()
    assert not area.directory.exists()


def test_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"{PREFIX}999999-x"
    dead.mkdir()
    (dead / "00000001").write_bytes(b"noise nobody can read any more")
    mine = tmp_path / f"{PREFIX}{os.getpid()}-y"
    mine.mkdir()
    area = StagingArea(tmp_path)
    assert not dead.exists() and mine.exists()
    area.close()


def test_a_staged_file_cut_short_or_altered_is_refused(tmp_path: Path) -> None:
    """Cut at any record boundary (the local disk lost the tail), inside a record, or with bytes appended: the
    read raises StorageError naming the file instead of handing back a shorter file as if it were whole."""
    area = StagingArea(tmp_path)
    writer = area.writer(area.new_file())
    boundaries = [0]
    for index in range(4):
        writer.write(bytes([index]) * 3000)
        boundaries.append(area.peak_bytes)  # the bytes staged so far: where each record ends
    staged = writer.finish()
    whole = staged.path.read_bytes()
    assert len(whole) > boundaries[-1]  # the record that seals the count follows the last piece
    damaged = [whole[:cut] for cut in boundaries] + [whole[: boundaries[2] + 100], whole[:-1], whole + b"\0" * 20]
    for data in damaged:
        staged.path.write_bytes(data)
        with pytest.raises(StorageError, match=f"{staged.path.name} is truncated or damaged"):
            b"".join(area.read(staged))
    staged.path.write_bytes(whole)
    assert b"".join(area.read(staged)) == b"".join(bytes([index]) * 3000 for index in range(4))
    area.close()


def test_an_empty_staged_file_reads_back_empty(tmp_path: Path) -> None:
    area = StagingArea(tmp_path)
    staged = area.writer(area.new_file()).finish()
    assert list(area.read(staged)) == []
    area.close()
