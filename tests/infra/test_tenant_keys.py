"""A multi-region key per tenant: its primary in the tenant's primary region, a replica in each of
its other regions and nowhere else, tagged with the tenant, its use bound to the tenant's context.

Written for any tenant configuration: the checks walk ``config.tenants``, not the fixture's names.
"""

from __future__ import annotations

from typing import Any

import pytest

from cdk_constructs.key_policies import ADMIN_ACTIONS
from lambda_src.record_crypto.settings import TENANT_KEY
from stacks.config import TenantConfig
from tests.infra.conftest import AURORA_TENANTS, TENANTS
from tests.infra.helpers import actions, as_list, resources, stack_output_ref, statements
from tests.infra.synth import Synthesized, context_for, synthesize
from tests.infra.test_keys import CRYPTO_ACTIONS

KEY_TYPES = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")


def tenant_keys(app: Synthesized) -> dict[str, dict[str, tuple[str, str, dict[str, Any]]]]:
    """tenant id -> region -> (stack name, logical id, resource), for every key tagged with a tenant
    in any template of the app."""
    found: dict[str, dict[str, tuple[str, str, dict[str, Any]]]] = {}
    for stack in app.stacks.all():
        tpl = app.raw(stack)
        for type_name in KEY_TYPES:
            for lid, res in resources(tpl, type_name).items():
                tags = {t["Key"]: t["Value"] for t in res["Properties"].get("Tags", [])}
                if TENANT_KEY in tags:
                    where = found.setdefault(tags[TENANT_KEY], {})
                    assert stack.region not in where, (tags[TENANT_KEY], stack.region, "two keys")
                    where[stack.region] = (stack.stack_name, lid, res)
    return found


def test_each_tenant_key_exists_in_its_regions_and_nowhere_else(tenants_app: Synthesized) -> None:
    app = tenants_app
    found = tenant_keys(app)
    assert set(found) == {t.tenant_id for t in app.config.tenants}
    for tenant in app.config.tenants:
        keys = found[tenant.tenant_id]
        assert set(keys) == set(tenant.regions), tenant
        primary_stack, primary_lid, primary = keys[tenant.primary_region]
        assert primary["Type"] == "AWS::KMS::Key"
        assert primary["Properties"]["MultiRegion"] is True
        assert primary["Properties"]["EnableKeyRotation"] is True
        for region in tenant.replica_regions:
            _, lid, replica = keys[region]
            assert replica["Type"] == "AWS::KMS::ReplicaKey"
            ref = stack_output_ref(replica["Properties"]["PrimaryKeyArn"])
            assert ref is not None and ref["StackName"] == primary_stack, (tenant, region)
            assert lid == primary_lid  # the same construct path in every region


def test_a_tenant_key_is_bound_to_its_tenant(tenants_app: Synthesized) -> None:
    app = tenants_app
    for tenant_id, keys in tenant_keys(app).items():
        for region, (_, _, res) in keys.items():
            policy = res["Properties"]["KeyPolicy"]
            users = [s for s in statements(policy) if actions(s) & CRYPTO_ACTIONS - {"kms:ReplicateKey"}]
            assert {a for s in users for a in actions(s)} == {"kms:GenerateDataKey", "kms:Decrypt"}, region
            for stmt in users:
                assert stmt["Condition"]["StringEquals"][f"kms:EncryptionContext:{TENANT_KEY}"] == tenant_id
                assert stmt["Condition"]["ArnLike"]["aws:PrincipalArn"]
            admin = next(s for s in statements(policy) if s.get("Sid") == "KeyAdministration")
            assert actions(admin) == set(ADMIN_ACTIONS)
            assert not actions(admin) & CRYPTO_ACTIONS


def _tenant(app: Synthesized, tenant_id: str) -> TenantConfig:
    return next(t for t in app.config.tenants if t.tenant_id == tenant_id)


def test_a_tenant_key_may_be_replicated_and_moved_only_within_its_regions(tenants_app: Synthesized) -> None:
    app = tenants_app
    for tenant_id, keys in tenant_keys(app).items():
        tenant = _tenant(app, tenant_id)
        for region, (_, _, res) in keys.items():
            policy = res["Properties"]["KeyPolicy"]
            replicate = [s for s in statements(policy) if "kms:ReplicateKey" in actions(s)]
            if region == tenant.primary_region and tenant.replica_regions:
                (stmt,) = replicate
                assert sorted(as_list(stmt["Condition"]["StringEquals"]["kms:ReplicaRegion"])) == sorted(
                    tenant.replica_regions
                )
            else:
                assert replicate == [], (tenant_id, region)  # nobody may replicate it further
            move = [s for s in statements(policy) if "kms:UpdatePrimaryRegion" in actions(s)]
            (stmt,) = move
            assert sorted(as_list(stmt["Condition"]["StringEquals"]["kms:PrimaryRegion"])) == sorted(tenant.regions)


def test_tenant_key_aliases_name_the_tenant(tenants_app: Synthesized) -> None:
    app = tenants_app
    for tenant_id, keys in tenant_keys(app).items():
        for stack_name, lid, _ in keys.values():
            aliases = resources(app.templates[stack_name], "AWS::KMS::Alias")
            names = [a["Properties"]["AliasName"] for a in aliases.values() if lid in str(a["Properties"])]
            assert names == [f"{app.config.key_alias}/tenant/{tenant_id}"]


def test_the_stacks_say_which_tenant_keys_each_region_has(tenants_app: Synthesized) -> None:
    app = tenants_app
    for region in app.config.regions:
        assert set(app.stacks.tenant_key_arns(region)) == {t.tenant_id for t in app.config.tenants_in(region)}


def test_without_tenants_there_is_no_tenant_key(default_app: Synthesized) -> None:
    assert tenant_keys(default_app) == {}
    assert default_app.stacks.tenant_keys == {}
    assert all(default_app.stacks.tenant_key_arns(r) == {} for r in default_app.config.regions)


# A changed logical id would replace a tenant's key: its records could no longer be decrypted.
PINNED_TENANT_KEY_IDS = {
    "acme": "TenantacmeKey79A57218",
    "globex": "TenantglobexKey39A9D318",
    "initech": "TenantinitechKey01934733",
}


def test_logical_ids_of_tenant_keys_are_pinned(tenants_app: Synthesized) -> None:
    for tenant_id, keys in tenant_keys(tenants_app).items():
        assert {lid for _, lid, _ in keys.values()} == {PINNED_TENANT_KEY_IDS[tenant_id]}


@pytest.mark.parametrize("overrides", [TENANTS, AURORA_TENANTS], ids=["dynamodb", "aurora"])
def test_tenant_keys_are_nag_clean(overrides: dict[str, Any]) -> None:
    app = synthesize(context_for(**overrides), nag=True)  # raises on any finding
    assert set(tenant_keys(app)) == set(overrides["tenants"])
