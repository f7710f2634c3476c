"""Device profiles: how much of everything a simulated phone holds.

| profile | files | size | for |
| --- | --- | --- | --- |
| tiny | dozens | < 5 MB | unit tests |
| small | a few hundred | 20-50 MB | integration tests, the demo |
| medium | thousands | ~1 GB | realistic runs |
| large | thousands | ~4 GB | benchmarks |
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import UsageError

MB = 1_000_000


@dataclass(frozen=True)
class Profile:
    name: str
    photos: int
    photo_scale: float  # multiplies realistic photo sizes (HEIC 1-4 MB, JPG 2-5 MB)
    videos: int
    video_budget: int  # bytes shared among the videos, each kept within `video_size`
    video_size: tuple[int, int]
    messages: int
    attachments: int
    contacts: int
    events: int
    notes: int
    calls: int
    voicemails: int
    recordings: int
    health_samples: int
    history_visits: int
    chat_messages: int  # third-party messenger
    third_party_apps: int  # installed from the catalogue in apps.py
    layout_share: float  # share of the real-phone layout's files included
    layout_size_cap: int | None  # cap on a layout file's size; None keeps real sizes
    daily_photos: int  # what one evolve adds
    daily_videos: int
    daily_messages: int


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="tiny",
            photos=2,
            photo_scale=0.12,
            videos=0,
            video_budget=0,
            video_size=(0, 0),
            messages=40,
            attachments=2,
            contacts=12,
            events=8,
            notes=4,
            calls=10,
            voicemails=1,
            recordings=1,
            health_samples=60,
            history_visits=20,
            chat_messages=30,
            third_party_apps=2,
            layout_share=0.02,
            layout_size_cap=16_000,
            daily_photos=1,
            daily_videos=0,
            daily_messages=6,
        ),
        Profile(
            name="small",
            photos=7,
            photo_scale=1.0,
            videos=1,
            video_budget=5 * MB,
            video_size=(3 * MB, 6 * MB),
            messages=600,
            attachments=8,
            contacts=80,
            events=60,
            notes=25,
            calls=120,
            voicemails=3,
            recordings=2,
            health_samples=1500,
            history_visits=300,
            chat_messages=400,
            third_party_apps=4,
            layout_share=0.25,
            layout_size_cap=100_000,
            daily_photos=3,
            daily_videos=0,
            daily_messages=25,
        ),
        Profile(
            name="medium",
            photos=190,
            photo_scale=1.0,
            videos=5,
            video_budget=320 * MB,
            video_size=(10 * MB, 200 * MB),
            messages=4000,
            attachments=60,
            contacts=350,
            events=400,
            notes=120,
            calls=800,
            voicemails=12,
            recordings=10,
            health_samples=12000,
            history_visits=2500,
            chat_messages=5000,
            third_party_apps=8,
            layout_share=1.0,
            layout_size_cap=None,
            daily_photos=8,
            daily_videos=1,
            daily_messages=60,
        ),
        Profile(
            name="large",
            photos=700,
            photo_scale=1.0,
            videos=16,
            video_budget=1500 * MB,
            video_size=(10 * MB, 200 * MB),
            messages=15000,
            attachments=220,
            contacts=900,
            events=1500,
            notes=400,
            calls=3000,
            voicemails=30,
            recordings=30,
            health_samples=40000,
            history_visits=8000,
            chat_messages=20000,
            third_party_apps=10,
            layout_share=1.0,
            layout_size_cap=None,
            daily_photos=15,
            daily_videos=1,
            daily_messages=120,
        ),
    )
}

PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(
            f"unknown device profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}"
        ) from None
