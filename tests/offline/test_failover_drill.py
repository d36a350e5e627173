"""The failover drills on real PostgreSQL servers (offline/verification/failover_drill.py): what `python -m offline
drill --store aurora-postgresql` runs in CI, checked here by what it counts, not by its timing."""

from __future__ import annotations

from offline.emulator.postgres import server_processes
from offline.verification.failover_drill import (
    PRIMARY,
    SECONDARIES,
    drill_world,
    planned_switchover,
    unplanned_failover,
)


def test_a_switchover_loses_nothing_a_failover_counts_its_loss_and_readers_stay_local() -> None:
    with drill_world() as world:
        root = world.db.root
        planned = planned_switchover(world, SECONDARIES[0], writes=20)
        unplanned = unplanned_failover(world, load_seconds=0.5)

    assert (planned.old_primary, planned.new_primary, planned.acknowledged) == (PRIMARY, SECONDARIES[0], 20)
    assert planned.lost == 0, "a planned switchover waits for the standbys: nothing acknowledged is lost"
    assert planned.reads_ok == {PRIMARY: 20, SECONDARIES[0]: 20, SECONDARIES[1]: 20}, "old primary rejoined"
    assert planned.ok and unplanned.ok, (planned, unplanned)

    assert unplanned.old_primary == SECONDARIES[0] and unplanned.new_primary != SECONDARIES[0]
    assert unplanned.acknowledged > 0 and 0 <= unplanned.lost <= unplanned.acknowledged
    assert set(unplanned.reads_ok) == {PRIMARY, SECONDARIES[1]}, "the crashed primary is not read"
    assert all(n == unplanned.acknowledged - unplanned.lost for n in unplanned.reads_ok.values())
    for result in (planned, unplanned):
        for region, calls in result.readers_kms_regions.items():
            assert calls and set(calls) == {region}, f"{result.name}: {region}'s reader called KMS in {set(calls)}"
        assert result.seconds_to_first_write > 0
    assert server_processes(root) == [], "no postgres process outlives the drill"
