"""``python -m benchmarks.aurora``: figures of the Aurora PostgreSQL store, all from one run.

* replication lag: a write acknowledged in the primary until its row is visible in a secondary
  (real PostgreSQL streaming replication between local servers: a floor, no network);
* write and read time per record, PostgreSQL store vs DynamoDB store, the same RecordService in this
  process, the same key, the same records; KMS, Secrets Manager and DynamoDB are the emulator's
  (moto behind the emulated IAM, on 127.0.0.1), the PostgreSQL servers local;
* a planned switchover and an unplanned failover (offline/verification/failover_drill.py): seconds to the first write
  in the new primary, acknowledged writes lost;
* the writer's database password rotated under write load (``rotation_under_load``): what callers saw, lost
  writes, the longest pause.

All on the world the failover drills use: the synthesized Aurora assembly stood up on the emulator.

The full ``make bench`` runs it as section 7 of benchmarks/RESULTS.md (the committed figures). Run
alone, it writes review-out/aurora.md (never a committed file)."""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine
from lambda_src.record_crypto.settings import ENV_RECORD_STORE, ENV_REGION, STORE_DYNAMODB

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent / "review-out" / "aurora.md"


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered) * 1000,
        "p95": ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000,
        "max": ordered[-1] * 1000,
    }


def _record(i: int) -> dict[str, Any]:
    return {"name": f"Bench {i}", "country": "NZ", "tier": i % 5, "ssn": f"SECRET-{i:06d}", "card_number": f"4111-{i}"}


def _timed(fn: Any, count: int) -> list[float]:
    out = []
    for i in range(count):
        started = time.perf_counter()
        result = fn(i)
        out.append(time.perf_counter() - started)
        assert result.get("ok"), result
    return out


def _session(world: Any, role_arn: str, *, admin_for: tuple[str, ...] = ()) -> Any:
    """A botocore session on the drills' emulator with the function role's credentials, or the
    administrator's for the services in ``admin_for``."""
    import botocore.session

    aws = world.env.aws
    role = aws.credentials_for(role_arn)
    create = botocore.session.get_session().create_client

    def create_client(service: str, *args: Any, **kwargs: Any) -> Any:
        if service in admin_for:
            keys = {"aws_access_key_id": aws.admin_key, "aws_secret_access_key": "emulator-admin"}
        else:
            keys = {
                "aws_access_key_id": role["AccessKeyId"],
                "aws_secret_access_key": role["SecretAccessKey"],
                "aws_session_token": role["SessionToken"],
            }
        return create(service, *args, **{**kwargs, **keys, "endpoint_url": aws.endpoint_url})

    session = botocore.session.get_session()
    session.create_client = create_client  # type: ignore[method-assign]
    return session


def _service(world: Any, region: str, kind: str, **settings: str) -> Any:
    """The deployed function's code in this process, with its settings (or ``settings`` changed) and
    its role's credentials; a table of another store is the administrator's (no role may use it),
    the key stays the function's (its key policy allows only the functions' roles)."""
    from record_crypto.service import RecordService
    from record_crypto.settings import ENV_DB_HOST, Settings

    spec = world.env.deployment.function(region, kind)
    environment = {**spec.environment, ENV_REGION: region, **settings}
    if kind == "writer" and ENV_DB_HOST in environment and ENV_DB_HOST not in settings:
        # The deployed writer names the global writer endpoint, which the emulator resolves per function
        # (offline/emulator/network.py); in this process it is the current writer's socket it resolves to.
        environment[ENV_DB_HOST] = str(world.db.server(world.db.writer_region).socket_dir)
    session = _session(world, spec.role_arn, admin_for=("dynamodb",) if settings else ())
    return RecordService(Settings.from_env(environment), botocore_session=session)


