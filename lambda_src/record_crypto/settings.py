"""The environment contract between the infrastructure and the functions.

cdk_constructs/encrypting_functions.py sets these variables; tests/infra checks that what the
templates set is accepted here. Validated once, at cold start: a function with a bad
environment fails to initialize with a message naming the variable, rather than failing later
with a KMS or DynamoDB error.

The names both sides share are written here once and imported by the others (the constructs,
the stacks, the emulator, the review, the benchmarks): the variables, the store kinds, the
algorithm suites, the database role names, and the patterns of a region and an ARN partition.
Plain Python without imports from the toolkit, so the CDK app may import it as
``lambda_src.record_crypto.settings`` without loading the function code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

ENV_TABLE_NAME = "RECORDS_TABLE_NAME"
ENV_MRK_ARN = "RECORDS_MRK_ARN"
ENV_SENSITIVE_FIELDS = "SENSITIVE_FIELDS"
ENV_UNSIGNED_ATTRIBUTES = "UNSIGNED_ATTRIBUTES"
ENV_ALGORITHM_SUITE = "ALGORITHM_SUITE"
ENV_DATA_KEY_CACHE = "DATA_KEY_CACHE"
ENV_CACHE_MAX_AGE = "DATA_KEY_CACHE_MAX_AGE_SECONDS"
ENV_CACHE_MAX_MESSAGES = "DATA_KEY_CACHE_MAX_MESSAGES"
ENV_CACHE_MAX_BYTES = "DATA_KEY_CACHE_MAX_BYTES"
ENV_CACHE_CAPACITY = "DATA_KEY_CACHE_CAPACITY"
ENV_MAX_RECORD_BYTES = "MAX_RECORD_BYTES"
ENV_REGION = "AWS_REGION"  # set by the Lambda runtime
# Tenants (unset or empty: no tenants): a JSON object, tenant id -> the id of the tenant's multi-region
# key ("mrk-...", the same in every region) when the key exists in this function's region, else "".
ENV_TENANT_KEYS = "TENANT_KEYS"
# The tenant-access role of this function (tenants only): assumed per tenant with the session tag
# "tenant"; unset, the function uses its own credentials (tests, library use).
ENV_TENANT_ROLE_ARN = "TENANT_ROLE_ARN"
# Beacons (README "Beacons"; unset or empty: none): the beacon fields as "name:bits:normalization,..."
# and this region's ARN of the multi-region HMAC key they are computed with.
ENV_BEACON_FIELDS = "BEACON_FIELDS"
ENV_BEACON_KEY_ARN = "BEACON_KEY_ARN"
# The finder's: the SSM path under which the backfill marks each beacon field done in this region
# (beacon_backfill_path; unset: no backfill state is read, and every lookup says it may be incomplete).
ENV_BEACON_BACKFILL_PATH = "BEACON_BACKFILL_PATH"
# The store (docs/contract: /work/notes/aurora-contract.md; README "Aurora PostgreSQL store").
ENV_RECORD_STORE = "RECORD_STORE"
ENV_DB_HOST = "DB_HOST"
ENV_DB_PORT = "DB_PORT"
ENV_DB_NAME = "DB_NAME"
ENV_DB_SECRET_ARN = "DB_SECRET_ARN"  # noqa: S105 (a variable name, not a secret)
# The schema-setup custom resource (lambda_src/db_setup.py), as the database stack sets it.
ENV_DB_MASTER_SECRET_ARN = "DB_MASTER_SECRET_ARN"  # noqa: S105 (a variable name, not a secret)
ENV_DB_WRITER_SECRET_ARN = "DB_WRITER_SECRET_ARN"  # noqa: S105
ENV_DB_READER_SECRET_ARN = "DB_READER_SECRET_ARN"  # noqa: S105
DB_SETUP_REQUIRED_ENV_VARS = (
    ENV_DB_HOST,
    ENV_DB_NAME,
    ENV_DB_MASTER_SECRET_ARN,
    ENV_DB_WRITER_SECRET_ARN,
    ENV_DB_READER_SECRET_ARN,
    ENV_TABLE_NAME,
)

# Where records are kept (the deployment config's ``store`` and the functions' RECORD_STORE).
STORE_DYNAMODB = "dynamodb"
STORE_AURORA_POSTGRESQL = "aurora-postgresql"
STORES: tuple[str, ...] = (STORE_DYNAMODB, STORE_AURORA_POSTGRESQL)
# The PostgreSQL roles (record_crypto/pg_schema.py grants them; one secret each, named after them).
DB_MASTER_USER = "records_admin"
WRITER_ROLE = "records_writer"
READER_ROLE = "records_reader"
DATABASE_ENV_VARS = (ENV_DB_HOST, ENV_DB_NAME, ENV_DB_SECRET_ARN)

# Discovery (README "Discovery"): each functions stack publishes its region's values as SSM String
# parameters under /<stack prefix>/<region>/ (the deployment's name is its stack prefix), which an
# application reads with one GetParametersByPath call (record_crypto/discovery.py). At most 10 names: one
# page of GetParametersByPath.
# A deployment's name: its stack prefix (the deployment config's stackPrefix).
DEPLOYMENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,39}$")
PARAM_RECORD_KEY_ARN = "record-key-arn"
PARAM_TABLE_NAME = "table-name"
# JSON: {"store", "sensitive_fields", "unsigned_attributes", "algorithm_suite", "max_record_bytes"}.
PARAM_RECORD_OPTIONS = "record-options"
# The Aurora store only.
PARAM_DB_WRITER_ENDPOINT = "db-writer-endpoint"
PARAM_DB_READER_ENDPOINT = "db-reader-endpoint"
PARAM_DB_PORT = "db-port"
PARAM_DB_NAME = "db-name"
PARAM_DB_WRITER_SECRET_ARN = "db-writer-secret-arn"  # noqa: S105 (a parameter name, not a secret)
PARAM_DB_READER_SECRET_ARN = "db-reader-secret-arn"  # noqa: S105
# With tenants: the TENANT_KEYS value of the region's functions (tenant id -> its key's id here, or "").
PARAM_TENANT_KEYS = "tenant-keys"
# With tenants and applicationPrincipals: the tenant-access role of the region's application writer / reader
# (README "The application roles"), where the region holds a tenant key.
PARAM_WRITER_TENANT_ROLE_ARN = "writer-tenant-role-arn"
PARAM_READER_TENANT_ROLE_ARN = "reader-tenant-role-arn"
# With beacon fields and applicationPrincipals: the writer's BEACON_FIELDS and this region's beacon key.
PARAM_BEACON_FIELDS = "beacon-fields"
PARAM_BEACON_KEY_ARN = "beacon-key-arn"
DISCOVERY_PARAMETERS: tuple[str, ...] = (PARAM_RECORD_KEY_ARN, PARAM_TABLE_NAME, PARAM_RECORD_OPTIONS)
TENANT_DISCOVERY_PARAMETERS: tuple[str, ...] = (
    PARAM_TENANT_KEYS,
    PARAM_WRITER_TENANT_ROLE_ARN,
    PARAM_READER_TENANT_ROLE_ARN,
)
# An SSM standard parameter holds at most 4 KB (4096 characters): the tenant-keys value at MAX_TENANTS
# tenants of 32-character ids takes 2591 (tests/infra/test_application_tenants.py).
SSM_STANDARD_VALUE_LIMIT = 4096
DATABASE_DISCOVERY_PARAMETERS: tuple[str, ...] = (
    PARAM_DB_WRITER_ENDPOINT,
    PARAM_DB_READER_ENDPOINT,
    PARAM_DB_PORT,
    PARAM_DB_NAME,
    PARAM_DB_WRITER_SECRET_ARN,
    PARAM_DB_READER_SECRET_ARN,
)


def discovery_path(deployment: str, region: str) -> str:
    """The SSM path of a deployment's discovery parameters in one region: ``/<deployment>/<region>``
    (a parameter is ``<path>/<name>``; the path is also what IAM authorizes GetParametersByPath on)."""
    return f"/{deployment}/{region}"


def record_options_value(
    *,
    store: str,
    sensitive_fields: tuple[str, ...] | list[str],
    unsigned_attributes: tuple[str, ...] | list[str],
    algorithm_suite: str,
    max_record_bytes: int,
) -> str:
    """The record-options parameter: compact JSON, keys sorted (one spelling, byte-stable templates)."""
    return json.dumps(
        {
            "algorithm_suite": algorithm_suite,
            "max_record_bytes": max_record_bytes,
            "sensitive_fields": list(sensitive_fields),
            "store": store,
            "unsigned_attributes": list(unsigned_attributes),
        },
        separators=(",", ":"),
        sort_keys=True,
    )


# The default signs (ECDSA P-384: a holder of kms:Decrypt cannot forge a record); the other is
# the unsigned committing suite, about twice as fast (README, "Algorithm suite").
SUITE_SIGNING: Final = "signing"
SUITE_COMMITTING_UNSIGNED: Final = "committing-unsigned"
AlgorithmSuite = Literal["signing", "committing-unsigned"]  # SUITE_SIGNING, SUITE_COMMITTING_UNSIGNED
ALGORITHM_SUITES: tuple[str, ...] = (SUITE_SIGNING, SUITE_COMMITTING_UNSIGNED)

REQUIRED_ENV_VARS = (ENV_TABLE_NAME, ENV_MRK_ARN, ENV_SENSITIVE_FIELDS, ENV_REGION)
OPTIONAL_ENV_VARS: dict[str, str] = {
    ENV_UNSIGNED_ATTRIBUTES: "",
    ENV_ALGORITHM_SUITE: SUITE_SIGNING,
    ENV_DATA_KEY_CACHE: "off",
    ENV_CACHE_MAX_AGE: "300",
    ENV_CACHE_MAX_MESSAGES: "1000",
    ENV_CACHE_MAX_BYTES: "100000000",
    ENV_CACHE_CAPACITY: "100",
    ENV_MAX_RECORD_BYTES: "32768",
    ENV_RECORD_STORE: STORE_DYNAMODB,
    ENV_DB_PORT: "5432",
    ENV_TENANT_KEYS: "",
    ENV_TENANT_ROLE_ARN: "",
    ENV_BEACON_FIELDS: "",
    ENV_BEACON_KEY_ARN: "",
    ENV_BEACON_BACKFILL_PATH: "",
}

# Tenants (README "Tenants"): a tenant id is the encryption-context value, the KMS tag value, the
# STS session tag value and a segment of the tenant key's alias, so it keeps to the characters all four
# accept and compares equal byte for byte (IAM compares tag values case-sensitively: lower case only).
TENANT_KEY = "tenant"  # the encryption-context key, the key tag and the session tag
TENANT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
TENANT_ID_RULE = "1-32 characters from a-z 0-9 -, starting and ending with a letter or digit"
# The functions carry every tenant's key id of their region in one environment variable (74 bytes a
# tenant with a 32-character id), and Lambda allows 4 KB of variables per function in all. Measured
# (tests/infra/test_tenant_functions.py, ids of 32 characters, the Aurora store's host and secret counted
# at 128 bytes, the tenant-access role's ARN at its longest): 35 tenants take 3104 bytes (DynamoDB) and
# 3775 (Aurora); 40 would take 3474 and 4145, over the limit. A SaaS with more tenants wants
# hierarchical keys, not a KMS key per tenant (README "Tenants").
MAX_TENANTS = 35

# Beacons (README "Beacons"): a truncated HMAC of a sensitive field's normalized value, stored beside the
# ciphertext and queried through an index. Below 8 bits a beacon names at least 1/256 of the table, so a
# lookup decrypts too many candidates to be worth an index; above 32 bits nearly every distinct value has
# its own beacon, and the table then tells an observer which records share a value as surely as the value
# itself would (32 bits also keep a beacon in a DynamoDB number and a PostgreSQL bigint exactly).
BEACON_BITS_MIN = 8
BEACON_BITS_MAX = 32
# How a value is normalized before its beacon is computed (equal after normalization: the same beacon):
# "exact": the string as given (Unicode NFC); "casefold": NFKC, case-folded, surrounding whitespace
# dropped and inner runs of whitespace made one space (names, e-mail addresses); "digits": the decimal
# digits only (SSNs, phone and card numbers written with or without separators).
NORMALIZE_EXACT = "exact"
NORMALIZE_CASEFOLD = "casefold"
NORMALIZE_DIGITS = "digits"
NORMALIZATIONS: tuple[str, ...] = (NORMALIZE_EXACT, NORMALIZE_CASEFOLD, NORMALIZE_DIGITS)
BEACON_ATTRIBUTE_PREFIX = "_beacon_"
BEACON_INDEX_PREFIX = "beacon-"
BEACON_COLUMN_PREFIX = "beacon_"
# The most candidates one lookup decrypts (each one a KMS Decrypt with the data-key cache off, ~10 ms with
# its signature check): 100 keep a lookup within a few seconds of the function's 15 s timeout. A beacon
# matching more is refused (TooManyCandidates), never truncated: a partial answer would look complete.
MAX_CANDIDATES = 100
# Each beacon field is an index in every region (a write costs one more index write per region and per
# beacon field) and one more thing an observer of the table learns about equal values: a few, not many.
MAX_BEACON_FIELDS = 5


@dataclass(frozen=True)
class BeaconField:
    """A sensitive field with a beacon: ``bits`` of HMAC, over the value normalized by ``normalization``."""

    name: str
    bits: int
    normalization: str

    @property
    def attribute(self) -> str:
        """The stored (signed) attribute holding the beacon, and the key of its index."""
        return f"{BEACON_ATTRIBUTE_PREFIX}{self.name}"

    @property
    def index_name(self) -> str:
        """The DynamoDB global secondary index keyed by the beacon (the finder queries it)."""
        return f"{BEACON_INDEX_PREFIX}{self.name}"

    @property
    def column(self) -> str:
        """The Aurora PostgreSQL store's column holding the beacon (a bigint with a b-tree index)."""
        return f"{BEACON_COLUMN_PREFIX}{self.name}"


