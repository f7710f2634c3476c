"""Where each backup domain lives on the device (ios-protocol.md section 7.1).

Both sides need it: the simulated device names uploads by their absolute device path, and
the backup host recognises a file's domain and relative path from that name — verified
against the fileID, which is sha1("domain-relativePath"), so a guess is either proven right
or not used.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.ios.records import file_id_for

MOBILE = "/private/var/mobile"
FIXED_ROOTS = {
    "HomeDomain": MOBILE,
    "CameraRollDomain": MOBILE,
    "MediaDomain": MOBILE,
    "KeyboardDomain": MOBILE,
    "TonesDomain": MOBILE,
    "HomeKitDomain": MOBILE,
    "HealthDomain": f"{MOBILE}/Library",
    "BooksDomain": f"{MOBILE}/Media/Books",
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
CONTAINER_ROOTS = {
    "AppDomain-": f"{MOBILE}/Containers/Data/Application",
    "AppDomainGroup-": f"{MOBILE}/Containers/Shared/AppGroup",
    "AppDomainPlugin-": f"{MOBILE}/Containers/Data/PluginKitPlugin",
    "SysContainerDomain-": "/private/var/containers/Data/System",
    "SysSharedContainerDomain-": "/private/var/containers/Shared/SystemGroup",
}


def container_root(domain: str) -> str | None:
    for prefix, root in CONTAINER_ROOTS.items():
        if domain.startswith(prefix):
            return root
    return None


def _canonical(device_path: str) -> str:
    return device_path if device_path.startswith("/private/") else "/private" + device_path


def locate(file_id: str, device_path: str, known_domains: Iterable[str] = ()) -> tuple[str, str] | None:
    """The (domain, relativePath) whose fileID is `file_id`, read off an upload's device path.

    Fixed-root domains are tried directly; app and system containers (whose folder is a UUID)
    are tried against `known_domains`. None when nothing matches the fileID.
    """
    path = _canonical(device_path)
    for domain, root in FIXED_ROOTS.items():
        if path.startswith(root + "/"):
            relative = path[len(root) + 1 :]
            if file_id_for(domain, relative) == file_id:
                return domain, relative
    for domain in known_domains:
        root = container_root(domain)
        if root is None or not path.startswith(root + "/"):
            continue
        _container, _, relative = path[len(root) + 1 :].partition("/")
        if file_id_for(domain, relative) == file_id:
            return domain, relative
    return None
