"""The functions of a deployment with tenants: TENANT_KEYS names every tenant and, for those with a key
in the function's region, that key (a reference to it, never another region's); the roles may use this
region's tenant keys and no other; the environment fits Lambda's 4 KB at MAX_TENANTS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from record_crypto.settings import ENV_MRK_ARN, ENV_REGION, ENV_TENANT_KEYS, MAX_TENANTS, TENANT_KEY, Settings

from tests.infra.conftest import AURORA
from tests.infra.helpers import actions, iam_policy_documents, resources, stack_output_ref, statements
from tests.infra.synth import ACCOUNT, Synthesized, context_for, synthesize

# Real MRK ids are "mrk-" + 32 hex digits: what a deployed reference resolves to, at full length.
KEY_ID = "mrk-" + "0" * 32
LAMBDA_ENV_LIMIT = 4096
# A cluster endpoint is ~90 bytes, a secret's ARN ~95: both counted at this length.
OTHER_VALUE_BYTES = 128  # bytes of all keys and values of a function's environment


def resolved(region: str, value: Any, refs: list[dict[str, Any]]) -> str:
    """A variable as Lambda sees it once deployed: stack outputs resolved to full-length values."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        return sep.join(resolved(region, p, refs) for p in parts)
    if value == {"Ref": "AWS::Partition"}:
        return "aws"
    if "Fn::GetAtt" in value and "TenantRole" in value["Fn::GetAtt"][0]:
        # As CloudFormation names it: path, then <stack>-<logical id prefix>-<suffix>, 64 at most.
        return f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/" + "r" * 64
    if "Fn::GetAtt" in value or "Ref" in value:
        return "h" * OTHER_VALUE_BYTES  # the Aurora store's host and secret: generous upper bounds
    ref = stack_output_ref(value)
    assert ref is not None, value
    if "Keys-" not in ref["StackName"]:
        return "h" * OTHER_VALUE_BYTES  # the Aurora store's secret ids
    assert ref["Region"] == region, value  # no other region's key
    refs.append(ref)
    return (
        KEY_ID
        if "KeyId" in ref["OutputName"] or "Id" in ref["OutputName"]
        else f"arn:aws:kms:{region}:{ACCOUNT}:key/{KEY_ID}"
    )


def environments(app: Synthesized) -> list[tuple[str, dict[str, Any], dict[str, str], list[dict[str, Any]]]]:
    out = []
    for region, stack in app.stacks.functions.items():
        for function in resources(app.raw(stack), "AWS::Lambda::Function").values():
            variables = function["Properties"]["Environment"]["Variables"]
            if ENV_MRK_ARN not in variables:
                continue  # not a records function (e.g. the schema setup)
            refs: list[dict[str, Any]] = []
            env = {name: resolved(region, v, refs) for name, v in variables.items()}
            out.append((region, variables, env, refs))
    return out


def test_tenant_keys_name_every_tenant_and_only_this_regions_keys(tenants_app: Synthesized) -> None:
    app = tenants_app
    for region, variables, env, _ in environments(app):
        settings = Settings.from_env({**env, ENV_REGION: region})
        assert settings.tenant_keys is not None
        assert set(settings.tenant_keys) == {t.tenant_id for t in app.config.tenants}
        here = {t.tenant_id for t in app.config.tenants_in(region)}
        assert {t for t, arn in settings.tenant_keys.items() if arn} == here, region
        refs: list[dict[str, Any]] = []
        resolved(region, variables[ENV_TENANT_KEYS], refs)
        assert len(refs) == len(here)
        keys_here = app.stacks.tenant_keys_in(region)
        assert {r["StackName"] for r in refs} <= {key.node.scope.stack_name for key in keys_here.values()}  # type: ignore[union-attr]


def _statements(tpl: dict[str, Any], sid: str) -> list[dict[str, Any]]:
    return [s for _, doc in iam_policy_documents(tpl) for s in statements(doc) if s.get("Sid") == sid]


