"""Beacons (README "Beacons"): the two ways of keying them, and what each length gives away, in one run.

``python -m benchmarks.beacons [--lookups N] [--kms-latency-ms MS]`` prints markdown (benchmarks/BEACONS.md
holds a run). Under moto, with the multi-region HMAC key of ``moto_env`` (replicated to a second region):

* ``derived``: one ``GenerateMac`` over the field's label per container (cold start), then HMAC-SHA256
  computed locally per value (record_crypto/beacons.py, what the functions do);
* ``per value``: one ``GenerateMac`` over the label and the value for every beacon.

Then, locally (the field key derived once), for 8, 16, 24 and 32 bits and tables of 10,000 and 100,000
records of distinct values: candidates per lookup (the record sought and the false positives that share
its beacon, which the finder decrypts and drops), and what an observer of the table learns (the share of
records whose beacon no other record has: for those, equal beacons mean equal values almost surely).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import random
import statistics
import time
from collections import Counter
from typing import Any

import boto3

from benchmarks.moto_env import PRIMARY, REPLICA, Recorder, in_process_aws, recording_session
from lambda_src.record_crypto.beacons import MAC_ALGORITHM, Beacons, label, normalize, truncate
from lambda_src.record_crypto.settings import BeaconField

TABLE = "mrk-toolkit-records"
FIELD = BeaconField("ssn", 24, "digits")
BITS = (8, 16, 24, 32)
TABLE_SIZES = (10_000, 100_000)


def _hmac_key(kms_latency_s: float) -> tuple[str, Recorder, Any]:
    kms = boto3.client("kms", region_name=PRIMARY)
    key = kms.create_key(MultiRegion=True, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    replica = kms.replicate_key(KeyId=key["KeyId"], ReplicaRegion=REPLICA)["ReplicaKeyMetadata"]
    recorder = Recorder()
    return replica["Arn"], recorder, recording_session(recorder, kms_latency_s=kms_latency_s)


def _ssn(i: int) -> str:
    return f"{i // 1_000_000 % 1000:03d}-{i // 10_000 % 100:02d}-{i % 10_000:04d}"


def derivations(lookups: int, kms_latency_s: float) -> list[dict[str, Any]]:
    """Per beacon: median microseconds and KMS calls, after the first (cold) one; the cold one apart."""
    arn, recorder, session = _hmac_key(kms_latency_s)
    rows = []
    derived = Beacons(key_arn=arn, table=TABLE, fields=(FIELD,), botocore_session=session)
    started = time.perf_counter()
    derived.beacon(FIELD.name, _ssn(0), None)
    cold_ms = (time.perf_counter() - started) * 1000
    rows.append(
        _timed(
            "derived (field key per cold start)",
            lambda v: derived.beacon(FIELD.name, v, None),
            recorder,
            lookups,
            cold_ms,
        )
    )
    kms = session.create_client("kms", region_name=REPLICA)

    def per_value(value: str) -> int:
        message = label(TABLE, FIELD.name, None) + normalize(FIELD, value)
        return truncate(kms.generate_mac(KeyId=arn, MacAlgorithm=MAC_ALGORITHM, Message=message)["Mac"], FIELD.bits)

    rows.append(_timed("per value (GenerateMac each)", per_value, recorder, lookups, None))
    return rows


def _timed(name: str, compute: Any, recorder: Recorder, lookups: int, cold_ms: float | None) -> dict[str, Any]:
    before = recorder.kms()
    times = []
    for i in range(1, lookups + 1):
        started = time.perf_counter()
        compute(_ssn(i))
        times.append((time.perf_counter() - started) * 1e6)
    return {
        "name": name,
        "median_us": statistics.median(times),
        "kms_per_beacon": (recorder.kms() - before) / lookups,
        "cold_ms": cold_ms,
    }


def lengths(seed: int = 21) -> list[dict[str, Any]]:
    """Candidates per lookup and beacons unique in the table, per length and table size (distinct values)."""
    rng = random.Random(seed)
    field_key = rng.randbytes(32)  # any key: the distribution is HMAC's, not the key's
    rows = []
    for size in TABLE_SIZES:
        values = rng.sample(range(1_000_000_000), size)
        macs = [hmac.new(field_key, f"{v:09d}".encode(), hashlib.sha256).digest() for v in values]
        for bits in BITS:
            beacons = [truncate(m, bits) for m in macs]
            counts = Counter(beacons)
            candidates = [counts[b] for b in beacons]  # a lookup of each record's own value
            rows.append(
                {
                    "size": size,
                    "bits": bits,
                    "mean_candidates": statistics.fmean(candidates),
                    "max_candidates": max(candidates),
                    "false_positive_rate": statistics.fmean(c - 1 for c in candidates) / (size - 1),
                    "unique_share": sum(1 for c in candidates if c == 1) / size,
                }
            )
    return rows


def render(derivation_rows: list[dict[str, Any]], length_rows: list[dict[str, Any]], kms_latency_ms: float) -> str:
    out = [
        f"### Keying the beacons (moto, modelled KMS latency {kms_latency_ms:g} ms per call)",
        "",
        "| derivation | per beacon (median) | KMS calls per beacon after cold start | cold start (first beacon) |",
        "|---|---|---|---|",
    ]
    for r in derivation_rows:
        cold = f"{r['cold_ms']:.1f} ms (1 GenerateMac)" if r["cold_ms"] is not None else "none"
        out.append(f"| {r['name']} | {r['median_us']:.1f} µs | {r['kms_per_beacon']:g} | {cold} |")
    out += [
        "",
        "### Beacon length: candidates per lookup and what the table tells an observer (distinct values)",
        "",
        "| records | bits | candidates per lookup (mean / max) | false-positive rate per record | "
        "records whose beacon is unique |",
        "|---|---|---|---|---|",
    ]
    for r in length_rows:
        out.append(
            f"| {r['size']:,} | {r['bits']} | {r['mean_candidates']:.2f} / {r['max_candidates']} | "
            f"{r['false_positive_rate']:.2e} | {r['unique_share']:.1%} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.beacons", description=__doc__)
    parser.add_argument("--lookups", type=int, default=500, help="beacons computed per derivation (default 500)")
    parser.add_argument("--kms-latency-ms", type=float, default=0.0, help="modelled KMS latency per call (default 0)")
    args = parser.parse_args(argv)
    with in_process_aws():
        rows = derivations(args.lookups, args.kms_latency_ms / 1000)
    print(render(rows, lengths(), args.kms_latency_ms))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
