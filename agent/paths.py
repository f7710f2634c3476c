"""Where Coffer keeps host-local files: state (per repository and device), staging, caches.

`COFFER_STATE_DIR`, `COFFER_STAGING_DIR` and `COFFER_CACHE_DIR` override the XDG defaults
(`~/.local/state/coffer`, `~/.cache/coffer/staging`, `~/.cache/coffer`).
"""

from __future__ import annotations

import os
from pathlib import Path


def _home(*parts: str) -> Path:
    return Path(os.path.expanduser("~")).joinpath(*parts)


def state_root() -> Path:
    if os.environ.get("COFFER_STATE_DIR"):
        return Path(os.environ["COFFER_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME")
    return (Path(base) if base else _home(".local", "state")) / "coffer"


def cache_root() -> Path:
    if os.environ.get("COFFER_CACHE_DIR"):
        return Path(os.environ["COFFER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else _home(".cache")) / "coffer"


def staging_root() -> Path:
    if os.environ.get("COFFER_STAGING_DIR"):
        return Path(os.environ["COFFER_STAGING_DIR"])
    return cache_root() / "staging"
