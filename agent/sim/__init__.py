"""A simulated iPhone: usbmuxd, lockdownd and the backup services, serving generated content."""

from __future__ import annotations
