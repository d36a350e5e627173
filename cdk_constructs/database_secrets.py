"""The database credentials: a master secret (primary region only) and one secret per
application database role, replicated to every secondary region.

Each region's copy is encrypted with that region's secrets key. A function reads its own role's
secret in its own region and no other (see ``secret_read_statements``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Aws, Fn, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from lambda_src.record_crypto.settings import DB_MASTER_USER, READER_ROLE, WRITER_ROLE

MASTER_USERNAME = DB_MASTER_USER
PASSWORD_LENGTH = 40


def _generated(username: str, database_name: str) -> secretsmanager.SecretStringGenerator:
    # dbname here; host, port and engine come from the secret's attachment to the primary cluster
    # (AWS::SecretsManager::SecretTargetAttachment): what the rotation function logs in with.
    return secretsmanager.SecretStringGenerator(
        secret_string_template=json.dumps({"username": username, "dbname": database_name}),
        generate_string_key="password",
        password_length=PASSWORD_LENGTH,
        exclude_punctuation=True,  # no quoting questions in connection strings or SQL
    )


class DatabaseSecrets(Construct):
    """Props: ``name_prefix`` (``<stackPrefix>/aurora``); ``database_name`` (in each secret, for the
    rotation function); ``secrets_key_arns`` (every region's
    secrets key, the primary's included); ``removal_policy``.
    Attributes: ``master``, ``writer``, ``reader`` (``Secret``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name_prefix: str,
        database_name: str,
        primary_region: str,
        secrets_key_arns: Mapping[str, str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        local_key = kms.Key.from_key_arn(self, "LocalKey", secrets_key_arns[primary_region])
        replicas = [
            secretsmanager.ReplicaRegion(region=region, encryption_key=kms.Key.from_key_arn(self, f"Key-{region}", arn))
            for region, arn in secrets_key_arns.items()
            if region != primary_region
        ]

        def secret(construct_id: str, username: str, description: str, replicated: bool) -> secretsmanager.Secret:
            created = secretsmanager.Secret(
                self,
                construct_id,
                secret_name=f"{name_prefix}/{username}",
                description=description,
                encryption_key=local_key,
                generate_secret_string=_generated(username, database_name),
                replica_regions=replicas if replicated else None,
            )
            created.apply_removal_policy(removal_policy)
            return created

        self.master = secret(
            "Master", MASTER_USERNAME, "Master user of the records database (schema setup only)", False
        )
        self.writer = secret(
            "Writer", WRITER_ROLE, "Database role of the writer functions: INSERT/UPDATE on the records table", True
        )
        self.reader = secret(
            "Reader", READER_ROLE, "Database role of the reader functions: SELECT on the records table", True
        )


def secret_id(secret_arn: str) -> str:
    """``name-AbCdEf``, the last part of a secret's ARN: the same in every replica region."""
    return Fn.select(6, Fn.split(":", secret_arn))


def secret_arn_in_region(secret_id_value: str, region: str) -> str:
    """The ARN of a replicated secret in ``region`` (a replica keeps its name and suffix)."""
    return f"arn:{Aws.PARTITION}:secretsmanager:{region}:{Aws.ACCOUNT_ID}:secret:{secret_id_value}"


def secret_read_statements(*, secret_arns: list[str], secrets_key_arn: str, region: str) -> list[iam.PolicyStatement]:
    """Read exactly these secrets (of this region): GetSecretValue on their ARNs, and kms:Decrypt
    on this region's secrets key only through Secrets Manager and only for these secrets."""
    return [
        iam.PolicyStatement(
            sid="OwnDatabaseSecret",
            actions=["secretsmanager:GetSecretValue"],
            resources=list(secret_arns),
        ),
        iam.PolicyStatement(
            sid="DecryptOwnSecretThroughSecretsManager",
            actions=["kms:Decrypt"],
            resources=[secrets_key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": f"secretsmanager.{region}.{Aws.URL_SUFFIX}",
                    "kms:EncryptionContext:SecretARN": list(secret_arns) if len(secret_arns) > 1 else secret_arns[0],
                }
            },
        ),
    ]