def postgres_figures(world: Any, records: int) -> dict[str, Any]:
    from offline.verification.failover_drill import PRIMARY, SECONDARIES

    primary, secondary = PRIMARY, SECONDARIES[0]
    writer, reader = _service(world, primary, "writer"), _service(world, secondary, "reader")
    writer.write({"id": "warm", "record": _record(0)})
    lags: list[float] = []
    database = world.env.database()
    standby = world.db.server(secondary).connect(dbname=database.name)
    try:

        def write_and_wait(i: int) -> dict[str, Any]:
            result = writer.write({"id": f"pg-{i}", "record": _record(i)})
            acked = time.perf_counter()
            if not result.get("ok"):  # never wait for a row that was not written
                raise RuntimeError(f"write pg-{i} refused: {result.get('error')}")
            while not standby.execute(f"SELECT 1 FROM {database.table} WHERE id = %s", (f"pg-{i}",)).fetchone():
                time.sleep(0.0002)
            lags.append(time.perf_counter() - acked)
            return result

        _timed(write_and_wait, records)  # lag pass
        writes = _timed(lambda i: writer.write({"id": f"pg-{i}", "record": _record(i)}), records)
        world.db.wait_replayed(secondary, world.db.writer_lsn())
        reader.read({"id": "pg-0"})
        reads = _timed(lambda i: reader.read({"id": f"pg-{i}"}), records)
    finally:
        standby.close()
    return {"lag": _ms(lags), "write": _ms(writes), "read": _ms(reads)}


def rotation_under_load(world: Any, load_seconds: float = 1.0, deadline_s: float = 60.0) -> dict[str, Any]:
    """The writer's database secret rotated through Secrets Manager (``RotateSecret``: the emulator invokes
    the deployed rotation function, lambda_src/rotation.py, for createSecret, setSecret, testSecret and
    finishSecret, as Secrets Manager does), then the writer role's open sessions ended (as a restart or an
    idle timeout ends them), while the primary region's writer keeps writing: what callers saw, what was
    lost, the longest pause between two acknowledged writes, and how long the rotation took."""
    import threading

    from record_crypto.settings import ENV_DB_SECRET_ARN, WRITER_ROLE

    from offline.verification.failover_drill import PRIMARY

    writer, db = _service(world, PRIMARY, "writer"), world.env.database()
    secret = world.env.deployment.function(PRIMARY, "writer").environment[ENV_DB_SECRET_ARN]
    manager = world.env.aws.client("secretsmanager", PRIMARY)
    writer.write({"id": "rotation-warm", "record": _record(0)})
    results: list[tuple[str, float, dict[str, Any]]] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            item_id = f"rotation-{i}"
            results.append((item_id, time.perf_counter(), writer.write({"id": item_id, "record": _record(i)})))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        time.sleep(load_seconds / 4)
        started = time.perf_counter()
        version = manager.rotate_secret(SecretId=secret)["VersionId"]
        while _current_version(manager, secret) != version:
            if time.perf_counter() - started > deadline_s:
                raise AssertionError(f"RotateSecret: version {version} not AWSCURRENT within {deadline_s:.0f} s")
            time.sleep(0.01)
        finished = time.perf_counter()
        db.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{WRITER_ROLE}'")
        time.sleep(load_seconds / 2)
    finally:
        stop.set()
        thread.join(30)
    return _rotation_figures(results, db, started, finished)


def _current_version(manager: Any, secret: str) -> str:
    stages = manager.describe_secret(SecretId=secret)["VersionIdsToStages"]
    return next(v for v, s in stages.items() if "AWSCURRENT" in s)


def _rotation_figures(
    results: list[tuple[str, float, dict[str, Any]]], db: Any, started: float, finished: float
) -> dict[str, Any]:
    acked = [(item_id, at) for item_id, at, r in results if r.get("ok")]
    refused = [
        r["error"]["type"] + (" (retryable)" if r["error"].get("retryable") else "")
        for _, _, r in results
        if not r.get("ok")
    ]
    stored = {row[0] for row in db.admin(f"SELECT id FROM {db.table} WHERE id LIKE 'rotation-%'")}
    times = [at for _, at in acked]
    gaps = [b - a for a, b in itertools.pairwise(times) if b >= started]  # pauses that ended after the change
    return {
        "acknowledged": len(acked),
        "refused": {kind: refused.count(kind) for kind in sorted(set(refused))},
        "lost": sum(item_id not in stored for item_id, _ in acked),
        "longest_pause_ms": max(gaps, default=0.0) * 1000,
        "first_ack_after_change_ms": min((at - finished for at in times if at > finished), default=float("nan")) * 1000,
        "rotation_seconds": finished - started,
    }


