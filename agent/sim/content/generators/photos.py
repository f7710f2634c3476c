"""Photos: the camera roll (Media/DCIM), its thumbnails and the Photos.sqlite library."""

from __future__ import annotations

import random
import re
import sqlite3
from dataclasses import dataclass

from agent.sim.content.builder import DAY, DeviceBuilder
from agent.sim.content.generators.sqlite_common import core_data_scaffold, sync_primary_keys
from agent.sim.content.text import CITIES, cocoa_seconds, guid

DOMAIN = "CameraRollDomain"
LIBRARY = "Media/PhotoData/Photos.sqlite"
MB = 1_000_000

_ENTITIES = {
    "Asset": "ZASSET",
    "AdditionalAssetAttributes": "ZADDITIONALASSETATTRIBUTES",
    "Moment": "ZMOMENT",
}
_DCIM_NAME = re.compile(r"Media/DCIM/\d{3}APPLE/IMG_(\d{4})\.(\w+)$")

# extension -> (uniform type identifier, width, height)
_FORMATS = {
    "HEIC": ("public.heic", 4032, 3024),
    "JPG": ("public.jpeg", 4032, 3024),
    "PNG": ("public.png", 1170, 2532),
    "MOV": ("com.apple.quicktime-movie", 1920, 1080),
}
_VIDEO_BYTES_PER_SECOND = 2 * MB


@dataclass(frozen=True)
class Asset:
    number: int
    extension: str
    size: int
    created: int
    uuid: str

    @property
    def path(self) -> str:
        return f"Media/DCIM/{100 + self.number // 1000}APPLE/IMG_{self.number:04d}.{self.extension}"

    @property
    def thumbnail_path(self) -> str:
        return f"Media/PhotoData/Thumbnails/V2/{self.path.removeprefix('Media/')}/5005.JPG"

    @property
    def is_video(self) -> bool:
        return self.extension == "MOV"


def generate(b: DeviceBuilder) -> None:
    rng = b.rng("photos")
    profile = b.profile
    sizes = [_photo_size(rng, profile.photo_scale) for _ in range(profile.photos)]
    sizes += [(extension, size) for extension, size in _video_sizes(rng, b)]
    rng.shuffle(sizes)
    created = sorted(b.timestamp() for _ in sizes)
    assets = [
        Asset(number, extension, size, when, guid(rng))
        for number, ((extension, size), when) in enumerate(zip(sizes, created, strict=True), start=1)
    ]
    for asset in assets:
        _put_asset(b, rng, asset)
    b.put_sqlite(DOMAIN, LIBRARY, lambda db: _create_library(db, rng, assets))
    b.directory(DOMAIN, "Media/DCIM/.MISC/Incoming")
    b.directory(DOMAIN, "Media/PhotoData/CPLAssets")
    for marker in (
        "Media/PhotoData/protection",
        "Media/PhotoData/momentanalysis",
        "Media/PhotoData/suspendnebulad",
    ):
        b.put_bytes(DOMAIN, marker, b"")


def evolve(b: DeviceBuilder) -> None:
    """Take today's photos (and a video on big profiles), delete the oldest photo."""
    if not b.exists(DOMAIN, LIBRARY):
        return
    rng = b.rng("photos")
    existing = sorted(
        (int(match.group(1)), f.relative_path)
        for f in b.files_under(DOMAIN, "Media/DCIM/")
        if (match := _DCIM_NAME.match(f.relative_path))
    )
    number = existing[-1][0] + 1 if existing else 1
    shots = [_photo_size(rng, b.profile.photo_scale) for _ in range(b.profile.daily_photos)]
    low = b.profile.video_size[0]
    shots += [("MOV", rng.randint(low, 4 * low)) for _ in range(b.profile.daily_videos)]
    new_assets = []
    for offset, (extension, size) in enumerate(shots):
        new_assets.append(Asset(number + offset, extension, size, b.timestamp(), guid(rng)))
    for asset in new_assets:
        _put_asset(b, rng, asset)
    deleted = existing[0][1] if len(existing) > 2 else None
    if deleted is not None:
        b.remove(DOMAIN, deleted)
        b.remove(DOMAIN, f"Media/PhotoData/Thumbnails/V2/{deleted.removeprefix('Media/')}")
    b.edit_sqlite(DOMAIN, LIBRARY, lambda db: _update_library(db, rng, new_assets, deleted))


def _photo_size(rng: random.Random, scale: float) -> tuple[str, int]:
    roll = rng.random()
    if roll < 0.7:
        extension, low, high = "HEIC", 1 * MB, 4 * MB
    elif roll < 0.95:
        extension, low, high = "JPG", 2 * MB, 5 * MB
    else:
        extension, low, high = "PNG", MB // 3, 3 * MB // 2  # screenshots
    return extension, int(rng.randint(low, high) * scale)


def _video_sizes(rng: random.Random, b: DeviceBuilder) -> list[tuple[str, int]]:
    """Split the profile's video budget into clips within its size range."""
    count, (low, high) = b.profile.videos, b.profile.video_size
    weights = [rng.uniform(0.2, 1.0) for _ in range(count)]
    total = sum(weights)
    return [("MOV", min(high, max(low, int(b.profile.video_budget * weight / total)))) for weight in weights]


def _put_asset(b: DeviceBuilder, rng: random.Random, asset: Asset) -> None:
    b.put_stream(DOMAIN, asset.path, asset.size, mtime=asset.created)
    b.put_stream(DOMAIN, asset.thumbnail_path, rng.randint(18_000, 60_000), mtime=asset.created)


