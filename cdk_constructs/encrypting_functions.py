"""The writer and reader functions of one region, with their least-privilege roles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_constructs.database_secrets import secret_read_statements
from cdk_constructs.lambda_bundle import RUNTIME
from cdk_constructs.logs_key import LogsKey, encrypted_log_group

# The environment contract is written down once, on the function's side (lambda_src never
# imports CDK; this side may import that plain module), and tests/infra feed every template's
# environment through its validation.
from lambda_src.record_crypto.settings import (
    BEACON_INDEX_PREFIX,
    ENV_ALGORITHM_SUITE,
    ENV_BEACON_BACKFILL_PATH,
    ENV_BEACON_FIELDS,
    ENV_BEACON_KEY_ARN,
    ENV_CACHE_CAPACITY,
    ENV_CACHE_MAX_AGE,
    ENV_CACHE_MAX_BYTES,
    ENV_CACHE_MAX_MESSAGES,
    ENV_DATA_KEY_CACHE,
    ENV_DB_HOST,
    ENV_DB_NAME,
    ENV_DB_PORT,
    ENV_DB_SECRET_ARN,
    ENV_MAX_RECORD_BYTES,
    ENV_MRK_ARN,
    ENV_RECORD_STORE,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    ENV_TENANT_KEYS,
    ENV_TENANT_ROLE_ARN,
    ENV_UNSIGNED_ATTRIBUTES,
    PARTITION_KEY,
    STORE_AURORA_POSTGRESQL,
    SUITE_SIGNING,
    TENANT_KEY,
    VERSION_ATTRIBUTE,
    BeaconField,
    beacon_fields_environment,
    tenant_keys_environment,
)

MAC_ALGORITHM = "HMAC_SHA_256"  # the one algorithm the beacon key is used with (record_crypto/beacons.py)


@dataclass(frozen=True)
class BeaconAccess:
    """Beacons (README "Beacons"): the beacon fields, this region's ARN of the multi-region HMAC key, and
    the finder's role path (under the reader's: it decrypts what it finds)."""

    fields: tuple[BeaconField, ...]
    key_arn: str
    finder_role_path: str
    # The SSM path of the backfill's state in this region (settings.beacon_backfill_path): the finder reads
    # ``<path>/<field>`` to say whether a lookup is complete (README "Adding a beacon field").
    backfill_path: str = ""

    def environment(self, *, finder: bool = False) -> dict[str, str]:
        env = {ENV_BEACON_FIELDS: beacon_fields_environment(self.fields), ENV_BEACON_KEY_ARN: self.key_arn}
        if finder and self.backfill_path:
            env[ENV_BEACON_BACKFILL_PATH] = self.backfill_path
        return env

    def statements(self, stack: Stack, *, finder: bool) -> list[iam.PolicyStatement]:
        """What the writer (the beacon key) and the finder (also its backfill state) need."""
        return [self.statement(), *(self.backfill_statements(stack) if finder else [])]

    def backfill_statements(self, stack: Stack) -> list[iam.PolicyStatement]:
        """The finder's ``ssm:GetParameter`` on its region's backfill path alone (one parameter per field)."""
        if not self.backfill_path:
            return []
        name = f"{self.backfill_path.lstrip('/')}/*"
        return [
            iam.PolicyStatement(
                sid="BeaconBackfillState",
                actions=["ssm:GetParameter"],
                resources=[stack.format_arn(service="ssm", resource="parameter", resource_name=name)],
            )
        ]

    def statement(self) -> iam.PolicyStatement:
        """``kms:GenerateMac`` with HMAC_SHA_256 on this region's beacon key (the key policy says the same)."""
        return iam.PolicyStatement(
            sid="LocalBeaconKey",
            actions=["kms:GenerateMac"],
            resources=[self.key_arn],
            conditions={"StringEquals": {"kms:MacAlgorithm": MAC_ALGORITHM}},
        )


