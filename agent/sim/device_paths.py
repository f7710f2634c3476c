"""Where a backup domain lives on the phone (ios-protocol.md section 7.1).

Uploads name each file by its absolute device path (pymobiledevice3's `--only` filters match it),
and app containers get stable per-device UUIDs shared with installation_proxy.
"""

from __future__ import annotations

import uuid

_MOBILE = "/private/var/mobile"
_FIXED_ROOTS = {
    "HomeDomain": _MOBILE,
    "CameraRollDomain": _MOBILE,
    "MediaDomain": _MOBILE,
    "KeyboardDomain": _MOBILE,
    "TonesDomain": _MOBILE,
    "HomeKitDomain": _MOBILE,
    "HealthDomain": f"{_MOBILE}/Library",
    "BooksDomain": f"{_MOBILE}/Media/Books",
    "KeychainDomain": "/private/var/Keychains",
    "WirelessDomain": "/private/var/wireless",
    "SystemPreferencesDomain": "/private/var/preferences",
    "ManagedPreferencesDomain": "/private/var/Managed Preferences",
    "MobileDeviceDomain": "/private/var/MobileDevice",
    "InstallDomain": "/private/var/installd",
    "DatabaseDomain": "/private/var/db",
    "RootDomain": "/private/var/root",
    "ProtectedDomain": "/private/var/protected",
}
_CONTAINER_ROOTS = {
    "AppDomain-": f"{_MOBILE}/Containers/Data/Application",
    "AppDomainGroup-": f"{_MOBILE}/Containers/Shared/AppGroup",
    "AppDomainPlugin-": f"{_MOBILE}/Containers/Data/PluginKitPlugin",
    "SysContainerDomain-": "/private/var/containers/Data/System",
    "SysSharedContainerDomain-": "/private/var/containers/Shared/SystemGroup",
}


def container_uuid(udid: str, identifier: str) -> str:
    """The UUID of an app's (or group's) container on one device: stable, distinct per device."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{udid}/{identifier}")).upper()


def domain_root(udid: str, domain: str) -> str:
    """The absolute directory a domain's relative paths start from."""
    if domain in _FIXED_ROOTS:
        return _FIXED_ROOTS[domain]
    for prefix, root in _CONTAINER_ROOTS.items():
        if domain.startswith(prefix):
            return f"{root}/{container_uuid(udid, domain.removeprefix(prefix))}"
    return _MOBILE


def device_path(udid: str, domain: str, relative_path: str) -> str:
    """The absolute path of a file on the device, as an upload names it."""
    root = domain_root(udid, domain)
    return f"{root}/{relative_path}" if relative_path else root


def is_system_domain(domain: str) -> bool:
    """Whether a domain lives outside the user's data (`/private/var/mobile`): those are the
    "system files" a restore only writes when asked to (`RestoreSystemFiles`)."""
    return not domain_root("", domain).startswith(_MOBILE)
