"""Fuzz the Manifest.db reader: any bytes either read as rows or raise BackupFormatError; the rows are then
sorted into records and skips (never an exception), and the records can be written into a new Manifest.db (the
subset export) and read back."""

from __future__ import annotations

from harness import fuzz, instrumented

with instrumented():
    from agent.errors import CofferError
    from agent.ios.manifest_db import manifest_db_bytes, read_manifest_rows
    from agent.ios.safety import CheckedRows, iter_checked_rows, safe_relative_path


def test_one_input(data: bytes) -> None:
    try:
        rows = read_manifest_rows(data)
    except CofferError:
        return
    checked = CheckedRows()
    records = list(iter_checked_rows(rows, checked))
    if len(records) + len(checked.skipped) != len(rows):
        raise AssertionError(f"{len(rows)} rows, {len(records)} records and {len(checked.skipped)} skips")
    for record in records:
        safe_relative_path(record.domain, record.relative_path)
    again = read_manifest_rows(manifest_db_bytes(records))
    if len(again) != len(records):
        raise AssertionError(f"{len(records)} records written, {len(again)} read back")


if __name__ == "__main__":
    fuzz(test_one_input)
