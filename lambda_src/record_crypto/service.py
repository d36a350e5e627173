"""Write and read records: validate, encrypt/decrypt with the local MRK, use the local replica.

``RecordService`` holds the per-container state (settings, the cipher, the DynamoDB client),
built once at cold start; ``write`` and ``read`` return the structured results the handlers
return. Clients are injectable (a botocore session) for tests and benchmarks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from record_crypto.context import check_context, expected_context
from record_crypto.envelope import RecordCipher
from record_crypto.errors import (
    AccessDenied,
    Internal,
    NotFound,
    RecordError,
    TableThrottled,
    TamperedCiphertext,
)
from record_crypto.observability import log_event
from record_crypto.records import (
    CIPHERTEXT_ATTRIBUTE,
    SCHEMA_ATTRIBUTE,
    WRITER_REGION_ATTRIBUTE,
    WRITTEN_AT_ATTRIBUTE,
    from_attribute_values,
    open_payload,
    parse_read_event,
    parse_write_event,
    sealed_payload,
    split_record,
    to_attribute_values,
)
from record_crypto.settings import PARTITION_KEY, Settings

_TABLE_THROTTLING = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


class RecordService:
    def __init__(self, settings: Settings, *, botocore_session: botocore.session.Session | None = None) -> None:
        self.settings = settings
        session = botocore_session or botocore.session.get_session()
        self.cipher = RecordCipher(
            key_arn=settings.mrk_arn,
            algorithm_suite=settings.algorithm_suite,
            cache=settings.cache,
            botocore_session=session,
        )
        self._table = session.create_client(
            "dynamodb",
            region_name=settings.region,
            # total_max_attempts counts the first attempt (max_attempts here would not).
            config=Config(retries={"mode": "standard", "total_max_attempts": 4}),
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RecordService:
        """Cold start: validate the environment contract (ConfigurationError names the variable)."""
        return cls(Settings.from_env(os.environ if environ is None else environ))

    def _context(self, item_id: str) -> dict[str, str]:
        # With the data-key cache on, a per-item context would miss the cache every time: the
        # item id is then bound inside the authenticated payload instead (see context.py).
        per_item = None if self.settings.cache is not None else item_id
        return expected_context(table=self.settings.table_name, item_id=per_item)

    # -- operations ----------------------------------------------------------------------------
    def write(self, event: Any) -> dict[str, Any]:
        return self._run("write", lambda: self._write(event))

    def read(self, event: Any) -> dict[str, Any]:
        return self._run("read", lambda: self._read(event))

    def _write(self, event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        s = self.settings
        request = parse_write_event(event, max_record_bytes=s.max_record_bytes)
        plain, secret = split_record(request.record, s.sensitive_fields)
        attributes = to_attribute_values(plain)  # validates before any AWS call
        ciphertext = self.cipher.encrypt(sealed_payload(request.item_id, secret), self._context(request.item_id))
        item = {
            **attributes,
            PARTITION_KEY: {"S": request.item_id},
            CIPHERTEXT_ATTRIBUTE: {"B": ciphertext},
            WRITER_REGION_ATTRIBUTE: {"S": s.region},
            SCHEMA_ATTRIBUTE: {"S": "1"},
            WRITTEN_AT_ATTRIBUTE: {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
        }
        self._call_table("PutItem", TableName=s.table_name, Item=item)
        result = {
            "ok": True,
            "id": request.item_id,
            "region": s.region,
            "encrypted_fields": sorted(secret),
            "ciphertext_bytes": len(ciphertext),
        }
        return result, {
            "item_id": request.item_id,
            "ciphertext_bytes": len(ciphertext),
            "field_count": len(request.record),
            "encrypted_field_count": len(secret),
        }

    def _read(self, event: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        s = self.settings
        item_id = parse_read_event(event)
        response = self._call_table(
            "GetItem",
            TableName=s.table_name,
            Key={PARTITION_KEY: {"S": item_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            raise NotFound(
                f"item not in the {s.region} replica (yet): global tables replicate asynchronously, retry shortly"
            )
        blob = item.get(CIPHERTEXT_ATTRIBUTE, {}).get("B")
        if not isinstance(blob, bytes | bytearray) or not blob:
            raise TamperedCiphertext(f"the item has no '{CIPHERTEXT_ATTRIBUTE}' binary attribute")
        payload = self.cipher.decrypt(bytes(blob), lambda ctx: check_context(ctx, table=s.table_name, item_id=item_id))
        fields = open_payload(payload, item_id=item_id)
        written_region = item.get(WRITER_REGION_ATTRIBUTE, {}).get("S")
        record = {**from_attribute_values(item), **fields}
        result = {
            "ok": True,
            "id": item_id,
            "record": record,
            "written_region": written_region,
            "read_region": s.region,
            "written_at": item.get(WRITTEN_AT_ATTRIBUTE, {}).get("S"),
        }
        return result, {
            "item_id": item_id,
            "written_region": written_region,
            "ciphertext_bytes": len(blob),
        }

    def _call_table(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = {"PutItem": self._table.put_item, "GetItem": self._table.get_item}[operation]
        try:
            return method(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _TABLE_THROTTLING:
                raise TableThrottled(f"DynamoDB throttled {operation} after retries; retry later") from None
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise AccessDenied(
                    f"DynamoDB denied {operation} on {self.settings.table_name} to this function's role"
                ) from None
            raise Internal(f"DynamoDB {operation} failed ({code or 'unknown error'})") from None
        except BotoCoreError as error:
            raise Internal(f"DynamoDB {operation} failed ({type(error).__name__})") from None

    def _run(self, operation: str, body: Any) -> dict[str, Any]:
        started = time.perf_counter()
        common = {"operation": operation, "region": self.settings.region}
        try:
            result, fields = body()
        except RecordError as error:
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
            return error.to_result()
        except Exception as error:  # never let an unexpected error (or its message) escape
            log_event(
                logging.ERROR,
                f"{operation} failed unexpectedly",
                **common,
                outcome="error",
                error_type="Internal",
                cause=type(error).__name__,
                duration_ms=_ms(started),
            )
            return Internal(f"unexpected {type(error).__name__} during {operation}").to_result()
        log_event(
            logging.INFO,
            f"{operation} ok",
            **common,
            **fields,
            outcome="ok",
            duration_ms=_ms(started),
        )
        return result


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
