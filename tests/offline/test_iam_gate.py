"""The emulated IAM decides like AWS for the statements the toolkit writes."""

from __future__ import annotations

import pytest

from offline.iam_gate import PolicySet, request_target

ACCOUNT = "123456789012"
KEY = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/mrk-0123"
TABLE = f"arn:aws:dynamodb:us-west-1:{ACCOUNT}:table/records"
READER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/reader-role"
WRITER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/writer-role"
CONTEXT = {"purpose": "mrk-toolkit:record", "table": "records", "schema": "1"}

KEY_POLICY = {
    "Statement": [
        {
            "Sid": "KeyAdministration",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": ["kms:DescribeKey"],
            "Resource": "*",
        },
        {
            "Sid": "ReadersDecryptWithRecordContext",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:CallerAccount": ACCOUNT,
                    **{f"kms:EncryptionContext:{k}": v for k, v in CONTEXT.items()},
                },
                "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/*"},
            },
        },
    ]
}


def reader_identity(resource: str = KEY) -> dict:
    return {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": resource,
                "Condition": {"StringEquals": {f"kms:EncryptionContext:{k}": v for k, v in CONTEXT.items()}},
            },
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE},
        ]
    }


def policies(principal: str = READER, identity: dict | None = None) -> PolicySet:
    return PolicySet(
        principal_arn=principal,
        account=ACCOUNT,
        identity_policies=[identity or reader_identity()],
        key_policies={KEY: KEY_POLICY},
    )


def decide(ps: PolicySet, service: str, op: str, params: dict, region: str = "us-west-1") -> bool:
    action, resource, ctx = request_target(service, op, params, region, ACCOUNT)
    return ps.authorize(action, resource, ctx).allowed


def test_reader_decrypts_with_the_record_context() -> None:
    assert decide(policies(), "kms", "Decrypt", {"KeyId": KEY, "EncryptionContext": {**CONTEXT, "item": "a"}})


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"KeyId": KEY, "EncryptionContext": {**CONTEXT, "table": "other"}}, "another table's context"),
        ({"KeyId": KEY, "EncryptionContext": {"purpose": "mrk-toolkit:record"}}, "context keys missing"),
        ({"KeyId": KEY.replace("us-west-1", "us-east-2"), "EncryptionContext": CONTEXT}, "the key of another region"),
    ],
)
def test_reader_decrypt_is_denied(params: dict, why: str) -> None:
    assert not decide(policies(), "kms", "Decrypt", params), why


def test_reader_cannot_generate_data_keys_or_write() -> None:
    ps = policies()
    assert not decide(ps, "kms", "GenerateDataKey", {"KeyId": KEY, "EncryptionContext": CONTEXT})
    assert not decide(ps, "dynamodb", "PutItem", {"TableName": "records"})
    assert decide(ps, "dynamodb", "GetItem", {"TableName": "records"})
    assert not decide(ps, "dynamodb", "GetItem", {"TableName": "records"}, region="us-east-2")


def test_identity_policy_alone_is_not_enough_when_the_key_policy_excludes_the_role_path() -> None:
    # A writer-path role with a Decrypt identity policy is still refused by the key policy.
    ps = policies(principal=WRITER)
    assert not decide(ps, "kms", "Decrypt", {"KeyId": KEY, "EncryptionContext": CONTEXT})


def test_key_policy_alone_is_not_enough_without_an_identity_policy() -> None:
    ps = policies(identity={"Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE}]})
    assert not decide(ps, "kms", "Decrypt", {"KeyId": KEY, "EncryptionContext": CONTEXT})


def test_explicit_deny_wins_and_unknown_operators_fail_closed() -> None:
    deny = reader_identity()
    deny["Statement"].append({"Effect": "Deny", "Action": "kms:*", "Resource": "*"})
    assert not decide(policies(identity=deny), "kms", "Decrypt", {"KeyId": KEY, "EncryptionContext": CONTEXT})
    odd = reader_identity()
    odd["Statement"][0]["Condition"] = {"ForAnyValue:StringLikeSometimes": {"kms:EncryptionContextKeys": "*"}}
    assert not decide(policies(identity=odd), "kms", "Decrypt", {"KeyId": KEY, "EncryptionContext": CONTEXT})
