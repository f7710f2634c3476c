"""Realistic, deterministic content of a simulated iPhone, persisted in a device state folder.

`DeviceFilesystem` (in `model.py`) is the entry point; the rest of the package generates,
evolves and restores what it holds.
"""

from __future__ import annotations

from agent.sim.content.model import (
    PROFILE_NAMES,
    DeviceFilesystem,
    EvolveReport,
    FileKind,
    RestoredEntry,
    SimFile,
)

__all__ = ["PROFILE_NAMES", "DeviceFilesystem", "EvolveReport", "FileKind", "RestoredEntry", "SimFile"]
