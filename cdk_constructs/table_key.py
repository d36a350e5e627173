"""A customer-managed key that encrypts a DynamoDB table replica at rest (SSE)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_constructs.key_policies import admin_statement

DYNAMODB_SSE_ACTIONS = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)


def table_key_policy(scope: Stack, *, admin_arns: Sequence[str]) -> iam.PolicyDocument:
    region = scope.region
    return iam.PolicyDocument(
        statements=[
            admin_statement(admin_arns),
            iam.PolicyStatement(
                sid="UseOnlyThroughDynamoDbInThisAccount",
                principals=[iam.AccountRootPrincipal()],
                actions=list(DYNAMODB_SSE_ACTIONS),
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"dynamodb.{region}.{Aws.URL_SUFFIX}",
                        "kms:CallerAccount": Aws.ACCOUNT_ID,
                    }
                },
            ),
            iam.PolicyStatement(
                sid="DynamoDbDescribesKey",
                principals=[iam.ServicePrincipal("dynamodb.amazonaws.com")],
                actions=["kms:DescribeKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
        ]
    )


class TableKey(Construct):
    """Customer-managed SSE key of one table replica, usable only through DynamoDB.

    Props: ``alias``; ``admin_arns`` (default: the account); ``pending_window_days`` (7-30);
    ``removal_policy`` (default RETAIN). Attributes: ``key_arn``, ``cfn_key``.
    The application roles get no permission on it: they reach the table, DynamoDB uses the key.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alias: str,
        admin_arns: Sequence[str] = (),
        pending_window_days: int = 30,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cfn_key = kms.CfnKey(
            self,
            "Key",
            description="Encrypts the records table replica at rest (DynamoDB SSE)",
            enable_key_rotation=True,
            key_spec="SYMMETRIC_DEFAULT",
            key_usage="ENCRYPT_DECRYPT",
            pending_window_in_days=pending_window_days,
            key_policy=table_key_policy(Stack.of(self), admin_arns=admin_arns),
        )
        self.cfn_key.apply_removal_policy(removal_policy)
        self.key_arn: str = self.cfn_key.attr_arn
        kms.CfnAlias(self, "Alias", alias_name=alias, target_key_id=self.cfn_key.attr_key_id)
