"""`kill -9` in the middle of a large import, then the same import again: it completes, reuses the packs the
killed run had indexed, and the repository verifies."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import CofferCli
from ios_helpers import Entry, build_backup

from agent.storage.local import LocalStorage

UDID = "00008030-001A2B3C4D5E6F70"
FILES = 64
FILE_SIZE = 4 << 20  # 256 MiB in all, incompressible
PACKS_BEFORE_KILL = 12  # with 4-8 MiB packs and a checkpoint every 4 packs: at least two index checkpoints


def count(repo: Path, prefix: str) -> int:
    try:
        return sum(1 for _ in LocalStorage(repo).list(prefix))
    except OSError:
        return 0


def test_import_resumes_after_kill_9(coffer: CofferCli, tmp_path: Path) -> None:
    entries = tuple(
        Entry("CameraRollDomain", f"Media/DCIM/100APPLE/IMG_{n:04d}.MOV", os.urandom(FILE_SIZE))
        for n in range(FILES)
    )
    folder = build_backup(tmp_path / UDID, entries).path
    coffer.init()
    coffer.set_pack_sizes(4 << 20, 8 << 20)

    process = coffer.start("import", folder)
    try:
        deadline = time.monotonic() + 120
        while count(coffer.repo, "data/") < PACKS_BEFORE_KILL:
            assert process.poll() is None, "the import finished before it could be killed"
            assert time.monotonic() < deadline, "the import uploads nothing"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    packs_at_kill = count(coffer.repo, "data/")
    assert count(coffer.repo, "snapshots/") == 0
    assert count(coffer.repo, "index/") >= 1

    document = coffer("--json", "import", folder).json()
    print(
        f"\nkilled after {packs_at_kill} packs; the second run reused {document['reused_bytes'] >> 20} MiB "
        f"and stored {document['new_bytes'] >> 20} MiB new of {document['bytes'] >> 20} MiB"
    )
    assert document["bytes"] >= FILES * FILE_SIZE  # and Manifest.db
    assert document["reused_bytes"] >= 8 << 20
    assert document["reused_bytes"] + document["new_bytes"] == document["bytes"]

    report = coffer.inline("--json", "check", "--read-data").json()
    assert report["ok"] and report["snapshots"] == 1
    assert report["blobs_read"] >= FILES
