"""The main job's checks for the Aurora PostgreSQL store: the deployed functions (real handlers,
under their roles, through the emulated IAM) against real PostgreSQL servers, one per region, the
primary streaming to the others (offline/emulator/aurora.py).

Checks: the schema and roles db_setup made; write in the primary; read and decrypt in every
secondary with its replica key; only ciphertext at rest; each secondary's writer writing through the
global writer endpoint (over the VPC peering), its row read in every region;
the table-writer attacks (planted, changed, rolled back) made in the primary by the master user
and refused by each secondary's reader; the database roles' privileges; the cross-role denials;
a malformed event; clean logs; the database secrets' rotation schedules and one on-demand rotation
of the writer's secret (aurora_rotation.py); what every deployed role may do (permissions.py). What needs an
SQL session on the databases declares it (``DATABASE_SESSIONS``: the emulator's servers are local,
Aurora's are inside the VPC).
"""

# The SQL below names the table the templates name, checked to be a plain SQL identifier first.
# ruff: noqa: S608

from __future__ import annotations

import time
from functools import partial
from typing import Any

from lambda_src.record_crypto.settings import READER_ROLE, STORES, WRITER_ROLE
from offline.verification.audit import audit_checks
from offline.verification.aurora_deployed import (
    cluster_checks,
    clusters_by_region,
    discovery_checks,
    global_cluster_check,
)
from offline.verification.aurora_rotation import rotation_checks
from offline.verification.basics import (
    Run,
    closing_checks,
    cross_role_checks,
    failure,
    no_plaintext,
    read_until_replicated,
    refused,
    roundtrip_checks,
    written_once,
)
from offline.verification.checks import Capability, Check, Environment, NamedCheck, Outcome, check
from offline.verification.permissions import permission_checks
from offline.verification.resources import ResourceReader, resource_checks
from offline.verification.signals import SignalsReader, alarm_checks

DYNAMODB, AURORA = STORES
SQL = Capability.DATABASE_SESSIONS


def aurora_checks(run: Run, env: Environment) -> list[Check | NamedCheck]:
    schema, reader_sql = database_checks(env)
    out = [schema, *roundtrip_checks(run, env, _at_rest, "cluster", SQL)]
    for region in env.replica_regions:
        out += region_checks(run, region)
    out.append(reader_sql)
    regions = (env.primary_region, *env.replica_regions)
    return [
        *out,
        *rotation_checks(run, env),
        *closing_checks(run),
        *_resource_checks(env),
        *permission_checks(env.reader, regions),
        *deployed_aurora_checks(env, regions),
        *audit_checks(run, env, _row_ciphertext, SQL),
    ]


def database_checks(env: Environment) -> tuple[Check, Check]:
    """The primary's database: the schema and roles db_setup made, the reader's role refused a write."""
    return (
        check(f"db_setup made the table and least-privilege roles in {env.primary_region}", _schema, SQL),
        check(f"the reader's database role cannot write ({env.primary_region})", _reader_role_sql, SQL),
    )


def region_checks(run: Run, region: str) -> list[Check]:
    """In a secondary region: its writer writing through the global writer endpoint, the attacks of someone
    who can write the region's rows (planted, changed, rolled back) and the cross-role refusals."""
    state: dict[str, Any] = {}  # the row this region's attacks alter
    return [
        check(
            f"the writer in {region} writes through the global writer endpoint; every region reads it",
            partial(_writes_through_the_global_endpoint, run, region),
            SQL,
        ),
        check(f"planted sensitive value in {region} is refused", partial(_planted, run, region, state), SQL),
        check(f"changed plaintext attribute in {region} is refused", partial(_changed, run, region, state), SQL),
        check(
            f"rolled-back row in {region} is refused with min_version", partial(_rolled_back, run, region, state), SQL
        ),
        *cross_role_checks(run, region),
    ]


def deployed_aurora_checks(env: Environment, regions: tuple[str, ...]) -> list[NamedCheck]:
    """Each region's cluster protected and backed up; its discovery parameters naming what its functions use;
    its alarms (cluster, functions, database refusals) notifying its encrypted topic: read back through RDS,
    SSM, Lambda and CloudWatch."""
    prefix = env.reader.stack_prefix
    clusters = clusters_by_region(env.client, prefix, regions)
    return [
        *cluster_checks(env.client, prefix, regions),
        global_cluster_check(env.client, prefix, regions, env.primary_region),
        *discovery_checks(env.client, prefix, regions, env.function_names),
        *alarm_checks(SignalsReader(env.client), regions, env.table_name, env.function_names, clusters),
    ]


def _row_ciphertext(env: Environment, region: str, item_id: str) -> bytes:
    """The stored message of a record in the region's cluster (the Aurora store)."""
    db = env.database()
    rows = db.admin(f"SELECT ciphertext FROM {db.table} WHERE id = %s", item_id, region=region)
    assert rows, f"the record {item_id} is not in {region}"
    return bytes(rows[0][0])


