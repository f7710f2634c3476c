"""A day of use: the device clock moves a day on and the generators that change daily run.

New photos (and a video on medium and large), new messages in sms.db, an edited note,
health samples, a new app, a changed preferences plist, and deletions (the oldest photo,
a cached track). The report is the exact difference between the catalogues before and
after, so it lists every entry whose bytes or metadata changed.
"""

from __future__ import annotations

from agent.sim.content.builder import DAY, DeviceBuilder
from agent.sim.content.catalogue import Catalogue
from agent.sim.content.entries import EvolveReport
from agent.sim.content.generators import apps, health, messages, notes, photos, settings
from agent.sim.content.profiles import profile_named
from agent.sim.content.state import StateStore

DAILY = (photos.evolve, messages.evolve, notes.evolve, health.evolve, apps.evolve, settings.evolve)
_ACTIVE_HOURS = 20 * 3600  # today's changes happen within this window before the new clock


def evolve_device(store: StateStore, before: Catalogue, seed: int) -> tuple[Catalogue, EvolveReport]:
    after = before.copy()
    after.clock += DAY
    after.evolutions.append(seed)
    run = ("evolve", len(after.evolutions), seed)
    with DeviceBuilder(store, after, profile_named(after.profile), run=run, window=_ACTIVE_HOURS) as builder:
        for change in DAILY:
            change(builder)
    return after, difference(before, after)


def difference(before: Catalogue, after: Catalogue) -> EvolveReport:
    old, new = before.entries, after.entries
    return EvolveReport(
        added=sorted(new[key].key for key in new.keys() - old.keys()),
        modified=sorted(new[key].key for key in new.keys() & old.keys() if new[key] != old[key]),
        removed=sorted(old[key].key for key in old.keys() - new.keys()),
    )
