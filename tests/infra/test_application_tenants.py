"""The application roles with tenants (README "The application roles"): each application role has its own
tenant-access role, as each function has, which it alone may assume, tagging the session ``tenant`` and
nothing else, and whose session may use that tenant's key with that tenant's context only; the application
roles themselves have no grant on the records key or a tenant key. Discovery publishes the region's tenant
keys and the two tenant-access roles; the audit rule expects their use. Decided by the one policy engine on
the templates, with the three tenants over three regions of tests/infra/conftest.py."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from cdk_constructs.audit_rules import unexpected_use_pattern
from cloud_assembly.audit_events import RULE_UNEXPECTED_KEY_USE, rule_name
from cloud_assembly.reader import load_assembly
from cloud_assembly.role_access import DeployedRole, DeploymentView, RoleAccess, role_access
from lambda_src.record_crypto.settings import (
    MAX_TENANTS,
    PARAM_READER_TENANT_ROLE_ARN,
    PARAM_TENANT_KEYS,
    PARAM_WRITER_TENANT_ROLE_ARN,
    SSM_STANDARD_VALUE_LIMIT,
    TENANT_KEY,
    discovery_path,
    tenant_keys_environment,
)
from review.report import build_review
from tests.infra.conftest import TENANTS
from tests.infra.helpers import resources
from tests.infra.synth import ACCOUNT, Synthesized, context_for, synthesize
from tests.infra.test_application_roles import PRINCIPALS
from tests.infra.test_audit import KEY, READER, WRITER, _event, _matches, _rules
from tests.infra.test_role_contracts import assert_exactly_its_contract, kinds, role, view_of

APPLICATION_TENANTS = {**TENANTS, "applicationPrincipals": PRINCIPALS}
USE = {"ApplicationWriterTenantRole": "kms:GenerateDataKey", "ApplicationReaderTenantRole": "kms:Decrypt"}


@pytest.fixture(scope="module")
def app() -> Synthesized:
    """Synthesized with every nag pack and our rules (raises on any unacknowledged finding)."""
    return synthesize(context_for(**APPLICATION_TENANTS), nag=True)


@pytest.fixture(scope="module")
def view(app: Synthesized) -> DeploymentView:
    return view_of(app)


def tenants_in(app: Synthesized, region: str) -> list[str]:
    return [t.tenant_id for t in app.config.tenants if region in t.regions]


def key_tenant(view: DeploymentView, arn: str) -> str | None:
    return view.resource_tags.get(arn, {}).get(TENANT_KEY)


def app_tenant_roles(view: DeploymentView) -> list[DeployedRole]:
    return [r for r in view.roles if r.stem in USE]


def test_every_role_does_exactly_its_contract_and_each_application_role_has_its_own_tenant_role(
    app: Synthesized, view: DeploymentView
) -> None:
    functions = ("reader", "writer")
    apps = ("application-reader", "application-writer")
    expected = [(r, k) for r in app.config.regions for k in (*functions, *apps)]
    expected += [(r, f"tenant-{k}") for r in app.config.regions if tenants_in(app, r) for k in functions]
    expected += [
        (r, k.replace("application-", "application-tenant-")) for r in app.config.regions if tenants_in(app, r)
        for k in apps
    ]  # fmt: skip
    assert kinds(view) == sorted(expected)
    assert_exactly_its_contract(view)


def test_an_application_tenant_session_uses_its_own_tenants_key_with_its_context_only(
    app: Synthesized, view: DeploymentView
) -> None:
    assert app_tenant_roles(view)
    for tenant_role in app_tenant_roles(view):
        access = role_access(tenant_role, view)
        allowed = {
            (a.action, key_tenant(view, a.target.arn), a.variant.tenant, a.session) for a in access.asked if a.allowed
        }
        own = {(USE[tenant_role.stem], t, t, (TENANT_KEY, t)) for t in tenants_in(app, tenant_role.region)}
        assert allowed == own, tenant_role
        refused = {
            (key_tenant(view, a.target.arn), a.variant.tenant, a.session[1] if a.session else None)
            for a in access.asked
            if not a.allowed and a.action == USE[tenant_role.stem]
        }
        for tenant in tenants_in(app, tenant_role.region):
            for other in (t for t in tenants_in(app, tenant_role.region) if t != tenant):
                assert (other, other, tenant) in refused, "tenant A's session, tenant B's key and context"
                assert (other, tenant, tenant) in refused, "tenant A's session, tenant B's key, A's context"
            assert (tenant, tenant, None) in refused, "an untagged session"


def test_the_application_roles_use_no_key_themselves(view: DeploymentView) -> None:
    """With tenants, no grant on the records key and none on a tenant key outside a tenant's session."""
    for stem in ("ApplicationWriterRole", "ApplicationReaderRole"):
        for app_role in (r for r in view.roles if r.stem == stem):
            access = role_access(app_role, view)
            used = {(a.action, a.target.arn) for a in access.asked if a.allowed and a.action.startswith("kms:")}
            assert used == set(), (app_role.region, stem, used)


