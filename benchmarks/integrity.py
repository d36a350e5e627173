"""Section 6: what record integrity (item format 2) costs, measured in one run under moto.

* **Attribute signing.** On the write path the writer computes the digest of every plaintext
  attribute it stores (``attribute_digest``); on the read path the reader checks the item's
  attributes against the signed names and digest (``verify_attributes``). Each is timed alone,
  on the items the service really writes, and set against the whole write and read paths of
  ``RecordService`` measured in the same run: the share is what signing adds.
* **The version read.** A write in which the writer picks the version reads ``_version``
  first (GetItem) before its conditional PutItem; a write with ``expected_version`` from the
  caller skips that read. Both are timed, interleaved, on fresh ids.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.moto_env import PRIMARY, REPLICA, TABLE, in_process_aws, recording_session, service_env
from benchmarks.moto_env import Recorder as _Recorder
from lambda_src.record_crypto.settings import ENV_SENSITIVE_FIELDS

SIGNING_SHARE_TARGET = 0.05


@dataclass
class IntegrityResults:
    records: int
    repeats: int
    attributes: int  # plaintext attributes per item (record fields + the toolkit's)
    runs: dict[str, list[float]] = field(default_factory=dict)  # path -> ms per record, one entry per run
    seconds: float = 0.0

    def ms(self, path: str) -> float:
        return statistics.median(self.runs[path])

    @property
    def sign_share(self) -> float:
        return self.ms("sign") / self.ms("write")

    @property
    def verify_share(self) -> float:
        return self.ms("verify") / self.ms("read")

    @property
    def version_read_share(self) -> float:
        return self.ms("write") / self.ms("write-expected") - 1


def _record(i: int) -> dict[str, Any]:
    return {
        "name": f"Ada {i}",
        "country": "NZ",
        "tier": i % 7,
        "score": 1.25,
        "tags": ["gold", "eu"],
        "address": {"city": "Wellington", "lines": ["1 Main St", f"Flat {i}"]},
        "consent": True,
        "ssn": f"078-05-{i:04d}",
        "date_of_birth": "1815-12-10",
        "card_number": "4111 1111 1111 1111" + "x" * 900,  # ~1 KB of sensitive payload
    }


def run(*, records: int, repeats: int, say: Callable[[str], None]) -> IntegrityResults:
    started = time.perf_counter()
    with in_process_aws() as keys:
        trips = _ServiceTrips(keys)
        _warm(trips.write, trips.read)
        assert trips.writer.write({"id": "sample", "record": _record(0)})["ok"]
        sample = trips.stored("sample")
        signed = {k: v for k, v in sample.items() if k != "_ciphertext"}
        paths: dict[str, Callable[[], float]] = {
            "write": lambda: trips.write(False),
            "write-expected": lambda: trips.write(True),
            "read": trips.read,
        }
        paths |= _digest_paths(sample, signed)
        results = IntegrityResults(records=records, repeats=repeats, attributes=len(signed))
        say(f"  integrity: {len(signed)} signed attributes, {records} records x {repeats} runs per path ...")
        for _ in range(repeats):
            for name, fn in paths.items():
                gc.collect()
                n = records * (20 if name in ("sign", "verify") else 1)
                results.runs.setdefault(name, []).append(sum(fn() for _ in range(n)) / n * 1000)
    results.seconds = time.perf_counter() - started
    return results


class _ServiceTrips:
    """A writer in the primary and a reader in the replica (RecordService, as the functions run it)."""

    def __init__(self, keys: Any) -> None:
        import boto3
        from record_crypto.service import RecordService
        from record_crypto.settings import Settings

        env = {ENV_SENSITIVE_FIELDS: "ssn,date_of_birth,card_number"}
        self.writer = RecordService(
            Settings.from_env(service_env(keys, PRIMARY, env)), botocore_session=recording_session(_Recorder())
        )
        self.reader = RecordService(
            Settings.from_env(service_env(keys, REPLICA, env)), botocore_session=recording_session(_Recorder())
        )
        self.ddb_a = boto3.client("dynamodb", region_name=PRIMARY)
        self.ddb_b = boto3.client("dynamodb", region_name=REPLICA)
        self.counter = iter(range(10**9))

    def stored(self, ident: str) -> dict[str, Any]:
        return self.ddb_a.get_item(TableName=TABLE, Key={"id": {"S": ident}})["Item"]  # type: ignore[no-any-return]

    def write(self, expected: bool) -> float:
        i = next(self.counter)
        event: dict[str, Any] = {"id": f"r-{i}", "record": _record(i)}
        if expected:
            event["expected_version"] = 0
        t = time.perf_counter()
        result = self.writer.write(event)
        elapsed = time.perf_counter() - t
        if not result.get("ok"):
            raise RuntimeError(f"write failed: {result}")
        return elapsed

    def read(self) -> float:
        i = next(self.counter)
        ident = f"r-{i}"
        assert self.writer.write({"id": ident, "record": _record(i)})["ok"]
        self.ddb_b.put_item(TableName=TABLE, Item=self.stored(ident))  # replication, emulated, not timed
        t = time.perf_counter()
        result = self.reader.read({"id": ident})
        elapsed = time.perf_counter() - t
        if not result.get("ok") or result["record"] != _record(i):
            raise RuntimeError(f"read back a different record: {str(result)[:200]}")
        return elapsed


def _digest_paths(sample: dict[str, Any], signed: dict[str, Any]) -> dict[str, Callable[[], float]]:
    """The attribute signature alone: computing it (the writer's part) and checking it (the reader's)."""
    from record_crypto.records import Sealed, attribute_digest, verify_attributes

    digest = attribute_digest(signed)
    sealed = Sealed(2, "x", {}, 1, PRIMARY, "t", tuple(sorted(signed)), digest)

    def sign() -> float:
        t = time.perf_counter()
        attribute_digest(signed)
        return time.perf_counter() - t

    def verify() -> float:
        t = time.perf_counter()
        verify_attributes(sample, sealed, ())
        return time.perf_counter() - t

    return {"sign": sign, "verify": verify}


def _warm(write: Callable[[bool], float], read: Callable[[], float]) -> None:
    """A few untimed round trips (imports, connection set-up)."""
    for _ in range(3):
        write(False)
        write(True)
        read()