def dynamodb_figures(world: Any, records: int) -> dict[str, Any]:
    """The DynamoDB store on the same emulator, same key and records (a plain table per region, named
    as the deployed table: the encryption context the key policy requires names it)."""
    from offline.verification.failover_drill import PRIMARY, SECONDARIES

    primary_region, secondary_region = PRIMARY, SECONDARIES[0]
    table = world.env.database().table
    for region in (primary_region, secondary_region):
        world.env.client("dynamodb", region).create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    dynamodb = {ENV_RECORD_STORE: STORE_DYNAMODB}
    writer = _service(world, primary_region, "writer", **dynamodb)
    reader = _service(world, secondary_region, "reader", **dynamodb)
    writer.write({"id": "warm", "record": _record(0)})
    writes = _timed(lambda i: writer.write({"id": f"ddb-{i}", "record": _record(i)}), records)
    primary, secondary = world.env.client("dynamodb", primary_region), world.env.client("dynamodb", secondary_region)
    for i in range(records):  # replicated by copying, as global tables would (not timed)
        item = primary.get_item(TableName=table, Key={"id": {"S": f"ddb-{i}"}})["Item"]
        secondary.put_item(TableName=table, Item=item)
    reader.read({"id": "ddb-0"})
    reads = _timed(lambda i: reader.read({"id": f"ddb-{i}"}), records)
    return {"write": _ms(writes), "read": _ms(reads)}


def _machine() -> str:
    return ", ".join(f"{k} {v}" for k, v in machine.describe().items())


def run(records: int) -> dict[str, Any]:
    import logging

    from cli_support import quiet_jsii
    from offline.verification.failover_drill import SECONDARIES, drill_world, planned_switchover, unplanned_failover

    quiet_jsii()  # the drills' world is synthesized in this process
    logging.getLogger("mrk_toolkit").addHandler(logging.NullHandler())
    with drill_world() as world:
        figures = {"postgres": postgres_figures(world, records), "dynamodb": dynamodb_figures(world, records)}
        figures["rotation"] = rotation_under_load(world)
        figures["planned"] = planned_switchover(world, SECONDARIES[0])
        figures["unplanned"] = unplanned_failover(world)
    return figures


