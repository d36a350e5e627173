"""Invariants of the multi-region key (primary and replicas) and the tables' SSE keys."""

from __future__ import annotations

from typing import Any

from cdk_constructs.key_policies import ADMIN_ACTIONS
from tests.infra.helpers import (
    actions,
    all_policy_documents,
    as_list,
    output_value,
    resources,
    stack_output_ref,
    statement,
    statements,
)
from tests.infra.synth import Synthesized

CRYPTO_ACTIONS = {
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey",
    "kms:GenerateDataKey*",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:CreateGrant",
    "kms:ReplicateKey",
    "kms:*",
}


def mrk(app: Synthesized, region: str) -> tuple[str, dict[str, Any]]:
    tpl = app.raw(app.stacks.keys[region])
    type_name = "AWS::KMS::ReplicaKey" if region != app.config.primary_region else "AWS::KMS::Key"
    found = {lid: r for lid, r in resources(tpl, type_name).items() if lid.startswith("RecordsKey")}
    assert len(found) == 1
    return next(iter(found.items()))


def table_key(app: Synthesized, region: str) -> tuple[str, dict[str, Any]]:
    tpl = app.raw(app.stacks.keys[region])
    found = {lid: r for lid, r in resources(tpl, "AWS::KMS::Key").items() if lid.startswith("TableKey")}
    assert len(found) == 1
    return next(iter(found.items()))


