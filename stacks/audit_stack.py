"""The audit trail, in the primary region (one multi-region trail records every region)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Aws, CfnOutput, Stack, Validations
from constructs import Construct

from cdk_constructs.audit_rules import TrailChangesRule
from cdk_constructs.audit_trail import AuditTrail
from stacks.config import ToolkitConfig
from stacks.shared import alarm_topic_name, removal_policy

NO_ACCESS_LOGS_REASON = (
    "The trail bucket holds only CloudTrail's own log and digest files; who reads them is decided by the "
    "bucket policy and the trail key's policy (kms:ViaService s3, named readers), and every kms:Decrypt of a "
    "log file is itself a management event this trail records. Server access logs would need a second bucket "
    "with the same finding."
)
NO_REPLICATION_REASON = (
    "Log file validation (signed digest files) proves integrity; versioning keeps overwritten objects. A copy in "
    "another region is an organization decision (an organization trail into a log archive account: "
    "mrk-toolkit:auditTrailArn), not this toolkit's."
)
NO_CLOUDWATCH_LOGS_REASON = (
    "The alerts are EventBridge rules in each region (they receive read-only KMS events, carry the full event "
    "and cost nothing per rule); a CloudWatch Logs copy of every management event would be billed per GB "
    "ingested for no alert the rules do not already give."
)


def trail_name(config: ToolkitConfig) -> str:
    return f"{config.stack_prefix}-audit"


class AuditStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: ToolkitConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.audit = AuditTrail(
            self,
            "Audit",
            trail_name=trail_name(config),
            reader_arns=config.audit.reader_arns,
            admin_arns=config.key_admin_arns,
            retention_days=config.audit.retention_days,
            removal_policy=removal_policy(config),
        )
        acknowledge_trail_findings(self.audit)
        region, prefix = config.primary_region, config.stack_prefix
        self.changes_rule = TrailChangesRule(
            self,
            "TrailChanges",
            prefix=prefix,
            region=region,
            trail_arn=self.audit.trail_arn,
            trail_name=trail_name(config),
            bucket_name=self.audit.bucket.bucket_name,
            key_arn=self.audit.key.attr_arn,
            # The functions stack of this region makes the topic (fixed name); EventBridge accepts a
            # target before it exists, and the topic's policy lets it publish for this rule's name.
            topic_arn=f"arn:{Aws.PARTITION}:sns:{region}:{Aws.ACCOUNT_ID}:{alarm_topic_name(config)}",
        )
        CfnOutput(self, "TrailArn", value=self.audit.trail_arn)
        CfnOutput(self, "TrailBucketName", value=self.audit.bucket.bucket_name)


def _ack(scope: Construct, rule_id: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_trail_findings(audit: AuditTrail) -> None:
    """Each acknowledgement scoped to one resource and one finding, with its reason."""
    bucket = audit.bucket.node.default_child
    _ack(bucket, "AwsSolutions::AwsSolutions-S1", NO_ACCESS_LOGS_REASON)
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        _ack(bucket, f"{pack}::{pack}-S3BucketLoggingEnabled", NO_ACCESS_LOGS_REASON)
        _ack(bucket, f"{pack}::{pack}-S3BucketReplicationEnabled", NO_REPLICATION_REASON)
        _ack(audit.trail, f"{pack}::{pack}-CloudTrailCloudWatchLogsEnabled", NO_CLOUDWATCH_LOGS_REASON)
    # checkov's word for the access logs finding (it reads skips from the template metadata).
    bucket.add_metadata("checkov", {"skip": [{"id": "CKV_AWS_18", "comment": NO_ACCESS_LOGS_REASON}]})  # type: ignore[union-attr]
