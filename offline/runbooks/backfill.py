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

With tenants (README "Tenants", "Beacons with tenants"), each record is read and rewritten as its tenant:
the tenant is what the stored item says (``_tenant``, signed with the record, and the reader compares it
with the event's before any KMS call), and the record goes through the reader and writer of the tenant's
first region (``tenants``: tenant id -> its regions, first = where it is rewritten), with ``"tenant"`` in
both events. Each pass scans region by region and takes, in each, the records whose tenant is rewritten
there (scan, read and write in one region: no replication lag between them; the Aurora store: the write goes
through the global writer endpoint to the primary's cluster, and a rewrite read from a replica still behind
it is a VersionConflict, read again by the next pass). A record without a tenant,
of a tenant not in the config or of a tenant with no region is refused and reported, never guessed. A
region is marked when every record of every tenant it serves (the config's tenants with a key there) is
backfilled and replicated there: a refusal blocks the regions of the refused record's tenant (every
region, when its tenant is unknown); a tenant served elsewhere does not hold a region back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lambda_src.record_crypto.records import TENANT_ATTRIBUTE
from lambda_src.record_crypto.settings import (
    ENV_BEACON_FIELDS,
    PARAM_DB_NAME,
    PARAM_DB_PORT,
    PARAM_DB_READER_ENDPOINT,
    PARAM_DB_READER_SECRET_ARN,
    PARAM_TABLE_NAME,
    TENANT_KEY,
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
    tenant: str | None = None  # the stored item's ``_tenant`` (deployments with tenants)


class Store(Protocol):
    """Where the scan reads (the records of one region)."""

    def records(self, region: str, beacon_field: BeaconField, page_size: int) -> Iterator[Stored]: ...


class Functions(Protocol):
    """A region's reader and writer (their results, as the functions return them)."""

    def read(self, item_id: str, tenant: str | None = None) -> dict[str, Any]: ...

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
    tenant_of: dict[str, str | None] = field(default_factory=dict)  # id -> its stored tenant (with tenants)
    blocked: list[str] = field(default_factory=list)  # regions not marked: a refused record of a tenant there

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
    tenants: Mapping[str, Sequence[str]] | None = None,
    refuse_unplaced: bool = True,
) -> tuple[int, int]:
    """One pass over ``region``'s records: (rewritten, conflicts). With ``tenants``, only the records whose
    tenant is rewritten in ``region`` (its first region); one whose tenant has no region here or anywhere is
    refused (in the pass over the region where ``refuse_unplaced``: the primary's)."""
    rewritten = conflicts = 0
    for stored in store.records(region, beacon_field, page_size):
        tenant = stored.tenant
        if tenants is not None:
            home = _home(tenants, tenant)
            if home is None:
                if refuse_unplaced:
                    outcome.tenant_of[stored.item_id] = tenant
                    outcome.refused[stored.item_id] = (
                        "no tenant stored on it" if tenant is None else f"tenant '{tenant}' has no region in the config"
                    )
                continue
            if home != region:
                continue
            outcome.tenant_of[stored.item_id] = tenant
        if outcome.seen.get(stored.item_id, (None, False))[0] == stored.version:
            continue  # read and settled at this version by an earlier pass
        pacer.wait()
        outcome.read += 1
        result = functions.read(stored.item_id) if tenants is None else functions.read(stored.item_id, tenant)
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
            **({TENANT_KEY: tenant} if tenants is not None else {}),
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
    tenants: Mapping[str, Sequence[str]] | None = None,
    functions_in: Callable[[str], Functions] | None = None,
) -> Outcome:
    """Rewrite through the functions until a pass settles, then mark each region once it has caught up.

    Without ``tenants``: the primary region's records through ``functions`` (the primary's). With ``tenants``
    (tenant id -> its regions, first = where its records are rewritten): each region's records of the
    tenants rewritten there through ``functions_in(region)``, as their tenant."""
    regions = tuple(regions)
    outcome, pacer = Outcome(beacon_field.name), Pacer(rate)
    if tenants is not None and functions_in is None:
        raise ValueError("backfill with tenants needs functions_in (each region's reader and writer)")
    while outcome.passes < passes:
        outcome.passes += 1
        if tenants is None:
            rewritten, conflicts = run_pass(beacon_field, store, functions, primary, outcome, pacer, page_size)
            where = primary
        else:
            assert functions_in is not None
            rewritten, conflicts = _tenants_pass(
                beacon_field, store, functions_in, primary, regions, outcome, pacer, page_size, tenants
            )
            where = ", ".join(regions)
        progress(
            f"pass {outcome.passes} in {where}: {outcome.read} read so far, {rewritten} rewritten, "
            f"{conflicts} concurrent writes won, {len(outcome.refused)} refused"
        )
        if rewritten == 0 and conflicts == 0:
            outcome.settled = True
            break
    if not outcome.settled or (outcome.refused and tenants is None):
        return outcome
    for region in regions:
        served = None if tenants is None else {t for t, where_ in tenants.items() if region in where_}
        if served is not None and any(
            outcome.tenant_of.get(item_id) not in tenants or outcome.tenant_of.get(item_id) in served
            for item_id in outcome.refused
        ):
            outcome.blocked.append(region)
            progress(f"{region}: a refused record of a tenant served here (or of no known tenant); not marked")
            continue
        behind = _wait_replicated(beacon_field, store, region, outcome, page_size, replication_timeout_s, served)
        if behind:
            outcome.lagging[region] = behind
            progress(f"{region}: {behind} records not replicated yet; not marked")
            continue
        mark(region)
        outcome.marked.append(region)
        progress(f"{region}: marked complete")
    return outcome


