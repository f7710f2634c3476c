"""Staging of device files: encrypted under a key that only the running process holds, cleaned after a crash."""

from __future__ import annotations

import os
from pathlib import Path

from agent.device.staging import PREFIX, StagingArea


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
