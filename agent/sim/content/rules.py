"""Per-path facts a device decides on its own: protection class, encrypted-only, file mode.

The encrypted-only list follows Apple ("Back up and restore managed devices": saved
passwords, Wi-Fi settings, website history, Health data and call history exist only in
encrypted backups; ios-protocol.md section 7.2). A real device applies it through each
domain's `relativePathsToOnlyBackupEncrypted`.
"""

from __future__ import annotations

from agent.sim.content.entries import FileKind

FILE_MODE = 0o100644
DIRECTORY_MODE = 0o40755
SYMLINK_MODE = 0o120755

# (domain, relative-path prefix); "" covers the whole domain.
ENCRYPTED_ONLY: tuple[tuple[str, str], ...] = (
    ("HealthDomain", ""),
    ("KeychainDomain", ""),
    ("HomeDomain", "Library/CallHistoryDB/"),
    ("HomeDomain", "Library/Safari/History.db"),
    ("SystemPreferencesDomain", "SystemConfiguration/com.apple.wifi.plist"),
    ("SystemPreferencesDomain", "com.apple.wifi.known-networks.plist"),
)

# (domain, relative-path prefix, class), first match wins. Class 3
# (NSFileProtectionCompleteUntilFirstUserAuthentication) is the default of iOS; the
# secure health store is class 1 (Complete); many system databases are class 4 (None).
_PROTECTION_CLASSES: tuple[tuple[str, str, int], ...] = (
    ("HealthDomain", "Health/healthdb_secure", 1),
    ("HomeDomain", "Library/Mail/", 1),
    ("KeychainDomain", "", 3),
    ("HomeDomain", "Library/SMS/sms.db", 4),
    ("HomeDomain", "Library/AddressBook/", 4),
    ("HomeDomain", "Library/Calendar/", 4),
    ("HomeDomain", "Library/CallHistoryDB/", 4),
    ("CameraRollDomain", "Media/PhotoData/Photos.sqlite", 4),
    ("WirelessDomain", "", 4),
    ("SystemPreferencesDomain", "", 4),
)


def is_encrypted_only(domain: str, relative_path: str, kind: FileKind) -> bool:
    """Whether a device leaves this entry out of unencrypted backups (directories always go in)."""
    if kind is FileKind.DIRECTORY:
        return False
    return any(
        domain == rule_domain and relative_path.startswith(prefix) for rule_domain, prefix in ENCRYPTED_ONLY
    )


def protection_class_for(domain: str, relative_path: str, kind: FileKind) -> int:
    if kind is FileKind.DIRECTORY:
        return 0
    for rule_domain, prefix, protection_class in _PROTECTION_CLASSES:
        if domain == rule_domain and relative_path.startswith(prefix):
            return protection_class
    return 3


def default_mode(kind: FileKind) -> int:
    return {FileKind.FILE: FILE_MODE, FileKind.DIRECTORY: DIRECTORY_MODE, FileKind.SYMLINK: SYMLINK_MODE}[
        kind
    ]
