"""The one validated deployment config.

Built once in app.py from cdk.json context (overridable with ``-c mrk-toolkit:<field>=...``)
and CDK_DEFAULT_ACCOUNT; nothing else reads context or the environment. Every error names
the field, the value given and what is allowed, so a bad config fails synth with one
readable message.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The functions' own field-name rule (lambda_src never imports CDK; this side may import it).
from lambda_src.record_crypto.settings import (
    ALGORITHM_SUITES,
    BEACON_BITS_MAX,
    BEACON_BITS_MIN,
    DEPLOYMENT_NAME,
    FIELD_NAME_RULE,
    MAX_BEACON_FIELDS,
    MAX_TENANTS,
    NORMALIZATIONS,
    PARTITION_PATTERN,
    REGION_NAME,
    STORE_AURORA_POSTGRESQL,
    STORE_DYNAMODB,
    STORES,
    SUITE_SIGNING,
    TENANT_ID,
    TENANT_ID_RULE,
    BeaconField,
    is_field_name,
)
from stacks.vpc_cidrs import FIELD as VPC_CIDRS_FIELD
from stacks.vpc_cidrs import FIX as VPC_CIDRS_FIX
from stacks.vpc_cidrs import CidrError, vpc_cidrs

CONTEXT_PREFIX = "mrk-toolkit:"

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_ALIAS_RE = re.compile(r"^alias/(?!aws/)[A-Za-z0-9/_-]{1,250}$")
_IAM_ARN_RE = re.compile(rf"^arn:{PARTITION_PATTERN}:iam::\d{{12}}:(?:root|role/[\w+=,.@/-]+|user/[\w+=,.@/-]+)$")

REMOVAL_POLICIES = ("retain", "destroy")
# Aurora PostgreSQL 16 versions that support global databases, each a CDK
# rds.AuroraPostgresEngineVersion (tests/infra check it); Limitless versions do not.
AURORA_ENGINE_VERSIONS = ("16.1", "16.2", "16.3", "16.4", "16.5", "16.6", "16.8", "16.9", "16.10", "16.11", "16.13")
AURORA_DEFAULT_ENGINE_VERSION = "16.8"
# Global databases run on memory-optimized classes (or Serverless v2); burstable classes are refused.
_INSTANCE_CLASS_RE = re.compile(r"^db\.(?:r5|r6g|r6i|r7g|r7i|r8g|x2g)\.(?:large|\d*xlarge)$|^db\.serverless$")
# Unquoted PostgreSQL identifiers: lower case, so SQL and the catalogs agree without quoting.
_SQL_IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SQL_IDENTIFIER_RULE = "1-63 of a-z 0-9 _, starting with a letter or _, not a PostgreSQL reserved word, not pg_*"
# PostgreSQL's reserved key words (docs, appendix C, column "PostgreSQL": reserved).
_SQL_RESERVED = frozenset(
    """all analyse analyze and any array as asc asymmetric both case cast check collate column constraint
    create current_catalog current_date current_role current_time current_timestamp current_user default
    deferrable desc distinct do else end except false fetch for foreign from grant group having in initially
    intersect into lateral leading limit localtime localtimestamp not null offset on only or order placing
    primary references returning select session_user some symmetric system_user table then to trailing true
    union unique user using variadic when where window with""".split()  # noqa: SIM905 - a word list, as in the docs
)
_RESERVED_DATABASES = frozenset({"postgres", "template0", "template1", "rdsadmin"})
AURORA_FIELDS = (
    "databaseName",
    "auroraEngineVersion",
    "auroraInstanceClass",
    "auroraBackupRetentionDays",
    "auroraSecretRotationDays",
    VPC_CIDRS_FIELD,
)
AUDIT_FIELDS = ("audit", "auditTrailArn", "auditReaderArns", "auditRetentionDays")
_TRAIL_ARN_RE = re.compile(rf"^arn:{PARTITION_PATTERN}:cloudtrail:[a-z0-9-]+:\d{{12}}:trail/[A-Za-z0-9._-]{{3,128}}$")
# Options that were removed, and why (refused with that reason rather than as unknown).
REMOVED_FIELDS = {
    "writeForwarding": "removed: Aurora write forwarding is not exercised by the offline emulator, so nothing "
    "shows it working; writes go through the writer functions in the primary region",
}
# CloudWatch Logs accepts only these retention values.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


class ConfigError(ValueError):
    """A deployment config value is invalid; the message names field, value and fix."""

    def __init__(self, field_name: str, value: object, allowed: str, fix: str | None = None) -> None:
        self.field_name = field_name
        self.value = value
        fix = fix or f"Fix it in cdk.json or override it with -c {CONTEXT_PREFIX}{field_name}=..."
        super().__init__(f"Invalid config {CONTEXT_PREFIX}{field_name}={value!r}: {allowed}. {fix}")


class MisspeltKeyError(ConfigError):
    """A context key that looks like a misspelt ``mrk-toolkit:<field>``: read by nothing, it would
    be ignored silently (the deployment made without the option the user meant to set)."""

    def __init__(self, key: str, meant_field: str, known: bool) -> None:
        meant = f"{CONTEXT_PREFIX}{meant_field}"
        self.key = key
        self.meant = meant
        self.field_name = meant_field
        self.value = key
        options = "" if known else f"; known options are {', '.join(KNOWN_FIELDS)}"
        # ConfigError's own message names a key with the toolkit prefix; this one names the key given.
        ValueError.__init__(
            self,
            f"Unknown context key {key!r} (did you mean {meant}?): the toolkit reads only "
            f"{CONTEXT_PREFIX}<option> keys, so this one would be ignored silently{options}. "
            f"Rename it: {meant} in cdk.json, -c {meant}=... on the command line",
        )


@dataclass(frozen=True)
class DataKeyCacheConfig:
    enabled: bool = False
    max_age_seconds: int = 300
    max_messages: int = 1000
    max_bytes: int = 100_000_000
    capacity: int = 100


@dataclass(frozen=True)
class AuditConfig:
    """The audit trail and its alerts (README "Audit").

    ``enabled``: the EventBridge alert rules in every region (they need a trail recording the
    account's management events); ``existing_trail_arn``: a trail that already does (an
    organization trail), so none is created; ``reader_arns``: who may read the trail's log files
    (none: the account's IAM policies decide); ``retention_days``: how long log files are kept."""

    enabled: bool = True
    existing_trail_arn: str | None = None
    reader_arns: tuple[str, ...] = ()
    retention_days: int = 365

    @property
    def creates_trail(self) -> bool:
        return self.enabled and not self.existing_trail_arn


@dataclass(frozen=True)
class AuroraConfig:
    """The Aurora PostgreSQL global database (``store: aurora-postgresql`` only)."""

    database_name: str = "records"
    engine_version: str = AURORA_DEFAULT_ENGINE_VERSION
    instance_class: str = "db.r6g.large"
    backup_retention_days: int = 7
    # Secrets Manager rotates each database secret every this many days (AutomaticallyAfterDays).
    secret_rotation_days: int = 30
    # (region, IPv4 CIDR) of each region's VPC, distinct so that the VPCs can be peered (stacks/vpc_cidrs.py).
    vpc_cidrs: tuple[tuple[str, str], ...] = ()

    def vpc_cidr(self, region: str) -> str:
        return dict(self.vpc_cidrs)[region]


@dataclass(frozen=True)
class TenantConfig:
    """One tenant: its key exists, and its records may be decrypted, in ``regions`` only; the key's
    primary is in ``primary_region`` (one of them)."""

    tenant_id: str
    regions: tuple[str, ...]
    primary_region: str

    @property
    def replica_regions(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions if r != self.primary_region)


@dataclass(frozen=True)
class ToolkitConfig:
    """Everything the stacks need, validated. Regions: primary first, then replicas."""

    primary_region: str
    replica_regions: tuple[str, ...]
    account: str | None = None
    stack_prefix: str = "MrkToolkit"
    table_name: str = "mrk-toolkit-records"
    key_alias: str = "alias/mrk-toolkit/records"
    removal_policy: str = "retain"
    key_pending_window_days: int = 30
    key_rotation_days: int = 365
    key_admin_arns: tuple[str, ...] = ()
    sensitive_fields: tuple[str, ...] = ("ssn", "date_of_birth", "card_number")
    unsigned_attributes: tuple[str, ...] = ()
    algorithm_suite: str = SUITE_SIGNING
    data_key_cache: DataKeyCacheConfig = field(default_factory=DataKeyCacheConfig)
    log_retention_days: int = 30
    reserved_concurrency: int = 10
    max_record_bytes: int = 32768
    # "dynamodb" (the global table) or "aurora-postgresql" (then ``aurora`` is set and
    # ``table_name`` is the SQL table's name, see sql_table_name).
    store: str = STORE_DYNAMODB
    aurora: AuroraConfig | None = None
    audit: AuditConfig = field(default_factory=AuditConfig)
    # Empty: one key for every record (the single-key deployment). Sorted by tenant id.
    tenants: tuple[TenantConfig, ...] = ()
    # Empty: no beacons, no HMAC key (README "Beacons"). In the order given.
    beacon_fields: tuple[BeaconField, ...] = ()
    # Empty: no application roles (README "The application roles"). Account ids and IAM role/user ARNs.
    application_principals: tuple[str, ...] = ()

    @property
    def regions(self) -> tuple[str, ...]:
        return (self.primary_region, *self.replica_regions)

    def tenants_in(self, region: str) -> tuple[TenantConfig, ...]:
        """The tenants whose key exists (whose records may be decrypted) in ``region``."""
        return tuple(t for t in self.tenants if region in t.regions)


# field name in context -> (dataclass attribute, parser)
def _str(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(field_name, value, "expected a non-empty string")
    return value


def _int(field_name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(field_name, value, f"expected an integer from {lo} to {hi}")
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(field_name, value, f"expected an integer from {lo} to {hi}")
    return value


def _bool(field_name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(field_name, value, "expected true or false")


def _list(field_name: str, value: Any) -> list[str]:
    """A list from cdk.json (JSON list) or from -c (comma-separated or a JSON list string)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(field_name, value, "expected a JSON list or a comma-separated list") from exc
        else:
            value = [part.strip() for part in text.split(",")] if text else []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(field_name, value, "expected a list of strings")
    return value


def _choice(field_name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(field_name, value, f"expected one of {', '.join(choices)}")
    return str(value)


@functools.cache
def known_regions() -> dict[str, str]:
    """Every region botocore's endpoint data knows, mapped to its partition (aws, aws-cn, ...)."""
    from botocore.loaders import create_loader

    endpoints = create_loader().load_data("endpoints")
    return {region: p["partition"] for p in endpoints["partitions"] for region in p.get("regions", {})}


def _did_you_mean(value: str, choices: Any) -> str:
    close = difflib.get_close_matches(value, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _region(field_name: str, value: Any, fix: str | None = None) -> str:
    if not isinstance(value, str) or not REGION_NAME.match(value):
        raise ConfigError(field_name, value, "expected an AWS region name such as us-east-2", fix)
    regions = known_regions()
    if value not in regions:
        import botocore

        same_kind = [r for r in regions if r.split("-")[0] == value.split("-")[0]] or list(regions)
        raise ConfigError(
            field_name,
            value,
            f"not a region botocore {botocore.__version__} knows{_did_you_mean(value, same_kind)}; "
            f"known regions: {', '.join(sorted(same_kind))} (a region newer than botocore: upgrade boto3)",
            fix,
        )
    return value


def _field_names(field_name: str, value: Any) -> tuple[str, ...]:
    """Record field names, checked by the functions' own rule (one rule, no drift)."""
    names = _list(field_name, value)
    for name in names:
        if not is_field_name(name):
            raise ConfigError(field_name, name, f"record field names are {FIELD_NAME_RULE}")
    if len(set(names)) != len(names):
        raise ConfigError(field_name, names, "each attribute may appear once")
    return tuple(names)


def _pattern(field_name: str, value: Any, pattern: re.Pattern[str], allowed: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(field_name, value, allowed)
    return value


KNOWN_FIELDS = (
    "account",
    "primaryRegion",
    "replicaRegions",
    "stackPrefix",
    "tableName",
    "keyAlias",
    "removalPolicy",
    "keyPendingWindowDays",
    "keyRotationDays",
    "keyAdminArns",
    "sensitiveFields",
    "unsignedAttributes",
    "algorithmSuite",
    "dataKeyCache",
    "dataKeyCacheMaxAgeSeconds",
    "dataKeyCacheMaxMessages",
    "dataKeyCacheMaxBytes",
    "dataKeyCacheCapacity",
    "logRetentionDays",
    "reservedConcurrency",
    "maxRecordBytes",
    "store",
    "tenants",
    "beaconFields",
    "applicationPrincipals",
    *AURORA_FIELDS,
    *AUDIT_FIELDS,
)
TENANT_FIELDS = ("regions", "primaryRegion")
BEACON_SETTINGS = ("bits", "normalize")


def load_config(context: Mapping[str, Any], default_account: str | None = None) -> ToolkitConfig:
    """Build the config from CDK context entries named ``mrk-toolkit:<field>``.

    ``default_account`` is CDK_DEFAULT_ACCOUNT (set by the CLI when credentials are found);
    an explicit ``mrk-toolkit:account`` wins. With neither, the stacks are account-agnostic
    (``${AWS::AccountId}``), which is what synth in CI without credentials produces.
    Fields are checked in a fixed order, so a config with several mistakes names the same first one.
    """
    raw = _toolkit_fields(context)

    def get(name: str, default: Any = None) -> Any:
        return raw.get(name, default)

    account = get("account") or default_account or None
    if account is not None:
        account = _pattern("account", str(account), _ACCOUNT_RE, "expected a 12-digit AWS account id")
    primary, replicas = _regions(raw)
    admin_arns = _list("keyAdminArns", get("keyAdminArns", []))
    for arn in admin_arns:
        _pattern("keyAdminArns", arn, _IAM_ARN_RE, "expected IAM role, user or account root ARNs")
    sensitive, unsigned = _record_fields(raw)
    cache = _data_key_cache(raw)
    retention = _int("logRetentionDays", get("logRetentionDays", 30), 1, 3653)
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(
            "logRetentionDays", retention, f"CloudWatch Logs accepts {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    store, table_name, aurora = _store_and_table(raw, (primary, *replicas))
    tenants = _tenants(raw.get("tenants", {}), (primary, *replicas))
    beacon_fields = _beacon_fields(raw.get("beaconFields", {}), sensitive)
    return ToolkitConfig(
        account=account,
        primary_region=primary,
        replica_regions=tuple(replicas),
        stack_prefix=_pattern(
            "stackPrefix",
            get("stackPrefix", "MrkToolkit"),
            DEPLOYMENT_NAME,
            "letters, digits and -, starting with a letter, at most 40",
        ),
        table_name=table_name,
        key_alias=_pattern(
            "keyAlias",
            get("keyAlias", "alias/mrk-toolkit/records"),
            _ALIAS_RE,
            "alias/<name> with A-Z a-z 0-9 / _ -, not alias/aws/",
        ),
        removal_policy=_choice("removalPolicy", get("removalPolicy", "retain"), REMOVAL_POLICIES),
        key_pending_window_days=_int("keyPendingWindowDays", get("keyPendingWindowDays", 30), 7, 30),
        key_rotation_days=_int("keyRotationDays", get("keyRotationDays", 365), 90, 2560),
        key_admin_arns=tuple(admin_arns),
        sensitive_fields=sensitive,
        unsigned_attributes=unsigned,
        algorithm_suite=_choice("algorithmSuite", get("algorithmSuite", SUITE_SIGNING), ALGORITHM_SUITES),
        data_key_cache=cache,
        log_retention_days=retention,
        reserved_concurrency=_int("reservedConcurrency", get("reservedConcurrency", 10), 1, 1000),
        max_record_bytes=_int("maxRecordBytes", get("maxRecordBytes", 32768), 256, 300_000),
        store=store,
        aurora=aurora,
        audit=_audit(raw),
        tenants=tenants,
        beacon_fields=beacon_fields,
        application_principals=_application_principals(raw, store),
    )


# Keys the CDK itself reads or writes (cdk.json's feature flags, the CLI's settings,
# cdk.context.json's lookups): never taken for a misspelt toolkit key.
_CDK_KEY_RE = re.compile(r"^(?:@aws-cdk/|aws:|aws-cdk:|cdk[-:]|acknowledged-issue-numbers$)|:account=")
_KEY_SEPARATORS = " .:;/_=-"
# difflib's ratio of a one- or two-character slip of "mrk-toolkit" is 0.8 to 0.95; "toolkit" is 0.78.
_PREFIX_CUTOFF = 0.75


def _split_key(key: str) -> tuple[str, str]:
    """``prefix:field`` as (prefix, field); without a ``:``, a known field at the end is the field
    (``mrk-toolkit.store``, ``dataKeyCache``)."""
    head, sep, tail = key.partition(":")
    if sep:
        return head, tail
    for name in sorted(KNOWN_FIELDS, key=len, reverse=True):
        if key.lower().endswith(name.lower()):
            return key[: -len(name)], key[-len(name) :]
    return key, ""


def misspelt_toolkit_key(key: str) -> MisspeltKeyError | None:
    """The error for a key that looks meant for the toolkit but misses its prefix: a prefix close
    to ``mrk-toolkit``, or a known field under another prefix (or none)."""
    if key.startswith(CONTEXT_PREFIX) or _CDK_KEY_RE.search(key):
        return None
    head, tail = _split_key(key)
    prefix = head.rstrip(_KEY_SEPARATORS).lower()
    prefix_close = bool(prefix) and (
        difflib.SequenceMatcher(None, prefix, CONTEXT_PREFIX[:-1]).ratio() >= _PREFIX_CUTOFF
    )
    exact = [name for name in KNOWN_FIELDS if name.lower() == tail.lower()]
    if exact:
        return MisspeltKeyError(key, exact[0], known=True)
    if not prefix_close or not tail:
        return None
    close = difflib.get_close_matches(tail, KNOWN_FIELDS, n=1, cutoff=0.6)
    return MisspeltKeyError(key, close[0] if close else tail, known=bool(close))


def _toolkit_fields(context: Mapping[str, Any]) -> dict[str, Any]:
    """The ``mrk-toolkit:`` entries without their prefix; an unknown one, or a key that looks like
    a misspelt one, is an error."""
    for key in sorted(context):
        if error := misspelt_toolkit_key(key):
            raise error
    raw = {k[len(CONTEXT_PREFIX) :]: v for k, v in context.items() if k.startswith(CONTEXT_PREFIX)}
    for name, why in REMOVED_FIELDS.items():
        if name in raw:
            raise ConfigError(name, raw[name], why, f"Remove it from cdk.json and drop -c {CONTEXT_PREFIX}{name}=...")
    unknown = sorted(set(raw) - set(KNOWN_FIELDS))
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, KNOWN_FIELDS, n=1, cutoff=0.6)
        raise ConfigError(
            name,
            raw[name],
            f"unknown option{_did_you_mean(name, KNOWN_FIELDS)}; known options are {', '.join(KNOWN_FIELDS)}",
            f"Rename it: {CONTEXT_PREFIX}{close[0]} in cdk.json, -c {CONTEXT_PREFIX}{close[0]}=... on the command line"
            if close
            else f"Remove it, or fix its name in cdk.json or in -c {CONTEXT_PREFIX}...",
        )
    return raw


def _regions(raw: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The primary region and the replica regions: known, distinct, in one partition."""
    if "primaryRegion" not in raw:
        raise ConfigError("primaryRegion", None, "required; e.g. us-east-2")
    primary = _region("primaryRegion", raw.get("primaryRegion"))
    replicas = _list("replicaRegions", raw.get("replicaRegions", []))
    if not replicas:
        raise ConfigError(
            "replicaRegions", raw.get("replicaRegions"), "at least one replica region is required, e.g. us-west-1"
        )
    for region in replicas:
        _region("replicaRegions", region)
    if primary in replicas:
        raise ConfigError("replicaRegions", replicas, f"must not list the primary region {primary}")
    duplicates = sorted({r for r in replicas if replicas.count(r) > 1})
    if duplicates:
        raise ConfigError(
            "replicaRegions", replicas, f"each region may appear once; duplicated: {', '.join(duplicates)}"
        )
    partitions = {_partition(r) for r in (primary, *replicas)}
    if len(partitions) > 1:
        raise ConfigError(
            "replicaRegions", replicas, "all regions must be in the same AWS partition as the primary region"
        )
    return primary, replicas


_TENANTS_FIX = (
    f"Fix it in cdk.json, or give the whole map on the command line: "
    f'-c \'{CONTEXT_PREFIX}tenants={{"acme": {{"regions": ["us-east-2"]}}}}\''
)


def _tenants(value: Any, deployment: tuple[str, ...]) -> tuple[TenantConfig, ...]:
    """``tenants``: tenant id -> {regions (default: every region), primaryRegion (default: the
    deployment's primary if among them, else the tenant's first)}; an object, or its JSON text (-c)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError("tenants", value, f"expected a JSON object ({exc.msg})", _TENANTS_FIX) from None
    if not isinstance(value, dict):
        raise ConfigError("tenants", value, "expected an object: tenant id -> {regions, primaryRegion}", _TENANTS_FIX)
    if len(value) > MAX_TENANTS:
        raise ConfigError(
            "tenants",
            f"<{len(value)} tenants>",
            f"at most {MAX_TENANTS} tenants (a KMS key per tenant per region; see the README's Tenants "
            f"for why and for what to use beyond)",
            _TENANTS_FIX,
        )
    return tuple(_tenant(tenant_id, value[tenant_id], deployment) for tenant_id in sorted(value))


def _tenant(tenant_id: Any, value: Any, deployment: tuple[str, ...]) -> TenantConfig:
    where = f"tenants.{tenant_id}"
    if not isinstance(tenant_id, str) or not TENANT_ID.match(tenant_id):
        raise ConfigError("tenants", tenant_id, f"a tenant id is {TENANT_ID_RULE}", _TENANTS_FIX)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(where, value, f"expected an object with {' and/or '.join(TENANT_FIELDS)}", _TENANTS_FIX)
    unknown = sorted(set(value) - set(TENANT_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}",
            value[unknown[0]],
            f"unknown tenant setting{_did_you_mean(str(unknown[0]), TENANT_FIELDS)}; "
            f"a tenant has {', '.join(TENANT_FIELDS)}",
            _TENANTS_FIX,
        )
    regions = _tenant_regions(where, value.get("regions", list(deployment)), deployment)
    default_primary = deployment[0] if deployment[0] in regions else regions[0]
    primary = _region(f"{where}.primaryRegion", value.get("primaryRegion", default_primary), _TENANTS_FIX)
    if primary not in regions:
        raise ConfigError(
            f"{where}.primaryRegion", primary, f"must be one of the tenant's regions {', '.join(regions)}", _TENANTS_FIX
        )
    return TenantConfig(tenant_id=tenant_id, regions=regions, primary_region=primary)


def _tenant_regions(where: str, value: Any, deployment: tuple[str, ...]) -> tuple[str, ...]:
    """Known regions of the deployment, each once, at least one; in the deployment's order."""
    field_name = f"{where}.regions"
    regions = _list(field_name, value)
    if not regions:
        raise ConfigError(field_name, value, "at least one region (where the tenant's key exists)", _TENANTS_FIX)
    for region in regions:
        _region(field_name, region, _TENANTS_FIX)
        if region not in deployment:
            raise ConfigError(
                field_name, region, f"not a region of the deployment ({', '.join(deployment)})", _TENANTS_FIX
            )
    duplicates = sorted({r for r in regions if regions.count(r) > 1})
    if duplicates:
        raise ConfigError(
            field_name, regions, f"each region may appear once; duplicated: {', '.join(duplicates)}", _TENANTS_FIX
        )
    return tuple(r for r in deployment if r in regions)


_BEACONS_FIX = (
    f"Fix it in cdk.json, or give the whole map on the command line: "
    f'-c \'{CONTEXT_PREFIX}beaconFields={{"ssn": {{"bits": 24, "normalize": "digits"}}}}\''
)


_PRINCIPAL_RE = re.compile(rf"^\d{{12}}$|^arn:{PARTITION_PATTERN}:iam::\d{{12}}:(?:role|user)/[\w+=,.@/-]+$")


def _application_principals(raw: Mapping[str, Any], store: str) -> tuple[str, ...]:
    """``applicationPrincipals``: who may assume the application writer and reader roles (README "The
    application roles"); the DynamoDB store only (with or without tenants and beacon fields)."""
    value = raw.get("applicationPrincipals", [])
    principals = _list("applicationPrincipals", value)
    for principal in principals:
        _pattern(
            "applicationPrincipals",
            principal,
            _PRINCIPAL_RE,
            "expected 12-digit account ids or IAM role/user ARNs (arn:aws:iam::<account>:role/<path><name>)",
        )
    if len(set(principals)) != len(principals):
        raise ConfigError("applicationPrincipals", value, "a principal is listed twice", "List each principal once")
    if principals and store == STORE_AURORA_POSTGRESQL:
        raise ConfigError(
            "applicationPrincipals",
            value,
            "the Aurora store has no application roles: its clusters are in isolated subnets whose security group "
            "admits PostgreSQL (5432) only from the deployment's own functions and the peered VPCs of its other "
            "regions, so an application outside them cannot connect (and an IAM role would not change that)",
            f"Remove {CONTEXT_PREFIX}applicationPrincipals and call the writer and reader functions instead (lambda "
            "invoke; their names are each functions stack's outputs WriterFunctionName and ReaderFunctionName), "
            "or deploy the DynamoDB store",
        )
    return tuple(principals)


def _beacon_fields(value: Any, sensitive: tuple[str, ...]) -> tuple[BeaconField, ...]:
    """``beaconFields``: sensitive field -> {bits (required), normalize (default exact)}; an object,
    or its JSON text (-c)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError("beaconFields", value, f"expected a JSON object ({exc.msg})", _BEACONS_FIX) from None
    if not isinstance(value, dict):
        raise ConfigError("beaconFields", value, "expected an object: field -> {bits, normalize}", _BEACONS_FIX)
    if len(value) > MAX_BEACON_FIELDS:
        raise ConfigError(
            "beaconFields",
            sorted(value),
            f"at most {MAX_BEACON_FIELDS} beacon fields (each is an index in every region, written with every record, "
            "and each tells an observer which records share a value)",
            _BEACONS_FIX,
        )
    return tuple(_beacon_field(name, settings, sensitive) for name, settings in value.items())


def _beacon_field(name: Any, value: Any, sensitive: tuple[str, ...]) -> BeaconField:
    where = f"beaconFields.{name}"
    if name not in sensitive:
        hint = _did_you_mean(str(name), sensitive)
        raise ConfigError(
            f"beaconFields.{name}",
            value,
            f"a beacon is kept for a sensitive field only{hint}; sensitive fields are {', '.join(sensitive)} "
            "(a plaintext field is queryable as it is)",
            f"Use one of sensitiveFields, or add {name!r} to {CONTEXT_PREFIX}sensitiveFields",
        )
    if not isinstance(value, dict):
        raise ConfigError(where, value, f"expected an object with {' and '.join(BEACON_SETTINGS)}", _BEACONS_FIX)
    unknown = sorted(set(value) - set(BEACON_SETTINGS))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}",
            value[unknown[0]],
            f"unknown beacon setting{_did_you_mean(str(unknown[0]), BEACON_SETTINGS)}; "
            f"a beacon field has {', '.join(BEACON_SETTINGS)}",
            _BEACONS_FIX,
        )
    if "bits" not in value:
        raise ConfigError(
            f"{where}.bits",
            None,
            f"required: the beacon's length, {BEACON_BITS_MIN}-{BEACON_BITS_MAX} bits (fewer: more false "
            'candidates per lookup, more: an observer tells equal values apart more surely; README "Beacons")',
            _BEACONS_FIX,
        )
    bits = value["bits"]
    if isinstance(bits, bool) or not isinstance(bits, int) or not BEACON_BITS_MIN <= bits <= BEACON_BITS_MAX:
        raise ConfigError(
            f"{where}.bits", bits, f"expected an integer from {BEACON_BITS_MIN} to {BEACON_BITS_MAX}", _BEACONS_FIX
        )
    normalization = value.get("normalize", NORMALIZATIONS[0])
    if normalization not in NORMALIZATIONS:
        shown = normalization if isinstance(normalization, str) else ""
        raise ConfigError(
            f"{where}.normalize",
            normalization,
            f"expected one of {', '.join(NORMALIZATIONS)}{_did_you_mean(shown, NORMALIZATIONS)}",
            _BEACONS_FIX,
        )
    return BeaconField(name=name, bits=bits, normalization=normalization)


def _record_fields(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The sensitive fields (at least one) and the unsigned attributes (never a sensitive field)."""
    sensitive = _field_names("sensitiveFields", raw.get("sensitiveFields", list(ToolkitConfig.sensitive_fields)))
    if not sensitive:
        raise ConfigError("sensitiveFields", sensitive, "name at least one attribute to encrypt")
    unsigned = _field_names("unsignedAttributes", raw.get("unsignedAttributes", []))
    if set(unsigned) & set(sensitive):
        raise ConfigError(
            "unsignedAttributes",
            unsigned,
            f"a sensitive field is always encrypted and signed; remove {sorted(set(unsigned) & set(sensitive))}",
        )
    return sensitive, unsigned


def _data_key_cache(raw: Mapping[str, Any]) -> DataKeyCacheConfig:
    return DataKeyCacheConfig(
        enabled=_bool("dataKeyCache", raw.get("dataKeyCache", False)),
        max_age_seconds=_int("dataKeyCacheMaxAgeSeconds", raw.get("dataKeyCacheMaxAgeSeconds", 300), 1, 86_400),
        max_messages=_int("dataKeyCacheMaxMessages", raw.get("dataKeyCacheMaxMessages", 1000), 1, 2**32),
        max_bytes=_int("dataKeyCacheMaxBytes", raw.get("dataKeyCacheMaxBytes", 100_000_000), 1, 2**62),
        capacity=_int("dataKeyCacheCapacity", raw.get("dataKeyCacheCapacity", 100), 1, 10_000),
    )


def _audit(raw: Mapping[str, Any]) -> AuditConfig:
    trail = raw.get("auditTrailArn") or None
    if trail is not None:
        _pattern(
            "auditTrailArn", trail, _TRAIL_ARN_RE, "expected a CloudTrail trail ARN (arn:aws:cloudtrail:R:A:trail/N)"
        )
    readers = _list("auditReaderArns", raw.get("auditReaderArns", []))
    for arn in readers:
        _pattern("auditReaderArns", arn, _IAM_ARN_RE, "expected IAM role, user or account root ARNs")
    return AuditConfig(
        enabled=_bool("audit", raw.get("audit", True)),
        existing_trail_arn=trail,
        reader_arns=tuple(readers),
        retention_days=_int("auditRetentionDays", raw.get("auditRetentionDays", 365), 90, 3653),
    )


def _store_and_table(raw: Mapping[str, Any], regions: tuple[str, ...]) -> tuple[str, str, AuroraConfig | None]:
    """The store, the table name (an SQL identifier for the Aurora store) and the Aurora options
    (refused with the DynamoDB store)."""
    store = _store(raw.get("store", STORE_DYNAMODB))
    table_name = _pattern(
        "tableName", raw.get("tableName", "mrk-toolkit-records"), _TABLE_NAME_RE, "3-255 of A-Z a-z 0-9 _ . -"
    )
    if store == STORE_AURORA_POSTGRESQL:
        return store, sql_table_name(table_name), _aurora(raw, regions)
    given = [name for name in AURORA_FIELDS if name in raw]
    if given:
        raise ConfigError(
            given[0],
            raw[given[0]],
            f"applies only to store {STORE_AURORA_POSTGRESQL} (store is {store})",
            f"Remove {CONTEXT_PREFIX}{given[0]}, or deploy the Aurora store: "
            f"-c {CONTEXT_PREFIX}store={STORE_AURORA_POSTGRESQL}",
        )
    return store, table_name, None


def _store(value: Any) -> str:
    if value not in STORES:
        shown = value.strip().lower() if isinstance(value, str) else ""
        partial = [s for s in STORES if shown and shown in s]  # "aurora", "postgres": part of the name
        hint = f" (did you mean {' or '.join(partial)}?)" if partial else _did_you_mean(shown, STORES)
        raise ConfigError("store", value, f"expected one of {', '.join(STORES)}{hint}")
    return str(value)


def _sql_identifier(field_name: str, value: Any, extra_reserved: frozenset[str] = frozenset()) -> str:
    if (
        not isinstance(value, str)
        or not _SQL_IDENTIFIER_RE.match(value)
        or value in _SQL_RESERVED | extra_reserved
        or value.startswith("pg_")
    ):
        raise ConfigError(field_name, value, f"a PostgreSQL identifier: {SQL_IDENTIFIER_RULE}")
    return value


def sql_table_name(table_name: str) -> str:
    """The SQL table of the Aurora store: ``tableName`` lower-cased with ``-`` and ``.`` as ``_``
    (the default ``mrk-toolkit-records`` becomes ``mrk_toolkit_records``). It is also the ``table``
    pair of the records' encryption context, as the DynamoDB table name is for that store."""
    derived = re.sub(r"[-.]", "_", table_name.lower())
    try:
        return _sql_identifier("tableName", derived)
    except ConfigError:
        raise ConfigError(
            "tableName",
            table_name,
            f"with store {STORE_AURORA_POSTGRESQL} it names the SQL table {derived!r}, "
            f"which must be {SQL_IDENTIFIER_RULE}",
        ) from None


def _aurora(raw: Mapping[str, Any], regions: tuple[str, ...]) -> AuroraConfig:
    defaults = AuroraConfig()
    version = raw.get("auroraEngineVersion", defaults.engine_version)
    if version not in AURORA_ENGINE_VERSIONS:
        shown = version if isinstance(version, str) else ""
        raise ConfigError(
            "auroraEngineVersion",
            version,
            f"expected an Aurora PostgreSQL version that supports global databases"
            f"{_did_you_mean(shown, AURORA_ENGINE_VERSIONS)}: {', '.join(AURORA_ENGINE_VERSIONS)}",
        )
    return AuroraConfig(
        database_name=_sql_identifier(
            "databaseName", raw.get("databaseName", defaults.database_name), _RESERVED_DATABASES
        ),
        engine_version=version,
        instance_class=_pattern(
            "auroraInstanceClass",
            raw.get("auroraInstanceClass", defaults.instance_class),
            _INSTANCE_CLASS_RE,
            "a memory-optimized class a global database runs on "
            "(db.r5/r6g/r6i/r7g/r7i/r8g/x2g.<size>) or db.serverless",
        ),
        backup_retention_days=_int(
            "auroraBackupRetentionDays", raw.get("auroraBackupRetentionDays", defaults.backup_retention_days), 7, 35
        ),
        secret_rotation_days=_int(
            "auroraSecretRotationDays", raw.get("auroraSecretRotationDays", defaults.secret_rotation_days), 1, 1000
        ),
        vpc_cidrs=_vpc_cidrs(raw.get(VPC_CIDRS_FIELD, {}), regions),
    )


def _vpc_cidrs(value: Any, regions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    try:
        return vpc_cidrs(value, regions)
    except CidrError as error:
        raise ConfigError(error.where, error.value, error.allowed, VPC_CIDRS_FIX) from None


def _partition(region: str) -> str:
    return known_regions()[region]


class CdkJsonError(ValueError):
    """cdk.json is not valid JSON: the message gives the file, line and column."""


class ContextOptionError(ValueError):
    """A ``-c`` option that is not ``key=value``."""


# The default deployment: the app's cdk.json (the tools synthesize it, with -c overrides).
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def read_cdk_json(path: Path) -> dict[str, Any]:
    """cdk.json as a dict, or CdkJsonError naming the line and column of the first syntax error
    (the CDK CLI reports only a character offset)."""
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        line = text.splitlines()[exc.lineno - 1] if exc.lineno <= len(text.splitlines()) else ""
        raise CdkJsonError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno} ({line.strip()[:60]!r}): {exc.msg}. "
            f"Fix the JSON syntax there (a trailing comma or a missing quote is the usual cause)"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("context", {}), dict):
        raise CdkJsonError(f'{path}: expected a JSON object with a "context" object. Fix {path.name}')
    return data


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The context of cdk.json (the default deployment), to which ``-c`` overrides apply."""
    return dict(read_cdk_json(path).get("context", {}))


def parse_context(pairs: list[str]) -> dict[str, Any]:
    """``-c key=value`` options (as the CDK CLI takes them) into context overrides."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ContextOptionError(
                f"-c expects key=value, got {pair!r}: e.g. -c {CONTEXT_PREFIX}replicaRegions=us-west-1"
            )
        overrides[key] = value
    return overrides


def config_with(overrides: Mapping[str, Any]) -> ToolkitConfig:
    """cdk.json's deployment with ``-c`` overrides, validated (before anything is synthesized)."""
    return load_config({**cdk_json_context(), **overrides})


def main(argv: list[str] | None = None) -> int:
    """``python -m stacks.config [cdk.json]``: check cdk.json's syntax and its mrk-toolkit config
    (the Makefile runs it before the CDK CLI, whose JSON errors give only a character offset)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "cdk.json")
    try:
        load_config(read_cdk_json(path).get("context", {}))
    except (CdkJsonError, ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
