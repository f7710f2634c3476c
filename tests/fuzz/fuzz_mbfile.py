"""Fuzz the MBFile decoder (the `file` column of Manifest.db): any bytes either decode or raise
BackupFormatError, and whatever decodes re-encodes (the re-keyed restore path) to a record that decodes to the
same fields."""

from __future__ import annotations

from harness import fuzz, instrumented

with instrumented():
    from agent.errors import CofferError
    from agent.ios.mbfile import decode_mbfile, encode_mbfile
    from agent.ios.records import FileRecord


def test_one_input(data: bytes) -> None:
    try:
        fields = decode_mbfile(data)
        FileRecord.from_row("0" * 40, "HomeDomain", fields["relative_path"], 1, data)
    except CofferError:
        return
    again = decode_mbfile(encode_mbfile(**fields))
    if again != fields:
        raise AssertionError(f"an MBFile does not survive re-encoding: {fields!r} became {again!r}")


if __name__ == "__main__":
    fuzz(test_one_input)
