"""Structured logs with no record values, no key material and no ciphertext.

Uses the standard library: the functions are configured with Lambda's JSON log format, which
turns ``extra=`` fields into JSON keys, so no logging library has to be bundled or imported at
cold start. Only an allow-list of fields is ever logged.
"""

from __future__ import annotations

import logging
from typing import Any

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
