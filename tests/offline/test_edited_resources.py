"""The main job on assemblies whose resource policies or encryption at rest were weakened (issue 19,
item 2): each edit passed the main job before offline/verification/resources.py, and now fails it
with a line naming the resource and the principal or statement (and, where nothing else notices,
nothing else fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.offline.edits import edited, failures, resources, run

pytestmark = pytest.mark.e2e
KEYS_WEST, FUNCTIONS_WEST, TABLE = "MrkToolkit-Keys-us-west-1", "MrkToolkit-Functions-us-west-1", "MrkToolkit-Table"
POLICIES_WEST = "deployed: every resource policy in us-west-1 names only its contract's principals"
AT_REST_WEST = "deployed: everything at rest in us-west-1 is encrypted with a customer-managed key of us-west-1"


def _open_topic(template: dict[str, Any]) -> None:
    """Anyone may subscribe to the alarm topic, or publish to it."""
    (policy,) = resources(template, "AWS::SNS::TopicPolicy")
    topic = policy["Properties"]["Topics"][0]
    anyone = {"Sid": "AnyoneSubscribes", "Effect": "Allow", "Principal": "*", "Resource": topic}
    policy["Properties"]["PolicyDocument"]["Statement"].append(anyone | {"Action": ["sns:Subscribe", "sns:Publish"]})


def _writer_logs_without_key(template: dict[str, Any]) -> None:
    (logs,) = resources(template, "AWS::Logs::LogGroup", "RecordsWriterLogs")
    del logs["Properties"]["KmsKeyId"]


def _key_policy(template: dict[str, Any], contains: str) -> list[dict[str, Any]]:
    (key,) = [r for r in resources(template, "AWS::KMS::Key", contains) + resources(template, "AWS::KMS::ReplicaKey")]
    return key["Properties"]["KeyPolicy"]["Statement"]


def _mrk_for_another_account(template: dict[str, Any]) -> None:
    statement = {"Sid": "PartnerDecrypts", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}
    _key_policy(template, "RecordsKey").append(statement | {"Principal": {"AWS": "arn:aws:iam::444455556666:root"}})


def _table_key_for_anyone_through_dynamodb(template: dict[str, Any]) -> None:
    """A ``*`` principal pinned to DynamoDB of the region, but to no account."""
    (table_key,) = resources(template, "AWS::KMS::Key", "TableKey")
    table_key["Properties"]["KeyPolicy"]["Statement"].append(
        {
            "Sid": "AnyoneThroughDynamoDb",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "dynamodb.us-west-1.amazonaws.com"}},
        }
    )


@pytest.mark.parametrize(
    ("stack", "edit", "expected"),
    [
        (
            FUNCTIONS_WEST,
            _open_topic,
            {
                POLICIES_WEST: [
                    "arn:aws:sns:us-west-1:123456789012:MrkToolkit-alarms (alarm topic policy): statement "
                    "AnyoneSubscribes allows principal * without a condition pinning account 123456789012",
                    "statement AnyoneSubscribes lets arn:aws:iam::999999999999:root and "
                    "arn:aws:iam::999999999999:role/outsider and cloudwatch.amazonaws.com acting for account "
                    "999999999999 and events.amazonaws.com acting for account 999999999999: sns:Publish, sns:Subscribe",
                ]
            },
        ),
        (
            FUNCTIONS_WEST,
            _writer_logs_without_key,
            {
                AT_REST_WEST: [
                    "log group MrkToolkit-Functions-us-west-1-RecordsWriterLogs1E1EC2D3: not encrypted with a "
                    "customer-managed key (no kmsKeyId)"
                ]
            },
        ),
        (
            KEYS_WEST,
            _mrk_for_another_account,
            {
                POLICIES_WEST: [
                    "arn:aws:kms:us-west-1:123456789012:key/mrk-",
                    "(records key): statement PartnerDecrypts names principal arn:aws:iam::444455556666:root, "
                    "not in the contract of a records key",
                    "statement PartnerDecrypts lets arn:aws:iam::444455556666:root and "
                    "arn:aws:iam::444455556666:role/outsider: kms:Decrypt",
                ]
            },
        ),
        (
            KEYS_WEST,
            _table_key_for_anyone_through_dynamodb,
            {
                POLICIES_WEST: [
                    " (table key): statement AnyoneThroughDynamoDb allows",
                    "statement AnyoneThroughDynamoDb allows principal * without a condition pinning account "
                    "123456789012",
                    "statement AnyoneThroughDynamoDb lets arn:aws:iam::999999999999:root and "
                    "arn:aws:iam::999999999999:role/outsider and dynamodb.amazonaws.com acting for account "
                    "999999999999: kms:Decrypt, kms:GenerateDataKey, kms:GenerateDataKeyPair, "
                    "kms:GenerateDataKeyPairWithoutPlaintext and 1 more",
                ]
            },
        ),
    ],
    ids=["open-topic", "log-group-without-key", "key-for-another-account", "star-through-dynamodb"],
)
def test_a_weakened_resource_fails_the_main_job(
    default_assembly: Path, tmp_path: Path, stack: str, edit: Any, expected: dict[str, list[str]]
) -> None:
    failed = failures(run(edited(default_assembly, tmp_path / "cdk.out", {stack: edit}), tmp_path))
    assert set(failed) == set(expected), failed
    for name, texts in expected.items():
        for text in texts:
            assert text in failed[name], failed[name]


def test_a_replica_on_the_aws_managed_key_fails_the_main_job(default_assembly: Path, tmp_path: Path) -> None:
    def aws_managed(template: dict[str, Any]) -> None:
        ((table,),) = [resources(template, "AWS::DynamoDB::GlobalTable")]
        replica = next(r for r in table["Properties"]["Replicas"] if r["Region"] == "us-west-1")
        del replica["SSESpecification"]

    failed = failures(run(edited(default_assembly, tmp_path / "cdk.out", {TABLE: aws_managed}), tmp_path))
    line = failed[AT_REST_WEST]
    assert "table replica arn:aws:dynamodb:us-west-1:123456789012:table/mrk-toolkit-records: encrypted with" in line
    assert "managed by AWS, not the customer" in line, line
