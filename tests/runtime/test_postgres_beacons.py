"""Beacons on the Aurora PostgreSQL store (issue 21), on real PostgreSQL (a primary streaming to a hot
standby): the schema setup adds a bigint column and a b-tree index per beacon field; the writer fills the
column, signed as the item attribute _beacon_<field>; the finder, as the reader's database role, finds
the record in the other region through the index; a changed or planted beacon column is TamperedRecord."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from record_crypto.pg_schema import READER_ROLE, beacon_index_name, beacon_statements

from tests.runtime.conftest import PRIMARY, REPLICA, TwoRegions
from tests.runtime.pg import TABLE, Cluster, PgRegions
from tests.runtime.test_beacons import DOB, SSN, beacon_env, beacon_key


@pytest.fixture(scope="module")
def beacon_columns(cluster: Cluster) -> Iterator[Cluster]:
    for _ in range(2):  # idempotent: the schema setup runs again on every stack update
        for statement in beacon_statements(TABLE, (SSN, DOB)):
            cluster.admin(statement)
    cluster.caught_up()
    yield cluster


@pytest.fixture
def keys(aws: TwoRegions, beacon_columns: Cluster) -> dict[str, str]:
    primary, replica = beacon_key(aws)
    return {PRIMARY: primary, REPLICA: replica}


def _writer(pg: PgRegions, keys: dict[str, str]) -> Any:
    return pg.writer(**beacon_env(keys[PRIMARY]))


def _finder(pg: PgRegions, keys: dict[str, str]) -> Any:
    return pg.service(REPLICA, READER_ROLE, **beacon_env(keys[REPLICA]))


def test_the_schema_has_a_beacon_column_and_btree_index_per_field(beacon_columns: Cluster) -> None:
    columns = beacon_columns.admin(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s AND column_name "
        "LIKE 'beacon%%' ORDER BY 1",
        TABLE,
    )
    assert columns == [("beacon_dob", "bigint"), ("beacon_ssn", "bigint")]
    indexes = dict(beacon_columns.admin("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", TABLE))
    for field in (SSN, DOB):
        assert f"USING btree ({field.column})" in indexes[beacon_index_name(field)], indexes


def test_written_in_the_primary_found_in_the_standby_region(pg: PgRegions, keys: dict[str, str]) -> None:
    writer = _writer(pg, keys)
    records = {"p1": {"ssn": "078-05-1120", "dob": "a"}, "p2": {"ssn": "078051120"}, "p3": {"ssn": "219-09-9999"}}
    for item_id, record in records.items():
        assert writer.write({"id": item_id, "record": record})["ok"]
    pg.cluster.caught_up()
    row = pg.row(REPLICA, "p1")
    assert row is not None and row["beacon_ssn"] == writer.beacons.beacon("ssn", "078051120", None)
    finder = _finder(pg, keys)
    found = finder.find({"field": "ssn", "value": "078 05 1120"})
    assert found["ok"], found
    assert [m["id"] for m in found["matches"]] == ["p1", "p2"]
    assert found["matches"][0]["record"] == records["p1"]
    assert finder.find({"field": "ssn", "value": "000-00-0000"})["matches"] == []
    assert pg.reader().read({"id": "p1"})["ok"]  # a reader without beacon settings reads it too


@pytest.mark.parametrize(
    ("attack", "needle"),
    [
        ("UPDATE records SET beacon_ssn = beacon_ssn + 1 WHERE id = 'p1'", "differ"),
        ("UPDATE records SET beacon_ssn = NULL WHERE id = 'p1'", "were removed"),
        ("UPDATE records SET beacon_dob = 7 WHERE id = 'p1'", "did not sign"),
    ],
    ids=["changed", "removed", "planted"],
)
def test_a_changed_removed_or_planted_beacon_column_is_tampering(
    pg: PgRegions, keys: dict[str, str], attack: str, needle: str
) -> None:
    assert _writer(pg, keys).write({"id": "p1", "record": {"ssn": "078-05-1120"}})["ok"]
    pg.attack(attack)
    result = pg.reader().read({"id": "p1"})
    assert result["error"]["type"] == "TamperedRecord", result
    assert needle in result["error"]["message"]


def test_db_setup_adds_a_beacon_column_and_index_on_update(pg: PgRegions, monkeypatch: pytest.MonkeyPatch) -> None:
    """A beacon field added to a running deployment: the stack update re-runs the schema setup with
    BEACON_FIELDS, which adds the column and its index to the existing table."""
    import json

    import boto3
    import db_setup
    from psycopg import sql
    from record_crypto.pg_schema import WRITER_ROLE

    server = pg.cluster.db.server(PRIMARY)
    master = {"username": "beacon_admin", "password": "master-password-2"}
    server.query(
        sql.SQL("CREATE ROLE beacon_admin LOGIN CREATEROLE PASSWORD {}").format(sql.Literal(master["password"]))
    )
    server.query("CREATE DATABASE beacon_db OWNER beacon_admin")
    server.query(f"GRANT {WRITER_ROLE}, {READER_ROLE} TO beacon_admin WITH ADMIN OPTION")
    client = boto3.client("secretsmanager", PRIMARY)
    env = {
        "AWS_REGION": PRIMARY,
        "DB_HOST": str(server.socket_dir),
        "DB_NAME": "beacon_db",
        "RECORDS_TABLE_NAME": "people",
        "SENSITIVE_FIELDS": "ssn,dob",
        "DB_MASTER_SECRET_ARN": client.create_secret(Name="bm", SecretString=json.dumps(master))["ARN"],
        "DB_WRITER_SECRET_ARN": pg.secret_arns[(PRIMARY, WRITER_ROLE)],
        "DB_READER_SECRET_ARN": pg.secret_arns[(PRIMARY, READER_ROLE)],
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def beacon_columns() -> list[tuple[Any, ...]]:
        return server.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'people' "
            "AND column_name LIKE 'beacon%' ORDER BY 1",
            dbname="beacon_db",
        )

    db_setup.handler({"RequestType": "Create", "ResponseURL": "emulated"}, None)
    assert beacon_columns() == []
    monkeypatch.setenv("BEACON_FIELDS", "ssn:24:digits")
    db_setup.handler({"RequestType": "Update", "ResponseURL": "emulated"}, None)
    assert beacon_columns() == [("beacon_ssn",)]
    indexes = server.query("SELECT indexname FROM pg_indexes WHERE tablename = 'people'", dbname="beacon_db")
    assert (beacon_index_name(SSN),) in indexes
    monkeypatch.setenv("BEACON_FIELDS", "name:24:digits")  # not a sensitive field: refused, named
    with pytest.raises(Exception, match="BEACON_FIELDS"):
        db_setup.handler({"RequestType": "Update", "ResponseURL": "emulated"}, None)


def test_a_field_whose_column_is_not_added_yet_is_a_retryable_refusal(pg: PgRegions, keys: dict[str, str]) -> None:
    """A beacon field added to a running deployment: until the stack update's schema setup has added its
    column, the finder answers IndexNotReady (retryable), not Internal and not an empty answer."""
    finder = pg.service(REPLICA, READER_ROLE, **beacon_env(keys[REPLICA], "ssn:24:digits,diagnosis:16:exact"))
    refused = finder.find({"field": "diagnosis", "value": "x"})
    assert refused["ok"] is False and refused["error"]["type"] == "IndexNotReady", refused
    assert refused["error"]["retryable"] is True and refused["error"]["status"] == 503
    assert finder.find({"field": "ssn", "value": "078-05-1120"})["ok"] is True  # the connection still serves
