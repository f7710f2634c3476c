"""com.apple.mobilebackup2, device side: DeviceLink, the backup and restore engines, ChangePassword."""

from __future__ import annotations