BEACON_BACKFILL_SEGMENT = "beacon-backfill"


def beacon_backfill_path(deployment: str, region: str) -> str:
    """The SSM path of the backfill's state in one region (README "Adding a beacon field"): the parameter
    ``<path>/<field>`` is written by ``python -m offline backfill`` when a pass over that region's records
    left none without the field's beacon, and read by the region's finder (its role may GetParameter on
    exactly these names). Outside ``discovery_path``: discovery reads that path whole."""
    return f"/{deployment}/{BEACON_BACKFILL_SEGMENT}/{region}"


def beacon_backfill_state(field: BeaconField) -> str:
    """What the backfill's parameter must hold for the finder to call ``field``'s lookups complete: the
    beacon's definition, so that a field removed and added again with other bits starts incomplete."""
    return f"complete {field.name}:{field.bits}:{field.normalization}"


def beacon_fields_environment(fields: tuple[BeaconField, ...] | list[BeaconField]) -> str:
    """The BEACON_FIELDS value: ``name:bits:normalization`` joined by commas."""
    return ",".join(f"{f.name}:{f.bits}:{f.normalization}" for f in fields)


# A region name (us-east-2, us-gov-west-1, eu-isoe-west-1, eusc-de-east-1; numbers may reach two
# digits) and an ARN partition: the one pattern of each (tests/runtime/test_settings.py holds them
# against botocore's list of regions and partitions).
REGION_PATTERN = r"[a-z]{2,}(?:-[a-z]+)+-\d{1,2}"
PARTITION_PATTERN = r"aws(?:-cn|-us-gov|-iso(?:-[a-z])?|-eusc)?"
REGION_NAME = re.compile(rf"^{REGION_PATTERN}$")
# Real MRK ids are "mrk-" + 32 hex digits; moto's are "mrk-" + a dashed uuid4. Both are accepted.
_MRK_ARN = re.compile(
    rf"^arn:(?P<partition>{PARTITION_PATTERN}):kms:"
    rf"(?P<region>{REGION_PATTERN}):(?P<account>\d{{12}}):key/(?P<key_id>mrk-(?:[0-9a-f]{{32}}|[0-9a-f-]{{36}}))$"
)
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
# An unquoted PostgreSQL identifier (lower case, at most 63 bytes): table and database names.
SQL_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SQL_IDENTIFIER_RULE = "1-63 characters from a-z 0-9 _, starting with a letter or _"
_SECRET_ARN = re.compile(
    rf"^arn:{PARTITION_PATTERN}:secretsmanager:(?P<region>{REGION_PATTERN}):"
    r"\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$"
)
# A DNS name, or (offline, and for a local socket) an absolute socket directory.
_DB_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*|/[^\0\s]{1,80})$")
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
FIELD_NAME_RULE = "1-64 characters from A-Z a-z 0-9 _, starting with a letter, and not 'id'"
PARTITION_KEY = "id"
# The encryption context's key naming the record (data-key cache off): record_crypto/context.py, `audit`.
ITEM_CONTEXT_KEY = "item"
# The stored version: the writer's role may read this attribute (and the key) and no other.
VERSION_ATTRIBUTE = "_version"
# DynamoDB's item limit is 400 KB; the ciphertext adds headers, a signature and base64-free bytes.
MAX_RECORD_BYTES_LIMIT = 350_000


