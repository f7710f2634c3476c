"""A seeded generator of iOS-like backup folders (media, text, SQLite) and of a day of changes to one."""

from __future__ import annotations
