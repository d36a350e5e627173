"""Write and read records: validate, encrypt/decrypt with the local MRK, use the local replica.

``RecordService`` holds the per-container state (settings, the cipher, the store: the DynamoDB
table or the PostgreSQL cluster, see stores.py),
built once at cold start; ``write`` and ``read`` return the structured results the handlers
return. Clients are injectable (a botocore session) for tests and benchmarks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import botocore.session
from botocore.exceptions import ClientError

from record_crypto.beacons import BackfillState, Beacons, normalize
from record_crypto.context import check_context, expected_context
from record_crypto.discovery import discover_settings
from record_crypto.envelope import RecordCipher
from record_crypto.errors import (
    AccessDenied,
    Internal,
    InvalidEvent,
    NotFound,
    RecordError,
    StaleRecord,
    TamperedCiphertext,
    TenantMismatch,
    TenantNotInRegion,
    TooManyCandidates,
    VersionConflict,
)
from record_crypto.observability import (
    OPERATION_FIND,
    OPERATION_READ,
    OPERATION_WRITE,
    EmfMetrics,
    OperationCounts,
    log_event,
)
from record_crypto.records import (
    CIPHERTEXT_ATTRIBUTE,
    FORMAT,
    LEGACY_FORMAT,
    SCHEMA_ATTRIBUTE,
    TENANT_ATTRIBUTE,
    WRITER_REGION_ATTRIBUTE,
    WRITTEN_AT_ATTRIBUTE,
    Sealed,
    from_attribute_values,
    parse_find_event,
    parse_read_event,
    parse_write_event,
    refuse_planted_fields,
    seal,
    split_record,
    to_attribute_values,
    unseal,
    verify_attributes,
)
from record_crypto.settings import (
    MAX_CANDIDATES,
    PARTITION_KEY,
    TENANT_KEY,
    VERSION_ATTRIBUTE,
    BeaconField,
    CacheSettings,
    Settings,
)
from record_crypto.stores import RecordStore, store_for

# Attempts of a write whose version another writer took meanwhile (re-read, re-encrypt, retry).
WRITE_ATTEMPTS = 3
# A tenant's session lasts an hour (the most a role assumed by a role may) and is renewed this long
# before it ends, so no request runs on credentials about to expire.
TENANT_SESSION_SECONDS = 3600
TENANT_SESSION_RENEW_BEFORE_S = 300


class MetricsSink(Protocol):
    def record(self, counts: OperationCounts) -> None: ...


class RecordService:
    """Props: ``settings``; ``botocore_session`` (injectable); ``store``: where items live
    (default: the one the settings name, see stores.py); ``metrics``: where each operation's
    counts go (the functions: ``EmfMetrics``, one EMF line on stdout; default None: no metrics)."""

    def __init__(
        self,
        settings: Settings,
        *,
        botocore_session: botocore.session.Session | None = None,
        store: RecordStore | None = None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        session = botocore_session or botocore.session.get_session()
        self._session = session
        self.cipher = RecordCipher(
            key_arn=settings.mrk_arn,
            algorithm_suite=settings.algorithm_suite,
            cache=settings.cache,
            botocore_session=session,
        )
        # Per tenant, its key's cipher in this region under that tenant's session, and when the
        # session must be renewed (built on first use; tenants only).
        self._tenant_ciphers: dict[str, tuple[RecordCipher, float]] = {}
        # Beacons (README "Beacons"): computed with the function's own credentials (GenerateMac carries
        # no encryption context; the tenant is in each field key's label).
        self.beacons: Beacons | None = None
        self.backfill = BackfillState(
            path=settings.beacon_backfill_path, region=settings.region, botocore_session=session
        )
        if settings.beacon_fields and settings.beacon_key_arn:
            self.beacons = Beacons(
                key_arn=settings.beacon_key_arn,
                table=settings.table_name,
                fields=settings.beacon_fields,
                botocore_session=session,
            )
        self.store = store or store_for(settings, session)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RecordService:
        """Cold start: validate the environment contract (ConfigurationError names the variable);
        metrics go to stdout in CloudWatch's embedded metric format."""
        settings = Settings.from_env(os.environ if environ is None else environ)
        return cls(settings, metrics=EmfMetrics(settings.table_name))

    @classmethod
    def discover(
        cls,
        *,
        region: str,
        deployment: str,
        role: Literal["writer", "reader"] = "writer",
        database_role: Literal["writer", "reader"] | None = None,
        cache: CacheSettings | None = None,
        botocore_session: botocore.session.Session | None = None,
        metrics: MetricsSink | None = None,
    ) -> RecordService:
        """A service for the deployment's ``region`` from its discovery parameters (README "Discovery"):
        the key, table and record options its functions use, read with one cached GetParametersByPath
        call under ``/<deployment>/<region>``. ``deployment``: the stack prefix (default ``MrkToolkit``).
        ``role``: ``"writer"`` or ``"reader"``, whose tenant-access role a tenant's session is assumed in
        (with tenants and the application roles) and, on the Aurora store, whose endpoint and secret
        (``database_role`` overrides that alone).
        Raises ``DeploymentNotDiscovered`` (names the path and the fix) when they are missing or not
        readable with the session's credentials."""
        settings = discover_settings(
            region=region,
            deployment=deployment,
            role=role,
            database_role=database_role,
            cache=cache,
            botocore_session=botocore_session,
        )
        return cls(settings, botocore_session=botocore_session, metrics=metrics)

    def _context(self, item_id: str, tenant: str | None) -> dict[str, str]:
        # With the data-key cache on, a per-item context would miss the cache every time: the
        # item id is then bound inside the authenticated payload instead (see context.py).
        per_item = None if self.settings.cache is not None else item_id
        return expected_context(table=self.settings.table_name, item_id=per_item, tenant=tenant)

    def _cipher(self, tenant: str | None) -> RecordCipher:
        """The records key's cipher, or the tenant's key's in this region; TenantNotInRegion (before
        any KMS or database call) where the tenant's key does not exist."""
        if tenant is None:
            return self.cipher
        cached = self._tenant_ciphers.get(tenant)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        key_arn = (self.settings.tenant_keys or {}).get(tenant)
        if key_arn is None:
            raise TenantNotInRegion(
                f"tenant '{tenant}' has no key in {self.settings.region}: its records may not be decrypted "
                "(or written) in this region. Call a region of the tenant"
            )
        session, renew_at = self._tenant_session(tenant)
        cipher = RecordCipher(
            key_arn=key_arn,
            algorithm_suite=self.settings.algorithm_suite,
            cache=self.settings.cache,
            botocore_session=session,
        )
        self._tenant_ciphers[tenant] = (cipher, renew_at)
        return cipher

    def _tenant_session(self, tenant: str) -> tuple[botocore.session.Session, float]:
        """The tenant's session: the tenant-access role assumed with the session tag ``tenant``, so that
        KMS lets it use that tenant's key and context only; renewed before it expires. Without a
        tenant-access role (tests, library use), the function's own credentials."""
        role_arn = self.settings.tenant_role_arn
        if role_arn is None:
            return self._session, float("inf")
        sts = self._session.create_client("sts", region_name=self.settings.region)
        try:
            credentials = sts.assume_role(
                RoleArn=role_arn,
                RoleSessionName=f"tenant-{tenant}",
                DurationSeconds=TENANT_SESSION_SECONDS,
                Tags=[{"Key": TENANT_KEY, "Value": tenant}],
            )["Credentials"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("AccessDenied", "AccessDeniedException"):
                raise AccessDenied(f"the caller may not take tenant '{tenant}'s session in {role_arn}") from None
            raise
        session = botocore.session.Session()
        session.set_credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
        return session, credentials["Expiration"].timestamp() - TENANT_SESSION_RENEW_BEFORE_S

    def _counters(self) -> tuple[int, ...]:
        """(KMS calls, throttles, cache hits) of every cipher of this container, summed."""
        ciphers: tuple[Any, ...] = (self.cipher, *(cipher for cipher, _ in self._tenant_ciphers.values()))
        if self.beacons is not None:
            ciphers += (self.beacons,)
        return tuple(sum(column) for column in zip(*(c.counters() for c in ciphers), strict=True))

    # -- operations ----------------------------------------------------------------------------
    def write(self, event: Any) -> dict[str, Any]:
        return self._run(OPERATION_WRITE, lambda: self._write(event))

    def read(self, event: Any) -> dict[str, Any]:
        return self._run(OPERATION_READ, lambda: self._read(event))

    def find(self, event: Any) -> dict[str, Any]:
        """The finder's operation (README "Beacons"): ``{"field", "value"}`` -> the matching records."""
        return self._run(OPERATION_FIND, lambda: self._find(event))

    def _write(self, event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        s = self.settings
        request = parse_write_event(event, max_record_bytes=s.max_record_bytes, tenants=s.tenant_keys)
        cipher = self._cipher(request.tenant)  # before any AWS call
        plain, secret, loose = split_record(request.record, s.sensitive_fields, s.unsigned_attributes)
        attributes, unsigned = to_attribute_values(plain), to_attribute_values(loose)  # before any AWS call
        self.store.refuse_unstorable({**plain, **loose})
        if self.beacons is not None:  # signed with the record: a changed or planted beacon is TamperedRecord
            attributes |= self.beacons.of_record(secret, request.tenant)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            current = request.expected_version
            if current is None:
                current = self._current_version(request.item_id)
            item, ciphertext = self._versioned_item(cipher, request, attributes, secret, current + 1)
            if self._put_if_current(item | unsigned, current):
                break
            if request.expected_version is not None:
                raise VersionConflict(
                    f"the item is no longer at version {current}: read it again and retry with its version",
                    retryable=False,
                )
            if attempt == WRITE_ATTEMPTS:
                raise VersionConflict(
                    f"other writers changed the item {WRITE_ATTEMPTS} times while this write ran; retry", retryable=True
                )
        assert current is not None  # for type checkers: every pass of the loop sets it
        result = {
            "ok": True,
            "id": request.item_id,
            "region": s.region,
            "version": current + 1,
            "encrypted_fields": sorted(secret),
            "unsigned_fields": sorted(loose),
            "ciphertext_bytes": len(ciphertext),
            **({TENANT_KEY: request.tenant} if request.tenant is not None else {}),
        }
        return result, {
            "item_id": request.item_id,
            "version": current + 1,
            "ciphertext_bytes": len(ciphertext),
            "field_count": len(request.record),
            "encrypted_field_count": len(secret),
        }

    def _versioned_item(
        self, cipher: RecordCipher, request: Any, attributes: dict[str, Any], secret: dict[str, Any], version: int
    ) -> tuple[dict[str, Any], bytes]:
        """The item to store (without unsigned attributes) and its ciphertext."""
        s = self.settings
        item_id, tenant = request.item_id, request.tenant
        signed = {
            **attributes,
            PARTITION_KEY: {"S": item_id},
            SCHEMA_ATTRIBUTE: {"S": str(FORMAT)},
            VERSION_ATTRIBUTE: {"N": str(version)},
            WRITER_REGION_ATTRIBUTE: {"S": s.region},
            WRITTEN_AT_ATTRIBUTE: {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
            **({TENANT_ATTRIBUTE: {"S": tenant}} if tenant is not None else {}),
        }
        payload = seal(
            item_id=item_id,
            sensitive_fields=secret,
            signed_attributes=signed,
            version=version,
            writer_region=s.region,
            written_at=signed[WRITTEN_AT_ATTRIBUTE]["S"],
        )
        ciphertext = cipher.encrypt(payload, self._context(item_id, tenant))
        return {**signed, CIPHERTEXT_ATTRIBUTE: {"B": ciphertext}}, ciphertext

    def _current_version(self, item_id: str) -> int:
        return self.store.current_version(item_id)

    def _put_if_current(self, item: dict[str, Any], current: int) -> bool:
        return self.store.put_if_current(item, current)

    def _read(self, event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        s = self.settings
        request = parse_read_event(event, tenants=s.tenant_keys)
        item_id, tenant = request.item_id, request.tenant
        cipher = self._cipher(tenant)  # before any KMS or database call
        item = self.store.get(item_id)
        if not item:
            raise NotFound(self.store.not_found_message())
        result, sealed, blob = self._authenticate(item, item_id, tenant, cipher)
        if request.min_version is not None and sealed.version < request.min_version:
            raise StaleRecord(
                f"the {s.region} replica holds version {sealed.version}, older than min_version "
                f"{request.min_version}: replication may not have brought the newer one yet, or an older copy "
                "was restored over it"
            )
        return result, {
            "item_id": item_id,
            "version": sealed.version,
            "written_region": sealed.writer_region,
            "ciphertext_bytes": len(blob),
        }

    def _authenticate(
        self, item: dict[str, Any], item_id: str, tenant: str | None, cipher: RecordCipher
    ) -> tuple[dict[str, Any], Sealed, bytes]:
        """Decrypt and authenticate a stored item whole: (the reader's result, the sealed payload, the
        ciphertext). Refusals as RecordError (planted fields and another tenant's record before any KMS call)."""
        s = self.settings
        refuse_planted_fields(item, s.sensitive_fields)  # before any KMS call
        _refuse_other_tenant(item, tenant)  # before any KMS call
        blob = item.get(CIPHERTEXT_ATTRIBUTE, {}).get("B")
        if not isinstance(blob, bytes | bytearray) or not blob:
            raise TamperedCiphertext(f"the item has no '{CIPHERTEXT_ATTRIBUTE}' binary attribute")
        payload = cipher.decrypt(
            bytes(blob), lambda ctx: check_context(ctx, table=s.table_name, item_id=item_id, tenant=tenant)
        )
        sealed = unseal(payload, item_id=item_id)
        result = self._authenticated_result(item, sealed)
        if tenant is not None:
            result[TENANT_KEY] = tenant
        return result, sealed, bytes(blob)

    def _find(self, event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """A lookup by beacon: the candidates of this region's index, each authenticated whole and
        decrypted, the false positives (another value with the same beacon) dropped."""
        s, beacons = self.settings, self.beacons
        if beacons is None:
            raise InvalidEvent("this function has no beacon fields (mrk-toolkit:beaconFields): nothing can be found")
        request = parse_find_event(event, beacon_fields=tuple(beacons.fields), tenants=s.tenant_keys)
        field, tenant = beacons.fields[request.field], request.tenant
        cipher = self._cipher(tenant)  # before any KMS or database call
        wanted = normalize(field, request.value)  # before any KMS or database call
        query = getattr(self.store, "query_beacon", None)
        if query is None:
            raise Internal(f"the {s.store} store has no beacon index")
        candidates = query(
            field.index_name, field.attribute, beacons.beacon(field.name, request.value, tenant), MAX_CANDIDATES
        )
        if len(candidates) > MAX_CANDIDATES:
            raise TooManyCandidates(
                f"the beacon of this value matches more than {MAX_CANDIDATES} records in {s.region} (a beacon of "
                f"{field.bits} bits, or a common value): nothing was decrypted. Use a beacon field with more bits"
            )
        matches = []
        for item in candidates:
            stored_tenant = item.get(TENANT_ATTRIBUTE, {}).get("S")
            if tenant is not None and stored_tenant != tenant:
                continue  # another tenant's record whose beacon collides: never decrypted here
            item_id = str(item.get(PARTITION_KEY, {}).get("S", ""))
            result, sealed, _ = self._authenticate(item, item_id, tenant, cipher)
            if _holds(field, sealed, wanted):
                matches.append({"id": item_id, "record": result["record"], "version": sealed.version})
        matches.sort(key=lambda m: m["id"])
        result = {
            "ok": True,
            "field": field.name,
            "matches": matches,
            "candidates": len(candidates),
            # False until the backfill of the field is done in this region: records written before the
            # field had a beacon are not in its index and may be missing from ``matches``.
            "complete": self.backfill.complete(field),
            "region": s.region,
            **({TENANT_KEY: tenant} if tenant is not None else {}),
        }
        return result, {"beacon_field": field.name, "candidates": len(candidates), "matches": len(matches)}

    def _authenticated_result(self, item: dict[str, Any], sealed: Sealed) -> dict[str, Any]:
        s = self.settings
        if sealed.format == LEGACY_FORMAT:
            # Format 1 signed nothing but the sensitive fields: everything else is unauthenticated.
            record, unsigned = dict(sealed.fields), from_attribute_values(item, include_toolkit=True)
        else:
            verify_attributes(item, sealed, s.unsigned_attributes)
            loose = {k: v for k, v in item.items() if k in s.unsigned_attributes}
            signed = {k: v for k, v in item.items() if k not in loose}
            record = {**from_attribute_values(signed), **sealed.fields}
            unsigned = from_attribute_values(loose)
        return {
            "ok": True,
            "id": sealed.item_id,
            "record": record,
            "version": sealed.version,
            "format": sealed.format,
            "unsigned": unsigned,
            "written_region": sealed.writer_region,
            "read_region": s.region,
            "written_at": sealed.written_at,
        }

    def _run(self, operation: str, body: Any) -> dict[str, Any]:
        """The handlers' contract: a result dict, never an exception."""
        try:
            return self._observed(operation, body)[0]
        except RecordError as error:
            return error.to_result()

    def _observed(self, operation: str, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run ``body`` and log one structured line; refusals are raised as ``RecordError``."""
        started = time.perf_counter()
        common = {"operation": operation, "region": self.settings.region}
        before = self._counters()
        try:
            result, fields = body()
        except RecordError as error:
            self._count(operation, before, error.type)
            level = logging.ERROR if error.status >= 500 and not error.retryable else logging.WARNING
            log_event(
                level,
                f"{operation} refused: {error.type}",
                **common,
                outcome="error",
                error_type=error.type,
                status=error.status,
                retryable=error.retryable,
                duration_ms=_ms(started),
            )
            raise
        except Exception as error:  # never let an unexpected error (or its message) escape
            self._count(operation, before, "Internal")
            log_event(
                logging.ERROR,
                f"{operation} failed unexpectedly",
                **common,
                outcome="error",
                error_type="Internal",
                cause=type(error).__name__,
                duration_ms=_ms(started),
            )
            raise Internal(f"unexpected {type(error).__name__} during {operation}") from None
        self._count(operation, before, None)
        log_event(logging.INFO, f"{operation} ok", **common, **fields, outcome="ok", duration_ms=_ms(started))
        return result, fields

    def _count(self, operation: str, before: tuple[int, ...], error_type: str | None) -> None:
        if self.metrics is None:
            return
        kms_calls, throttles, hits = (now - then for now, then in zip(self._counters(), before, strict=True))
        self.metrics.record(
            OperationCounts(
                operation=operation,
                ok=error_type is None,
                error_type=error_type,
                kms_calls=kms_calls,
                kms_throttles=throttles,
                cache_hits=hits,
            )
        )

    # -- the library API ---------------------------------------------------------------------
    def put(
        self,
        item_id: str,
        record: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        tenant: str | None = None,
    ) -> WriteResult:
        """Encrypt, sign and store ``record`` under ``item_id`` (for ``tenant``, required in a
        deployment with tenants); raises a ``RecordError`` subclass."""
        event: dict[str, Any] = {"id": item_id, "record": dict(record)}
        if tenant is not None:
            event[TENANT_KEY] = tenant
        if expected_version is not None:
            event["expected_version"] = expected_version
        result, _ = self._observed(OPERATION_WRITE, lambda: self._write(event))
        return WriteResult(**{k: v for k, v in result.items() if k != "ok"})

    def get(self, item_id: str, *, min_version: int | None = None, tenant: str | None = None) -> ReadResult:
        """Read, authenticate and decrypt the record ``item_id`` of this region's replica (of ``tenant``)."""
        event: dict[str, Any] = {"id": item_id}
        if tenant is not None:
            event[TENANT_KEY] = tenant
        if min_version is not None:
            event["min_version"] = min_version
        result, _ = self._observed(OPERATION_READ, lambda: self._read(event))
        return ReadResult(**{k: v for k, v in result.items() if k != "ok"})


@dataclass(frozen=True)
class WriteResult:
    """What ``RecordService.put`` stored: the version to pass as ``min_version`` later."""

    id: str
    region: str
    version: int
    encrypted_fields: list[str]
    unsigned_fields: list[str]
    ciphertext_bytes: int
    tenant: str | None = None


@dataclass(frozen=True)
class ReadResult:
    """An authenticated record. ``record`` holds only signed or decrypted values; ``unsigned``
    holds the attributes listed as unsigned (or, for ``format`` 1, everything not decrypted)."""

    id: str
    record: dict[str, Any]
    version: int
    format: int
    unsigned: dict[str, Any]
    written_region: str | None
    read_region: str
    written_at: str | None
    tenant: str | None = None


def _holds(field: BeaconField, sealed: Sealed, wanted: bytes) -> bool:
    """Does the authenticated record hold the value looked up (normalized alike)? False for a false
    positive: another value whose beacon is the same."""
    if sealed.format == LEGACY_FORMAT or field.name not in sealed.fields:
        return False
    try:
        return normalize(field, sealed.fields[field.name]) == wanted
    except InvalidEvent:  # a value with no beacon (written before the field had one): not this value
        return False


def _refuse_other_tenant(item: Mapping[str, Any], tenant: str | None) -> None:
    """In a deployment with tenants, the stored record's tenant must be the one asked for."""
    if tenant is None:
        return
    stored = item.get(TENANT_ATTRIBUTE, {}).get("S")
    if stored != tenant:
        raise TenantMismatch(
            f"the record is not tenant '{tenant}'s"
            + ("" if stored is not None else " (it has no tenant: written before tenants were configured?)")
        )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