@dataclass(frozen=True)
class DatabaseAccess:
    """Where the functions of one region find the Aurora store: the writer through the global
    database's writer endpoint, which always names the current primary's writer (after a switchover
    or failover too, with no deploy; reached over the VPC peering), the reader through its own
    region's reader endpoint; the network placement; each function's own credentials secret (ARNs
    of THIS region). Nothing here names the primary region: it moves."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup
    writer_host: str
    reader_host: str
    port: str
    database_name: str
    writer_secret_arn: str
    reader_secret_arn: str
    secrets_key_arn: str

    def environment(self, secret_arn: str, host: str) -> dict[str, str]:
        return {
            ENV_RECORD_STORE: STORE_AURORA_POSTGRESQL,
            ENV_DB_HOST: host,
            ENV_DB_PORT: self.port,
            ENV_DB_NAME: self.database_name,
            ENV_DB_SECRET_ARN: secret_arn,
        }

    def statements(self, secret_arn: str, region: str) -> list[iam.PolicyStatement]:
        return secret_read_statements(secret_arns=[secret_arn], secrets_key_arn=self.secrets_key_arn, region=region)


# Lambda creates and removes the function's network interfaces with the function's role:
# describing needs Resource "*" (no resource-level permissions); the writes are limited to this
# region's network interfaces, in the function's own subnets and security group.
VPC_DESCRIBE_ACTIONS = ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets")
VPC_WRITE_ACTIONS = (
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:UnassignPrivateIpAddresses",
)


def network_interface_arn_pattern(scope: Construct) -> str:
    return Stack.of(scope).format_arn(service="ec2", resource="network-interface", resource_name="*")


def vpc_access_policy(
    scope: Construct,
    construct_id: str,
    *,
    role: iam.IRole,
    path: str,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    security_group: ec2.ISecurityGroup,
) -> iam.ManagedPolicy:
    stack = Stack.of(scope)
    own = [
        stack.format_arn(service="ec2", resource="subnet", resource_name=s.subnet_id)
        for s in vpc.select_subnets(subnet_type=subnets.subnet_type).subnets
    ]
    own.append(
        stack.format_arn(service="ec2", resource="security-group", resource_name=security_group.security_group_id)
    )
    return iam.ManagedPolicy(
        scope,
        construct_id,
        description=f"{scope.node.id}: network interfaces of a function in the VPC",
        path=path,
        roles=[role],
        statements=[
            iam.PolicyStatement(sid="DescribeNetwork", actions=list(VPC_DESCRIBE_ACTIONS), resources=["*"]),
            iam.PolicyStatement(
                sid="OwnNetworkInterfaces",
                actions=list(VPC_WRITE_ACTIONS),
                resources=[network_interface_arn_pattern(scope), *own],
            ),
        ],
    )


def own_log_group(log_group: logs.ILogGroup) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="OwnLogGroup",
        actions=["logs:CreateLogStream", "logs:PutLogEvents"],
        resources=[log_group.log_group_arn],
    )


def function_role(
    scope: Construct,
    role_id: str,
    policy_id: str,
    *,
    path: str,
    description: str,
    policy_description: str,
    statements: list[iam.PolicyStatement],
) -> tuple[iam.Role, iam.ManagedPolicy]:
    """A Lambda execution role and its one customer-managed policy (no inline, no AWS managed policy)."""
    role = iam.Role(
        scope,
        role_id,
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        path=path,
        description=description,
    )
    policy = iam.ManagedPolicy(
        scope,
        policy_id,
        description=policy_description,
        path=path,
        roles=[role],
        statements=statements,
    )
    return role, policy


@dataclass(frozen=True)
class CryptoOptions:
    """Client-side encryption options handed to both functions as environment variables."""

    sensitive_fields: tuple[str, ...]
    unsigned_attributes: tuple[str, ...] = ()
    algorithm_suite: str = SUITE_SIGNING
    data_key_cache: bool = False
    cache_max_age_seconds: int = 300
    cache_max_messages: int = 1000
    cache_max_bytes: int = 100_000_000
    cache_capacity: int = 100
    max_record_bytes: int = 32768

    def environment(self) -> dict[str, str]:
        return {
            ENV_SENSITIVE_FIELDS: ",".join(self.sensitive_fields),
            ENV_UNSIGNED_ATTRIBUTES: ",".join(self.unsigned_attributes),
            ENV_ALGORITHM_SUITE: self.algorithm_suite,
            ENV_DATA_KEY_CACHE: "on" if self.data_key_cache else "off",
            ENV_CACHE_MAX_AGE: str(self.cache_max_age_seconds),
            ENV_CACHE_MAX_MESSAGES: str(self.cache_max_messages),
            ENV_CACHE_MAX_BYTES: str(self.cache_max_bytes),
            ENV_CACHE_CAPACITY: str(self.cache_capacity),
            ENV_MAX_RECORD_BYTES: str(self.max_record_bytes),
        }


class EncryptingFunction(Construct):
    """One function (writer or reader) with its own role, log group and scoped permissions.

    Props: ``handler``; ``role_path``; ``code``; ``environment``; ``kms_action`` on
    ``mrk_arn`` with ``encryption_context`` as conditions (unless ``records_key`` is false: with
    tenants); ``tenant_key_arns`` (the tenant-access role's keys); ``table_actions`` on ``table_arn``;
    ``readable_attributes`` (when set, the role may also ``GetItem`` these attributes and no
    others: the writer reads the stored version before its conditional write);
    ``log_retention_days``; ``reserved_concurrency``; ``removal_policy`` (log group);
    ``logs_key`` (encrypts the log group).
    Attributes: ``function``, ``role``, ``log_group``, ``access_policy``, ``tracing_policy``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        description: str,
        handler: str,
        role_path: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        mrk_arn: str,
        kms_action: str,
        encryption_context: Mapping[str, str],
        tenant_key_arns: Sequence[str] = (),
        records_key: bool = True,
        table_arn: str,
        table_actions: tuple[str, ...],
        log_retention_days: int,
        readable_attributes: tuple[str, ...] = (),
        reserved_concurrency: int,
        removal_policy: RemovalPolicy,
        logs_key: kms.IKey,
        database: DatabaseAccess | None = None,
        database_secret_arn: str | None = None,
        beacons: BeaconAccess | None = None,
        query_indexes_only: bool = False,
        finder: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = encrypted_log_group(
            self, "Logs", key=logs_key, retention_days=log_retention_days, removal_policy=removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            path=role_path,
            description=description,
        )
        what, store_statements = self._store_access(
            database, database_secret_arn, table_arn, table_actions, readable_attributes, query_indexes_only
        )
        # Everything the code needs, in one customer-managed policy (no inline policies).
        self.access_policy = iam.ManagedPolicy(
            self,
            "AccessPolicy",
            description=f"{construct_id}: local multi-region key, {what}, own log group",
            path=role_path,
            roles=[self.role],
            statements=[
                # With tenants, no grant on the records key: every record is under its tenant's key,
                # used only in that tenant's session (a bug cannot fall back to a key all tenants share).
                *([key_statement(kms_action, mrk_arn, encryption_context)] if records_key else []),
                *self._tenant_access(construct_id, role_path, kms_action, tenant_key_arns, encryption_context),
                *store_statements,
                *(beacons.statements(Stack.of(self), finder=finder) if beacons is not None else []),
                own_log_group(self.log_group),
            ],
        )
        self.tracing_policy = self._tracing_policy(construct_id, role_path)
        tenant_role = {ENV_TENANT_ROLE_ARN: self.tenant_role.role_arn} if self.tenant_role is not None else {}
        beacon_env = beacons.environment(finder=finder) if beacons is not None else {}
        self.function = self._function(
            description=description,
            handler=handler,
            code=code,
            environment={**environment, **tenant_role, **beacon_env},
            reserved_concurrency=reserved_concurrency,
            network=self._network(database, role_path),
        )

    def _store_access(
        self,
        database: DatabaseAccess | None,
        database_secret_arn: str | None,
        table_arn: str,
        table_actions: tuple[str, ...],
        readable_attributes: tuple[str, ...],
        query_indexes_only: bool = False,
    ) -> tuple[str, list[iam.PolicyStatement]]:
        """(what the policy's description calls it, the statements) of the store: the local table
        replica, its beacon indexes only (the DynamoDB store's finder), or the function's own database secret."""
        if query_indexes_only and database is None:
            return "local beacon indexes", _index_query(table_arn)
        if database is None:
            return "local table replica", table_statements(table_arn, table_actions, readable_attributes)
        assert database_secret_arn is not None
        return "own database secret", database.statements(database_secret_arn, Stack.of(self).region)

    def _tenant_access(
        self,
        construct_id: str,
        role_path: str,
        action: str,
        key_arns: Sequence[str],
        encryption_context: Mapping[str, str],
    ) -> list[iam.PolicyStatement]:
        """With tenant keys in this region: the tenant-access role (``tenant_role``), which the
        function assumes with the session tag ``tenant`` and which may use a tenant key only where
        the key's tag and the encryption context name the session's tenant; returns what the
        function's own role needs for it (none without tenant keys here)."""
        self.tenant_role: iam.Role | None = None
        if not key_arns:
            return []
        self.tenant_role, statements = tenant_access_role(
            self,
            "TenantRole",
            "TenantAccessPolicy",
            trusted=self.role,
            path=role_path,
            action=action,
            key_arns=key_arns,
            encryption_context=encryption_context,
            description=construct_id,
        )
        return statements

    def _function(
        self,
        *,
        description: str,
        handler: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        reserved_concurrency: int,
        network: Mapping[str, Any],
    ) -> lambda_.Function:
        function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=code,
            # The Lambda service would add tracing permissions as an inline policy; they are
            # already in TracingPolicy.
            role=self.role.without_policy_updates(),
            environment=dict(environment),
            memory_size=512,
            timeout=Duration.seconds(15),
            tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            **network,
        )
        # The function must not start before it can write its logs and reach its key and table.
        function.node.add_dependency(self.access_policy, self.tracing_policy)
        if self.network_policy is not None:
            function.node.add_dependency(self.network_policy)
        return function

    def _tracing_policy(self, construct_id: str, role_path: str) -> iam.ManagedPolicy:
        """X-Ray has no resource-level permissions: its "*" lives alone in its own policy."""
        return iam.ManagedPolicy(
            self,
            "TracingPolicy",
            description=f"{construct_id}: X-Ray active tracing",
            path=role_path,
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="XRayTracing",
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                )
            ],
        )

    def _network(self, database: DatabaseAccess | None, role_path: str) -> dict[str, Any]:
        """The Aurora store's functions run in the VPC (their own policy for the interfaces); the
        DynamoDB store's do not. The function's network properties."""
        self.network_policy: iam.ManagedPolicy | None = None
        if database is None:
            return {}
        placement = {"vpc": database.vpc, "subnets": database.subnets, "security_group": database.security_group}
        self.network_policy = vpc_access_policy(self, "NetworkPolicy", role=self.role, path=role_path, **placement)
        return {
            "vpc": database.vpc,
            "vpc_subnets": database.subnets,
            "security_groups": [database.security_group],
            "allow_public_subnet": False,
        }


