"""Creating a device: run every content generator once, in a fixed order, into a new catalogue."""

from __future__ import annotations

import hashlib

from agent.sim.content.builder import DAY, DeviceBuilder
from agent.sim.content.catalogue import Catalogue
from agent.sim.content.generators import (
    apps,
    calendars,
    calls,
    contacts,
    everyday,
    health,
    keychain,
    layout,
    messages,
    notes,
    photos,
    safari,
    settings,
    voice_memos,
    wallet,
)
from agent.sim.content.profiles import Profile
from agent.sim.content.state import StateStore

# The layout comes last: it fills in the real phone's skeleton around what the others wrote.
GENERATORS = (
    photos.generate,
    messages.generate,
    notes.generate,
    contacts.generate,
    calendars.generate,
    calls.generate,
    voice_memos.generate,
    health.generate,
    keychain.generate,
    safari.generate,
    wallet.generate,
    everyday.generate,
    settings.generate,
    apps.generate,
    layout.generate,
)

_EPOCH = 1_704_067_200  # 2024-01-01: device clocks start within half a year of it
_FIRST_INODE = 20_000


def generate_device(store: StateStore, profile: Profile, seed: int) -> Catalogue:
    offset = int.from_bytes(hashlib.sha256(f"coffer-sim-clock\x00{seed}".encode()).digest()[:4], "big") % (
        180 * DAY
    )
    catalogue = Catalogue(profile=profile.name, seed=seed, clock=_EPOCH + offset, next_inode=_FIRST_INODE)
    with DeviceBuilder(store, catalogue, profile, run=("create",), window=365 * DAY) as builder:
        for generate in GENERATORS:
            generate(builder)
    return catalogue