def test_only_the_application_role_takes_its_tenant_session_tagging_tenant_alone(view: DeploymentView) -> None:
    """Each application role may assume its own tenant-access role (tagging ``tenant`` alone), and no role
    but it may assume that role; an untagged session or one with another tag as well is refused."""
    tenant_roles = {r.arn: r for r in app_tenant_roles(view)}
    for any_role in view.roles:
        access = role_access(any_role, view)
        taken = {(a.target.arn, a.variant.tag) for a in access.asked if a.allowed and a.action == "sts:AssumeRole"}
        own = [
            arn
            for arn, r in tenant_roles.items()
            if r.region == any_role.region and r.stem == any_role.stem.replace("Role", "TenantRole")
        ]
        assert {arn for arn, _ in taken} & set(tenant_roles) == set(own), any_role
        assert {tag for arn, tag in taken if arn in tenant_roles} <= {"session-tag"}, any_role
        if own:
            refused = {
                (a.target.arn, a.variant.tag) for a in access.asked if not a.allowed and a.action == "sts:AssumeRole"
            }
            assert {(own[0], ""), (own[0], "more-session-tags")} <= refused


def test_each_tenant_roles_trust_names_its_application_role_alone(app: Synthesized) -> None:
    for region, stack in app.stacks.functions.items():
        roles = resources(app.raw(stack), "AWS::IAM::Role")
        for kind in ("Writer", "Reader"):
            found = [(lid, r) for lid, r in roles.items() if lid.startswith(f"Application{kind}TenantRole")]
            if not tenants_in(app, region):
                assert not found, region
                continue
            ((_, tenant_role),) = found
            (app_role_id,) = [lid for lid in roles if lid.startswith(f"Application{kind}Role")]
            (statement,) = tenant_role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            assert statement["Principal"] == {"AWS": {"Fn::GetAtt": [app_role_id, "Arn"]}}, region
            assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
            assert tenant_role["Properties"]["Path"] == f"/MrkToolkit/{kind.lower()}/"


# -- edits: each must be named -----------------------------------------------------------------
def _with_policy(view: DeploymentView, target: DeployedRole, edit: Any) -> RoleAccess:
    policies = copy.deepcopy(list(target.policies))
    for _, document in policies:
        for statement in document["Statement"]:
            edit(statement)
    changed = dataclasses.replace(target, policies=tuple(policies))
    others = tuple(changed if r is target else r for r in view.roles)
    return role_access(changed, dataclasses.replace(view, roles=others, cache={}))


def _drop_tenant_conditions(statement: dict[str, Any]) -> None:
    equals = statement.get("Condition", {}).get("StringEquals", {})
    for key in (f"aws:ResourceTag/{TENANT_KEY}", f"kms:EncryptionContext:{TENANT_KEY}"):
        equals.pop(key, None)


