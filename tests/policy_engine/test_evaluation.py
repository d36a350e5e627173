"""AWS's evaluation logic within one account: deny wins, KMS needs the key policy, the policy
elements (NotAction / NotResource / NotPrincipal, service principals, wildcards), and
fail-closed in both directions."""

from __future__ import annotations

from typing import Any

from policy_engine import Caller, Request, authorize

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app/reader/r1"
KEY = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/mrk-1"
TABLE = f"arn:aws:dynamodb:us-west-1:{ACCOUNT}:table/records"
CTX = {"kms:EncryptionContext:purpose": "record"}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(
    action: str,
    identity: list[dict[str, Any]],
    key_policy: list[dict[str, Any]] | None = None,
    *,
    resource: str = KEY,
    caller: Caller | None = None,
    context: dict[str, Any] | None = None,
) -> bool:
    request = Request(caller or Caller(ACCOUNT, arn=ROLE), action, resource, context or {})
    return authorize(
        request,
        identity_policies=[("id", {"Statement": identity})],
        resource_policy=("key policy", {"Statement": key_policy}) if key_policy is not None else None,
        resource_policy_required=resource == KEY,
    ).allowed


ACCOUNT_DELEGATES = allow("kms:*", Principal={"AWS": ROOT})


def test_kms_needs_the_key_policy_and_delegation_needs_iam() -> None:
    assert decide("kms:Decrypt", [allow("kms:Decrypt", KEY)], [ACCOUNT_DELEGATES])
    assert decide("kms:Decrypt", [allow("kms:Decrypt", KEY)], [allow("kms:*", Principal={"AWS": ACCOUNT})])
    assert not decide("kms:Decrypt", [], [ACCOUNT_DELEGATES]), "delegation without an identity allow"
    assert decide("kms:Decrypt", [], [allow("kms:Decrypt", Principal={"AWS": ROLE})]), "the key policy names the role"
    assert not decide("kms:Decrypt", [allow("kms:*", "*")], []), "an identity policy alone never opens a key"
    assert not decide("kms:Decrypt", [allow("kms:*", "*")], None), "no key policy known"


def test_explicit_deny_wins_everywhere() -> None:
    assert not decide("kms:Decrypt", [allow("kms:Decrypt", KEY), deny("kms:*")], [ACCOUNT_DELEGATES])
    assert not decide(
        "kms:Decrypt", [allow("kms:Decrypt", KEY)], [ACCOUNT_DELEGATES, deny("kms:Decrypt", Principal="*")]
    )
    table = [allow("dynamodb:GetItem", TABLE), deny("dynamodb:Get*", TABLE)]
    assert not decide("dynamodb:GetItem", table, resource=TABLE)


def test_wildcards_in_actions_and_resources() -> None:
    assert decide("dynamodb:GetItem", [allow("dynamodb:Get?tem", TABLE)], resource=TABLE)
    assert not decide("dynamodb:GetItems", [allow("dynamodb:Get?tem", TABLE)], resource=TABLE)
    assert decide("dynamodb:GetItem", [allow("DynamoDB:getitem", "arn:aws:dynamodb:*:*:table/rec*")], resource=TABLE)
    assert not decide(
        "dynamodb:GetItem", [allow("dynamodb:GetItem", "arn:aws:dynamodb:*:*:table/rec?")], resource=TABLE
    )
    assert not decide(
        "dynamodb:GetItem", [allow("dynamodb:GetItem", TABLE.replace("us-west-1", "us-east-2"))], resource=TABLE
    )


def test_not_action_and_not_resource() -> None:
    assert decide(
        "dynamodb:GetItem", [{"Effect": "Allow", "NotAction": "dynamodb:PutItem", "Resource": TABLE}], resource=TABLE
    )
    assert not decide(
        "dynamodb:PutItem", [{"Effect": "Allow", "NotAction": "dynamodb:Put*", "Resource": TABLE}], resource=TABLE
    )
    other = TABLE + "-other"
    deny_elsewhere = {"Effect": "Deny", "Action": "dynamodb:*", "NotResource": other}
    assert not decide("dynamodb:GetItem", [allow("dynamodb:*", "*"), deny_elsewhere], resource=TABLE)
    assert decide("dynamodb:GetItem", [allow("dynamodb:*", "*"), deny_elsewhere], resource=other)


