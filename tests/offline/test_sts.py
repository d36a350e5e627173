"""The emulated STS (offline/emulator/sts.py): sts:AssumeRole is decided with the role's trust
policy, as AWS does even within one account, and the credentials it issues act as the role
session through the gateway (the role's own policies decide, session tags are principal tags).
The account's root user may assume no role (AWS's answer, word for word); the IAM user with
AdministratorAccess that `python -m offline up` exports may, where a trust policy lets it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from offline.emulator.server import ADMIN_USER, EmulatedAws
from offline.emulator.sts import ROOT_REFUSED

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ADMIN = f"arn:aws:iam::{ACCOUNT}:user/{ADMIN_USER}"
# What CDK writes for a function's role (cdk_constructs/encrypting_functions.py).
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}],
}


def trust(*principals: str, actions: tuple[str, ...] = ("sts:AssumeRole",)) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": list(actions)}
    return {"Version": "2012-10-17", "Statement": [statement]}


def allow(actions: list[str], resource: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]}


@pytest.fixture
def aws() -> Iterator[EmulatedAws]:
    with EmulatedAws(ACCOUNT) as emulated:
        yield emulated


def role(aws: EmulatedAws, name: str, trust_policy: dict[str, Any], policy: Any = None, path: str = "/") -> str:
    iam = aws.client("iam", REGION)
    arn = iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust_policy))["Role"]["Arn"]
    if policy is not None:
        iam.put_role_policy(RoleName=name, PolicyName="permissions", PolicyDocument=json.dumps(policy))
    return str(arn)


def sts_as(aws: EmulatedAws, role_arn: str):  # type: ignore[no-untyped-def]
    """STS for a role's credentials as the emulator hands them to a function (Lambda assumed it)."""
    return aws.role_session(role_arn).client("sts", region_name=REGION, endpoint_url=aws.endpoint_url)


def client(aws: EmulatedAws, service: str, creds: dict[str, Any]):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=aws.endpoint_url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def admin_sts(aws: EmulatedAws):  # type: ignore[no-untyped-def]
    """STS for the IAM user with AdministratorAccess (the keys `python -m offline up` exports)."""
    keys = aws.admin_user_keys()
    return client(aws, "sts", {**keys, "SessionToken": None})


def refused(call: Any) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    assert exc.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), exc.value.response
    return str(exc.value.response["Error"]["Message"])


def test_the_root_user_may_assume_no_role_as_aws_answers(aws: EmulatedAws) -> None:
    """Even a role whose trust policy names the root user itself: AWS refuses any AssumeRole by root."""
    arn = role(aws, "trusting-root", trust(ROOT), allow(["kms:*"], "*"))
    root_sts = aws.client("sts", REGION)
    assert root_sts.get_caller_identity()["Arn"] == ROOT
    with pytest.raises(ClientError) as exc:
        root_sts.assume_role(RoleArn=arn, RoleSessionName="root")
    error = exc.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (403, "AccessDenied")
    assert error["Error"]["Message"] == "Roles may not be assumed by root accounts." == ROOT_REFUSED
    assert error["Error"]["Type"] == "Sender"
    assert (
        admin_sts(aws)
        .assume_role(RoleArn=arn, RoleSessionName="admin")["AssumedRoleUser"]["Arn"]
        .endswith("/trusting-root/admin")
    ), "the IAM user is of the account the trust policy names"


