"""The PostgreSQL store on REAL PostgreSQL 16 (a primary streaming to a hot standby).

Same service, same item format, same refusals as the DynamoDB store: the attacks here are those
of tests/runtime/test_integrity.py, made by whoever can change the table in the primary (a
database administrator, a leaked master password); the standby in the other region replicates
them and its reader must refuse. Plus what only a database has: the read-only secondary, the
database roles' privileges, the credentials from Secrets Manager.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import threading
import time
from typing import Any

import psycopg
import pytest
from record_crypto.pg_schema import READER_ROLE, WRITER_ROLE

from tests.runtime.conftest import PRIMARY, REPLICA, assert_no_plaintext, race_once, sample_record
from tests.runtime.pg import DATABASE, TABLE, PgRegions


def _refused(result: dict[str, Any], error_type: str = "TamperedRecord") -> dict[str, Any]:
    assert result["ok"] is False, f"the altered row was returned as authentic: {result}"
    assert result["error"]["type"] == error_type, result
    assert "record" not in result
    return result["error"]


# -- the happy path ------------------------------------------------------------------------------
def test_written_in_the_primary_read_and_decrypted_in_the_standby_with_the_replica_key(pg: PgRegions) -> None:
    record = pg.written()
    pg.recorder.clear()

    result = pg.reader().read({"id": "person-1"})

    assert result["ok"], result
    assert result["record"] == record and result["version"] == 1
    assert (result["written_region"], result["read_region"]) == (PRIMARY, REPLICA)
    decrypts = pg.recorder.kms("Decrypt")
    assert decrypts and all(c.region == REPLICA for c in pg.recorder.kms()), "only the local replica key"
    row = pg.row(REPLICA, "person-1")
    assert row is not None
    assert_no_plaintext({k: v for k, v in row.items() if k != "ciphertext"}, record)
    assert row["attributes"]["country"] == "NZ" and "ssn" not in row["attributes"], "plaintext stays queryable"
    assert isinstance(row["ciphertext"], bytes) and row["version"] == 1


def test_the_jsonb_round_trip_keeps_the_signature_for_every_json_type(pg: PgRegions) -> None:
    record = {
        "ssn": "SECRET-1",
        "big": 10**30,
        "small": -0.000125,
        "whole_float": 2.0,
        "nested": {"a": [1, "x", None, True, {"b": 1.5}]},
        "empty": {},
        "unicode": "Zoë ✓ 🚀",
        "nothing": None,
    }
    pg.written(record=record)
    result = pg.reader().read({"id": "person-1"})
    assert result["ok"], result
    assert result["record"] == record


def test_a_character_postgresql_cannot_store_is_refused_before_any_call(pg: PgRegions) -> None:
    pg.recorder.clear()
    result = pg.writer().write({"id": "p", "record": {"name": "a\u0000b", "ssn": "1"}})
    assert result["error"]["type"] == "InvalidEvent" and "'name'" in result["error"]["message"], result
    assert pg.recorder.calls == []


# -- planted, changed, added, removed ------------------------------------------------------------
def test_a_planted_sensitive_value_in_the_attributes_is_refused_before_any_kms_call(pg: PgRegions) -> None:
    record = pg.written(record={"name": "Ada", "ssn": "SECRET-ssn-1"})
    pg.attack(f'UPDATE {TABLE} SET attributes = attributes || \'{{"dob": "planted"}}\'')
    pg.recorder.clear()

    error = _refused(pg.reader().read({"id": "person-1"}))

    assert "dob" in error["message"] and pg.recorder.kms() == []
    assert_no_plaintext(error, record)


def test_a_planted_sensitive_column_is_refused(pg: PgRegions) -> None:
    pg.written()
    pg.attack(f"ALTER TABLE {TABLE} ADD COLUMN dob text")
    try:
        pg.attack(f"UPDATE {TABLE} SET dob = 'planted by the administrator'")
        error = _refused(pg.reader().read({"id": "person-1"}))
        assert "dob" in error["message"]
    finally:
        pg.attack(f"ALTER TABLE {TABLE} DROP COLUMN dob")


CHANGES = [
    ("changed name", "UPDATE records SET attributes = jsonb_set(attributes, '{name}', '\"Mallory\"')"),
    ("number changed", "UPDATE records SET attributes = jsonb_set(attributes, '{tier}', '4')"),
    ("type changed (number to string)", "UPDATE records SET attributes = jsonb_set(attributes, '{tier}', '\"3\"')"),
    ("added role: admin", 'UPDATE records SET attributes = attributes || \'{"role": "admin"}\''),
    ("removed country", "UPDATE records SET attributes = attributes - 'country'"),
    ("writer region changed", f"UPDATE records SET writer_region = '{REPLICA}'"),
    ("written_at changed", "UPDATE records SET written_at = '2020-01-01T00:00:00Z'"),
    ("version raised", "UPDATE records SET version = 7"),
    ("schema changed", "UPDATE records SET schema = '1'"),
]


@pytest.mark.parametrize(("case", "statement"), CHANGES, ids=[c for c, _ in CHANGES])
def test_a_changed_added_or_removed_column_value_is_refused(pg: PgRegions, case: str, statement: str) -> None:
    record = pg.written()
    pg.attack(statement)
    error = _refused(pg.reader().read({"id": "person-1"}))
    assert error["status"] == 422
    assert_no_plaintext(error, record)


def test_an_added_column_with_a_value_is_refused_and_an_empty_one_is_not(pg: PgRegions) -> None:
    pg.written()
    pg.attack(f"ALTER TABLE {TABLE} ADD COLUMN role text")
    try:
        assert pg.reader().read({"id": "person-1"})["ok"], "a new NULL column changes no record"
        pg.attack(f"UPDATE {TABLE} SET role = 'admin'")
        error = _refused(pg.reader().read({"id": "person-1"}))
        assert "role" in error["message"]
    finally:
        pg.attack(f"ALTER TABLE {TABLE} DROP COLUMN role")


def test_an_attribute_planted_1500_levels_deep_is_a_tampered_record_not_an_internal_error(pg: PgRegions) -> None:
    pg.written()
    deep = "(repeat('[', 1500) || repeat(']', 1500))::jsonb"
    pg.attack(f"UPDATE {TABLE} SET attributes = attributes || jsonb_build_object('nested', {deep})")
    error = _refused(pg.reader().read({"id": "person-1"}))
    assert "nested deeper" in error["message"], error


def test_a_column_planted_1500_levels_deep_is_a_tampered_record(pg: PgRegions) -> None:
    pg.written()
    pg.attack(f"ALTER TABLE {TABLE} ADD COLUMN extra jsonb")
    try:
        pg.attack(f"UPDATE {TABLE} SET extra = (repeat('[', 1500) || repeat(']', 1500))::jsonb")
        _refused(pg.reader().read({"id": "person-1"}))
    finally:
        pg.attack(f"ALTER TABLE {TABLE} DROP COLUMN extra")


def test_warm_readers_keep_reading_after_a_column_is_added(pg: PgRegions) -> None:
    """psycopg prepares a statement after five runs; a schema migration must not break it."""
    pg.written()
    reader = pg.reader()
    for _ in range(8):
        assert reader.read({"id": "person-1"})["ok"]
    pg.attack(f"ALTER TABLE {TABLE} ADD COLUMN beacon text")
    try:
        result = reader.read({"id": "person-1"})
        assert result["ok"], result
        pg.attack(f"UPDATE {TABLE} SET beacon = 'unsigned'")
        assert "beacon" in _refused(reader.read({"id": "person-1"}))["message"]
    finally:
        pg.attack(f"ALTER TABLE {TABLE} DROP COLUMN beacon")
    assert reader.read({"id": "person-1"})["ok"], "and again after it is dropped"


def test_the_stores_code_never_selects_star() -> None:
    import record_crypto.postgres_store as store

    source = inspect.getsource(store)
    assert re.search(r"SELECT\s+\*", source, re.IGNORECASE) is None


@pytest.mark.parametrize(
    "planted",
    ['{"_version": 1}', '{"id": "person-1"}', '{"_ciphertext": "x"}', json.dumps({"_writer_region": PRIMARY})],
)
def test_attribute_keys_named_like_the_toolkits_columns_are_refused(pg: PgRegions, planted: str) -> None:
    pg.written()
    pg.attack(f"UPDATE {TABLE} SET attributes = attributes || %s::jsonb", planted)
    error = _refused(pg.reader().read({"id": "person-1"}))
    assert next(iter(json.loads(planted))) in error["message"], error


def test_a_column_named_like_an_attribute_is_refused(pg: PgRegions) -> None:
    pg.written()
    pg.attack(f"ALTER TABLE {TABLE} ADD COLUMN country text")
    try:
        pg.attack(f"UPDATE {TABLE} SET country = attributes->>'country'")
        assert "country" in _refused(pg.reader().read({"id": "person-1"}))["message"]
    finally:
        pg.attack(f"ALTER TABLE {TABLE} DROP COLUMN country")


@pytest.mark.parametrize("microseconds", [1, 999])
def test_a_change_of_written_at_below_a_millisecond_is_refused(pg: PgRegions, microseconds: int) -> None:
    pg.written()
    pg.attack(f"UPDATE {TABLE} SET written_at = written_at + interval '{microseconds} microseconds'")
    _refused(pg.reader().read({"id": "person-1"}))


def test_a_ciphertext_copied_onto_another_row_is_refused(pg: PgRegions) -> None:
    pg.written("a")
    pg.written("b")
    pg.attack(f"UPDATE {TABLE} SET ciphertext = (SELECT ciphertext FROM {TABLE} WHERE id = 'a') WHERE id = 'b'")
    _refused(pg.reader().read({"id": "b"}), "ContextMismatch")


# -- versions --------------------------------------------------------------------------------------
def test_a_rolled_back_row_is_refused_when_the_caller_says_what_it_last_saw(pg: PgRegions) -> None:
    old = pg.written()
    saved = pg.row(PRIMARY, "person-1")
    assert saved is not None
    new = pg.writer().write({"id": "person-1", "record": sample_record("new")})
    assert new["version"] == 2
    columns = [c for c in saved if c != "id"]
    assignments = ", ".join(f"{c} = %s" for c in columns)
    values = [json.dumps(saved[c]) if c == "attributes" else saved[c] for c in columns]
    pg.attack(f"UPDATE {TABLE} SET {assignments} WHERE id = 'person-1'", *values)  # the saved copy restored

    stale = pg.reader().read({"id": "person-1", "min_version": 2})
    error = _refused(stale, "StaleRecord")
    assert (error["status"], error["retryable"]) == (412, True)
    assert_no_plaintext(stale, old)
    plain = pg.reader().read({"id": "person-1"})
    assert plain["ok"] and plain["version"] == 1, "an authentic older copy: only min_version can tell"


def test_each_write_gets_the_next_version_and_expected_version_locks(pg: PgRegions) -> None:
    writer = pg.writer()
    assert writer.write({"id": "p", "record": {"name": "a"}, "expected_version": 0})["version"] == 1
    assert writer.write({"id": "p", "record": {"name": "b"}})["version"] == 2
    assert writer.write({"id": "p", "record": {"name": "c"}, "expected_version": 2})["version"] == 3

    conflict = writer.write({"id": "p", "record": {"name": "lost?"}, "expected_version": 1})

    assert conflict["error"]["type"] == "VersionConflict", conflict
    assert (conflict["error"]["status"], conflict["error"]["retryable"]) == (409, False)
    row = pg.row(PRIMARY, "p")
    assert row is not None and row["attributes"]["name"] == "c" and row["version"] == 3, "nothing overwritten"
    create_only = writer.write({"id": "p", "record": {"name": "x"}, "expected_version": 0})
    assert create_only["error"]["type"] == "VersionConflict", "expected_version 0 means: create only"


def test_a_concurrent_writer_is_retried_never_silently_overwritten(pg: PgRegions) -> None:
    slow, fast = pg.writer(), pg.writer()
    assert slow.write({"id": "p", "record": {"name": "v1"}})["version"] == 1
    raced = race_once(slow, lambda: fast.write({"id": "p", "record": {"name": "fast"}}))
    result = slow.write({"id": "p", "record": {"name": "slow"}})

    assert raced[0]["version"] == 2
    assert result["ok"] and result["version"] == 3, "re-read the version and wrote the next one"
    row = pg.row(PRIMARY, "p")
    assert row is not None and row["attributes"]["name"] == "slow"


def test_a_writer_that_keeps_losing_the_race_gets_a_retryable_version_conflict(pg: PgRegions) -> None:
    writer, other = pg.writer(), pg.writer()
    read_version = writer._current_version

    def always_raced(item_id: str) -> int:
        current = read_version(item_id)
        assert other.write({"id": "p", "record": {"name": "other"}})["ok"]
        return current

    writer._current_version = always_raced  # type: ignore[method-assign]
    result = writer.write({"id": "p", "record": {"name": "a"}})
    assert result["error"]["type"] == "VersionConflict", result
    assert (result["error"]["status"], result["error"]["retryable"]) == (409, True)


# -- regions -----------------------------------------------------------------------------------------
def test_a_write_in_the_secondary_region_is_refused_retryable_and_nothing_is_written(pg: PgRegions) -> None:
    pg.recorder.clear()
    result = pg.writer(REPLICA).write({"id": "from-replica", "record": sample_record()})

    error = _refused(result, "ReadOnlyRegion")
    assert (error["status"], error["retryable"]) == (421, True)
    assert "nothing was written" in error["message"] and "global writer endpoint" in error["message"], error
    assert PRIMARY not in error["message"], "the function does not know the primary region: it moves"
    assert pg.row(PRIMARY, "from-replica") is None and pg.row(REPLICA, "from-replica") is None


def test_a_secondary_reader_says_not_found_until_replication_brings_the_row(pg: PgRegions) -> None:
    result = pg.reader().read({"id": "never-written"})
    error = _refused(result, "NotFound")
    assert error["retryable"] is True and f"{REPLICA} cluster" in error["message"]


# -- database roles and credentials ---------------------------------------------------------------
def _as(pg: PgRegions, role: str, statement: str, region: str = PRIMARY) -> None:
    server = pg.cluster.db.server(region)
    with psycopg.connect(server.conninfo(role, DATABASE, pg.cluster.passwords[role]), autocommit=True) as conn:
        conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        f"INSERT INTO {TABLE} (id, attributes, ciphertext, version, schema, writer_region, written_at) "
        "VALUES ('x', '{}', '\\x00', 1, '2', 'us-east-2', now())",
        f"UPDATE {TABLE} SET version = 9",
        f"DELETE FROM {TABLE}",
        f"TRUNCATE {TABLE}",
        f"DROP TABLE {TABLE}",
    ],
    ids=["insert", "update", "delete", "truncate", "drop"],
)
def test_the_reader_role_cannot_write(pg: PgRegions, statement: str) -> None:
    pg.written()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(pg, READER_ROLE, statement)


@pytest.mark.parametrize(
    "statement",
    [
        f"DELETE FROM {TABLE}",
        f"TRUNCATE {TABLE}",
        f"DROP TABLE {TABLE}",
        f"ALTER TABLE {TABLE} ADD COLUMN role text",
        f"SELECT ciphertext FROM {TABLE}",
        f"SELECT * FROM {TABLE}",
        f"CREATE TABLE {TABLE}_copy (id text)",
    ],
    ids=["delete", "truncate", "drop", "alter", "select-ciphertext", "select-all", "create"],
)
def test_the_writer_role_cannot_delete_drop_or_read_records(pg: PgRegions, statement: str) -> None:
    pg.written()
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as(pg, WRITER_ROLE, statement)
    assert pg.row(PRIMARY, "person-1") is not None


def test_writer_code_with_the_readers_credentials_is_denied_and_reader_code_with_the_writers(pg: PgRegions) -> None:
    write = pg.service(PRIMARY, READER_ROLE).write({"id": "p", "record": {"name": "a", "ssn": "1"}})
    assert _refused(write, "AccessDenied")["status"] == 403
    pg.written()
    read = pg.service(PRIMARY, WRITER_ROLE).read({"id": "person-1"})
    assert _refused(read, "AccessDenied")["status"] == 403


def test_a_wrong_password_is_access_denied_and_an_unreachable_cluster_is_retryable(pg: PgRegions) -> None:
    import boto3

    client = boto3.client("secretsmanager", PRIMARY)
    arn = client.create_secret(Name="wrong", SecretString=json.dumps({"username": READER_ROLE, "password": "nope"}))
    wrong = pg.service(PRIMARY, READER_ROLE, DB_SECRET_ARN=arn["ARN"]).read({"id": "p"})
    assert _refused(wrong, "AccessDenied")["message"].startswith("the database refused the credentials")

    gone = pg.reader(DB_HOST="/nonexistent-socket-dir").read({"id": "p"})
    error = _refused(gone, "DatabaseUnavailable")
    assert (error["status"], error["retryable"]) == (503, True)


def test_a_rotated_password_is_picked_up_when_the_connection_drops_without_a_caller_seeing_it(
    pg: PgRegions,
) -> None:
    """Rotation (the role's password and its secret changed) while a warm writer's connection is
    dropped: the writer reconnects, is refused the old password, reads the secret again and writes;
    nothing is lost and the caller sees no error."""
    import boto3

    writer = pg.writer()
    assert writer.write({"id": "rot-0", "record": sample_record("rot-0")})["ok"]
    original = pg.cluster.passwords[WRITER_ROLE]
    rotated = original + "-rotated"
    client = boto3.client("secretsmanager", PRIMARY)
    secret = pg.secret_arns[(PRIMARY, WRITER_ROLE)]
    try:
        pg.attack(f"ALTER ROLE {WRITER_ROLE} PASSWORD '{rotated}'")
        client.put_secret_value(
            SecretId=secret, SecretString=json.dumps({"username": WRITER_ROLE, "password": rotated})
        )
        pg.attack(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{WRITER_ROLE}'")
        result = writer.write({"id": "rot-1", "record": sample_record("rot-1")})
        assert result["ok"], result
        assert pg.row(PRIMARY, "rot-1") is not None and pg.row(PRIMARY, "rot-0") is not None
    finally:
        pg.attack(f"ALTER ROLE {WRITER_ROLE} PASSWORD '{original}'")
        client.put_secret_value(
            SecretId=secret, SecretString=json.dumps({"username": WRITER_ROLE, "password": original})
        )


def test_a_write_during_a_single_user_rotation_uses_the_pending_password(pg: PgRegions) -> None:
    """Secrets Manager's single-user rotation sets the role's new password, then makes the new
    secret version current: in between, the current version holds a password the database refuses.
    The writer, refused, reads the pending version and writes; the caller sees no error."""
    import boto3

    writer = pg.writer()
    assert writer.write({"id": "pend-0", "record": sample_record("pend-0")})["ok"]
    original = pg.cluster.passwords[WRITER_ROLE]
    client = boto3.client("secretsmanager", PRIMARY)
    secret = pg.secret_arns[(PRIMARY, WRITER_ROLE)]
    try:
        client.put_secret_value(
            SecretId=secret,
            SecretString=json.dumps({"username": WRITER_ROLE, "password": original + "-pending"}),
            VersionStages=["AWSPENDING"],
        )
        pg.attack(f"ALTER ROLE {WRITER_ROLE} PASSWORD '{original}-pending'")
        pg.attack(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{WRITER_ROLE}'")
        for i in (1, 2):
            result = writer.write({"id": f"pend-{i}", "record": sample_record(f"pend-{i}")})
            assert result["ok"], result
        assert pg.writer().write({"id": "pend-3", "record": sample_record("pend-3")})["ok"], "a cold container too"
    finally:
        pg.attack(f"ALTER ROLE {WRITER_ROLE} PASSWORD '{original}'")


def test_a_single_user_rotation_under_write_load_loses_nothing_and_no_caller_sees_an_error(pg: PgRegions) -> None:
    """The rotation's steps as Secrets Manager's single-user rotation makes them (a pending version,
    the role's password set, the writer's sessions ended, the pending version made current) while a
    warm writer keeps writing: every write is acknowledged and every acknowledged row is there."""
    import boto3

    writer, original = pg.writer(), pg.cluster.passwords[WRITER_ROLE]
    client = boto3.client("secretsmanager", PRIMARY)
    secret = pg.secret_arns[(PRIMARY, WRITER_ROLE)]
    results: list[tuple[str, dict[str, Any]]] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            results.append((f"load-{i}", writer.write({"id": f"load-{i}", "record": sample_record(f"load-{i}")})))

    old = client.get_secret_value(SecretId=secret)["VersionId"]
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)
        new = client.put_secret_value(
            SecretId=secret,
            SecretString=json.dumps({"username": WRITER_ROLE, "password": original + "-next"}),
            VersionStages=["AWSPENDING"],
        )["VersionId"]
        time.sleep(0.2)
        pg.attack(f"ALTER ROLE {WRITER_ROLE} PASSWORD '{original}-next'")
        pg.attack(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{WRITER_ROLE}'")
        time.sleep(0.3)
        client.update_secret_version_stage(
            SecretId=secret, VersionStage="AWSCURRENT", MoveToVersionId=new, RemoveFromVersionId=old
        )
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(30)
        pg.attack(f"ALTER ROLE {WRITER_ROLE} PASSWORD '{original}'")
        restored = json.dumps({"username": WRITER_ROLE, "password": original})
        client.put_secret_value(SecretId=secret, SecretString=restored)
    failed = [(item_id, r["error"]) for item_id, r in results if not r.get("ok")]
    acked = [item_id for item_id, r in results if r.get("ok")]
    # The session ended mid-write is the one a caller may see: retryable, and then nothing is lost.
    assert all(e["type"] == "DatabaseUnavailable" and e["retryable"] for _, e in failed), failed
    assert len(failed) <= 1 and len(acked) >= 10, (len(acked), failed)
    assert all(pg.row(PRIMARY, item_id) is not None for item_id in acked), "an acknowledged write is missing"


# -- the environment contract and the schema custom resource ---------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("DB_HOST", "", "DB_HOST=<unset>"),
        ("DB_HOST", "bad host!", "cluster endpoint"),
        ("DB_NAME", "Records-DB", "database name"),
        ("RECORDS_TABLE_NAME", "mrk-toolkit-records", "SQL table name"),
        ("DB_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf", "own region us-east-2"),
        ("DB_SECRET_ARN", "my-secret", "Secrets Manager secret"),
        ("DB_PORT", "0", "integer from 1 to 65535"),
        ("RECORD_STORE", "aurora", "one of dynamodb, aurora-postgresql"),
    ],
)
def test_a_bad_database_environment_fails_the_cold_start_naming_the_variable(
    pg: PgRegions, name: str, value: str, says: str
) -> None:
    from record_crypto.settings import ConfigurationError, Settings

    env = pg.env(PRIMARY)
    if value:
        env[name] = value
    else:
        env.pop(name)
    with pytest.raises(ConfigurationError, match=name) as raised:
        Settings.from_env(env)
    assert says in str(raised.value)


def test_db_setup_creates_the_table_and_roles_idempotently_with_the_secrets_passwords(
    pg: PgRegions, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    import db_setup
    from psycopg import sql

    server = pg.cluster.db.server(PRIMARY)
    master = {"username": "setup_admin", "password": "master-password-1"}
    server.query(
        sql.SQL("CREATE ROLE setup_admin LOGIN CREATEROLE PASSWORD {}").format(sql.Literal(master["password"]))
    )
    server.query("CREATE DATABASE setup_db OWNER setup_admin")
    # The roles exist already (this module's fixture made them): the master user needs ADMIN on
    # them, as it has on roles it created itself (PostgreSQL 16).
    server.query(f"GRANT {WRITER_ROLE}, {READER_ROLE} TO setup_admin WITH ADMIN OPTION")
    client = boto3.client("secretsmanager", PRIMARY)
    arns = {
        "DB_MASTER_SECRET_ARN": client.create_secret(Name="m", SecretString=json.dumps(master))["ARN"],
        "DB_WRITER_SECRET_ARN": pg.secret_arns[(PRIMARY, WRITER_ROLE)],
        "DB_READER_SECRET_ARN": pg.secret_arns[(PRIMARY, READER_ROLE)],
    }
    env = {
        "AWS_REGION": PRIMARY,
        "DB_HOST": str(server.socket_dir),
        "DB_PORT": "5432",
        "DB_NAME": "setup_db",
        "RECORDS_TABLE_NAME": "people",
        **arns,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    for request in ("Create", "Update"):  # idempotent: an update runs it again
        response = db_setup.handler({"RequestType": request, "ResponseURL": "emulated"}, None)
        assert response["Data"] == {"Table": "people", "WriterRole": WRITER_ROLE, "ReaderRole": READER_ROLE}
    assert db_setup.handler({"RequestType": "Delete", "PhysicalResourceId": "x"}, None)["PhysicalResourceId"] == "x"
    owner = server.query("SELECT tableowner FROM pg_tables WHERE tablename = 'people'", dbname="setup_db")
    assert owner == [("setup_admin",)], "owned by the master user: no function role can drop it"
    writer = pg.service(PRIMARY, WRITER_ROLE, DB_NAME="setup_db", RECORDS_TABLE_NAME="people")
    assert writer.write({"id": "p", "record": {"name": "a", "ssn": "1"}})["ok"], "the writer's secret logs in"

    monkeypatch.delenv("DB_HOST")
    with pytest.raises(db_setup.SetupError, match="DB_HOST"):
        db_setup.handler({"RequestType": "Create"}, None)


class _Relay:
    """A man in the middle on the TCP path to the primary's server (its unix socket): records what the
    function sends, and forwards it, like a network device that would happily pass plaintext on. The
    offline servers are built without TLS, so a client that falls back to plaintext gets through."""

    def __init__(self, socket_path: str) -> None:
        import socket

        self.socket_path, self.sent = socket_path, bytearray()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX)
            server.connect(self.socket_path)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: Any, target: Any, record: bool) -> None:
        with source, target, contextlib.suppress(OSError):  # either side hanging up ends the pipe
            while data := source.recv(65536):
                if record:
                    self.sent += data
                target.sendall(data)

    def close(self) -> None:
        self.listener.close()


def test_the_functions_never_talk_to_the_database_in_plaintext_over_tcp(pg: PgRegions) -> None:
    """An attacker on the network path who answers "no TLS here" gets nothing: the writer asks for TLS
    first and gives up when refused, so neither its login nor a row crosses in clear."""
    from record_crypto.pg_schema import SSL_MODE

    assert SSL_MODE == "require"
    server = pg.cluster.db.server(PRIMARY)
    relay = _Relay(str(server.socket_dir / ".s.PGSQL.5432"))
    try:
        result = pg.writer(DB_HOST="127.0.0.1", DB_PORT=str(relay.port)).write(
            {"id": "tls-1", "record": sample_record("tls-1")}
        )
        error = _refused(result, "DatabaseUnavailable")
        assert error["retryable"] is True
        ssl_request = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
        assert bytes(relay.sent) and set(bytes(relay.sent).split(ssl_request)) <= {b""}, "only TLS requests sent"
        assert pg.row(PRIMARY, "tls-1") is None
        # The same path lets a client that settles for plaintext through: the relay is a real path, and only
        # the function's sslmode stops it.
        relay.sent.clear()
        user, password = WRITER_ROLE, pg.cluster.passwords[WRITER_ROLE]
        with psycopg.connect(
            host="127.0.0.1", port=relay.port, dbname=DATABASE, user=user, password=password, sslmode="prefer"
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert user.encode() in bytes(relay.sent)
    finally:
        relay.close()


def test_every_connection_the_deployed_code_opens_asks_for_tls() -> None:
    """The functions, db_setup (the master login) and the rotation function: each psycopg.connect in the
    deployed code names sslmode=SSL_MODE; a new one without it fails here."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "lambda_src"
    calls = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "psycopg.connect":
                modes = [ast.unparse(k.value) for k in node.keywords if k.arg == "sslmode"]
                calls.append((path.name, modes))
    assert {name for name, _ in calls} == {"postgres_store.py", "db_setup.py", "rotation.py"}, calls
    assert all(modes == ["SSL_MODE"] for _, modes in calls), calls
