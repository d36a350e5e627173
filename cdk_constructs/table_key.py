"""Customer-managed keys that an AWS service uses on the toolkit's behalf, one per region:
the DynamoDB table replica's SSE key, the Aurora cluster's storage key, the secrets' key.

Each key is usable only through its service in its own region (``kms:ViaService``) by this
account; the application roles get no direct use of it (the secrets key is the one exception:
a function reads its own secret through Secrets Manager, which decrypts with the caller's
permission, so the function's IAM policy names the key under the same ``kms:ViaService``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from cdk_constructs.key_policies import admin_statement

# What a service needs to encrypt at rest with a customer managed key on the caller's behalf.
SERVICE_ENCRYPTION_ACTIONS = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)
DYNAMODB_SSE_ACTIONS = SERVICE_ENCRYPTION_ACTIONS
SECRETS_MANAGER_ACTIONS = SERVICE_ENCRYPTION_ACTIONS
# RDS also lists the grants it made for the cluster's instances (storage and Performance Insights).
RDS_STORAGE_ACTIONS = tuple(sorted((*SERVICE_ENCRYPTION_ACTIONS, "kms:ListGrants")))


@dataclass(frozen=True)
class ServiceKeySpec:
    """Which service may use the key, for what, and how the key describes itself."""

    service: str  # the kms:ViaService prefix: dynamodb, rds, secretsmanager
    use_sid: str
    actions: tuple[str, ...]
    description: str
    describe_sid: str | None = None  # a statement letting the service principal DescribeKey


TABLE_KEY = ServiceKeySpec(
    service="dynamodb",
    use_sid="UseOnlyThroughDynamoDbInThisAccount",
    actions=DYNAMODB_SSE_ACTIONS,
    description="Encrypts the records table replica at rest (DynamoDB SSE)",
    describe_sid="DynamoDbDescribesKey",
)
STORAGE_KEY = ServiceKeySpec(
    service="rds",
    use_sid="UseOnlyThroughRdsInThisAccount",
    actions=RDS_STORAGE_ACTIONS,
    description="Encrypts this region's Aurora cluster storage and Performance Insights at rest",
)
SECRETS_KEY = ServiceKeySpec(
    service="secretsmanager",
    use_sid="UseOnlyThroughSecretsManagerInThisAccount",
    actions=SECRETS_MANAGER_ACTIONS,
    description="Encrypts this region's copies of the database credentials (Secrets Manager)",
)


def service_key_policy(scope: Stack, spec: ServiceKeySpec, *, admin_arns: Sequence[str]) -> iam.PolicyDocument:
    region = scope.region
    statements = [
        admin_statement(admin_arns),
        iam.PolicyStatement(
            sid=spec.use_sid,
            principals=[iam.AccountRootPrincipal()],
            actions=list(spec.actions),
            resources=["*"],
            conditions={
                "StringEquals": {
                    "kms:ViaService": f"{spec.service}.{region}.{Aws.URL_SUFFIX}",
                    "kms:CallerAccount": Aws.ACCOUNT_ID,
                }
            },
        ),
    ]
    if spec.describe_sid:
        statements.append(
            iam.PolicyStatement(
                sid=spec.describe_sid,
                principals=[iam.ServicePrincipal(f"{spec.service}.amazonaws.com")],
                actions=["kms:DescribeKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
    return iam.PolicyDocument(statements=statements)


def table_key_policy(scope: Stack, *, admin_arns: Sequence[str]) -> iam.PolicyDocument:
    return service_key_policy(scope, TABLE_KEY, admin_arns=admin_arns)


class ServiceKey(Construct):
    """Customer-managed key of one region, usable only through ``spec.service``.

    Props: ``spec`` (``TABLE_KEY``, ``STORAGE_KEY``, ``SECRETS_KEY``); ``alias``; ``admin_arns``
    (default: the account); ``pending_window_days`` (7-30); ``removal_policy`` (default RETAIN).
    Attributes: ``key_arn``, ``cfn_key``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: ServiceKeySpec,
        alias: str,
        admin_arns: Sequence[str] = (),
        pending_window_days: int = 30,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.cfn_key = kms.CfnKey(
            self,
            "Key",
            description=spec.description,
            enable_key_rotation=True,
            key_spec="SYMMETRIC_DEFAULT",
            key_usage="ENCRYPT_DECRYPT",
            pending_window_in_days=pending_window_days,
            key_policy=service_key_policy(Stack.of(self), spec, admin_arns=admin_arns),
        )
        self.cfn_key.apply_removal_policy(removal_policy)
        self.key_arn: str = self.cfn_key.attr_arn
        kms.CfnAlias(self, "Alias", alias_name=alias, target_key_id=self.cfn_key.attr_key_id)