def test_the_admin_user_assumes_a_role_trusting_its_account(aws: EmulatedAws) -> None:
    """The exported IAM user holds AWS's AdministratorAccess (read back from the emulated IAM), and its
    policy is what lets it in: the trust policy names the account, which delegates to IAM."""
    keys = aws.admin_user_keys()
    iam = aws.client("iam", REGION)
    (attached,) = iam.list_attached_user_policies(UserName=ADMIN_USER)["AttachedPolicies"]
    assert attached["PolicyArn"] == "arn:aws:iam::aws:policy/AdministratorAccess"
    assert iam.list_access_keys(UserName=ADMIN_USER)["AccessKeyMetadata"][0]["AccessKeyId"] == keys["AccessKeyId"]
    assert admin_sts(aws).get_caller_identity()["Arn"] == ADMIN

    target = role(aws, "application", trust(ACCOUNT), allow(["kms:DescribeKey"], "*"))
    answer = admin_sts(aws).assume_role(RoleArn=target, RoleSessionName="app")
    assert answer["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/application/app"
    # Without AdministratorAccess, nothing of the user's allows sts:AssumeRole: the delegation refuses.
    iam.detach_user_policy(UserName=ADMIN_USER, PolicyArn=attached["PolicyArn"])
    message = refused(lambda: admin_sts(aws).assume_role(RoleArn=target, RoleSessionName="app"))
    assert f"User: {ADMIN} is not authorized to perform: sts:AssumeRole on resource: {target}" in message
    assert "no identity policy allows sts:AssumeRole" in message, message


@pytest.mark.parametrize("kind", ["writer", "reader"])
def test_the_administrator_cannot_assume_a_function_role(aws: EmulatedAws, kind: str) -> None:
    arn = role(aws, f"{kind}-role", LAMBDA_TRUST, allow(["kms:*"], "*"), path=f"/MrkToolkit/{kind}/")
    message = refused(lambda: admin_sts(aws).assume_role(RoleArn=arn, RoleSessionName="admin"))
    assert f"User: {ADMIN} is not authorized to perform: sts:AssumeRole on resource: {arn}" in message


def test_an_unknown_role_is_refused(aws: EmulatedAws) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:role/no-such-role"
    message = refused(lambda: admin_sts(aws).assume_role(RoleArn=arn, RoleSessionName="admin"))
    assert "sts:AssumeRole" in message and arn in message


def test_a_role_trusting_the_account_acts_as_its_session(aws: EmulatedAws) -> None:
    key = aws.client("kms", REGION).create_key()["KeyMetadata"]["Arn"]  # default key policy: the account delegates
    aws.client("dynamodb", REGION).create_table(
        TableName="records",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/records"
    auditor_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": key},
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table},
        ],
    }
    auditor = role(aws, "auditor", trust(ROOT), auditor_policy)
    operator = role(aws, "operator", LAMBDA_TRUST, allow(["sts:AssumeRole"], auditor))
    bystander = role(aws, "bystander", LAMBDA_TRUST, allow(["kms:*"], "*"))

    # The account root in the trust policy delegates to IAM: an identity policy must allow.
    message = refused(lambda: sts_as(aws, bystander).assume_role(RoleArn=auditor, RoleSessionName="audit"))
    assert "sts:AssumeRole" in message
    answer = sts_as(aws, operator).assume_role(RoleArn=auditor, RoleSessionName="audit")
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/auditor/audit"
    assert answer["AssumedRoleUser"]["Arn"] == session_arn
    creds = answer["Credentials"]
    assert client(aws, "sts", creds).get_caller_identity()["Arn"] == session_arn

    kms, dynamodb = client(aws, "kms", creds), client(aws, "dynamodb", creds)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"] == key
    assert "kms:Encrypt" in refused(lambda: kms.encrypt(KeyId=key, Plaintext=b"x"))
    assert "Item" not in dynamodb.get_item(TableName="records", Key={"id": {"S": "a"}})
    assert "dynamodb:PutItem" in refused(lambda: dynamodb.put_item(TableName="records", Item={"id": {"S": "a"}}))
    # The auditor's own trust policy names the account, and its identity policy has no sts:AssumeRole.
    assert "sts:AssumeRole" in refused(
        lambda: client(aws, "sts", creds).assume_role(RoleArn=auditor, RoleSessionName="again")
    )