def is_field_name(name: object) -> bool:
    """The one rule for record field names, shared by the deployment config and the functions.

    Names starting with ``_`` are the toolkit's own attributes; ``id`` is the partition key.
    """
    return isinstance(name, str) and FIELD_NAME.fullmatch(name) is not None and name != PARTITION_KEY


class ConfigurationError(Exception):
    """A function environment variable is missing or invalid."""

    def __init__(self, name: str, value: str | None, allowed: str) -> None:
        shown = "<unset>" if value is None else repr(value)
        super().__init__(f"Invalid function environment {name}={shown}: {allowed}")
        self.name, self.value, self.allowed = name, value, allowed


@dataclass(frozen=True)
class CacheSettings:
    """Bounds of the data-key cache. An entry is dropped when any bound is reached."""

    max_age_seconds: float
    max_messages: int
    max_bytes: int
    capacity: int


@dataclass(frozen=True)
class DatabaseSettings:
    """The local cluster of an Aurora PostgreSQL global database (RECORD_STORE=aurora-postgresql)."""

    host: str
    port: int
    name: str
    secret_arn: str


@dataclass(frozen=True)
class Settings:
    table_name: str
    mrk_arn: str
    region: str
    sensitive_fields: tuple[str, ...]
    unsigned_attributes: tuple[str, ...] = ()
    algorithm_suite: AlgorithmSuite = SUITE_SIGNING
    cache: CacheSettings | None = None
    max_record_bytes: int = 32768
    database: DatabaseSettings | None = None  # None: the DynamoDB store
    # None: no tenants (one key for every record). Else tenant id -> the ARN of its key in this
    # region, or None where the tenant's key does not exist (its records may not be decrypted here).
    tenant_keys: Mapping[str, str | None] | None = None
    tenant_role_arn: str | None = None
    # Beacons (README "Beacons"): the fields with one, and this region's ARN of the HMAC key (both or neither).
    beacon_fields: tuple[BeaconField, ...] = ()
    beacon_key_arn: str | None = None
    beacon_backfill_path: str | None = None  # the finder's (ENV_BEACON_BACKFILL_PATH)

    @property
    def store(self) -> str:
        return STORE_DYNAMODB if self.database is None else STORE_AURORA_POSTGRESQL

    @property
    def key_id(self) -> str:
        """The multi-region key id (the same in every region)."""
        return self.mrk_arn.rsplit("/", 1)[1]

    @classmethod
    def create(
        cls,
        *,
        table_name: str,
        mrk_arn: str,
        region: str,
        sensitive_fields: tuple[str, ...] | list[str],
        unsigned_attributes: tuple[str, ...] | list[str] = (),
        algorithm_suite: str = SUITE_SIGNING,
        cache: CacheSettings | None = None,
        max_record_bytes: int = 32768,
        database: DatabaseSettings | None = None,
        tenant_key_ids: Mapping[str, str | None] | None = None,
        beacon_fields: tuple[BeaconField, ...] | list[BeaconField] = (),
        beacon_key_arn: str | None = None,
        tenant_role_arn: str | None = None,
    ) -> Settings:
        """Validated settings for use outside Lambda (same rules and messages as the functions').
        ``tenant_key_ids``: tenant id -> its key's id ("mrk-...") where it exists in ``region``, else None;
        ``tenant_role_arn``: the tenant-access role a tenant's session is assumed in (None: the caller's own
        credentials use the tenant keys)."""
        environ = {
            ENV_REGION: region,
            ENV_TABLE_NAME: table_name,
            ENV_MRK_ARN: mrk_arn,
            ENV_SENSITIVE_FIELDS: ",".join(sensitive_fields),
            ENV_UNSIGNED_ATTRIBUTES: ",".join(unsigned_attributes),
            ENV_ALGORITHM_SUITE: algorithm_suite,
            ENV_MAX_RECORD_BYTES: str(max_record_bytes),
        }
        if cache is not None:
            environ |= {
                ENV_DATA_KEY_CACHE: "on",
                ENV_CACHE_MAX_AGE: str(int(cache.max_age_seconds)),
                ENV_CACHE_MAX_MESSAGES: str(cache.max_messages),
                ENV_CACHE_MAX_BYTES: str(cache.max_bytes),
                ENV_CACHE_CAPACITY: str(cache.capacity),
            }
        if beacon_fields or beacon_key_arn:
            environ |= {
                ENV_BEACON_FIELDS: beacon_fields_environment(beacon_fields),
                ENV_BEACON_KEY_ARN: beacon_key_arn or "",
            }
        if tenant_key_ids is not None:
            environ[ENV_TENANT_KEYS] = tenant_keys_environment(tenant_key_ids)
        if tenant_role_arn is not None:
            environ[ENV_TENANT_ROLE_ARN] = tenant_role_arn
        if database is not None:
            environ |= {
                ENV_RECORD_STORE: STORE_AURORA_POSTGRESQL,
                ENV_DB_HOST: database.host,
                ENV_DB_PORT: str(database.port),
                ENV_DB_NAME: database.name,
                ENV_DB_SECRET_ARN: database.secret_arn,
            }
        return cls.from_env(environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        def get(name: str) -> str:
            value = environ.get(name)
            if value is None or not value.strip():
                if name in OPTIONAL_ENV_VARS:
                    return OPTIONAL_ENV_VARS[name]
                raise ConfigurationError(name, value, "required, set by the toolkit's functions stack")
            return value.strip()

        region = get(ENV_REGION)
        if not REGION_NAME.match(region):
            raise ConfigurationError(ENV_REGION, region, "an AWS region such as us-east-2")
        store = get(ENV_RECORD_STORE)
        if store not in STORES:
            raise ConfigurationError(ENV_RECORD_STORE, store, f"one of {', '.join(STORES)}")
        table_name = get(ENV_TABLE_NAME)
        if store == STORE_DYNAMODB and not _TABLE_NAME.match(table_name):
            raise ConfigurationError(ENV_TABLE_NAME, table_name, "a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)")
        if store == STORE_AURORA_POSTGRESQL and not SQL_IDENTIFIER.match(table_name):
            raise ConfigurationError(ENV_TABLE_NAME, table_name, f"an SQL table name ({SQL_IDENTIFIER_RULE})")
        mrk_arn = _mrk_arn(get, region)
        fields, unsigned = _fields(get)
        suite = get(ENV_ALGORITHM_SUITE)
        if suite not in ALGORITHM_SUITES:
            raise ConfigurationError(ENV_ALGORITHM_SUITE, suite, f"one of {', '.join(ALGORITHM_SUITES)}")
        cache = _cache(environ, get)
        max_record_bytes = _int(environ, get, ENV_MAX_RECORD_BYTES, 1, MAX_RECORD_BYTES_LIMIT)
        beacon_fields, beacon_key_arn = _beacons(get, region, fields)
        return cls(
            table_name=table_name,
            mrk_arn=mrk_arn,
            region=region,
            sensitive_fields=fields,
            unsigned_attributes=unsigned,
            algorithm_suite=suite,  # type: ignore[arg-type]
            cache=cache,
            max_record_bytes=max_record_bytes,
            database=_database(environ, get, region) if store == STORE_AURORA_POSTGRESQL else None,
            tenant_keys=_tenant_keys(get, mrk_arn),
            tenant_role_arn=_role_arn(get, ENV_TENANT_ROLE_ARN) or None,
            beacon_fields=beacon_fields,
            beacon_key_arn=beacon_key_arn,
            beacon_backfill_path=_backfill_path(get),
        )


_ROLE_ARN = re.compile(rf"^arn:{PARTITION_PATTERN}:iam::\d{{12}}:role/[\w+=,.@/-]{{1,512}}$")


def _role_arn(get, name: str) -> str:  # type: ignore[no-untyped-def]
    value = str(get(name))
    if value and not _ROLE_ARN.match(value):
        raise ConfigurationError(name, value, "an IAM role ARN: arn:aws:iam::<account>:role/<path><name>")
    return value


def tenant_keys_environment(key_ids: Mapping[str, str | None]) -> str:
    """The TENANT_KEYS value: compact JSON, sorted (Lambda allows 4 KB of variables in all)."""
    return json.dumps({t: key_ids[t] or "" for t in sorted(key_ids)}, separators=(",", ":"))


_MRK_ID = re.compile(r"^mrk-(?:[0-9a-f]{32}|[0-9a-f-]{36})$")


def _tenant_keys(get, mrk_arn: str) -> dict[str, str | None] | None:  # type: ignore[no-untyped-def]
    """TENANT_KEYS as tenant id -> the key's ARN in this region (same partition, account and region
    as the records key), or None where the tenant has no key here."""
    raw = get(ENV_TENANT_KEYS)
    if not raw:
        return None
    allowed = f'a JSON object of at most {MAX_TENANTS} tenants, tenant id -> "mrk-..." or "" ({TENANT_ID_RULE})'
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigurationError(ENV_TENANT_KEYS, raw, allowed) from None
    if not isinstance(value, dict) or not value or len(value) > MAX_TENANTS:
        raise ConfigurationError(ENV_TENANT_KEYS, raw, allowed)
    arn_prefix = mrk_arn.rsplit("/", 1)[0]
    keys: dict[str, str | None] = {}
    for tenant, key_id in value.items():
        if not TENANT_ID.match(tenant) or not isinstance(key_id, str) or (key_id and not _MRK_ID.match(key_id)):
            raise ConfigurationError(ENV_TENANT_KEYS, raw, allowed)
        keys[tenant] = f"{arn_prefix}/{key_id}" if key_id else None
    return keys


def _mrk_arn(get, region: str) -> str:  # type: ignore[no-untyped-def]
    """The multi-region key's ARN in this function's own region (no cross-region KMS calls)."""
    mrk_arn = get(ENV_MRK_ARN)
    match = _MRK_ARN.match(mrk_arn)
    if not match:
        raise ConfigurationError(
            ENV_MRK_ARN,
            mrk_arn,
            "the ARN of a multi-region key: arn:aws:kms:<region>:<account>:key/mrk-...",
        )
    if match["region"] != region:
        raise ConfigurationError(
            ENV_MRK_ARN,
            mrk_arn,
            f"the multi-region key of this function's own region {region} (no cross-region KMS calls)",
        )
    return str(mrk_arn)


def _fields(get) -> tuple[tuple[str, ...], tuple[str, ...]]:  # type: ignore[no-untyped-def]
    """The sensitive fields and the unsigned attributes (never a sensitive field)."""
    fields = _names(get, ENV_SENSITIVE_FIELDS, required=True)
    unsigned = _names(get, ENV_UNSIGNED_ATTRIBUTES, required=False)
    if set(unsigned) & set(fields):
        raise ConfigurationError(
            ENV_UNSIGNED_ATTRIBUTES,
            get(ENV_UNSIGNED_ATTRIBUTES),
            f"no sensitive field may be unsigned (both list {sorted(set(unsigned) & set(fields))})",
        )
    return fields, unsigned


_BEACON_ENTRY = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]{0,63}):(?P<bits>\d{1,2}):(?P<norm>[a-z]+)$")