def _resource_checks(env: Environment) -> list[NamedCheck]:
    """The resource policies and encryption at rest of every deployed resource (resources.py)."""
    r, regions = env.reader, (env.primary_region, *env.replica_regions)
    return resource_checks(ResourceReader(r.client, r.account, r.role_arns, r.stack_prefix, regions))


PRIVILEGES_ASKED = (
    ("table", WRITER_ROLE, "INSERT", True),
    ("table", WRITER_ROLE, "UPDATE", True),
    ("table", WRITER_ROLE, "DELETE", False),
    ("table", WRITER_ROLE, "TRUNCATE", False),
    ("version", WRITER_ROLE, "SELECT", True),
    ("ciphertext", WRITER_ROLE, "SELECT", False),
    ("table", READER_ROLE, "SELECT", True),
    ("table", READER_ROLE, "INSERT", False),
    ("table", READER_ROLE, "UPDATE", False),
    ("table", READER_ROLE, "DELETE", False),
)


def _schema(env: Environment) -> str:
    db = env.database()
    t = db.table
    got = tuple(
        db.admin("SELECT has_table_privilege(%s, %s, %s)", role, t, privilege)[0][0]
        if what == "table"
        else db.admin("SELECT has_column_privilege(%s, %s, %s, %s)", role, t, what, privilege)[0][0]
        for what, role, privilege, _ in PRIVILEGES_ASKED
    )
    expected = tuple(allowed for *_, allowed in PRIVILEGES_ASKED)
    assert got == expected, f"privileges {got}, expected {expected}"
    owner = db.admin("SELECT tableowner FROM pg_tables WHERE tablename = %s", t)
    assert owner and owner[0][0] not in (WRITER_ROLE, READER_ROLE), f"the table is owned by {owner}"
    return (
        f"table {t} owned by {owner[0][0]}; {WRITER_ROLE}: INSERT, UPDATE, SELECT(id, version) only; "
        f"{READER_ROLE}: SELECT only"
    )


def _at_rest(run: Run, region: str, env: Environment) -> str:
    db = env.database()
    rows = db.admin(f"SELECT attributes, ciphertext FROM {db.table} WHERE id = %s", run.main["item_id"], region=region)
    assert rows, f"row missing in {region}"
    attributes, ciphertext = rows[0]
    no_plaintext(env, attributes, run.main["record"])
    assert not set(attributes) & set(env.sensitive_fields), "a sensitive field in plaintext"
    assert {"name", "country"} <= set(attributes), "non-sensitive attributes should stay queryable"
    return f"sensitive fields only inside the bytea 'ciphertext' ({len(ciphertext)} bytes); attributes queryable"


def _writes_through_the_global_endpoint(run: Run, region: str, env: Environment) -> str:
    """The secondary's writer writes (the global writer endpoint names the primary's writer, reached over
    the VPC peering); the row lands once in the primary's cluster and every region's reader returns it."""
    db = env.database()
    item_id, record = run.item_id(f"global-{region}"), run.sample_record(env, f"g-{region}")
    inv = env.invoke(region, "writer", {"id": item_id, "record": record})
    assert inv.result.get("ok") is True, failure("writer", inv)
    assert inv.result.get("region") == region and inv.result.get("version") == 1, inv.result
    rows = db.admin(f"SELECT writer_region, version FROM {db.table} WHERE id = %s", item_id)
    assert rows == [(region, 1)], f"in the writer's cluster: {rows}"
    for reader_region in (env.primary_region, *env.replica_regions):
        read = read_until_replicated(env, reader_region, item_id)
        assert read.result.get("ok") is True, failure("reader", read)
        assert read.result["record"] == record, f"{reader_region} read {read.result['record']}"
    regions = len(env.replica_regions) + 1
    return f"written once by {region}'s writer in the writer's cluster, read back in all {regions} regions"


def _altered(env: Environment, statement: str, item_id: str) -> tuple[Any, ...]:
    """Run ``statement`` on the row as the master user, in the primary; returns what to restore."""
    db = env.database()
    saved = db.admin(f"SELECT attributes::text, writer_region FROM {db.table} WHERE id = %s", item_id)[0]
    db.admin(statement, item_id)
    db.replicated()
    return tuple(saved)


def _restore(env: Environment, saved: tuple[Any, ...], item_id: str) -> None:
    db = env.database()
    db.admin(f"UPDATE {db.table} SET attributes = %s::jsonb, writer_region = %s WHERE id = %s", *saved, item_id)
    db.replicated()


