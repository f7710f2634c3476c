"""Which files a benchmark backup holds: names, domains and sizes in phone-like proportions.

A plan is decided before any byte is written, from the seed alone. Shares are of the data set's bytes:
about three quarters incompressible media (camera roll photos and videos, message attachments, voice
memos, thumbnails), an eighth real SQLite databases, and the rest text (plists, JSON, logs) and raw
bitmaps. What a file holds follows from its name (`kind_of`), so a changed folder can be read back
without a side file.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from benchmarks.dataset.content import random_uuid
from benchmarks.dataset.sqlite_db import DatabaseShape, DayOfUse

KIB = 1 << 10
MIB = 1 << 20
CAMERA_DOMAIN = "CameraRollDomain"
MEDIA_DOMAIN = "MediaDomain"
CAMERA_FOLDER_SIZE = 1000  # IMG_0001 … IMG_1000 in 100APPLE, IMG_1001 … in 101APPLE


class Kind(StrEnum):
    MEDIA = "media"  # incompressible: HEIC, JPEG, MOV, M4A
    BITMAP = "bitmap"  # raw bitmaps and caches, about 2:1 compressible
    PLIST = "plist"
    JSON = "json"
    LOG = "log"
    SQLITE = "sqlite"


@dataclass(frozen=True)
class Database:
    domain: str
    relative_path: str
    share: float  # of the bytes of all databases
    shape: DatabaseShape
    daily: DayOfUse  # the rows a day of use appends, updates and deletes


DATABASES = (
    Database(
        "HomeDomain",
        "Library/SMS/sms.db",
        0.32,
        DatabaseShape("message", 3, 0.05, (100, 2000)),
        DayOfUse(appended=150, updated=40, deleted=5),
    ),
    Database(
        CAMERA_DOMAIN,
        "Media/PhotoData/Photos.sqlite",
        0.2,
        DatabaseShape("ZASSET", 2, 0.2, (16, 120)),
        DayOfUse(appended=30, updated=30, deleted=3),
    ),
    Database(
        "AppDomainGroup-group.net.whatsapp.WhatsApp.shared",
        "ChatStorage.sqlite",
        0.15,
        DatabaseShape("ZWAMESSAGE", 3, 0.05, (100, 2000)),
        DayOfUse(appended=100, updated=20, deleted=2),
    ),
    Database(
        "HealthDomain",
        "Health/healthdb_secure.sqlite",
        0.1,
        DatabaseShape("samples", 1, 0.5, (16, 64)),
        DayOfUse(appended=400, updated=0, deleted=0),
    ),
    Database(
        "AppDomainGroup-group.com.apple.notes",
        "NoteStore.sqlite",
        0.07,
        DatabaseShape("ZICNOTEDATA", 12, 0.3, (500, 8000)),
        DayOfUse(appended=2, updated=5, deleted=1),
    ),
    Database(
        "HomeDomain",
        "Library/AddressBook/AddressBook.sqlitedb",
        0.04,
        DatabaseShape("ABPerson", 2, 0.1, (1000, 8000)),
        DayOfUse(appended=1, updated=3, deleted=0),
    ),
    Database(
        "HomeDomain",
        "Library/Calendar/Calendar.sqlitedb",
        0.04,
        DatabaseShape("CalendarItem", 2, 0, (0, 0)),
        DayOfUse(appended=3, updated=5, deleted=1),
    ),
    Database(
        "HomeDomain",
        "Library/CallHistoryDB/CallHistory.storedata",
        0.02,
        DatabaseShape("ZCALLRECORD", 1, 0, (0, 0)),
        DayOfUse(appended=12, updated=0, deleted=0),
    ),
    Database(
        "AppDomainGroup-group.org.mozilla.ios.Firefox",
        "profile.profile/places.db",
        0.04,
        DatabaseShape("moz_places", 2, 0.02, (100, 1000)),
        DayOfUse(appended=80, updated=60, deleted=0),
    ),
    Database(
        "HomeDomain",
        "Library/Safari/History.db",
        0.02,
        DatabaseShape("history_items", 2, 0, (0, 0)),
        DayOfUse(appended=40, updated=20, deleted=0),
    ),
)
_DATABASE_BY_NAME = {(database.domain, database.relative_path): database for database in DATABASES}

APPS = (
    "net.whatsapp.WhatsApp",
    "com.spotify.client",
    "com.google.chrome.ios",
    "org.mozilla.ios.Firefox",
    "com.burbn.instagram",
    "com.facebook.Messenger",
    "ph.telegra.Telegraph",
    "com.netflix.Netflix",
    "com.ubercab.UberClient",
    "com.google.Maps",
    "com.microsoft.Office.Outlook",
    "com.duolingo.DuolingoMobile",
    "com.strava.stravaride",
    "com.apple.mobilenotes",
    "com.apple.Health",
    "com.apple.weather",
)

_KIND_BY_SUFFIX = {
    ".heic": Kind.MEDIA,
    ".jpg": Kind.MEDIA,
    ".jpeg": Kind.MEDIA,
    ".mov": Kind.MEDIA,
    ".m4a": Kind.MEDIA,
    ".cpbitmap": Kind.BITMAP,
    ".cache": Kind.BITMAP,
    ".plist": Kind.PLIST,
    ".json": Kind.JSON,
    ".log": Kind.LOG,
}

# Fractions of the data set's bytes.
SHARES = {
    "camera photos": 0.31,
    "camera videos": 0.35,
    "message attachments": 0.05,
    "voice memos": 0.01,
    "thumbnails": 0.03,
    "databases": 0.13,
    "plists": 0.02,
    "json": 0.035,
    "logs": 0.025,
    "bitmaps": 0.025,
    "small files": 0.015,
}


@dataclass(frozen=True)
class FileSpec:
    """One planned file; `size` is exact for media and bitmaps and a target for text and databases."""

    domain: str
    relative_path: str
    size: int

    @property
    def kind(self) -> Kind:
        return kind_of(self.domain, self.relative_path)


def kind_of(domain: str, relative_path: str) -> Kind:
    """What a file of the data set holds, from its name."""
    if (domain, relative_path) in _DATABASE_BY_NAME:
        return Kind.SQLITE
    return _KIND_BY_SUFFIX.get(PurePosixPath(relative_path).suffix.lower(), Kind.BITMAP)


def database_at(domain: str, relative_path: str) -> Database:
    return _DATABASE_BY_NAME[(domain, relative_path)]


def camera_number(relative_path: str) -> int:
    """The number in a camera roll name (Media/DCIM/100APPLE/IMG_0042.HEIC -> 42), 0 if there is none."""
    stem = PurePosixPath(relative_path).stem
    return int(stem[4:]) if stem.startswith("IMG_") and stem[4:].isdigit() else 0


class Planner:
    """Makes file specs one at a time; numbering continues from `next_camera_number` and `next_serial`."""

    def __init__(self, rng: random.Random, *, next_camera_number: int = 1, next_serial: int = 1) -> None:
        self.rng = rng
        self.next_camera_number = next_camera_number
        self.next_serial = next_serial  # keeps every generated name unique

    def _serial(self) -> int:
        self.next_serial += 1
        return self.next_serial - 1

    def _camera_path(self, suffix: str) -> str:
        number = self.next_camera_number
        self.next_camera_number += 1
        return f"Media/DCIM/{100 + (number - 1) // CAMERA_FOLDER_SIZE}APPLE/IMG_{number:04d}{suffix}"

    def camera_photo(self) -> FileSpec:
        suffix = ".HEIC" if self.rng.random() < 0.8 else ".JPG"
        return FileSpec(CAMERA_DOMAIN, self._camera_path(suffix), self.rng.randint(1 * MIB, 5 * MIB))

    def camera_video(self, largest: int = 200 * MIB) -> FileSpec:
        size = self.rng.randint(20 * MIB, 200 * MIB)
        return FileSpec(CAMERA_DOMAIN, self._camera_path(".MOV"), max(MIB, min(size, largest)))

    def thumbnail(self) -> FileSpec:
        path = f"Media/PhotoData/Thumbnails/V2/DCIM/100APPLE/IMG_{self._serial():05d}.JPG/5005.JPG"
        return FileSpec(CAMERA_DOMAIN, path, self.rng.randint(20 * KIB, 300 * KIB))

    def message_attachment(self) -> FileSpec:
        serial = self._serial()
        if self.rng.random() < 0.1:
            name, size = f"IMG_{serial:04d}.MOV", self.rng.randint(3 * MIB, 30 * MIB)
        else:
            name, size = f"IMG_{serial:04d}.jpeg", self.rng.randint(100 * KIB, 3 * MIB)
        path = f"Library/SMS/Attachments/{serial % 256:02x}/{serial % 16:02d}/{random_uuid(self.rng)}/{name}"
        return FileSpec(MEDIA_DOMAIN, path, size)

    def voice_memo(self) -> FileSpec:
        serial = self._serial()
        path = f"Media/Recordings/2024{serial % 12 + 1:02d}{serial % 28 + 1:02d} {serial:06d}.m4a"
        return FileSpec(MEDIA_DOMAIN, path, self.rng.randint(500 * KIB, 10 * MIB))

    def _app_domain(self) -> str:
        app = self.rng.choice(APPS)
        return f"AppDomainGroup-group.{app}" if self.rng.random() < 0.3 else f"AppDomain-{app}"

    def plist(self) -> FileSpec:
        serial = self._serial()
        if self.rng.random() < 0.3:
            return FileSpec(
                "HomeDomain", f"Library/Preferences/com.apple.pref{serial}.plist", self._small_text()
            )
        return FileSpec(self._app_domain(), f"Library/Preferences/state{serial}.plist", self._small_text())

    def json(self) -> FileSpec:
        path = f"Library/Application Support/feed{self._serial()}.json"
        return FileSpec(self._app_domain(), path, self.rng.randint(5 * KIB, 500 * KIB))

    def log(self) -> FileSpec:
        path = f"Library/Logs/session{self._serial()}.log"
        return FileSpec(self._app_domain(), path, self.rng.randint(200 * KIB, 4 * MIB))

    def bitmap(self) -> FileSpec:
        if self.rng.random() < 0.1:
            path = f"Library/SpringBoard/LockBackground{self._serial()}.cpbitmap"
            return FileSpec("HomeDomain", path, self.rng.randint(5 * MIB, 10 * MIB))
        path = f"Library/Caches/blob{self._serial()}.cache"
        return FileSpec(self._app_domain(), path, self.rng.randint(50 * KIB, 2 * MIB))

    def small_file(self) -> FileSpec:
        """An entry of an app's URL cache: many of them, each a few kilobytes."""
        suffix = ".json" if self.rng.random() < 0.4 else ".cache"
        path = f"Library/Caches/fsCachedData/{random_uuid(self.rng)}{suffix}"
        return FileSpec(self._app_domain(), path, self.rng.randint(512, 32 * KIB))

    def _small_text(self) -> int:
        # Most preference plists are a few kilobytes; a few app states are large.
        if self.rng.random() < 0.9:
            return self.rng.randint(1 * KIB, 40 * KIB)
        return self.rng.randint(40 * KIB, 1 * MIB)


