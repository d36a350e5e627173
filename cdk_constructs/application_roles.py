"""The application roles of one region: what an application outside Lambda assumes to use ``record_crypto``
as a library (README "The application roles")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_constructs.discovery_parameters import DiscoveryParameters
from cdk_constructs.encrypting_functions import BeaconAccess, key_statement, table_statements, tenant_access_role
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
    replica); ``writer_role_path`` / ``reader_role_path`` (the functions' paths: the key policies name roles
    by path, so nothing else needs a change); ``tenants`` (default False: the deployment has tenants, so no
    role has a grant on the records key) with ``tenant_key_arns`` (this region's tenant keys, default none);
    ``beacons`` (default None: no beacon fields): the writer computes each record's beacons as the writer
    function does (``kms:GenerateMac`` with HMAC_SHA_256 on the region's beacon key, the same statement).

    The writer may only ``kms:GenerateDataKey``, ``dynamodb:PutItem`` and ``dynamodb:GetItem`` of the key
    and version attributes alone; the reader only ``kms:Decrypt`` and ``dynamodb:GetItem``. With tenants, the
    KMS action is its tenant-access role's instead (``writer_tenant_role``, ``reader_tenant_role``: its own,
    trusted by it alone, assumed per tenant with the session tag ``tenant``, using that tenant's key with
    that tenant's context only; as the functions'), in regions with tenant keys. Both read the discovery
    parameters once ``grant_discovery`` names them. No log group, no tracing: the application has its own.
    Attributes: ``writer``, ``reader`` (``iam.Role``), ``writer_policy``, ``reader_policy``,
    ``writer_tenant_role``, ``reader_tenant_role`` (``iam.Role`` or None: without tenant keys here).
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
        writer_role_path: str,
        reader_role_path: str,
        tenants: bool = False,
        tenant_key_arns: Sequence[str] = (),
        beacons: BeaconAccess | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._context, self._key_arns = encryption_context, tuple(tenant_key_arns)
        self._paths = {"Writer": writer_role_path, "Reader": reader_role_path}
        self._uses = "its tenant-access role" if tenants else "local multi-region key"
        self.writer, self.writer_policy = self._role(
            "Writer",
            principals,
            writer_role_path,
            "An application's writer: encrypts records with the local multi-region key and stores them",
            [
                *([] if tenants else [key_statement("kms:GenerateDataKey", mrk_arn, encryption_context)]),
                *table_statements(table_arn, ("dynamodb:PutItem",), (PARTITION_KEY, VERSION_ATTRIBUTE)),
                *([beacons.statement()] if beacons is not None else []),
            ],
        )
        self.reader, self.reader_policy = self._role(
            "Reader",
            principals,
            reader_role_path,
            "An application's reader: reads records from the local replica and decrypts them",
            [
                *([] if tenants else [key_statement("kms:Decrypt", mrk_arn, encryption_context)]),
                *table_statements(table_arn, ("dynamodb:GetItem",), ()),
            ],
        )
        self.writer_tenant_role = self._tenant_role("Writer", self.writer, self.writer_policy, "kms:GenerateDataKey")
        self.reader_tenant_role = self._tenant_role("Reader", self.reader, self.reader_policy, "kms:Decrypt")

    def grant_discovery(self, discovery: DiscoveryParameters) -> None:
        """Both roles read the region's discovery parameters (by path and by name), nothing else of SSM."""
        stack = Stack.of(self)
        statements = discovery.read_statements(region=stack.region, account=stack.account, partition=stack.partition)
        for policy in (self.writer_policy, self.reader_policy):
            policy.add_statements(*statements)

    def _tenant_role(self, kind: str, role: iam.Role, policy: iam.ManagedPolicy, action: str) -> iam.Role | None:
        """The application's own tenant-access role (not the function's: the functions' stay trusted by their
        function alone, and a trail tells an application's tenant-key use from a function's)."""
        if not self._key_arns:
            return None
        tenant_role, statements = tenant_access_role(
            self,
            f"{kind}TenantRole",
            f"{kind}TenantAccessPolicy",
            trusted=role,
            path=self._paths[kind],
            action=action,
            key_arns=self._key_arns,
            encryption_context=self._context,
            description=f"Application{kind}",
        )
        policy.add_statements(*statements)
        return tenant_role

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
            description=f"Application{kind}: {self._uses}, local table replica, discovery parameters",
            path=path,
            roles=[role],
            statements=statements,
        )
        return role, policy
