"""The erase-tenant runbook's KMS steps (offline/runbooks/erasure.py) on moto, and the verb's refusals."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from offline.__main__ import main
from offline.emulator.moto_patches import apply_moto_patches
from offline.runbooks import erasure

PRIMARY, REPLICAS = "eu-west-1", ("us-east-2",)
ALIAS = erasure.tenant_alias("alias/mrk-toolkit/records", "initech")


def _tenant_key() -> None:
    primary = boto3.client("kms", region_name=PRIMARY)
    key_id = primary.create_key(MultiRegion=True, Tags=[{"TagKey": "tenant", "TagValue": "initech"}])["KeyMetadata"][
        "KeyId"
    ]
    primary.create_alias(AliasName=ALIAS, TargetKeyId=key_id)
    for region in REPLICAS:
        primary.replicate_key(KeyId=key_id, ReplicaRegion=region)
        replica = boto3.client("kms", region_name=region)
        if not any(a["AliasName"] == ALIAS for a in replica.list_aliases()["Aliases"]):  # moto copies the alias
            replica.create_alias(AliasName=ALIAS, TargetKeyId=key_id)


def _kms_for(region: str):
    return boto3.client("kms", region_name=region)


def _states() -> dict[str, str]:
    return {r: _kms_for(r).describe_key(KeyId=ALIAS)["KeyMetadata"]["KeyState"] for r in (PRIMARY, *REPLICAS)}


def test_erase_disables_and_schedules_replicas_before_the_primary_and_cancel_restores() -> None:
    with mock_aws():
        _tenant_key()
        keys = erasure.find_keys(_kms_for, ALIAS, (PRIMARY, *REPLICAS))
        assert [k.role for k in keys] == ["REPLICA", "PRIMARY"]
        assert _states() == {PRIMARY: "Enabled", "us-east-2": "Enabled"}
        lines = erasure.erase(_kms_for, keys, 7)
        assert len(lines) == 2 and lines[0].startswith("us-east-2: replica")
        assert set(_states().values()) <= {"PendingDeletion", "PendingReplicaDeletion"}
        erasure.cancel(_kms_for, erasure.find_keys(_kms_for, ALIAS, (PRIMARY, *REPLICAS)))
        assert _states() == {PRIMARY: "Enabled", "us-east-2": "Enabled"}


def test_plan_changes_nothing() -> None:
    with mock_aws():
        _tenant_key()
        keys = erasure.find_keys(_kms_for, ALIAS, (PRIMARY, *REPLICAS))
        assert len(erasure.plan(keys, 30)) == 4
        assert _states() == {PRIMARY: "Enabled", "us-east-2": "Enabled"}


TENANTS = 'mrk-toolkit:tenants={"acme": {}}'


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["erase-tenant", "nobody", "-c", TENANTS], "unknown tenant 'nobody'"),
        (["erase-tenant", "acme"], "no tenants"),
        (["erase-tenant", "acme", "--pending-days", "3", "-c", TENANTS], "7 to 30"),
    ],
)
def test_refusals_are_one_line_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err


def test_emulator_keeps_a_primary_with_replicas_in_pending_replica_deletion() -> None:
    """As KMS: the primary's waiting period starts only when its last replica is deleted (moto 5.2.5 starts it)."""
    apply_moto_patches()
    with mock_aws():
        _tenant_key()
        primary = _kms_for(PRIMARY)
        key_id = primary.describe_key(KeyId=ALIAS)["KeyMetadata"]["KeyId"]
        primary.disable_key(KeyId=key_id)
        answer = primary.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        assert "DeletionDate" not in answer
        meta = primary.describe_key(KeyId=key_id)["KeyMetadata"]
        assert meta["KeyState"] == "PendingReplicaDeletion" and "DeletionDate" not in meta
        replica = _kms_for("us-east-2").schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        assert "DeletionDate" in replica
