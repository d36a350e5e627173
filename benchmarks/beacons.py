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

from benchmarks.moto_env import PRIMARY, REPLICA, Recorder, in_process_aws, recording_session, service_env
from lambda_src.record_crypto.beacons import MAC_ALGORITHM, Beacons, label, normalize, truncate
from lambda_src.record_crypto.service import RecordService
from lambda_src.record_crypto.settings import (
    ENV_BEACON_FIELDS,
    ENV_BEACON_KEY_ARN,
    BeaconField,
    Settings,
    beacon_fields_environment,
)

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


def _indexed_table(field: BeaconField) -> None:
    """The records table in PRIMARY again, with the beacon index the table stack declares."""
    ddb = boto3.client("dynamodb", region_name=PRIMARY)
    ddb.delete_table(TableName=TABLE)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": field.attribute, "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": field.index_name,
                "KeySchema": [{"AttributeName": field.attribute, "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def lookup_vs_scan(keys: Any, records: int, lookups: int = 5) -> dict[str, Any]:
    """One value looked up among ``records`` (distinct SSNs, 24-bit beacons): through the beacon index
    (the finder) against a scan that decrypts every record and compares (what one does without beacons)."""
    _indexed_table(FIELD)
    arn = _hmac_key(0.0)[0].replace(REPLICA, PRIMARY)
    env = service_env(keys, PRIMARY, {ENV_BEACON_FIELDS: beacon_fields_environment([FIELD]), ENV_BEACON_KEY_ARN: arn})
    recorder = Recorder()
    service = RecordService(Settings.from_env(env), botocore_session=recording_session(recorder))
    for i in range(records):
        service.put(f"p{i}", {"name": f"n{i}", "ssn": _ssn(i)})
    wanted = _ssn(records // 2)
    service.find({"field": FIELD.name, "value": wanted})  # warm: the field key
    calls = recorder.kms()
    times = []
    for _ in range(lookups):
        started = time.perf_counter()
        found = service.find({"field": FIELD.name, "value": wanted})
        times.append(time.perf_counter() - started)
    assert [m["id"] for m in found["matches"]] == [f"p{records // 2}"], found
    kms_per_lookup = (recorder.kms() - calls) / lookups
    started = time.perf_counter()
    scanned = _scan_and_decrypt(service, wanted)
    scan_s = time.perf_counter() - started
    assert scanned == [f"p{records // 2}"], scanned
    return {
        "records": records,
        "lookup_ms": statistics.median(times) * 1000,
        "scan_s": scan_s,
        "kms_per_lookup": kms_per_lookup,
    }


def _scan_and_decrypt(service: RecordService, wanted: str) -> list[str]:
    ddb = boto3.client("dynamodb", region_name=PRIMARY)
    target = normalize(FIELD, wanted)
    found, start = [], None
    while True:
        page = ddb.scan(TableName=TABLE, **({"ExclusiveStartKey": start} if start else {}))
        for item in page["Items"]:
            result, _, _ = service._authenticate(item, item["id"]["S"], None, service.cipher)
            if normalize(FIELD, result["record"][FIELD.name]) == target:
                found.append(item["id"]["S"])
        start = page.get("LastEvaluatedKey")
        if not start:
            return found


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


def render_lookup(row: dict[str, Any]) -> str:
    ratio = row["scan_s"] * 1000 / row["lookup_ms"]
    return (
        f"### One lookup among {row['records']:,} records (moto, 24-bit beacon, data-key cache off)\n\n"
        "| path | time | KMS calls |\n|---|---|---|\n"
        "| finder: beacon (local HMAC), one index Query, decrypt the candidates | "
        f"{row['lookup_ms']:.1f} ms (median) | "
        f"{row['kms_per_lookup']:g} per lookup (the candidates' Decrypt; 0 GenerateMac) |\n"
        f"| scan the table, decrypt and compare every record | {row['scan_s']:.1f} s | {row['records']:,} Decrypt |\n\n"
        f"The lookup is **{ratio:,.0f}x** faster than scan-and-decrypt (one run).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.beacons", description=__doc__)
    parser.add_argument("--lookups", type=int, default=500, help="beacons computed per derivation (default 500)")
    parser.add_argument("--kms-latency-ms", type=float, default=0.0, help="modelled KMS latency per call (default 0)")
    parser.add_argument("--records", type=int, default=0, help="also time one lookup against a scan of N records")
    args = parser.parse_args(argv)
    with in_process_aws() as keys:
        rows = derivations(args.lookups, args.kms_latency_ms / 1000)
        lookup = lookup_vs_scan(keys, args.records) if args.records else None
    print(render(rows, lengths(), args.kms_latency_ms))
    if lookup is not None:
        print(render_lookup(lookup))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
