"""Failover drills for the Aurora PostgreSQL store, on real PostgreSQL servers (one per region,
the primary streaming to the others: offline/emulator/postgres.py) with the runtime's own RecordService
(KMS multi-region key and Secrets Manager on moto, in-process).

* planned switchover: writes stop, every standby catches up with the writer's WAL position (LSN),
  the old primary shuts down cleanly, a secondary is promoted, the other standbys follow it and
  the old primary rejoins as a standby; writes resume in the new primary. Every acknowledged
  write must be readable in every region afterwards (counted).
* unplanned failover: a writer keeps writing in the primary, the primary's postmaster is killed
  (SIGKILL: no shutdown, no last WAL sent), the most advanced secondary is promoted, the others
  follow it. Counted: acknowledged writes missing in the new primary (the RPO measured:
  streaming is asynchronous, as Aurora's storage replication is, so it may be above 0), and the
  seconds from the loss to the first successful write in the new primary.

Both drills end with the readers of the promoted region decrypting with their LOCAL replica of
the multi-region key: the old primary region's key is disabled first, and every KMS call the
readers make is recorded with its region.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lambda_src.record_crypto.settings import (
    ENV_DB_HOST,
    ENV_DB_NAME,
    ENV_DB_PRIMARY_REGION,
    ENV_DB_SECRET_ARN,
    ENV_MRK_ARN,
    ENV_RECORD_STORE,
    ENV_REGION,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    READER_ROLE,
    STORE_AURORA_POSTGRESQL,
    WRITER_ROLE,
)

# lambda_src is the root of the Lambda zip: its modules import each other as top-level modules.
_LAMBDA_SRC = str(Path(__file__).resolve().parents[2] / "lambda_src")
if _LAMBDA_SRC not in sys.path:
    sys.path.append(_LAMBDA_SRC)

PRIMARY = "us-east-2"
SECONDARIES = ("us-west-1", "eu-west-1")
DATABASE = "records"
TABLE = "records"
SENSITIVE = ("ssn", "card_number")


@dataclass
class DrillResult:
    name: str
    old_primary: str
    new_primary: str
    acknowledged: int
    lost: int  # acknowledged writes not in the new primary (the RPO, counted)
    seconds_to_first_write: float  # from writes stopping (or the crash) to a write in the new primary
    catch_up_seconds: float | None  # planned: until every standby had the writer's last LSN
    readers_kms_regions: dict[str, list[str]] = field(default_factory=dict)  # region -> KMS call regions
    reads_ok: dict[str, int] = field(default_factory=dict)  # region -> acknowledged records decrypted
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        local = all(regions and set(regions) == {r} for r, regions in self.readers_kms_regions.items())
        everywhere = bool(self.reads_ok) and all(n == self.acknowledged - self.lost for n in self.reads_ok.values())
        return local and everywhere and (self.name != "planned switchover" or self.lost == 0)

    def render(self) -> list[str]:
        lines = [
            f"{'PASS' if self.ok else 'FAIL'}  {self.name}: {self.old_primary} -> {self.new_primary}",
            f"      acknowledged writes {self.acknowledged}, lost {self.lost} (RPO counted)",
            f"      first successful write in {self.new_primary} after {self.seconds_to_first_write:.2f} s",
        ]
        if self.catch_up_seconds is not None:
            lines.append(f"      standbys caught up with the writer's LSN in {self.catch_up_seconds:.3f} s")
        for region, count in self.reads_ok.items():
            kms = sorted(set(self.readers_kms_regions.get(region, [])))
            lines.append(f"      {region}: {count} records decrypted; reader's KMS calls in {kms}")
        lines += [f"      {note}" for note in self.notes]
        return lines


class KmsCalls:
    """Records the region of every KMS call made through a botocore session."""

    def __init__(self) -> None:
        self.regions: list[str] = []

    def session(self) -> Any:
        import botocore.session

        session = botocore.session.get_session()
        create = session.create_client

        def create_client(service_name: str, *args: Any, **kwargs: Any) -> Any:
            client = create(service_name, *args, **kwargs)
            if service_name == "kms":
                region = client.meta.region_name
                client.meta.events.register("before-call", lambda **_: self.regions.append(region))
            return client

        session.create_client = create_client  # type: ignore[method-assign]
        return session


@dataclass
class DrillWorld:
    """The global database, the key and secrets, and a way to build each region's service."""

    db: Any  # offline.emulator.postgres.GlobalDatabase
    key_arns: dict[str, str]
    secret_arns: dict[tuple[str, str], str]

    def service(self, region: str, role: str, kms: KmsCalls | None = None) -> Any:
        from record_crypto.service import RecordService
        from record_crypto.settings import Settings

        env = {
            ENV_REGION: region,
            ENV_TABLE_NAME: TABLE,
            ENV_MRK_ARN: self.key_arns[region],
            ENV_SENSITIVE_FIELDS: ",".join(SENSITIVE),
            ENV_RECORD_STORE: STORE_AURORA_POSTGRESQL,
            ENV_DB_HOST: str(self.db.server(region).socket_dir),
            ENV_DB_NAME: DATABASE,
            ENV_DB_SECRET_ARN: self.secret_arns[(region, role)],
            ENV_DB_PRIMARY_REGION: PRIMARY,
        }
        return RecordService(Settings.from_env(env), botocore_session=(kms or KmsCalls()).session())