def test_not_principal_and_service_principals() -> None:
    # NotPrincipal excepts a role's session only if it names the session, the role and the account.
    r1_session = f"arn:aws:sts::{ACCOUNT}:assumed-role/r1/fn"
    others_denied = {
        "Effect": "Deny",
        "NotPrincipal": {"AWS": [r1_session, ROLE, ROOT]},
        "Action": "kms:*",
        "Resource": "*",
    }
    ident = [allow("kms:Decrypt", KEY)]
    r1 = Caller(ACCOUNT, arn=ROLE, session_arn=r1_session)
    assert decide("kms:Decrypt", ident, [ACCOUNT_DELEGATES, others_denied], caller=r1)
    role_only = {**others_denied, "NotPrincipal": {"AWS": ROLE}}
    assert not decide("kms:Decrypt", ident, [ACCOUNT_DELEGATES, role_only], caller=r1), "its session is not named"
    other = Caller(ACCOUNT, arn=f"arn:aws:iam::{ACCOUNT}:role/app/writer/w1")
    assert not decide("kms:Decrypt", ident, [ACCOUNT_DELEGATES, others_denied], caller=other)
    service = allow("kms:DescribeKey", Principal={"Service": "dynamodb.amazonaws.com"})
    dynamodb = Caller(ACCOUNT, service="dynamodb.amazonaws.com")
    assert decide("kms:DescribeKey", [], [service], caller=dynamodb)
    assert not decide("kms:DescribeKey", [], [service], caller=Caller(ACCOUNT, service="logs.amazonaws.com"))
    assert not decide("kms:DescribeKey", [], [service]), "a role is not the service"


def test_key_policy_statements_match_their_resource() -> None:
    other_key = KEY.replace("mrk-1", "mrk-2")
    assert not decide("kms:Decrypt", [allow("kms:Decrypt", KEY)], [allow("kms:*", other_key, Principal={"AWS": ROOT})])
    assert decide("kms:Decrypt", [allow("kms:Decrypt", KEY)], [allow("kms:*", KEY, Principal={"AWS": ROOT})])


def test_conditions_decide_with_the_request_context() -> None:
    conditioned = [allow("kms:Decrypt", KEY, Condition={"StringEquals": CTX})]
    assert decide("kms:Decrypt", conditioned, [ACCOUNT_DELEGATES], context=CTX)
    assert not decide("kms:Decrypt", conditioned, [ACCOUNT_DELEGATES], context={"kms:EncryptionContext:purpose": "x"})
    assert not decide("kms:Decrypt", conditioned, [ACCOUNT_DELEGATES])


def test_what_is_not_understood_fails_closed_both_ways() -> None:
    ident = [allow("kms:Decrypt", KEY)]
    odd_condition = {"StringEqualsMaybe": {"kms:EncryptionContext:purpose": "record"}}
    assert not decide(
        "kms:Decrypt", [allow("kms:Decrypt", KEY, Condition=odd_condition)], [ACCOUNT_DELEGATES], context=CTX
    )
    assert not decide(
        "kms:Decrypt", ident, [ACCOUNT_DELEGATES, deny("kms:*", Principal="*", Condition=odd_condition)], context=CTX
    )
    unknown_var = {"StringEquals": {"kms:EncryptionContext:purpose": "${aws:username}"}}
    assert not decide("kms:Decrypt", [*ident, deny("kms:*", Condition=unknown_var)], [ACCOUNT_DELEGATES], context=CTX)
    assert not decide(
        "kms:Decrypt", [{"Effect": "Maybe", "Action": "kms:*", "Resource": "*"}, *ident], [ACCOUNT_DELEGATES]
    )
    assert not decide("kms:Decrypt", [{**ident[0], "NotAction": "kms:Encrypt"}], [ACCOUNT_DELEGATES])
    assert not decide("kms:Decrypt", ident, [allow("kms:*", Principal={"Weird": ROOT})])
    # A Deny whose other condition surely does not hold does not apply.
    mixed = {"StringEqualsMaybe": {"a": "b"}, "StringEquals": {"kms:EncryptionContext:purpose": "other"}}
    assert decide("kms:Decrypt", [*ident, deny("kms:*", Condition=mixed)], [ACCOUNT_DELEGATES], context=CTX)


def test_root_is_allowed_by_iam_but_not_past_the_key_policy() -> None:
    root = Caller(ACCOUNT, arn=ROOT)
    request = Request(root, "kms:Decrypt", KEY, {})
    key_admin_only = ("key policy", {"Statement": [allow("kms:DescribeKey", Principal={"AWS": ROOT})]})
    kwargs: dict[str, Any] = {"resource_policy_required": True, "identity_allows_all": True}
    assert not authorize(request, resource_policy=key_admin_only, **kwargs).allowed
    assert authorize(Request(root, "kms:DescribeKey", KEY, {}), resource_policy=key_admin_only, **kwargs).allowed
