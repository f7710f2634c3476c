"""The mark a partial export leaves in its folder, so that importing it again yields a partial snapshot.

A folder written by `coffer export --categories` (or from a partial snapshot) holds only some
categories; imported as if complete, it would count as a full backup and let retention forget
real ones. The mark is one extra key in Info.plist, which Finder and iTunes carry unread (hosts
add keys of their own there, such as "iTunes Settings"); the folder stays a valid backup.
"""

from __future__ import annotations

import plistlib
from collections.abc import Iterable
from typing import Any

from agent.ios.folder import INFO_PLIST
from agent.ios.plists import load_plist_dict

PARTIAL_KEY = "Coffer Partial Categories"


def mark_partial(info_plist: bytes, categories: Iterable[str]) -> bytes:
    """Info.plist with the mark naming the categories the folder holds (XML, as a host writes it)."""
    info = load_plist_dict(info_plist, INFO_PLIST)
    info[PARTIAL_KEY] = sorted(categories)
    return plistlib.dumps(info)


def is_marked_partial(info: dict[str, Any]) -> bool:
    """Whether a parsed Info.plist carries the mark (whatever its value: only its presence counts)."""
    return PARTIAL_KEY in info
