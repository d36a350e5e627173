"""NotPrincipal with Deny, from the IAM User Guide's "NotPrincipal" page: a statement excepts a
caller only if it names every identity AWS may validate (the account, the user or role, the
role session); the account ARN there excepts the account principal itself, not its users and
roles (unlike ``Principal``, where the account means every principal of it)."""

from __future__ import annotations

from typing import Any

import pytest

from policy_engine import Caller, Request, authorize

ACCOUNT = "444455556666"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
BOB = f"arn:aws:iam::{ACCOUNT}:user/Bob"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/Alice"
AUDIT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/cross-account-read-only-role"
AUDIT_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/cross-account-read-only-role/cross-account-audit-app"
BUCKET = "arn:aws:s3:::BUCKETNAME"
IDENTITY = [("identity", {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})]


def bucket_policy(*not_principals: str, effect: str = "Deny") -> dict[str, Any]:
    return {
        "Statement": [
            {
                "Effect": effect,
                "NotPrincipal": {"AWS": list(not_principals)},
                "Action": "s3:*",
                "Resource": [BUCKET, f"{BUCKET}/*"],
            }
        ]
    }


def allowed(caller: Caller, policy: dict[str, Any], *, identity: list[Any] = IDENTITY) -> bool:
    """s3:GetObject on the bucket; the caller's identity policy allows s3:* (the root: IAM allows all)."""
    return authorize(
        Request(caller, "s3:GetObject", f"{BUCKET}/report.csv", {}),
        identity_policies=[] if caller.is_root else identity,
        resource_policy=("bucket policy", policy),
        identity_allows_all=caller.is_root,
    ).allowed


def session(role: str, name: str) -> Caller:
    role_name = role.rsplit("/", 1)[-1]
    return Caller(ACCOUNT, arn=role, session_arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{name}")


BOB_AND_ACCOUNT = bucket_policy(BOB, ROOT)  # the documentation's first example


def test_the_named_user_is_not_denied() -> None:
    assert allowed(Caller(ACCOUNT, arn=BOB), BOB_AND_ACCOUNT)


def test_another_user_of_the_same_account_is_denied() -> None:
    # The account root in NotPrincipal excepts the account principal only, not Alice.
    assert not allowed(Caller(ACCOUNT, arn=ALICE), BOB_AND_ACCOUNT)


def test_the_account_root_is_not_denied() -> None:
    assert allowed(Caller(ACCOUNT, arn=ROOT), BOB_AND_ACCOUNT)
    assert allowed(Caller(ACCOUNT, arn=ROOT), bucket_policy(BOB, ACCOUNT)), "the bare account id names it too"


def test_a_role_session_of_the_same_account_is_denied() -> None:
    assert not allowed(session(AUDIT_ROLE, "cross-account-audit-app"), BOB_AND_ACCOUNT)


def test_a_user_of_another_account_is_denied() -> None:
    assert not allowed(Caller("111122223333", arn="arn:aws:iam::111122223333:user/Bob"), BOB_AND_ACCOUNT)


AUDIT_APP_ONLY = bucket_policy(AUDIT_SESSION, AUDIT_ROLE, ROOT)  # the documentation's second example


def test_the_named_role_session_is_not_denied() -> None:
    assert allowed(session(AUDIT_ROLE, "cross-account-audit-app"), AUDIT_APP_ONLY)


def test_a_role_session_not_named_is_denied() -> None:
    assert not allowed(session(AUDIT_ROLE, "someone-else"), AUDIT_APP_ONLY)
    assert not allowed(Caller(ACCOUNT, arn=AUDIT_ROLE), bucket_policy(AUDIT_ROLE, ROOT)), "no session is named"
    other_role = f"arn:aws:iam::{ACCOUNT}:role/other"
    assert not allowed(session(other_role, "cross-account-audit-app"), AUDIT_APP_ONLY)
    assert not allowed(Caller(ACCOUNT, arn=BOB), AUDIT_APP_ONLY)


@pytest.mark.parametrize(
    ("caller", "policy", "missing"),
    [
        (Caller(ACCOUNT, arn=BOB), bucket_policy(BOB), "the account"),
        (session(AUDIT_ROLE, "cross-account-audit-app"), bucket_policy(AUDIT_SESSION, ROOT), "the role"),
        (session(AUDIT_ROLE, "cross-account-audit-app"), bucket_policy(AUDIT_SESSION, AUDIT_ROLE), "the account"),
        (Caller(ACCOUNT, arn=AUDIT_ROLE), AUDIT_APP_ONLY, "which session is not known"),
    ],
)
def test_a_partial_exception_fails_closed_both_ways(caller: Caller, policy: dict[str, Any], missing: str) -> None:
    """The caller is named but not everything AWS may validate before it: AWS might deny, so the
    Deny applies, and the same NotPrincipal in an Allow does not allow."""
    assert not allowed(caller, policy), missing
    as_allow = bucket_policy(*policy["Statement"][0]["NotPrincipal"]["AWS"], effect="Allow")
    decision = authorize(
        Request(caller, "s3:GetObject", f"{BUCKET}/report.csv", {}),
        identity_policies=[],
        resource_policy=("bucket policy", as_allow),
    )
    assert not decision.allowed and "not understood" in decision.reason, missing


def test_principal_still_delegates_to_the_whole_account() -> None:
    account_may = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "s3:*", "Resource": "*"}]}
    for caller in (Caller(ACCOUNT, arn=ALICE), session(AUDIT_ROLE, "any")):
        assert allowed(caller, account_may)
        assert not allowed(caller, account_may, identity=[]), "the account root delegates to IAM"


def test_anything_not_understood_in_a_not_principal_deny_denies() -> None:
    odd = {"Statement": [{"Effect": "Deny", "NotPrincipal": {"Weird": BOB}, "Action": "s3:*", "Resource": "*"}]}
    assert not allowed(Caller(ACCOUNT, arn=BOB), odd)
