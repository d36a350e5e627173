"""Invariants of the records global table."""

from __future__ import annotations

from tests.infra.helpers import only, output_value, resources, stack_output_ref
from tests.infra.synth import Synthesized, context_for, synthesize


def test_one_global_table_in_the_primary_region_with_a_replica_everywhere(synthesized: Synthesized) -> None:
    app = synthesized
    assert app.stacks.table.region == app.config.primary_region
    _, table = only(app.raw(app.stacks.table), "AWS::DynamoDB::GlobalTable")
    regions = [r["Region"] for r in table["Properties"]["Replicas"]]
    assert sorted(regions) == sorted(app.config.regions)
    assert table["Properties"]["TableName"] == app.config.table_name
    for stack in app.stacks.all():
        if stack is not app.stacks.table:
            assert not resources(app.raw(stack), "AWS::DynamoDB::GlobalTable")
            assert not resources(app.raw(stack), "AWS::DynamoDB::Table")


def test_every_replica_is_encrypted_with_the_table_key_of_its_own_region(synthesized: Synthesized) -> None:
    app = synthesized
    _, table = only(app.raw(app.stacks.table), "AWS::DynamoDB::GlobalTable")
    assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    for replica in table["Properties"]["Replicas"]:
        region = replica["Region"]
        ref = stack_output_ref(replica["SSESpecification"]["KMSMasterKeyId"])
        assert ref is not None, f"replica {region} must use a customer-managed key"
        keys_stack = app.stacks.keys[region]
        assert (ref["StackName"], ref["Region"]) == (keys_stack.stack_name, region)
        value = output_value(app.raw(keys_stack), ref["OutputName"])
        key_logical_id = value["Fn::GetAtt"][0]
        assert key_logical_id.startswith("TableKey"), f"replica {region} uses {key_logical_id}, not its table key"


def test_every_replica_has_pitr_and_deletion_protection(synthesized: Synthesized) -> None:
    app = synthesized
    _, table = only(app.raw(app.stacks.table), "AWS::DynamoDB::GlobalTable")
    for replica in table["Properties"]["Replicas"]:
        assert replica["DeletionProtectionEnabled"] is True, replica["Region"]
        assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, replica["Region"]


def test_keys_and_table_are_retained_on_stack_deletion_by_default(default_app: Synthesized) -> None:
    app = default_app
    for stack in [*app.stacks.keys.values(), app.stacks.table]:
        tpl = app.raw(stack)
        stateful = {
            **resources(tpl, "AWS::KMS::Key"),
            **resources(tpl, "AWS::KMS::ReplicaKey"),
            **resources(tpl, "AWS::DynamoDB::GlobalTable"),
        }
        assert stateful
        for lid, res in stateful.items():
            assert res.get("DeletionPolicy") == "Retain", lid
            assert res.get("UpdateReplacePolicy") == "Retain", lid


def test_removal_policy_destroy_is_honoured_when_configured() -> None:
    app = synthesize(context_for(removalPolicy="destroy"))
    _, table = only(app.raw(app.stacks.table), "AWS::DynamoDB::GlobalTable")
    assert table.get("DeletionPolicy") == "Delete"
    # Deletion protection stays on: destroying the table is a deliberate two-step act.
    assert all(r["DeletionProtectionEnabled"] for r in table["Properties"]["Replicas"])
