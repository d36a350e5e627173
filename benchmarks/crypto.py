"""Sections 1 and 2: per-record crypto (encrypt in us-east-2, decrypt in us-west-1) under moto's
in-process mock, and the KMS calls each path makes per record.

Every path gets the same sensitive payload bytes. Paths are interleaved run by run, so drift on
the machine hits them alike; a run's figure is its mean ms/record, the reported figure the
median of the runs (after a warm-up).
"""

from __future__ import annotations

import gc
import io
import os
import random
import statistics
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.moto_env import PRIMARY, REPLICA, TABLE, Keys, Recorder, in_process_aws, recording_session, service_env
from lambda_src.record_crypto.settings import (
    ENV_DATA_KEY_CACHE,
    ENV_MAX_RECORD_BYTES,
    SUITE_COMMITTING_UNSIGNED,
    SUITE_SIGNING,
)

# (a)-(e) in the order of the report; "floor" and "baseline" are what ratios are taken against.
BASELINE, DEFAULT, CACHED, UNSIGNED, RAW = "a", "b", "c", "d", "e"
PATH_LABELS = {
    BASELINE: "(a) Encryption SDK defaults: EncryptionSDKClient(), MRK-aware strict provider, default suite, no cache",
    DEFAULT: "(b) ours, default: RecordCipher signing suite, no cache",
    CACHED: "(c) ours, cached: RecordCipher signing suite + data-key cache",
    UNSIGNED: "(d) ours, unsigned committing suite, no cache",
    RAW: "(e) raw AES-256-GCM (`cryptography`), one local key: the floor",
}
SERVICE_DEFAULT, SERVICE_CACHED = "svc-default", "svc-cached"
SERVICE_LABELS = {
    SERVICE_DEFAULT: "RecordService write (us-east-2) + read (us-west-1), default (signing, no cache)",
    SERVICE_CACHED: "RecordService write (us-east-2) + read (us-west-1), data-key cache on",
}
CACHE_MAX_AGE_S, CACHE_MAX_MESSAGES, CACHE_MAX_BYTES, CACHE_CAPACITY = 300, 1000, 100_000_000, 100
KMS_PRICE_PER_10K = 0.03
RATE_PER_S = 100
MONTH_S = 30 * 86_400

_FILLER = "".join(random.Random(6).choices(string.ascii_letters + string.digits, k=80_000))

Trip = Callable[[int], float]  # record index -> seconds spent on the timed part


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    repeats: int
    records: int  # per run and path
    raw_records: int
    service_records: int
    warmup: int
    latency_ms: float
    latency_records: int
    latency_repeats: int
    count_records: int  # non-cached paths
    count_records_cached: int

    @classmethod
    def make(cls, *, quick: bool, latency_ms: float) -> Plan:
        if quick:
            return cls((1024, 32768), 3, 10, 200, 6, 3, latency_ms, 5, 2, 20, 1000)
        return cls((1024, 32768), 7, 40, 1000, 30, 10, latency_ms, 15, 3, 100, 2000)


@dataclass
class Counted:
    path: str
    size: int
    records: int
    encrypt_side: dict[str, int]
    decrypt_side: dict[str, int]

    @property
    def per_record(self) -> tuple[float, float]:
        return sum(self.encrypt_side.values()) / self.records, sum(self.decrypt_side.values()) / self.records

    @property
    def monthly_requests(self) -> float:
        return sum(self.per_record) * RATE_PER_S * MONTH_S

    @property
    def monthly_cost(self) -> float:
        return self.monthly_requests / 10_000 * KMS_PRICE_PER_10K


@dataclass
class CryptoResults:
    plan: Plan
    suites: dict[str, str] = field(default_factory=dict)
    ciphertext_bytes: dict[tuple[str, int], int] = field(default_factory=dict)
    runs: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # (path, size) -> ms/record per run
    latency_runs: dict[str, list[float]] = field(default_factory=dict)  # 1 KB, modelled KMS latency
    counts: list[Counted] = field(default_factory=list)
    seconds: float = 0.0

    def ms(self, path: str, size: int) -> float:
        return statistics.median(self.runs[(path, size)])

    def spread(self, path: str, size: int) -> tuple[float, float]:
        runs = self.runs[(path, size)]
        return min(runs), max(runs)


def item_id(size: int, index: int) -> str:
    return f"rec-{size}-{index:08d}"


def _sealed(ident: str, fields: dict[str, Any]) -> bytes:
    """A format-2 payload as the writer seals it (one signed attribute: the key)."""
    from record_crypto.records import seal

    return seal(
        item_id=ident,
        sensitive_fields=fields,
        signed_attributes={"id": {"S": ident}},
        version=1,
        writer_region=PRIMARY,
        written_at="2026-01-01T00:00:00.000+00:00",
    )