def parse_beacon_fields(raw: str, sensitive: tuple[str, ...]) -> tuple[BeaconField, ...]:
    """BEACON_FIELDS (``name:bits:normalization,...``): sensitive fields, each once, bits and normalization
    in range, at most MAX_BEACON_FIELDS; ConfigurationError naming the variable otherwise."""
    allowed = (
        f"a comma-separated list of name:bits:normalization, each name a sensitive field ({', '.join(sensitive)}) "
        f"once, bits {BEACON_BITS_MIN}-{BEACON_BITS_MAX}, normalization one of {', '.join(NORMALIZATIONS)}; "
        f"at most {MAX_BEACON_FIELDS}"
    )
    fields: list[BeaconField] = []
    for entry in (e.strip() for e in raw.split(",") if e.strip()):
        match = _BEACON_ENTRY.match(entry)
        if (
            match is None
            or match["name"] not in sensitive
            or not BEACON_BITS_MIN <= int(match["bits"]) <= BEACON_BITS_MAX
            or match["norm"] not in NORMALIZATIONS
        ):
            raise ConfigurationError(ENV_BEACON_FIELDS, raw, allowed)
        fields.append(BeaconField(name=match["name"], bits=int(match["bits"]), normalization=match["norm"]))
    if len({f.name for f in fields}) != len(fields) or len(fields) > MAX_BEACON_FIELDS:
        raise ConfigurationError(ENV_BEACON_FIELDS, raw, allowed)
    return tuple(fields)


