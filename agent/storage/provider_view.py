"""What the storage provider sees: a keyless survey of a repository (`coffer debug storage-view`).

Everything here comes through the `Storage` interface without any key: object names, sizes,
modification times, S3 object tags and user metadata, and the stored bytes themselves. That
is what a storage provider, or anyone who can read the bucket, has. For each object it
measures whether anything is in clear (a JSON document and its fields, printable text, runs of
zero bytes, framing shared by every object of a kind) and whether the bytes look random (a
byte-frequency chi-square, compressibility with zstd). It then sums this up per kind of
object, per category tag and per burst of writes that ends in a snapshot.

Every test is set so that an object of truly random bytes trips it with probability at most
about 1e-8 (the bound is given at each test), so a flag is evidence, not noise. Objects
smaller than `MIN_TESTED_SIZE` are too small for the statistical tests (and counted as such);
the structural tests still apply to them. An object that cannot be read or parsed is counted
and reported, never fatal.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import zstandard

from agent.errors import StorageError
from agent.storage.base import ObjectInfo, Storage
from agent.storage.cache import CachedStorage

MIN_TESTED_SIZE = 512  # below this, byte statistics say little; the goal is that no object is smaller
SAMPLE_WINDOW = 1 << 20  # objects up to 3 windows are read whole, larger ones at their start, middle and end
FALSE_ALARM = 1e-8  # chance that a random object trips a test: about 1e-4 over 10,000 objects
# Wilson–Hilferty z of the chi-square statistic. Nominally z = 6 is p ≈ 1e-9; with only 2 expected
# counts per byte value (512-byte objects) the discrete statistic has a heavier tail, measured at
# about 2.5× the nominal rate at p = 1e-4, so nominal 1e-9 keeps a random object's false alarm near 1e-8.
CHI_SQUARE_Z = 6.0
# Compressing n random bytes to n - 32 or fewer is possible for at most 256^-31 of all inputs (there
# are not more shorter outputs), so a saving of 32 bytes is proof of structure, whatever the size.
COMPRESSIBLE_BYTES = 32
FRAMING_BYTES = 4  # bytes every object of a kind shares at its start or end: 2^-32 by chance
_PRINTABLE_CLASS = rb"\t\n\r\x20-\x7e"  # ASCII text
_PRINTABLE_COUNT = 95 + 3
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){12,}")
_IDENTIFIER_KEY = re.compile(r"[0-9a-f]{8,}|.*/.*")  # a map keyed by tags, hashes or object names

KIND_LABELS = {
    "config": "config",
    "keys": "keys/",
    "data": "data/<tag>/ packs",
    "index": "index/",
    "snapshots": "snapshots/",
    "tombstones": "tombstones/",
    "fossils": "fossils/",
    "locks": "locks/",
    "other": "anything else",
}


def padme(length: int) -> int:
    """Padmé's padded length of `length` (Nikitin, Barman, Lueks, Underwood, Hubaux, Ford: "Reducing
    Metadata Leakage from Encrypted Files and Communication with PURBs", PoPETs 2019(4), §4, Algorithm 1,
    doi:10.2478/popets-2019-0056): with E = ⌊log2 L⌋ and S = ⌊log2 E⌋ + 1, clear the low E − S bits,
    rounding up. Only the top S bits of a padded length vary, so it leaks O(log log L) bits, at most 12 %."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1  # ⌊log2 L⌋
    significant = exponent.bit_length()  # ⌊log2 E⌋ + 1
    mask = (1 << (exponent - significant)) - 1
    return (length + mask) & ~mask


def on_padme_class(length: int) -> bool:
    return padme(length) == length


def kind_of(name: str) -> tuple[str, str | None]:
    """(kind, category tag) of an object name; anything unexpected is `other`."""
    if name == "config":
        return "config", None
    top, _, rest = name.partition("/")
    if top == "data":
        tag, _, pack = rest.partition("/")
        return ("data", tag) if tag and pack and "/" not in pack else ("other", None)
    if top in KIND_LABELS and top not in ("config", "other") and rest:
        return top, None
    return "other", None


# --- measuring one object's bytes ---------------------------------------------------------


def run_threshold(sample_length: int, probability: float) -> int:
    """The shortest run of bytes, each of chance `probability`, that random bytes of `sample_length` hold
    with probability at most FALSE_ALARM: at most n·p^r runs of length r start somewhere."""
    return math.ceil((math.log(max(sample_length, 2)) - math.log(FALSE_ALARM)) / -math.log(probability))


