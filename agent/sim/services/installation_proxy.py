"""com.apple.mobile.installation_proxy, device side: `Browse` lists the installed apps (ios-protocol.md 3.4).

Each app carries an `ApplicationSINF` and `iTunesMetadata`, so hosts record it in Info.plist's
`Applications` and ask SpringBoard for its icon, as they do for App Store apps on a phone.
"""

from __future__ import annotations

import asyncio
import hashlib
import plistlib
from typing import Any

from agent.sim.device_paths import container_uuid
from agent.sim.framing import read_plist, write_plist

PAGE_SIZE = 20  # apps per BrowsingApplications message


def app_record(udid: str, bundle_id: str) -> dict[str, Any]:
    """Everything installation_proxy knows about one installed app."""
    name = bundle_id.rsplit(".", 1)[-1].capitalize()
    metadata = {
        "itemName": name,
        "softwareVersionBundleId": bundle_id,
        "bundleShortVersionString": "1.0",
        "artistName": "Coffer Simulated Apps",
        "itemId": int.from_bytes(hashlib.sha1(bundle_id.encode()).digest()[:4], "big"),
    }
    return {
        "CFBundleIdentifier": bundle_id,
        "CFBundleDisplayName": name,
        "CFBundleName": name,
        "CFBundleVersion": "1",
        "CFBundleShortVersionString": "1.0",
        "ApplicationType": "User",
        "Path": f"/private/var/containers/Bundle/Application/{container_uuid(udid, 'bundle:' + bundle_id)}/{name}.app",
        "Container": f"/private/var/mobile/Containers/Data/Application/{container_uuid(udid, bundle_id)}",
        "ApplicationSINF": hashlib.sha512(b"sinf:" + bundle_id.encode()).digest(),
        "iTunesMetadata": plistlib.dumps(metadata, fmt=plistlib.FMT_BINARY),
    }


def browse(udid: str, bundle_ids: list[str], options: dict[str, Any]) -> list[dict[str, Any]]:
    """The apps a Browse with `ClientOptions` returns (every simulated app is a "User" app)."""
    if options.get("ApplicationType", "Any") not in ("User", "Any"):
        return []
    apps = [app_record(udid, bundle_id) for bundle_id in bundle_ids]
    attributes = options.get("ReturnAttributes")
    if attributes:
        apps = [{key: app[key] for key in attributes if key in app} for app in apps]
    return apps


async def serve_installation_proxy(
    udid: str, bundle_ids: list[str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer installation_proxy commands until the host closes the connection."""
    while True:
        request = await read_plist(reader)
        if request is None:
            return
        if not isinstance(request, dict) or request.get("Command") != "Browse":
            command = request.get("Command") if isinstance(request, dict) else None
            await write_plist(
                writer, {"Error": "UnknownCommand", "ErrorDescription": f"unsupported: {command}"}
            )
            continue
        apps = browse(udid, bundle_ids, request.get("ClientOptions") or {})
        for start in range(0, len(apps), PAGE_SIZE):
            page = apps[start : start + PAGE_SIZE]
            await write_plist(writer, {
                "Status": "BrowsingApplications",
                "CurrentIndex": start,
                "CurrentAmount": len(page),
                "Total": len(apps),
                "CurrentList": page,
            })  # fmt: skip
        await write_plist(writer, {"Status": "Complete"})
