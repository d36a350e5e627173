"""Event validation and the item format.

Item in the table (one per record):

* ``id`` (S): the partition key, plaintext;
* every non-sensitive record field, plaintext, as native DynamoDB types (queryable);
* ``_ciphertext`` (B): one Encryption SDK message holding the sensitive fields *and the item's
  id*, as canonical JSON;
* ``_writer_region`` (S), ``_schema`` (S), ``_written_at`` (S, ISO 8601 UTC).

Which fields are sensitive is configuration (SENSITIVE_FIELDS). Field names beginning with ``_``
are reserved for the toolkit. Validation happens before any AWS call and never echoes values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from record_crypto.context import SCHEMA_VERSION
from record_crypto.errors import ContextMismatch, InvalidEvent, RecordTooLarge, TamperedCiphertext
from record_crypto.settings import FIELD_NAME, PARTITION_KEY

CIPHERTEXT_ATTRIBUTE = "_ciphertext"
WRITER_REGION_ATTRIBUTE = "_writer_region"
SCHEMA_ATTRIBUTE = "_schema"
WRITTEN_AT_ATTRIBUTE = "_written_at"
ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,254}$")
MAX_FIELDS = 100
MAX_DEPTH = 16
_ID_RULE = "a string of 1-255 characters from A-Z a-z 0-9 . _ : @ + = / - starting with a letter or digit"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class WriteRequest:
    item_id: str
    record: dict[str, Any]


def _require_mapping(event: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"the event must be a JSON object with keys {sorted(allowed)}, got {type(event).__name__}")
    unknown = [k for k in event if k not in allowed]
    if unknown:
        raise InvalidEvent(f"the event has {len(unknown)} unknown key(s); allowed keys are {sorted(allowed)}")
    return event


def _item_id(event: Mapping[str, Any]) -> str:
    item_id = event.get("id")
    if not isinstance(item_id, str) or not ITEM_ID.match(item_id):
        raise InvalidEvent(f"'id' must be {_ID_RULE}")
    return item_id


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _check_value(name: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEvent(f"record field '{name}' holds a non-finite number")
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise InvalidEvent(f"record field '{name}' holds an object with non-string keys")
        for v in value.values():
            _check_value(name, v)
    elif isinstance(value, list):
        for v in value:
            _check_value(name, v)
    elif not (value is None or isinstance(value, str | bool | int | float)):
        raise InvalidEvent(f"record field '{name}' holds a {type(value).__name__}; only JSON values are allowed")


def parse_write_event(event: Any, *, max_record_bytes: int) -> WriteRequest:
    event = _require_mapping(event, {"id", "record"})
    item_id = _item_id(event)
    record = event.get("record")
    if not isinstance(record, Mapping) or not record:
        raise InvalidEvent("'record' must be a non-empty JSON object of fields")
    if len(record) > MAX_FIELDS:
        raise InvalidEvent(f"'record' has {len(record)} fields; at most {MAX_FIELDS} are allowed")
    for name in record:
        if not isinstance(name, str) or not FIELD_NAME.match(name) or name == PARTITION_KEY:
            raise InvalidEvent(
                f"record field names must match {FIELD_NAME.pattern} and not be '{PARTITION_KEY}' "
                "(names starting with '_' are reserved)"
            )
    for name, value in record.items():
        _check_value(name, value)
        if _depth(value) > MAX_DEPTH:
            raise InvalidEvent(f"record field '{name}' is nested deeper than {MAX_DEPTH} levels")
    size = len(canonical_json(record))
    if size > max_record_bytes:
        raise RecordTooLarge(f"the record is {size} bytes as JSON; the limit is {max_record_bytes} (MAX_RECORD_BYTES)")
    return WriteRequest(item_id=item_id, record=dict(record))


def parse_read_event(event: Any) -> str:
    return _item_id(_require_mapping(event, {"id"}))


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def split_record(record: Mapping[str, Any], sensitive: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plaintext fields, sensitive fields) of a record."""
    secret = {k: v for k, v in record.items() if k in sensitive}
    plain = {k: v for k, v in record.items() if k not in sensitive}
    return plain, secret


def sealed_payload(item_id: str, sensitive_fields: Mapping[str, Any]) -> bytes:
    """The plaintext that gets encrypted: the sensitive fields and the item id they belong to."""
    return canonical_json({"id": item_id, "fields": dict(sensitive_fields), "schema": SCHEMA_VERSION})


def open_payload(payload: bytes, *, item_id: str) -> dict[str, Any]:
    try:
        data = json.loads(payload)
        fields, owner = data["fields"], data["id"]
    except (ValueError, KeyError, TypeError):
        raise TamperedCiphertext("the decrypted payload is not a record of this toolkit") from None
    if owner != item_id or not isinstance(fields, dict):
        raise ContextMismatch("the ciphertext belongs to another item: it was copied onto this item")
    return fields


def to_attribute_values(plain: Mapping[str, Any]) -> dict[str, Any]:
    """Plaintext fields as DynamoDB attribute values (numbers as Decimal, max 38 digits)."""
    out: dict[str, Any] = {}
    for name, value in plain.items():
        try:
            native = json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)
            out[name] = _serializer.serialize(native)
        except (TypeError, ValueError, InvalidOperation, ArithmeticError):
            raise InvalidEvent(
                f"record field '{name}' cannot be stored in DynamoDB (numbers have at most 38 significant digits)"
            ) from None
    return out


def from_attribute_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plaintext fields of a stored item as JSON values (toolkit attributes and the key left out)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if name == PARTITION_KEY or name.startswith("_"):
            continue
        out[name] = _jsonable(_deserializer.deserialize(value))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return None
    if hasattr(value, "value") and isinstance(value.value, bytes | bytearray):  # boto3 Binary
        return None
    return value
