"""The main job on assemblies whose signals were edited: a missing security alarm, an unencrypted
alarm topic, a topic key CloudWatch may not use. Each fails the run with a line naming it (and
nothing in the other region fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.offline.edits import edited, failures, resources, run

pytestmark = pytest.mark.e2e
FUNCTIONS_WEST = "MrkToolkit-Functions-us-west-1"
ALARMS_WEST = "deployed: us-west-1 alarms on its functions and replication notify an encrypted topic"
POLICIES_WEST = "deployed: every resource policy in us-west-1 names only its contract's principals"
AT_REST_WEST = "deployed: everything at rest in us-west-1 is encrypted with a customer-managed key of us-west-1"
TAMPER = "signals: the main job's tamper refusals reach the security alarms, which fire (emulated evaluation)"


def _without_reader_security_alarm(template: dict[str, Any]) -> None:
    (lid,) = [
        lid
        for lid, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["AlarmName"].endswith("reader-security-refusals")
    ]
    del template["Resources"][lid]


def _unencrypted_topic(template: dict[str, Any]) -> None:
    (topic,) = resources(template, "AWS::SNS::Topic")
    del topic["Properties"]["KmsMasterKeyId"]


def _key_for_other_alarms(template: dict[str, Any]) -> None:
    (key,) = resources(template, "AWS::KMS::Key", "AlarmTopic")
    (stmt,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchAlarmsThroughSns"]
    source = stmt["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
    source[-1] = source[-1].replace(":alarm:MrkToolkit-", ":alarm:Other-")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _without_reader_security_alarm,
            {
                ALARMS_WEST: "no alarm in us-west-1 watches reader SecurityRefusals (MrkToolkit)",
                TAMPER: "no alarm in us-west-1 watches the reader's SecurityRefusals",
            },
        ),
        (
            _unencrypted_topic,
            {
                ALARMS_WEST: "is not encrypted (no KmsMasterKeyId)",
                AT_REST_WEST: "topic arn:aws:sns:us-west-1:123456789012:MrkToolkit-alarms: not encrypted with a "
                "customer-managed key (no KmsMasterKeyId)",
                # the topic's key, now unused, may name the account root only
                POLICIES_WEST: "(key nothing deployed uses): statement CloudWatchAlarmsThroughSns names principal "
                "cloudwatch.amazonaws.com, not in the contract of a key nothing deployed uses",
            },
        ),
        (_key_for_other_alarms, {ALARMS_WEST: "CloudWatch may not use"}),
    ],
    ids=["no-security-alarm", "unencrypted-topic", "topic-key-for-other-alarms"],
)
def test_an_edited_signal_fails_the_run(default_assembly: Path, tmp_path: Path, edit: Any, expected: dict) -> None:
    failed = failures(run(edited(default_assembly, tmp_path / "cdk.out", {FUNCTIONS_WEST: edit}), tmp_path))
    assert set(failed) == set(expected), failed
    for name, text in expected.items():
        assert text in failed[name], failed[name]
