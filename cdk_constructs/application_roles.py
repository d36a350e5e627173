"""The application roles of one region: what an application outside Lambda assumes to use ``record_crypto``
as a library (README "The application roles")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_constructs.discovery_parameters import DiscoveryParameters
from cdk_constructs.encrypting_functions import key_statement, table_statements
from lambda_src.record_crypto.settings import PARTITION_KEY, VERSION_ATTRIBUTE


def application_principal(principal: str) -> iam.IPrincipal:
    """An account id (its administrators decide who in it may assume the role) or a role/user ARN."""
    return iam.AccountPrincipal(principal) if principal.isdigit() else iam.ArnPrincipal(principal)


class ApplicationRoles(Construct):
    """An application writer and an application reader: the writer and reader functions' rights, for a
    principal outside Lambda.

    Props (keyword-only): ``principals`` (who may assume them: account ids, role or user ARNs; the trust
    policy names them and nobody else); ``mrk_arn`` and ``encryption_context`` (the local multi-region key,
    used only with the toolkit's context: the same statement as the functions'); ``table_arn`` (the local
    replica); ``discovery`` (the region's parameters: read by path and by name); ``writer_role_path`` /
    ``reader_role_path`` (the functions' paths: the key policies name roles by path, so nothing else
    needs a change).

    The writer may only ``kms:GenerateDataKey``, ``dynamodb:PutItem`` and ``dynamodb:GetItem`` of the key
    and version attributes alone; the reader only ``kms:Decrypt`` and ``dynamodb:GetItem``; both read the
    discovery parameters. No log group, no tracing: the application has its own.
    Attributes: ``writer``, ``reader`` (``iam.Role``), ``writer_policy``, ``reader_policy``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        principals: Sequence[str],
        mrk_arn: str,
        encryption_context: Mapping[str, str],
        table_arn: str,
        discovery: DiscoveryParameters,
        writer_role_path: str,
        reader_role_path: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        discovery_read = discovery.read_statements(
            region=stack.region, account=stack.account, partition=stack.partition
        )
        self.writer, self.writer_policy = self._role(
            "Writer",
            principals,
            writer_role_path,
            "An application's writer: encrypts records with the local multi-region key and stores them",
            [
                key_statement("kms:GenerateDataKey", mrk_arn, encryption_context),
                *table_statements(table_arn, ("dynamodb:PutItem",), (PARTITION_KEY, VERSION_ATTRIBUTE)),
                *discovery_read,
            ],
        )
        self.reader, self.reader_policy = self._role(
            "Reader",
            principals,
            reader_role_path,
            "An application's reader: reads records from the local replica and decrypts them",
            [
                key_statement("kms:Decrypt", mrk_arn, encryption_context),
                *table_statements(table_arn, ("dynamodb:GetItem",), ()),
                *discovery_read,
            ],
        )

    def _role(
        self,
        kind: str,
        principals: Sequence[str],
        path: str,
        description: str,
        statements: list[iam.PolicyStatement],
    ) -> tuple[iam.Role, iam.ManagedPolicy]:
        role = iam.Role(
            self,
            f"{kind}Role",
            assumed_by=iam.CompositePrincipal(*map(application_principal, principals)),
            path=path,
            description=description,
        )
        # One customer-managed policy, as the functions' (no inline policy).
        policy = iam.ManagedPolicy(
            self,
            f"{kind}Policy",
            description=f"Application{kind}: local multi-region key, local table replica, discovery parameters",
            path=path,
            roles=[role],
            statements=statements,
        )
        return role, policy