def tenant_access_role(
    scope: Construct,
    role_id: str,
    policy_id: str,
    *,
    trusted: iam.IRole,
    path: str,
    action: str,
    key_arns: Sequence[str],
    encryption_context: Mapping[str, str],
    description: str,
) -> tuple[iam.Role, list[iam.PolicyStatement]]:
    """A tenant-access role (README "Tenants"): ``trusted`` alone may assume it, tagging the session with
    ``tenant`` and no other tag, and a session may use ``action`` on a tenant key only where the key's tag and
    the encryption context name the session's tenant (and the context carries the toolkit's pairs). Returns
    the role and what ``trusted`` needs for it (``sts:AssumeRole`` and ``sts:TagSession`` on it alone)."""
    role = iam.Role(
        scope,
        role_id,
        assumed_by=iam.SessionTagsPrincipal(iam.ArnPrincipal(trusted.role_arn)).with_conditions(
            {
                "ForAllValues:StringEquals": {"aws:TagKeys": [TENANT_KEY]},
                "Null": {f"aws:RequestTag/{TENANT_KEY}": "false"},
            }
        ),
        path=path,
        max_session_duration=Duration.hours(1),
        description=f"{description}: one tenant's session (session tag {TENANT_KEY}) with that tenant's key",
    )
    tenant = f"${{aws:PrincipalTag/{TENANT_KEY}}}"
    iam.ManagedPolicy(
        scope,
        policy_id,
        description=f"{description}: the session's tenant's key only, with that tenant's context",
        path=path,
        roles=[role],
        statements=[
            iam.PolicyStatement(
                sid="SessionTenantKeyOnly",
                actions=[action],
                resources=list(key_arns),
                conditions={
                    "StringEquals": {
                        f"aws:ResourceTag/{TENANT_KEY}": tenant,
                        f"kms:EncryptionContext:{TENANT_KEY}": tenant,
                        **{f"kms:EncryptionContext:{k}": v for k, v in encryption_context.items()},
                    }
                },
            )
        ],
    )
    return role, [
        iam.PolicyStatement(
            sid="AssumeTenantRoleWithTenantTag",
            actions=["sts:AssumeRole", "sts:TagSession"],
            resources=[role.role_arn],
        )
    ]


