"""The emulated CloudTrail (offline/emulator/cloudtrail.py, fed by the gateway): every decided request
is a CloudTrail record of its region, a refusal included with its error, the KMS encryption context
kept, ciphertext left out; LookupEvents serves management events to ordinary clients; moto's
EventBridge matcher needs the array-of-objects view the emulator gives it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.events.models import EventPattern

from offline.emulator.cloudtrail import ruler_view
from offline.emulator.server import EmulatedAws

REGION = "us-west-1"
CONTEXT = {"purpose": "mrk-toolkit:record", "table": "records", "schema": "1", "item": "rec-42"}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture(scope="module")
def aws() -> Iterator[EmulatedAws]:
    with EmulatedAws() as emulated:
        yield emulated


@pytest.fixture(scope="module")
def setup(aws: EmulatedAws) -> dict[str, Any]:
    """A key the root may use, a role allowed Decrypt by IAM but not by the key policy, a ciphertext."""
    root = f"arn:aws:iam::{aws.account}:root"
    # The root itself only (no delegation to IAM): the role's own IAM allow is not enough.
    only_root = {"ArnEquals": {"aws:PrincipalArn": root}}
    policy = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*", "Condition": only_root}
        ]
    }
    kms = aws.client("kms", REGION)
    key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]
    iam = aws.client("iam", REGION)
    role = iam.create_role(RoleName="reader", Path="/MrkToolkit/reader/", AssumeRolePolicyDocument=json.dumps(TRUST))
    allow = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key["Arn"]}],
    }
    iam.put_role_policy(RoleName="reader", PolicyName="decrypt", PolicyDocument=json.dumps(allow))
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"data key", EncryptionContext=CONTEXT)["CiphertextBlob"]
    return {"key": key, "role": role["Role"]["Arn"], "blob": blob}


def _lookup(aws: EmulatedAws, name: str, region: str = REGION) -> list[dict[str, Any]]:
    pages = aws.client("cloudtrail", region).get_paginator("lookup_events")
    attributes = [{"AttributeKey": "EventName", "AttributeValue": name}]
    return [json.loads(e["CloudTrailEvent"]) for p in pages.paginate(LookupAttributes=attributes) for e in p["Events"]]


def test_a_denied_decrypt_is_recorded_with_its_error_its_caller_and_its_context(aws: EmulatedAws, setup: dict) -> None:
    role_kms = aws.role_session(setup["role"]).client("kms", region_name=REGION, endpoint_url=aws.endpoint_url)
    with pytest.raises(ClientError, match="AccessDenied"):
        role_kms.decrypt(CiphertextBlob=setup["blob"], EncryptionContext=CONTEXT)
    (record,) = [r for r in _lookup(aws, "Decrypt") if r.get("errorCode")]
    assert record["errorCode"] == "AccessDeniedException" and "not authorized" in record["errorMessage"]
    assert record["eventSource"] == "kms.amazonaws.com" and record["awsRegion"] == REGION
    assert record["readOnly"] is True and record["eventCategory"] == "Management"
    identity = record["userIdentity"]
    assert identity["type"] == "AssumedRole" and identity["arn"].startswith(
        f"arn:aws:sts::{aws.account}:assumed-role/reader/"
    )
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == setup["role"]
    assert record["requestParameters"]["encryptionContext"] == CONTEXT
    assert "ciphertextBlob" not in record["requestParameters"]  # CloudTrail leaves the bytes out
    assert record["resources"] == [{"accountId": aws.account, "type": "AWS::KMS::Key", "ARN": setup["key"]["Arn"]}]
    assert record["requestID"] and record["eventID"] and record["eventTime"].endswith("Z")


def test_an_allowed_call_by_the_root_and_an_answer_with_an_error(aws: EmulatedAws, setup: dict) -> None:
    kms = aws.client("kms", REGION)
    kms.decrypt(CiphertextBlob=setup["blob"], EncryptionContext=CONTEXT)
    with pytest.raises(ClientError):
        kms.describe_key(KeyId="no-such-key")
    (allowed,) = [r for r in _lookup(aws, "Decrypt") if r["userIdentity"]["type"] == "Root"]
    assert "errorCode" not in allowed and allowed["requestParameters"]["encryptionContext"] == CONTEXT
    missing = [r for r in _lookup(aws, "DescribeKey") if r["requestParameters"] == {"keyId": "no-such-key"}]
    assert [r["errorCode"] for r in missing] == ["NotFoundException"]


def test_records_are_kept_per_region_and_paged_newest_first(aws: EmulatedAws, setup: dict) -> None:
    assert _lookup(aws, "Decrypt", region="us-east-2") == []
    client = aws.client("cloudtrail", REGION)
    first = client.lookup_events(MaxResults=1)
    second = client.lookup_events(MaxResults=1, NextToken=first["NextToken"])
    assert first["Events"][0]["EventTime"] >= second["Events"][0]["EventTime"]
    assert first["Events"][0]["EventId"] != second["Events"][0]["EventId"]


def test_item_requests_are_data_events_kept_out_of_lookup_events(aws: EmulatedAws) -> None:
    ddb = aws.client("dynamodb", REGION)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="t", Item={"id": {"S": "1"}})
    assert _lookup(aws, "CreateTable") and not _lookup(aws, "PutItem")
    kept = aws.gateway.trail.records(aws.account, REGION)
    assert [r["eventCategory"] for r in kept if r["eventName"] == "PutItem"] == ["Data"]


def test_moto_still_needs_the_array_of_objects_view() -> None:
    """When moto matches fields inside arrays of objects itself, ``ruler_view`` can go."""
    pattern = EventPattern.load(json.dumps({"detail": {"resources": {"ARN": ["arn:k"]}}}))
    event = {"detail": {"resources": [{"ARN": "arn:other"}, {"ARN": "arn:k", "type": "AWS::KMS::Key"}]}}
    assert not pattern.matches_event(event)
    assert pattern.matches_event(ruler_view(event))