def _tenants_pass(
    beacon_field: BeaconField,
    store: Store,
    functions_in: Callable[[str], Functions],
    primary: str,
    regions: tuple[str, ...],
    outcome: Outcome,
    pacer: Pacer,
    page_size: int,
    tenants: Mapping[str, Sequence[str]],
) -> tuple[int, int]:
    """One pass with tenants: in each region, the records of the tenants rewritten there (their first region),
    through that region's functions; a record of no known tenant refused in the primary's scan."""
    rewritten = conflicts = 0
    for region in regions:
        r, c = run_pass(
            beacon_field, store, functions_in(region), region, outcome, pacer, page_size, tenants, region == primary
        )
        rewritten, conflicts = rewritten + r, conflicts + c
    return rewritten, conflicts


def _home(tenants: Mapping[str, Sequence[str]], tenant: str | None) -> str | None:
    """The region where ``tenant``'s records are read and rewritten (its first), None if it has none."""
    regions = tenants.get(tenant, ()) if tenant is not None else ()
    return regions[0] if regions else None


def _wait_replicated(
    beacon_field: BeaconField,
    store: Store,
    region: str,
    outcome: Outcome,
    page_size: int,
    timeout_s: float,
    served: set[str] | None = None,
) -> int:
    """How many records ``region`` still lacks (at the version the pass settled, or the beacon) at the deadline;
    with ``served`` (the tenants with a key in ``region``), of those tenants only."""
    deadline = time.monotonic() + timeout_s
    while True:
        there = {s.item_id: s for s in store.records(region, beacon_field, page_size)}
        behind = sum(
            1
            for item_id, (version, holds) in outcome.seen.items()
            if (served is None or outcome.tenant_of.get(item_id) in served)
            and (item_id not in there or there[item_id].version < version or (holds and not there[item_id].has_beacon))
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
                ProjectionExpression="#i, #v, #b, #t",
                ExpressionAttributeNames={
                    "#i": "id",
                    "#v": "_version",
                    "#b": beacon_field.attribute,
                    "#t": TENANT_ATTRIBUTE,
                },
                ConsistentRead=True,
                PaginationConfig={"PageSize": page_size},
            )
        )
        for page in pages:
            for item in page.get("Items", []):
                version = int(item.get("_version", {}).get("N", "0"))
                tenant = item.get(TENANT_ATTRIBUTE, {}).get("S")
                yield Stored(item["id"]["S"], version, beacon_field.attribute in item, tenant)


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

        from lambda_src.record_crypto.postgres_store import ATTRIBUTES_COLUMN

        with self._session(region) as conn:
            query = sql.SQL(
                "SELECT id, version, {} IS NOT NULL, {} ->> %s FROM {} WHERE id > %s ORDER BY id LIMIT %s"
            ).format(sql.Identifier(beacon_field.column), sql.Identifier(ATTRIBUTES_COLUMN), sql.Identifier(self.table))
            last = ""
            while True:
                rows = conn.execute(query, (TENANT_ATTRIBUTE, last, page_size)).fetchall()
                for item_id, version, has_beacon, tenant in rows:
                    yield Stored(str(item_id), int(version), bool(has_beacon), tenant)
                if len(rows) < page_size:
                    return
                last = str(rows[-1][0])


class InvokedFunctions:
    """A region's reader and writer, invoked by name (``lambda invoke``)."""

    def __init__(self, client: Callable[[str, str], Any], region: str, names: dict[str, str]) -> None:
        self.lambda_, self.names = client("lambda", region), names

    def _invoke(self, kind: str, event: dict[str, Any]) -> dict[str, Any]:
        import json

        reply = self.lambda_.invoke(FunctionName=self.names[kind], Payload=json.dumps(event).encode())
        body = json.loads(reply["Payload"].read() or b"{}")
        if reply.get("FunctionError") or not isinstance(body, dict):
            return {"ok": False, "error": {"type": "FunctionError"}}
        return body

    def read(self, item_id: str, tenant: str | None = None) -> dict[str, Any]:
        return self._invoke("reader", {"id": item_id, **({TENANT_KEY: tenant} if tenant is not None else {})})

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
    lines += [f"{region}: not marked: a refused record of a tenant served there" for region in outcome.blocked]
    if outcome.marked:
        lines.append(f'complete in {", ".join(outcome.marked)}: the finders there answer "complete": true')
    if outcome.refused:
        lines.append(
            "not marked complete: a refused record may hold the value and is not in the index; see README "
            "'Adding a beacon field' (restore it from a backup, or delete it), then run it again"
        )
    return lines
