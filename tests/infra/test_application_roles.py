"""The application roles (README "The application roles"): with ``applicationPrincipals``, each region has an
application writer and reader that may do exactly their contracts (the writer's and reader's rights, and the
discovery parameters' read), assumable by the configured principals alone; without it, none."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from cloud_assembly.reader import load_assembly
from cloud_assembly.resource_contracts import APPLICATION_TRUST, ROLE_TRUST, principal_problems, role_trust_contract
from cloud_assembly.role_access import DeploymentView, RoleAccess, role_access
from review.report import build_review
from stacks.config import ConfigError, load_config
from tests.infra.helpers import resources
from tests.infra.synth import ACCOUNT, Synthesized, context_for, synthesize
from tests.infra.test_role_contracts import assert_exactly_its_contract, kinds, role, view_of

OUTSIDE_ROLE = "arn:aws:iam::444455556666:role/orders-service"
PRINCIPALS = [ACCOUNT, OUTSIDE_ROLE]
APPLICATION = {"replicaRegions": ["us-west-1", "eu-west-1"], "applicationPrincipals": PRINCIPALS}


@pytest.fixture(scope="module")
def app() -> Synthesized:
    """Synthesized with every nag pack and our rules (raises on any unacknowledged finding)."""
    return synthesize(context_for(**APPLICATION), nag=True)


@pytest.fixture(scope="module")
def view(app: Synthesized) -> DeploymentView:
    return view_of(app)


def test_each_region_has_an_application_writer_and_reader_doing_exactly_their_contracts(
    app: Synthesized, view: DeploymentView
) -> None:
    regions = app.config.regions
    expected = [(r, k) for r in regions for k in ("reader", "writer", "application-reader", "application-writer")]
    assert kinds(view) == sorted(expected)
    for access in assert_exactly_its_contract(view):
        regions_used = {a.target.region for a in access.asked if a.allowed}
        assert regions_used <= {"", access.role.region}, (access.title, regions_used)


def test_they_live_under_the_functions_paths_and_trust_the_configured_principals_alone(app: Synthesized) -> None:
    for region, stack in app.stacks.functions.items():
        roles = resources(app.raw(stack), "AWS::IAM::Role")
        for kind in ("Writer", "Reader"):
            (props,) = [r["Properties"] for lid, r in roles.items() if lid.startswith(f"Application{kind}Role")]
            assert props["Path"] == f"/MrkToolkit/{kind.lower()}/", region
            (statement,) = props["AssumeRolePolicyDocument"]["Statement"]
            assert statement["Action"] == "sts:AssumeRole" and statement["Effect"] == "Allow"
            assert statement["Principal"] == {"AWS": [f"arn:aws:iam::{ACCOUNT}:root", OUTSIDE_ROLE]}
            assert "Condition" not in statement


def test_without_application_principals_there_are_none(default_app: Synthesized) -> None:
    for stack in default_app.stacks.functions.values():
        assert not [lid for lid in resources(default_app.raw(stack), "AWS::IAM::Role") if "Application" in lid]
        assert not [k for k in default_app.raw(stack).get("Outputs", {}) if k.startswith("Application")]


def allowed(access: RoleAccess, action: str) -> set[str]:
    return {a.target.arn for a in access.asked if a.allowed and a.action == action}


def test_the_application_reader_cannot_write_use_another_regions_key_or_read_another_deployment(
    view: DeploymentView,
) -> None:
    access = role_access(role(view, "us-west-1", "ApplicationReaderRole"), view)
    assert not allowed(access, "kms:GenerateDataKey") and not allowed(access, "kms:Encrypt")
    assert not allowed(access, "dynamodb:PutItem")
    own_key = {r.arn for r in view.resources if r.stem == "RecordsKey" and r.region == "us-west-1"}
    assert allowed(access, "kms:Decrypt") == own_key
    decrypts = [a for a in access.asked if a.action == "kms:Decrypt" and a.target.arn in own_key]
    assert {a.variant.tag for a in decrypts if a.allowed} == {"record-context"}  # never another context
    other_keys = {r.arn for r in view.resources if r.stem == "RecordsKey" and r.region != "us-west-1"}
    assert other_keys and not other_keys & allowed(access, "kms:Decrypt")
    asked_paths = {a.target.arn for a in access.asked if a.action == "ssm:GetParametersByPath"}
    foreign_path = f"arn:aws:ssm:us-west-1:{view.account}:parameter/not-the-toolkits/us-west-1"
    other_region_path = f"arn:aws:ssm:us-east-2:{view.account}:parameter/MrkToolkit/us-east-2"
    assert {foreign_path, other_region_path} <= asked_paths  # asked, and refused:
    assert allowed(access, "ssm:GetParametersByPath") == {
        f"arn:aws:ssm:us-west-1:{view.account}:parameter/MrkToolkit/us-west-1"
    }
    assert all(":us-west-1:" in arn for arn in allowed(access, "ssm:GetParameters"))


def edited(view: DeploymentView, region: str, stem: str, edit) -> RoleAccess:  # type: ignore[no-untyped-def]
    target = role(view, region, stem)
    policies = copy.deepcopy(list(target.policies))
    edit(policies[0][1]["Statement"])
    changed = dataclasses.replace(target, policies=tuple(policies))
    others = tuple(changed if r is target else r for r in view.roles)
    return role_access(changed, dataclasses.replace(view, roles=others, cache={}))


def test_a_broken_condition_or_a_wider_resource_is_found(view: DeploymentView) -> None:
    def drop_context(statements: list) -> None:  # type: ignore[type-arg]
        del next(s for s in statements if s.get("Sid") == "LocalMultiRegionKey")["Condition"]

    def any_parameter(statements: list) -> None:  # type: ignore[type-arg]
        next(s for s in statements if s.get("Sid") == "DiscoveryPath")["Resource"] = "*"

    # The key policy still requires the context: dropping it from the role policy alone changes nothing.
    assert edited(view, "us-west-1", "ApplicationReaderRole", drop_context).failure() is None
    # Both sides: the reader may decrypt without the toolkit's context.
    key_policies = copy.deepcopy(dict(view.key_policies))
    for policy in key_policies.values():
        for stmt in policy.get("Statement", []):
            for pairs in (stmt.get("Condition") or {}).values():
                for key in [k for k in pairs if k.startswith("kms:EncryptionContext:")]:
                    del pairs[key]
    both = edited(
        dataclasses.replace(view, key_policies=key_policies), "us-west-1", "ApplicationReaderRole", drop_context
    )
    assert {a.variant.tag for a in both.beyond if a.action == "kms:Decrypt"} >= {"no-context", "foreign-context"}
    wide = edited(view, "us-west-1", "ApplicationReaderRole", any_parameter)
    failure = wide.failure() or ""
    assert "the application reader's role in us-west-1" in failure and "ssm:GetParametersByPath" in failure
    assert (
        "ssm:GetParametersByPath",
        f"arn:aws:ssm:us-west-1:{view.account}:parameter/not-the-toolkits/us-west-1",
    ) in {(a.action, a.target.arn) for a in wide.beyond}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["12345"], "expected 12-digit account ids or IAM role/user ARNs"),
        (["arn:aws:iam::111122223333:root"], "expected 12-digit account ids or IAM role/user ARNs"),
        ([ACCOUNT, ACCOUNT], "a principal is listed twice"),
        ("not a list", "expected 12-digit account ids"),
    ],
)
def test_bad_principals_are_refused_naming_the_field(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match="mrk-toolkit:applicationPrincipals") as error:
        load_config(context_for(applicationPrincipals=value))
    assert message in str(error.value)


def test_application_roles_with_the_aurora_store_are_refused_saying_why_and_what_to_do() -> None:
    with pytest.raises(ConfigError, match="mrk-toolkit:applicationPrincipals") as error:
        load_config(context_for(store="aurora-postgresql", applicationPrincipals=[ACCOUNT]))
    message = str(error.value)
    assert "isolated subnets" in message and "cannot connect" in message, message
    assert "WriterFunctionName and ReaderFunctionName" in message and "DynamoDB store" in message, message


def test_the_read_back_of_an_application_roles_trust_policy_names_what_is_beyond_its_contract() -> None:
    """offline/verification/resources.py reads each deployed role's trust policy: an application role's may name
    account ids, roots, roles and users for sts:AssumeRole alone; never ``*``, a service, or another action."""
    name = "MrkToolkit-Functions-us-west-1-ApplicationReaderRoleA54E4396"
    contract = role_trust_contract(name)
    assert contract is APPLICATION_TRUST and role_trust_contract("MrkToolkit-RecordsReaderRoleED57839D") is ROLE_TRUST

    def problems(principal: object, action: object = "sts:AssumeRole") -> list[str]:
        statement = {"Effect": "Allow", "Principal": principal, "Action": action}
        return principal_problems({"Statement": [statement]}, contract, ACCOUNT, "us-west-1", roles=())

    assert problems({"AWS": [f"arn:aws:iam::{ACCOUNT}:root", OUTSIDE_ROLE, "444455556666"]}) == []
    assert problems({"AWS": "*"}) == [
        f"statement Statement0 allows principal * without a condition pinning account {ACCOUNT}"
    ]
    assert problems({"Service": "lambda.amazonaws.com"}) == [
        "statement Statement0 names principal lambda.amazonaws.com, "
        "not in the contract of a trust policy of the application roles"
    ]
    assert problems({"AWS": OUTSIDE_ROLE}, ["sts:AssumeRole", "sts:TagSession"]) == [
        "statement Statement0 allows ['sts:AssumeRole', 'sts:TagSession'], not sts:AssumeRole alone"
    ]


def test_the_review_lists_the_application_roles_with_their_trust_and_findings_none(app: Synthesized) -> None:
    """`python -m review`'s report (review/report.py): each application role, whom it trusts, its one policy."""
    review = build_review(load_assembly(Path(app.assembly.directory)))
    found = [
        entry for region in review["regions"] for entry in region["roles"] if "/Application/" in entry["construct"]
    ]
    assert len(found) == 2 * len(app.config.regions)
    for entry in found:
        assert sorted(entry["trusted"]) == ["account <account> (delegates to IAM policies)", f"aws {OUTSIDE_ROLE}"], (
            entry
        )
        assert entry["used_by"] == [] and len(entry["policies"]) == 1, entry
    assert not [f for f in review["findings"] if "Application" in json.dumps(f)], review["findings"]
