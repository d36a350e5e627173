"""EMULATION of DynamoDB Global Tables replication between the regional tables.

moto has no global tables (ReplicaUpdates is ignored), so this thread does what the service
does: it reads each regional table's stream and applies every change to the other regions
after a configurable lag, last writer wins (by the time of the change). Changes it applies
itself are recognised in the destination's stream and not sent back.

Regions join and leave as the deployment changes (``paused`` + ``sync``): a new replica, once
the provisioner has copied the existing items into it (as DynamoDB backfills a new replica),
is read from the end of its stream and receives every later change; a removed one receives
nothing more. A regional table deleted behind its back (a retained global table removed by hand)
leaves the replication group as DynamoDB's DeleteTable of a replica does.

A region that does not answer (an outage: the gateway's 503, a refused connection) is handled as
Global Tables documents it: changes toward it stay queued, per destination, and are delivered
when it answers again; its own stream is read again from where it stopped, and changes read from
it before it went down wait with it, so changes made there before the outage reach the other
regions once it returns. Nothing is dropped for unavailability.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

_NEVER = (float("-inf"), "")
# One attempt per call: this thread retries by itself (a queued change), without stalling the
# other regions behind botocore's backoff.
_NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=10)
_UNAVAILABLE_CODES = {"ServiceUnavailable", "InternalServerError", "InternalFailure", "503", "500"}


def unavailable(error: Exception) -> bool:
    """True if ``error`` says the region did not answer (not that it refused the request)."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in _UNAVAILABLE_CODES or status >= 500
    return isinstance(error, BotoCoreError)  # connection refused / reset / timed out


def _change_time(ddb: Mapping[str, Any]) -> float:
    changed_at = ddb.get("ApproximateCreationDateTime")
    return changed_at.timestamp() if hasattr(changed_at, "timestamp") else float(changed_at or 0)


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    source: str = field(compare=False)
    record: dict[str, Any] = field(compare=False)
    destinations: tuple[str, ...] = field(compare=False, default=())


