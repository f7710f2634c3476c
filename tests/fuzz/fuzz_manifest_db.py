"""Fuzz the Manifest.db reader: any bytes either read as rows or raise BackupFormatError; the rows are then
sorted into records and skips (never an exception), and the records can be written into a new Manifest.db (the
subset export) and read back."""

from __future__ import annotations

from harness import fuzz, instrumented

with instrumented():
    from agent.errors import CofferError
    from agent.ios.manifest_db import manifest_db_bytes, read_manifest_rows
    from agent.ios.safety import check_rows, safe_relative_path


def test_one_input(data: bytes) -> None:
    try:
        rows = read_manifest_rows(data)
    except CofferError:
        return
    checked = check_rows(rows)
    for record in checked.records:
        safe_relative_path(record.domain, record.relative_path)
    again = read_manifest_rows(manifest_db_bytes(checked.records))
    if len(again) != len(checked.records):
        raise AssertionError(f"{len(checked.records)} records written, {len(again)} read back")


if __name__ == "__main__":
    fuzz(test_one_input)
