"""The PostgreSQL store: the local cluster of an Aurora PostgreSQL global database.

One row per record (pg_schema.py has the table)::

    id text PRIMARY KEY | attributes jsonb | ciphertext bytea | version bigint
    | schema text | writer_region text | written_at timestamptz

``attributes`` holds the record's plaintext (non-sensitive) fields as one JSON object: records
have no fixed set of fields, and jsonb keeps them queryable (``attributes->>'country'``) and
indexable. The row is turned into the same item the DynamoDB store returns (attribute values),
so the same signature covers it: every key of ``attributes``, ``id``, ``version``, ``schema``,
``writer_region`` and ``written_at``. A column added to the table and filled in is an attribute
the writer did not sign, and is refused like any other.

Versions: the writer reads only ``id`` and ``version`` (the writer's database role may SELECT only
those columns), then ``INSERT ... ON CONFLICT (id) DO NOTHING`` for a new item or ``UPDATE ...
WHERE id = %s AND version = %s``; no row changed means another writer got there first.

Regions: a function connects to its own region's cluster. A secondary cluster is read-only: a
write there is refused with ``ReadOnlyRegion`` (naming the primary region when DB_PRIMARY_REGION
is set), unless write forwarding is configured (DB_WRITE_FORWARDING=on and the secondary cluster
deployed with global write forwarding): the session then asks Aurora to forward writes to the
primary with read-your-writes consistency (``apg_write_forward.consistency_level = SESSION``).

Credentials: the function's own database role, from its Secrets Manager secret (DB_SECRET_ARN,
read once per container and again if the password is refused: rotation).
"""

from __future__ import annotations