@contextmanager
def drill_world(regions: tuple[str, ...] = (PRIMARY, *SECONDARIES)) -> Iterator[DrillWorld]:
    """Servers, schema and roles; an MRK with replicas and the roles' secrets on moto."""
    import boto3
    from moto import mock_aws
    from record_crypto.pg_schema import password_statement, schema_statements

    from offline.emulator.moto_patches import apply_moto_patches
    from offline.emulator.postgres import GlobalDatabase

    apply_moto_patches()
    passwords = {WRITER_ROLE: secrets.token_urlsafe(18), READER_ROLE: secrets.token_urlsafe(18)}
    with mock_aws(), GlobalDatabase(regions[0], regions[1:]) as db:
        primary = db.server(regions[0])
        primary.query(f"CREATE DATABASE {DATABASE}")
        with primary.connect(dbname=DATABASE) as conn, conn.transaction():
            for statement in [*schema_statements(TABLE, database=DATABASE)]:
                conn.execute(statement)
            for role, password in passwords.items():
                conn.execute(password_statement(role, password))
        kms = boto3.client("kms", regions[0])
        key = kms.create_key(MultiRegion=True, Description="records MRK")["KeyMetadata"]
        arns = {regions[0]: key["Arn"]}
        for region in regions[1:]:
            arns[region] = kms.replicate_key(KeyId=key["KeyId"], ReplicaRegion=region)["ReplicaKeyMetadata"]["Arn"]
        secret_arns = {}
        for region in regions:
            client = boto3.client("secretsmanager", region)
            for role, password in passwords.items():
                value = json.dumps({"username": role, "password": password})
                secret_arns[(region, role)] = client.create_secret(Name=f"drill/{role}", SecretString=value)["ARN"]
        yield DrillWorld(db, arns, secret_arns)


def _record(i: int) -> dict[str, Any]:
    return {"name": f"Drill {i}", "country": "NZ", "ssn": f"SECRET-{i:06d}", "card_number": f"4111-{i:08d}"}


def _write_until_ok(world: DrillWorld, region: str, item_id: str, deadline_s: float = 60.0) -> float:
    """Seconds until a write in ``region`` is acknowledged (a new writer: a fresh connection)."""
    started = time.monotonic()
    while True:
        result = world.service(region, WRITER_ROLE).write({"id": item_id, "record": _record(0)})
        if result.get("ok"):
            return time.monotonic() - started
        if time.monotonic() - started > deadline_s:
            raise RuntimeError(f"no write acknowledged in {region} within {deadline_s:.0f}s: {result}")
        time.sleep(0.01)


def _read_back(world: DrillWorld, result: DrillResult, regions: tuple[str, ...], ids: list[str]) -> None:
    """Every acknowledged id in every running region, decrypted by that region's reader (with the
    old primary region's key disabled: a call to it would fail)."""
    import boto3

    boto3.client("kms", result.old_primary).disable_key(KeyId=world.key_arns[result.old_primary].rsplit("/", 1)[1])
    lsn = world.db.writer_lsn()
    for region in regions:
        if region != result.new_primary:
            world.db.wait_replayed(region, lsn)
        calls = KmsCalls()
        reader = world.service(region, READER_ROLE, calls)
        found = sum(1 for item_id in ids if reader.read({"id": item_id}).get("ok"))
        result.reads_ok[region] = found
        result.readers_kms_regions[region] = calls.regions
    boto3.client("kms", result.old_primary).enable_key(KeyId=world.key_arns[result.old_primary].rsplit("/", 1)[1])


