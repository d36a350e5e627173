"""Section 5: throughput under load. Writer threads write through RecordService in us-east-2, a
replicator copies each item to us-west-1 as Global Tables would, reader threads read and decrypt it
there. Every written id is read back once and compared with what was written."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks.moto_env import PRIMARY, REPLICA, REPO, TABLE, create_resources, fake_credentials, service_env
from lambda_src.record_crypto.settings import ENV_DATA_KEY_CACHE

_FILLER = "lorem ipsum dolor sit amet " * 40


@dataclass
class Phase:
    name: str
    writers: int
    readers: int
    seconds: float
    write_ms: list[float] = field(default_factory=list)  # completed inside the time window
    read_ms: list[float] = field(default_factory=list)
    written: int = 0
    write_errors: int = 0
    read_ok: int = 0
    drained_reads: int = 0  # reads completed after the window (finishing the backlog)
    lost: int = 0
    undecryptable: int = 0
    mismatched: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def writes_per_s(self) -> float:
        return len(self.write_ms) / self.seconds

    @property
    def reads_per_s(self) -> float:
        return len(self.read_ms) / self.seconds

    @property
    def verified(self) -> bool:
        return self.written > 0 and not (self.lost or self.undecryptable or self.mismatched or self.write_errors)


@dataclass
class LoadResults:
    phases: list[Phase]
    endpoint: str = ""
    seconds: float = 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def record_for(i: int) -> dict[str, Any]:
    return {
        "name": f"Ada {i}",
        "country": "NZ",
        "tier": i % 5,
        "ssn": f"078-05-{i:06d}",
        "dob": "1815-12-10",
        "diagnosis": {"code": f"dx-{i}", "notes": [_FILLER]},
    }


@contextlib.contextmanager
def moto_server(say: Callable[[str], None]) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.moto_server"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()
        if not endpoint.startswith("http"):
            raise RuntimeError("the moto server did not start")
        say(f"  moto server (separate process) on {endpoint}")
        yield endpoint
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _phase(name: str, keys: Any, *, writers: int, readers: int, seconds: float, cache: bool) -> Phase:
    import boto3
    import botocore.session
    from record_crypto.service import RecordService
    from record_crypto.settings import Settings

    extra = {ENV_DATA_KEY_CACHE: "on"} if cache else {}
    # One service per thread, as one per warm Lambda container (each with its own clients and cache).
    writer_services = [
        RecordService(Settings.from_env(service_env(keys, PRIMARY, extra)), botocore_session=botocore.session.Session())
        for _ in range(writers)
    ]
    reader_services = [
        RecordService(Settings.from_env(service_env(keys, REPLICA, extra)), botocore_session=botocore.session.Session())
        for _ in range(readers)
    ]
    session = boto3.session.Session()
    run = _LoadRun(
        Phase(name, writers, readers, seconds),
        source=session.client("dynamodb", region_name=PRIMARY),
        target=session.client("dynamodb", region_name=REPLICA),
        tag="c" if cache else "d",
    )
    return run.run(writer_services, reader_services, seconds)


class _LoadRun:
    """Writers in the primary, a replicator (batched copies, as global tables would), readers in
    the replica, for ``seconds``; then the queues drain and every record is accounted for."""

    def __init__(self, phase: Phase, *, source: Any, target: Any, tag: str) -> None:
        self.phase, self.source, self.target, self.tag = phase, source, target, tag
        self.expected: dict[str, dict[str, Any]] = {}
        self.to_replicate: queue.Queue[str | None] = queue.Queue()
        self.to_read: queue.Queue[str | None] = queue.Queue()
        # Re-entrant: a failed read is noted (which takes the lock) while the lock is held.
        self.lock = threading.RLock()
        self.window_over = threading.Event()
        self.counter = iter(range(10**9))

    def run(self, writer_services: list[Any], reader_services: list[Any], seconds: float) -> Phase:
        threads_w = [threading.Thread(target=self.write_loop, args=(s,), daemon=True) for s in writer_services]
        threads_r = [threading.Thread(target=self.read_loop, args=(s,), daemon=True) for s in reader_services]
        replicator = threading.Thread(target=self.replicate_loop, daemon=True)
        for t in (*threads_w, *threads_r, replicator):
            t.start()
        time.sleep(seconds)
        self.window_over.set()
        for t in threads_w:
            t.join()
        self.to_replicate.put(None)
        replicator.join()
        for _ in threads_r:
            self.to_read.put(None)
        for t in threads_r:
            t.join()
        # Whatever was written but never read back counts as lost.
        phase = self.phase
        accounted = phase.read_ok + phase.undecryptable + phase.mismatched + phase.lost
        phase.lost += max(0, phase.written - accounted)
        return phase

    def note(self, message: str) -> None:
        with self.lock:
            if len(self.phase.errors) < 5:
                self.phase.errors.append(message[:300])

    def write_loop(self, service: Any) -> None:
        phase = self.phase
        while not self.window_over.is_set():
            with self.lock:
                i = next(self.counter)
            ident, record = f"load-{self.tag}-{i:08d}", record_for(i)
            started = time.perf_counter()
            result = service.write({"id": ident, "record": record})
            elapsed = (time.perf_counter() - started) * 1000
            with self.lock:
                if result.get("ok"):
                    self.expected[ident] = record
                    phase.written += 1
                    if not self.window_over.is_set():
                        phase.write_ms.append(elapsed)
                else:
                    phase.write_errors += 1
            if result.get("ok"):
                self.to_replicate.put(ident)
            else:
                self.note(f"write {ident}: {result.get('error')}")

    def replicate_loop(self) -> None:
        # Batched (up to 25 items a call), so the emulated replication never throttles the readers.
        done = False
        while not done:
            batch = [self.to_replicate.get()]
            while len(batch) < 25:
                try:
                    batch.append(self.to_replicate.get_nowait())
                except queue.Empty:
                    break
            done = None in batch
            ids = [i for i in batch if i is not None]
            if not ids:
                continue
            items = _batch_get(self.source, ids)
            for ident in set(ids) - {item["id"]["S"] for item in items}:
                self.note(f"replicate {ident}: not in {PRIMARY}")
                with self.lock:
                    self.phase.lost += 1
            _batch_put(self.target, items)
            for item in items:
                self.to_read.put(item["id"]["S"])

    def read_loop(self, service: Any) -> None:
        phase = self.phase
        while (ident := self.to_read.get()) is not None:
            started = time.perf_counter()
            result = service.read({"id": ident})
            elapsed = (time.perf_counter() - started) * 1000
            in_window = not self.window_over.is_set()
            with self.lock:
                if not result.get("ok"):
                    kind = result.get("error", {}).get("type")
                    if kind == "NotFound":
                        phase.lost += 1
                    else:
                        phase.undecryptable += 1
                    self.note(f"read {ident}: {result.get('error')}")
                elif result["record"] != self.expected[ident]:
                    phase.mismatched += 1
                    self.note(f"read {ident}: a different record came back")
                else:
                    phase.read_ok += 1
                if in_window:
                    phase.read_ms.append(elapsed)
                else:
                    phase.drained_reads += 1


def _batch_get(client: Any, ids: list[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {TABLE: {"Keys": [{"id": {"S": i}} for i in ids], "ConsistentRead": True}}
    while request:
        response = client.batch_get_item(RequestItems=request)
        items += response.get("Responses", {}).get(TABLE, [])
        request = response.get("UnprocessedKeys") or {}
    return items


def _batch_put(client: Any, items: list[dict[str, Any]]) -> None:
    request: dict[str, Any] = {TABLE: [{"PutRequest": {"Item": item}} for item in items]}
    while request:
        request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def run(*, seconds: float, writers: int, readers: int, say: Callable[[str], None]) -> LoadResults:
    started = time.perf_counter()
    phases: list[Phase] = []
    with moto_server(say) as endpoint, fake_credentials(AWS_ENDPOINT_URL=endpoint):
        import boto3

        keys = create_resources(lambda service, region: boto3.client(service, region_name=region))
        for name, cache in (("default (signing, no cache)", False), ("data-key cache on", True)):
            say(f"  {writers} writers + {readers} readers, {seconds:g} s, {name} ...")
            phases.append(_phase(name, keys, writers=writers, readers=readers, seconds=seconds, cache=cache))
        results = LoadResults(phases=phases, endpoint=endpoint)
    results.seconds = time.perf_counter() - started
    return results
