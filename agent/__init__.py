"""Coffer: end-to-end encrypted, deduplicating backups of iPhones and iPads."""

from __future__ import annotations

__version__ = "0.1.0"