def test_a_trust_policy_naming_the_caller_needs_no_identity_policy(aws: EmulatedAws) -> None:
    caller = role(aws, "caller", LAMBDA_TRUST, allow(["kms:DescribeKey"], "*"))
    target = role(aws, "target", trust(caller))
    assert (
        sts_as(aws, caller)
        .assume_role(RoleArn=target, RoleSessionName="direct")["AssumedRoleUser"]["Arn"]
        .endswith("/target/direct")
    )


def test_session_tags_need_sts_tag_session_and_become_principal_tags(aws: EmulatedAws) -> None:
    for name in ("tenant-a", "tenant-b"):
        aws.client("dynamodb", REGION).create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    own_table = allow(["dynamodb:GetItem"], f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/${{aws:PrincipalTag/tenant}}")
    tenant = role(aws, "tenant", trust(ROOT, actions=("sts:AssumeRole", "sts:TagSession")), own_table)
    untagged = role(aws, "untagged", trust(ROOT), own_table)
    broker = role(aws, "broker", LAMBDA_TRUST, allow(["sts:AssumeRole", "sts:TagSession"], "*"))
    sts = sts_as(aws, broker)

    tags = [{"Key": "tenant", "Value": "tenant-a"}]
    message = refused(lambda: sts.assume_role(RoleArn=untagged, RoleSessionName="tagged", Tags=tags))
    assert "sts:TagSession" in message, "the trust policy does not allow sts:TagSession"
    creds = sts.assume_role(RoleArn=tenant, RoleSessionName="tenant-a", Tags=tags)["Credentials"]
    dynamodb = client(aws, "dynamodb", creds)
    assert "Item" not in dynamodb.get_item(TableName="tenant-a", Key={"id": {"S": "a"}})
    assert "dynamodb:GetItem" in refused(lambda: dynamodb.get_item(TableName="tenant-b", Key={"id": {"S": "a"}}))


def test_what_is_not_emulated_is_refused(aws: EmulatedAws) -> None:
    target = role(aws, "target", trust(ROOT), allow(["kms:*"], "*"))
    session_policy = json.dumps(allow(["kms:DescribeKey"], "*"))
    message = refused(lambda: admin_sts(aws).assume_role(RoleArn=target, RoleSessionName="s1", Policy=session_policy))
    assert "not emulated" in message


def test_a_chained_session_keeps_the_transitive_tags(aws: EmulatedAws) -> None:
    for name in ("tenant-a", "tenant-b"):
        aws.client("dynamodb", REGION).create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    own_table = allow(["dynamodb:GetItem"], f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/${{aws:PrincipalTag/tenant}}")
    tagging = ("sts:AssumeRole", "sts:TagSession")
    tenant = role(aws, "tenant", trust(ROOT, actions=tagging), own_table)
    hop = role(aws, "hop", trust(ROOT, actions=tagging), allow(["sts:AssumeRole", "sts:TagSession"], tenant))
    broker = role(aws, "broker", LAMBDA_TRUST, allow(["sts:AssumeRole", "sts:TagSession"], hop))
    first = sts_as(aws, broker).assume_role(
        RoleArn=hop, RoleSessionName="hop", Tags=[{"Key": "tenant", "Value": "tenant-a"}], TransitiveTagKeys=["tenant"]
    )["Credentials"]
    hop_sts = client(aws, "sts", first)
    changed = [{"Key": "Tenant", "Value": "tenant-b"}]
    with pytest.raises(ClientError, match="transitive session tags cannot be changed"):
        hop_sts.assume_role(RoleArn=tenant, RoleSessionName="tenant", Tags=changed)
    dynamodb = client(aws, "dynamodb", hop_sts.assume_role(RoleArn=tenant, RoleSessionName="tenant")["Credentials"])
    assert "Item" not in dynamodb.get_item(TableName="tenant-a", Key={"id": {"S": "a"}})
    assert "dynamodb:GetItem" in refused(lambda: dynamodb.get_item(TableName="tenant-b", Key={"id": {"S": "a"}}))
