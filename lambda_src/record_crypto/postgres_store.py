"""The PostgreSQL store: the local cluster of an Aurora PostgreSQL global database.

One row per record (pg_schema.py has the table)::

    id text PRIMARY KEY | attributes jsonb | ciphertext bytea | version bigint
    | schema text | writer_region text | written_at timestamptz

``attributes`` holds the record's plaintext (non-sensitive) fields as one JSON object: records
have no fixed set of fields, and jsonb keeps them queryable (``attributes->>'country'``) and
indexable. The row is turned into the same item the DynamoDB store returns (attribute values),
so the same signature covers it: every key of ``attributes``, ``id``, ``version``, ``schema``,
``writer_region`` and ``written_at`` (to the microsecond the column holds: the writer signs
milliseconds). A column added to the table and filled in is an attribute the writer did not sign,
and is refused like any other; the reader names its columns (``read_query``), so adding one never
breaks a warm function's prepared statement. Whatever no writer stores (JSON nested deeper than a
record, attribute keys that are the toolkit's own names, a column named like an attribute) is
refused as ``TamperedRecord``, a security refusal, never ``Internal``.

Versions: the writer reads only ``id`` and ``version`` (the writer's database role may SELECT only
those columns), then ``INSERT ... ON CONFLICT (id) DO NOTHING`` for a new item or ``UPDATE ...
WHERE id = %s AND version = %s``; no row changed means another writer got there first.

Regions: the writer connects through the global database's writer endpoint (it names the current
primary's writer, in whichever region; the VPCs are peered), the reader through its own region's
reader endpoint. Nothing in the environment names the primary region: it moves with a switchover or
a failover, and every region's writer writes again once the endpoint names the new writer, with no
deploy. A write that reaches a read-only cluster (one a switchover is still demoting or promoting)
is refused with ``ReadOnlyRegion``: nothing was written, the caller may retry.
Aurora's write forwarding is not offered (nothing offline exercises it).

Credentials: the function's own database role, from its Secrets Manager secret (DB_SECRET_ARN,
read once per container and again if the password is refused: rotation).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.types.json import Jsonb

from record_crypto.errors import (
    AccessDenied,
    DatabaseUnavailable,
    IndexNotReady,
    Internal,
    InvalidEvent,
    ReadOnlyRegion,
    TamperedRecord,
)
from record_crypto.pg_schema import SSL_MODE
from record_crypto.records import (
    CIPHERTEXT_ATTRIBUTE,
    MAX_DEPTH,
    SCHEMA_ATTRIBUTE,
    TENANT_ATTRIBUTE,
    WRITER_REGION_ATTRIBUTE,
    WRITTEN_AT_ATTRIBUTE,
    from_attribute_values,
    to_attribute_values,
)
from record_crypto.settings import (
    BEACON_ATTRIBUTE_PREFIX,
    BEACON_COLUMN_PREFIX,
    PARTITION_KEY,
    VERSION_ATTRIBUTE,
    Settings,
    is_field_name,
)

# Row column -> the item attribute it becomes (attributes' keys are spread beside them).
COLUMNS = {
    "id": PARTITION_KEY,
    "ciphertext": CIPHERTEXT_ATTRIBUTE,
    "version": VERSION_ATTRIBUTE,
    "schema": SCHEMA_ATTRIBUTE,
    "writer_region": WRITER_REGION_ATTRIBUTE,
    "written_at": WRITTEN_AT_ATTRIBUTE,
}
ATTRIBUTES_COLUMN = "attributes"
# Every other column of the row, as one JSON object (see read_query).
OTHERS = "others"
CONNECT_TIMEOUT_S = 5
# Secrets Manager's staging labels: the value in use, and the one a rotation is installing.
CURRENT_STAGE, PENDING_STAGE = "AWSCURRENT", "AWSPENDING"
# SQLSTATE classes of a server going away or changing roles (a failover): retryable.
_UNAVAILABLE = (pg_errors.AdminShutdown, pg_errors.CannotConnectNow, pg_errors.SerializationFailure)
T = TypeVar("T")


class PostgresStore:
    def __init__(self, settings: Settings, session: Any) -> None:
        assert settings.database is not None
        self.settings = settings
        self.db = settings.database
        self._secrets = session.create_client("secretsmanager", region_name=settings.region)
        self._credentials: dict[str, str] | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._table = sql.Identifier(settings.table_name)

    def not_found_message(self) -> str:
        return (
            f"item not in the {self.settings.region} cluster (yet): the global database replicates "
            "asynchronously (typically under a second), retry shortly"
        )

    def refuse_unstorable(self, plain: Mapping[str, Any]) -> None:
        """jsonb cannot hold the character U+0000 (DynamoDB can): refused before any call."""
        for name, value in plain.items():
            if "\\u0000" in json.dumps(value):
                raise InvalidEvent(
                    f"record field '{name}' holds the character U+0000, which the PostgreSQL store cannot keep"
                )

    # -- operations ----------------------------------------------------------------------------
    def current_version(self, item_id: str) -> int:
        query = sql.SQL("SELECT version FROM {} WHERE id = %s").format(self._table)
        rows = self._run("read the version", lambda conn: conn.execute(query, (item_id,)).fetchall())
        return int(rows[0][0]) if rows else 0

    def put_if_current(self, item: dict[str, Any], current: int) -> bool:
        row = self._row(item)
        names = [sql.Identifier(c) for c in row]
        values = [sql.Placeholder(c) for c in row]
        if current == 0:
            query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO NOTHING").format(
                self._table, sql.SQL(", ").join(names), sql.SQL(", ").join(values)
            )
        else:
            sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(n, v) for n, v in zip(names, values, strict=True))
            query = sql.SQL("UPDATE {} SET {} WHERE id = %(id)s AND version = %(current)s").format(self._table, sets)
        params = {**row, "current": current}
        count = self._run("write", lambda conn: conn.execute(query, params).rowcount, writing=True)
        return count == 1

    def get(self, item_id: str) -> dict[str, Any] | None:
        query = read_query(self.settings.table_name)

        def fetch(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
            row = conn.execute(query, (item_id,)).fetchone()
            return None if row is None else dict(zip(READ_COLUMNS, row, strict=True))

        row = self._run("read", fetch)
        return None if row is None else item_from_row(row)

    # -- rows <-> items ------------------------------------------------------------------------
    def query_beacon(self, index_name: str, attribute: str, beacon: int, limit: int) -> list[dict[str, Any]]:
        """The rows whose beacon column holds ``beacon`` (its b-tree index), at most ``limit`` + 1, as items."""
        column = BEACON_COLUMN_PREFIX + attribute.removeprefix(BEACON_ATTRIBUTE_PREFIX)
        query = read_query(self.settings.table_name, where=column, limit=limit + 1)

        def fetch(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            try:
                rows = conn.execute(query, (beacon,)).fetchall()
            except pg_errors.UndefinedColumn:  # the stack update's schema setup has not added it yet
                raise IndexNotReady(
                    f"the beacon column {column} of {self.settings.region} is still being added (a beacon field "
                    "added to a running deployment): retry shortly; no record was looked at"
                ) from None
            return [dict(zip(READ_COLUMNS, row, strict=True)) for row in rows]

        return [item_from_row(row) for row in self._run("find", fetch)]

    @staticmethod
    def _row(item: Mapping[str, Any]) -> dict[str, Any]:
        beacons = {
            BEACON_COLUMN_PREFIX + name.removeprefix(BEACON_ATTRIBUTE_PREFIX): int(value["N"])
            for name, value in item.items()
            if name.startswith(BEACON_ATTRIBUTE_PREFIX)
        }
        return {
            **beacons,
            "id": item[PARTITION_KEY]["S"],
            ATTRIBUTES_COLUMN: Jsonb(_attributes(item)),
            "ciphertext": bytes(item[CIPHERTEXT_ATTRIBUTE]["B"]),
            "version": int(item[VERSION_ATTRIBUTE]["N"]),
            "schema": item[SCHEMA_ATTRIBUTE]["S"],
            "writer_region": item[WRITER_REGION_ATTRIBUTE]["S"],
            "written_at": datetime.fromisoformat(item[WRITTEN_AT_ATTRIBUTE]["S"]),
        }

    # -- the connection ------------------------------------------------------------------------
    def _run(self, what: str, body: Callable[[psycopg.Connection[Any]], T], *, writing: bool = False) -> T:
        """Run ``body`` on the (re)opened connection; database errors become RecordErrors.

        Two bounded retries, each at most once and independent of the other: a dropped connection
        is reopened (not for a write: it may have landed), and a refused password makes the secret
        be read again (rotation: a dropped connection then a rotated password is both)."""
        reconnected = refreshed = False
        while True:
            try:
                return body(self._connection())
            except pg_errors.ReadOnlySqlTransaction:
                self._close()  # the next attempt asks the endpoint again (a promotion may be done)
                raise self._read_only() from None
            except pg_errors.InsufficientPrivilege:
                raise AccessDenied(
                    f"the database denied the caller's database role the {what} on {self.settings.table_name}"
                ) from None
            except (pg_errors.InvalidPassword, _AuthenticationFailed):
                self._refresh_credentials()  # rotated: read the secret again, once
                if refreshed:
                    raise AccessDenied("the database refused the credentials of this function's secret") from None
                refreshed = True
            except (psycopg.OperationalError, *_UNAVAILABLE) as error:
                self._close()
                if reconnected or writing:  # a write may have landed: never replayed blindly
                    raise DatabaseUnavailable(
                        f"the {self.settings.region} database cluster is unavailable for the {what} "
                        f"({_state(error)}); retry shortly"
                    ) from None
                reconnected = True
            except psycopg.Error as error:
                self._close()
                raise Internal(f"PostgreSQL {what} failed ({_state(error)})") from None

    def _read_only(self) -> ReadOnlyRegion:
        return ReadOnlyRegion(
            "the cluster this function's endpoint named is read-only: one a switchover or failover is still "
            "demoting or promoting (or an endpoint of a secondary); nothing was written: retry once the promotion is "
            "done, when the global writer endpoint names the current primary region's writer"
        )

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        credentials = self._secret()
        try:
            conn = psycopg.connect(
                host=self.db.host,
                port=self.db.port,
                dbname=self.db.name,
                user=credentials["username"],
                password=credentials["password"],
                connect_timeout=CONNECT_TIMEOUT_S,
                sslmode=SSL_MODE,
                application_name=f"mrk-toolkit-{self.settings.region}",
                autocommit=True,
            )
        except psycopg.OperationalError as error:
            # libpq reports a refused password without an SQLSTATE: only its text says so.
            if "password authentication failed" in str(error):
                raise _AuthenticationFailed from None
            raise
        self._conn = conn
        return conn

    def _secret(self) -> dict[str, str]:
        if self._credentials is None:
            current = self._read_secret(CURRENT_STAGE)
            assert current is not None  # the current stage always exists (or _read_secret raised)
            self._credentials = current
        return self._credentials

    def _refresh_credentials(self) -> None:
        """After a refused password: the secret's current value, or, when that is the password just
        refused, its pending one (Secrets Manager's single-user rotation between setting the new
        password on the role and making it current)."""
        refused = self._credentials
        self._close(forget_credentials=True)
        current = self._read_secret(CURRENT_STAGE)
        pending = self._read_secret(PENDING_STAGE) if current == refused else None
        self._credentials = pending or current

    def _read_secret(self, stage: str) -> dict[str, str] | None:
        """The secret's value at ``stage``; None for a pending stage that does not exist."""
        try:
            secret = self._secrets.get_secret_value(SecretId=self.db.secret_arn, VersionStage=stage)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException" and stage != CURRENT_STAGE:
                return None
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                raise AccessDenied("Secrets Manager denied this function its database secret") from None
            raise Internal(f"Secrets Manager GetSecretValue failed ({code or 'unknown error'})") from None
        except BotoCoreError as error:
            raise Internal(f"Secrets Manager GetSecretValue failed ({type(error).__name__})") from None
        try:
            value = json.loads(secret["SecretString"])
            return {"username": str(value["username"]), "password": str(value["password"])}
        except (KeyError, TypeError, ValueError):
            raise Internal("the database secret is not JSON with 'username' and 'password'") from None

    def _close(self, *, forget_credentials: bool = False) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        if forget_credentials:
            self._credentials = None