def _create_library(db: sqlite3.Connection, rng: random.Random, assets: list[Asset]) -> None:
    core_data_scaffold(db, _ENTITIES, guid(rng))
    db.executescript(
        """
        CREATE TABLE ZASSET (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZKIND INTEGER,
            ZFAVORITE INTEGER, ZHIDDEN INTEGER, ZTRASHEDSTATE INTEGER, ZWIDTH INTEGER, ZHEIGHT INTEGER,
            ZMOMENT INTEGER, ZDATECREATED TIMESTAMP, ZMODIFICATIONDATE TIMESTAMP, ZADDEDDATE TIMESTAMP,
            ZDURATION FLOAT, ZLATITUDE FLOAT, ZLONGITUDE FLOAT, ZDIRECTORY VARCHAR, ZFILENAME VARCHAR,
            ZUNIFORMTYPEIDENTIFIER VARCHAR, ZUUID VARCHAR);
        CREATE TABLE ZADDITIONALASSETATTRIBUTES (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER,
            ZASSET INTEGER, ZORIGINALFILESIZE INTEGER, ZORIGINALWIDTH INTEGER, ZORIGINALHEIGHT INTEGER,
            ZORIGINALFILENAME VARCHAR, ZTIMEZONENAME VARCHAR, ZEXIFTIMESTAMPSTRING VARCHAR);
        CREATE TABLE ZMOMENT (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, ZSTARTDATE TIMESTAMP,
            ZENDDATE TIMESTAMP, ZTITLE VARCHAR, ZCACHEDCOUNT INTEGER, ZUUID VARCHAR);
        CREATE INDEX ZASSET_ZDATECREATED ON ZASSET (ZDATECREATED);
        CREATE INDEX ZASSET_ZMOMENT ON ZASSET (ZMOMENT);
        CREATE INDEX ZADDITIONALASSETATTRIBUTES_ZASSET ON ZADDITIONALASSETATTRIBUTES (ZASSET);
        """
    )
    _insert_assets(db, rng, assets)
    sync_primary_keys(db, _ENTITIES)


def _update_library(
    db: sqlite3.Connection, rng: random.Random, assets: list[Asset], deleted: str | None
) -> None:
    if deleted is not None:
        directory, filename = deleted.removeprefix("Media/").rsplit("/", 1)
        db.execute(
            "DELETE FROM ZADDITIONALASSETATTRIBUTES WHERE ZASSET IN "
            "(SELECT Z_PK FROM ZASSET WHERE ZDIRECTORY = ? AND ZFILENAME = ?)",
            (directory, filename),
        )
        db.execute("DELETE FROM ZASSET WHERE ZDIRECTORY = ? AND ZFILENAME = ?", (directory, filename))
    _insert_assets(db, rng, assets)
    sync_primary_keys(db, _ENTITIES)


def _insert_assets(db: sqlite3.Connection, rng: random.Random, assets: list[Asset]) -> None:
    """Insert assets and group them into one moment per day."""
    moment_ids: dict[int, int] = {}
    for asset in assets:
        day = asset.created // DAY
        if day not in moment_ids:
            cursor = db.execute(
                "INSERT INTO ZMOMENT (Z_ENT, Z_OPT, ZSTARTDATE, ZENDDATE, ZTITLE, ZCACHEDCOUNT, ZUUID) "
                "VALUES (3, 1, ?, ?, ?, 0, ?)",
                (cocoa_seconds(day * DAY), cocoa_seconds(day * DAY + DAY - 1), rng.choice(CITIES), guid(rng)),
            )
            moment_ids[day] = cursor.lastrowid or 0
        uti, width, height = _FORMATS[asset.extension]
        directory, filename = asset.path.removeprefix("Media/").rsplit("/", 1)
        when = cocoa_seconds(asset.created)
        cursor = db.execute(
            "INSERT INTO ZASSET (Z_ENT, Z_OPT, ZKIND, ZFAVORITE, ZHIDDEN, ZTRASHEDSTATE, ZWIDTH, ZHEIGHT, ZMOMENT,"
            " ZDATECREATED, ZMODIFICATIONDATE, ZADDEDDATE, ZDURATION, ZLATITUDE, ZLONGITUDE, ZDIRECTORY,"
            " ZFILENAME, ZUNIFORMTYPEIDENTIFIER, ZUUID) VALUES (1, 1, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                1 if asset.is_video else 0,
                int(rng.random() < 0.1),
                width,
                height,
                moment_ids[day],
                when,
                when,
                when,
                asset.size / _VIDEO_BYTES_PER_SECOND if asset.is_video else 0.0,
                rng.uniform(45.8, 47.8),
                rng.uniform(5.9, 10.5),
                directory,
                filename,
                uti,
                asset.uuid,
            ),
        )
        db.execute(
            "INSERT INTO ZADDITIONALASSETATTRIBUTES (Z_ENT, Z_OPT, ZASSET, ZORIGINALFILESIZE, ZORIGINALWIDTH,"
            " ZORIGINALHEIGHT, ZORIGINALFILENAME, ZTIMEZONENAME, ZEXIFTIMESTAMPSTRING)"
            " VALUES (2, 1, ?, ?, ?, ?, ?, 'Europe/Zurich', ?)",
            (cursor.lastrowid, asset.size, width, height, filename, str(asset.created)),
        )
    db.execute("UPDATE ZMOMENT SET ZCACHEDCOUNT = (SELECT COUNT(*) FROM ZASSET WHERE ZMOMENT = ZMOMENT.Z_PK)")
