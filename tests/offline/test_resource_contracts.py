"""The resource-policy contract decided on policies written here (no AWS): what the listing of
principals and the policy engine's outsider probes each catch (the end-to-end edits are in
test_edited_resources.py)."""

from __future__ import annotations

from typing import Any

import pytest

from cloud_assembly.resource_contracts import (
    ALARM_TOPIC,
    KEY_POLICIES,
    KINDS,
    ROLE_TRUST,
    PolicyContract,
    principal_problems,
)
from offline.verification.resources import KEY_TYPES, READERS, Policy, key_contract, outsider_grants

ACCOUNT, REGION = "123456789012", "us-west-1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:MrkToolkit-alarms"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _problems(contract: PolicyContract, resource: str, *statements: dict[str, Any]) -> list[str]:
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    listed = principal_problems(document, contract, ACCOUNT, REGION, roles=())
    return listed + outsider_grants(Policy(REGION, resource, contract, document), ACCOUNT)


def _allow(principal: Any, action: Any, condition: dict[str, Any] | None = None, sid: str = "S") -> dict[str, Any]:
    stmt = {"Sid": sid, "Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*"}
    return stmt | ({"Condition": condition} if condition else {})


def test_every_kind_that_holds_a_policy_or_data_is_read() -> None:
    for type_name, kind in KINDS.items():
        if kind.policy is not None or kind.at_rest:
            assert type_name in READERS or type_name in KEY_TYPES, type_name
        else:
            assert kind.note, f"{type_name}: say why it has neither a resource policy nor data at rest"


@pytest.mark.parametrize(
    ("contract", "resource", "statement"),
    [
        (
            ALARM_TOPIC,
            TOPIC,
            _allow(
                {"Service": "cloudwatch.amazonaws.com"},
                "sns:Publish",
                {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            ),
        ),
        (ALARM_TOPIC, TOPIC, _allow("*", "sns:Publish", {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}})),
        (
            KEY_POLICIES["logs key"],
            KEY,
            _allow(
                {"Service": f"logs.{REGION}.amazonaws.com"},
                "kms:Encrypt*",
                {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*"}},
            ),
        ),
        (KEY_POLICIES["records key"], KEY, _allow({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "kms:*")),
        (ROLE_TRUST, "arn:aws:iam::123456789012:role/r", _allow({"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")),
    ],
    ids=["topic-cloudwatch-pinned", "star-pinned-to-account", "logs-key-own-log-groups", "key-root", "lambda-trust"],
)
def test_a_policy_within_its_contract_passes(contract: PolicyContract, resource: str, statement: dict) -> None:
    assert _problems(contract, resource, statement) == []


@pytest.mark.parametrize(
    ("contract", "resource", "statement", "expected"),
    [
        (
            ALARM_TOPIC,
            TOPIC,
            _allow("*", ["sns:Subscribe", "sns:Publish"], sid="Open"),
            [
                "statement Open allows principal * without a condition pinning account 123456789012",
                "statement Open lets arn:aws:iam::999999999999:root and arn:aws:iam::999999999999:role/outsider: "
                "sns:Publish, sns:Subscribe",
            ],
        ),
        (
            ALARM_TOPIC,
            TOPIC,
            _allow("*", "sns:Publish", {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}, sid="Org"),
            ["statement Org allows principal * without a condition pinning account 123456789012"],
        ),
        (
            ALARM_TOPIC,
            TOPIC,
            _allow("*", "sns:Publish", {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}, sid="Third"),
            [
                "statement Third allows principal * without a condition pinning account 123456789012",
                "statement Third lets arn:aws:iam::111122223333:root and arn:aws:iam::111122223333:role/outsider: "
                "sns:Publish",
            ],
        ),
        (
            ALARM_TOPIC,
            TOPIC,
            _allow({"Service": "cloudwatch.amazonaws.com"}, "sns:Publish", sid="AnyAlarm"),
            ["statement AnyAlarm lets cloudwatch.amazonaws.com acting for account 999999999999: sns:Publish"],
        ),
        (
            KEY_POLICIES["logs key"],
            KEY,
            _allow({"Service": f"logs.{REGION}.amazonaws.com"}, "kms:Decrypt", sid="AnyLogGroup"),
            [f"statement AnyLogGroup lets logs.{REGION}.amazonaws.com acting for account 999999999999: kms:Decrypt"],
        ),
        (
            KEY_POLICIES["records key"],
            KEY,
            _allow({"AWS": "arn:aws:iam::444455556666:root"}, "kms:Decrypt", sid="Other"),
            [
                "statement Other names principal arn:aws:iam::444455556666:root, not in the contract of a records key",
                "statement Other lets arn:aws:iam::444455556666:root and arn:aws:iam::444455556666:role/outsider: "
                "kms:Decrypt",
            ],
        ),
        (
            KEY_POLICIES["table key"],
            KEY,
            {
                "Sid": "AllBut",
                "Effect": "Allow",
                "NotPrincipal": {"AWS": "arn:aws:iam::444455556666:root"},
                "Action": "kms:Decrypt",
                "Resource": "*",
            },
            [
                "statement AllBut allows everyone but ['arn:aws:iam::444455556666:root'] (NotPrincipal)",
                # NotPrincipal naming an account's root excepts the root alone, not that account's roles
                "statement AllBut lets arn:aws:iam::444455556666:role/outsider and arn:aws:iam::999999999999:root "
                "and arn:aws:iam::999999999999:role/outsider: kms:Decrypt",
            ],
        ),
        (
            ROLE_TRUST,
            "arn:aws:iam::123456789012:role/r",
            _allow({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "sts:AssumeRole", sid="Admins"),
            [
                "statement Admins names principal arn:aws:iam::123456789012:root, "
                "not in the contract of a role trust policy"
            ],
        ),
    ],
    ids=[
        "open-topic",
        "star-pinned-to-org",
        "star-pinned-to-third-account",
        "any-alarm",
        "any-log-group",
        "outside-account",
        "not-principal",
        "trust-root",
    ],
)
def test_a_weakened_policy_is_named(
    contract: PolicyContract, resource: str, statement: dict, expected: list[str]
) -> None:
    assert _problems(contract, resource, statement) == expected


def test_a_deny_on_the_outsiders_account_closes_an_open_statement() -> None:
    deny = {
        "Sid": "OnlyThisAccount",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sns:*",
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}},
    }
    document = {"Statement": [_allow("*", "sns:Subscribe", sid="Open"), deny]}
    assert outsider_grants(Policy(REGION, TOPIC, ALARM_TOPIC, document), ACCOUNT) == []


def test_a_key_used_twice_takes_both_contracts_and_an_unused_key_the_root_only() -> None:
    both = key_contract({"logs key", "topic key"})
    assert both.kind == "logs key and topic key"
    assert both.principals(ACCOUNT, REGION, ()) == {
        f"arn:aws:iam::{ACCOUNT}:root",
        ACCOUNT,
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",  # the audit rules notify the alarm topic
        f"logs.{REGION}.amazonaws.com",
    }
    assert key_contract(set()).principals(ACCOUNT, REGION, ("arn:aws:iam::1:role/x",)) == {
        f"arn:aws:iam::{ACCOUNT}:root",
        ACCOUNT,
    }
