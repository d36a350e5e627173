"""The failover drills (offline/verification/failover_drill.py) on the servers stood up from the
synthesized Aurora assembly, as the Aurora main job stands them up: what `python -m offline drill
--store aurora-postgresql` runs in CI, checked here by what it counts, not by its timing."""

from __future__ import annotations

import pytest

from offline.emulator.postgres import server_processes
from offline.verification.failover_drill import (
    PRIMARY,
    SECONDARIES,
    Failover,
    drill_world,
    failover_checks,
    judged,
    planned_switchover,
    unplanned_failover,
)

pytestmark = pytest.mark.e2e


def test_a_switchover_loses_nothing_a_failover_counts_its_loss_and_readers_stay_local() -> None:
    with drill_world() as world:
        root = world.db.root
        names = [c.name for c in failover_checks(world.env)]
        assert world.db.server(PRIMARY).primary, "the drills start from the deployed primary"
        # As deployed (resolved): every writer's DB_HOST is the global writer endpoint, and nothing in a
        # secondary's functions' environment names the primary region (it moves).
        for region in (PRIMARY, *SECONDARIES):
            assert world.env.deployment.function(region, "writer").environment["DB_HOST"] == world.global_endpoint
        for region in SECONDARIES:
            for kind in ("writer", "reader"):
                environment = world.env.deployment.function(region, kind).environment
                assert not [k for k, v in environment.items() if PRIMARY in v], (region, kind, environment)
        planned = planned_switchover(world, SECONDARIES[0], writes=20)
        unplanned = unplanned_failover(world, load_seconds=0.5)

    assert names[0] == f"planned switchover: {PRIMARY} -> {SECONDARIES[0]}"
    assert (planned.old_primary, planned.new_primary, planned.acknowledged) == (PRIMARY, SECONDARIES[0], 20)
    assert planned.lost == 0, "a planned switchover waits for the standbys: nothing acknowledged is lost"
    assert planned.reads_ok == {PRIMARY: 20, SECONDARIES[0]: 20, SECONDARIES[1]: 20}, "old primary rejoined"
    judged(planned, lossless=True)
    judged(unplanned, lossless=False)

    assert unplanned.old_primary == SECONDARIES[0] and unplanned.new_primary != SECONDARIES[0]
    assert unplanned.acknowledged > 0 and 0 <= unplanned.lost <= unplanned.acknowledged
    assert set(unplanned.reads_ok) == {PRIMARY, SECONDARIES[1]}, "the crashed primary is not read"
    assert all(n == unplanned.acknowledged - unplanned.lost for n in unplanned.reads_ok.values())
    for result in (planned, unplanned):
        for region, calls in result.readers_kms_regions.items():
            assert calls and set(calls) == {region}, f"{result.name}: {region}'s reader called KMS in {set(calls)}"
        assert result.seconds_to_first_write > 0
        # The new primary region's writer, never redeployed, followed the primary.
        assert result.promotion_to_first_write is not None and result.promotion_to_first_write >= 0
        assert result.follow["acknowledged"] >= 3 and not result.follow.get("lost")
        assert not result.follow.get("written twice") and not result.follow.get("refused but written")
        # EVERY region's writer, never redeployed, followed the primary through the unchanged global
        # writer endpoint (over the VPC peering): the regions that are neither the old nor the new primary too.
        assert set(result.promotion_to_first_write_by_region) == {PRIMARY, *SECONDARIES}
        assert all(s >= 0 for s in result.promotion_to_first_write_by_region.values())
        for region, follow in result.follow_by_region.items():
            assert follow["acknowledged"] >= 3 and not follow.get("lost"), (result.name, region, follow)
            assert not follow.get("written twice") and not follow.get("refused but written"), (region, follow)
            assert not [k for k in follow if k.startswith("other")], (region, follow)
    refused = sum(n for f in planned.follow_by_region.values() for k, n in f.items() if k.startswith("refused "))
    assert refused >= 1, f"the change refused no write (retryable): {planned.follow_by_region}"
    old_writer = "writes through the global writer endpoint: acknowledged"
    assert any(old_writer in note for note in planned.notes), planned.notes
    assert server_processes(root) == [], "no postgres process outlives the drill"


def test_a_lost_write_fails_a_planned_switchover_and_keeps_its_figures() -> None:
    measured = Failover(
        "planned switchover", PRIMARY, SECONDARIES[0], 20, 1, 0.5, 0.01, {PRIMARY: [PRIMARY]}, {PRIMARY: 19}
    )
    with pytest.raises(AssertionError, match="lost 1 of 20 acknowledged writes") as failed:
        judged(measured, lossless=True)
    assert failed.value.outcome.figures["lost"] == 1  # type: ignore[attr-defined]
    assert any("19 records decrypted" in line for line in failed.value.outcome.lines)  # type: ignore[attr-defined]
    elsewhere = Failover(
        "unplanned failover", PRIMARY, SECONDARIES[0], 20, 0, 0.5, None, {PRIMARY: ["eu-west-1"]}, {PRIMARY: 20}
    )
    with pytest.raises(AssertionError, match=r"the reader of us-east-2 called KMS in \['eu-west-1'\]"):
        judged(elsewhere, lossless=False)


def test_a_write_lost_or_written_twice_while_following_the_primary_fails_the_drill() -> None:
    measured = Failover("planned switchover", PRIMARY, SECONDARIES[0], 20, 0, 0.5, 0.01, {}, {PRIMARY: 20})
    measured.readers_kms_regions = {PRIMARY: [PRIMARY]}
    measured.follow = {"acknowledged": 3, "refused ReadOnlyRegion": 5, "refused but written": 0, "written twice": 1}
    with pytest.raises(AssertionError, match="written twice: 1"):
        judged(measured, lossless=True)
    measured.follow = {"acknowledged": 3, "refused ReadOnlyRegion": 5, "refused but written": 2}
    with pytest.raises(AssertionError, match="refused but written: 2"):
        judged(measured, lossless=True)
    measured.follow = {"acknowledged": 3, "refused ReadOnlyRegion": 5, "refused but written": 0}
    judged(measured, lossless=True)
