"""Failover drills for the Aurora PostgreSQL store, in the world the Aurora main job runs in: the
synthesized Aurora assembly stood up on the emulator (offline/verification/emulated.py
``stood_up``), with one real PostgreSQL server per region, the primary streaming to the others
(offline/emulator/aurora.py), and the deployed writer and reader functions (the real handlers,
under their roles, through the emulated IAM, KMS and Secrets Manager).

* planned switchover: writes stop, every standby catches up with the writer's WAL position (LSN),
  the old primary shuts down cleanly, a secondary is promoted, the other standbys follow it and
  the old primary rejoins as a standby; writes resume in the new primary. The deployed writer of
  EVERY region keeps writing through the change, through the unchanged global writer endpoint
  (over the VPC peering): refused (retryable) while the change is on, never lost or written twice,
  and timed from the promotion to its first acknowledged write. Every acknowledged
  write must be readable in every region afterwards (counted).
* unplanned failover: a writer keeps writing in the primary, the primary's postmaster is killed
  (SIGKILL: no shutdown, no last WAL sent), the most advanced secondary is promoted, the others
  follow it. Counted: acknowledged writes missing in the new primary (the RPO measured:
  streaming is asynchronous, as Aurora's storage replication is, so it may be above 0), and the
  seconds from the loss to the first successful write in the new primary.

Both end with each remaining region's reader decrypting every surviving record with its LOCAL
replica of the multi-region key while KMS is down in every other region; the emulator records the
region of every KMS call each reader makes. Each drill is a check of the one report; what it
measured (``Failover``) is also what benchmarks/aurora.py reports.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cli_support import UsageError
from lambda_src.record_crypto.settings import ENV_MRK_ARN
from offline.emulator.postgres import PostgresError
from offline.verification.aurora_deployed import global_writer
from offline.verification.aurora_scenario import AURORA
from offline.verification.checks import Capability, Check, Failed, Invocation, Outcome, Report, check, run_checks
from offline.verification.emulated import EmulatedEnvironment, load, stood_up

PRIMARY = "us-east-2"
SECONDARIES = ("us-west-1", "eu-west-1")  # three regions: the failover has a standby to choose
DRILL_CONTEXT = {
    "mrk-toolkit:store": AURORA,
    "mrk-toolkit:primaryRegion": PRIMARY,
    "mrk-toolkit:replicaRegions": ",".join(SECONDARIES),
}
NEEDS = (Capability.DATABASE_SERVERS, Capability.OUTAGES)
TITLE = "Failover drills: Aurora PostgreSQL store on real PostgreSQL (offline)"
HEADER = [
    "REAL: PostgreSQL 16.2 servers (pgserver) stood up from the synthesized Aurora assembly, physical streaming "
    "replication, promotion; the deployed writer and reader functions (lambda_src) under their roles' credentials "
    "and the Encryption SDK; EMULATED: KMS, Secrets Manager and IAM (moto behind the emulated IAM), Aurora's "
    "managed switchover/failover (done here with pg_ctl promote and primary_conninfo; the global writer endpoint's "
    "name re-pointed at the promotion, reachable over the templates' VPC peering)",
]


@dataclass
class DrillWorld:
    """The stood-up Aurora deployment the drills act on: its servers, keys and functions."""

    env: EmulatedEnvironment
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def db(self) -> Any:  # offline.emulator.postgres.GlobalDatabase
        return self.env.deployment.aurora.db

    @property
    def key_arns(self) -> dict[str, str]:
        regions = (self.env.primary_region, *self.env.replica_regions)
        return {r: self.env.deployment.function(r, "writer").environment[ENV_MRK_ARN] for r in regions}

    @property
    def global_endpoint(self) -> str:
        """The global writer endpoint as deployed (the GlobalCluster's GlobalEndpoint.Address)."""
        stacks = self.env.deployment.stacks.values()
        (endpoint,) = [
            r.attributes["GlobalEndpoint.Address"]
            for stack in stacks
            for r in stack.resources.values()
            if r.type == "AWS::RDS::GlobalCluster"
        ]
        return str(endpoint)

    def record(self, i: int) -> dict[str, Any]:
        return {"name": f"Drill {i}", "country": "NZ", **{f: f"SECRET-{f}-{i:06d}" for f in self.env.sensitive_fields}}

    def write(self, region: str, item_id: str, i: int = 0) -> dict[str, Any]:
        """The deployed writer of ``region``; its result."""
        return self.env.invoke(region, "writer", {"id": item_id, "record": self.record(i)}).result

    def read(self, region: str, item_id: str) -> Invocation:
        return self.env.invoke(region, "reader", {"id": item_id})


@contextmanager
def drill_world(
    cdk_out: Path | None = None,
    *,
    context: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    log_dir: Path | None = None,
) -> Iterator[DrillWorld]:
    """The Aurora assembly (``cdk_out``, or cdk.json's with ``DRILL_CONTEXT`` and ``context``
    synthesized) stood up on the emulator, as the Aurora main job stands it up."""
    say = progress or (lambda line: None)
    assembly = load(cdk_out, {**DRILL_CONTEXT, **(context or {})}, say)
    with stood_up(assembly, progress=say, log_dir=log_dir) as env:
        if env.store != AURORA:
            raise UsageError(f"the failover drills need an assembly with store={AURORA}; {assembly.directory} has none")
        if not env.replica_regions:
            raise UsageError("the failover drills need at least one secondary region")
        yield DrillWorld(env)


@dataclass
class Failover:
    """What one drill measured."""

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
    # From the promotion to the first write the new primary region's deployed writer (kept
    # writing through the change, never redeployed) had acknowledged.
    promotion_to_first_write: float | None = None
    follow: dict[str, int] = field(default_factory=dict)  # what that writer got through the change
    # The same for the deployed writer of EVERY region (each writes through the unchanged global
    # writer endpoint): region -> seconds from the promotion to its first acknowledged write, and
    # region -> what it got through the change.
    promotion_to_first_write_by_region: dict[str, float] = field(default_factory=dict)
    follow_by_region: dict[str, dict[str, int]] = field(default_factory=dict)

    def problems(self, *, lossless: bool) -> list[str]:
        out = [f"lost {self.lost} of {self.acknowledged} acknowledged writes"] if lossless and self.lost else []
        for region, regions in self.readers_kms_regions.items():
            if not regions or set(regions) != {region}:
                out.append(f"the reader of {region} called KMS in {sorted(set(regions)) or 'no region'}")
        survivors = self.acknowledged - self.lost
        out += [f"{r}: {n} of {survivors} records decrypted" for r, n in self.reads_ok.items() if n != survivors]
        for region, follow in (self.follow_by_region or {"": self.follow}).items():
            where = f"{region}'s writer: " if region else ""
            out += [f"{where}{k}: {n}" for k, n in follow.items() if k.startswith(("lost", "written twice", "other"))]
            out += [f"{where}{k}: {n}" for k, n in follow.items() if k.startswith("refused but written") and n]
        return out + ([] if self.reads_ok else ["nothing was read back"])

    def outcome(self) -> Outcome:
        lines = [f"first successful write in {self.new_primary} after {self.seconds_to_first_write:.2f} s"]
        if self.promotion_to_first_write is not None:
            lines.append(
                f"the deployed writer of {self.new_primary} (same environment, no deploy) wrote "
                f"{self.promotion_to_first_write:.3f} s after the promotion; through the change: "
                + ", ".join(f"{k} {n}" for k, n in self.follow.items())
            )
        for region, seconds in self.promotion_to_first_write_by_region.items():
            if region == self.new_primary:
                continue  # the line above
            got = ", ".join(f"{k} {n}" for k, n in self.follow_by_region.get(region, {}).items())
            lines.append(
                f"the deployed writer of {region}, through the unchanged global writer endpoint: first write "
                f"{seconds:.3f} s after the promotion; through the change: {got}"
            )
        if self.catch_up_seconds is not None:
            lines.append(f"standbys caught up with the writer's LSN in {self.catch_up_seconds:.3f} s")
        for region, count in self.reads_ok.items():
            kms = sorted(set(self.readers_kms_regions.get(region, [])))
            lines.append(f"{region}: {count} records decrypted; reader's KMS calls in {kms}")
        detail = (
            f"{self.old_primary} -> {self.new_primary}: acknowledged writes {self.acknowledged}, "
            f"lost {self.lost} (RPO counted)"
        )
        return Outcome(detail, lines + self.notes, asdict(self))


def judged(failover: Failover, *, lossless: bool) -> Outcome:
    """The drill's figures as a check's outcome; it fails on a lost write (``lossless``), a read
    that did not come back or a reader calling KMS outside its region."""
    problems = failover.problems(lossless=lossless)
    if problems:
        raise Failed("; ".join(problems), failover.outcome())
    return failover.outcome()


def failover_checks(env: EmulatedEnvironment) -> list[Check]:
    """The drills, in order: a planned switchover to the first secondary (``SECONDARIES[0]`` when
    the deployment has it), then that new primary's server killed under write load."""
    target = SECONDARIES[0] if SECONDARIES[0] in env.replica_regions else env.replica_regions[0]
    return [
        check(f"planned switchover: {env.primary_region} -> {target}", partial(_planned, target), *NEEDS),
        check("unplanned failover: the primary's server killed under write load", _unplanned, *NEEDS),
    ]


def _planned(target: str, env: EmulatedEnvironment) -> Outcome:
    return judged(planned_switchover(DrillWorld(env), target), lossless=True)


def _unplanned(env: EmulatedEnvironment) -> Outcome:
    return judged(unplanned_failover(DrillWorld(env)), lossless=False)


def failover_report(world: DrillWorld, progress: Callable[[str], None] | None = None) -> Report:
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    say("running the failover drills ...")
    return run_checks(failover_checks(world.env), world.env, Report(TITLE, header=list(HEADER)))


# -- the drills -----------------------------------------------------------------------------------
def _read_back(world: DrillWorld, result: Failover, regions: tuple[str, ...], ids: list[str]) -> None:
    """Every acknowledged id in every running region, decrypted by that region's reader while KMS
    answers in no other region (a call to another region's key would fail)."""
    lsn = world.db.writer_lsn()
    everywhere = tuple(world.key_arns)
    for region in regions:
        if region != result.new_primary:
            world.db.wait_replayed(region, lsn)
        others = [r for r in everywhere if r != region]
        for other in others:
            world.env.outage(other, down=True, services=("kms",))
        try:
            reads = [world.read(region, item_id) for item_id in ids]
        finally:
            for other in others:
                world.env.outage(other, down=False)
        result.reads_ok[region] = sum(1 for inv in reads if inv.result.get("ok"))
        result.readers_kms_regions[region] = _kms_regions(reads)


def _kms_regions(reads: list[Invocation]) -> list[str]:
    return [c["resource"].split(":")[3] for inv in reads for c in inv.calls or [] if c["action"].startswith("kms:")]


def _lost(world: DrillWorld, region: str, ids: list[str]) -> int:
    return sum(1 for item_id in ids if not world.read(region, item_id).result.get("ok"))


def planned_switchover(world: DrillWorld, target: str, writes: int = 50) -> Failover:
    db = world.db
    old = db.writer_region
    ids = [f"planned-{world.tag}-{i}" for i in range(writes)]
    acked = [item_id for i, item_id in enumerate(ids) if world.write(old, item_id, i).get("ok")]
    stopped = time.monotonic()  # writes stop here
    lsn = db.writer_lsn()
    catch_up = max(db.wait_replayed(r, lsn) for r in db.servers if r != old)
    followers = _Followers(world, tuple(db.servers), f"planned-{world.tag}-follow")
    with followers.writing():  # every region's writer keeps writing through the change
        db.server(old).stop("fast")  # a clean shutdown sends the last WAL to the standbys
        promoted = time.monotonic()
        db.promote(target)
        db.follow(target)
        first_writes = followers.first_acks(promoted)
    seconds = time.monotonic() - stopped
    global_writer_note = _global_writer_followed(world, target, "planned switchover")
    db.rejoin(old, target)
    db.wait_streaming()
    result = Failover("planned switchover", old, target, len(acked), _lost(world, target, acked), seconds, catch_up)
    followers.fill(result, first_writes)
    result.notes.append(global_writer_note)
    result.notes.append(_old_primarys_writer(world, old, target, result))
    _read_back(world, result, tuple(db.servers), acked)
    return result


def _old_primarys_writer(world: DrillWorld, old: str, target: str, result: Failover) -> str:
    """After the old primary rejoined as a standby, its region's writer (never redeployed) still writes:
    through the global writer endpoint, in the new primary's cluster."""
    item_id = f"planned-{world.tag}-old-writer"
    answer = world.write(old, item_id)
    db = world.env.database()
    rows = db.admin(f"SELECT writer_region FROM {db.table} WHERE id = %s", item_id)  # noqa: S608
    if not answer.get("ok") or rows != [(old,)]:
        result.follow["other: the old primary's writer after the switchover got"] = 1
    return (
        f"{old} rejoined as a standby of {target}; its writer, never redeployed, writes through the global writer "
        f"endpoint: {'acknowledged' if answer.get('ok') else answer.get('error', {}).get('type')}, "
        f"row in {target}'s cluster: {bool(rows)}"
    )


def unplanned_failover(world: DrillWorld, load_seconds: float = 1.5, min_writes: int = 10) -> Failover:
    db = world.db
    old = db.writer_region
    acked: list[str] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            item_id = f"unplanned-{world.tag}-{i}"
            if world.write(old, item_id, i).get("ok"):
                acked.append(item_id)

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
    followers = _Followers(world, tuple(db.servers), f"unplanned-{world.tag}-follow")
    with followers.writing():  # every region's writer keeps writing through the promotion
        promoted = time.monotonic()
        db.promote(target)
        db.follow(target)
        first_writes = followers.first_acks(promoted)
    seconds = time.monotonic() - crashed
    global_writer_note = _global_writer_followed(world, target, "unplanned failover")
    result = Failover("unplanned failover", old, target, len(acked), _lost(world, target, acked), seconds, None)
    followers.fill(result, first_writes)
    result.notes.append(global_writer_note)
    result.notes.append(
        f"promoted {target} (the standby with the highest replayed LSN); {old} stays down "
        "(a crashed primary is rebuilt from the new one before it rejoins)"
    )
    _read_back(world, result, tuple(r for r in db.servers if r != old), acked)
    return result


def _global_writer_followed(world: DrillWorld, target: str, drill: str) -> str:
    """RDS reports the promoted region's cluster as the global database's writer, its global writer
    endpoint unchanged (DescribeGlobalClusters, as Aurora's managed switchover and failover leave it)."""
    before = world.global_endpoint
    region, endpoint = global_writer(world.env.client, target)
    if region != target or endpoint != before:
        raise AssertionError(
            f"{drill}: DescribeGlobalClusters names the writer in {region} (endpoint {endpoint}), expected {target} "
            f"behind the unchanged endpoint {before}"
        )
    return f"DescribeGlobalClusters: the writer is {target}'s cluster, behind the unchanged endpoint {endpoint}"


class _Followers:
    """The deployed writer of every region, each a ``_Follower``, writing through the change."""

    def __init__(self, world: DrillWorld, regions: tuple[str, ...], prefix: str) -> None:
        self.followers = {region: _Follower(world, region, f"{prefix}-{region}") for region in regions}

    @contextmanager
    def writing(self) -> Iterator[None]:
        with ExitStack() as stack:
            for follower in self.followers.values():
                stack.enter_context(follower.writing())
            yield

    def first_acks(self, promoted: float) -> dict[str, float]:
        return {region: follower.first_ack(promoted) for region, follower in self.followers.items()}

    def fill(self, result: Failover, first_writes: dict[str, float]) -> None:
        """The figures of every region's writer; the new primary's also as ``promotion_to_first_write``
        and ``follow`` (the fields the benchmark has always printed)."""
        result.promotion_to_first_write_by_region = first_writes
        result.follow_by_region = {region: f.judged() for region, f in self.followers.items()}
        result.promotion_to_first_write = first_writes[result.new_primary]
        result.follow = result.follow_by_region[result.new_primary]


class _Follower:
    """The deployed writer of one region writing fresh items in a loop, through the global writer
    endpoint, while the primary moves: every attempt the change catches is refused (retryable), none
    is lost or written twice, and the first acknowledged one is timed from the promotion."""

    def __init__(self, world: DrillWorld, region: str, prefix: str) -> None:
        self.world, self.region, self.prefix = world, region, prefix
        self.attempts: list[tuple[str, float, dict[str, Any]]] = []  # (id, when answered, result)
        self.promoted: float | None = None  # set once the promotion is done: then 3 acknowledged writes end it
        self._stop = threading.Event()

    @contextmanager
    def writing(self) -> Iterator[None]:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(60)

    def _acked_since(self, promoted: float) -> list[float]:
        return [when for _, when, r in list(self.attempts) if r.get("ok") and when >= promoted]

    def _loop(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            item_id = f"{self.prefix}-{i}"
            result = self.world.write(self.region, item_id, i)
            self.attempts.append((item_id, time.monotonic(), result))
            if self.promoted is not None and len(self._acked_since(self.promoted)) >= 3:
                return
            time.sleep(0.01)

    def first_ack(self, promoted: float, deadline_s: float = 60.0) -> float:
        """Seconds from ``promoted`` to the first write acknowledged after it (a write the old primary
        acknowledged before it stopped does not count), once three were."""
        self.promoted = promoted
        deadline = time.monotonic() + deadline_s
        while len(self._acked_since(promoted)) < 3:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the writer of {self.region} wrote {len(self._acked_since(promoted))} items within "
                    f"{deadline_s:.0f}s of the promotion (3 expected)"
                )
            time.sleep(0.01)
        return min(self._acked_since(promoted)) - promoted

    def judged(self) -> dict[str, int]:
        """Counts: acknowledged, refused (by type), lost (acknowledged but absent or not version 1:
        written twice), refused but written."""
        db, out = self.world.env.database(), {"acknowledged": 0}
        for item_id, _, result in self.attempts:
            rows = db.admin(f"SELECT version FROM {db.table} WHERE id = %s", item_id)  # noqa: S608 - the writer's
            if result.get("ok"):
                out["acknowledged"] += 1
                if not rows:
                    out["lost"] = out.get("lost", 0) + 1
                elif rows[0][0] != 1:
                    out["written twice"] = out.get("written twice", 0) + 1
                continue
            error = result.get("error", {})
            kind = f"refused {error.get('type')}" + ("" if error.get("retryable") else " (not retryable)")
            out[kind] = out.get(kind, 0) + 1
            if not error.get("retryable"):
                out[f"other: {kind}"] = out.get(f"other: {kind}", 0) + 1
            out["refused but written"] = out.get("refused but written", 0) + (1 if rows else 0)
        return out


def _most_advanced(db: Any, lost: str) -> str:
    positions = {}
    for region, server in db.servers.items():
        if region != lost and server.running():
            positions[region] = server.query("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn")[0][0]
    if not positions:
        raise PostgresError("no standby left to promote")
    return max(sorted(positions), key=lambda r: positions[r])