def test_an_application_tenant_role_without_its_tenant_conditions_is_named(
    app: Synthesized, view: DeploymentView
) -> None:
    """The application reader's session of tenant A that could decrypt tenant B's record (B's key, B's context)."""
    readers = [r for r in app_tenant_roles(view) if r.stem == "ApplicationReaderTenantRole"]
    reader = next(r for r in readers if len(tenants_in(app, r.region)) > 1)
    tenant, other = tenants_in(app, reader.region)[:2]
    access = _with_policy(view, reader, _drop_tenant_conditions)
    crossed = {(key_tenant(view, a.target.arn), a.variant.tenant, a.session) for a in access.beyond}
    assert (other, other, (TENANT_KEY, tenant)) in crossed
    failure = access.failure() or ""
    assert "the application reader's tenant-access role" in failure and "SessionTenantKeyOnly" in failure


def test_a_tenant_trust_open_to_the_application_role_without_the_tag_condition_is_named(view: DeploymentView) -> None:
    writer_tenant = next(r for r in app_tenant_roles(view) if r.stem == "ApplicationWriterTenantRole")
    app_writer = role(view, writer_tenant.region, "ApplicationWriterRole")
    trust = copy.deepcopy(view.trust_policies[writer_tenant.arn])
    del trust["Statement"][0]["Condition"]
    edited = dataclasses.replace(view, trust_policies={**view.trust_policies, writer_tenant.arn: trust}, cache={})
    untagged = {(a.action, a.variant.tag) for a in role_access(app_writer, edited).beyond}
    assert {("sts:AssumeRole", ""), ("sts:AssumeRole", "more-session-tags")} <= untagged