def _longest_run(windows: Iterable[bytes], byte_class: bytes, threshold: int) -> bytes:
    """The longest run of bytes of `byte_class` (a regex class) at least `threshold` long, else b""."""
    pattern = re.compile(b"[" + byte_class + b"]{%d,}" % threshold)
    return max((m.group() for w in windows for m in pattern.finditer(w)), key=len, default=b"")


def chi_square_z(sample: bytes) -> float:
    """Byte-frequency chi-square (255 degrees of freedom) as a standard normal z, by Wilson–Hilferty."""
    expected = len(sample) / 256
    counts = Counter(sample)
    statistic = sum((counts.get(b, 0) - expected) ** 2 for b in range(256)) / expected
    k = 255
    return ((statistic / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))


def _json_document(data: bytes) -> Any | None:
    """The JSON object or array an object starts with (trailing bytes, e.g. a checksum, allowed)."""
    text = data.decode("utf-8", errors="replace").lstrip()
    if not text.startswith(("{", "[")):
        return None
    try:
        document, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return document if end >= 8 and document else None


def _blob_length(text: str) -> int | None:
    """The decoded length of a string that is base64 or hex (a key, a sealed box, a hash), else None."""
    if _HEX.fullmatch(text):
        return len(text) // 2
    if _BASE64.fullmatch(text) and len(text) % 4 == 0:
        return len(text) * 3 // 4 - text.count("=")
    return None