def planned_switchover(world: DrillWorld, target: str, writes: int = 50) -> DrillResult:
    db = world.db
    old = db.writer_region
    writer = world.service(old, WRITER_ROLE)
    acked = [f"planned-{i}" for i in range(writes) if writer.write({"id": f"planned-{i}", "record": _record(i)})["ok"]]
    stopped = time.monotonic()  # writes stop here
    lsn = db.writer_lsn()
    catch_up = max(db.wait_replayed(r, lsn) for r in db.servers if r != old)
    db.server(old).stop("fast")  # a clean shutdown sends the last WAL to the standbys
    db.promote(target)
    db.follow(target)
    first_write = _write_until_ok(world, target, "planned-after")
    seconds = time.monotonic() - stopped
    db.rejoin(old, target)
    db.wait_streaming()
    new_writer = world.service(target, READER_ROLE)
    lost = sum(1 for item_id in acked if not new_writer.read({"id": item_id}).get("ok"))
    result = DrillResult("planned switchover", old, target, len(acked), lost, seconds, catch_up)
    result.notes.append(f"the write itself took {first_write:.2f} s; {old} rejoined as a standby of {target}")
    _read_back(world, result, tuple(db.servers), acked)
    return result


def unplanned_failover(world: DrillWorld, load_seconds: float = 1.5, min_writes: int = 10) -> DrillResult:
    db = world.db
    old = db.writer_region
    acked: list[str] = []
    stop = threading.Event()

    def load() -> None:
        writer = world.service(old, WRITER_ROLE)
        i = 0
        while not stop.is_set():
            i += 1
            if writer.write({"id": f"unplanned-{i}", "record": _record(i)}).get("ok"):
                acked.append(f"unplanned-{i}")

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    started = time.monotonic()
    # Under load for load_seconds and at least min_writes acknowledged writes (a slow machine).
    while (time.monotonic() - started < load_seconds or len(acked) < min_writes) and time.monotonic() - started < 120:
        time.sleep(0.05)
    db.server(old).kill()  # SIGKILL the postmaster under write load
    crashed = time.monotonic()
    stop.set()
    thread.join(30)
    target = _most_advanced(db, old)
    db.promote(target)
    db.follow(target)
    _write_until_ok(world, target, "unplanned-after")
    seconds = time.monotonic() - crashed
    reader = world.service(target, READER_ROLE)
    lost = sum(1 for item_id in acked if not reader.read({"id": item_id}).get("ok"))
    result = DrillResult("unplanned failover", old, target, len(acked), lost, seconds, None)
    result.notes.append(
        f"promoted {target} (the standby with the highest replayed LSN); {old} stays down "
        "(a crashed primary is rebuilt from the new one before it rejoins)"
    )
    _read_back(world, result, tuple(r for r in db.servers if r != old), acked)
    return result


def _most_advanced(db: Any, lost: str) -> str:
    from offline.emulator.postgres import PostgresError

    positions = {}
    for region, server in db.servers.items():
        if region != lost and server.running():
            positions[region] = server.query("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")[0][0]
    if not positions:
        raise PostgresError("no standby left to promote")
    return max(sorted(positions), key=lambda r: positions[r])


def run_drills(progress: Callable[[str], None] | None = None) -> list[DrillResult]:
    import logging

    say = progress or (lambda line: None)
    # The refused writes during the failover are expected: keep their log lines off the terminal.
    logging.getLogger("mrk_toolkit").addHandler(logging.NullHandler())
    with drill_world() as world:
        say(f"global database up: {PRIMARY} streaming to {', '.join(SECONDARIES)} ({world.db.root})")
        planned = planned_switchover(world, SECONDARIES[0])
        say(f"planned switchover done: {planned.old_primary} -> {planned.new_primary}, lost {planned.lost}")
        unplanned = unplanned_failover(world)
        say(f"unplanned failover done: {unplanned.old_primary} -> {unplanned.new_primary}, lost {unplanned.lost}")
    return [planned, unplanned]


def render(results: list[DrillResult]) -> str:
    title = "Failover drills: Aurora PostgreSQL store on real PostgreSQL (offline)"
    lines = [title, "=" * len(title)]
    lines += [
        "REAL: PostgreSQL 16.2 servers (pgserver), physical streaming replication, promotion, the runtime "
        "(record_crypto) and the Encryption SDK; EMULATED: KMS and Secrets Manager (moto), Aurora's "
        "managed switchover/failover (done here with pg_ctl promote and primary_conninfo)",
        "",
    ]
    for result in results:
        lines += result.render()
    passed = sum(r.ok for r in results)
    lines.append(f"{passed} passed, {len(results) - passed} failed")
    return "\n".join(lines)


def as_json(results: list[DrillResult]) -> str:
    return json.dumps([{**asdict(r), "ok": r.ok} for r in results], indent=2)