def test_the_application_reader_cannot_use_the_records_key_even_when_its_policy_says_so(view: DeploymentView) -> None:
    """A grant on the records key added to the application reader (as without tenants) is beyond its contract."""
    reader = role(view, "us-west-1", "ApplicationReaderRole")
    records_key = next(r.arn for r in view.resources if r.stem == "RecordsKey" and r.region == "us-west-1")
    added = {"Sid": "Added", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": records_key}
    policies = copy.deepcopy(list(reader.policies))
    policies[0][1]["Statement"].append(added)
    changed = dataclasses.replace(reader, policies=tuple(policies))
    others = tuple(changed if r is reader else r for r in view.roles)
    access = role_access(changed, dataclasses.replace(view, roles=others, cache={}))
    assert ("kms:Decrypt", records_key) in {(a.action, a.target.arn) for a in access.beyond}


# -- discovery ---------------------------------------------------------------------------------
def _parameters(app: Synthesized, region: str) -> dict[str, Any]:
    stack = app.stacks.functions[region]
    params = resources(app.raw(stack), "AWS::SSM::Parameter").values()
    return {p["Properties"]["Name"]: p["Properties"]["Value"] for p in params}


def test_discovery_publishes_the_tenant_keys_and_the_application_tenant_roles(app: Synthesized) -> None:
    for region, stack in app.stacks.functions.items():
        params, path = _parameters(app, region), discovery_path("MrkToolkit", region)
        value = params[f"{path}/{PARAM_TENANT_KEYS}"]
        text = value if isinstance(value, str) else "".join(p for p in value["Fn::Join"][1] if isinstance(p, str))
        for tenant in (t.tenant_id for t in app.config.tenants):
            assert f'"{tenant}":' in text, (region, tenant, value)
        roles = resources(app.raw(stack), "AWS::IAM::Role")
        for name, kind in ((PARAM_WRITER_TENANT_ROLE_ARN, "Writer"), (PARAM_READER_TENANT_ROLE_ARN, "Reader")):
            if not tenants_in(app, region):
                assert f"{path}/{name}" not in params, region
                continue
            (lid,) = [lid for lid in roles if lid.startswith(f"Application{kind}TenantRole")]
            assert params[f"{path}/{name}"] == {"Fn::GetAtt": [lid, "Arn"]}, region


def test_the_tenant_keys_parameter_fits_a_standard_parameter_at_max_tenants() -> None:
    """MAX_TENANTS tenants of 32-character ids, each with a key id ("mrk-" and 32 hex digits): one parameter."""
    ids = {f"t{i:02d}".ljust(32, "x"): "mrk-" + "0" * 32 for i in range(MAX_TENANTS)}
    value = tenant_keys_environment(ids)
    assert len(value) == 2591 and len(value) <= SSM_STANDARD_VALUE_LIMIT, len(value)


# -- audit ---------------------------------------------------------------------------------------
TENANT_KEY_ARN = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/mrk-5678"
TENANT_WRITER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/WriterTenant"
TENANT_READER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/ReaderTenant"
APP_WRITER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/ApplicationWriter"
APP_READER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/ApplicationReader"
APP_TENANT_WRITER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/ApplicationWriterTenant"
APP_TENANT_READER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/ApplicationReaderTenant"


@pytest.mark.parametrize(
    ("name", "issuer", "expected"),
    [
        ("Decrypt", APP_TENANT_READER, False),  # an application's tenant session: expected
        ("GenerateDataKey", APP_TENANT_WRITER, False),
        ("Decrypt", TENANT_READER, False),  # the function's, unchanged
        ("GenerateDataKey", APP_TENANT_READER, True),  # the reader's session making data keys
        ("Decrypt", APP_TENANT_WRITER, True),
        ("Decrypt", APP_READER, True),  # the application role itself, outside a tenant's session
    ],
)
def test_the_audit_expects_the_application_tenant_roles_use_of_tenant_keys(
    name: str, issuer: str, expected: bool
) -> None:
    pattern = unexpected_use_pattern(
        [TENANT_KEY_ARN], TENANT_WRITER, TENANT_READER, application=(APP_TENANT_WRITER, APP_TENANT_READER)
    )
    assert _matches(pattern, _event(name, role=issuer, key=TENANT_KEY_ARN)) is expected


@pytest.mark.parametrize(
    ("name", "issuer", "expected"),
    [
        ("GenerateDataKey", APP_WRITER, False),  # without tenants, the application writer's own use
        ("Decrypt", APP_READER, False),
        ("Decrypt", WRITER, True),
        ("GenerateDataKey", APP_READER, True),
        ("Decrypt", APP_WRITER, True),
    ],
)
def test_without_tenants_the_audit_expects_the_application_roles_use_of_the_records_key(
    name: str, issuer: str, expected: bool
) -> None:
    pattern = unexpected_use_pattern([KEY], WRITER, READER, application=(APP_WRITER, APP_READER))
    assert _matches(pattern, _event(name, role=issuer, key=KEY)) is expected


def test_each_regions_rule_names_its_application_tenant_roles(app: Synthesized) -> None:
    prefix = app.config.stack_prefix
    for region, stack in app.stacks.functions.items():
        rule = _rules(app, region)[rule_name(prefix, region, RULE_UNEXPECTED_KEY_USE)]
        text = json.dumps(rule["EventPattern"])
        roles = [lid for lid in resources(app.raw(stack), "AWS::IAM::Role") if "TenantRole" in lid]
        for lid in roles:
            assert lid in text, (region, lid)
        assert bool([lid for lid in roles if lid.startswith("Application")]) is bool(tenants_in(app, region))


def test_the_review_finds_nothing_in_the_application_roles_with_tenants(app: Synthesized) -> None:
    """`python -m review`'s report lists each application role and tenant-access role, with no finding."""
    review = build_review(load_assembly(Path(app.assembly.directory)))
    found = [e for region in review["regions"] for e in region["roles"] if "/Application/" in e["construct"]]
    with_keys = [r for r in app.config.regions if tenants_in(app, r)]
    assert len(found) == 2 * len(app.config.regions) + 2 * len(with_keys)
    assert not [f for f in review["findings"] if "Application" in json.dumps(f)], review["findings"]
