"""The lockdown services a backup and a restore touch, device side (ios-protocol.md section 3)."""

from __future__ import annotations
