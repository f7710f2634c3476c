"""The native binary plist reader (agent._bplist) against plistlib, whose reader it replaces for binary plists:
the same objects for every plist plistlib writes, and the same verdict on damaged and hostile bytes."""

from __future__ import annotations

import datetime
import plistlib
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plist_outcomes import canonical, disagreement, expanded_size, outcome

from agent import _bplist
from agent.errors import BackupFormatError
from agent.ios.mbfile import decode_mbfile, encode_mbfile
from agent.ios.plists import load_plist

KEY = b"\x03\x00\x00\x00" + bytes(range(40))
MBFILES = [
    encode_mbfile(relative_path="Library/SMS/sms.db", mode=0o100644, size=4096, mtime=1_700_000_000),
    encode_mbfile(relative_path="Media/\u00e9t\u00e9 \U0001f600.HEIC", mode=0o100644, size=9, wrapped_key=KEY,
                  extended_attributes=plistlib.dumps({"com.apple.x": b"1"}, fmt=plistlib.FMT_BINARY), digest=bytes(20)),
    encode_mbfile(relative_path="Library/Links/latest", mode=0o120755, target="../SMS/sms.db"),
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), (1 << 64) - 1)
    | st.sampled_from([(1 << bits) + delta for bits in (7, 8, 15, 16, 31, 32, 63) for delta in (-1, 0)])
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | st.integers(0, (1 << 64) - 1).map(plistlib.UID)
    | st.datetimes(min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30))
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_every_plist_plistlib_writes_reads_as_plistlib_reads_it(value: Any) -> None:
    data = plistlib.dumps({"root": value}, fmt=plistlib.FMT_BINARY, sort_keys=False)
    assert canonical(_bplist.loads(data)) == canonical(plistlib.loads(data))


@settings(max_examples=400, deadline=None)
@given(values, st.data())
def test_damaged_plists_get_plistlibs_verdict(value: Any, data: st.DataObject) -> None:
    """Bytes changed, cut or added anywhere (the trailer, the offset table, sizes, references included): the
    same objects as plistlib, or a refusal where plistlib refuses."""
    plist = bytearray(plistlib.dumps([value], fmt=plistlib.FMT_BINARY))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(plist) - 1))
        edit = data.draw(st.sampled_from(["byte", "cut", "insert"]))
        if edit == "byte":
            plist[at] = data.draw(st.integers(0, 255))
        elif edit == "cut":
            del plist[at : at + data.draw(st.integers(1, 8))]
        else:
            plist[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    assert disagreement(bytes(plist)) is None


@pytest.mark.parametrize("record", range(len(MBFILES)))
def test_every_single_byte_change_of_a_real_record_gets_plistlibs_verdict(record: int) -> None:
    original = MBFILES[record]
    for at in range(len(original)):
        for byte in (0x00, 0x01, 0x0F, 0x10, 0x13, 0x20, 0x5F, 0x80, 0xA1, 0xD1, 0xFF, original[at] ^ 0x01):
            changed = bytearray(original)
            changed[at] = byte
            assert disagreement(bytes(changed)) is None, (at, byte)


def test_objects_that_reach_the_end_of_the_file_or_one_byte_past_it_get_plistlibs_verdict() -> None:
    """An object may lie anywhere, the trailer included, so one can end exactly at the last byte, or claim one byte
    more. Every token is placed in the trailer's six unused bytes, followed by a one-byte size of 0 to 40 where
    it takes one (data, strings, arrays and dictionaries fit up to 29 bytes there): a reader that counted one byte
    too many would read past the buffer."""
    for position in range(6):
        for token in range(256):
            for size in range(41):
                pad = bytes([token, 0x10, size, 0, 0, 0])[: 6 - position]
                trailer = bytes(position) + pad + struct.pack(">BBQQQ", 1, 1, 1, 0, 8)
                data = b"bplist00" + bytes([9 + position]) + trailer
                assert disagreement(data) is None, (position, hex(token), size)


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_the_expansion_measured_while_reading_is_the_trees(value: Any, data: st.DataObject) -> None:
    """Damaged plists included, whose references may now share containers or make cycles."""
    plist = bytearray(plistlib.dumps([value, [value, value]], fmt=plistlib.FMT_BINARY))
    for _ in range(data.draw(st.integers(0, 3))):
        plist[data.draw(st.integers(8, len(plist) - 1))] = data.draw(st.integers(0, 255))
    try:
        root, expanded = _bplist.loads_measured(bytes(plist))
    except (ValueError, RecursionError):
        return
    assert expanded == expanded_size(root)


def test_a_tree_of_eight_to_the_fortieth_nodes_is_measured_not_walked() -> None:
    # Object i (i < 40) is an array referring to object i + 1 eight times; object 40 is an empty array.
    objects = [b"\xa8" + bytes([index + 1]) * 8 for index in range(40)] + [b"\xa0"]
    offsets = [8 + 9 * index for index in range(41)]
    table = 8 + 9 * 40 + 1
    data = b"bplist00" + b"".join(objects) + b"".join(o.to_bytes(2, "big") for o in offsets)
    data += struct.pack(">6xBBQQQ", 2, 1, 41, 0, table)
    root, expanded = _bplist.loads_measured(data)
    assert expanded == 1 << 62  # the cap: 8**40 is past it
    assert canonical(root) == canonical(plistlib.loads(data))
    with pytest.raises(BackupFormatError, match="expand beyond"):
        load_plist(data, "Info.plist")


def test_shared_and_cyclic_references_resolve_as_in_plistlib() -> None:
    # Objects: 0 = array [1, 1, 0] (a shared string and the array itself), 1 = "ab".
    objects = [b"\xa3\x01\x01\x00", b"\x52ab"]
    offsets = [8, 8 + len(objects[0])]
    table = 8 + sum(map(len, objects))
    data = b"bplist00" + b"".join(objects) + bytes(offsets) + struct.pack(">6xBBQQQ", 1, 1, 2, 0, table)
    native = _bplist.loads(data)
    assert native[0] is native[1] and native[2] is native
    assert canonical(native) == canonical(plistlib.loads(data))
    with pytest.raises(BackupFormatError, match="contains itself"):
        load_plist(data, "a cyclic plist")


@pytest.mark.parametrize("depth", [1, 50, 256])
def test_nesting_within_the_bound_reads_as_plistlib(depth: int) -> None:
    data = _nested(depth)
    assert outcome(_bplist.loads, data) == outcome(plistlib.loads, data)


def test_nesting_past_the_bound_is_refused_with_a_clear_error() -> None:
    with pytest.raises(RecursionError):
        _bplist.loads(_nested(257))
    with pytest.raises(BackupFormatError, match="not a valid property list"):
        load_plist(_nested(100_000), "Info.plist")


def _nested(depth: int) -> bytes:
    """`depth` arrays, each holding the next, the innermost empty."""
    objects = [b"\xa1" + (index + 1).to_bytes(4, "big") for index in range(depth - 1)] + [b"\xa0"]
    offsets, position = [], 8
    for item in objects:
        offsets.append(position)
        position += len(item)
    refs = b"".join(offset.to_bytes(4, "big") for offset in offsets)
    header = b"bplist00" + b"".join(objects)
    return header + refs + struct.pack(">6xBBQQQ", 4, 4, len(objects), 0, position)


def test_mbfile_records_decode_the_same_through_either_reader() -> None:
    for record in MBFILES:
        assert canonical(_bplist.loads(record)) == canonical(plistlib.loads(record))
        assert decode_mbfile(record)["relative_path"] == plistlib.loads(record)["$objects"][2]