def _beacons(get, region: str, sensitive: tuple[str, ...]) -> tuple[tuple[BeaconField, ...], str | None]:  # type: ignore[no-untyped-def]
    """BEACON_FIELDS and BEACON_KEY_ARN (this region's multi-region key), both set or neither."""
    raw, key_arn = get(ENV_BEACON_FIELDS), get(ENV_BEACON_KEY_ARN)
    fields = parse_beacon_fields(raw, sensitive)
    if not fields and not key_arn:
        return (), None
    if not fields:
        raise ConfigurationError(ENV_BEACON_FIELDS, raw, f"set with {ENV_BEACON_KEY_ARN}: name:bits:normalization,...")
    match = _MRK_ARN.match(key_arn)
    if match is None or match["region"] != region:
        raise ConfigurationError(
            ENV_BEACON_KEY_ARN,
            key_arn or None,
            f"the multi-region HMAC key of this function's own region {region}: "
            f"arn:aws:kms:{region}:<account>:key/mrk-...",
        )
    return tuple(fields), key_arn


_SSM_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+){2,10}$")


def _backfill_path(get) -> str | None:  # type: ignore[no-untyped-def]
    value = str(get(ENV_BEACON_BACKFILL_PATH))
    if value and not _SSM_PATH.match(value):
        raise ConfigurationError(
            ENV_BEACON_BACKFILL_PATH, value, "an SSM parameter path: /<deployment>/beacon-backfill/<region>"
        )
    return value or None


