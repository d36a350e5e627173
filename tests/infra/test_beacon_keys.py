"""The beacon key (issue 21): a multi-region HMAC key, primary in the primary region and a replica in
every other, retained, its use (GenerateMac with HMAC_SHA_256) only by writer and finder roles, its
administration apart; none without ``beaconFields``."""

from __future__ import annotations

from typing import Any

from cdk_constructs.key_policies import ADMIN_ACTIONS
from tests.infra.helpers import actions, resources, stack_output_ref, statement, statements
from tests.infra.synth import Synthesized

# Pinned (test_logical_ids.py): a changed id replaces the key, and every stored beacon then names nothing.
from tests.infra.test_logical_ids import BEACON_KEY_LOGICAL_ID as BEACON_KEY_ID


def _beacon_key(app: Synthesized, region: str) -> tuple[str, dict[str, Any]]:
    tpl = app.raw(app.stacks.keys[region])
    found = {
        lid: res
        for type_name in ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")
        for lid, res in resources(tpl, type_name).items()
        if lid.startswith("BeaconKey")
    }
    assert len(found) == 1, (region, sorted(found))
    return next(iter(found.items()))


def test_no_beacon_key_without_beacon_fields(default_app: Synthesized) -> None:
    for region, stack in default_app.stacks.keys.items():
        assert stack.beacon_key_arn is None
        assert not [lid for lid in default_app.raw(stack)["Resources"] if lid.startswith("BeaconKey")], region


def test_primary_hmac_key_in_the_primary_region_replicas_elsewhere(beacons_app: Synthesized) -> None:
    app = beacons_app
    primary = app.config.primary_region
    lid, key = _beacon_key(app, primary)
    assert lid == BEACON_KEY_ID
    assert key["Type"] == "AWS::KMS::Key"
    props = key["Properties"]
    assert (props["KeySpec"], props["KeyUsage"], props["MultiRegion"]) == ("HMAC_256", "GENERATE_VERIFY_MAC", True)
    assert "EnableKeyRotation" not in props  # KMS rotates no HMAC key; a rotation would change every beacon
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    replicate = statement(props["KeyPolicy"], "ReplicateOnlyToConfiguredRegions")
    assert replicate["Condition"] == {"StringEquals": {"kms:ReplicaRegion": list(app.config.replica_regions)}}
    for region in app.config.replica_regions:
        lid, replica = _beacon_key(app, region)
        assert lid == BEACON_KEY_ID, region
        assert replica["Type"] == "AWS::KMS::ReplicaKey"
        assert replica["DeletionPolicy"] == "Retain"
        assert replica["Properties"]["PendingWindowInDays"] == app.config.key_pending_window_days
        ref = stack_output_ref(replica["Properties"]["PrimaryKeyArn"])
        assert ref is not None and ref["StackName"] == app.stacks.keys[primary].stack_name, region
        policy = replica["Properties"]["KeyPolicy"]
        assert not [s for s in statements(policy) if "kms:ReplicateKey" in actions(s)], region


def _use_statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements(policy) if actions(s) - set(ADMIN_ACTIONS) - _REGION_SCOPED}


_REGION_SCOPED = {"kms:ReplicateKey", "kms:UpdatePrimaryRegion"}


def test_only_writers_and_finders_may_generate_macs_admins_only_administer(beacons_app: Synthesized) -> None:
    app = beacons_app
    prefix = app.config.stack_prefix
    for region in app.config.regions:
        policy = _beacon_key(app, region)[1]["Properties"]["KeyPolicy"]
        use = _use_statements(policy)
        assert set(use) == {"WritersComputeBeacons", "FindersComputeBeacons"}, region
        for sid, path in (("WritersComputeBeacons", "writer"), ("FindersComputeBeacons", "reader/finder")):
            stmt = use[sid]
            assert actions(stmt) == {"kms:GenerateMac"}  # no VerifyMac: a beacon is compared, not verified
            assert stmt["Condition"]["StringEquals"]["kms:MacAlgorithm"] == "HMAC_SHA_256"
            assert "kms:CallerAccount" in stmt["Condition"]["StringEquals"]
            pattern = stmt["Condition"]["ArnLike"]["aws:PrincipalArn"]
            assert pattern["Fn::Join"][1][-1] == f":role/{prefix}/{path}/*", (region, sid, pattern)
        admin = statement(policy, "KeyAdministration")
        assert not actions(admin) - set(ADMIN_ACTIONS), region


def test_the_key_arn_is_an_output_of_every_region(beacons_app: Synthesized) -> None:
    """Synthesized with every nag pack and our rules (the fixture raises on any unacknowledged finding)."""
    app = beacons_app
    for region, stack in app.stacks.keys.items():
        assert "BeaconKeyArn" in app.raw(stack)["Outputs"], region
        assert stack.beacon_key_arn is not None
