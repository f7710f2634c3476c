"""The ingest benchmark: Coffer, restic and borg backing up the same backup folder, measured in one run."""

from __future__ import annotations
