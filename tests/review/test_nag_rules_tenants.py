"""Our nag rules for tenants (MrkToolkit-TEN1/2/3), on the toolkit's own synthesized templates for two
tenant configurations: clean as synthesized; each template edited the way a bad change would fails
with a finding naming what is wrong (the tenant and region, the statement and the missing condition).
The rules read the synthesized template of each stack, so an edited template file is what they judge.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cdk_constructs.nag_rules import MrkToolkitChecks
from lambda_src.record_crypto.settings import TENANT_KEY
from stacks.config import TenantConfig
from tests.infra.synth import Synthesized, context_for, synthesize
from tests.infra.test_tenant_role_contracts import CONFIGURATIONS

Findings = dict[str, list[str]]


@pytest.fixture(scope="module", params=sorted(CONFIGURATIONS))
def app(request: pytest.FixtureRequest) -> Synthesized:
    return synthesize(context_for(**CONFIGURATIONS[request.param]))


def tenant_findings(app: Synthesized, tenant_regions: dict[str, tuple[str, ...]] | None = None) -> Findings:
    regions = tenant_regions or {t.tenant_id: t.regions for t in app.config.tenants}
    report = MrkToolkitChecks(tenant_regions=regions).validate_scope(app.stacks.table.node.root)
    return {
        v.rule_name: sorted(r.construct_path for r in v.violating_resources)
        for v in report.violations
        if v.rule_name.startswith("MrkToolkit-TEN")
    }


@contextmanager
def edited(app: Synthesized, stack: str, edit: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    path = Path(app.assembly.directory) / f"{stack}.template.json"
    original = path.read_text()
    template = json.loads(original)
    edit(template)
    path.write_text(json.dumps(template))
    try:
        yield
    finally:
        path.write_text(original)


def tenant_key(template: dict[str, Any], tenant: str) -> dict[str, Any]:
    (key,) = [
        r
        for r in template["Resources"].values()
        if r["Type"].startswith("AWS::KMS::")
        and {"Key": TENANT_KEY, "Value": tenant} in r["Properties"].get("Tags", [])
    ]
    return key


def test_the_toolkit_tenant_app_is_clean(app: Synthesized) -> None:
    assert tenant_findings(app) == {}
    report = MrkToolkitChecks(verbose=True, tenant_regions={t.tenant_id: t.regions for t in app.config.tenants})
    assert [v.rule_name for v in report.validate_scope(app.stacks.table.node.root).violations] == []


def _partial_tenant(app: Synthesized) -> tuple[TenantConfig, str]:
    """A tenant that is not in every region, and a region of the deployment outside its set."""
    tenant = next(t for t in app.config.tenants if set(t.regions) != set(app.config.regions))
    return tenant, next(r for r in app.config.regions if r not in tenant.regions)


def test_ten1_a_tenant_primary_that_may_be_replicated_outside_its_regions(app: Synthesized) -> None:
    tenant, outside = _partial_tenant(app)
    stack = f"{app.config.stack_prefix}-TenantKeys-{tenant.primary_region}"

    def widen(template: dict[str, Any]) -> None:
        statement = {
            "Sid": "AlsoReplicateElsewhere",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{app.config.account}:root"},
            "Action": "kms:ReplicateKey",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ReplicaRegion": [outside]}},
        }
        tenant_key(template, tenant.tenant_id)["Properties"]["KeyPolicy"]["Statement"].append(statement)

    with edited(app, stack, widen):
        found = tenant_findings(app)
    assert list(found) == [f"MrkToolkit-TEN1[{tenant.tenant_id}:{outside}]"], found
    assert found[f"MrkToolkit-TEN1[{tenant.tenant_id}:{outside}]"][0].startswith(f"{stack}/Tenant-{tenant.tenant_id}/")


def test_ten1_a_tenant_key_in_a_region_its_tenant_does_not_have(app: Synthesized) -> None:
    """The same templates judged against a narrower configuration: every key outside it is named."""
    tenant = next(t for t in app.config.tenants if len(t.regions) > 1)
    narrowed = {t.tenant_id: t.regions for t in app.config.tenants} | {tenant.tenant_id: (tenant.primary_region,)}
    found = tenant_findings(app, narrowed)
    expected = {f"MrkToolkit-TEN1[{tenant.tenant_id}:{r}]" for r in tenant.replica_regions}
    assert set(found) == expected, found


def _functions_stack(app: Synthesized) -> tuple[str, str]:
    region = next(r for r in app.config.regions if any(r in t.regions for t in app.config.tenants))
    return f"{app.config.stack_prefix}-Functions-{region}", region


def _policy(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    (policy,) = [
        r["Properties"]["PolicyDocument"]
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::IAM::ManagedPolicy" and lid.startswith(prefix)
    ]
    return policy


@pytest.mark.parametrize("condition", [f"aws:ResourceTag/{TENANT_KEY}", f"kms:EncryptionContext:{TENANT_KEY}"])
def test_ten2_a_tenant_role_without_the_tag_or_context_condition(app: Synthesized, condition: str) -> None:
    stack, _ = _functions_stack(app)

    def drop(template: dict[str, Any]) -> None:
        for statement in _policy(template, "RecordsReaderTenantAccessPolicy")["Statement"]:
            del statement["Condition"]["StringEquals"][condition]

    with edited(app, stack, drop):
        found = tenant_findings(app)
    assert found == {
        f"MrkToolkit-TEN2[SessionTenantKeyOnly::{condition}]": [f"{stack}/Records/Reader/TenantAccessPolicy/Resource"]
    }


def test_ten2_a_function_role_given_a_tenant_key_directly(app: Synthesized) -> None:
    stack, _ = _functions_stack(app)

    def grant(template: dict[str, Any]) -> None:
        tenant_statement = _policy(template, "RecordsWriterTenantAccessPolicy")["Statement"][0]
        statement = {"Sid": "TenantKeysToo", "Effect": "Allow", "Action": "kms:GenerateDataKey"}
        _policy(template, "RecordsWriterAccessPolicy")["Statement"].append(
            {**statement, "Resource": tenant_statement["Resource"]}
        )

    with edited(app, stack, grant):
        found = tenant_findings(app)
    assert set(found) == {
        f"MrkToolkit-TEN2[TenantKeysToo::aws:ResourceTag/{TENANT_KEY}]",
        f"MrkToolkit-TEN2[TenantKeysToo::kms:EncryptionContext:{TENANT_KEY}]",
    }, found


def test_ten3_a_tenant_key_policy_without_the_tenant_condition(app: Synthesized) -> None:
    tenant = app.config.tenants[0]
    stack = f"{app.config.stack_prefix}-TenantKeys-{tenant.primary_region}"

    def unbind(template: dict[str, Any]) -> None:
        for statement in tenant_key(template, tenant.tenant_id)["Properties"]["KeyPolicy"]["Statement"]:
            statement.get("Condition", {}).get("StringEquals", {}).pop(f"kms:EncryptionContext:{TENANT_KEY}", None)

    with edited(app, stack, unbind):
        found = tenant_findings(app)
    assert set(found) == {
        "MrkToolkit-TEN3[WritersGenerateDataKeysWithRecordContext]",
        "MrkToolkit-TEN3[ReadersDecryptWithRecordContext]",
    }, found


@pytest.mark.parametrize("tags", [[], [{"Key": TENANT_KEY, "Value": "someone-else"}]], ids=["untagged", "retagged"])
def test_ten1_a_replica_belongs_to_its_primarys_tenant_whatever_its_tags(app: Synthesized, tags: list[Any]) -> None:
    tenant = next(t for t in app.config.tenants if t.replica_regions)
    stack = f"{app.config.stack_prefix}-Keys-{tenant.replica_regions[0]}"

    def retag(template: dict[str, Any]) -> None:
        tenant_key(template, tenant.tenant_id)["Properties"]["Tags"] = tags

    with edited(app, stack, retag):
        found = tenant_findings(app)
    assert found == {f"MrkToolkit-TEN1[{tenant.tenant_id}:Tags]": [f"{stack}/Tenant-{tenant.tenant_id}/Key"]}, found


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:kms:{region}:111122223333:key/mrk-0123456789abcdef0123456789abcdef",
        "arn:aws:kms:{region}:111122223333:alias/mrk-toolkit/records/tenant/acme",
        "arn:aws:kms:{region}:111122223333:key/*",
        "arn:aws:kms:*:111122223333:key/mrk-*",
        {"Fn::Join": ["", ["arn:aws:kms:{region}:", {"Ref": "AWS::AccountId"}, ":key/mrk-0123456789abcdef"]]},
    ],
)
def test_ten2_a_tenant_key_written_out_rather_than_referenced(app: Synthesized, resource: Any) -> None:
    """A key id is not known before deploy: with tenant keys in the app, a multi-region key, tenant alias or
    key pattern written out may be a tenant key, and its use needs both conditions as a reference's does."""
    stack, region = _functions_stack(app)
    literal = json.loads(json.dumps(resource).replace("{region}", region))

    def grant(template: dict[str, Any]) -> None:
        statement = {"Sid": "WrittenOut", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": literal}
        _policy(template, "RecordsReaderAccessPolicy")["Statement"].append(statement)

    with edited(app, stack, grant):
        found = tenant_findings(app)
    assert set(found) == {
        f"MrkToolkit-TEN2[WrittenOut::aws:ResourceTag/{TENANT_KEY}]",
        f"MrkToolkit-TEN2[WrittenOut::kms:EncryptionContext:{TENANT_KEY}]",
    }, found


def test_ten2_a_key_that_cannot_be_a_tenant_key_written_out_is_not_a_finding(app: Synthesized) -> None:
    """A single-region key's ARN (tenant keys are multi-region) is another rule's business."""
    stack, region = _functions_stack(app)

    def grant(template: dict[str, Any]) -> None:
        arn = f"arn:aws:kms:{region}:111122223333:key/0123abcd-0123-4567-89ab-0123456789ab"
        statement = {"Sid": "SingleRegion", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": arn}
        _policy(template, "RecordsReaderAccessPolicy")["Statement"].append(statement)

    with edited(app, stack, grant):
        assert tenant_findings(app) == {}
