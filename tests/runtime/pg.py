"""Two regions on REAL PostgreSQL: the primary streaming to a hot standby (offline/emulator/postgres.py),
the records table and roles as db_setup creates them, the roles' passwords in Secrets Manager
(moto) in both regions, as the stacks create them. One pair of servers per test module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from psycopg import sql
from record_crypto.pg_schema import READER_ROLE, WRITER_ROLE, password_statement, schema_statements
from record_crypto.postgres_store import READ_COLUMNS, item_from_row, read_query
from record_crypto.service import RecordService

from offline.emulator.postgres import GlobalDatabase
from tests.runtime.conftest import PRIMARY, REPLICA, TwoRegions, sample_record

DATABASE = "records"
TABLE = "records"


@dataclass
class Cluster:
    db: GlobalDatabase
    passwords: dict[str, str]

    def admin(self, sql_text: Any, *params: Any, region: str = PRIMARY) -> list[tuple[Any, ...]]:
        return self.db.server(region).query(sql_text, *params, dbname=DATABASE)

    def caught_up(self) -> None:
        self.db.wait_replayed(REPLICA, self.db.writer_lsn())


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    db = GlobalDatabase(PRIMARY, (REPLICA,))
    db.start()
    try:
        passwords = {WRITER_ROLE: secrets.token_urlsafe(18), READER_ROLE: secrets.token_urlsafe(18)}
        db.server(PRIMARY).query(f"CREATE DATABASE {DATABASE}")
        with db.server(PRIMARY).connect(dbname=DATABASE) as conn, conn.transaction():
            for statement in schema_statements(TABLE, database=DATABASE):
                conn.execute(statement)
            for role, password in passwords.items():
                conn.execute(password_statement(role, password))
        yield Cluster(db, passwords)
    finally:
        db.stop()  # raises if any postgres process survives


@dataclass
class PgRegions:
    """TwoRegions (moto KMS) with the records in PostgreSQL instead of DynamoDB."""

    aws: TwoRegions
    cluster: Cluster
    secret_arns: dict[tuple[str, str], str] = field(default_factory=dict)  # (region, role) -> ARN

    @property
    def recorder(self) -> Any:
        return self.aws.recorder

    def env(self, region: str, role: str = WRITER_ROLE, **overrides: str) -> dict[str, str]:
        store = {
            "RECORD_STORE": "aurora-postgresql",
            "RECORDS_TABLE_NAME": TABLE,
            "DB_HOST": str(self.cluster.db.server(region).socket_dir),
            "DB_PORT": "5432",
            "DB_NAME": DATABASE,
            "DB_SECRET_ARN": self.secret_arns[(region, role)],
            "DB_PRIMARY_REGION": PRIMARY,
        }
        return self.aws.env(region, **{**store, **overrides})

    def service(self, region: str, role: str = WRITER_ROLE, **overrides: str) -> RecordService:
        from record_crypto.settings import Settings

        from tests.runtime.conftest import recording_session

        settings = Settings.from_env(self.env(region, role, **overrides))
        return RecordService(settings, botocore_session=recording_session(self.aws.recorder))

    def writer(self, region: str = PRIMARY, **overrides: str) -> RecordService:
        return self.service(region, WRITER_ROLE, **overrides)

    def reader(self, region: str = REPLICA, **overrides: str) -> RecordService:
        return self.service(region, READER_ROLE, **overrides)

    def row(self, region: str, item_id: str) -> dict[str, Any] | None:
        with self.cluster.db.server(region).connect(dbname=DATABASE) as conn:
            cur = conn.execute(sql.SQL("SELECT * FROM {} WHERE id = %s").format(sql.Identifier(TABLE)), (item_id,))
            row = cur.fetchone()
            return None if row is None else dict(zip([c.name for c in cur.description or ()], row, strict=True))

    def item(self, region: str, item_id: str) -> dict[str, Any] | None:
        """The item the reader would see (its own query)."""
        with self.cluster.db.server(region).connect(dbname=DATABASE) as conn:
            row = conn.execute(read_query(TABLE), (item_id,)).fetchone()
        return None if row is None else item_from_row(dict(zip(READ_COLUMNS, row, strict=True)))

    def attack(self, statement: str, *params: Any) -> None:
        """What a database administrator (or anyone with UPDATE on the table) does in the primary;
        the standby in the replica region receives it by replication."""
        self.cluster.admin(statement, *params)
        self.cluster.caught_up()

    def written(self, item_id: str = "person-1", record: dict[str, Any] | None = None, **env: str) -> dict[str, Any]:
        record = record or sample_record(item_id)
        result = self.writer(**env).write({"id": item_id, "record": record})
        assert result["ok"], result
        self.cluster.caught_up()
        return record


@pytest.fixture
def pg(aws: TwoRegions, cluster: Cluster) -> Iterator[PgRegions]:
    regions = PgRegions(aws, cluster)
    for region in (PRIMARY, REPLICA):
        client = boto3.client("secretsmanager", region)
        for role, password in cluster.passwords.items():
            arn = client.create_secret(
                Name=f"mrk-toolkit/{role}", SecretString=f'{{"username": "{role}", "password": "{password}"}}'
            )["ARN"]
            regions.secret_arns[(region, role)] = arn
    yield regions
    cluster.admin(sql.SQL("TRUNCATE {}").format(sql.Identifier(TABLE)))
    cluster.caught_up()