def test_only_the_tenant_roles_use_tenant_keys_and_only_for_the_sessions_tenant(tenants_app: Synthesized) -> None:
    app = tenants_app
    variable = f"${{aws:PrincipalTag/{TENANT_KEY}}}"
    for region, stack in app.stacks.functions.items():
        tpl = app.raw(stack)
        scoped = _statements(tpl, "SessionTenantKeyOnly")
        assert len(scoped) == 2, region  # the writer's tenant role and the reader's
        assert {a for s in scoped for a in actions(s)} == {"kms:GenerateDataKey", "kms:Decrypt"}
        for stmt in scoped:
            arns = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            assert len(arns) == len(app.config.tenants_in(region)), region
            assert all((ref := stack_output_ref(arn)) is not None and ref["Region"] == region for arn in arns)
            equals = stmt["Condition"]["StringEquals"]
            assert equals[f"aws:ResourceTag/{TENANT_KEY}"] == variable
            assert equals[f"kms:EncryptionContext:{TENANT_KEY}"] == variable
            assert equals["kms:EncryptionContext:table"] == app.config.table_name
        # The functions' own roles: no tenant key, only their tenant role, with the tag.
        tenant_key_refs = [s for s in statements_using_tenant_keys(tpl) if s.get("Sid") != "SessionTenantKeyOnly"]
        assert tenant_key_refs == [], region
        assume = _statements(tpl, "AssumeTenantRoleWithTenantTag")
        assert len(assume) == 2 and all(actions(s) == {"sts:AssumeRole", "sts:TagSession"} for s in assume)
        for role in resources(tpl, "AWS::IAM::Role").values():
            trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            if any("sts:TagSession" in json.dumps(t) for t in trust):
                (stmt,) = trust
                assert stmt["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"] == [TENANT_KEY]
                assert stmt["Condition"]["Null"][f"aws:RequestTag/{TENANT_KEY}"] == "false"
                assert "Fn::GetAtt" in json.dumps(stmt["Principal"])  # the function's own role, no other


def test_with_tenants_no_role_may_use_the_records_key(tenants_app: Synthesized, default_app: Synthesized) -> None:
    """Every record is under its tenant's key, used in that tenant's session only: with tenants, no role
    of the functions stacks has a grant on the records key a bug could fall back to (without tenants,
    the writer and the reader each have theirs)."""
    for app, expected in ((tenants_app, set()), (default_app, {"kms:GenerateDataKey", "kms:Decrypt"})):
        for region, stack in app.stacks.functions.items():
            tpl = app.raw(stack)
            records_key = [
                a
                for _, doc in iam_policy_documents(tpl)
                for s in statements(doc)
                if "RecordsKey" in json.dumps(s.get("Resource"))
                for a in actions(s)
                if a.startswith("kms:")
            ]
            assert set(records_key) == expected, (region, records_key)


def statements_using_tenant_keys(tpl: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for _, doc in iam_policy_documents(tpl):
        for stmt in statements(doc):
            if actions(stmt) & {"kms:GenerateDataKey", "kms:Decrypt"} and "TenantKeys-" in json.dumps(stmt):
                out.append(stmt)
    return out


def test_without_tenants_the_functions_have_no_tenant_keys(default_app: Synthesized) -> None:
    for _, variables, _, _ in environments(default_app):
        assert ENV_TENANT_KEYS not in variables


def _limit_app(overrides: dict[str, Any]) -> Synthesized:
    """MAX_TENANTS tenants with the longest ids, every one in every region."""
    tenants = {f"{i:02d}".ljust(32, "t"): {} for i in range(MAX_TENANTS)}
    return synthesize(context_for(**overrides, tenants=tenants))


@pytest.mark.parametrize("overrides", [{}, AURORA], ids=["dynamodb", "aurora"])
def test_the_environment_fits_lambdas_4_kb_at_max_tenants(overrides: dict[str, Any]) -> None:
    app = _limit_app(overrides)
    sizes = []
    for _, _, env, _ in environments(app):
        size = sum(len(k.encode()) + len(v.encode()) for k, v in env.items())
        sizes.append(size)
        per_tenant = len(json.dumps({"t" * 32: KEY_ID}, separators=(",", ":"))) - 1
        print(f"environment {size} bytes at {MAX_TENANTS} tenants; {per_tenant} bytes per tenant")
    assert sizes and max(sizes) <= LAMBDA_ENV_LIMIT, sizes
    # Nor is the limit needlessly low: 20 more tenants would not fit.
    assert max(sizes) + 20 * per_tenant > LAMBDA_ENV_LIMIT, sizes
