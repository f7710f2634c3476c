"""Where a backup domain lives on the phone (ios-protocol.md section 7.1).

Uploads name each file by its absolute device path (pymobiledevice3's `--only` filters match it),
and app containers get stable per-device UUIDs shared with installation_proxy.
"""

from __future__ import annotations

import uuid

from agent.ios.domains import CONTAINER_ROOTS, FIXED_ROOTS, MOBILE, container_root


def container_uuid(udid: str, identifier: str) -> str:
    """The UUID of an app's (or group's) container on one device: stable, distinct per device."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{udid}/{identifier}")).upper()


def domain_root(udid: str, domain: str) -> str:
    """The absolute directory a domain's relative paths start from."""
    if domain in FIXED_ROOTS:
        return FIXED_ROOTS[domain]
    root = container_root(domain)
    if root is not None:
        prefix = next(p for p in CONTAINER_ROOTS if domain.startswith(p))
        return f"{root}/{container_uuid(udid, domain.removeprefix(prefix))}"
    return MOBILE


def device_path(udid: str, domain: str, relative_path: str) -> str:
    """The absolute path of a file on the device, as an upload names it."""
    root = domain_root(udid, domain)
    return f"{root}/{relative_path}" if relative_path else root


def is_system_domain(domain: str) -> bool:
    """Whether a domain lives outside the user's data (`/private/var/mobile`): those are the
    "system files" a restore only writes when asked to (`RestoreSystemFiles`)."""
    return not domain_root("", domain).startswith(MOBILE)
