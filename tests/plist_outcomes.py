"""What reading a property list gives, in a form two readers' results can be compared by: the value with every
type spelled out (True is not 1, -0.0 is not 0.0, NaN equals NaN), shared and cyclic containers numbered, or
the fact that it failed."""

from __future__ import annotations

import plistlib
import struct
from collections.abc import Callable
from typing import Any

from agent import _bplist
from agent.ios.plists import BINARY_MAGIC

Outcome = tuple[str, Any]


def canonical(value: Any, seen: dict[int, int] | None = None) -> Any:
    """`value` as nested tuples of (type name, content); a container met again (shared, or one that holds
    itself) is ("ref", the number of its first visit), so a tree of 8**40 nodes stays as small as its plist."""
    seen = {} if seen is None else seen
    kind = type(value)
    if kind is dict or kind is list:
        if id(value) in seen:
            return ("ref", seen[id(value)])
        seen[id(value)] = len(seen)
        if kind is list:
            return ("list", tuple(canonical(item, seen) for item in value))
        return ("dict", tuple((canonical(key, seen), canonical(item, seen)) for key, item in value.items()))
    if kind is float:
        return ("float", struct.pack(">d", value))
    if kind is plistlib.UID:
        return ("uid", value.data)
    return (kind.__name__, value)


def outcome(loader: Callable[[bytes], Any], data: bytes) -> Outcome:
    """("value", the canonical result) or ("error", the exception's type name)."""
    try:
        return ("value", canonical(loader(data)))
    except (ValueError, TypeError, RecursionError, MemoryError) as error:  # what plistlib raises for bad input
        return ("error", type(error).__name__)


def disagreement(data: bytes) -> str | None:
    """Why the native reader and plistlib disagree on `data` (None when they agree), the native one standing in
    for plistlib where `load_plist` puts it (behind the binary magic). Both may refuse it, for
    reasons of their own; the native reader may also refuse, with RecursionError, what nests deeper than its
    bound (plistlib's is Python's recursion limit)."""
    native = outcome(_bplist.loads if data.startswith(BINARY_MAGIC) else plistlib.loads, data)
    reference = outcome(plistlib.loads, data)
    if native == reference or native[0] == reference[0] == "error":
        return None
    if native == ("error", "RecursionError"):
        return None
    return f"native {native!r:.300} but plistlib {reference!r:.300}"


def expanded_size(root: Any) -> int:
    """The reference for the native reader's measure (`loads_measured`): what `root` would be written out as a
    tree (containers 1 plus their items, a dictionary's values; strings and data their length, at least 1;
    anything else 1), each shared container sized once; -1 when a container holds itself."""
    if type(root) is not dict and type(root) is not list:
        return len(root) or 1 if type(root) in (str, bytes) else 1
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()  # containers entered but not finished: the path from the root
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = list(node.values()) if type(node) is dict else node
        if finished:
            open_ids.discard(id(node))
            total = 1
            for child in children:
                if type(child) in (dict, list):
                    total += sizes[id(child)]
                else:
                    total += len(child) or 1 if type(child) in (str, bytes) else 1
            sizes[id(node)] = min(total, 1 << 62)
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_ids:
            return -1
        open_ids.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if type(child) in (dict, list) and id(child) not in sizes)
    return sizes[id(root)]