def json_fields(document: Any, path: str = "") -> dict[str, dict[str, Any]]:
    """Every leaf of a JSON document by dotted path: a plain value, a list's length or a blob's length."""
    fields: dict[str, dict[str, Any]] = {}
    if isinstance(document, dict):
        for key, value in document.items():
            fields.update(json_fields(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(document, list):
        fields[path or "[]"] = {"type": "list", "items": len(document)}
        for item in document:
            if isinstance(item, dict | list):
                fields.update(json_fields(item, f"{path}[]"))
    elif isinstance(document, str) and (length := _blob_length(document)) is not None:
        fields[path] = {"type": "blob", "bytes": length}
    else:
        value = document if not isinstance(document, str) or len(document) <= 40 else document[:37] + "..."
        fields[path] = {"type": "value", "value": value}
    return fields


def generic_path(path: str) -> str:
    """A field path with map keys that are tags, hashes or names replaced by `*` (snapshot parts per tag)."""
    return ".".join("*" if _IDENTIFIER_KEY.fullmatch(part) else part for part in path.split("."))


@dataclass
class ObjectView:
    """One object as the provider sees it, with what the tests found in it."""

    name: str
    kind: str
    tag: str | None
    size: int
    mtime: float
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    findings: list[dict[str, str]] = field(default_factory=list)
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    tested: bool = False  # large enough for the statistical tests, and read
    error: str | None = None  # why it could not be read
    head: bytes = b""
    tail: bytes = b""

    @property
    def looks_random(self) -> bool | None:
        """False on any finding; True when the statistical tests ran and found nothing; else unknown."""
        if self.findings:
            return False
        return True if self.tested else None

    @property
    def clear_json(self) -> bool:
        return any(f["test"] == "json" for f in self.findings)

    def flag(self, test: str, detail: str) -> None:
        self.findings.append({"test": test, "detail": detail})

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "tag": self.tag,
            "size": self.size,
            "mtime": _iso(self.mtime),
            "on_padme_class": on_padme_class(self.size),
            "looks_random": self.looks_random,
            "clear_json": self.clear_json,
            "findings": self.findings,
            "fields": self.fields,
            "metadata": self.metadata,
            "error": self.error,
        }


def _windows(storage: Storage, info: ObjectInfo) -> tuple[list[bytes], bool]:
    """The bytes to test, and whether they are the whole object."""
    if info.size <= 3 * SAMPLE_WINDOW:
        return [storage.get(info.name)], True
    middle = (info.size - SAMPLE_WINDOW) // 2
    return [storage.get_range(info.name, offset, SAMPLE_WINDOW) for offset in (0, middle, info.size - SAMPLE_WINDOW)], False


def measure(view: ObjectView, windows: list[bytes], whole: bool) -> None:
    """Run every per-object test on the bytes read."""
    sample = b"".join(windows)
    view.head, view.tail = windows[0][:16], windows[-1][-16:]
    if whole and (document := _json_document(sample)) is not None:
        view.fields = json_fields(document)
        view.flag("json", f"a JSON document with {len(view.fields)} fields")
    printable = run_threshold(len(sample), _PRINTABLE_COUNT / 256)
    if text := _longest_run(windows, _PRINTABLE_CLASS, printable):
        view.flag("printable", f"{len(text)} printable bytes in a row (random: < {printable}): {text[:48].decode()!r}")
    zeros = run_threshold(len(sample), 1 / 256)
    if run := _longest_run(windows, rb"\x00", zeros):
        view.flag("zeros", f"{len(run)} zero bytes in a row (random: < {zeros})")
    if len(sample) < MIN_TESTED_SIZE:
        return
    view.tested = True
    z = chi_square_z(sample)
    if z >= CHI_SQUARE_Z:
        view.flag("chi_square", f"byte frequencies far from uniform (z = {z:.1f}, random: < {CHI_SQUARE_Z:.0f})")
    saved = len(sample) - len(zstandard.ZstdCompressor(level=3).compress(sample))
    if saved >= COMPRESSIBLE_BYTES:
        view.flag("compressible", f"zstd saves {saved} of {len(sample)} bytes (random: none)")


def _shared(values: list[bytes], *, from_end: bool) -> int:
    """How many leading (or trailing) bytes every value has in common."""
    if from_end:
        values = [v[::-1] for v in values]
    shortest = min(len(v) for v in values)
    length = 0
    while length < shortest and len({v[length] for v in values}) == 1:
        length += 1
    return length


def flag_framing(views: list[ObjectView]) -> None:
    """Flag bytes that every object of a kind shares at its start or end (a magic, a version, a length)."""
    by_kind: dict[str, list[ObjectView]] = defaultdict(list)
    for view in views:
        if view.error is None and len(view.head) >= FRAMING_BYTES:
            by_kind[view.kind].append(view)
    for kind, members in by_kind.items():
        if len(members) < 2:
            continue
        for label, values, from_end in (("start", [m.head for m in members], False), ("end", [m.tail for m in members], True)):
            shared = _shared(values, from_end=from_end)
            if shared >= FRAMING_BYTES:
                common = values[0][-shared:] if from_end else values[0][:shared]
                for member in members:
                    member.flag("framing", f"{shared} bytes at its {label} as in all {len(members)} {kind} objects: {common.hex()}")


# --- the provider's metadata ----------------------------------------------------------------


def _metadata_reader(backend: Storage) -> Callable[[str], dict[str, dict[str, str]]]:
    """Object tags and user metadata (S3); a local folder has none beyond size and time."""
    if not backend.location.startswith("s3://"):
        return lambda name: {}
    from botocore.exceptions import BotoCoreError, ClientError

    from agent.storage.s3 import S3Storage

    assert isinstance(backend, S3Storage)

    def read(name: str) -> dict[str, dict[str, str]]:
        key = backend.prefix + name
        try:
            tagging = backend.client.get_object_tagging(Bucket=backend.bucket, Key=key)
            head = backend.client.head_object(Bucket=backend.bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            return {"error": {"message": str(error)}}
        tags = {t["Key"]: t["Value"] for t in tagging.get("TagSet", [])}
        return {"tags": tags, "user": dict(head.get("Metadata", {}))}

    return read


# --- the survey -------------------------------------------------------------------------------


@dataclass
class StorageView:
    location: str
    objects: list[ObjectView]

    def of_kind(self, kind: str) -> list[ObjectView]:
        return [o for o in self.objects if o.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "thresholds": {
                "min_tested_size": MIN_TESTED_SIZE,
                "false_alarm": FALSE_ALARM,
                "chi_square_z": CHI_SQUARE_Z,
                "compressible_bytes": COMPRESSIBLE_BYTES,
                "framing_bytes": FRAMING_BYTES,
            },
            "totals": _summary(self.objects),
            "kinds": {kind: _summary(self.of_kind(kind)) for kind in KIND_LABELS if self.of_kind(kind)},
            "tags": _tags(self.of_kind("data")),
            "bursts": _bursts(self.objects),
            "snapshots": [
                {"name": o.name, "size": o.size, "mtime": _iso(o.mtime), "visible_lengths": _lengths(o)}
                for o in sorted(self.of_kind("snapshots"), key=lambda o: (o.mtime, o.name))
            ],
            "objects": [o.to_json() for o in self.objects],
        }


def survey(storage: Storage) -> StorageView:
    """List and read every object of `storage` as its provider would, and test each."""
    backend = storage.inner if isinstance(storage, CachedStorage) else storage  # no host cache: only storage
    metadata = _metadata_reader(backend)
    views = []
    for info in sorted(backend.list(), key=lambda i: i.name):
        kind, tag = kind_of(info.name)
        view = ObjectView(info.name, kind, tag, info.size, info.mtime)
        try:
            view.metadata = metadata(info.name)
            windows, whole = _windows(backend, info)
        except StorageError as error:  # gone since the listing, or unreadable: counted, not fatal
            view.error = str(error)
        else:
            measure(view, windows, whole)
        views.append(view)
    flag_framing(views)
    return StorageView(backend.location, views)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _lengths(view: ObjectView) -> dict[str, int]:
    return {path: f["bytes"] for path, f in view.fields.items() if f["type"] == "blob"}


def _summary(objects: list[ObjectView]) -> dict[str, Any]:
    sizes = sorted(o.size for o in objects)
    smallest = min(objects, key=lambda o: (o.size, o.name), default=None)
    plain: dict[str, dict[str, Any]] = {}
    lengths: dict[str, set[int]] = defaultdict(set)
    metadata_keys: dict[str, set[str]] = defaultdict(set)
    for view in objects:
        for path, found in view.fields.items():
            generic = generic_path(path)
            if found["type"] == "blob":
                lengths[generic].add(found["bytes"])
                continue
            entry = plain.setdefault(generic, {"objects": 0, "values": set()})
            entry["objects"] += 1
            entry["values"].add(json.dumps(found.get("value", found.get("items"))))
        for group, pairs in view.metadata.items():
            for key, value in pairs.items():
                metadata_keys[f"{group}.{key}"].add(value)
    return {
        "count": len(objects),
        "bytes": sum(sizes),
        "min": sizes[0] if sizes else None,
        "median": int(statistics.median(sizes)) if sizes else None,
        "max": sizes[-1] if sizes else None,
        "smallest": {"name": smallest.name, "size": smallest.size} if smallest else None,
        "on_padme_class": sum(on_padme_class(s) for s in sizes),
        "below_min_size": sum(s < MIN_TESTED_SIZE for s in sizes),
        "untested": sum(o.looks_random is None for o in objects),
        "not_random": [o.name for o in objects if o.looks_random is False],
        "clear_json": [o.name for o in objects if o.clear_json],
        "unreadable": [o.name for o in objects if o.error is not None],
        "plain_fields": {
            path: {"objects": e["objects"], "values": [json.loads(v) for v in sorted(e["values"])[:8]], "distinct": len(e["values"])}
            for path, e in sorted(plain.items())
        },
        "visible_lengths": {path: sorted(values) for path, values in sorted(lengths.items())},
        "metadata": {
            key: {"distinct": len(values), "values": sorted(values)[:8]} for key, values in sorted(metadata_keys.items())
        },
    }


def _tags(packs: list[ObjectView]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[ObjectView]] = defaultdict(list)
    for pack in packs:
        grouped[str(pack.tag)].append(pack)
    return {
        tag: {
            "packs": len(members),
            "bytes": sum(m.size for m in members),
            "min": min(m.size for m in members),
            "max": max(m.size for m in members),
        }
        for tag, members in sorted(grouped.items())
    }


_WRITE_ORDER = {"data": 0, "index": 1, "tombstones": 1, "fossils": 1, "snapshots": 2}


def _bursts(objects: list[ObjectView]) -> list[dict[str, Any]]:
    """Group packs and index objects by the snapshot that follows them in time: what each backup added.
    Equal times go pack, then index, then snapshot (a backup's write order); storage that keeps whole
    seconds only (S3) may put the start of one backup into the burst of the one before."""
    ordered = sorted((o for o in objects if o.kind in _WRITE_ORDER), key=lambda o: (o.mtime, _WRITE_ORDER[o.kind], o.name))
    bursts: list[dict[str, Any]] = []
    current: list[ObjectView] = []
    for view in ordered:
        if view.kind != "snapshots":
            current.append(view)
            continue
        bursts.append(_burst(view, current))
        current = []
    if current:
        bursts.append(_burst(None, current))
    return bursts


def _burst(snapshot: ObjectView | None, members: list[ObjectView]) -> dict[str, Any]:
    tags = Counter(str(m.tag) for m in members if m.kind == "data")
    return {
        "snapshot": snapshot.name if snapshot else None,
        "mtime": _iso(snapshot.mtime) if snapshot else None,
        "packs": sum(tags.values()),
        "pack_bytes": sum(m.size for m in members if m.kind == "data"),
        "index": sum(m.kind == "index" for m in members),
        "other": sum(m.kind not in ("data", "index") for m in members),
        "tags": dict(sorted(tags.items())),
    }
