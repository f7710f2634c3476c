"""The import files cache: unchanged files are not read again; changed or pruned ones are."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import CofferCli, sample_library
from ios_helpers import build_backup


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
