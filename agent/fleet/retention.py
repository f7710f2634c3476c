"""Retention after a backup: forget one device's snapshots that the policy no longer keeps.

The same rules as `coffer forget` (agent/repository/retention.py: complete snapshots counted,
partial ones never pushing them out), applied to the device just backed up. It needs a key that can read snapshot headers: a put-only station key cannot,
and then retention is left to an admin host running `coffer forget` (docs/fleet.md). Space is
reclaimed by `coffer prune`, which the daemon never runs (it takes the repository's
exclusive lease).
"""

from __future__ import annotations

import threading

from agent.errors import CofferError
from agent.repository.repository import Repository
from agent.repository.retention import RetentionPolicy, plan
from agent.repository.selection import udid_of
from agent.repository.tombstones import forget_snapshots

# Jobs of one daemon forget one at a time: a snapshot deleted while another job lists the
# repository would make that listing fail.
_FORGETTING = threading.Lock()


class RetentionSkipped(CofferError):
    """The daemon's key cannot apply retention; not a failure of the backup."""


def apply_retention(repository: Repository, policy: RetentionPolicy, udid: str) -> list[str]:
    """Forget the snapshots of `udid` that `policy` does not keep; returns their IDs."""
    if not repository.keys.is_full:
        raise RetentionSkipped(
            f"the {repository.keys.kind} key of this station cannot read snapshots: "
            "run `coffer forget` from an admin host to apply retention"
        )
    with _FORGETTING:
        entries = [entry for entry in repository.snapshots() if udid_of(entry) == udid]
        forget = plan(entries, policy).forget
        forget_snapshots(repository, [entry.snapshot_id for entry in forget])
    return [entry.snapshot_id for entry in forget]