def key_statement(action: str, key_arn: str, encryption_context: Mapping[str, str]) -> iam.PolicyStatement:
    """The one KMS action on the local multi-region key, only with the toolkit's encryption context."""
    return iam.PolicyStatement(
        sid="LocalMultiRegionKey",
        actions=[action],
        resources=[key_arn],
        conditions={"StringEquals": {f"kms:EncryptionContext:{k}": v for k, v in encryption_context.items()}},
    )


def _index_query(table_arn: str) -> list[iam.PolicyStatement]:
    """The finder reads only through the beacon indexes: ``dynamodb:Query`` on the local replica's indexes
    named ``beacon-*`` (the toolkit's prefix: a field added later needs no policy change before its index
    exists), nothing on the table itself."""
    return [
        iam.PolicyStatement(
            sid="LocalBeaconIndexes",
            actions=["dynamodb:Query"],
            resources=[f"{table_arn}/index/{BEACON_INDEX_PREFIX}*"],
        )
    ]


def table_statements(
    table_arn: str, actions: tuple[str, ...], readable_attributes: tuple[str, ...]
) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(sid="LocalTableReplica", actions=list(actions), resources=[table_arn]),
        *_attribute_read(table_arn, readable_attributes),
    ]


def _attribute_read(table_arn: str, attributes: tuple[str, ...]) -> list[iam.PolicyStatement]:
    """GetItem limited to named attributes (AWS's documented fine-grained access pattern): a
    request must project only these attributes, and may not ask for all of them."""
    if not attributes:
        return []
    return [
        iam.PolicyStatement(
            sid="ReadVersionOnly",
            actions=["dynamodb:GetItem"],
            resources=[table_arn],
            conditions={
                "ForAllValues:StringEquals": {"dynamodb:Attributes": list(attributes)},
                "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES"},
            },
        )
    ]