def section(figures: dict[str, Any], records: int, level: str = "##") -> list[str]:
    """The figures as markdown; ``level`` is the heading level of the parts."""
    pg, ddb = figures["postgres"], figures["dynamodb"]
    planned, unplanned = figures["planned"], figures["unplanned"]
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"  # noqa: E731
    lines = [
        "PostgreSQL: real PostgreSQL 16.2 servers on this machine (pgserver), stood up from the synthesized Aurora "
        "assembly, unix sockets, the primary streaming to two hot standbys; the functions' code (RecordService, "
        "PostgresStore, psycopg 3) in this process, KMS and Secrets Manager on the emulator (moto behind the "
        "emulated IAM, 127.0.0.1). DynamoDB: the same RecordService with the DynamoDB store, tables on the same "
        "emulator. No real network: compare within this run, as ratios; a real Aurora or DynamoDB call adds "
        "network round trips.",
        "",
        f"{level} Per record ({records} records, signing suite, data-key cache off; median / p95 / max ms)",
        "",
        "| | PostgreSQL store | DynamoDB store (moto) | PostgreSQL / DynamoDB (median) |",
        "|---|---|---|---|",
    ]
    for op in ("write", "read"):
        a, b = pg[op], ddb[op]
        lines.append(
            f"| {op} | {a['median']:.2f} / {a['p95']:.2f} / {a['max']:.2f} | "
            f"{b['median']:.2f} / {b['p95']:.2f} / {b['max']:.2f} | {ratio(a['median'], b['median'])} |"
        )
    lag = pg["lag"]
    lines += [
        "",
        f"{level} Replication lag (write acknowledged in us-east-2 until the row is visible in us-west-1)",
        "",
        f"median {lag['median']:.2f} ms, p95 {lag['p95']:.2f} ms, max {lag['max']:.2f} ms over {records} writes "
        f"({ratio(lag['median'], pg['write']['median'])} of the write time). Local sockets: a floor, not a "
        "cross-region figure (Aurora global databases replicate typically under a second).",
        "",
        f"{level} Failover (offline/verification/failover_drill.py, the same run)",
        "",
        "| drill | from -> to | acknowledged | lost (RPO, counted) | seconds to the first write in the new primary "
        "| promotion -> first write of the new primary region's writer (s) | that writer through the change |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in (planned, unplanned):
        promotion = getattr(d, "promotion_to_first_write", None)
        follow = getattr(d, "follow", None) or {}
        lines.append(
            f"| {d.name} | {d.old_primary} -> {d.new_primary} | {d.acknowledged} | {d.lost} | "
            f"{d.seconds_to_first_write:.2f} | {'n/a' if promotion is None else f'{promotion:.3f}'} | "
            f"{', '.join(f'{k} {n}' for k, n in follow.items()) or 'n/a'} |"
        )
    lines += _every_writer_lines(planned, unplanned)
    lines += [
        "",
        f"Planned: writes stop, standbys caught up with the writer's LSN in {planned.catch_up_seconds:.3f} s, clean "
        "stop, promote, re-point, first write. Unplanned: SIGKILL of the primary's postmaster under write load, "
        "promotion of the most advanced standby. In both, the deployed writer of every region (its environment "
        "unchanged: no deploy) writes fresh items through the change, through the unchanged global writer endpoint "
        "(over the VPC peering): refused with retryable DatabaseUnavailable or ReadOnlyRegion until the endpoint "
        "names the promoted writer, then acknowledged; every acknowledged one is there once, no refused one "
        "was written. Streaming is asynchronous: a loss above 0 is possible and is counted "
        "as it happens; local sockets make it rare. Aurora's own switchover/failover (cluster role changes, the "
        "global endpoint's DNS moving, emulated here as the name re-pointed at the promotion) is not modelled in "
        "time: these figures measure the toolkit's side (a standby promoted, the functions reconnecting, the "
        "first write resuming), not Aurora's.",
        "",
        *_rotation_lines(figures.get("rotation"), level),
    ]
    return lines


def _every_writer_lines(*drills: Any) -> list[str]:
    """Promotion -> first acknowledged write of EVERY region's writer (the global writer endpoint)."""
    rows = [
        f"| {d.name} | {region}{' (new primary)' if region == d.new_primary else ''} | {seconds:.3f} | "
        f"{', '.join(f'{k} {n}' for k, n in d.follow_by_region.get(region, {}).items())} |"
        for d in drills
        for region, seconds in (getattr(d, "promotion_to_first_write_by_region", None) or {}).items()
    ]
    if not rows:
        return []
    return [
        "",
        "Every region's writer through the global writer endpoint (the same drills):",
        "",
        "| drill | writer of | promotion -> first acknowledged write (s) | through the change |",
        "|---|---|---|---|",
        *rows,
    ]


def _rotation_lines(rotation: dict[str, Any] | None, level: str) -> list[str]:
    if not rotation:
        return []
    refused = ", ".join(f"{n} {kind}" for kind, n in rotation["refused"].items()) or "none"
    return [
        f"{level} The writer's database password rotated under write load (the same run)",
        "",
        "`RotateSecret` on the writer's secret (the emulator runs the deployed rotation function, "
        "lambda_src/rotation.py, through its four steps, as Secrets Manager does), then the writer role's open "
        "sessions ended (as a restart or an idle timeout ends them), while the primary region's writer writes "
        "without pause (benchmarks/aurora.py `rotation_under_load`; the function side: a refused login retries "
        "with the pending and then the fresh current secret, bounded).",
        "",
        "| acknowledged | refused (what callers saw) | lost | longest pause between two acknowledged writes (ms) "
        "| RotateSecret -> new version AWSCURRENT (s) | sessions ended -> first acknowledged write (ms) |",
        "|---|---|---|---|---|---|",
        f"| {rotation['acknowledged']} | {refused} | {rotation['lost']} | {rotation['longest_pause_ms']:.1f} | "
        f"{rotation['rotation_seconds']:.2f} | {rotation['first_ack_after_change_ms']:.1f} |",
        "",
    ]


def render(figures: dict[str, Any], records: int, command: str) -> str:
    return "\n".join(
        [
            "# Aurora PostgreSQL store: figures from one run",
            "",
            f"Command: `{command}` ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC). Machine: {_machine()}.",
            "",
            *section(figures, records),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.aurora", description=__doc__)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    command = "python -m benchmarks.aurora" + (f" --records {args.records}" if args.records != 200 else "")
    figures = run(args.records)
    text = render(figures, args.records, command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