def test_primary_is_a_symmetric_multi_region_key_with_rotation(synthesized: Synthesized) -> None:
    _, key = mrk(synthesized, synthesized.config.primary_region)
    props = key["Properties"]
    assert props["MultiRegion"] is True
    assert props["EnableKeyRotation"] is True
    assert props["RotationPeriodInDays"] == synthesized.config.key_rotation_days
    assert props["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert props["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert 7 <= props["PendingWindowInDays"] <= 30


def test_every_replica_region_has_a_replica_key_of_the_primary(synthesized: Synthesized) -> None:
    app = synthesized
    primary_stack = app.stacks.keys[app.config.primary_region]
    primary_id, _ = mrk(app, app.config.primary_region)
    for region in app.config.replica_regions:
        keys_tpl = app.raw(app.stacks.keys[region])
        assert not any(k["Properties"].get("MultiRegion") for k in resources(keys_tpl, "AWS::KMS::Key").values())
        _, replica = mrk(app, region)
        ref = stack_output_ref(replica["Properties"]["PrimaryKeyArn"])
        assert ref is not None, "replica must reference the primary's ARN"
        assert ref["StackName"] == primary_stack.stack_name
        assert ref["Region"] == app.config.primary_region
        exported = output_value(app.raw(primary_stack), ref["OutputName"])
        assert exported == {"Fn::GetAtt": [primary_id, "Arn"]}
        assert 7 <= replica["Properties"]["PendingWindowInDays"] <= 30
        assert replica["Properties"]["KeyPolicy"]["Statement"], "each replica has its own key policy"


def test_key_administration_is_separated_from_key_use(synthesized: Synthesized) -> None:
    app = synthesized
    for region in app.config.regions:
        for _, key in (mrk(app, region), table_key(app, region)):
            admin = statement(key["Properties"]["KeyPolicy"], "KeyAdministration")
            assert actions(admin) == set(ADMIN_ACTIONS)
            assert not actions(admin) & CRYPTO_ACTIONS
            assert not any(a.endswith("*") for a in actions(admin))


def test_mrk_use_is_split_between_writer_and_reader_role_paths_with_context(synthesized: Synthesized) -> None:
    app = synthesized
    prefix = app.config.stack_prefix
    for region in app.config.regions:
        policy = mrk(app, region)[1]["Properties"]["KeyPolicy"]
        writer = statement(policy, "WritersGenerateDataKeysWithRecordContext")
        reader = statement(policy, "ReadersDecryptWithRecordContext")
        assert actions(writer) == {"kms:GenerateDataKey"}
        assert actions(reader) == {"kms:Decrypt"}
        for stmt, path in ((writer, f"/{prefix}/writer/"), (reader, f"/{prefix}/reader/")):
            pattern = stmt["Condition"]["ArnLike"]["aws:PrincipalArn"]
            assert path + "*" in str(pattern)
            equals = stmt["Condition"]["StringEquals"]
            assert equals["kms:EncryptionContext:table"] == app.config.table_name
            assert {"kms:EncryptionContext:purpose", "kms:EncryptionContext:schema", "kms:CallerAccount"} <= set(equals)
        # Nothing else in the key policy grants cryptographic use.
        others = [s for s in statements(policy) if s is not writer and s is not reader]
        assert not any(actions(s) & (CRYPTO_ACTIONS - {"kms:ReplicateKey"}) for s in others)


def test_replicate_key_only_on_primary_and_only_to_configured_regions(synthesized: Synthesized) -> None:
    app = synthesized
    primary_policy = mrk(app, app.config.primary_region)[1]["Properties"]["KeyPolicy"]
    replicate = [s for s in statements(primary_policy) if "kms:ReplicateKey" in actions(s)]
    assert len(replicate) == 1
    assert actions(replicate[0]) == {"kms:ReplicateKey"}
    regions = as_list(replicate[0]["Condition"]["StringEquals"]["kms:ReplicaRegion"])
    assert sorted(regions) == sorted(app.config.replica_regions)
    for region in app.config.regions:
        tpl = app.raw(app.stacks.keys[region])
        for lid, doc in all_policy_documents(tpl):
            for stmt in statements(doc):
                if "kms:ReplicateKey" in actions(stmt) or "kms:*" in actions(stmt):
                    assert region == app.config.primary_region and stmt is replicate[0], (region, lid)


def _is_star_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return any("*" in as_list(v) for v in principal.values())
    return False


def test_no_key_policy_allows_a_star_principal(synthesized: Synthesized) -> None:
    app = synthesized
    for stack in app.stacks.keys.values():
        for lid, doc in all_policy_documents(app.raw(stack)):
            for stmt in statements(doc):
                if stmt["Effect"] == "Allow":
                    assert not _is_star_principal(stmt.get("Principal")), (stack.stack_name, lid, stmt)


def test_table_key_in_every_region_is_usable_only_through_dynamodb(synthesized: Synthesized) -> None:
    app = synthesized
    for region in app.config.regions:
        _, key = table_key(app, region)
        props = key["Properties"]
        assert props.get("MultiRegion") in (None, False)
        assert props["EnableKeyRotation"] is True
        use = statement(props["KeyPolicy"], "UseOnlyThroughDynamoDbInThisAccount")
        cond = use["Condition"]["StringEquals"]
        via = cond["kms:ViaService"]
        assert f"dynamodb.{region}." in str(via)
        assert "kms:CallerAccount" in cond


def test_application_roles_have_no_permission_on_the_table_keys(synthesized: Synthesized) -> None:
    app = synthesized
    table_key_outputs = set()
    for region, stack in app.stacks.keys.items():
        lid, _ = table_key(app, region)
        for name, out in app.raw(stack)["Outputs"].items():
            if out["Value"] == {"Fn::GetAtt": [lid, "Arn"]}:
                table_key_outputs.add(name)
    for stack in app.stacks.functions.values():
        for _, doc in all_policy_documents(app.raw(stack)):
            for stmt in statements(doc):
                for res in as_list(stmt.get("Resource", [])):
                    ref = stack_output_ref(res)
                    assert ref is None or ref["OutputName"] not in table_key_outputs


def test_the_rotation_period_is_configuration_and_replicas_take_none() -> None:
    from tests.infra.synth import context_for, synthesize

    app = synthesize(context_for(keyRotationDays="90"))
    _, key = mrk(app, app.config.primary_region)
    assert key["Properties"]["RotationPeriodInDays"] == 90
    for region in app.config.replica_regions:
        _, replica = mrk(app, region)
        assert "RotationPeriodInDays" not in replica["Properties"], "a replica follows the primary"


PROMOTE_SID = "AdministratorsMovePrimaryWithinDeployment"


def _allows(stmt: dict[str, Any], action: str) -> bool:
    service, _, name = action.partition(":")
    return stmt.get("Effect") == "Allow" and any(
        a in (action, f"{service}:*", "*") or (a.endswith("*") and name.startswith(a.split(":", 1)[1][:-1]))
        for a in actions(stmt)
    )


def test_only_key_administrators_may_move_the_primary_and_only_within_the_deployment(
    synthesized: Synthesized,
) -> None:
    """kms:UpdatePrimaryRegion: KMS checks it on the current primary AND on the replica promoted, so
    every MRK (primary and replicas) carries one statement: the administrators' principals, the
    deployment's regions (kms:PrimaryRegion, so the primary can also be moved back), nobody else."""
    app = synthesized
    for region in app.config.regions:
        policy = mrk(app, region)[1]["Properties"]["KeyPolicy"]
        promote = statement(policy, PROMOTE_SID)
        assert actions(promote) == {"kms:UpdatePrimaryRegion"}
        assert promote["Principal"] == statement(policy, "KeyAdministration")["Principal"]
        assert promote["Condition"] == {"StringEquals": {"kms:PrimaryRegion": list(app.config.regions)}}
        others = [s for s in statements(policy) if s is not promote]
        assert not any(_allows(s, "kms:UpdatePrimaryRegion") for s in others), region
    for stack in (*app.stacks.keys.values(), *app.stacks.functions.values(), app.stacks.table):
        for lid, doc in all_policy_documents(app.raw(stack)):
            if lid.startswith("RecordsKey"):
                continue
            assert not any(_allows(s, "kms:UpdatePrimaryRegion") for s in statements(doc)), (stack.stack_name, lid)


def test_promotion_is_granted_to_the_configured_key_administrators() -> None:
    from tests.infra.synth import context_for, synthesize

    admin = "arn:aws:iam::111122223333:role/KeyAdmins"
    app = synthesize(context_for(keyAdminArns=admin))
    for region in app.config.regions:
        promote = statement(mrk(app, region)[1]["Properties"]["KeyPolicy"], PROMOTE_SID)
        assert promote["Principal"] == {"AWS": admin}
