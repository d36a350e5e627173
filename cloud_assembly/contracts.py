"""What each role the toolkit deploys may do: its contract, written down once.

A contract is the whole of what a role may do: every request the policy engine allows the role
(its own policies and, for KMS keys, the key policy, over a catalogue of every action and every
resource it could reach) must be one of these grants, and every grant must be allowed.
``offline/verification/permissions.py`` checks that on the deployment (the main job and
``verify``); the README's table of roles is generated from this module (``python -m review
readme``).

Resources are named relative to the role (its region, its account) and resolved on the
deployment; a role is recognised by the logical id of its ``AWS::IAM::Role`` (without CDK's hash
suffix). A role with no contract here fails the check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lambda_src.record_crypto.settings import (
    BEACON_BACKFILL_SEGMENT,
    BEACON_INDEX_PREFIX,
    STORE_AURORA_POSTGRESQL,
    STORE_DYNAMODB,
    TENANT_KEY,
)

DYNAMODB, AURORA = STORE_DYNAMODB, STORE_AURORA_POSTGRESQL
KEY_TYPES = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")
TABLE_TYPES = ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table")
SECRET_TYPES = ("AWS::SecretsManager::Secret",)
LOG_GROUP_TYPES = ("AWS::Logs::LogGroup",)
ROLE_TYPES = ("AWS::IAM::Role",)
PARAMETER_TYPES = ("AWS::SSM::Parameter",)


@dataclass(frozen=True)
class ResourceKind:
    """A resource named relative to the role: one of the deployment's resources in the role's
    region (by type and logical-id stem, or by type and a tag it carries: ``tagged``, whatever its
    value), or an ARN pattern ({partition}, {region}, {account})."""

    text: str
    types: tuple[str, ...] = ()
    stems: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    tagged: str = ""
    # Appended to each resource's ARN (``/index/beacon-*``: the resource's indexes of that name).
    suffix: str = ""
    # Every resource of the types whose logical id starts with this (``Discovery``: each parameter).
    stem_prefix: str = ""
    # The ARN one level up (an SSM parameter's path: what GetParametersByPath is authorized on).
    parent: bool = False
    # (pattern, replacement): a regular-expression rewrite of each resolved ARN (a path derived from another).
    rewrite: tuple[str, str] = ()


@dataclass(frozen=True)
class Condition:
    """What a request must carry for the grant to hold: ``variant`` names the request variants
    (offline/verification/permissions.py asks every request with each) it allows; ``subject``,
    for a request made through Secrets Manager, the secrets it may be for; ``session_tenant``:
    only where the key's tag ``tenant``, the context's ``tenant`` and the session's tag ``tenant``
    name one tenant (cloud_assembly/role_access.py asks a tenant-access role as a session of each
    tenant, and untagged)."""

    text: str
    variant: str = ""  # "" = any request
    subject: ResourceKind | None = None
    session_tenant: bool = False


@dataclass(frozen=True)
class Grant:
    actions: tuple[str, ...]
    on: ResourceKind
    why: str
    when: Condition = field(default_factory=lambda: ANY_REQUEST)
    store: str | None = None  # only with this store (None: both)
    tenants: bool | None = None  # only with (True) or without (False) tenants (None: both)


@dataclass(frozen=True)
class RoleContract:
    kind: str
    title: str  # "the writer's role", as check names and the README say it
    roles: tuple[str, ...]  # logical-id stems of its AWS::IAM::Role
    purpose: str
    grants: tuple[Grant, ...]
    # A role whose sessions carry this tag (a tenant-access role): it is asked as a session of
    # each value the deployment's resources give the tag, and as an untagged session.
    session_tag: str = ""

    def applies(self, store: str, tenants: bool = False) -> tuple[Grant, ...]:
        return tuple(g for g in self.grants if g.store in (None, store) and g.tenants in (None, tenants))


# -- the vocabulary ----------------------------------------------------------------------------
ANY_RESOURCE = ResourceKind("any resource (`*`)", patterns=("*",))
OWN_MRK = ResourceKind("its region's multi-region key", KEY_TYPES, ("RecordsKey",))
OWN_TABLE = ResourceKind("its region's table replica", TABLE_TYPES, ("RecordsTable",))
# Beacons (README "Beacons"): the multi-region HMAC key (only with beaconFields).
OWN_BEACON_KEY = ResourceKind("its region's beacon (HMAC) key", KEY_TYPES, ("BeaconKey",))
OWN_BEACON_INDEXES = ResourceKind(
    f"its region's table replica's beacon indexes (`index/{BEACON_INDEX_PREFIX}*`)",
    TABLE_TYPES,
    ("RecordsTable",),
    suffix=f"/index/{BEACON_INDEX_PREFIX}*",
)
OWN_SECRETS_KEY = ResourceKind("its region's secrets key", KEY_TYPES, ("SecretsKey",))
WRITER_SECRET = ResourceKind("the writer's database secret (its region's replica)", SECRET_TYPES, ("SecretsWriter",))
READER_SECRET = ResourceKind("the reader's database secret (its region's replica)", SECRET_TYPES, ("SecretsReader",))
DATABASE_SECRETS = ResourceKind(
    "the master, writer and reader database secrets", SECRET_TYPES, ("SecretsMaster", "SecretsWriter", "SecretsReader")
)
NETWORK_INTERFACES = ResourceKind(
    "its region's network interfaces", patterns=("arn:{partition}:ec2:{region}:{account}:network-interface/*",)
)
CLIENTS_SECURITY_GROUP = ResourceKind(
    "its region's database clients' security group", ("AWS::EC2::SecurityGroup",), ("NetworkClientsSecurityGroup",)
)
ISOLATED_SUBNETS = ResourceKind(
    "its region's isolated subnets",
    ("AWS::EC2::Subnet",),
    ("NetworkVpcIsolatedSubnet1Subnet", "NetworkVpcIsolatedSubnet2Subnet"),
)
SETUP_FUNCTION = ResourceKind("the schema setup function", ("AWS::Lambda::Function",), ("SchemaSetupFunction",))
RDS_LOG_GROUPS = ResourceKind(
    "RDS's log groups and streams, any region and account (`log-group:RDS*`)",
    patterns=("arn:{partition}:logs:*:*:log-group:RDS*", "arn:{partition}:logs:*:*:log-group:RDS*:log-stream:*"),
)
RDS_LOG_STREAMS = ResourceKind(
    "RDS's log streams, any region and account (`log-group:RDS*:log-stream:*`)",
    patterns=("arn:{partition}:logs:*:*:log-group:RDS*:log-stream:*",),
)


def own_log_group(stem: str) -> ResourceKind:
    return ResourceKind(f"its own log group ({stem})", LOG_GROUP_TYPES, (stem,))


# Tenants (README "Tenants"): every key tagged tenant, and each function's tenant-access role.
TENANT_KEYS = ResourceKind(f"its region's tenant keys (tagged `{TENANT_KEY}`)", KEY_TYPES, tagged=TENANT_KEY)
WRITER_TENANT_ROLE = ResourceKind("the writer's tenant-access role", ROLE_TYPES, ("RecordsWriterTenantRole",))
READER_TENANT_ROLE = ResourceKind("the reader's tenant-access role", ROLE_TYPES, ("RecordsReaderTenantRole",))
FINDER_TENANT_ROLE = ResourceKind("the finder's tenant-access role", ROLE_TYPES, ("RecordsFinderTenantRole",))
APPLICATION_WRITER_TENANT_ROLE = ResourceKind(
    "the application writer's tenant-access role", ROLE_TYPES, ("ApplicationWriterTenantRole",)
)
APPLICATION_READER_TENANT_ROLE = ResourceKind(
    "the application reader's tenant-access role", ROLE_TYPES, ("ApplicationReaderTenantRole",)
)

# Discovery (README "Discovery"): the region's SSM parameters, by name, and their path.
DISCOVERY_PARAMETERS = ResourceKind("its region's discovery parameters", PARAMETER_TYPES, stem_prefix="Discovery")
# Written by the backfill, not by a stack: one parameter per beacon field under the region's backfill path
# (settings.beacon_backfill_path, /<stackPrefix>/beacon-backfill/<region>), named from the discovery path
# /<stackPrefix>/<region>.
OWN_BACKFILL_STATE = ResourceKind(
    f"its region's beacon backfill state (`parameter/<stackPrefix>/{BEACON_BACKFILL_SEGMENT}/<region>/*`)",
    PARAMETER_TYPES,
    stem_prefix="Discovery",
    parent=True,
    rewrite=(r"parameter/(.+)/([^/]+)$", rf"parameter/\1/{BEACON_BACKFILL_SEGMENT}/\2/*"),
)
DISCOVERY_PATH = ResourceKind(
    "its region's discovery path (`/<stackPrefix>/<region>`)", PARAMETER_TYPES, stem_prefix="Discovery", parent=True
)

ANY_REQUEST = Condition("")
RECORD_CONTEXT = Condition("with the toolkit's encryption context", "record-context")
SESSION_TENANT = Condition(
    f"as a session tagged `{TENANT_KEY}=T`, on the key tagged `{TENANT_KEY}=T`, with the toolkit's context "
    f"and `{TENANT_KEY}=T`",
    "record-context",
    session_tenant=True,
)
SESSION_TAGGED = Condition(f"tagging the session with `{TENANT_KEY}` and no other tag", "session-tag")
BEACON_MAC = Condition("with `HMAC_SHA_256`", "mac-hmac-sha-256")
VERSION_ATTRIBUTES = ("id", "_version")
VERSION_ONLY = Condition(f"projecting {' and '.join(f'`{a}`' for a in VERSION_ATTRIBUTES)} only", "version-attributes")


def through_secrets_manager(secrets: ResourceKind) -> Condition:
    return Condition(f"through Secrets Manager, for {secrets.text}", "via-secretsmanager", secrets)


def tenant_session(role: ResourceKind) -> Grant:
    return Grant(
        ("sts:AssumeRole", "sts:TagSession"),
        role,
        "with tenants: one session per tenant, tagged with it, to use that tenant's key (its trust policy names "
        "this role alone)",
        SESSION_TAGGED,
    )


def logs(stem: str, *actions: str) -> Grant:
    return Grant(actions or ("logs:CreateLogStream", "logs:PutLogEvents"), own_log_group(stem), "its own logs")


TRACING = Grant(
    ("xray:PutTelemetryRecords", "xray:PutTraceSegments"),
    ANY_RESOURCE,
    "X-Ray active tracing (X-Ray has no resource-level permissions)",
)
VPC_WRITES = ("ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface")
VPC_WRITES += ("ec2:UnassignPrivateIpAddresses",)
IN_VPC = (
    Grant(
        ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"),
        ANY_RESOURCE,
        "Lambda places the function in the VPC (describing takes no resource)",
        store=AURORA,
    ),
    *(
        Grant(VPC_WRITES, kind, "the function's network interfaces, in its subnets and security group", store=AURORA)
        for kind in (NETWORK_INTERFACES, CLIENTS_SECURITY_GROUP, ISOLATED_SUBNETS)
    ),
)


def database_secret(secret: ResourceKind, why: str) -> tuple[Grant, ...]:
    return (
        Grant(("secretsmanager:GetSecretValue",), secret, why, store=AURORA),
        Grant(
            ("kms:Decrypt",),
            OWN_SECRETS_KEY,
            "Secrets Manager decrypts the secret with the region's secrets key",
            through_secrets_manager(secret),
            store=AURORA,
        ),
    )


# -- the contracts -----------------------------------------------------------------------------
WRITER = RoleContract(
    "writer",
    "the writer's role",
    ("RecordsWriterRole",),
    "encrypts a record's sensitive fields with its region's multi-region key and stores it",
    (
        Grant(
            ("kms:GenerateDataKey",),
            OWN_MRK,
            "a data key per record (or per cached key), for records only (without tenants)",
            RECORD_CONTEXT,
            tenants=False,
        ),
        tenant_session(WRITER_TENANT_ROLE),
        Grant(
            ("kms:GenerateMac",),
            OWN_BEACON_KEY,
            "with beacon fields: derive each field's beacon key (once per container and tenant)",
            BEACON_MAC,
        ),
        Grant(("dynamodb:PutItem",), OWN_TABLE, "store the record", store=DYNAMODB),
        Grant(
            ("dynamodb:GetItem",),
            OWN_TABLE,
            "read the stored version before a conditional write; no other attribute",
            VERSION_ONLY,
            store=DYNAMODB,
        ),
        *database_secret(WRITER_SECRET, "its database login (records_writer)"),
        logs("RecordsWriterLogs"),
        TRACING,
        *IN_VPC,
    ),
)

READER = RoleContract(
    "reader",
    "the reader's role",
    ("RecordsReaderRole",),
    "reads a record from its region's replica and decrypts it with its region's multi-region key",
    (
        Grant(
            ("kms:Decrypt",),
            OWN_MRK,
            "decrypt a record's data key, for records only (without tenants)",
            RECORD_CONTEXT,
            tenants=False,
        ),
        tenant_session(READER_TENANT_ROLE),
        Grant(("dynamodb:GetItem",), OWN_TABLE, "read the record", store=DYNAMODB),
        *database_secret(READER_SECRET, "its database login (records_reader)"),
        logs("RecordsReaderLogs"),
        TRACING,
        *IN_VPC,
    ),
)

FINDER = RoleContract(
    "finder",
    "the finder's role",
    ("RecordsFinderRole",),
    "with beacon fields: finds records by a field's value through its region's beacon indexes and decrypts them",
    (
        Grant(
            ("kms:GenerateMac",),
            OWN_BEACON_KEY,
            "derive each field's beacon key (once per container and tenant)",
            BEACON_MAC,
        ),
        Grant(
            ("kms:Decrypt",),
            OWN_MRK,
            "decrypt each candidate's data key, for records only (without tenants)",
            RECORD_CONTEXT,
            tenants=False,
        ),
        tenant_session(FINDER_TENANT_ROLE),
        Grant(
            ("dynamodb:Query",),
            OWN_BEACON_INDEXES,
            "the candidates of a beacon (the index projects every attribute: nothing is read from the table)",
            store=DYNAMODB,
        ),
        *database_secret(READER_SECRET, "the reader's database login (records_reader: SELECT by the beacon column)"),
        Grant(
            ("ssm:GetParameter",),
            OWN_BACKFILL_STATE,
            "has the backfill of the field finished in its region (a lookup's `complete`; cached a minute)",
        ),
        logs("RecordsFinderLogs"),
        TRACING,
        *IN_VPC,
    ),
)

# What a tenant-access session may do, whoever assumes it (a function or an application role).
TENANT_WRITE_GRANT = Grant(
    ("kms:GenerateDataKey",),
    TENANT_KEYS,
    "a data key for a record of the session's tenant, under that tenant's key only",
    SESSION_TENANT,
)
TENANT_READ_GRANT = Grant(
    ("kms:Decrypt",),
    TENANT_KEYS,
    "decrypt the data key of a record of the session's tenant, with that tenant's key only",
    SESSION_TENANT,
)

TENANT_WRITER = RoleContract(
    "tenant-writer",
    "the writer's tenant-access role",
    ("RecordsWriterTenantRole",),
    f"with tenants: the writer's session for one tenant (assumed by the writer's role alone, with the session tag "
    f"`{TENANT_KEY}`)",
    (TENANT_WRITE_GRANT,),
    session_tag=TENANT_KEY,
)

TENANT_READER = RoleContract(
    "tenant-reader",
    "the reader's tenant-access role",
    ("RecordsReaderTenantRole",),
    f"with tenants: the reader's session for one tenant (assumed by the reader's role alone, with the session tag "
    f"`{TENANT_KEY}`)",
    (TENANT_READ_GRANT,),
    session_tag=TENANT_KEY,
)

TENANT_FINDER = RoleContract(
    "tenant-finder",
    "the finder's tenant-access role",
    ("RecordsFinderTenantRole",),
    f"with tenants and beacon fields: the finder's session for one tenant (assumed by the finder's role alone, "
    f"with the session tag `{TENANT_KEY}`): it decrypts that tenant's candidates only",
    (
        Grant(
            ("kms:Decrypt",),
            TENANT_KEYS,
            "decrypt the data key of a candidate of the session's tenant, with that tenant's key only",
            SESSION_TENANT,
        ),
    ),
    session_tag=TENANT_KEY,
)

SCHEMA_SETUP = RoleContract(
    "schema-setup",
    "the schema setup role",
    ("SchemaSetupRole",),
    "the db_setup custom resource: creates the records table and the writer's and reader's database roles",
    (
        *database_secret(DATABASE_SECRETS, "the master login, and the writer's and reader's passwords to set"),
        logs("SchemaSetupLogs"),
        *IN_VPC,
    ),
)

SCHEMA_PROVIDER = RoleContract(
    "schema-provider",
    "the schema custom resource provider's role",
    ("SchemaProviderRole",),
    "CDK's provider framework: runs the schema setup function for CloudFormation",
    (
        Grant(("lambda:GetFunction", "lambda:InvokeFunction"), SETUP_FUNCTION, "invoke the setup function"),
        logs("SchemaProviderLogs"),
    ),
)

SECRET_ROTATION = RoleContract(
    "secret-rotation",
    "the secret rotation role",
    ("SecretRotationRole",),
    "Secrets Manager's single-user rotation of the database secrets (lambda_src/rotation.py, in the VPC)",
    (
        Grant(
            (
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ),
            DATABASE_SECRETS,
            "the rotation's four steps: read the stages, read the current and pending values, put the pending one, "
            "make it current",
            store=AURORA,
        ),
        Grant(
            ("kms:Decrypt", "kms:GenerateDataKey"),
            OWN_SECRETS_KEY,
            "Secrets Manager decrypts the versions read and encrypts the one put with the region's secrets key",
            through_secrets_manager(DATABASE_SECRETS),
            store=AURORA,
        ),
        logs("RotationLogs"),
        *IN_VPC,
    ),
)

RDS_MONITORING = RoleContract(
    "rds-monitoring",
    "the RDS enhanced monitoring role",
    ("PrimaryMonitoringRole", "SecondaryMonitoringRole"),
    "RDS publishes the instances' OS metrics (AWS's managed policy AmazonRDSEnhancedMonitoringRole)",
    (
        Grant(
            ("logs:CreateLogGroup", "logs:PutRetentionPolicy"),
            RDS_LOG_GROUPS,
            "RDS creates its RDSOSMetrics log group",
        ),
        Grant(
            ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:GetLogEvents", "logs:PutLogEvents"),
            RDS_LOG_STREAMS,
            "RDS writes the metrics",
        ),
    ),
)

FLOW_LOGS = RoleContract(
    "flow-logs",
    "the VPC flow logs role",
    ("NetworkFlowLogsRole",),
    "VPC flow logs of the isolated network",
    (logs("NetworkFlowLogs", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"),),
)


def discovery_read(who: str) -> tuple[Grant, ...]:
    return (
        Grant(
            ("ssm:GetParameter", "ssm:GetParameters"),
            DISCOVERY_PARAMETERS,
            f"{who} discovers the key, table and record options (RecordService.discover)",
        ),
        Grant(("ssm:GetParametersByPath",), DISCOVERY_PATH, "the same, in one call"),
    )


APPLICATION_WRITER = RoleContract(
    "application-writer",
    "the application writer's role",
    ("ApplicationWriterRole",),
    "with applicationPrincipals: an application outside Lambda that writes records (the writer's rights; the "
    "trust policy names those principals)",
    (
        Grant(
            ("kms:GenerateDataKey",),
            OWN_MRK,
            "a data key per record (or per cached key), for records only (without tenants)",
            RECORD_CONTEXT,
            tenants=False,
        ),
        tenant_session(APPLICATION_WRITER_TENANT_ROLE),
        Grant(
            ("kms:GenerateMac",),
            OWN_BEACON_KEY,
            "with beacon fields: derive each field's beacon key (once per process and tenant)",
            BEACON_MAC,
        ),
        Grant(("dynamodb:PutItem",), OWN_TABLE, "store the record"),
        Grant(
            ("dynamodb:GetItem",),
            OWN_TABLE,
            "read the stored version before a conditional write; no other attribute",
            VERSION_ONLY,
        ),
        *discovery_read("the application"),
    ),
)

APPLICATION_READER = RoleContract(
    "application-reader",
    "the application reader's role",
    ("ApplicationReaderRole",),
    "with applicationPrincipals: an application outside Lambda that reads records (the reader's rights)",
    (
        Grant(
            ("kms:Decrypt",),
            OWN_MRK,
            "decrypt a record's data key, for records only (without tenants)",
            RECORD_CONTEXT,
            tenants=False,
        ),
        tenant_session(APPLICATION_READER_TENANT_ROLE),
        Grant(("dynamodb:GetItem",), OWN_TABLE, "read the record"),
        *discovery_read("the application"),
    ),
)

APPLICATION_TENANT_WRITER = RoleContract(
    "application-tenant-writer",
    "the application writer's tenant-access role",
    ("ApplicationWriterTenantRole",),
    f"with tenants and applicationPrincipals: the application writer's session for one tenant (assumed by the "
    f"application writer's role alone, with the session tag `{TENANT_KEY}`)",
    (TENANT_WRITE_GRANT,),
    session_tag=TENANT_KEY,
)

APPLICATION_TENANT_READER = RoleContract(
    "application-tenant-reader",
    "the application reader's tenant-access role",
    ("ApplicationReaderTenantRole",),
    f"with tenants and applicationPrincipals: the application reader's session for one tenant (assumed by the "
    f"application reader's role alone, with the session tag `{TENANT_KEY}`)",
    (TENANT_READ_GRANT,),
    session_tag=TENANT_KEY,
)

CONTRACTS: tuple[RoleContract, ...] = (
    WRITER,
    READER,
    FINDER,
    APPLICATION_WRITER,
    APPLICATION_READER,
    APPLICATION_TENANT_WRITER,
    APPLICATION_TENANT_READER,
    TENANT_WRITER,
    TENANT_READER,
    TENANT_FINDER,
    SCHEMA_SETUP,
    SCHEMA_PROVIDER,
    SECRET_ROTATION,
    RDS_MONITORING,
    FLOW_LOGS,
)


def contract_for(stem: str) -> RoleContract | None:
    """The contract of the role whose logical id (without hash) is ``stem``."""
    return next((c for c in CONTRACTS if stem in c.roles), None)


# -- the README's table ------------------------------------------------------------------------
_STORES = {None: "any", DYNAMODB: "DynamoDB", AURORA: "Aurora"}


def _code(actions: Iterable[str]) -> str:
    return ", ".join(f"`{a}`" for a in actions)


def _rows(contract: RoleContract) -> list[tuple[str, str, str, str, str]]:
    """(may, on, only when, store, why), one per grant; grants that differ only in the resource
    share a row."""
    rows: list[tuple[str, str, str, str, str]] = []
    for grant in contract.grants:
        row = (_code(grant.actions), grant.on.text, grant.when.text or "any request", _STORES[grant.store], grant.why)
        if rows and rows[-1][0] == row[0] and rows[-1][2:] == row[2:]:
            rows[-1] = (row[0], f"{rows[-1][1]}; {row[1]}", *row[2:])
        else:
            rows.append(row)
    return rows


def markdown_table() -> str:
    """One row per grant: the role, what it may do, on what, when, with which store, and why."""
    lines = ["| role | may | on | only when | store | why |", "|---|---|---|---|---|---|"]
    for contract in CONTRACTS:
        for i, row in enumerate(_rows(contract)):
            role = f"**{contract.title}**: {contract.purpose}" if i == 0 else ""
            lines.append(f"| {role} | {' | '.join(row)} |")
    return "\n".join(lines) + "\n"
