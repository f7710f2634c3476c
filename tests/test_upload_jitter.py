"""`--upload-jitter`: random waits before pack and index uploads, off by default, never before a snapshot."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import CofferCli, sample_library
from ios_helpers import build_backup

from agent.storage.jitter import JitteredStorage
from agent.storage.local import LocalStorage


def test_jitter_delays_packs_and_index_only(tmp_path: Path) -> None:
    storage = JitteredStorage(LocalStorage(tmp_path), 0.2)
    waits = {}
    for name in ("data/aa/1", "index/2", "snapshots/3", "data/aa/4", "index/5", "keys/6"):
        start = time.perf_counter()
        storage.put(name, b"x")
        waits[name] = time.perf_counter() - start
    assert all(waits[n] < 0.05 for n in ("snapshots/3", "keys/6"))
    assert sum(waits[n] for n in ("data/aa/1", "index/2", "data/aa/4", "index/5")) > 0.05
    assert storage.get("index/2") == b"x"


def test_import_with_jitter_and_a_negative_value(coffer: CofferCli, tmp_path: Path) -> None:
    coffer.init()
    build_backup(tmp_path / "one", sample_library(1))
    coffer("--upload-jitter", "0.05", "import", tmp_path / "one")
    coffer("check", "--read-data")
    assert "cannot be negative" in coffer("import", tmp_path / "one", "--upload-jitter", "-1", expect=2).stderr
