"""A deployment with tenants, its templates broken the way a bad change would: each edit fails the main
job with a line naming what is wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from lambda_src.record_crypto.settings import TENANT_KEY
from offline.emulator.resource_lifecycle import StackOperationFailed
from stacks.synthesize import synthesize
from tests.offline.edits import drop_condition_keys, edited, failures, run
from tests.offline.test_tenants_end_to_end import CONTEXT

pytestmark = pytest.mark.e2e
BOUND = "a function holding one tenant's session is refused KMS for another tenant's key and context"
WHERE = "deployed: each tenant's key exists only in its tenant's regions"
POLICIES = "deployed: each tenant key's policy binds every use to its tenant"
ROLES = "deployed: each tenant-access role may use a key only for its session's tenant"


@pytest.fixture(scope="module")
def tenants_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(CONTEXT, str(tmp_path_factory.mktemp("cdk-out-tenants")))


def test_a_tenant_role_without_the_tag_condition_fails(tenants_assembly: Path, tmp_path: Path) -> None:
    """The context condition and the key policies still keep tenants apart (defence in depth): the
    read-back of the roles names the missing condition."""

    def drop_tag(template: dict[str, Any]) -> None:
        assert drop_condition_keys(template, "aws:ResourceTag/", kinds=("PolicyDocument",)) == 2

    report = run(edited(tenants_assembly, tmp_path / "out", {"MrkToolkit-Functions-us-east-2": drop_tag}), tmp_path)
    failed = failures(report)
    assert set(failed) == {ROLES}, report.render()
    assert "statement SessionTenantKeyOnly allows kms:GenerateDataKey without aws:resourcetag/tenant" in failed[ROLES]
    assert "MrkToolkit/writer/" in failed[ROLES]


def test_a_tenant_role_without_any_tenant_condition_crosses_and_fails(tenants_assembly: Path, tmp_path: Path) -> None:
    def drop_both(template: dict[str, Any]) -> None:
        assert drop_condition_keys(template, "aws:ResourceTag/", kinds=("PolicyDocument",)) == 2
        assert drop_condition_keys(template, f"kms:EncryptionContext:{TENANT_KEY}", kinds=("PolicyDocument",)) == 2

    report = run(edited(tenants_assembly, tmp_path / "out", {"MrkToolkit-Functions-us-east-2": drop_both}), tmp_path)
    failed = failures(report)
    assert set(failed) == {ROLES, BOUND}, report.render()
    assert "acme's session in us-east-2 made a data key with" in failed[BOUND] and "for initech" in failed[BOUND]


def test_a_tenant_key_policy_without_the_tenant_condition_fails(tenants_assembly: Path, tmp_path: Path) -> None:
    def drop_tenant(template: dict[str, Any]) -> None:
        assert drop_condition_keys(template, f"kms:EncryptionContext:{TENANT_KEY}", kinds=("KeyPolicy",)) == 2

    report = run(edited(tenants_assembly, tmp_path / "out", {"MrkToolkit-TenantKeys-us-west-1": drop_tenant}), tmp_path)
    failed = failures(report)
    assert set(failed) == {POLICIES}, report.render()
    assert (
        "(globex): statement WritersGenerateDataKeysWithRecordContext allows kms:GenerateDataKey without"
        in (failed[POLICIES])
    )


def _initech_replica(tenants_assembly: Path) -> dict[str, Any]:
    """initech's replica key (its regions: us-east-2, eu-west-1) and its alias, from us-east-2's keys stack."""
    source = json.loads((tenants_assembly / "MrkToolkit-Keys-us-east-2.template.json").read_text())
    copied = {lid: r for lid, r in source["Resources"].items() if lid.startswith("Tenantinitech")}
    assert len(copied) == 2
    return copied


def test_a_tenant_key_replicated_to_a_forbidden_region_is_refused_by_its_key_policy(
    tenants_assembly: Path, tmp_path: Path
) -> None:
    copied = _initech_replica(tenants_assembly)
    out = edited(
        tenants_assembly,
        tmp_path / "out",
        {"MrkToolkit-Keys-us-west-1": lambda t: t["Resources"].update(copy.deepcopy(copied))},
    )
    with pytest.raises(StackOperationFailed) as error:
        run(out, tmp_path)
    message = str(error.value)
    assert "MrkToolkit-Keys-us-west-1/TenantinitechKey" in message
    assert "not authorized to perform: kms:ReplicateKey" in message and "key policy" in message


def test_a_tenant_key_replicated_outside_its_regions_fails_the_read_back(
    tenants_assembly: Path, tmp_path: Path
) -> None:
    """The primary's policy widened too (a hand edit): the deploy succeeds, the read-back names the key."""
    copied = _initech_replica(tenants_assembly)

    def widen(template: dict[str, Any]) -> None:
        for res in template["Resources"].values():
            for stmt in res.get("Properties", {}).get("KeyPolicy", {}).get("Statement", []):
                regions = stmt.get("Condition", {}).get("StringEquals", {}).get("kms:ReplicaRegion")
                if regions is not None:
                    listed = regions if isinstance(regions, list) else [regions]
                    stmt["Condition"]["StringEquals"]["kms:ReplicaRegion"] = [*listed, "us-west-1"]

    edits = {
        "MrkToolkit-TenantKeys-eu-west-1": widen,
        "MrkToolkit-Keys-us-west-1": lambda t: t["Resources"].update(copy.deepcopy(copied)),
    }
    report = run(edited(tenants_assembly, tmp_path / "out", edits), tmp_path)
    failed = failures(report)
    assert WHERE in failed, report.render()
    assert "initech's key arn:aws:kms:us-west-1:" in failed[WHERE]
    assert "is in us-west-1, outside its regions ('eu-west-1', 'us-east-2')" in failed[WHERE]
