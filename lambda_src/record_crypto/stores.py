"""The store seam: where an item (format 2, as DynamoDB attribute values) is kept.

``RecordService`` signs, encrypts, versions and verifies; a store only keeps items and does the
conditional write. Both stores see and return the item in one shape (DynamoDB attribute values:
``{"id": {"S": ...}, "_version": {"N": ...}, "_ciphertext": {"B": ...}, ...}``) so the signature,
the checks and the refusals are the same code for both:

* ``DynamoDbStore``: the local replica of the global table (PutItem with a condition on
  ``_version``; the writer reads only ``_version``);
* ``PostgresStore`` (postgres_store.py): the local cluster of an Aurora PostgreSQL global
  database (``INSERT ... ON CONFLICT DO NOTHING`` / ``UPDATE ... WHERE version = %s``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from record_crypto.errors import AccessDenied, IndexNotReady, Internal, TableThrottled, TamperedRecord, Unavailable
from record_crypto.records import MAX_VERSION
from record_crypto.settings import PARTITION_KEY, VERSION_ATTRIBUTE, Settings

_TABLE_THROTTLING = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
_UNAVAILABLE = frozenset({"ServiceUnavailable", "InternalServerError", "InternalFailure"})
# How DynamoDB refuses a Query of an index it is still building ("Cannot read from backfilling global
# secondary index: <name>", a ValidationException), or of one a stack update has not created yet.
_INDEX_NOT_READY = ("backfilling global secondary index", "does not have the specified index")


class RecordStore(Protocol):
    """What the service needs from where items live."""

    #: How a missing item is explained ("not in the us-west-1 replica (yet) ...").
    def not_found_message(self) -> str: ...

    def refuse_unstorable(self, plain: Mapping[str, Any]) -> None:
        """Raise InvalidEvent for a plaintext value this store cannot keep (before any call)."""

    def current_version(self, item_id: str) -> int:
        """The stored version (0: no item), reading nothing else of the item."""

    def put_if_current(self, item: dict[str, Any], current: int) -> bool:
        """Store ``item`` unless the stored version is no longer ``current`` (False then)."""

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The whole stored item as attribute values, everything the store holds for the id."""


class DynamoDbStore:
    """The local replica of the DynamoDB global table."""

    def __init__(self, settings: Settings, session: Any) -> None:
        self.settings = settings
        self._table = session.create_client(
            "dynamodb",
            region_name=settings.region,
            # total_max_attempts counts the first attempt (max_attempts here would not).
            config=Config(retries={"mode": "standard", "total_max_attempts": 4}),
        )

    def not_found_message(self) -> str:
        return (
            f"item not in the {self.settings.region} replica (yet): global tables replicate asynchronously, "
            "retry shortly"
        )

    def refuse_unstorable(self, plain: Mapping[str, Any]) -> None:
        """Nothing beyond to_attribute_values' own checks (38-digit numbers)."""

    def current_version(self, item_id: str) -> int:
        """The stored version, read alone (the writer's role may read only the key and the version)."""
        response = self._call(
            "GetItem",
            TableName=self.settings.table_name,
            Key={PARTITION_KEY: {"S": item_id}},
            ProjectionExpression="#v",
            ExpressionAttributeNames={"#v": VERSION_ATTRIBUTE},
            ConsistentRead=True,
        )
        stored = (response.get("Item") or {}).get(VERSION_ATTRIBUTE)
        if stored is None:
            return 0  # no item, or one written before versions (format 1)
        try:
            version = int(stored["N"])
        except (KeyError, TypeError, ValueError):
            version = -1
        if not 1 <= version < MAX_VERSION:
            raise TamperedRecord(
                f"the stored '{VERSION_ATTRIBUTE}' attribute is not a version: the item was altered; "
                "restore it from a backup or delete it"
            )
        return version

    def put_if_current(self, item: dict[str, Any], current: int) -> bool:
        """PutItem unless another writer got there first (False then)."""
        condition: dict[str, Any] = {"ExpressionAttributeNames": {"#v": VERSION_ATTRIBUTE}}
        if current == 0:
            condition["ConditionExpression"] = "attribute_not_exists(#v)"
        else:
            condition["ConditionExpression"] = "#v = :current"
            condition["ExpressionAttributeValues"] = {":current": {"N": str(current)}}
        try:
            self._call("PutItem", TableName=self.settings.table_name, Item=item, **condition)
        except _ConditionFailed:
            return False
        return True

    def get(self, item_id: str) -> dict[str, Any] | None:
        response = self._call(
            "GetItem",
            TableName=self.settings.table_name,
            Key={PARTITION_KEY: {"S": item_id}},
            ConsistentRead=True,
        )
        return response.get("Item") or None

    def query_beacon(self, index_name: str, attribute: str, beacon: int, limit: int) -> list[dict[str, Any]]:
        """The items of this region's index whose beacon is ``beacon``: at most ``limit`` + 1 (one more
        than the caller accepts tells it there are too many), following the index's pages."""
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while len(items) <= limit:
            response = self._call(
                "Query",
                TableName=self.settings.table_name,
                IndexName=index_name,
                KeyConditionExpression="#b = :b",
                ExpressionAttributeNames={"#b": attribute},
                ExpressionAttributeValues={":b": {"N": str(beacon)}},
                Limit=limit + 1 - len(items),
                **({"ExclusiveStartKey": start} if start else {}),
            )
            items += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if not start:
                break
        return items[: limit + 1]

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = {"PutItem": self._table.put_item, "GetItem": self._table.get_item, "Query": self._table.query}[
            operation
        ]
        try:
            return cast(dict[str, Any], method(**kwargs))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed from None
            message = str(error.response.get("Error", {}).get("Message", ""))
            if code == "ValidationException" and "IndexName" in kwargs and any(m in message for m in _INDEX_NOT_READY):
                raise IndexNotReady(
                    f"the index {kwargs['IndexName']} of {self.settings.region} is still being built (a beacon field "
                    "added to a running deployment): retry shortly; no record was looked at"
                ) from None
            if code in _TABLE_THROTTLING:
                raise TableThrottled(f"DynamoDB throttled {operation} after retries; retry later") from None
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise AccessDenied(
                    f"DynamoDB denied {operation} on {self.settings.table_name} to the credentials in use "
                    "(for a function: its role)"
                ) from None
            if code in _UNAVAILABLE or error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise self._unavailable(operation, code) from None
            raise Internal(f"DynamoDB {operation} failed ({code or 'unknown error'})") from None
        except (EndpointUnreachable, HTTPClientError) as error:
            raise self._unavailable(operation, type(error).__name__) from None
        except BotoCoreError as error:
            raise Internal(f"DynamoDB {operation} failed ({type(error).__name__})") from None

    def _unavailable(self, operation: str, why: str) -> Unavailable:
        return Unavailable(
            f"DynamoDB in {self.settings.region} did not answer {operation} ({why}) after retries: nothing was "
            "stored by this call; retry later or in another region"
        )


class _ConditionFailed(Exception):
    """The conditional PutItem found another version than the one it replaces."""


def store_for(settings: Settings, session: Any) -> RecordStore:
    """The store the settings name (RECORD_STORE)."""
    if settings.database is None:
        return DynamoDbStore(settings, session)
    from record_crypto.postgres_store import PostgresStore  # psycopg is imported only for this store

    return PostgresStore(settings, session)
