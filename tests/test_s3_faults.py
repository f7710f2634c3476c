"""Backups through a fault-injecting proxy in front of a real S3 server: connections dropped before and after
the server acted, 503 and 500 replies, slow replies, and finally an outage. Each run either completes with
every byte right or fails with one clear line and a repository `check` passes; never a snapshot that
references a missing pack. The tally is printed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from conftest import CofferCli, sample_library
from ios_helpers import DEVICE, BuiltBackup, assert_same_tree, build_backup
from s3server import FaultPlan, FaultProxy, SeaweedServer, set_pack_sizes

# Random faults on a third of the requests (each plan seeded, so a run is reproducible), then an outage:
# the server stops answering after the first 15 requests of the backup, in the middle of its uploads. For
# the outage each request is tried twice only (boto3's AWS_MAX_ATTEMPTS), so it is reported in seconds.
RUNS: list[tuple[FaultPlan, dict[str, str | None]]] = [
    *((FaultPlan(probability=0.35, seed=seed, delay_seconds=0.1), {}) for seed in range(1, 4)),
    (FaultPlan(schedule=[None] * 15, probability=1.0, kinds=("drop_request",)), {"AWS_MAX_ATTEMPTS": "2"}),
]


def test_backups_through_faults_never_damage_a_snapshot(
    s3_coffer: CofferCli, s3: SeaweedServer, tmp_path: Path
) -> None:
    s3_coffer.inline("init")
    set_pack_sizes(s3_coffer, 256 << 10, 512 << 10)
    faults: Counter[str] = Counter()
    completed: dict[str, BuiltBackup] = {}
    failures: list[str] = []
    check_errors: list[str] = []  # what `check` found after each run: must stay empty
    for run, (plan, environment) in enumerate(RUNS):
        built = build_backup(tmp_path / f"backup-{run}" / DEVICE.udid, sample_library(40 + run))
        with FaultProxy(s3.s3_address, plan) as proxy:
            through_proxy = {**environment, "AWS_ENDPOINT_URL": proxy.endpoint_url}
            backup = s3_coffer("--json", "import", built.path, env=through_proxy, expect=None)
        faults.update(proxy.faults)
        if backup.returncode == 0:
            completed[backup.json()["id"]] = built
        else:
            message = backup.stderr.strip().splitlines()
            assert message and message[-1].startswith("coffer: "), backup.describe()
            failures.append(message[-1])
        check_errors += s3_coffer.inline("--json", "check", expect=None).json()["errors"]

    total = sum(faults.values())
    damaged = {error.split()[1] for error in check_errors if error.startswith("snapshot ")}
    print(
        f"\nfault proxy: {len(RUNS)} backups, {total} faults injected ({dict(sorted(faults.items()))}), "
        f"{len(completed)} completed with all data correct, {len(failures)} failed cleanly "
        f"({'; '.join(failures)}), {len(damaged)} snapshots damaged"
    )
    assert not check_errors
    snapshots = {s["id"] for s in s3_coffer.inline("--json", "snapshots").json()}
    assert snapshots == set(completed), "every completed run left its snapshot, no failed one did"
    for snapshot_id, built in completed.items():
        target = tmp_path / f"export-{snapshot_id[:8]}"
        s3_coffer.inline("export", snapshot_id, target)
        assert_same_tree(built.path, target)
    assert s3_coffer.inline("--json", "check", "--read-data").json()["ok"]

    assert total >= 50
    assert len(completed) >= 2 and failures, "both outcomes happened"
