"""A deployment with tenants, its templates broken the way a bad change would: each edit fails the main
job with a line naming what is wrong. Written for any tenant configuration: the tenants, regions and
stacks each edit touches are derived from the configuration, and the tests run on two of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from lambda_src.record_crypto.settings import TENANT_KEY
from offline.emulator.resource_lifecycle import StackOperationFailed
from stacks.config import TenantConfig, ToolkitConfig, cdk_json_context, load_config
from stacks.synthesize import synthesize
from tests.offline.edits import drop_condition_keys, edited, failures, run
from tests.offline.test_tenants_end_to_end import CONTEXT

pytestmark = pytest.mark.e2e
BOUND = "a function holding one tenant's session is refused KMS for another tenant's key and context"
WHERE = "deployed: each tenant's key exists only in its tenant's regions"
POLICIES = "deployed: each tenant key's policy binds every use to its tenant"
ROLES = "deployed: each tenant-access role may use a key only for its session's tenant"

# Three tenants over three regions (the end-to-end test's), and two tenants each in two of three
# regions, one homed in a replica region: every tenant is missing from some region.
TWO_TENANTS = {
    "umbrella": {"regions": ["us-west-1", "eu-west-1"], "primaryRegion": "eu-west-1"},
    "stark": {"regions": ["us-east-2", "us-west-1"]},
}
CONFIGURATIONS = {
    "three-tenants": CONTEXT,
    "two-tenants": {
        "mrk-toolkit:replicaRegions": "us-west-1,eu-west-1",
        "mrk-toolkit:tenants": json.dumps(TWO_TENANTS),
    },
}


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def tenants(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ToolkitConfig]:
    context = CONFIGURATIONS[request.param]
    out = synthesize(context, str(tmp_path_factory.mktemp(f"cdk-out-{request.param}")))
    return out, load_config({**cdk_json_context(), **context})


def contract_check(kind: str, region: str) -> str:
    return f"deployed: the {kind}'s tenant-access role in {region} may do exactly its contract"


def shared_region(config: ToolkitConfig) -> tuple[str, list[str]]:
    """A region holding two tenants' keys or more (where one tenant's session could cross), its tenants."""
    return next(
        (r, [t.tenant_id for t in config.tenants if r in t.regions])
        for r in config.regions
        if sum(r in t.regions for t in config.tenants) > 1
    )


def test_a_tenant_role_without_the_tag_condition_fails(tenants: tuple[Path, ToolkitConfig], tmp_path: Path) -> None:
    """The context condition and the key policies still keep tenants apart (defence in depth): the
    read-back of the roles names the missing condition; every role still does exactly its contract."""
    out, config = tenants
    region, _ = shared_region(config)

    def drop_tag(template: dict[str, Any]) -> None:
        assert drop_condition_keys(template, "aws:ResourceTag/", kinds=("PolicyDocument",)) == 2

    report = run(edited(out, tmp_path / "out", {f"{config.stack_prefix}-Functions-{region}": drop_tag}), tmp_path)
    failed = failures(report)
    assert set(failed) == {ROLES}, report.render()
    assert "statement SessionTenantKeyOnly allows kms:GenerateDataKey without aws:resourcetag/tenant" in failed[ROLES]
    assert f"{config.stack_prefix}/writer/" in failed[ROLES] and f"{config.stack_prefix}/reader/" in failed[ROLES]


def test_a_tenant_role_without_any_tenant_condition_crosses_and_fails(
    tenants: tuple[Path, ToolkitConfig], tmp_path: Path
) -> None:
    out, config = tenants
    region, here = shared_region(config)

    def drop_both(template: dict[str, Any]) -> None:
        assert drop_condition_keys(template, "aws:ResourceTag/", kinds=("PolicyDocument",)) == 2
        assert drop_condition_keys(template, f"kms:EncryptionContext:{TENANT_KEY}", kinds=("PolicyDocument",)) == 2

    report = run(edited(out, tmp_path / "out", {f"{config.stack_prefix}-Functions-{region}": drop_both}), tmp_path)
    failed = failures(report)
    writer, reader = contract_check("writer", region), contract_check("reader", region)
    assert set(failed) == {ROLES, BOUND, writer, reader}, report.render()
    assert f"{here[0]}'s session in {region} made a data key with" in failed[BOUND]
    assert f"for {here[1]}" in failed[BOUND]
    # The contract check names the crossing request: a session of one tenant, another tenant's key and context.
    for line, action in ((failed[writer], "kms:GenerateDataKey"), (failed[reader], "kms:Decrypt")):
        assert f"tenant-access role in {region} (" in line and f"{action} on " in line, line
        assert f"as a session tagged {TENANT_KEY}=" in line and "allowed by key policy" in line, line


def test_a_tenant_key_policy_without_the_tenant_condition_fails(
    tenants: tuple[Path, ToolkitConfig], tmp_path: Path
) -> None:
    out, config = tenants
    region = config.tenants[0].primary_region
    homed = [t.tenant_id for t in config.tenants if t.primary_region == region]

    def drop_tenant(template: dict[str, Any]) -> None:
        found = drop_condition_keys(template, f"kms:EncryptionContext:{TENANT_KEY}", kinds=("KeyPolicy",))
        assert found == 2 * len(homed)

    report = run(edited(out, tmp_path / "out", {f"{config.stack_prefix}-TenantKeys-{region}": drop_tenant}), tmp_path)
    failed = failures(report)
    assert set(failed) == {POLICIES}, report.render()
    for tenant in homed:
        for sid, action in (
            ("WritersGenerateDataKeysWithRecordContext", "kms:GenerateDataKey"),
            ("ReadersDecryptWithRecordContext", "kms:Decrypt"),
        ):
            assert f"({tenant}): statement {sid} allows {action} without" in failed[POLICIES]


def replicated_outside(config: ToolkitConfig) -> tuple[TenantConfig, str]:
    """A tenant with a replica, and a region of the deployment outside its set."""
    tenant = next(t for t in config.tenants if t.replica_regions and set(t.regions) != set(config.regions))
    return tenant, next(r for r in config.regions if r not in tenant.regions)


def _replica(out: Path, config: ToolkitConfig, tenant: TenantConfig) -> dict[str, Any]:
    """The tenant's replica key and its alias, from the keys stack of one of its replica regions."""
    stack = f"{config.stack_prefix}-Keys-{tenant.replica_regions[0]}"
    source = json.loads((out / f"{stack}.template.json").read_text())
    copied = {lid: r for lid, r in source["Resources"].items() if lid.startswith(f"Tenant{tenant.tenant_id}")}
    assert len(copied) == 2
    return copied