def _store_props(database: DatabaseAccess | None, environment: Mapping[str, str]) -> dict[str, dict[str, object]]:
    """Per function kind, what the Aurora store adds to its props (its own secret, the database
    environment); nothing for the DynamoDB store."""
    if database is None:
        return {"writer": {}, "reader": {}}
    return {
        kind: {
            "database": database,
            "database_secret_arn": secret_arn,
            "environment": {**environment, **database.environment(secret_arn, host)},
        }
        for kind, secret_arn, host in (
            ("writer", database.writer_secret_arn, database.writer_host),
            ("reader", database.reader_secret_arn, database.reader_host),
        )
    }


class EncryptingFunctions(Construct):
    """The writer and the reader of one region.

    Props (keyword-only): ``table_name`` (the local replica's name, same in every region);
    ``mrk_arn`` (the multi-region key's ARN in this region); ``tenant_key_ids`` (with tenants:
    every tenant -> its key's id where it exists in this region, else None; default None: no
    tenants) and ``tenant_key_arns`` (this region's tenant keys); ``encryption_context`` (the
    pairs every KMS request carries; the same pairs condition the role policies);
    ``writer_role_path`` / ``reader_role_path``; ``crypto`` (``CryptoOptions``);
    ``code`` (one asset per stack, shared by both);
    ``log_retention_days``; ``reserved_concurrency``; ``removal_policy``; ``beacons`` (``BeaconAccess``,
    default None: no beacons): the writer computes and stores them (``kms:GenerateMac`` on the local
    beacon key), and a third function, the finder, looks records up by them (``kms:GenerateMac``,
    ``kms:Decrypt`` with the toolkit's context, ``dynamodb:Query`` on the beacon indexes only).

    The writer may only ``kms:GenerateDataKey`` on the local MRK, ``dynamodb:PutItem`` on the
    local replica and ``dynamodb:GetItem`` of the key and version attributes alone; the reader
    may only ``kms:Decrypt`` and ``dynamodb:GetItem``.
    Attributes: ``writer``, ``reader``, ``finder`` (``EncryptingFunction``; the finder None without beacons).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table_name: str,
        mrk_arn: str,
        encryption_context: Mapping[str, str],
        tenant_key_ids: Mapping[str, str | None] | None = None,
        tenant_key_arns: Sequence[str] = (),
        writer_role_path: str,
        reader_role_path: str,
        crypto: CryptoOptions,
        code: lambda_.Code,
        log_retention_days: int,
        reserved_concurrency: int,
        admin_arns: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        database: DatabaseAccess | None = None,
        beacons: BeaconAccess | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        table_arn = stack.format_arn(service="dynamodb", resource="table", resource_name=table_name)
        environment = {ENV_TABLE_NAME: table_name, ENV_MRK_ARN: mrk_arn, **crypto.environment()}
        if tenant_key_ids is not None:
            environment[ENV_TENANT_KEYS] = tenant_keys_environment(tenant_key_ids)
        store = _store_props(database, environment)
        self.logs_key = LogsKey(self, "LogsKey", admin_arns=admin_arns, removal_policy=removal_policy)
        common = {
            "code": code,
            "environment": environment,
            "mrk_arn": mrk_arn,
            "encryption_context": encryption_context,
            "tenant_key_arns": tuple(tenant_key_arns),
            "records_key": tenant_key_ids is None,
            "table_arn": table_arn,
            "log_retention_days": log_retention_days,
            "reserved_concurrency": reserved_concurrency,
            "removal_policy": removal_policy,
            "logs_key": self.logs_key.key,
        }
        self.writer = EncryptingFunction(
            self,
            "Writer",
            description="Encrypts a record's sensitive fields with the local multi-region key and writes it",
            handler="writer.handler",
            role_path=writer_role_path,
            kms_action="kms:GenerateDataKey",
            table_actions=("dynamodb:PutItem",),
            readable_attributes=(PARTITION_KEY, VERSION_ATTRIBUTE),
            beacons=beacons,
            **{**common, **store["writer"]},  # type: ignore[arg-type]
        )
        self.reader = EncryptingFunction(
            self,
            "Reader",
            description="Reads a record from the local replica and decrypts it with the local multi-region key",
            handler="reader.handler",
            role_path=reader_role_path,
            kms_action="kms:Decrypt",
            table_actions=("dynamodb:GetItem",),
            **{**common, **store["reader"]},  # type: ignore[arg-type]
        )
        self.finder = self._finder(beacons, database, {**common, **store["reader"]})

    def _finder(
        self, beacons: BeaconAccess | None, database: DatabaseAccess | None, props: Mapping[str, Any]
    ) -> EncryptingFunction | None:
        """With beacons, the finder: the reader's props (Aurora: its database login, SELECT), and on the
        DynamoDB store a Query of the beacon indexes only."""
        if beacons is None:
            return None
        return EncryptingFunction(
            self,
            "Finder",
            description="Finds records by a beacon field's value in the local replica and decrypts them",
            handler="finder.handler",
            role_path=beacons.finder_role_path,
            kms_action="kms:Decrypt",
            table_actions=(),
            beacons=beacons,
            query_indexes_only=database is None,
            finder=True,
            **props,
        )


# The encryption context every record carries (lambda_src/record_crypto adds "item" when the
# data-key cache is off). Its stable pairs are what the key and role policies require.
RECORD_CONTEXT_PURPOSE = "mrk-toolkit:record"
RECORD_SCHEMA_VERSION = "1"


def record_encryption_context(table_name: str) -> dict[str, str]:
    return {"purpose": RECORD_CONTEXT_PURPOSE, "table": table_name, "schema": RECORD_SCHEMA_VERSION}
