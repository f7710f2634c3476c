"""Turning iOS backups into snapshots and back: import, export, extract."""
