"""The audit alerts of one region: EventBridge rules on the CloudTrail events of the region's records
key, delivered to the region's alarm topic.

Why EventBridge rules and not CloudWatch Logs metric filters: the rules see every region's events in
that region (events arrive where the call was made), need no copy of the trail in CloudWatch Logs
(billed per GB ingested), deliver the whole event (who, which key, which record's encryption
context) to the topic instead of a count, and cost nothing per rule for AWS management events. A
rule receives the read-only events (Decrypt, GenerateDataKey) only in the state
``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS``, and only while a trail records them.

Rules (names from cloud_assembly/audit_events.py; what each watches: ``RULE_WATCHES``):
``key-administration`` and ``unexpected-key-use`` notify the topic with the event; ``denied-key-calls``
has no target: the denied-calls alarm (cdk_constructs/signals.py) counts its ``MatchedEvents``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import aws_events as events
from constructs import Construct

from cloud_assembly.audit_events import (
    CLOUDTRAIL_DETAIL_TYPE,
    DENIED_ERROR_PREFIX,
    KEY_ADMIN_EVENTS,
    KEY_USE_EVENTS,
    KMS_EVENT_SOURCE,
    READER_USE,
    RULE_DENIED_KEY_CALLS,
    RULE_KEY_ADMINISTRATION,
    RULE_TRAIL_CHANGES,
    RULE_UNEXPECTED_KEY_USE,
    RULE_WATCHES,
    STATE_ALL_MANAGEMENT_EVENTS,
    TENANT_RULE_WATCHES,
    TRAIL_BUCKET_EVENTS,
    TRAIL_EVENTS,
    WRITER_USE,
    rule_name,
)


def _kms_event(key_arns: Sequence[str], **detail: Any) -> dict[str, Any]:
    return {
        "source": ["aws.kms"],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {"eventSource": [KMS_EVENT_SOURCE], "resources": {"ARN": list(key_arns)}, **detail},
    }


def _issuer_other_than(*role_arns: str) -> dict[str, Any]:
    return {"sessionContext": {"sessionIssuer": {"arn": [{"anything-but": list(role_arns)}]}}}


def administration_pattern(key_arns: Sequence[str]) -> dict[str, Any]:
    return _kms_event(key_arns, eventName=list(KEY_ADMIN_EVENTS))


def unexpected_use_pattern(
    key_arns: Sequence[str],
    writer_role_arn: str,
    reader_role_arn: str,
    finder_role_arn: str | None = None,
    *,
    application: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Any use of the keys except the writer role's GenerateDataKey and the reader role's (and, with
    beacons, the finder role's) Decrypt (for tenant keys: the tenant-access roles, whose sessions name
    them as their issuer); ``application``: the application writer's and reader's roles (or, for tenant
    keys, their tenant-access roles), whose use is expected as the functions' is."""
    readers = (reader_role_arn, finder_role_arn) if finder_role_arn else (reader_role_arn,)
    writers = (writer_role_arn, application[0]) if application else (writer_role_arn,)
    readers += (application[1],) if application else ()
    return _kms_event(
        list(key_arns),
        eventName=list(KEY_USE_EVENTS),
        **{
            "$or": [
                {"userIdentity": {"type": [{"anything-but": ["AssumedRole"]}]}},
                {"eventName": [{"anything-but": [READER_USE, WRITER_USE]}]},
                {"eventName": [READER_USE], "userIdentity": _issuer_other_than(*readers)},
                {"eventName": [WRITER_USE], "userIdentity": _issuer_other_than(*writers)},
            ]
        },
    )


def denied_pattern(key_arns: Sequence[str]) -> dict[str, Any]:
    return _kms_event(key_arns, errorCode=[{"prefix": DENIED_ERROR_PREFIX}])