class GlobalTablesEmulator:
    def __init__(
        self,
        session: boto3.Session,
        endpoint_url: str,
        *,
        tables: Mapping[str, str],
        stream_arns: Mapping[str, str],
        key_attributes: tuple[str, ...] = ("id",),
        lag_seconds: float = 1.0,
        poll_seconds: float = 0.05,
        retry_seconds: float = 0.5,
    ) -> None:
        self.tables = dict(tables)
        self.key_attributes = key_attributes
        self.lag_seconds = lag_seconds
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self._ddb = {
            r: session.client("dynamodb", region_name=r, endpoint_url=endpoint_url, config=_NO_RETRY) for r in tables
        }
        self._streams = {
            r: session.client("dynamodbstreams", region_name=r, endpoint_url=endpoint_url, config=_NO_RETRY)
            for r in tables
        }
        self._stream_arns = dict(stream_arns)
        self._session, self._endpoint_url = session, endpoint_url  # for regions that join later
        self._cycle = threading.Lock()  # held by one poll-and-apply round; paused() takes it
        self._iterators: dict[tuple[str, str], str | None] = {}
        self._queue: list[_Pending] = []
        self._in_flight: _Pending | None = None  # popped and being delivered: still pending
        self._seq = itertools.count()
        self._echo: dict[tuple[str, str], list[str]] = {}
        # (region, key) -> (change time, origin region) of the newest change that region holds
        self._last_write: dict[tuple[str, str], tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.applied = 0
        self.deferred = 0  # deliveries put off because the destination did not answer
        self.unreachable: dict[str, str] = {}  # region -> why, while it does not answer
        self.errors: list[str] = []
        self._holds = 0  # while > 0, changes are read and queued but none is delivered

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Deliver nothing inside the block (changes still queue, in order): a lag as long as the
        block, so a check can make two regions write inside it whatever the machine's speed."""
        with self._lock:
            self._holds += 1
        try:
            yield
        finally:
            with self._lock:
                self._holds -= 1

    def _key(self, keys: Mapping[str, Any]) -> str:
        return json.dumps({k: keys[k] for k in sorted(keys)}, sort_keys=True)

    def _image_digest(self, image: Mapping[str, Any] | None) -> str:
        return json.dumps(image, sort_keys=True, default=str)

    def _join(self, region: str, table: str, stream_arn: str) -> None:
        """A new replica, read from the end of its stream (its existing items were copied in)."""
        self._ddb[region] = self._session.client(
            "dynamodb", region_name=region, endpoint_url=self._endpoint_url, config=_NO_RETRY
        )
        self._streams[region] = self._session.client(
            "dynamodbstreams", region_name=region, endpoint_url=self._endpoint_url, config=_NO_RETRY
        )
        shards = self._streams[region].describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            it = self._streams[region].get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            self._iterators[(region, shard["ShardId"])] = it
        self._stream_arns[region] = stream_arn
        self.tables[region] = table

    def _leave(self, region: str) -> None:
        for name in (self.tables, self._ddb, self._streams, self._stream_arns, self.unreachable):
            name.pop(region, None)  # type: ignore[attr-defined]
        for key in [k for k in self._iterators if k[0] == region]:
            del self._iterators[key]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No replication round runs inside (the deployment is being changed)."""
        with self._cycle:
            yield

    def sync(self, tables: Mapping[str, str], stream_arns: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """Follow the deployment's replicas (call while paused): regions that joined are read from
        the end of their stream (their existing items were copied in), regions gone are dropped."""
        joined = [r for r in tables if r not in self.tables or self._stream_arns.get(r) != stream_arns[r]]
        left = [r for r in self.tables if r not in tables]
        for region in left + joined:
            self._leave(region)
        for region in joined:
            self._join(region, tables[region], stream_arns[region])
        with self._lock:  # changes not yet delivered reach the replicas there are now
            for pending in self._queue:
                pending.destinations = tuple(
                    r for r in (*pending.destinations, *joined) if r in self.tables and r != pending.source
                )
        return joined, left

    def start(self) -> GlobalTablesEmulator:
        for region, arn in self._stream_arns.items():
            shards = self._streams[region].describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            for shard in shards:
                it = self._streams[region].get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                self._iterators[(region, shard["ShardId"])] = it
        self._thread = threading.Thread(target=self._run, name="global-tables-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _poll(self) -> None:
        for (region, shard), it in list(self._iterators.items()):
            if it is None or region not in self._streams:
                continue
            try:
                out = self._streams[region].get_records(ShardIterator=it, Limit=1000)
            except Exception as exc:
                if _table_gone(exc):
                    self._leave(region)  # deleted by hand: it left the replication group
                    continue
                if not unavailable(exc):
                    raise
                self.unreachable[region] = str(exc)  # read again from the same point when it answers
                continue
            self.unreachable.pop(region, None)
            self._iterators[(region, shard)] = out.get("NextShardIterator")
            for record in out.get("Records", []):
                ddb = record["dynamodb"]
                key = self._key(ddb["Keys"])
                digest = self._image_digest(ddb.get("NewImage"))
                echoes = self._echo.get((region, key), [])
                if digest in echoes:
                    echoes.remove(digest)  # our own replicated write, not a user change
                    continue
                with self._lock:
                    # A local write is a change this region already holds: an older change
                    # arriving from another region must not overwrite it (last writer wins).
                    stamp = (_change_time(ddb), region)
                    self._last_write[(region, key)] = max(self._last_write.get((region, key), _NEVER), stamp)
                    others = tuple(r for r in self.tables if r != region)
                    due = time.monotonic() + self.lag_seconds
                    heapq.heappush(self._queue, _Pending(due, next(self._seq), region, record, others))

    def _apply_due(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if self._holds or not self._queue or self._queue[0].due > now:
                    return
                pending = self._in_flight = heapq.heappop(self._queue)
            if pending.source in self.unreachable:  # its region is down: its replication waits with it
                waiting = pending.destinations
            else:
                waiting = tuple(r for r in pending.destinations if not self._deliver(pending, r))
            with self._lock:
                if waiting:  # a destination did not answer: keep the change for it, try again later
                    self.deferred += len(waiting)
                    retry = _Pending(now + self.retry_seconds, next(self._seq), pending.source, pending.record, waiting)
                    heapq.heappush(self._queue, retry)
                self._in_flight = None

    def _deliver(self, pending: _Pending, region: str) -> bool:
        """Apply one change to one region: True when done (or when a newer change wins there),
        False when the region did not answer (the change stays queued for it)."""
        ddb = pending.record["dynamodb"]
        changed = (_change_time(ddb), pending.source)  # ties broken by region, as one rule everywhere
        key = self._key(ddb["Keys"])
        if region not in self.tables:
            return True  # the replica left the global table: nothing to deliver there
        with self._lock:
            if self._last_write.get((region, key), _NEVER) >= changed:
                return True  # last writer wins: this region holds a newer change
        new_image = ddb.get("NewImage")
        digest = self._image_digest(new_image)
        self._echo.setdefault((region, key), []).append(digest)
        try:
            if pending.record["eventName"] == "REMOVE":
                self._ddb[region].delete_item(TableName=self.tables[region], Key=ddb["Keys"])
            else:
                self._ddb[region].put_item(TableName=self.tables[region], Item=new_image)
        except Exception as exc:
            self._echo[(region, key)].remove(digest)
            if _table_gone(exc):
                self._leave(region)
                return True
            if unavailable(exc):
                self.unreachable[region] = str(exc)
                return False
            self.errors.append(f"{pending.source}->{region}: {exc}")  # keep replicating; the report shows it
            return True
        with self._lock:
            self._last_write[(region, key)] = changed
            self.applied += 1
        self.unreachable.pop(region, None)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._cycle:
                    self._poll()
                    self._apply_due()
            except Exception as exc:
                self.errors.append(str(exc))
            self._stop.wait(self.poll_seconds)

    def _pending(self) -> list[_Pending]:
        return [*self._queue, *([self._in_flight] if self._in_flight is not None else [])]

    def pending(self) -> int:
        with self._lock:
            return len(self._pending())

    def pending_toward(self) -> dict[str, int]:
        """Changes not yet delivered, per destination region (what PendingReplicationCount counts)."""
        with self._lock:
            out = dict.fromkeys(self.tables, 0)
            for pending in self._pending():
                for region in pending.destinations:
                    if region in out:
                        out[region] += 1
            return out

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(self.poll_seconds * 2)
            if not self.pending():
                return True
        return False


def _table_gone(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ResourceNotFoundException", "TrimmedDataAccessException")
