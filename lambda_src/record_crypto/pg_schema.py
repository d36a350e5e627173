"""The PostgreSQL table of the records and the least-privilege database roles.

Run once by the ``db_setup`` custom resource (lambda_src/db_setup.py) as the cluster's master
user, in the primary cluster (the secondaries receive it by replication). Idempotent: an update
of the stack runs it again.

* the table: see postgres_store.py for what each column holds; owned by the master user, so
  nobody else may ALTER, DROP or TRUNCATE it;
* ``records_writer`` (the writer functions): INSERT and UPDATE of the table, SELECT of ``id`` and
  ``version`` only (what the optimistic-locking write reads), no DELETE, no TRUNCATE;
* ``records_reader`` (the reader functions): SELECT only.

Both roles log in with the passwords of their own Secrets Manager secrets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from psycopg import sql

from record_crypto.settings import READER_ROLE, WRITER_ROLE, BeaconField

# Every connection to the clusters (the functions, db_setup, the rotation function): TLS on TCP, or
# no connection. libpq never falls back to plaintext (the clusters refuse it too: rds.force_ssl=1), so
# nothing on the network path sees a row or a login in clear. The server's identity is not checked
# (verify-full needs the RDS CA bundle, which the bundle does not ship: README "Aurora PostgreSQL
# store"). libpq ignores it on unix sockets (the offline servers).
SSL_MODE = "require"

__all__ = [
    "READER_ROLE",
    "SSL_MODE",
    "WRITER_ROLE",
    "beacon_statements",
    "password_statement",
    "schema_statements",
    "table_statement",
]
# PostgreSQL cuts identifiers at 63 bytes (silently): a longer index name is shortened with a digest.
_MAX_IDENTIFIER = 63


def table_statement(table: str) -> sql.Composed:
    return sql.SQL(
        """CREATE TABLE IF NOT EXISTS {table} (
    id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    attributes jsonb NOT NULL CHECK (jsonb_typeof(attributes) = 'object'),
    ciphertext bytea NOT NULL,
    version bigint NOT NULL CHECK (version >= 1),
    schema text NOT NULL,
    writer_region text NOT NULL,
    written_at timestamptz NOT NULL
)"""
    ).format(table=sql.Identifier(table))


def schema_statements(
    table: str, writer_role: str = WRITER_ROLE, reader_role: str = READER_ROLE, database: str | None = None
) -> list[sql.Composable]:
    """The table, its roles (created without passwords: see ``password_statement``) and grants."""
    t, writer, reader = sql.Identifier(table), sql.Identifier(writer_role), sql.Identifier(reader_role)
    statements: list[sql.Composable] = [table_statement(table)]
    for role in (writer_role, reader_role):
        statements.append(
            sql.SQL(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {name}) THEN "
                "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION; "
                "END IF; END $$"
            ).format(name=sql.Literal(role), role=sql.Identifier(role))
        )
    statements += [
        sql.SQL("REVOKE ALL ON {t} FROM PUBLIC").format(t=t),
        sql.SQL("REVOKE ALL ON {t} FROM {writer}, {reader}").format(t=t, writer=writer, reader=reader),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {writer}, {reader}").format(writer=writer, reader=reader),
        sql.SQL("GRANT INSERT, UPDATE ON {t} TO {writer}").format(t=t, writer=writer),
        sql.SQL("GRANT SELECT (id, version) ON {t} TO {writer}").format(t=t, writer=writer),
        sql.SQL("GRANT SELECT ON {t} TO {reader}").format(t=t, reader=reader),
    ]
    if database is not None:
        statements.append(
            sql.SQL("GRANT CONNECT ON DATABASE {db} TO {writer}, {reader}").format(
                db=sql.Identifier(database), writer=writer, reader=reader
            )
        )
    return statements


def beacon_index_name(field: BeaconField) -> str:
    name = f"{field.column}_idx"
    if len(name) <= _MAX_IDENTIFIER:
        return name
    return f"{field.column[:40]}_{hashlib.sha256(field.name.encode()).hexdigest()[:8]}_idx"


def beacon_statements(table: str, fields: Sequence[BeaconField]) -> list[sql.Composable]:
    """Beacons (README "Beacons"): a bigint column per beacon field and its b-tree index. Idempotent, and
    additive: a warm reader names its own columns and sees a new one (empty until written) among the
    others, so it keeps serving while the column is added."""
    t = sql.Identifier(table)
    statements: list[sql.Composable] = []
    for field in fields:
        column = sql.Identifier(field.column)
        statements += [
            sql.SQL("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {c} bigint").format(t=t, c=column),
            sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} ({c})").format(
                i=sql.Identifier(beacon_index_name(field)), t=t, c=column
            ),
        ]
    return statements


def password_statement(role: str, password: str) -> sql.Composed:
    """Set a role's password (from its secret); never logged by the handler."""
    return sql.SQL("ALTER ROLE {role} WITH LOGIN PASSWORD {password}").format(
        role=sql.Identifier(role), password=sql.Literal(password)
    )
