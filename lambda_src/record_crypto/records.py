"""Event validation and the item format.

Item in the table, format 2 (one per record):

* ``id`` (S): the partition key, plaintext;
* every non-sensitive record field, plaintext, as native DynamoDB types (queryable);
* ``_ciphertext`` (B): one Encryption SDK message whose authenticated plaintext (the *sealed
  payload*) holds the sensitive fields, the item's id, its version, who wrote it and when, and
  the **signature of every other attribute**: their names and a SHA-256 digest of their
  canonical values (see ``attribute_digest``);
* ``_schema`` (S, "2"), ``_version`` (N), ``_writer_region`` (S), ``_written_at`` (S): plaintext
  copies for queries and for the writer's conditional write, covered by the digest.

Attributes listed as unsigned (UNSIGNED_ATTRIBUTES, empty by default) are stored and returned
apart, marked as unauthenticated. Any other attribute the writer did not sign, a changed or a
missing one, or a plaintext attribute named like a sensitive field, is refused (TamperedRecord).

Format 1 (before signing): the payload held only the id and the sensitive fields. Such items are
still read: their sensitive fields are authentic, everything else is returned under
``unsigned`` (version 0), so a caller can tell and re-write them.

Which fields are sensitive is configuration (SENSITIVE_FIELDS). Field names beginning with ``_``
are reserved for the toolkit. Validation happens before any AWS call and never echoes values.
"""

from __future__ import annotations

import base64
import difflib
import functools
import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from record_crypto.context import SCHEMA_VERSION as CONTEXT_VERSION
from record_crypto.errors import (
    ContextMismatch,
    InvalidEvent,
    RecordTooLarge,
    TamperedCiphertext,
    TamperedRecord,
    UnknownTenant,
)
from record_crypto.settings import FIELD_NAME_RULE, PARTITION_KEY, TENANT_ID, TENANT_ID_RULE, TENANT_KEY, is_field_name

CIPHERTEXT_ATTRIBUTE = "_ciphertext"
WRITER_REGION_ATTRIBUTE = "_writer_region"
SCHEMA_ATTRIBUTE = "_schema"
WRITTEN_AT_ATTRIBUTE = "_written_at"
# The record's tenant (deployments with tenants only): stored beside the record, signed with it, and
# also in the encryption context. The reader compares it with the tenant asked for before any KMS call.
TENANT_ATTRIBUTE = "_tenant"
FORMAT = 2
LEGACY_FORMAT = 1
ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,254}")
MAX_FIELDS = 100
MAX_DEPTH = 16
# Versions stay exact in every JSON reader (2**53) and in DynamoDB numbers.
MAX_VERSION = 2**53 - 1
_ID_RULE = "a string of 1-255 characters from A-Z a-z 0-9 . _ : @ + = / - starting with a letter or digit"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class WriteRequest:
    item_id: str
    record: dict[str, Any]
    expected_version: int | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class ReadRequest:
    item_id: str
    min_version: int | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class FindRequest:
    field: str
    value: Any
    tenant: str | None = None


@dataclass(frozen=True)
class Sealed:
    """What the authenticated payload of a stored record says."""

    format: int
    item_id: str
    fields: dict[str, Any]
    version: int
    writer_region: str | None
    written_at: str | None
    signed_names: tuple[str, ...]
    digest: str | None


# -- events ------------------------------------------------------------------------------------
# A key is a name the caller chose, never a value: it may be named, but cut short (a key can be any string).
_SHOWN_KEY_CHARS = 64
_SHOWN_KEYS = 5


def _shown_key(key: Any) -> str:
    text = key if isinstance(key, str) else str(key)
    return repr(text[:_SHOWN_KEY_CHARS] + ("..." if len(text) > _SHOWN_KEY_CHARS else ""))


def _require_mapping(event: Any, allowed: set[str], required: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"the event must be a JSON object with keys {sorted(allowed)}, got {type(event).__name__}")
    unknown = [k for k in event if k not in allowed]
    if unknown:
        names = ", ".join(_shown_key(k) for k in unknown[:_SHOWN_KEYS])
        more = f" and {len(unknown) - _SHOWN_KEYS} more" if len(unknown) > _SHOWN_KEYS else ""
        close = difflib.get_close_matches(str(unknown[0]), sorted(allowed), n=1) if isinstance(unknown[0], str) else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InvalidEvent(f"the event has unknown key(s) {names}{more}{hint}; allowed keys are {sorted(allowed)}")
    missing = [name for name in required if name not in event]
    if missing:
        names = " and ".join(f"'{name}'" for name in missing)
        raise InvalidEvent(f"{names} {'is' if len(missing) == 1 else 'are'} missing: the event needs {list(required)}")
    return event


