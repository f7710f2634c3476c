"""com.apple.springboardservices, device side: app icons for Info.plist (ios-protocol.md section 3.5)."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib

from agent.sim.framing import read_plist, write_plist

ICON_SIZE = 60  # points of a home-screen icon at 1x


def icon_png(bundle_id: str) -> bytes:
    """A solid-colour square PNG, its colour derived from the bundle ID."""
    red, green, blue = hashlib.sha1(bundle_id.encode()).digest()[:3]
    row = b"\x00" + bytes((red, green, blue)) * ICON_SIZE  # filter byte 0, then RGB pixels
    header = struct.pack(">IIBBBBB", ICON_SIZE, ICON_SIZE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * ICON_SIZE))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


async def serve_springboard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer icon requests until the host closes the connection."""
    while True:
        request = await read_plist(reader)
        if request is None:
            return
        if isinstance(request, dict) and request.get("command") == "getIconPNGData":
            await write_plist(writer, {"pngData": icon_png(str(request.get("bundleId", "")))})
        else:
            await write_plist(writer, {"Error": "UnsupportedCommand"})
