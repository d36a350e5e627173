"""Structured logs and metrics with no record values, no key material and no ciphertext.

Logs use the standard library: the functions are configured with Lambda's JSON log format, which
turns ``extra=`` fields into JSON keys, so no logging library has to be bundled or imported at
cold start. Only an allow-list of fields is ever logged.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

# Relative: the CDK app imports this module as lambda_src.record_crypto.observability (the metric
# names below), where "record_crypto" is not a top-level package.
from .errors import ERROR_TYPES, DatabaseUnavailable, ReadOnlyRegion, TooManyCandidates

LOGGER = logging.getLogger("mrk_toolkit")
LOGGER.setLevel(logging.INFO)
# What a log line may carry: identifiers, sizes, outcomes, timings. Never record fields.
ALLOWED_FIELDS = frozenset(
    {
        "operation",
        "item_id",
        "region",
        "outcome",
        "error_type",
        "status",
        "retryable",
        "ciphertext_bytes",
        "duration_ms",
        "field_count",
        "encrypted_field_count",
        # A lookup (the finder): the beacon field's name (configuration, never a value) and counts.
        "beacon_field",
        "candidates",
        "matches",
        "written_region",
        "version",
        "cause",
    }
)


def log_event(level: int, message: str, **fields: Any) -> None:
    unknown = set(fields) - ALLOWED_FIELDS
    if unknown:  # a programming error: refuse to log rather than risk logging a value
        raise ValueError(f"log fields not on the allow-list: {sorted(unknown)}")
    LOGGER.log(level, message, extra={"mrk_toolkit": fields})


# -- Metrics: CloudWatch embedded metric format (EMF) --------------------------------------------
# Written by hand, not with aws-lambda-powertools' Metrics: powertools adds 1.04 MB to the 5.46 MB
# zipped bundle, past its 6 MB target (the figures are in the README, "Operations: signals").
# One JSON line per operation on stdout (not through logging: Lambda's JSON log format wraps
# logging records, while stdout lines that are JSON objects reach CloudWatch Logs as they are, and
# CloudWatch Logs turns each EMF line into metrics). The names below are the contract with the
# alarms and the dashboard (cdk_constructs/signals.py imports them); a metric line carries the
# table name, the operation and an error type, never an item id or a record value.
NAMESPACE = "MrkToolkit"
DIMENSION_TABLE = "Table"
DIMENSION_OPERATION = "Operation"
DIMENSION_ERROR_TYPE = "ErrorType"
OPERATION_WRITE = "write"
OPERATION_READ = "read"
OPERATIONS = (OPERATION_WRITE, OPERATION_READ)
# A lookup by beacon (the finder, README "Beacons"): its lines are emitted; no alarm or widget watches them yet.
OPERATION_FIND = "find"
EMITTED_OPERATIONS = (*OPERATIONS, OPERATION_FIND)
# The operation of each function kind (the writer writes, the reader reads).
OPERATION_OF = {"writer": OPERATION_WRITE, "reader": OPERATION_READ}

RECORDS_WRITTEN = "RecordsWritten"
RECORDS_READ = "RecordsRead"
REFUSALS = "Refusals"  # by ErrorType
SECURITY_REFUSALS = "SecurityRefusals"  # refusals that mean tampering or a wrong key
KMS_CALLS = "KmsCalls"
KMS_THROTTLES = "KmsThrottles"  # KMS answers that were throttling errors, retried or not
DATA_KEY_CACHE_HITS = "DataKeyCacheHits"  # encryptions/decryptions served without a KMS call
# Emitted on every operation (zeros included), with the dimensions (Table, Operation).
OPERATION_METRICS = (RECORDS_WRITTEN, RECORDS_READ, SECURITY_REFUSALS, KMS_CALLS, KMS_THROTTLES, DATA_KEY_CACHE_HITS)
SECURITY_ERROR_TYPES = tuple(sorted(name for name, cls in ERROR_TYPES.items() if cls.security_signal))
# The Aurora store's refusals that mean the database (alarmed per function kind: Refusals by ErrorType).
DATABASE_REFUSALS = {"writer": (DatabaseUnavailable.type, ReadOnlyRegion.type), "reader": (DatabaseUnavailable.type,)}
# The finder's refusals alarmed per region (beacon fields only): too broad a lookup, and (Aurora) its database.
FINDER_REFUSALS = (TooManyCandidates.type,)
FINDER_DATABASE_REFUSALS = (DatabaseUnavailable.type,)
# What RDS publishes of each Aurora cluster (namespace AWS/RDS, dimension DBClusterIdentifier) that
# the alarms and the dashboard watch: replication and RPO lag (a secondary's), CPU, connections.
RDS_NAMESPACE = "AWS/RDS"
AURORA_REPLICATION_LAG = "AuroraGlobalDBReplicationLag"
AURORA_RPO_LAG = "AuroraGlobalDBRPOLag"
AURORA_CLUSTER_METRICS = (AURORA_REPLICATION_LAG, AURORA_RPO_LAG, "CPUUtilization", "DatabaseConnections")


@dataclass(frozen=True)
class OperationCounts:
    """What one write or read did, for its metric line."""

    operation: str
    ok: bool
    error_type: str | None = None
    kms_calls: int = 0
    kms_throttles: int = 0
    cache_hits: int = 0


def emf_document(table: str, counts: OperationCounts, *, timestamp_ms: int | None = None) -> dict[str, Any]:
    """One EMF document: the operation metrics under (Table, Operation) and, for a refusal, one
    ``Refusals`` under (Table, Operation, ErrorType)."""
    if counts.operation not in EMITTED_OPERATIONS:
        raise ValueError(f"operation must be one of {EMITTED_OPERATIONS}, got {counts.operation!r}")
    if counts.error_type is not None and counts.error_type not in ERROR_TYPES:
        raise ValueError(f"unknown error type {counts.error_type!r}")  # never a free-form string
    values = {
        RECORDS_WRITTEN: int(counts.ok and counts.operation == OPERATION_WRITE),
        RECORDS_READ: int(counts.ok and counts.operation == OPERATION_READ),
        SECURITY_REFUSALS: int(counts.error_type in SECURITY_ERROR_TYPES),
        KMS_CALLS: counts.kms_calls,
        KMS_THROTTLES: counts.kms_throttles,
        DATA_KEY_CACHE_HITS: counts.cache_hits,
    }
    directives: list[dict[str, Any]] = [
        {
            "Namespace": NAMESPACE,
            "Dimensions": [[DIMENSION_TABLE, DIMENSION_OPERATION]],
            "Metrics": [{"Name": name, "Unit": "Count"} for name in OPERATION_METRICS],
        }
    ]
    document: dict[str, Any] = {DIMENSION_TABLE: table, DIMENSION_OPERATION: counts.operation, **values}
    if counts.error_type is not None:
        directives.append(
            {
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION_TABLE, DIMENSION_OPERATION, DIMENSION_ERROR_TYPE]],
                "Metrics": [{"Name": REFUSALS, "Unit": "Count"}],
            }
        )
        document |= {DIMENSION_ERROR_TYPE: counts.error_type, REFUSALS: 1}
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": directives}, **document}


class EmfMetrics:
    """Writes one EMF line per operation to ``stream`` (default: the process's stdout, looked up
    at each write so a redirected stdout is honoured)."""

    def __init__(self, table: str, stream: TextIO | None = None) -> None:
        self.table = table
        self._stream = stream

    def record(self, counts: OperationCounts) -> None:
        stream = self._stream or sys.stdout
        stream.write(json.dumps(emf_document(self.table, counts), separators=(",", ":")) + "\n")
        stream.flush()
