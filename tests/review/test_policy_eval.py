"""The review's evaluator decides like AWS for one account (no synth: hand-written policies)."""

from __future__ import annotations

from typing import Any

import pytest

from review.policy import ALLOW, DENY, IF_IAM, Principal, evaluate

ACCOUNT = "<account>"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
KEY = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/mrk-1"
TABLE = f"arn:aws:dynamodb:us-west-1:{ACCOUNT}:table/records"
READER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/r"
CONTEXT = {"kms:EncryptionContext:purpose": "record"}


def role(arn: str, *statements: dict[str, Any]) -> Principal:
    facts = {"aws:PrincipalArn": arn, "kms:CallerAccount": ACCOUNT, "kms:ViaService": None}
    return Principal("r", "role", arn=arn, identity=[("Policy", {"Statement": list(statements)})], facts=facts)


def stmt(action: str, resource: str = "*", principal: Any = None, **condition: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Sid": action.split(":")[1], "Effect": "Allow", "Action": action, "Resource": resource}
    if principal is not None:
        out["Principal"] = principal
    if condition:
        out["Condition"] = condition
    return out


def key_policy(*statements: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return ("key policy", {"Statement": list(statements)})


def decide(principal: Principal, action: str, policy: Any, resource: str = KEY) -> str:
    needs = resource == KEY
    return evaluate(principal, action, resource, policy, ACCOUNT, needs_resource_policy=needs).verdict


READERS_DECRYPT = stmt(
    "kms:Decrypt",
    principal={"AWS": ROOT},
    ArnLike={"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/*"},
    StringEquals={"kms:EncryptionContext:purpose": "record"},
)


def test_delegation_to_the_account_needs_an_identity_policy_too() -> None:
    reader = role(READER, stmt("kms:Decrypt", KEY, StringEquals=CONTEXT))
    decision = evaluate(reader, "kms:Decrypt", KEY, key_policy(READERS_DECRYPT), ACCOUNT, needs_resource_policy=True)
    assert decision.verdict == ALLOW
    assert decision.best is not None
    assert decision.best.requires == ("kms:EncryptionContext:purpose StringEquals record",)
    assert decide(role(READER), "kms:Decrypt", key_policy(READERS_DECRYPT)) == DENY


def test_identity_policy_alone_cannot_use_a_key() -> None:
    reader = role(READER, stmt("kms:GenerateDataKey", KEY))
    assert decide(reader, "kms:GenerateDataKey", key_policy(READERS_DECRYPT)) == DENY


def test_principal_conditions_are_decided_against_the_caller() -> None:
    writer = role(f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/w", stmt("kms:Decrypt", KEY, StringEquals=CONTEXT))
    assert decide(writer, "kms:Decrypt", key_policy(READERS_DECRYPT)) == DENY


def test_conflicting_request_conditions_cannot_be_met_together() -> None:
    reader = role(READER, stmt("kms:Decrypt", KEY, StringEquals={"kms:EncryptionContext:purpose": "other"}))
    assert decide(reader, "kms:Decrypt", key_policy(READERS_DECRYPT)) == DENY


def test_a_key_policy_naming_the_role_needs_no_identity_policy() -> None:
    assert decide(role(READER), "kms:Decrypt", key_policy(stmt("kms:Decrypt", principal={"AWS": READER}))) == ALLOW


def test_explicit_deny_wins() -> None:
    reader = role(READER, stmt("kms:Decrypt", KEY), {**stmt("kms:Decrypt", "*"), "Effect": "Deny"})
    assert decide(reader, "kms:Decrypt", key_policy(stmt("kms:Decrypt", principal={"AWS": ROOT}))) == DENY


def test_principals_outside_the_app_depend_on_their_iam_policies() -> None:
    other = Principal("other", "account", arn=f"arn:aws:iam::{ACCOUNT}:role/x", facts={"aws:PrincipalArn": "x"})
    assert decide(other, "kms:PutKeyPolicy", key_policy(stmt("kms:PutKeyPolicy", principal={"AWS": ROOT}))) == IF_IAM
    assert decide(other, "dynamodb:GetItem", None, TABLE) == IF_IAM


@pytest.mark.parametrize(("resource", "verdict"), [(TABLE, ALLOW), (TABLE.replace("us-west-1", "us-east-2"), DENY)])
def test_tables_without_resource_policy_follow_identity_policies(resource: str, verdict: str) -> None:
    reader = role(READER, stmt("dynamodb:GetItem", TABLE))
    assert decide(reader, "dynamodb:GetItem", None, resource) == verdict


def test_a_service_acting_through_kms_via_service_gets_only_via_service_statements() -> None:
    via = Principal(
        "dynamodb",
        "via-service",
        arn=f"arn:aws:iam::{ACCOUNT}:role/caller",
        identity="all",
        facts={"kms:ViaService": "dynamodb.us-west-1.amazonaws.com", "kms:CallerAccount": ACCOUNT},
        only_with_condition="kms:ViaService",
    )
    policy = key_policy(
        stmt(
            "kms:Decrypt", principal={"AWS": ROOT}, StringEquals={"kms:ViaService": "dynamodb.us-west-1.amazonaws.com"}
        ),
        stmt("kms:PutKeyPolicy", principal={"AWS": ROOT}),
    )
    assert decide(via, "kms:Decrypt", policy) == ALLOW
    assert decide(via, "kms:PutKeyPolicy", policy) == DENY
    other_region = key_policy(
        stmt(
            "kms:Decrypt", principal={"AWS": ROOT}, StringEquals={"kms:ViaService": "dynamodb.us-east-2.amazonaws.com"}
        )
    )
    assert decide(via, "kms:Decrypt", other_region) == DENY


AGREEMENT_CASES = [
    ("? wildcard", stmt("kms:Decryp?", KEY), True),
    ("? is one character", stmt("kms:Decryp?", KEY.replace("mrk-1", "mrk-?x")), False),
    ("IfExists on an absent key", stmt("kms:Decrypt", KEY, StringEqualsIfExists={"aws:SourceVpc": "vpc-1"}), True),
    ("NotAction", {"Effect": "Allow", "NotAction": "kms:Encrypt", "Resource": KEY}, True),
    ("NotAction excluding it", {"Effect": "Allow", "NotAction": "kms:Decrypt", "Resource": KEY}, False),
    ("NotResource", {"Effect": "Allow", "Action": "kms:*", "NotResource": KEY}, False),
]


@pytest.mark.parametrize(("why", "identity_stmt", "allowed"), AGREEMENT_CASES, ids=[c[0] for c in AGREEMENT_CASES])
def test_the_review_and_the_emulator_decide_alike(why: str, identity_stmt: dict[str, Any], allowed: bool) -> None:
    """One engine: the review's verdict and the emulated IAM's decision agree (they used to
    disagree on ?, IfExists and NotAction)."""
    from policy_engine import Caller, Request, authorize

    policy = key_policy(stmt("kms:*", principal={"AWS": ROOT}))
    review_verdict = decide(role(READER, identity_stmt), "kms:Decrypt", policy)
    emulated = authorize(
        Request(Caller(ACCOUNT, arn=READER), "kms:Decrypt", KEY, {"kms:CallerAccount": ACCOUNT}),
        identity_policies=[("Policy", {"Statement": [identity_stmt]})],
        resource_policy=policy,
        resource_policy_required=True,
    )
    assert (review_verdict == ALLOW) == emulated.allowed == allowed, (why, review_verdict, emulated.reason)