def _planted(run: Run, region: str, state: dict[str, Any], env: Environment) -> str:
    planted, table = env.sensitive_fields[0], env.database().table
    item_id, record = written_once(run, env, region, state)
    saved = _altered(
        env, f'UPDATE {table} SET attributes = attributes || \'{{"{planted}": "planted"}}\' WHERE id = %s', item_id
    )
    try:
        message = refused(env, region, {"id": item_id}, "TamperedRecord", record)
    finally:
        _restore(env, saved, item_id)
    return f"a plaintext '{planted}' in the attributes is refused (TamperedRecord: {message[:60]}...)"


def _changed(run: Run, region: str, state: dict[str, Any], env: Environment) -> str:
    table = env.database().table
    item_id, record = written_once(run, env, region, state)
    change = 'attributes = attributes || \'{"name": "Mallory", "role": "admin"}\''
    saved = _altered(env, f"UPDATE {table} SET {change} WHERE id = %s", item_id)
    try:
        refused(env, region, {"id": item_id}, "TamperedRecord", record)
    finally:
        _restore(env, saved, item_id)
    return "'name' changed and 'role: admin' added by the master user: refused with TamperedRecord"


def _rolled_back(run: Run, region: str, state: dict[str, Any], env: Environment) -> str:
    db = env.database()
    item_id, record = written_once(run, env, region, state)
    columns = "attributes::text, ciphertext, version, schema, writer_region, written_at"
    saved = db.admin(f"SELECT {columns} FROM {db.table} WHERE id = %s", item_id)[0]
    newer = env.invoke(env.primary_region, "writer", {"id": item_id, "record": record})
    assert newer.result.get("ok") is True, failure("writer", newer)
    current = newer.result["version"]
    db.admin(
        f"UPDATE {db.table} SET attributes = %s::jsonb, ciphertext = %s, version = %s, schema = %s, "
        "writer_region = %s, written_at = %s WHERE id = %s",
        *saved,
        item_id,
    )
    db.replicated()
    message = refused(env, region, {"id": item_id, "min_version": current}, "StaleRecord", record)
    return f"version {saved[2]} restored over {current}: StaleRecord with min_version ({message[:50]}...)"


def _reader_role_sql(env: Environment) -> str:
    db = env.database()
    statements = (f"DELETE FROM {db.table}", f"UPDATE {db.table} SET version = version + 1")
    user, denied = db.refused_to(env.primary_region, "reader", statements)
    allowed = [s for s in statements if s not in denied]
    assert not allowed, f"the reader's role could run {allowed}"
    return f"{user} (password from its secret) is refused DELETE and UPDATE: permission denied"


# -- the clean-up: the functions' database roles may not DELETE (db_setup grants none) -------------------
AURORA_CLEAN_UP = "clean-up: every row this run wrote is deleted in every region, or listed with the SQL that does it"


AURORA_LEFT_BEHIND = (
    "what no clean-up undoes: the functions' log lines and metrics of these calls, CloudTrail's record of the KMS "
    "calls and the clusters' backups and snapshots taken meanwhile"
)


def clean_up(run: Run) -> Check:
    """The Aurora main job's last check (scenario.py ``run_main_job``), run whatever happened before it."""
    return check(AURORA_CLEAN_UP, partial(_clean_up, run))


def clean_up_sql(env: Environment, run: Run) -> str:
    return f"DELETE FROM {env.table_name} WHERE id LIKE 'verify-{run.run_id}-%';"


def _clean_up(run: Run, env: Environment) -> Outcome:
    """With a database session (the emulator: the master user on the primary's writer), delete the run's rows
    and wait until no region holds one; without (``verify`` of an account: the clusters are in isolated
    subnets and no function role may delete), name the rows left and the statement that removes them."""
    regions = (env.primary_region, *env.replica_regions)
    prefix = f"verify-{run.run_id}-"
    if Capability.DATABASE_SESSIONS not in env.capabilities:
        return Outcome(
            f"the run's rows ({prefix}*, at most {len(run.minted)}) stay: no role verify holds may delete a row",
            lines=[
                "to remove them, as the database's master user on the primary's writer endpoint (from inside the "
                f"VPC, e.g. a bastion or the query editor): {clean_up_sql(env, run)} (the secondaries follow)",
                AURORA_LEFT_BEHIND,
            ],
            figures={"left": len(run.minted)},
        )
    db = env.database()
    deleted = db.admin(f"DELETE FROM {db.table} WHERE id LIKE %s RETURNING id", f"{prefix}%")  # on the writer
    deadline = time.monotonic() + env.replication_deadline_s
    while left := [
        r for r in regions if db.admin(f"SELECT 1 FROM {db.table} WHERE id LIKE %s", f"{prefix}%", region=r)
    ]:
        assert time.monotonic() < deadline, f"rows still there after {env.replication_deadline_s:.0f}s in {left}"
        time.sleep(0.2)
    return Outcome(
        f"deleted the run's {len(deleted)} rows ({prefix}*) on the writer; none is left in {', '.join(regions)}",
        lines=[AURORA_LEFT_BEHIND],
        figures={"deleted": len(deleted)},
    )
