"""The audit trail and the audit rules as synthesized (issue 18, items 1 and 2).

The trail: one multi-region management-events trail with log file validation, in the primary region,
into a versioned, TLS-only, private bucket encrypted with a key only this trail may encrypt with. The
rules: per region, key administration, unexpected key use and denied calls on that region's records
key, matched here with moto's EventBridge pattern implementation on CloudTrail-shaped events (what
the emulator does), and allowed to publish to the region's alarm topic and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from moto.events.models import EventPattern

from cdk_constructs.audit_rules import (
    AuditRules,
    administration_pattern,
    denied_pattern,
    trail_changes_pattern,
    unexpected_use_pattern,
)
from cloud_assembly.audit_events import (
    RULE_DENIED_KEY_CALLS,
    RULE_KEY_ADMINISTRATION,
    RULE_TRAIL_CHANGES,
    RULE_UNEXPECTED_KEY_USE,
    STATE_ALL_MANAGEMENT_EVENTS,
    eventbridge_event,
    rule_name,
)
from offline.emulator.cloudtrail import rule_matches, user_identity
from policy_engine import Caller, Request, authorize
from stacks.config import ConfigError
from tests.infra.helpers import resources, statement, statements
from tests.infra.synth import ACCOUNT, Synthesized, context_for, synthesize
from tests.infra.test_signals import _resolve

KEY = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/mrk-1234"
WRITER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/Writer"
READER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/Reader"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def _trail(app: Synthesized) -> tuple[dict[str, Any], str]:
    assert app.stacks.audit is not None
    tpl = app.raw(app.stacks.audit)
    ((trail,),) = [list(resources(tpl, "AWS::CloudTrail::Trail").values())]
    return tpl, trail["Properties"]


def test_one_multi_region_management_trail_with_log_file_validation(default_app: Synthesized) -> None:
    tpl, trail = _trail(default_app)
    assert default_app.stacks.audit.region == default_app.config.primary_region  # type: ignore[union-attr]
    assert trail["IsMultiRegionTrail"] is True and trail["EnableLogFileValidation"] is True
    assert trail["IsLogging"] is True and trail["IncludeGlobalServiceEvents"] is True
    assert trail["EventSelectors"] == [{"IncludeManagementEvents": True, "ReadWriteType": "All"}]
    key_id = trail["KMSKeyId"]["Fn::GetAtt"][0]
    assert resources(tpl, "AWS::KMS::Key")[key_id]["Properties"]["EnableKeyRotation"] is True


def test_the_trail_bucket_is_private_versioned_tls_only_and_encrypted_with_the_trail_key(
    default_app: Synthesized,
) -> None:
    tpl, trail = _trail(default_app)
    ((bucket_id, bucket),) = resources(tpl, "AWS::S3::Bucket").items()
    props = bucket["Properties"]
    assert trail["S3BucketName"] == {"Ref": bucket_id}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == trail["KMSKeyId"]
    (lifecycle,) = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["ExpirationInDays"] == default_app.config.audit.retention_days == 365
    ((policy,),) = [[r["Properties"]["PolicyDocument"] for r in resources(tpl, "AWS::S3::BucketPolicy").values()]]
    (deny,) = [s for s in statements(policy) if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def _trail_key_policy(app: Synthesized) -> tuple[dict[str, Any], str]:
    tpl, trail = _trail(app)
    key = resources(tpl, "AWS::KMS::Key")[trail["KMSKeyId"]["Fn::GetAtt"][0]]
    region = app.config.primary_region
    return _resolve("audit", region, key["Properties"]["KeyPolicy"]), f"arn:aws:cloudtrail:{region}:{ACCOUNT}:trail/"


def test_cloudtrail_may_encrypt_for_this_trail_only(default_app: Synthesized) -> None:
    policy, trails = _trail_key_policy(default_app)
    own = trails + "MrkToolkit-audit"

    def may_encrypt(source: str, context_trail: str) -> bool:
        facts = {"aws:SourceArn": source, "kms:EncryptionContext:aws:cloudtrail:arn": context_trail}
        request = Request(Caller(ACCOUNT, service="cloudtrail.amazonaws.com"), "kms:GenerateDataKey", KEY, facts)
        return authorize(request, resource_policy=("key", policy), resource_policy_required=True).allowed

    assert may_encrypt(own, own)
    assert not may_encrypt(trails + "another-trail", trails + "another-trail")  # a confused deputy
    assert not may_encrypt(own, trails + "another-trail")
    assert not may_encrypt(own.replace(ACCOUNT, "999999999999"), own)
    readers = statement(policy, "ReadersDecryptLogFilesThroughS3")
    assert readers["Action"] == "kms:Decrypt" and "kms:ViaService" in readers["Condition"]["StringEquals"]


def _rules(app: Synthesized, region: str) -> dict[str, dict[str, Any]]:
    tpl = app.raw(app.stacks.functions[region])
    return {r["Properties"]["Name"]: r["Properties"] for r in resources(tpl, "AWS::Events::Rule").values()}


def test_every_region_has_its_three_rules_on_its_own_records_key(synthesized: Synthesized) -> None:
    prefix = synthesized.config.stack_prefix
    for region, stack in synthesized.stacks.functions.items():
        rules = _rules(synthesized, region)
        names = {rule_name(prefix, region, w) for w in (RULE_KEY_ADMINISTRATION, RULE_UNEXPECTED_KEY_USE)}
        assert set(rules) == names | {rule_name(prefix, region, RULE_DENIED_KEY_CALLS)}
        topic = stack.alarm_topic.topic.node.default_child.logical_id  # type: ignore[union-attr]
        for name in names:
            assert rules[name]["Targets"] == [{"Arn": {"Ref": stack.resolve(topic)}, "Id": "AlarmTopic"}]
        # The read-only events (Decrypt, GenerateDataKey) reach a rule only in this state.
        assert rules[rule_name(prefix, region, RULE_UNEXPECTED_KEY_USE)]["State"] == STATE_ALL_MANAGEMENT_EVENTS
        assert rules[rule_name(prefix, region, RULE_DENIED_KEY_CALLS)]["State"] == STATE_ALL_MANAGEMENT_EVENTS
        assert "Targets" not in rules[rule_name(prefix, region, RULE_DENIED_KEY_CALLS)]


def _event(name: str, *, role: str | None, error: str | None = None, key: str = KEY) -> dict[str, Any]:
    who = user_identity(ACCOUNT, role or ROOT, role is None, None, "AKIA")
    record = {
        "eventID": "e",
        "eventTime": "2026-01-01T00:00:00Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-west-1",
        "userIdentity": who,
        "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key}],
        "requestParameters": {"encryptionContext": {"id": "r1"}},
    }
    if error:
        record["errorCode"] = error
    return eventbridge_event(record, ACCOUNT)


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return rule_matches(EventPattern.load(json.dumps(pattern)), event)


@pytest.mark.parametrize(
    ("name", "role", "expected"),
    [
        ("Decrypt", READER, False),
        ("GenerateDataKey", WRITER, False),
        ("Decrypt", WRITER, True),
        ("GenerateDataKey", READER, True),
        ("Decrypt", None, True),  # the account's administrator (root)
        ("Decrypt", f"arn:aws:iam::{ACCOUNT}:role/Admin", True),
        ("ReEncrypt", READER, True),
        ("Encrypt", WRITER, True),
    ],
)
def test_unexpected_use_is_any_use_but_the_writers_and_the_readers_own(
    name: str, role: str | None, expected: bool
) -> None:
    pattern = unexpected_use_pattern([KEY], WRITER, READER)
    assert _matches(pattern, _event(name, role=role)) is expected
    # Another key's use is never this rule's business.
    assert not _matches(pattern, _event(name, role=role, key=KEY.replace("1234", "9999")))


def test_administration_and_denied_patterns() -> None:
    other = KEY.replace("mrk-1234", "table-key")
    assert _matches(administration_pattern([KEY, other]), _event("PutKeyPolicy", role=None))
    assert _matches(administration_pattern([KEY, other]), _event("ScheduleKeyDeletion", role=WRITER, key=other))
    assert not _matches(administration_pattern([KEY]), _event("ScheduleKeyDeletion", role=WRITER, key=other))
    assert not _matches(administration_pattern([KEY]), _event("Decrypt", role=None))
    assert _matches(denied_pattern([KEY]), _event("Decrypt", role=READER, error="AccessDeniedException"))
    assert not _matches(denied_pattern([KEY]), _event("Decrypt", role=READER))
    assert not _matches(denied_pattern([KEY]), _event("Decrypt", role=READER, error="NotFoundException"))


def test_eventbridge_may_publish_and_use_the_topic_key_for_this_regions_rules_only(default_app: Synthesized) -> None:
    region, prefix = "us-west-1", default_app.config.stack_prefix
    stack = default_app.stacks.functions[region]
    tpl = default_app.raw(stack)
    topic_arn = f"arn:aws:sns:{region}:{ACCOUNT}:{prefix}-alarms"
    ((topic_policy,),) = [[r["Properties"] for r in resources(tpl, "AWS::SNS::TopicPolicy").values()]]
    physical = {lid: topic_arn for lid in resources(tpl, "AWS::SNS::Topic")}
    document = _resolve(stack.stack_name, region, topic_policy["PolicyDocument"], physical)
    (key,) = [r for lid, r in resources(tpl, "AWS::KMS::Key").items() if lid.startswith("AlarmTopic")]
    key_policy = _resolve(stack.stack_name, region, key["Properties"]["KeyPolicy"])
    own = f"arn:aws:events:{region}:{ACCOUNT}:rule/{prefix}-{region}-unexpected-key-use"
    for rule, allowed in (
        (own, True),
        (f"arn:aws:events:{region}:{ACCOUNT}:rule/Other-{region}-x", False),
        (f"arn:aws:events:us-east-2:{ACCOUNT}:rule/{prefix}-{region}-x", False),
        (own.replace(ACCOUNT, "999999999999"), False),
    ):
        facts = {"aws:SourceArn": rule, "aws:SourceAccount": rule.split(":")[4], "aws:SecureTransport": "true"}
        caller = Caller(ACCOUNT, service="events.amazonaws.com")
        publish = authorize(Request(caller, "sns:Publish", topic_arn, facts), resource_policy=("topic", document))
        use = authorize(
            Request(caller, "kms:GenerateDataKey", KEY, {**facts, "kms:EncryptionContext:aws:sns:topicArn": topic_arn}),
            resource_policy=("key", key_policy),
            resource_policy_required=True,
        )
        assert (publish.allowed, use.allowed) == (allowed, allowed), (rule, publish.reason, use.reason)


def test_audit_off_or_an_existing_trail() -> None:
    off = synthesize(context_for(audit=False))
    assert off.stacks.audit is None
    assert not any(resources(off.raw(s), "AWS::Events::Rule") for s in off.stacks.functions.values())
    org = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/organization"
    existing = synthesize(context_for(auditTrailArn=org))
    assert existing.stacks.audit is None and existing.config.audit.existing_trail_arn == org
    assert all(len(resources(existing.raw(s), "AWS::Events::Rule")) == 3 for s in existing.stacks.functions.values())


def test_a_bad_trail_arn_names_the_field() -> None:
    with pytest.raises(ConfigError, match="auditTrailArn"):
        synthesize(context_for(auditTrailArn="my-trail"))


def test_the_administration_rule_watches_every_toolkit_key_of_its_region(default_app: Synthesized) -> None:
    prefix = default_app.config.stack_prefix
    for region, stack in default_app.stacks.functions.items():
        tpl = default_app.raw(stack)
        watched = _rules(default_app, region)[rule_name(prefix, region, RULE_KEY_ADMINISTRATION)]["EventPattern"]
        arns = watched["detail"]["resources"]["ARN"]
        local = {lid for lid in resources(tpl, "AWS::KMS::Key")}  # the logs key and the topic key
        assert {a["Fn::GetAtt"][0] for a in arns if "Fn::GetAtt" in a} == local
        outputs = [a["Fn::GetStackOutput"]["StackName"] for a in arns if "Fn::GetStackOutput" in a]
        assert outputs == [f"{prefix}-Keys-{region}"] * 2  # the records key and the table key


def test_the_trail_changes_rule_watches_this_trail_its_bucket_and_its_key(default_app: Synthesized) -> None:
    assert default_app.stacks.audit is not None
    tpl = default_app.raw(default_app.stacks.audit)
    ((rule,),) = [[r["Properties"] for r in resources(tpl, "AWS::Events::Rule").values()]]
    primary, prefix = default_app.config.primary_region, default_app.config.stack_prefix
    assert rule["Name"] == rule_name(prefix, primary, RULE_TRAIL_CHANGES) and rule["State"] == "ENABLED"
    assert rule["Targets"][0]["Arn"]["Fn::Join"][1][-1] == f":{prefix}-alarms"
    trail = f"arn:aws:cloudtrail:{primary}:{ACCOUNT}:trail/{prefix}-audit"
    pattern = trail_changes_pattern(trail, f"{prefix}-audit", "the-bucket", KEY)

    def event(source: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        record = {
            "eventID": "e",
            "eventTime": "2026-01-01T00:00:00Z",
            "eventSource": f"{source}.amazonaws.com",
            "eventName": name,
            "awsRegion": primary,
            "userIdentity": user_identity(ACCOUNT, ROOT, True, None, "AKIA"),
            "requestParameters": params,
        }
        return eventbridge_event(record, ACCOUNT)

    assert _matches(pattern, event("cloudtrail", "StopLogging", {"name": f"{prefix}-audit"}))
    assert _matches(pattern, event("cloudtrail", "DeleteTrail", {"name": trail}))
    assert not _matches(pattern, event("cloudtrail", "StopLogging", {"name": "another-trail"}))
    assert _matches(pattern, event("s3", "PutBucketPolicy", {"bucketName": "the-bucket"}))
    assert not _matches(pattern, event("s3", "PutBucketPolicy", {"bucketName": "another-bucket"}))
    assert _matches(pattern, _event("ScheduleKeyDeletion", role=None))


def test_with_tenants_each_regions_tenant_keys_are_watched_as_its_records_key(tenants_app: Synthesized) -> None:
    """Administration of a tenant key (disable, schedule deletion, a policy change) alerts, and calls
    denied on it (a session probing another tenant's key) are counted, in each region where it exists."""
    prefix = tenants_app.config.stack_prefix
    for region in tenants_app.stacks.functions:
        rules = _rules(tenants_app, region)
        expected = {t.tenant_id for t in tenants_app.config.tenants if region in t.regions}
        for what in (RULE_KEY_ADMINISTRATION, RULE_DENIED_KEY_CALLS):
            arns = rules[rule_name(prefix, region, what)]["EventPattern"]["detail"]["resources"]["ARN"]
            outputs = [a["Fn::GetStackOutput"]["OutputName"] for a in arns if "Fn::GetStackOutput" in a]
            watched = {
                t.tenant_id for t in tenants_app.config.tenants if any(f"Tenant{t.tenant_id}Key" in o for o in outputs)
            }
            assert watched == expected, (region, what, outputs)


TENANT_KEY_ARN = f"arn:aws:kms:us-west-1:{ACCOUNT}:key/mrk-7777"
TENANT_WRITER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/writer/WriterTenantRole"
TENANT_READER = f"arn:aws:iam::{ACCOUNT}:role/MrkToolkit/reader/ReaderTenantRole"


def _unexpected_rule(**tenants: Any) -> dict[str, Any]:
    """The unexpected-use rule's pattern as AuditRules builds it (literal ARNs, so that it can be matched)."""
    stack = Stack(App(), "Rules", env=Environment(account=ACCOUNT, region="us-west-1"))
    rules = AuditRules(
        stack,
        "AuditRules",
        prefix="MrkToolkit",
        region="us-west-1",
        key_arn=KEY,
        writer_role_arn=WRITER,
        reader_role_arn=READER,
        topic_arn=f"arn:aws:sns:us-west-1:{ACCOUNT}:MrkToolkit-alarms",
        **tenants,
    )
    pattern = stack.resolve(rules.rules[RULE_UNEXPECTED_KEY_USE].event_pattern)
    assert isinstance(pattern, dict)
    return pattern


@pytest.mark.parametrize(
    ("name", "role", "key", "expected"),
    [
        ("Decrypt", TENANT_READER, TENANT_KEY_ARN, False),  # a tenant's session of the reader's tenant-access role
        ("GenerateDataKey", TENANT_WRITER, TENANT_KEY_ARN, False),
        ("Decrypt", READER, TENANT_KEY_ARN, True),  # the function role itself may not use a tenant key
        ("GenerateDataKey", WRITER, TENANT_KEY_ARN, True),
        ("Decrypt", TENANT_WRITER, TENANT_KEY_ARN, True),
        ("GenerateDataKey", TENANT_READER, TENANT_KEY_ARN, True),
        ("Decrypt", None, TENANT_KEY_ARN, True),  # the account's administrator
        ("ReEncrypt", TENANT_READER, TENANT_KEY_ARN, True),
        ("Decrypt", READER, KEY, False),  # the records key's own users are unchanged
        ("Decrypt", TENANT_READER, KEY, True),  # a tenant-access role has no business with the records key
    ],
)
def test_with_tenants_unexpected_use_of_a_tenant_key_is_any_but_the_tenant_access_roles_own(
    name: str, role: str | None, key: str, expected: bool
) -> None:
    pattern = _unexpected_rule(tenant_key_arns=[TENANT_KEY_ARN], tenant_roles=(TENANT_WRITER, TENANT_READER))
    assert _matches(pattern, _event(name, role=role, key=key)) is expected
    # Without tenant keys, the rule is the records key's alone (the deployment without tenants).
    assert _unexpected_rule() == unexpected_use_pattern([KEY], WRITER, READER)


def test_tenant_keys_without_their_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="tenant_roles"):
        _unexpected_rule(tenant_key_arns=[TENANT_KEY_ARN])


