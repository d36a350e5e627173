"""A customer-managed key that encrypts the functions' log groups of one region."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_constructs.key_policies import admin_statement


class LogsKey(Construct):
    """KMS key for CloudWatch Logs in this region, usable only by the Logs service for this
    account's log groups. Props: ``admin_arns``, ``removal_policy``. Attribute: ``key``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        admin_arns: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        policy = iam.PolicyDocument(
            statements=[
                admin_statement(admin_arns),
                iam.PolicyStatement(
                    sid="CloudWatchLogsOfThisAccount",
                    principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                    actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                    resources=["*"],
                    conditions={
                        "ArnLike": {
                            "kms:EncryptionContext:aws:logs:arn": (
                                f"arn:{Aws.PARTITION}:logs:{region}:{Aws.ACCOUNT_ID}:log-group:*"
                            )
                        }
                    },
                ),
            ]
        )
        cfn = kms.CfnKey(
            self,
            "Key",
            description="Encrypts the writer and reader log groups (CloudWatch Logs)",
            enable_key_rotation=True,
            key_spec="SYMMETRIC_DEFAULT",
            key_usage="ENCRYPT_DECRYPT",
            pending_window_in_days=30,
            key_policy=policy,
        )
        cfn.apply_removal_policy(removal_policy)
        self.cfn_key = cfn
        self.key: kms.IKey = kms.Key.from_key_arn(self, "Imported", cfn.attr_arn)


def encrypted_log_group(
    scope: Construct, construct_id: str, *, key: kms.IKey, retention_days: int, removal_policy: RemovalPolicy
) -> logs.LogGroup:
    """A log group encrypted with ``key``, keeping ``retention_days`` (any value CloudWatch Logs accepts)."""
    group = logs.LogGroup(scope, construct_id, removal_policy=removal_policy, encryption_key=key)
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = retention_days
    return group
