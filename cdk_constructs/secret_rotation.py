"""Scheduled rotation of the database secrets: Secrets Manager's single-user rotation for
PostgreSQL, run by our own function (lambda_src/rotation.py) inside the isolated network.

Why our own function and not CDK's ``HostedRotation.postgre_sql_single_user``: the hosted rotation is
a SAM application (``AWS::Serverless-2016-10-31`` transform, a nested stack from the Serverless
Application Repository, a role with ``secretsmanager:GetRandomPassword`` on ``*`` and a security
group of its own) that the offline emulator cannot expand or run, so no test could show it
rotating; ours is bundled like the other functions (psycopg included), runs under a role scoped to
exactly these secrets, and the emulator runs it on the real PostgreSQL servers.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.encrypting_functions import function_role, own_log_group, vpc_access_policy
from cdk_constructs.isolated_network import IsolatedNetwork
from cdk_constructs.lambda_bundle import RUNTIME

ROTATION_HANDLER = "rotation.handler"
SECRETS_MANAGER_PRINCIPAL = "secretsmanager.amazonaws.com"
ROTATION_ACTIONS = (
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
)
# Secrets Manager decrypts the versions read and encrypts the one put, with the secret's key.
ROTATION_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


class SecretRotation(Construct):
    """Props: ``secrets`` (construct id -> ``Secret``, all of this region, encrypted with
    ``secrets_key_arn``); ``network`` (the function runs in its subnets with the clients' security
    group: 5432 to the cluster, 443 to the Secrets Manager endpoint); ``rotation_days`` (the
    schedule); ``code`` (the functions' bundle); ``log_group``; ``role_path``.
    Attributes: ``function``, ``role``, ``access_policy``, ``network_policy``, ``schedules``
    (construct id -> ``CfnRotationSchedule``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        secrets: Mapping[str, secretsmanager.Secret],
        secrets_key_arn: str,
        network: IsolatedNetwork,
        rotation_days: int,
        code: lambda_.Code,
        log_group: logs.ILogGroup,
        role_path: str,
    ) -> None:
        super().__init__(scope, construct_id)
        arns = [s.secret_arn for s in secrets.values()]
        self.role, self.access_policy = function_role(
            self,
            "Role",
            "AccessPolicy",
            path=role_path,
            description="Rotates the database secrets (Secrets Manager single-user rotation for PostgreSQL)",
            policy_description="Secret rotation: the database secrets only, their key through Secrets Manager",
            statements=[*_rotation_statements(Stack.of(self).region, arns, secrets_key_arn), own_log_group(log_group)],
        )
        placement = {"vpc": network.vpc, "subnets": network.subnets, "security_group": network.clients}
        self.network_policy = vpc_access_policy(self, "NetworkPolicy", role=self.role, path=role_path, **placement)
        self.function = self._function(network, code, log_group, concurrency=len(arns))
        self.function.node.add_dependency(self.access_policy, self.network_policy)
        self.schedules = {name: self._schedule(name, secret, rotation_days) for name, secret in secrets.items()}

    def _function(
        self, network: IsolatedNetwork, code: lambda_.Code, log_group: logs.ILogGroup, *, concurrency: int
    ) -> lambda_.Function:
        return lambda_.Function(
            self,
            "Function",
            description="Rotates a database role's password: Secrets Manager single-user rotation for PostgreSQL",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=ROTATION_HANDLER,
            code=code,
            role=self.role.without_policy_updates(),
            memory_size=256,
            timeout=Duration.minutes(1),
            # Secrets Manager runs one rotation per secret at a time; a few secrets, a few at once.
            reserved_concurrent_executions=concurrency,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            vpc=network.vpc,
            vpc_subnets=network.subnets,
            security_groups=[network.clients],
        )

    def _schedule(
        self, name: str, secret: secretsmanager.Secret, rotation_days: int
    ) -> secretsmanager.CfnRotationSchedule:
        # Only Secrets Manager, only for this secret, only from this account may invoke it.
        permission = lambda_.CfnPermission(
            self,
            f"Invoke{name}",
            action="lambda:InvokeFunction",
            function_name=self.function.function_arn,
            principal=SECRETS_MANAGER_PRINCIPAL,
            source_account=Aws.ACCOUNT_ID,
            source_arn=secret.secret_arn,
        )
        schedule = secretsmanager.CfnRotationSchedule(
            self,
            f"Schedule{name}",
            secret_id=secret.secret_arn,
            rotation_lambda_arn=self.function.function_arn,
            rotation_rules=secretsmanager.CfnRotationSchedule.RotationRulesProperty(
                automatically_after_days=rotation_days
            ),
            # The passwords were generated at deploy: the first rotation comes with the schedule.
            rotate_immediately_on_update=False,
        )
        schedule.node.add_dependency(permission)
        return schedule


def _rotation_statements(region: str, arns: list[str], secrets_key_arn: str) -> list[iam.PolicyStatement]:
    """The database secrets' rotation steps on exactly these secrets; their key only through Secrets Manager."""
    return [
        iam.PolicyStatement(sid="RotateDatabaseSecrets", actions=list(ROTATION_ACTIONS), resources=arns),
        iam.PolicyStatement(
            sid="SecretsKeyThroughSecretsManager",
            actions=list(ROTATION_KEY_ACTIONS),
            resources=[secrets_key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": f"secretsmanager.{region}.{Aws.URL_SUFFIX}",
                    "kms:EncryptionContext:SecretARN": arns,
                }
            },
        ),
    ]