def test_with_tenants_each_regions_unexpected_use_rule_names_its_tenant_access_roles(tenants_app: Synthesized) -> None:
    prefix = tenants_app.config.stack_prefix
    for region, stack in tenants_app.stacks.functions.items():
        rule = _rules(tenants_app, region)[rule_name(prefix, region, RULE_UNEXPECTED_KEY_USE)]
        records, tenant = rule["EventPattern"]["$or"]
        issuers = [
            c["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"][0]["anything-but"][0]
            for c in tenant["detail"]["$or"]
            if "userIdentity" in c and "sessionContext" in c["userIdentity"]
        ]
        roles = [stack.functions.reader.tenant_role, stack.functions.writer.tenant_role]
        assert sorted(json.dumps(i) for i in issuers) == sorted(
            json.dumps(stack.resolve(r.role_arn)) for r in roles if r is not None
        )
        # The same tenant keys as the denied-calls rule watches (the records key first there), and not the records key.
        denied = _rules(tenants_app, region)[rule_name(prefix, region, RULE_DENIED_KEY_CALLS)]
        (records_key, *tenant_keys) = denied["EventPattern"]["detail"]["resources"]["ARN"]
        assert tenant["detail"]["resources"]["ARN"] == tenant_keys and tenant_keys
        assert records["detail"]["resources"]["ARN"] == [records_key]