def test_a_tenant_key_replicated_to_a_forbidden_region_is_refused_by_its_key_policy(
    tenants: tuple[Path, ToolkitConfig], tmp_path: Path
) -> None:
    out, config = tenants
    tenant, outside = replicated_outside(config)
    copied = _replica(out, config, tenant)
    stack = f"{config.stack_prefix}-Keys-{outside}"
    edits = {stack: lambda t: t["Resources"].update(copy.deepcopy(copied))}
    with pytest.raises(StackOperationFailed) as error:
        run(edited(out, tmp_path / "out", edits), tmp_path)
    message = str(error.value)
    assert f"{stack}/Tenant{tenant.tenant_id}Key" in message
    assert "not authorized to perform: kms:ReplicateKey" in message and "key policy" in message


@pytest.mark.parametrize("untagged", [False, True], ids=["tagged", "untagged"])
def test_a_tenant_key_replicated_outside_its_regions_fails_the_read_back(
    tenants: tuple[Path, ToolkitConfig], tmp_path: Path, untagged: bool
) -> None:
    """The primary's policy widened too (a hand edit): the deploy succeeds, the read-back names the key,
    tagged with its tenant or not (a replica is its primary's tenant's: same multi-region key id)."""
    out, config = tenants
    tenant, outside = replicated_outside(config)
    copied = _replica(out, config, tenant)
    if untagged:
        for resource in copied.values():
            resource["Properties"].pop("Tags", None)

    def widen(template: dict[str, Any]) -> None:
        for res in template["Resources"].values():
            for stmt in res.get("Properties", {}).get("KeyPolicy", {}).get("Statement", []):
                regions = stmt.get("Condition", {}).get("StringEquals", {}).get("kms:ReplicaRegion")
                if regions is not None:
                    listed = regions if isinstance(regions, list) else [regions]
                    stmt["Condition"]["StringEquals"]["kms:ReplicaRegion"] = [*listed, outside]

    edits = {
        f"{config.stack_prefix}-TenantKeys-{tenant.primary_region}": widen,
        f"{config.stack_prefix}-Keys-{outside}": lambda t: t["Resources"].update(copy.deepcopy(copied)),
    }
    report = run(edited(out, tmp_path / "out", edits), tmp_path)
    failed = failures(report)
    assert WHERE in failed, report.render()
    assert f"{tenant.tenant_id}'s key arn:aws:kms:{outside}:" in failed[WHERE]
    assert f"is in {outside}, outside its regions {tuple(sorted(tenant.regions))}" in failed[WHERE]