class _AuthenticationFailed(Exception):
    """The server refused the secret's password (rotated since it was read, or wrong)."""


def read_query(table: str, *, where: str = "id", limit: int | None = None) -> sql.Composed:
    """The reader's one query: the table's own columns by name (never a star: a column added by
    a migration must not change what a prepared statement returns), the JSON columns as
    text (parsed here, depth-checked, never by the driver), and every other column of the row as
    one JSON object (``others``), so a column added and filled in is still seen and refused."""
    own = sql.SQL(", ").join(sql.Literal(c) for c in (*COLUMNS, ATTRIBUTES_COLUMN))
    query = sql.SQL(
        "SELECT r.id, r.attributes::text, r.ciphertext, r.version, r.schema, r.writer_region, r.written_at, "
        "(to_jsonb(r) - ARRAY[{own}]::text[])::text FROM {table} AS r WHERE r.{where} = %s"
    ).format(own=own, table=sql.Identifier(table), where=sql.Identifier(where))
    if limit is not None:  # a lookup by beacon column (the finder): bounded
        query = sql.SQL("{} ORDER BY r.id LIMIT {}").format(query, sql.Literal(limit))
    return query


# What read_query returns, in its order.
READ_COLUMNS = ("id", ATTRIBUTES_COLUMN, "ciphertext", "version", "schema", "writer_region", "written_at", OTHERS)