class AuditRules(Construct):
    """Props: ``prefix`` (rule names ``<prefix>-<region>-<what>``; the topic's policy lets
    EventBridge publish for rules named so); ``region``; ``key_arn`` (the region's records key);
    ``writer_role_arn`` / ``reader_role_arn``; ``topic_arn``; ``other_key_arns`` (the region's other
    toolkit keys: table or storage and secrets, logs, topic; their administration is watched too);
    ``tenant_key_arns`` with ``tenant_roles`` (writer's, reader's and, with beacons, finder's tenant-access
    role ARNs), with tenants: the tenant keys' administration and the calls denied on them are watched as
    the records key's, and any use of them other than GenerateDataKey in a session of the writer's
    tenant-access role and Decrypt in one of the reader's (or the finder's) is unexpected;
    ``finder_role_arn`` (with beacons: its Decrypt of the records key is expected use too);
    ``application_roles`` (with applicationPrincipals: the application writer's and reader's roles, whose use of
    the records key is expected, without tenants) and ``application_tenant_roles`` (with tenants: their
    tenant-access roles, whose use of the tenant keys is expected as the functions' tenant-access roles' is).
    Attribute: ``rules`` (what -> CfnRule)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        region: str,
        key_arn: str,
        writer_role_arn: str,
        reader_role_arn: str,
        topic_arn: str,
        other_key_arns: Sequence[str] = (),
        tenant_key_arns: Sequence[str] = (),
        tenant_roles: tuple[str, str] | tuple[str, str, str] | None = None,
        finder_role_arn: str | None = None,
        application_roles: tuple[str, str] | None = None,
        application_tenant_roles: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        unexpected = unexpected_use_pattern(
            [key_arn], writer_role_arn, reader_role_arn, finder_role_arn, application=application_roles
        )
        watches = dict(RULE_WATCHES)
        if tenant_key_arns:
            if tenant_roles is None:
                raise ValueError("tenant keys need the tenant-access roles (tenant_roles) of their legitimate use")
            tenant_use = unexpected_use_pattern(tenant_key_arns, *tenant_roles, application=application_tenant_roles)
            unexpected = {"$or": [unexpected, tenant_use]}
            watches = dict(TENANT_RULE_WATCHES)
        patterns = {
            RULE_KEY_ADMINISTRATION: (
                administration_pattern([key_arn, *tenant_key_arns, *other_key_arns]),
                "ENABLED",
                True,
            ),
            RULE_UNEXPECTED_KEY_USE: (
                unexpected,
                STATE_ALL_MANAGEMENT_EVENTS,
                True,
            ),
            RULE_DENIED_KEY_CALLS: (denied_pattern([key_arn, *tenant_key_arns]), STATE_ALL_MANAGEMENT_EVENTS, False),
        }
        self.rules: dict[str, events.CfnRule] = {}
        for what, (pattern, state, notify) in patterns.items():
            rule = events.CfnRule(
                self,
                what.title().replace("-", ""),
                name=rule_name(prefix, region, what),
                description=f"Watches {watches[what]}"[:512],
                event_pattern=pattern,
                state=state,
                targets=[events.CfnRule.TargetProperty(id="AlarmTopic", arn=topic_arn)] if notify else None,
            )
            self.rules[what] = rule


def trail_changes_pattern(trail_arn: str, trail_name: str, bucket_name: str, key_arn: str) -> dict[str, Any]:
    """The trail stopped, deleted or changed; its bucket's protections changed; its key administered."""
    api = {"detail-type": [CLOUDTRAIL_DETAIL_TYPE]}
    return {
        "$or": [
            {
                **api,
                "source": ["aws.cloudtrail"],
                "detail": {
                    "eventName": list(TRAIL_EVENTS),
                    "requestParameters": {"name": [trail_arn, trail_name]},
                },
            },
            {
                **api,
                "source": ["aws.s3"],
                "detail": {"eventName": list(TRAIL_BUCKET_EVENTS), "requestParameters": {"bucketName": [bucket_name]}},
            },
            administration_pattern([key_arn]),
        ]
    }


class TrailChangesRule(Construct):
    """The audit trail's own alert, in the trail's home region: ``rule`` (``CfnRule``) named
    ``<prefix>-<region>-audit-trail-changes``, notifying ``topic_arn`` (the region's alarm topic, by
    its fixed name: the topic's policy lets EventBridge publish for rules named so)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        region: str,
        trail_arn: str,
        trail_name: str,
        bucket_name: str,
        key_arn: str,
        topic_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.rule = events.CfnRule(
            self,
            "Rule",
            name=rule_name(prefix, region, RULE_TRAIL_CHANGES),
            description=f"Watches {RULE_WATCHES[RULE_TRAIL_CHANGES]}"[:512],
            event_pattern=trail_changes_pattern(trail_arn, trail_name, bucket_name, key_arn),
            state="ENABLED",
            targets=[events.CfnRule.TargetProperty(id="AlarmTopic", arn=topic_arn)],
        )