import json
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
    Internal,
    InvalidEvent,
    ReadOnlyRegion,
    TamperedRecord,
)
from record_crypto.records import (
    CIPHERTEXT_ATTRIBUTE,
    SCHEMA_ATTRIBUTE,
    WRITER_REGION_ATTRIBUTE,
    WRITTEN_AT_ATTRIBUTE,
    from_attribute_values,
    to_attribute_values,
)
from record_crypto.settings import PARTITION_KEY, VERSION_ATTRIBUTE, Settings

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
CONNECT_TIMEOUT_S = 5
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
        query = sql.SQL("SELECT * FROM {} WHERE id = %s").format(self._table)

        def fetch(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
            cur = conn.execute(query, (item_id,))
            row = cur.fetchone()
            if row is None:
                return None
            return dict(zip([c.name for c in cur.description or ()], row, strict=True))

        row = self._run("read", fetch)
        return None if row is None else item_from_row(row)

    # -- rows <-> items ------------------------------------------------------------------------
    @staticmethod
    def _row(item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": item[PARTITION_KEY]["S"],
            ATTRIBUTES_COLUMN: Jsonb(from_attribute_values(item)),
            "ciphertext": bytes(item[CIPHERTEXT_ATTRIBUTE]["B"]),
            "version": int(item[VERSION_ATTRIBUTE]["N"]),
            "schema": item[SCHEMA_ATTRIBUTE]["S"],
            "writer_region": item[WRITER_REGION_ATTRIBUTE]["S"],
            "written_at": datetime.fromisoformat(item[WRITTEN_AT_ATTRIBUTE]["S"]),
        }

    # -- the connection ------------------------------------------------------------------------
    def _run(self, what: str, body: Callable[[psycopg.Connection[Any]], T], *, writing: bool = False) -> T:
        """Run ``body`` on the (re)opened connection; database errors become RecordErrors."""
        for attempt in (1, 2):
            try:
                return body(self._connection())
            except pg_errors.ReadOnlySqlTransaction:
                raise self._read_only() from None
            except pg_errors.InsufficientPrivilege:
                raise AccessDenied(
                    f"the database denied the caller's database role the {what} on {self.settings.table_name}"
                ) from None
            except (pg_errors.InvalidPassword, _AuthenticationFailed):
                self._close(forget_credentials=True)  # rotated: read the secret again, once
                if attempt == 2:
                    raise AccessDenied("the database refused the credentials of this function's secret") from None
            except (psycopg.OperationalError, *_UNAVAILABLE) as error:
                self._close()
                if attempt == 2 or writing:  # a write may have landed: never replayed blindly
                    raise DatabaseUnavailable(
                        f"the {self.settings.region} database cluster is unavailable for the {what} "
                        f"({_state(error)}); retry shortly"
                    ) from None
            except psycopg.Error as error:
                self._close()
                raise Internal(f"PostgreSQL {what} failed ({_state(error)})") from None
        raise AssertionError("unreachable")

    def _read_only(self) -> ReadOnlyRegion:
        region = self.settings.region
        primary = self.db.primary_region
        where = f"the primary region {primary}" if primary and primary != region else "the primary region"
        if self.db.write_forwarding:
            return ReadOnlyRegion(
                f"the {region} cluster refused the write although DB_WRITE_FORWARDING is on: enable global "
                f"write forwarding on the {region} secondary cluster, or write in {where}"
            )
        return ReadOnlyRegion(
            f"the {region} cluster is a read-only secondary of the global database: write in {where} "
            "(its writer function), or deploy with writeForwarding"
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
                application_name=f"mrk-toolkit-{self.settings.region}",
                autocommit=True,
            )
        except psycopg.OperationalError as error:
            # libpq reports a refused password without an SQLSTATE: only its text says so.
            if "password authentication failed" in str(error):
                raise _AuthenticationFailed from None
            raise
        if self.db.write_forwarding:
            # Aurora forwards this session's writes to the primary and waits for them to come
            # back before the session reads (read-your-writes).
            conn.execute("SET apg_write_forward.consistency_level = 'SESSION'")
        self._conn = conn
        return conn

    def _secret(self) -> dict[str, str]:
        if self._credentials is None:
            try:
                secret = self._secrets.get_secret_value(SecretId=self.db.secret_arn)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code in ("AccessDeniedException", "UnrecognizedClientException"):
                    raise AccessDenied("Secrets Manager denied this function its database secret") from None
                raise Internal(f"Secrets Manager GetSecretValue failed ({code or 'unknown error'})") from None
            except BotoCoreError as error:
                raise Internal(f"Secrets Manager GetSecretValue failed ({type(error).__name__})") from None
            try:
                value = json.loads(secret["SecretString"])
                self._credentials = {"username": str(value["username"]), "password": str(value["password"])}
            except (KeyError, TypeError, ValueError):
                raise Internal("the database secret is not JSON with 'username' and 'password'") from None
        return self._credentials

    def _close(self, *, forget_credentials: bool = False) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        if forget_credentials:
            self._credentials = None


class _AuthenticationFailed(Exception):
    """The server refused the secret's password (rotated since it was read, or wrong)."""


def item_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row as the item the writer signed (attribute values). Columns outside the table's
    own are kept (when not NULL) so that the signature check refuses them."""
    item: dict[str, Any] = {}
    attributes = row.get(ATTRIBUTES_COLUMN)
    if isinstance(attributes, dict):
        try:
            item.update(to_attribute_values(attributes))
        except InvalidEvent:
            raise TamperedRecord("the row's attributes hold a value no writer of this toolkit stores") from None
    elif attributes is not None:
        item[ATTRIBUTES_COLUMN] = {"S": json.dumps(attributes)}  # not an object: refused as unsigned
    for column, value in row.items():
        if value is None or column == ATTRIBUTES_COLUMN:
            continue
        name = COLUMNS.get(column)
        if name is None:
            item[column] = {"S": str(value)}
        elif column == "ciphertext":
            item[name] = {"B": bytes(value)}
        elif column == "version":
            item[name] = {"N": str(value)}
        elif column == "written_at" and isinstance(value, datetime):
            item[name] = {"S": value.astimezone(UTC).isoformat(timespec="milliseconds")}
        else:
            item[name] = {"S": str(value)}
    return item


def _state(error: BaseException) -> str:
    state = getattr(error, "sqlstate", None)
    return f"SQLSTATE {state}" if state else type(error).__name__
