"""Regenerate the seed corpora under tests/fuzz/corpus/<harness>/ (run from the repository root:
`python tests/fuzz/make_corpus.py`). Seeds are small, valid inputs made with Coffer's own writers, plus a few
odd ones, so the fuzzer starts from the formats' real shapes."""

from __future__ import annotations

import hashlib
import plistlib
import random
import sqlite3
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from ios_helpers import DEVICE, FIXED_DATE, info_plist_bytes  # noqa: E402

from agent.ios.manifest_db import SCHEMA  # noqa: E402
from agent.ios.mbfile import encode_mbfile  # noqa: E402
from agent.ios.plists import build_manifest_plist, build_status_plist  # noqa: E402
from agent.ios.records import FileRecord  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "corpus"


def _write(harness: str, seeds: list[bytes]) -> None:
    folder = CORPUS / harness
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for seed in seeds:
        (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


def _small_manifest_db(records: list[FileRecord]) -> bytes:
    """A Manifest.db with the device schema in 512-byte pages, so seeds stay a few KiB."""
    connection = sqlite3.connect(":memory:")
    connection.execute("PRAGMA page_size = 512")
    for statement in SCHEMA:
        connection.execute(statement)
    connection.executemany("INSERT INTO Files VALUES (?, ?, ?, ?, ?)",
                           ((r.file_id, r.domain, r.relative_path, r.flags, r.blob) for r in records))
    connection.commit()
    data = connection.serialize()
    connection.close()
    return data


def main() -> None:
    key = b"\x03\x00\x00\x00" + bytes(range(40))
    mbfiles = [
        encode_mbfile(relative_path="Library/SMS/sms.db", mode=0o100644, size=4096, mtime=1_700_000_000),
        encode_mbfile(relative_path="Library", mode=0o40755),
        encode_mbfile(relative_path="Library/Links/latest", mode=0o120755, target="../SMS/sms.db"),
        encode_mbfile(relative_path="Media/x.HEIC", mode=0o100644, size=9, wrapped_key=key,
                      extended_attributes=plistlib.dumps({"com.apple.x": b"1"}, fmt=plistlib.FMT_BINARY),
                      digest=bytes(20)),
    ]
    _write("mbfile", mbfiles)
    plists = [
        info_plist_bytes(),
        build_status_plist(date=FIXED_DATE, backup_uuid="5E1A4F2C-0000-4000-8000-000000000001"),
        build_manifest_plist(device=DEVICE, backup_keybag=b"keybag", manifest_key=bytes(44), date=FIXED_DATE),
        plistlib.dumps({"Date": FIXED_DATE, "Data": b"\x00\x01", "Real": 1.5, "List": [1, "two", True]}),
    ]
    _write("plist", plists)
    every_type = {"Date": FIXED_DATE.replace(tzinfo=None), "Data": b"\x00" * 20, "Reals": [1.5, -0.0, 1e300],
                  "Ints": [0, -1, 1 << 63, 255], "UID": plistlib.UID(7), "Text": "caf\u00e9 \U0001f600",
                  "Empty": [{}, "", b""], "Bools": [True, False]}
    _write("bplist", [*mbfiles, *(p for p in plists if p.startswith(b"bplist00")),
                      plistlib.dumps(every_type, fmt=plistlib.FMT_BINARY)])
    records = [
        FileRecord.create("HomeDomain", "", 2),
        FileRecord.create("HomeDomain", "Library/SMS/sms.db", 1, size=4096),
        FileRecord.create("CameraRollDomain", "Media/DCIM/100APPLE/IMG_0001.HEIC", 1, size=9, wrapped_key=key),
        FileRecord.create("HomeDomain", "Library/Links/latest", 4, target="../SMS/sms.db"),
    ]
    _write("manifest_db", [_small_manifest_db(records), _small_manifest_db(records[:1]), _small_manifest_db([])])
    rng = random.Random(15)
    _write("folder", [bytes([n]) + rng.randbytes(rng.randint(16, 160)) for n in range(8)])


if __name__ == "__main__":
    main()