def fill_budget(budget: float, make: Callable[[], FileSpec]) -> list[FileSpec]:
    """Specs from `make` until their sizes reach `budget` (at least one)."""
    specs = [make()]
    total = specs[0].size
    while total < budget:
        specs.append(make())
        total += specs[-1].size
    return specs


def plan_backup(total_size: int, seed: int) -> list[FileSpec]:
    """The files of a data set of about `total_size` bytes; the same seed and size give the same plan."""
    planner = Planner(random.Random(f"{seed}:plan"))
    budgets = {name: share * total_size for name, share in SHARES.items()}
    # Small data sets still get several videos rather than one that eats the whole budget.
    largest_video = max(MIB, int(budgets["camera videos"] / 3))
    specs = [
        FileSpec(
            database.domain, database.relative_path, max(64 * KIB, int(database.share * budgets["databases"]))
        )
        for database in DATABASES
    ]
    makers: dict[str, Callable[[], FileSpec]] = {
        "camera photos": planner.camera_photo,
        "camera videos": lambda: planner.camera_video(largest_video),
        "message attachments": planner.message_attachment,
        "voice memos": planner.voice_memo,
        "thumbnails": planner.thumbnail,
        "plists": planner.plist,
        "json": planner.json,
        "logs": planner.log,
        "bitmaps": planner.bitmap,
        "small files": planner.small_file,
    }
    for name, make in makers.items():
        specs += fill_budget(budgets[name], make)
    return specs
