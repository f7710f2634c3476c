"""Length-prefixed property-list frames: the framing of lockdownd and of every plist-speaking service.

A frame is a big-endian u32 length followed by that many bytes, an XML or binary plist (ios-protocol.md
sections 2.1 and 4.1). Clients send either encoding, so frames are parsed whatever they hold.
"""

from __future__ import annotations

import asyncio
import plistlib
import struct
from typing import Any

MAX_FRAME_SIZE = 128 * 1024 * 1024  # the limit pymobiledevice3 enforces on its side
_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """The peer sent something that is not a valid frame; the connection cannot continue."""


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One frame's payload, or None when the peer closed the connection between frames."""
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as error:
        if error.partial:
            raise FrameError("the connection closed inside a frame header") from error
        return None
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME_SIZE:
        raise FrameError(f"a {length}-byte frame exceeds the {MAX_FRAME_SIZE}-byte limit")
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError as error:
        raise FrameError("the connection closed inside a frame") from error


async def read_plist(reader: asyncio.StreamReader) -> Any:
    """The next frame parsed as a plist, or None at a clean end of the connection."""
    payload = await read_frame(reader)
    if payload is None:
        return None
    try:
        return plistlib.loads(payload)
    except Exception as error:  # plistlib raises many types for malformed input
        raise FrameError(f"a frame is not a property list ({error!r})") from error


def plist_frame(value: Any, *, binary: bool = False) -> bytes:
    """`value` serialised (XML unless `binary`) with its length prefix."""
    payload = plistlib.dumps(value, fmt=plistlib.FMT_BINARY if binary else plistlib.FMT_XML, sort_keys=False)
    return _LENGTH.pack(len(payload)) + payload


async def write_plist(writer: asyncio.StreamWriter, value: Any, *, binary: bool = False) -> None:
    """Send one plist frame and wait until the transport has taken it."""
    writer.write(plist_frame(value, binary=binary))
    await writer.drain()