def sensitive_fields(size: int, index: int) -> dict[str, Any]:
    """Sensitive fields whose sealed payload (what gets encrypted) is exactly ``size`` bytes."""
    ident = item_id(size, index)
    fill = size - len(_sealed(ident, {"ssn": ""}))
    start = index % 997
    return {"ssn": _FILLER[start : start + fill]}


def payload(size: int, index: int) -> bytes:
    data = _sealed(item_id(size, index), sensitive_fields(size, index))
    assert len(data) == size, (len(data), size)
    return data


class Paths:
    """Builds one path's round trip with its own sessions (its own call counters)."""

    def __init__(self, keys: Keys, size: int, *, kms_latency_s: float = 0.0) -> None:
        self.keys, self.size, self.latency = keys, size, kms_latency_s
        self.pool = [payload(size, i) for i in range(64)]
        self.last_ciphertext: bytes = b""

    def sessions(self) -> tuple[Recorder, Recorder, Any, Any]:
        ra, rb = Recorder(), Recorder()
        return (
            ra,
            rb,
            recording_session(ra, kms_latency_s=self.latency),
            recording_session(rb, kms_latency_s=self.latency),
        )

    def build(self, path: str) -> tuple[Trip, Recorder, Recorder]:
        ra, rb, sa, sb = self.sessions()
        if path == BASELINE:
            return self._sdk_trip(sa, sb), ra, rb
        if path in (DEFAULT, CACHED, UNSIGNED):
            return self._cipher_trip(path, sa, sb), ra, rb
        if path == RAW:
            return self._raw_trip(), ra, rb
        if path in (SERVICE_DEFAULT, SERVICE_CACHED):
            return self._service_trip(path == SERVICE_CACHED, sa, sb), ra, rb
        raise ValueError(path)

    def _data(self, i: int) -> tuple[str, bytes]:
        return item_id(self.size, i % len(self.pool)), self.pool[i % len(self.pool)]

    def _sdk_trip(self, sa: Any, sb: Any) -> Trip:
        """The Encryption SDK alone, MRK-aware strict providers, one context per item."""
        from aws_encryption_sdk import EncryptionSDKClient
        from aws_encryption_sdk.key_providers.kms import MRKAwareStrictAwsKmsMasterKeyProvider
        from record_crypto.context import expected_context

        client = EncryptionSDKClient()
        enc = MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[self.keys.primary_arn], botocore_session=sa)
        dec = MRKAwareStrictAwsKmsMasterKeyProvider(key_ids=[self.keys.replica_arn], botocore_session=sb)

        def trip(i: int) -> float:
            ident, plain = self._data(i)
            started = time.perf_counter()
            ct, _ = client.encrypt(
                source=plain, key_provider=enc, encryption_context=expected_context(table=TABLE, item_id=ident)
            )
            out, _ = client.decrypt(source=ct, key_provider=dec)
            elapsed = time.perf_counter() - started
            _same(out, plain)
            self.last_ciphertext = ct
            return elapsed

        return trip

    def _cipher_trip(self, path: str, sa: Any, sb: Any) -> Trip:
        """The toolkit's RecordCipher: the default, the cached and the unsigned paths."""
        from record_crypto.context import check_context, expected_context
        from record_crypto.envelope import RecordCipher
        from record_crypto.settings import CacheSettings

        suite = SUITE_COMMITTING_UNSIGNED if path == UNSIGNED else SUITE_SIGNING
        cache = (
            CacheSettings(CACHE_MAX_AGE_S, CACHE_MAX_MESSAGES, CACHE_MAX_BYTES, CACHE_CAPACITY)
            if path == CACHED
            else None
        )
        a = RecordCipher(key_arn=self.keys.primary_arn, algorithm_suite=suite, cache=cache, botocore_session=sa)
        b = RecordCipher(key_arn=self.keys.replica_arn, algorithm_suite=suite, cache=cache, botocore_session=sb)

        def trip(i: int) -> float:
            ident, plain = self._data(i)
            # As RecordService does: with the cache on, the item id is bound inside the payload.
            context = expected_context(table=TABLE, item_id=None if cache else ident)
            started = time.perf_counter()
            ct = a.encrypt(plain, context)
            out = b.decrypt(ct, lambda ctx: check_context(ctx, table=TABLE, item_id=ident))
            elapsed = time.perf_counter() - started
            _same(out, plain)
            self.last_ciphertext = ct
            return elapsed

        return trip

    def _raw_trip(self) -> Trip:
        """AES-256-GCM on the same bytes, no KMS: the floor."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = AESGCM.generate_key(bit_length=256)
        ga, gb = AESGCM(key), AESGCM(key)

        def trip(i: int) -> float:
            ident, plain = self._data(i)
            aad = ident.encode()
            started = time.perf_counter()
            nonce = os.urandom(12)
            ct = nonce + ga.encrypt(nonce, plain, aad)
            out = gb.decrypt(ct[:12], ct[12:], aad)
            elapsed = time.perf_counter() - started
            _same(out, plain)
            self.last_ciphertext = ct
            return elapsed

        return trip

    def _service_trip(self, cached: bool, sa: Any, sb: Any) -> Trip:
        import boto3
        from record_crypto.service import RecordService
        from record_crypto.settings import Settings

        # A 32 KB sensitive payload makes a record a little over the default 32768-byte limit.
        extra = {ENV_MAX_RECORD_BYTES: "65536", **({ENV_DATA_KEY_CACHE: "on"} if cached else {})}
        writer = RecordService(Settings.from_env(service_env(self.keys, PRIMARY, extra)), botocore_session=sa)
        reader = RecordService(Settings.from_env(service_env(self.keys, REPLICA, extra)), botocore_session=sb)
        ddb_a, ddb_b = boto3.client("dynamodb", region_name=PRIMARY), boto3.client("dynamodb", region_name=REPLICA)
        size, tag = self.size, "c" if cached else "d"

        def trip(i: int) -> float:
            ident = f"{tag}-{item_id(size, i)}"
            record = {"name": f"Ada {i}", "country": "NZ", "tier": 3, **sensitive_fields(size, i)}
            started = time.perf_counter()
            written = writer.write({"id": ident, "record": record})
            wrote = time.perf_counter() - started
            if not written.get("ok"):
                raise RuntimeError(f"write failed: {written}")
            # Global Tables replication, emulated (not timed): copy the item as the service would.
            item = ddb_a.get_item(TableName=TABLE, Key={"id": {"S": ident}})["Item"]
            ddb_b.put_item(TableName=TABLE, Item=item)
            started = time.perf_counter()
            read = reader.read({"id": ident})
            elapsed = wrote + time.perf_counter() - started
            if not read.get("ok") or read["record"] != record:
                raise RuntimeError(f"read back a different record for {ident}: {str(read)[:200]}")
            return elapsed

        return trip


def _same(out: bytes, plain: bytes) -> None:
    if out != plain:
        raise RuntimeError("a round trip returned different bytes")


def _suite_of(ciphertext: bytes) -> str:
    from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header

    header, _ = deserialize_header(io.BytesIO(ciphertext))
    return header.algorithm.name


def _interleaved(trips: dict[str, Trip], counts: dict[str, int], repeats: int, warmup: int) -> dict[str, list[float]]:
    for trip in trips.values():
        for i in range(warmup):
            trip(i)
    runs: dict[str, list[float]] = {name: [] for name in trips}
    offset = warmup
    for _ in range(repeats):
        for name, trip in trips.items():
            n = counts[name]
            gc.collect()
            total = sum(trip(offset + k) for k in range(n))
            runs[name].append(total / n * 1000)
        offset += max(counts.values())
    return runs


def run(plan: Plan, say: Callable[[str], None]) -> CryptoResults:
    started = time.perf_counter()
    results = CryptoResults(plan=plan)
    crypto_paths = (BASELINE, DEFAULT, CACHED, UNSIGNED, RAW)
    with in_process_aws() as keys:
        for size in plan.sizes:
            say(f"  crypto paths, {size} B records ...")
            builder = Paths(keys, size)
            trips: dict[str, Trip] = {}
            for path in (*crypto_paths, SERVICE_DEFAULT, SERVICE_CACHED):
                trips[path] = builder.build(path)[0]
                if path in crypto_paths:
                    trips[path](0)  # one round trip, to read the suite from a real ciphertext
                    results.ciphertext_bytes[(path, size)] = len(builder.last_ciphertext)
                    if path != RAW:
                        results.suites[path] = _suite_of(builder.last_ciphertext)
            counts = {p: plan.raw_records if p == RAW else plan.records for p in crypto_paths}
            counts |= {SERVICE_DEFAULT: plan.service_records, SERVICE_CACHED: plan.service_records}
            for path, ms in _interleaved(trips, counts, plan.repeats, plan.warmup).items():
                results.runs[(path, size)] = ms
        results.suites[RAW] = "AES-256-GCM, 96-bit random nonce, item id as AAD"

        if plan.latency_ms > 0:
            say(f"  modelled KMS latency {plan.latency_ms:g} ms per call, 1 KB ...")
            builder = Paths(keys, 1024, kms_latency_s=plan.latency_ms / 1000)
            trips = {p: builder.build(p)[0] for p in (BASELINE, DEFAULT, CACHED, UNSIGNED)}
            results.latency_runs = _interleaved(
                trips, dict.fromkeys(trips, plan.latency_records), plan.latency_repeats, 2
            )

        say("  counting KMS calls per record ...")
        for size in plan.sizes:
            builder = Paths(keys, size)
            for path in crypto_paths:
                trip, ra, rb = builder.build(path)  # fresh sessions and caches: counted from cold
                n = plan.count_records_cached if path == CACHED else plan.count_records
                for i in range(n):
                    trip(i)
                results.counts.append(Counted(path, size, n, ra.kms_by_operation(), rb.kms_by_operation()))
    results.seconds = time.perf_counter() - started
    return results
