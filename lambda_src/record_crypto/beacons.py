"""Beacons: find a record by a sensitive field's value without decrypting the table (README "Beacons").

A beacon is the first ``bits`` bits of HMAC-SHA256(field key, normalized value), stored beside the
record (a signed attribute ``_beacon_<field>``) and queried through an index. Truncation is the point:
with fewer bits than values, many values share a beacon, so the table tells an observer less about
which records hold equal values, and a lookup decrypts its candidates and drops the false positives.

**How the per-field key is derived** (measured both ways: benchmarks/beacons.py, RESULTS.md):

* *derived* (this module): once per cold start, per field and tenant, one ``kms:GenerateMac`` with the
  multi-region HMAC key over a fixed label (``mrk-toolkit:beacon:v1``, the table, the field, the
  tenant); every beacon is then an HMAC computed locally. 0 KMS calls per write or lookup after the
  first; the field key (32 bytes) lives in the function's memory, so whoever reads that memory can
  compute that field's beacons offline (a dictionary of SSNs narrowed to the values sharing a beacon)
  without any further KMS call or CloudTrail record.
* *per value*: one ``kms:GenerateMac`` per beacon over the label and the value. The key never leaves
  KMS and every guess is a logged, rate-limited call; but every write pays a KMS round trip per beacon
  field and every lookup one more, and CloudTrail records each call's caller (not the value).

Either way, whoever may call ``GenerateMac`` on the key (the writer and finder roles: the key policy
names them) can compute beacons; the tenant in the label makes equal values of two tenants differ.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import unicodedata
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from record_crypto.envelope import _DENIED, _KEY_DISABLED, _THROTTLING, _UNAVAILABLE
from record_crypto.errors import AccessDenied, Internal, InvalidEvent, KeyDisabled, KmsThrottled, Unavailable
from record_crypto.settings import (
    BEACON_BITS_MAX,
    NORMALIZE_CASEFOLD,
    NORMALIZE_DIGITS,
    NORMALIZE_EXACT,
    BeaconField,
    beacon_backfill_state,
)

MAC_ALGORITHM = "HMAC_SHA_256"
# Changing the label changes every beacon: a new version means a backfill of every record.
LABEL_VERSION = "mrk-toolkit:beacon:v1"


def normalize(field: BeaconField, value: Any) -> bytes:
    """The bytes a beacon is computed over; InvalidEvent (naming the field, never the value) for a
    value that has none. A string, or an integer (its decimal text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidEvent(
            f"record field '{field.name}' has a beacon: its value must be a string or an integer, "
            f"not {type(value).__name__}"
        )
    if field.normalization == NORMALIZE_DIGITS:
        text = "".join(c for c in value if c.isascii() and c.isdigit())
        if not text:
            raise InvalidEvent(f"record field '{field.name}' has a digits beacon: its value must hold a digit")
    elif field.normalization == NORMALIZE_CASEFOLD:
        text = " ".join(unicodedata.normalize("NFKC", value).casefold().split())
    elif field.normalization == NORMALIZE_EXACT:
        text = unicodedata.normalize("NFC", value)
    else:  # settings refuse any other
        raise Internal(f"unknown normalization {field.normalization!r}")
    return text.encode("utf-8")


def label(table: str, field: str, tenant: str | None) -> bytes:
    """What the field key is the MAC of: unambiguous (length-prefixed parts)."""
    parts = (LABEL_VERSION, table, field, tenant or "")
    return b"".join(len(p.encode()).to_bytes(2, "big") + p.encode() for p in parts)


def truncate(mac: bytes, bits: int) -> int:
    """The first ``bits`` bits of a MAC, as an integer (0 .. 2**bits - 1)."""
    if not 1 <= bits <= BEACON_BITS_MAX:
        raise ValueError(bits)
    return int.from_bytes(mac[:4], "big") >> (32 - bits)


class Beacons:
    """Computes beacons with this region's replica of the multi-region HMAC key.

    Props: ``key_arn``; ``table`` (the records table: part of the label); ``fields``; ``botocore_session``.
    The field keys are derived on first use and kept for the life of the container.
    """

    def __init__(
        self,
        *,
        key_arn: str,
        table: str,
        fields: tuple[BeaconField, ...],
        botocore_session: botocore.session.Session | None = None,
    ) -> None:
        session = botocore_session or botocore.session.get_session()
        self.key_arn, self.table = key_arn, table
        self.fields = {f.name: f for f in fields}
        self._kms = session.create_client("kms", region_name=key_arn.split(":")[3])
        self._keys: dict[tuple[str, str | None], bytes] = {}
        self._lock = threading.Lock()
        self.kms_calls = 0
        self.kms_throttles = 0

    def counters(self) -> tuple[int, int, int]:
        """(KMS calls, throttled KMS calls, 0): added to the service's metrics."""
        return self.kms_calls, self.kms_throttles, 0

    def of_record(self, record: dict[str, Any], tenant: str | None) -> dict[str, dict[str, str]]:
        """The beacon attributes (DynamoDB numbers) of each beacon field the record holds; every value
        is normalized (or refused) before the first KMS call."""
        data = {f: normalize(f, record[f.name]) for f in self.fields.values() if f.name in record}
        return {f.attribute: {"N": str(self._beacon(f, d, tenant))} for f, d in data.items()}

    def beacon(self, field_name: str, value: Any, tenant: str | None) -> int:
        """The beacon of ``value`` in ``field_name`` (a beacon field) for ``tenant``."""
        field = self.fields[field_name]
        return self._beacon(field, normalize(field, value), tenant)  # normalized before any KMS call

    def _beacon(self, field: BeaconField, data: bytes, tenant: str | None) -> int:
        mac = hmac.new(self._field_key(field.name, tenant), data, hashlib.sha256).digest()
        return truncate(mac, field.bits)

    def _field_key(self, field: str, tenant: str | None) -> bytes:
        with self._lock:
            key = self._keys.get((field, tenant))
            if key is None:
                key = self.generate_mac(label(self.table, field, tenant))
                self._keys[(field, tenant)] = key
            return key

    def generate_mac(self, message: bytes) -> bytes:
        """One ``kms:GenerateMac`` with the local HMAC key; KMS failures as the toolkit's errors."""
        self.kms_calls += 1
        try:
            response = self._kms.generate_mac(KeyId=self.key_arn, MacAlgorithm=MAC_ALGORITHM, Message=message)
        except ClientError as error:
            raise self._failure(error.response.get("Error", {}).get("Code", "")) from None
        except BotoCoreError as error:
            raise self._failure(type(error).__name__) from None
        return bytes(response["Mac"])

    def _failure(self, code: str) -> Exception:
        if code in _THROTTLING:
            self.kms_throttles += 1
            return KmsThrottled("KMS throttled GenerateMac on the beacon key after retries; retry later")
        if code in _DENIED:
            return AccessDenied(f"KMS denied GenerateMac on {self.key_arn} to the credentials in use")
        if code in _KEY_DISABLED:
            return KeyDisabled(f"the beacon key {self.key_arn} is disabled or scheduled for deletion ({code})")
        if code in _UNAVAILABLE:
            return Unavailable(f"KMS did not answer GenerateMac ({code}) after retries; retry later")
        return Internal(f"GenerateMac failed ({code or 'unknown error'})")


# How long a finder container trusts what it read of the backfill's state. "Not complete" is read again
# after 10 s, so a finished backfill shows within seconds (one GetParameter per field per container every
# 10 s meanwhile); "complete" is kept 5 minutes (it turns back only if the parameter is deleted: a field
# defined anew changes the function's configuration, and with it every container).
BACKFILL_INCOMPLETE_TTL_S = 10.0
BACKFILL_COMPLETE_TTL_S = 300.0


class BackfillState:
    """Has the backfill (``python -m offline backfill``) finished a beacon field in this region? Read from
    the SSM parameter ``<path>/<field>`` (settings.beacon_backfill_path). Anything but the parameter
    holding the field's definition (missing, unreadable, another definition, no path configured) is "not
    complete": a lookup then says it may miss records written before the field had a beacon, never the
    opposite."""

    def __init__(
        self,
        *,
        path: str | None,
        region: str,
        botocore_session: botocore.session.Session | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.path, self._clock = path, clock
        session = botocore_session or botocore.session.get_session()
        self._ssm = session.create_client("ssm", region_name=region) if path else None
        self._seen: dict[str, tuple[bool, float]] = {}
        self.reads = 0

    def complete(self, field: BeaconField) -> bool:
        if self._ssm is None:
            return False
        cached = self._seen.get(field.name)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        self.reads += 1
        try:
            value = self._ssm.get_parameter(Name=f"{self.path}/{field.name}")["Parameter"]["Value"]
        except (ClientError, BotoCoreError):  # not found, denied, unreachable: not known to be complete
            value = None
        done = bool(value == beacon_backfill_state(field))
        ttl = BACKFILL_COMPLETE_TTL_S if done else BACKFILL_INCOMPLETE_TTL_S
        self._seen[field.name] = (done, self._clock() + ttl)
        return done