def _cache(environ: Mapping[str, str], get) -> CacheSettings | None:  # type: ignore[no-untyped-def]
    """The data-key cache's bounds, or None when it is off."""
    cache_switch = get(ENV_DATA_KEY_CACHE)
    if cache_switch not in ("on", "off"):
        raise ConfigurationError(ENV_DATA_KEY_CACHE, cache_switch, "on or off")
    if cache_switch == "off":
        return None
    return CacheSettings(
        max_age_seconds=float(_int(environ, get, ENV_CACHE_MAX_AGE, 1, 86_400)),
        max_messages=_int(environ, get, ENV_CACHE_MAX_MESSAGES, 1, 2**32),
        max_bytes=_int(environ, get, ENV_CACHE_MAX_BYTES, 1, 2**63 - 1),
        capacity=_int(environ, get, ENV_CACHE_CAPACITY, 1, 10_000),
    )


def _database(environ: Mapping[str, str], get, region: str) -> DatabaseSettings:  # type: ignore[no-untyped-def]
    host = get(ENV_DB_HOST)
    if not _DB_HOST.match(host):
        raise ConfigurationError(ENV_DB_HOST, host, "the cluster endpoint's host name (or a socket directory)")
    name = get(ENV_DB_NAME)
    if not SQL_IDENTIFIER.match(name):
        raise ConfigurationError(ENV_DB_NAME, name, f"a database name ({SQL_IDENTIFIER_RULE})")
    secret = get(ENV_DB_SECRET_ARN)
    match = _SECRET_ARN.match(secret)
    if not match:
        raise ConfigurationError(
            ENV_DB_SECRET_ARN, secret, "the ARN of a Secrets Manager secret: arn:aws:secretsmanager:<region>:..."
        )
    if match["region"] != region:
        raise ConfigurationError(
            ENV_DB_SECRET_ARN, secret, f"the secret (or its replica) in this function's own region {region}"
        )
    return DatabaseSettings(
        host=host,
        port=_int(environ, get, ENV_DB_PORT, 1, 65535),
        name=name,
        secret_arn=secret,
    )


def _names(get, name: str, *, required: bool) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    raw = get(name)
    names = tuple(f.strip() for f in raw.split(",") if f.strip())
    if (required and not names) or not all(is_field_name(f) for f in names) or len(set(names)) != len(names):
        raise ConfigurationError(name, raw, f"a comma-separated list of distinct field names ({FIELD_NAME_RULE})")
    return names


def _int(environ: Mapping[str, str], get, name: str, low: int, high: int) -> int:  # type: ignore[no-untyped-def]
    raw = get(name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(name, raw, f"an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigurationError(name, raw, f"an integer from {low} to {high}")
    return value
