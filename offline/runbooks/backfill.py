"""`python -m offline backfill --field F`: give the records written before beacon field F existed their
beacon (README "Adding a beacon field"), then mark F done in each region for the finders.

How, per pass over the primary region's records (a paged scan of id, version and whether the item carries
``_beacon_<F>``, ``--page-size`` items a page, at most ``--rate`` records a second):

* every record is read through the primary region's **reader function** (decrypted and authenticated
  whole: a beacon a table writer planted on a record is unsigned, so that record is refused with
  ``TamperedRecord`` and reported, never rewritten: nothing launders a planted beacon into a signed one);
* a record whose authenticated value holds F but whose item has no beacon is written again through the
  primary region's **writer function** with ``expected_version`` (the writer signs the beacon as on any
  write); a concurrent write wins (``VersionConflict``: that writer computed the beacon itself, the next
  pass checks it), a deleted record is skipped;
* the record's (id, version) is remembered, so a later pass reads only what changed since.

Passes repeat until one rewrites nothing and meets no conflict (at most ``--passes``). Then, per region,
once its replica holds every record at (at least) the version the pass saw, the SSM parameter
``/<stackPrefix>/beacon-backfill/<region>/<F>`` is written (settings.beacon_backfill_state): the finders of
that region answer ``"complete": true`` within a minute (their cache). The state is per region because the
index of a region is complete only once replication has brought the rewritten records there. A refused
record (tampered, format 1), a region that did not catch up, or passes that never settle leave the state
unwritten: the finders keep saying ``"complete": false``; run the command again (it is idempotent).

Credentials (an account, or `python -m offline up`'s): cloudformation:DescribeStacks (the functions' names),
lambda:GetFunctionConfiguration and lambda:InvokeFunction on the primary region's writer and reader,
dynamodb:Scan on each region's replica (the Aurora store: ssm:GetParametersByPath on the discovery path and
secretsmanager:GetSecretValue on the reader's database secret, from a host that reaches the clusters),
ssm:PutParameter on the backfill path. No KMS right: decrypting and
signing stay inside the functions, with their roles (the function invocation route).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from lambda_src.record_crypto.settings import (
    ENV_BEACON_FIELDS,
    PARAM_DB_NAME,
    PARAM_DB_PORT,
    PARAM_DB_READER_ENDPOINT,
    PARAM_DB_READER_SECRET_ARN,
    PARAM_TABLE_NAME,
    BeaconField,
    beacon_backfill_path,
    beacon_backfill_state,
    discovery_path,
    parse_beacon_fields,
)

DEFAULT_PAGE_SIZE = 100
DEFAULT_RATE = 20.0  # records a second: each is a reader invocation (and, rewritten, a writer's)
DEFAULT_PASSES = 3


@dataclass(frozen=True)
class Stored:
    """One record as the scan sees it, without decrypting anything."""

    item_id: str
    version: int
    has_beacon: bool


class Store(Protocol):
    """Where the scan reads (the records of one region)."""

    def records(self, region: str, beacon_field: BeaconField, page_size: int) -> Iterator[Stored]: ...


class Functions(Protocol):
    """The primary region's reader and writer (their results, as the functions return them)."""

    def read(self, item_id: str) -> dict[str, Any]: ...

    def write(self, event: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class Outcome:
    beacon_field: str
    passes: int = 0
    read: int = 0
    rewritten: int = 0
    without_value: int = 0
    conflicts: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # id -> why
    seen: dict[str, tuple[int, bool]] = field(default_factory=dict)  # id -> (version, holds the field)
    settled: bool = False
    marked: list[str] = field(default_factory=list)  # regions whose state was written
    lagging: dict[str, int] = field(default_factory=dict)  # region -> records not yet replicated

    @property
    def complete(self) -> bool:
        return self.settled and not self.refused and not self.lagging


class Pacer:
    """At most ``rate`` records a second (the functions' concurrency and KMS quotas are shared with traffic)."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval, self.sleep, self.next = 1.0 / rate, sleep, time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if now < self.next:
            self.sleep(self.next - now)
        self.next = max(now, self.next) + self.interval


def run_pass(
    beacon_field: BeaconField,
    store: Store,
    functions: Functions,
    region: str,
    outcome: Outcome,
    pacer: Pacer,
    page_size: int,
) -> tuple[int, int]:
    """One pass over ``region``'s records: (rewritten, conflicts)."""
    rewritten = conflicts = 0
    for stored in store.records(region, beacon_field, page_size):
        if outcome.seen.get(stored.item_id, (None, False))[0] == stored.version:
            continue  # read and settled at this version by an earlier pass
        pacer.wait()
        outcome.read += 1
        result = functions.read(stored.item_id)
        if not result.get("ok"):
            kind = result.get("error", {}).get("type", "FunctionError")
            if kind != "NotFound":  # NotFound: deleted since the scan
                outcome.refused[stored.item_id] = kind
            continue
        outcome.refused.pop(stored.item_id, None)
        if result.get("format") != 2:
            outcome.refused[stored.item_id] = "format 1: its plaintext attributes are not signed (rewrite it yourself)"
            continue
        holds = beacon_field.name in result["record"]
        if not holds:
            outcome.without_value += 1
        if not holds or stored.has_beacon:  # authenticated whole: a beacon it carries is the writer's
            outcome.seen[stored.item_id] = (stored.version, holds)
            continue
        event = {
            "id": stored.item_id,
            "record": {**result["record"], **result.get("unsigned", {})},
            "expected_version": result["version"],
        }
        written = functions.write(event)
        if written.get("ok"):
            rewritten += 1
            outcome.seen[stored.item_id] = (int(written["version"]), True)
        elif written.get("error", {}).get("type") == "VersionConflict":
            conflicts += 1  # a newer write won; the next pass reads it
        else:
            outcome.refused[stored.item_id] = written.get("error", {}).get("type", "FunctionError")
    outcome.rewritten += rewritten
    outcome.conflicts += conflicts
    return rewritten, conflicts


def backfill(
    beacon_field: BeaconField,
    *,
    store: Store,
    functions: Functions,
    primary: str,
    regions: Iterable[str],
    mark: Callable[[str], None],
    page_size: int = DEFAULT_PAGE_SIZE,
    rate: float = DEFAULT_RATE,
    passes: int = DEFAULT_PASSES,
    replication_timeout_s: float = 120.0,
    progress: Callable[[str], None] = lambda _line: None,
) -> Outcome:
    """Rewrite through the functions until a pass settles, then mark each region once it has caught up."""
    outcome, pacer = Outcome(beacon_field.name), Pacer(rate)
    while outcome.passes < passes:
        outcome.passes += 1
        rewritten, conflicts = run_pass(beacon_field, store, functions, primary, outcome, pacer, page_size)
        progress(
            f"pass {outcome.passes} in {primary}: {outcome.read} read so far, {rewritten} rewritten, "
            f"{conflicts} concurrent writes won, {len(outcome.refused)} refused"
        )
        if rewritten == 0 and conflicts == 0:
            outcome.settled = True
            break
    if not outcome.settled or outcome.refused:
        return outcome
    for region in regions:
        behind = _wait_replicated(beacon_field, store, region, outcome, page_size, replication_timeout_s)
        if behind:
            outcome.lagging[region] = behind
            progress(f"{region}: {behind} records not replicated yet; not marked")
            continue
        mark(region)
        outcome.marked.append(region)
        progress(f"{region}: marked complete")
    return outcome


def _wait_replicated(
    beacon_field: BeaconField, store: Store, region: str, outcome: Outcome, page_size: int, timeout_s: float
) -> int:
    """How many records ``region`` still lacks (at the version the pass settled, or the beacon) at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        there = {s.item_id: s for s in store.records(region, beacon_field, page_size)}
        behind = sum(
            1
            for item_id, (version, holds) in outcome.seen.items()
            if item_id not in there or there[item_id].version < version or (holds and not there[item_id].has_beacon)
        )
        if behind == 0 or time.monotonic() > deadline:
            return behind
        time.sleep(1.0)


# -- the deployment (an account, or `python -m offline up`) ----------------------------------------
class DynamoDbScan:
    """Each region's replica of the global table, scanned for id, version and the field's beacon only."""

    def __init__(self, client: Callable[[str, str], Any], table: str) -> None:
        self.client, self.table = client, table

    def records(self, region: str, beacon_field: BeaconField, page_size: int) -> Iterator[Stored]:
        pages = (
            self.client("dynamodb", region)
            .get_paginator("scan")
            .paginate(
                TableName=self.table,
                ProjectionExpression="#i, #v, #b",
                ExpressionAttributeNames={"#i": "id", "#v": "_version", "#b": beacon_field.attribute},
                ConsistentRead=True,
                PaginationConfig={"PageSize": page_size},
            )
        )
        for page in pages:
            for item in page.get("Items", []):
                version = int(item.get("_version", {}).get("N", "0"))
                yield Stored(item["id"]["S"], version, beacon_field.attribute in item)


class PostgresScan:
    """Each region's cluster of the Aurora PostgreSQL store, through its reader endpoint with the reader
    function's database login (records_reader: SELECT only), as the region's discovery parameters name
    them. From a host that reaches the clusters: inside the VPC on an account (or through a tunnel; the
    endpoint parameters say where), on this machine with `python -m offline up` (a local socket)."""

    def __init__(self, client: Callable[[str, str], Any], stack_prefix: str) -> None:
        self.client, self.stack_prefix = client, stack_prefix

    def _session(self, region: str) -> Any:
        import json

        import psycopg

        pages = self.client("ssm", region).get_paginator("get_parameters_by_path")
        path = discovery_path(self.stack_prefix, region)
        found = {
            p["Name"].rsplit("/", 1)[1]: p["Value"] for page in pages.paginate(Path=path) for p in page["Parameters"]
        }
        secret = self.client("secretsmanager", region).get_secret_value(SecretId=found[PARAM_DB_READER_SECRET_ARN])
        login = json.loads(secret["SecretString"])
        self.table = found[PARAM_TABLE_NAME]
        return psycopg.connect(
            host=found[PARAM_DB_READER_ENDPOINT],
            port=int(found[PARAM_DB_PORT]),
            dbname=found[PARAM_DB_NAME],
            user=login["username"],
            password=login["password"],
            autocommit=True,
        )

    def records(self, region: str, beacon_field: BeaconField, page_size: int) -> Iterator[Stored]:
        from psycopg import sql

        with self._session(region) as conn:
            query = sql.SQL("SELECT id, version, {} IS NOT NULL FROM {} WHERE id > %s ORDER BY id LIMIT %s").format(
                sql.Identifier(beacon_field.column), sql.Identifier(self.table)
            )
            last = ""
            while True:
                rows = conn.execute(query, (last, page_size)).fetchall()
                for item_id, version, has_beacon in rows:
                    yield Stored(str(item_id), int(version), bool(has_beacon))
                if len(rows) < page_size:
                    return
                last = str(rows[-1][0])


class InvokedFunctions:
    """The primary region's reader and writer, invoked by name (``lambda invoke``)."""

    def __init__(self, client: Callable[[str, str], Any], region: str, names: dict[str, str]) -> None:
        self.lambda_, self.names = client("lambda", region), names

    def _invoke(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        import json

        reply = self.lambda_.invoke(FunctionName=self.names[kind], Payload=json.dumps(event).encode())
        body = json.loads(reply["Payload"].read() or b"{}")
        if reply.get("FunctionError") or not isinstance(body, dict):
            return {"ok": False, "error": {"type": "FunctionError"}}
        return body

    def read(self, item_id: str) -> dict[str, Any]:
        return self._invoke("reader", {"id": item_id})

    def write(self, event: dict[str, Any]) -> dict[str, Any]:
        return self._invoke("writer", event)

    def beacon_fields(self, sensitive: tuple[str, ...]) -> tuple[BeaconField, ...]:
        """The writer's beacon fields, as deployed (its environment)."""
        config = self.lambda_.get_function_configuration(FunctionName=self.names["writer"])
        raw = config.get("Environment", {}).get("Variables", {}).get(ENV_BEACON_FIELDS, "")
        return tuple(parse_beacon_fields(raw, sensitive)) if raw else ()


def function_names(client: Callable[[str, str], Any], stack_prefix: str, region: str) -> dict[str, str]:
    stack = client("cloudformation", region).describe_stacks(StackName=f"{stack_prefix}-Functions-{region}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0].get("Outputs", [])}
    return {"writer": outputs["WriterFunctionName"], "reader": outputs["ReaderFunctionName"]}


def marker(client: Callable[[str, str], Any], stack_prefix: str, beacon_field: BeaconField) -> Callable[[str], None]:
    """Writes the field's backfill state in a region (what its finder reads)."""

    def mark(region: str) -> None:
        client("ssm", region).put_parameter(
            Name=f"{beacon_backfill_path(stack_prefix, region)}/{beacon_field.name}",
            Value=beacon_backfill_state(beacon_field),
            Type="String",
            Overwrite=True,
            Description="mrk-toolkit: the backfill of this beacon field finished in this region",
        )

    return mark


def render(outcome: Outcome) -> list[str]:
    lines = [
        f"backfill of {outcome.beacon_field}: {outcome.passes} passes, {outcome.read} records read, "
        f"{outcome.rewritten} rewritten, {outcome.without_value} without a value, "
        f"{outcome.conflicts} concurrent writes won",
    ]
    lines += [f"REFUSED {item_id}: {why}" for item_id, why in sorted(outcome.refused.items())]
    if not outcome.settled:
        lines.append("not settled: writes kept coming in every pass; run it again")
    lines += [f"{region}: {n} records not replicated yet: run it again" for region, n in outcome.lagging.items()]
    if outcome.marked:
        lines.append(f'complete in {", ".join(outcome.marked)}: the finders there answer "complete": true')
    if outcome.refused:
        lines.append(
            "not marked complete: a refused record may hold the value and is not in the index; see README "
            "'Adding a beacon field' (restore it from a backup, or delete it), then run it again"
        )
    return lines
