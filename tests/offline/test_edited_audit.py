"""The main job on assemblies whose audit rules were edited: rules gone, a rule watching another key,
a use rule that does not receive read-only events, a topic EventBridge may not publish to. Each fails
the run with a line naming what is missing (and nothing in the other region fails)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.offline.edits import edited, failures, resources, run

pytestmark = pytest.mark.e2e
FUNCTIONS_WEST = "MrkToolkit-Functions-us-west-1"
TOPIC_WEST = "arn:aws:sns:us-west-1:123456789012:MrkToolkit-alarms"
RULES_WEST = "deployed: the audit rules of us-west-1 watch its keys and notify its alarm topic"
ADMIN_DECRYPT = (
    "audit: the account's administrator decrypting a record in us-west-1 fires us-west-1's unexpected-use alert"
)
KEY_POLICY = "audit: a change to the records key's policy in us-west-1 fires us-west-1's administration alert"


def _without_rules(template: dict[str, Any]) -> None:
    for lid in [lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"]:
        del template["Resources"][lid]


def _rule(template: dict[str, Any], what: str) -> dict[str, Any]:
    (rule,) = [r for r in resources(template, "AWS::Events::Rule") if r["Properties"]["Name"].endswith(what)]
    return rule["Properties"]


def _use_rule_on_another_key(template: dict[str, Any]) -> None:
    pattern = _rule(template, "unexpected-key-use")["EventPattern"]
    pattern["detail"]["resources"]["ARN"] = ["arn:aws:kms:us-west-1:123456789012:key/another-key"]


def _administration_of_the_records_key_only(template: dict[str, Any]) -> None:
    pattern = _rule(template, "key-administration")["EventPattern"]
    pattern["detail"]["resources"]["ARN"] = pattern["detail"]["resources"]["ARN"][:1]


def _use_rule_without_read_only_events(template: dict[str, Any]) -> None:
    _rule(template, "unexpected-key-use")["State"] = "ENABLED"


def _topic_closed_to_eventbridge(template: dict[str, Any]) -> None:
    (policy,) = resources(template, "AWS::SNS::TopicPolicy")
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "AuditEventRulesPublish"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _without_rules,
            {
                RULES_WEST: f"no enabled rule in us-west-1 notifies {TOPIC_WEST} of a key policy change on its "
                "records key",
                ADMIN_DECRYPT: "no rule named MrkToolkit-us-west-1-unexpected-key-use matched the Decrypt",
                KEY_POLICY: "no rule named MrkToolkit-us-west-1-key-administration matched the PutKeyPolicy",
            },
        ),
        (
            _use_rule_on_another_key,
            {
                RULES_WEST: f"no enabled rule in us-west-1 notifies {TOPIC_WEST} of a decrypt by the account root",
                ADMIN_DECRYPT: "no rule named MrkToolkit-us-west-1-unexpected-key-use matched the Decrypt",
            },
        ),
        (
            _administration_of_the_records_key_only,
            {
                RULES_WEST: f"no enabled rule in us-west-1 notifies {TOPIC_WEST} of a change to the key "
                "arn:aws:kms:us-west-1"
            },
        ),
        (
            _use_rule_without_read_only_events,
            {
                RULES_WEST: f"no enabled rule in us-west-1 notifies {TOPIC_WEST} of a decrypt by the account root",
                ADMIN_DECRYPT: "no rule named MrkToolkit-us-west-1-unexpected-key-use matched the Decrypt",
            },
        ),
        (
            _topic_closed_to_eventbridge,
            {
                ADMIN_DECRYPT: "MrkToolkit-us-west-1-unexpected-key-use matched but could not notify "
                f"{TOPIC_WEST}: the topic policy does not let EventBridge publish",
                KEY_POLICY: "MrkToolkit-us-west-1-key-administration matched but could not notify",
            },
        ),
    ],
    ids=[
        "no-rules",
        "use-rule-on-another-key",
        "administration-of-the-records-key-only",
        "use-rule-without-read-only-events",
        "topic-closed-to-eventbridge",
    ],
)
def test_an_edited_audit_rule_fails_the_run(default_assembly: Path, tmp_path: Path, edit: Any, expected: dict) -> None:
    failed = failures(run(edited(default_assembly, tmp_path / "cdk.out", {FUNCTIONS_WEST: edit}), tmp_path))
    assert set(failed) == set(expected), failed
    for name, text in expected.items():
        assert text in failed[name], failed[name]


AUDIT = "MrkToolkit-Audit"
TRAIL = "deployed: a multi-region trail records every management event, logging, with log file validation"
RULES_EAST = "deployed: the audit rules of us-east-2 watch its keys and notify its alarm topic"
TRAIL_ALERT = "audit: stopping the audit trail's logging fires the trail-changes alert in its home region"


def _without_trail_rule(template: dict[str, Any]) -> None:
    _without_rules(template)


def _trail_without_validation(template: dict[str, Any]) -> None:
    (trail,) = resources(template, "AWS::CloudTrail::Trail")
    trail["Properties"]["EnableLogFileValidation"] = False


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _without_trail_rule,
            {
                TRAIL_ALERT: "no rule named MrkToolkit-us-east-2-audit-trail-changes matched",
                # the trail's key is watched by that rule only
                RULES_EAST: "notifies arn:aws:sns:us-east-2:123456789012:MrkToolkit-alarms of a change to the key "
                "arn:aws:kms:us-east-2:123456789012:key/",
            },
        ),
        (_trail_without_validation, {TRAIL: "no multi-region trail records every management event with logging"}),
    ],
    ids=["no-trail-rule", "trail-without-log-file-validation"],
)
def test_an_edited_audit_trail_fails_the_run(default_assembly: Path, tmp_path: Path, edit: Any, expected: dict) -> None:
    failed = failures(run(edited(default_assembly, tmp_path / "cdk.out", {AUDIT: edit}), tmp_path))
    assert set(failed) == set(expected), failed
    for name, text in expected.items():
        assert text in failed[name], failed[name]
