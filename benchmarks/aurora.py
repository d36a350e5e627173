"""``python -m benchmarks.aurora``: figures of the Aurora PostgreSQL store, all from one run.

* replication lag: a write acknowledged in the primary until its row is visible in a secondary
  (real PostgreSQL streaming replication between local servers: a floor, no network);
* write and read time per record, PostgreSQL store vs DynamoDB store (moto, in-process), the same
  RecordService, the same key (moto KMS), the same records;
* a planned switchover and an unplanned failover (offline/verification/failover_drill.py): seconds to the first write
  in the new primary, acknowledged writes lost.

The full ``make bench`` runs it as section 7 of benchmarks/RESULTS.md (the committed figures). Run
alone, it writes review-out/aurora.md (never a committed file)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine
from benchmarks.moto_env import REPO  # noqa: F401 (puts lambda_src on sys.path)
from lambda_src.record_crypto.settings import (
    ENV_MRK_ARN,
    ENV_REGION,
    ENV_SENSITIVE_FIELDS,
    ENV_TABLE_NAME,
    READER_ROLE,
    WRITER_ROLE,
)

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


def postgres_figures(world: Any, records: int) -> dict[str, Any]:
    from offline.verification.failover_drill import PRIMARY, SECONDARIES

    writer, reader = world.service(PRIMARY, WRITER_ROLE), world.service(SECONDARIES[0], READER_ROLE)
    writer.write({"id": "warm", "record": _record(0)})
    lags: list[float] = []
    standby = world.db.server(SECONDARIES[0]).connect(dbname="records")
    try:

        def write_and_wait(i: int) -> dict[str, Any]:
            result = writer.write({"id": f"pg-{i}", "record": _record(i)})
            acked = time.perf_counter()
            while not standby.execute("SELECT 1 FROM records WHERE id = %s", (f"pg-{i}",)).fetchone():
                time.sleep(0.0002)
            lags.append(time.perf_counter() - acked)
            return result

        _timed(write_and_wait, records)  # lag pass
        writes = _timed(lambda i: writer.write({"id": f"pg-{i}", "record": _record(i)}), records)
        world.db.wait_replayed(SECONDARIES[0], world.db.writer_lsn())
        reader.read({"id": "pg-0"})
        reads = _timed(lambda i: reader.read({"id": f"pg-{i}"}), records)
    finally:
        standby.close()
    return {"lag": _ms(lags), "write": _ms(writes), "read": _ms(reads)}


def dynamodb_figures(world: Any, records: int) -> dict[str, Any]:
    """The DynamoDB store on moto in the same process, same key and records."""
    import boto3
    from record_crypto.service import RecordService
    from record_crypto.settings import Settings

    from offline.verification.failover_drill import PRIMARY, SECONDARIES, SENSITIVE

    table = "mrk-toolkit-records"
    for region in (PRIMARY, SECONDARIES[0]):
        boto3.client("dynamodb", region).create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def service(region: str) -> RecordService:
        env = {
            ENV_REGION: region,
            ENV_TABLE_NAME: table,
            ENV_MRK_ARN: world.key_arns[region],
            ENV_SENSITIVE_FIELDS: ",".join(SENSITIVE),
        }
        return RecordService(Settings.from_env(env))

    writer, reader = service(PRIMARY), service(SECONDARIES[0])
    writer.write({"id": "warm", "record": _record(0)})
    writes = _timed(lambda i: writer.write({"id": f"ddb-{i}", "record": _record(i)}), records)
    primary, secondary = boto3.client("dynamodb", PRIMARY), boto3.client("dynamodb", SECONDARIES[0])
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
    import os

    from offline.verification.failover_drill import drill_world, planned_switchover, unplanned_failover

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ.pop("AWS_ENDPOINT_URL", None)
    logging.getLogger("mrk_toolkit").addHandler(logging.NullHandler())
    with drill_world() as world:
        figures = {"postgres": postgres_figures(world, records), "dynamodb": dynamodb_figures(world, records)}
        figures["planned"] = planned_switchover(world, "us-west-1")
        figures["unplanned"] = unplanned_failover(world)
    return figures


def section(figures: dict[str, Any], records: int, level: str = "##") -> list[str]:
    """The figures as markdown; ``level`` is the heading level of the parts."""
    pg, ddb = figures["postgres"], figures["dynamodb"]
    planned, unplanned = figures["planned"], figures["unplanned"]
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"  # noqa: E731
    lines = [
        "PostgreSQL: real PostgreSQL 16.2 servers on this machine (pgserver), unix sockets, the primary streaming "
        "to two hot standbys; the functions' code (RecordService, PostgresStore, psycopg 3) with moto's KMS in "
        "process. DynamoDB: the same RecordService with the DynamoDB store on moto in process. Neither has a "
        "network: compare within this run, as ratios; a real Aurora or DynamoDB call adds network round trips.",
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
        "| drill | from -> to | acknowledged | lost (RPO, counted) | seconds to the first write in the new primary |",
        "|---|---|---|---|---|",
    ]
    for d in (planned, unplanned):
        lines.append(
            f"| {d.name} | {d.old_primary} -> {d.new_primary} | {d.acknowledged} | {d.lost} | "
            f"{d.seconds_to_first_write:.2f} |"
        )
    lines += [
        "",
        f"Planned: writes stop, standbys caught up with the writer's LSN in {planned.catch_up_seconds:.3f} s, clean "
        "stop, promote, re-point, first write. Unplanned: SIGKILL of the primary's postmaster under write load, "
        "promotion of the most advanced standby. Streaming is asynchronous: a loss above 0 is possible and is counted "
        "as it happens; local sockets make it rare. Aurora's own switchover/failover (cluster role changes, DNS of "
        "the endpoints) is not modelled: these figures measure the toolkit's side (a standby promoted, the "
        "functions reconnecting, the first write resuming), not Aurora's.",
        "",
    ]
    return lines


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