def _attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    """The ``attributes`` column: the plaintext fields, and the tenant (deployments with tenants) under
    ``_tenant``, a name no record field may take; it comes back as the signed item attribute."""
    attributes = from_attribute_values(item)
    if TENANT_ATTRIBUTE in item:
        attributes[TENANT_ATTRIBUTE] = item[TENANT_ATTRIBUTE]["S"]
    return attributes


def item_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row (as read_query returns it) as the item the writer signed (attribute values).

    Whatever no writer of this toolkit stores is refused here as tampering: JSON nested deeper
    than a record may be, attribute names that are not field names (``id``, ``_version`` ...: the
    columns would silently win over them), a column outside the table's own named like an item
    attribute. Other columns outside the table's own are kept (when not NULL) so that the
    signature check refuses them. ``written_at`` keeps every digit the column holds."""
    item: dict[str, Any] = {}
    attributes = _parsed(row.get(ATTRIBUTES_COLUMN), "the attributes column")
    if isinstance(attributes, dict):
        # The tenant (deployments with tenants) is the one toolkit name kept there; it is signed.
        misnamed = sorted(name for name in attributes if not is_field_name(name) and name != TENANT_ATTRIBUTE)
        if misnamed:
            raise TamperedRecord(
                f"the row's attributes hold key(s) {misnamed} that no writer of this toolkit stores there "
                "(the toolkit's own names and the key live in their columns)"
            )
        try:
            item.update(to_attribute_values(attributes))
        except InvalidEvent:
            raise TamperedRecord("the row's attributes hold a value no writer of this toolkit stores") from None
    elif attributes is not None:
        item[ATTRIBUTES_COLUMN] = {"S": json.dumps(attributes)}  # not an object: refused as unsigned
    for column, value in row.items():
        if value is None or column in (ATTRIBUTES_COLUMN, OTHERS):
            continue
        name = COLUMNS.get(column, column)
        if column == "ciphertext":
            item[name] = {"B": bytes(value)}
        elif column == "version":
            item[name] = {"N": str(value)}
        elif column == "written_at" and isinstance(value, datetime):
            item[name] = {"S": _timestamp(value)}
        else:
            item[name] = {"S": str(value)}
    _add_others(item, _parsed(row.get(OTHERS), "a column outside the table's own"))
    return item


def _add_others(item: dict[str, Any], others: Any) -> None:
    """Columns outside the table's own, not NULL: kept as attributes the writer did not sign."""
    for column, value in (others or {}).items():
        if value is None:
            continue
        if column.startswith(BEACON_COLUMN_PREFIX) and isinstance(value, int) and not isinstance(value, bool):
            # A beacon column (README "Beacons") is the signed item attribute _beacon_<field>.
            column, value = BEACON_ATTRIBUTE_PREFIX + column.removeprefix(BEACON_COLUMN_PREFIX), {"N": str(value)}
            if column in item:
                raise TamperedRecord(f"the row holds the beacon '{column}' twice")
            item[column] = value
            continue
        if column in item:
            raise TamperedRecord(f"the table has a column '{column}' named like an attribute of the record")
        item[column] = {"S": value if isinstance(value, str) else json.dumps(value)}


def _timestamp(value: datetime) -> str:
    """The writer signs milliseconds; a stored value with more digits is shown with all of them
    (and so differs from what was signed)."""
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.astimezone(UTC).isoformat(timespec=spec)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply a JSON text nests, without parsing it (no recursion, whatever the depth)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _parsed(text: Any, where: str) -> Any:
    """A JSON column read as text: refused as tampering when nested deeper than any record
    (the attributes object, then MAX_DEPTH levels in a field), before it is parsed."""
    if text is None:
        return None
    if not isinstance(text, str):
        return text
    if json_depth(text) > MAX_DEPTH + 1:
        raise TamperedRecord(f"{where} holds JSON nested deeper than any record ({MAX_DEPTH} levels in a field)")
    try:
        return json.loads(text)
    except ValueError:
        raise TamperedRecord(f"{where} does not hold JSON") from None


def _state(error: BaseException) -> str:
    state = getattr(error, "sqlstate", None)
    return f"SQLSTATE {state}" if state else type(error).__name__