def _item_id(event: Mapping[str, Any]) -> str:
    item_id = event.get("id")
    if not isinstance(item_id, str) or not ITEM_ID.fullmatch(item_id):
        raise InvalidEvent(f"'id' must be {_ID_RULE}")
    return item_id


def _optional_version(event: Mapping[str, Any], name: str, low: int) -> int | None:
    value = event.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_VERSION:
        raise InvalidEvent(f"'{name}' must be an integer from {low} to {MAX_VERSION}")
    return value


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _encodable(name: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(
            f"record field '{name}' holds a string that is not valid Unicode (a lone surrogate)"
        ) from None


def _check_value(name: str, value: Any, level: int = 0) -> None:
    """Refuse, naming the field, what would not come back as it went in (or would fail later)."""
    if level > MAX_DEPTH:  # before any recursion: a value that contains itself is refused here too
        raise InvalidEvent(f"record field '{name}' is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEvent(f"record field '{name}' holds a non-finite number")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _int_bound():
        raise InvalidEvent(
            f"record field '{name}' holds an integer of more than {_int_digits()} digits (Python's limit for "
            "converting integers to text); store it as a string"
        )
    if isinstance(value, str):
        _encodable(name, value)
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise InvalidEvent(f"record field '{name}' holds an object with non-string keys")
        for k, v in value.items():
            _encodable(name, k)
            _check_value(name, v, level + 1)
    elif isinstance(value, list):
        for v in value:
            _check_value(name, v, level + 1)
    elif not (value is None or isinstance(value, bool | int | float)):
        raise InvalidEvent(
            f"record field '{name}' holds a {type(value).__name__}; only JSON values are allowed "
            "(dict, list, str, int, float, bool, None)"
        )


def _int_digits() -> int:
    """Python's limit on integer-to-text conversion: the default, or this process's if it set a lower one."""
    current = sys.get_int_max_str_digits()
    return min(current, sys.int_info.default_max_str_digits) if current else sys.int_info.default_max_str_digits


def _int_bound() -> int:
    return _power_of_ten(_int_digits())


@functools.cache
def _power_of_ten(digits: int) -> int:
    bound: int = 10**digits
    return bound


def _tenant_keys(event: Any, tenants: Mapping[str, Any] | None) -> tuple[set[str], tuple[str, ...]]:
    """With tenants, ``tenant`` is a required key of every event; without, it is refused."""
    if tenants is not None:
        return {TENANT_KEY}, (TENANT_KEY,)
    if isinstance(event, Mapping) and TENANT_KEY in event:
        raise InvalidEvent(f"'{TENANT_KEY}' is not accepted: this deployment has no tenants (mrk-toolkit:tenants)")
    return set(), ()


def _tenant(event: Mapping[str, Any], tenants: Mapping[str, Any] | None) -> str | None:
    """The event's tenant, one of ``tenants`` (None without tenants)."""
    if tenants is None:
        return None
    tenant = event.get(TENANT_KEY)
    if not isinstance(tenant, str) or not TENANT_ID.match(tenant):
        raise InvalidEvent(f"'{TENANT_KEY}' must be a tenant id: {TENANT_ID_RULE}")
    if tenant not in tenants:
        raise UnknownTenant(f"'{tenant}' is not a tenant of this deployment: check the event's '{TENANT_KEY}'")
    return tenant


def parse_write_event(event: Any, *, max_record_bytes: int, tenants: Mapping[str, Any] | None = None) -> WriteRequest:
    """``tenants``: the deployment's tenants (None: it has none, and ``tenant`` is refused)."""
    allowed, required = _tenant_keys(event, tenants)
    event = _require_mapping(event, {"id", "record", "expected_version", *allowed}, ("id", "record", *required))
    item_id = _item_id(event)
    tenant = _tenant(event, tenants)
    expected = _optional_version(event, "expected_version", 0)
    record = event.get("record")
    if not isinstance(record, Mapping) or not record:
        raise InvalidEvent("'record' must be a non-empty JSON object of fields")
    if len(record) > MAX_FIELDS:
        raise InvalidEvent(f"'record' has {len(record)} fields; at most {MAX_FIELDS} are allowed")
    if not all(is_field_name(name) for name in record):
        raise InvalidEvent(f"record field names must be {FIELD_NAME_RULE} (names starting with '_' are reserved)")
    for name, value in record.items():
        _check_value(name, value)
        if _depth(value) > MAX_DEPTH:
            raise InvalidEvent(f"record field '{name}' is nested deeper than {MAX_DEPTH} levels")
    size = len(canonical_json(record))
    if size > max_record_bytes:
        raise RecordTooLarge(f"the record is {size} bytes as JSON; the limit is {max_record_bytes} (MAX_RECORD_BYTES)")
    return WriteRequest(item_id=item_id, record=dict(record), expected_version=expected, tenant=tenant)


def parse_read_event(event: Any, *, tenants: Mapping[str, Any] | None = None) -> ReadRequest:
    allowed, required = _tenant_keys(event, tenants)
    event = _require_mapping(event, {"id", "min_version", *allowed}, ("id", *required))
    return ReadRequest(
        item_id=_item_id(event), min_version=_optional_version(event, "min_version", 1), tenant=_tenant(event, tenants)
    )


def parse_find_event(
    event: Any, *, beacon_fields: tuple[str, ...], tenants: Mapping[str, Any] | None = None
) -> FindRequest:
    """``{"field", "value"}`` (+ ``tenant`` with tenants): ``field`` one of ``beacon_fields``, ``value`` a
    string or an integer (what a beacon is computed over)."""
    allowed, required = _tenant_keys(event, tenants)
    event = _require_mapping(event, {"field", "value", *allowed}, ("field", "value", *required))
    field, value = event.get("field"), event.get("value")
    if field not in beacon_fields:
        shown = _shown_key(field) if isinstance(field, str) else type(field).__name__
        known = ", ".join(beacon_fields) or "none (mrk-toolkit:beaconFields is empty)"
        raise InvalidEvent(f"'field' {shown} is not a beacon field; beacon fields are {known}")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent("'value' must be a string or an integer")
    _check_value("value", value)
    return FindRequest(field=str(field), value=value, tenant=_tenant(event, tenants))


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def split_record(
    record: Mapping[str, Any], sensitive: tuple[str, ...], unsigned: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(signed plaintext fields, sensitive fields, unsigned fields) of a record."""
    secret = {k: v for k, v in record.items() if k in sensitive}
    loose = {k: v for k, v in record.items() if k in unsigned}
    plain = {k: v for k, v in record.items() if k not in sensitive and k not in unsigned}
    return plain, secret, loose


# -- the signature of the plaintext attributes ---------------------------------------------------
def _canonical_attribute(value: Mapping[str, Any]) -> Any:
    """One attribute value in a form that survives DynamoDB's normalization, type included."""
    if len(value) != 1:
        raise TamperedRecord("an attribute value is not a DynamoDB attribute value")
    ((kind, inner),) = value.items()
    if kind == "N":
        return ["N", _number(inner)]
    if kind == "NS":
        return ["NS", sorted(_number(n) for n in inner)]
    if kind == "B":
        return ["B", base64.b64encode(bytes(inner)).decode()]
    if kind == "BS":
        return ["BS", sorted(base64.b64encode(bytes(b)).decode() for b in inner)]
    if kind == "SS":
        return ["SS", sorted(inner)]
    if kind == "L":
        return ["L", [_canonical_attribute(v) for v in inner]]
    if kind == "M":
        return ["M", {k: _canonical_attribute(v) for k, v in inner.items()}]
    if kind in ("S", "BOOL", "NULL"):
        return [kind, inner]
    raise TamperedRecord(f"an attribute has the unknown DynamoDB type {kind!r}")


def _number(text: Any) -> str:
    try:
        number = Decimal(str(text))
    except InvalidOperation:
        raise TamperedRecord("a number attribute is not a number") from None
    return "0" if number == 0 else str(number.normalize())


def attribute_digest(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """SHA-256 of the canonical form of named attribute values (names, types and values)."""
    canonical = {name: _canonical_attribute(value) for name, value in attributes.items()}
    return hashlib.sha256(canonical_json(canonical)).hexdigest()


# -- the sealed payload -------------------------------------------------------------------------
def seal(
    *,
    item_id: str,
    sensitive_fields: Mapping[str, Any],
    signed_attributes: Mapping[str, Mapping[str, Any]],
    version: int,
    writer_region: str,
    written_at: str,
) -> bytes:
    """The plaintext that gets encrypted (and, with the signing suite, signed)."""
    return canonical_json(
        {
            "format": FORMAT,
            "schema": CONTEXT_VERSION,
            "id": item_id,
            "version": version,
            "writer_region": writer_region,
            "written_at": written_at,
            "fields": dict(sensitive_fields),
            "signed": {"names": sorted(signed_attributes), "sha256": attribute_digest(signed_attributes)},
        }
    )


def unseal(payload: bytes, *, item_id: str) -> Sealed:
    """Parse an authenticated payload (format 2, or format 1 written before signing)."""
    try:
        data = json.loads(payload)
        if not isinstance(data, dict) or not isinstance(data["fields"], dict):
            raise TypeError
        fields, owner = data["fields"], data["id"]
        if data.get("format") == FORMAT:
            signed = data["signed"]
            sealed = Sealed(
                format=FORMAT,
                item_id=owner,
                fields=fields,
                version=_stored_version(data["version"]),
                writer_region=str(data["writer_region"]),
                written_at=str(data["written_at"]),
                signed_names=tuple(str(n) for n in signed["names"]),
                digest=str(signed["sha256"]),
            )
        elif "format" not in data and data.get("schema") == "1":
            sealed = Sealed(LEGACY_FORMAT, owner, fields, 0, None, None, (), None)
        else:
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise TamperedCiphertext("the decrypted payload is not a record of this toolkit") from None
    if owner != item_id:
        raise ContextMismatch("the ciphertext belongs to another item: it was copied onto this item")
    return sealed


def _stored_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise TypeError
    return value


def refuse_planted_fields(item: Mapping[str, Any], sensitive: tuple[str, ...]) -> None:
    """A sensitive field only ever travels inside the ciphertext: a plaintext one was planted."""
    planted = sorted(set(item) & set(sensitive))
    if planted:
        raise TamperedRecord(
            f"the item holds plaintext attribute(s) {planted} named like sensitive fields: "
            "the writer never stores them outside the ciphertext"
        )


def verify_attributes(item: Mapping[str, Any], sealed: Sealed, unsigned: tuple[str, ...]) -> None:
    """Refuse an item whose plaintext attributes are not exactly those the writer signed."""
    stored = {k: v for k, v in item.items() if k != CIPHERTEXT_ATTRIBUTE and k not in unsigned}
    extra = sorted(set(stored) - set(sealed.signed_names))
    if extra:
        raise TamperedRecord(f"the item has attribute(s) {extra} that its writer did not sign")
    missing = sorted(set(sealed.signed_names) - set(stored))
    if missing:
        raise TamperedRecord(f"signed attribute(s) {missing} were removed from the item")
    if attribute_digest(stored) != sealed.digest:
        raise TamperedRecord("the item's plaintext attributes differ from what its writer signed")


# -- DynamoDB attribute values ------------------------------------------------------------------
def to_attribute_values(plain: Mapping[str, Any]) -> dict[str, Any]:
    """Plaintext fields as DynamoDB attribute values (numbers as Decimal, max 38 digits)."""
    out: dict[str, Any] = {}
    for name, value in plain.items():
        _refuse_unstorable_plaintext(name, value)
        try:
            native = json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)
            out[name] = _serializer.serialize(native)
        except (TypeError, ValueError, InvalidOperation, ArithmeticError):
            raise InvalidEvent(
                f"record field '{name}' cannot be stored in DynamoDB (numbers have at most 38 significant digits and "
                "a magnitude from 1E-130 to 9.9E+125); store it as a string or list the field as sensitive"
            ) from None
    return out


# DynamoDB's number range (its serializer's context lets some of what DynamoDB refuses through).
_SMALLEST_NUMBER, _LARGEST_NUMBER = Decimal("1E-130"), Decimal("9.9999999999999999999999999999999999999E+125")
_EXACT_FLOAT_INTEGERS = 2**53  # an integral float past this reads back as an int of another value


def _refuse_unstorable_plaintext(name: str, value: Any) -> None:
    """What a DynamoDB attribute would not give back as it went in, refused naming the field."""
    fix = "list the field as sensitive (stored inside the ciphertext as JSON) or store it as a string"
    if isinstance(value, float) and value.is_integer() and abs(value) >= _EXACT_FLOAT_INTEGERS:
        raise InvalidEvent(f"record field '{name}' holds a float that DynamoDB would give back as an integer; {fix}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if number != 0 and not _SMALLEST_NUMBER <= abs(number) <= _LARGEST_NUMBER:
            raise InvalidEvent(
                f"record field '{name}' holds a number outside DynamoDB's range (1E-130 to 9.9E+125); {fix}"
            )
    if isinstance(value, dict):
        if "" in value:
            raise InvalidEvent(
                f"record field '{name}' holds an object with an empty key, not stored in a map attribute; {fix}"
            )
        for inner in value.values():
            _refuse_unstorable_plaintext(name, inner)
    elif isinstance(value, list):
        for inner in value:
            _refuse_unstorable_plaintext(name, inner)


def from_attribute_values(item: Mapping[str, Any], *, include_toolkit: bool = False) -> dict[str, Any]:
    """Plaintext fields of a stored item as JSON values (the key, and unless asked the toolkit's
    ``_`` attributes, left out)."""
    out: dict[str, Any] = {}
    for name, value in item.items():
        if name in (PARTITION_KEY, CIPHERTEXT_ATTRIBUTE) or (name.startswith("_") and not include_toolkit):
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
