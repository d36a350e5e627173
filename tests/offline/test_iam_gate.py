"""The emulated IAM (offline/emulator/gateway.py, server side) decides like AWS for the statements the
toolkit writes, and DynamoDB requests need a usable SSE key of their own region."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from offline.emulator.gateway import Denied, Gateway, Identity

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


SSE_KEY = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/sse-1"
SSE_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:ViaService": "dynamodb.us-west-1.amazonaws.com", "kms:CallerAccount": ACCOUNT}
            },
        }
    ]
}


class FakeState:
    """What moto holds, as the gateway reads it."""

    def __init__(self, identity: dict, keys: dict[str, dict], sse: dict[str, str]) -> None:
        self.identity, self.keys, self.sse = identity, keys, sse

    def role_policies(self, account: str, role_arn: str) -> list[tuple[str, Any]]:
        return [("identity", self.identity)]

    def key(self, account: str, region: str, key_id: str) -> Any:
        arn = key_id if key_id.startswith("arn:") else f"arn:aws:kms:{region}:{account}:key/{key_id}"
        if arn in self.keys and arn.split(":")[3] == region:
            return SimpleNamespace(arn=arn, policy=json.dumps(self.keys[arn]))
        return None

    def table_sse_key(self, account: str, region: str, table: str) -> str | None:
        return self.sse.get(region)

    def key_tags(self, account: str, region: str, key_id: str) -> dict[str, str]:
        return {}  # these keys are untagged


def policies(
    principal: str = READER, identity: dict | None = None, sse: dict[str, str] | None = None, sse_policy: Any = None
) -> tuple[Gateway, Identity]:
    keys = {KEY: KEY_POLICY, SSE_KEY: sse_policy or SSE_POLICY}
    state = FakeState(identity or reader_identity(), keys, sse if sse is not None else {"us-west-1": SSE_KEY})
    return Gateway(lambda *_: [], state), Identity(ACCOUNT, principal)  # type: ignore[arg-type]


def decide(ps: tuple[Gateway, Identity], service: str, op: str, params: dict, region: str = "us-west-1") -> bool:
    gateway, identity = ps
    try:
        gateway.check(identity, service, op, json.dumps(params).encode(), region)
    except Denied:
        return False
    return True


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


def test_dynamodb_needs_a_usable_sse_key_of_its_own_region() -> None:
    get = {"TableName": "records", "Key": {"id": {"S": "a"}}}
    assert decide(policies(), "dynamodb", "GetItem", get)
    primary_key = SSE_KEY.replace("us-west-1", "us-east-2")
    with pytest.raises(Denied, match="is in us-east-2: DynamoDB can use only a KMS key of us-west-1"):
        gateway, identity = policies(sse={"us-west-1": primary_key})
        gateway.check(identity, "dynamodb", "GetItem", json.dumps(get).encode(), "us-west-1")
    other_region = json.loads(json.dumps(SSE_POLICY).replace("dynamodb.us-west-1", "dynamodb.us-east-2"))
    assert not decide(policies(sse_policy=other_region), "dynamodb", "GetItem", get)
    admin = Identity(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", admin=True)
    gateway, _ = policies(sse_policy=other_region)
    with pytest.raises(Denied, match=r"does not let .* use it through DynamoDB"):
        gateway.check(admin, "dynamodb", "PutItem", json.dumps(get).encode(), "us-west-1")


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


PATH_ARN = f"arn:aws:ssm:us-west-1:{ACCOUNT}:parameter/MrkToolkit/us-west-1"
DISCOVERY_READER = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"],
            "Resource": [PATH_ARN, f"{PATH_ARN}/record-key-arn", f"{PATH_ARN}/table-name"],
        }
    ]
}


def test_discovery_reads_are_decided_on_the_path_and_on_each_name() -> None:
    ps = policies(identity=DISCOVERY_READER)
    assert decide(ps, "ssm", "GetParametersByPath", {"Path": "/MrkToolkit/us-west-1/"})
    assert decide(ps, "ssm", "GetParametersByPath", {"Path": "/MrkToolkit/us-west-1"})
    assert decide(ps, "ssm", "GetParameters", {"Names": ["/MrkToolkit/us-west-1/table-name"]})
    assert decide(ps, "ssm", "GetParameter", {"Name": "/MrkToolkit/us-west-1/record-key-arn"})
    # Another deployment's or region's path, a sub-path, one name not granted among granted ones.
    assert not decide(ps, "ssm", "GetParametersByPath", {"Path": "/Other/us-west-1"})
    assert not decide(ps, "ssm", "GetParametersByPath", {"Path": "/MrkToolkit/us-west-1"}, region="us-east-2")
    assert not decide(ps, "ssm", "GetParametersByPath", {"Path": "/MrkToolkit"})
    names = ["/MrkToolkit/us-west-1/table-name", "/MrkToolkit/us-west-1/db-writer-secret-arn"]
    assert not decide(ps, "ssm", "GetParameters", {"Names": names})
    # A role without an SSM statement reads nothing; writes are not emulated for roles (refused).
    assert not decide(policies(), "ssm", "GetParametersByPath", {"Path": "/MrkToolkit/us-west-1"})
    assert not decide(ps, "ssm", "PutParameter", {"Name": "/MrkToolkit/us-west-1/table-name", "Value": "x"})
