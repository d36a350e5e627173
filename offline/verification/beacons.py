"""The finder in the main job and ``verify`` (README "Beacons"): with beacon fields configured, a record
written in the primary region is found by each beacon field's value from every region; a value never
written finds nothing; where a field's beacon is short enough (at most ``SHORT_BITS``) for the run to meet a
false positive, records are written until two share a beacon and the finder returns only the one asked for;
a beacon planted by a table writer (``ALTER_ITEMS``, DynamoDB) is refused; and per region the finder's role
may Decrypt only with the record context, may not GenerateDataKey, and (DynamoDB) may not write the table.

Every id written is minted by the ``Run``, so the clean-up deletes it (basics.py ``clean_up``).
"""

from __future__ import annotations

import json
import secrets
import time
from functools import partial
from typing import Any

from lambda_src.record_crypto.settings import BeaconField
from offline.emulator.iam_gate import request_target
from offline.verification.aurora_scenario import AURORA
from offline.verification.basics import Run, failure, read_until_replicated
from offline.verification.checks import Capability, Check, Environment, check
from offline.verification.invariants import required_context
from offline.verification.probes import foreign_contexts
from policy_engine import Caller, Request, authorize

# A beacon this short meets a false positive within MAX_FALSE_POSITIVE_WRITES writes all but surely
# (8 bits: 64 values share none of 256 beacons with probability ~4e-4; 10 bits: 128 of 1024, ~4e-4).
SHORT_BITS = 10
MAX_FALSE_POSITIVE_WRITES = {8: 64, 9: 96, 10: 128}
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")


def beacon_checks(run: Run, env: Environment) -> list[Check]:
    """The finder's checks for ``env``'s beacon fields (none without beacon fields)."""
    fields = env.beacon_fields
    if not fields:
        return []
    regions = (env.primary_region, *env.replica_regions)
    names = ", ".join(f.name for f in fields)
    out = [
        check(
            f"beacons: a record written in {env.primary_region} is found by {names} from every region",
            partial(_found, run),
        ),
        check("beacons: a value never written finds nothing in every region", _nothing),
    ]
    short = [f for f in fields if f.bits <= SHORT_BITS]
    if short and env.store != AURORA:
        out.append(
            check(
                f"beacons: the {short[0].bits}-bit beacon's false positives are decrypted and dropped",
                partial(_false_positive, run, short[0]),
            )
        )
    if env.store != AURORA:
        out.append(
            check(
                f"beacons: a beacon planted by a table writer in {env.replica_regions[0]} is refused, not returned",
                partial(_planted, run),
                Capability.ALTER_ITEMS,
            )
        )
    out += [
        check(
            f"beacons: the finder's role in {r} may only decrypt records and compute beacons", partial(_finder_role, r)
        )
        for r in regions
    ]
    return out


def digits_value() -> str:
    """A value no real record holds, whatever the field's normalization (digits only keeps it whole)."""
    n = secrets.randbelow(10**9)
    return f"9{n:09d}"


def _found(run: Run, env: Environment) -> str:
    item_id = run.item_id("beacon-found")
    record = {**run.sample_record(env, "beacon-found"), **{f.name: digits_value() for f in env.beacon_fields}}
    inv = env.invoke(env.primary_region, "writer", {"id": item_id, "record": record})
    assert inv.result.get("ok") is True, failure("writer", inv)
    seen = []
    for region in (env.primary_region, *env.replica_regions):
        read_until_replicated(env, region, item_id)  # the index follows the item (eventually, on AWS)
        for field in env.beacon_fields:
            found = _find_until(env, region, field.name, record[field.name], lambda m: bool(m))
            ids = [m["id"] for m in found["matches"]]
            assert ids == [item_id], f"{field.name} in {region}: expected [{item_id}], got {ids}"
            match = found["matches"][0]
            assert match["record"] == record, f"{field.name} in {region}: the record found differs from the one written"
            assert match["version"] == 1, f"{field.name} in {region}: version {match['version']}"
        seen.append(region)
    return f"{item_id} found by {', '.join(f.name for f in env.beacon_fields)} in {', '.join(seen)}"


def _nothing(env: Environment) -> str:
    for region in (env.primary_region, *env.replica_regions):
        for field in env.beacon_fields:
            found = _find(env, region, field.name, digits_value())
            assert found["matches"] == [], f"{field.name} in {region}: a value never written found {found['matches']}"
    return f"no match for a fresh value of each field in {len(env.replica_regions) + 1} regions"


def _false_positive(run: Run, field: BeaconField, env: Environment) -> str:
    """Records with distinct values until two share a beacon (read from the table); the finder asked for
    one value meets both candidates and returns only the record holding it."""
    by_beacon: dict[str, tuple[str, str]] = {}
    for i in range(MAX_FALSE_POSITIVE_WRITES[field.bits]):
        item_id, value = run.item_id(f"beacon-fp-{i}"), digits_value()
        inv = env.invoke(env.primary_region, "writer", {"id": item_id, "record": {field.name: value}})
        assert inv.result.get("ok") is True, failure("writer", inv)
        item = env.raw_item(env.primary_region, item_id) or {}
        beacon = json.dumps(item.get(field.attribute), sort_keys=True)
        assert field.attribute in item, f"{item_id} was stored without {field.attribute}"
        if beacon in by_beacon:
            break
        by_beacon[beacon] = (item_id, value)
    else:
        raise AssertionError(f"{i + 1} values of {field.bits} bits met no shared beacon (probability below 1e-3)")
    region = env.replica_regions[0]
    first_id, first_value = by_beacon[beacon]
    read_until_replicated(env, region, item_id)
    found = _find_until(env, region, field.name, first_value, lambda m: True, candidates=2)
    ids = [m["id"] for m in found["matches"]]
    assert ids == [first_id], f"{first_value} in {region}: expected [{first_id}], got {ids}"
    return (
        f"{first_id} and {item_id} share a {field.bits}-bit beacon after {i + 1} writes; the finder in {region} "
        f"met {found['candidates']} candidates and returned {first_id} alone"
    )


def _planted(run: Run, env: Environment) -> str:
    """A table writer copies a record's beacon onto another record: the finder refuses the lookup
    (TamperedRecord: the beacon is signed with the record), it never returns the other record."""
    field, region = env.beacon_fields[0], env.replica_regions[0]
    victim, bystander = run.item_id("beacon-victim"), run.item_id("beacon-planted")
    value = digits_value()
    for item_id, record in ((victim, {field.name: value}), (bystander, {"name": "Mallory"})):
        inv = env.invoke(env.primary_region, "writer", {"id": item_id, "record": record})
        assert inv.result.get("ok") is True, failure("writer", inv)
        read_until_replicated(env, region, item_id)
    beacon = (env.raw_item(region, victim) or {}).get(field.attribute)
    assert beacon is not None, f"{victim} in {region} has no {field.attribute}"
    planted = env.raw_item(region, bystander) or {}
    env.put_raw_item(region, {**planted, field.attribute: beacon})
    deadline = time.monotonic() + env.replication_deadline_s
    while True:
        found = _invoke_finder(env, region, field.name, value)
        error = found.get("error", {})
        if error.get("type") == "TamperedRecord" or time.monotonic() > deadline:
            break
        assert bystander not in [m["id"] for m in found.get("matches", [])], f"the planted record was returned: {found}"
        time.sleep(0.3)
    assert error.get("type") == "TamperedRecord", f"expected TamperedRecord, got {json.dumps(found)[:300]}"
    return f"{bystander} given {victim}'s {field.attribute} in {region}: {error['type']} ({error.get('status')})"


def _finder_role(region: str, env: Environment) -> str:
    reader = env.reader
    context = dict(env.observed_context() or required_context(reader.key_policy(region, reader.mrk_arn(region))))
    allowed, why = env.kms_allowed(region, "finder", "kms:Decrypt", context)
    assert allowed, f"the finder's role may not decrypt with the record context: {why}"
    for label, foreign in foreign_contexts(context, env.table_name).items():
        allowed, why = env.kms_allowed(region, "finder", "kms:Decrypt", foreign)
        assert not allowed, f"{env.kms_decider} allowed the finder's role kms:Decrypt with {label}: {why}"
    allowed, why = env.kms_allowed(region, "finder", "kms:GenerateDataKey", context)
    assert not allowed, f"{env.kms_decider} allowed the finder's role kms:GenerateDataKey: {why}"
    if env.store == AURORA:  # the finder signs in as records_reader: its SELECT-only grants are the database checks'
        return "Decrypt with the record context only; GenerateDataKey refused"
    finder = reader.role_arns[(region, "finder")]
    for operation in WRITES:
        params: dict[str, Any] = {"TableName": reader.table_name, "Key": {"id": {"S": "x"}}, "Item": {"id": {"S": "x"}}}
        if operation == "BatchWriteItem":
            params = {"RequestItems": {reader.table_name: [{"PutRequest": {"Item": {"id": {"S": "x"}}}}]}}
        action, resource, keys = request_target("dynamodb", operation, params, region, reader.account)
        decision = authorize(
            Request(Caller(reader.account, arn=finder), action, resource, keys),
            identity_policies=reader.role_policies(finder),
        )
        assert not decision.allowed, f"the finder's role may {action} on the table: {decision.reason}"
    return f"Decrypt with the record context only; GenerateDataKey and {', '.join(WRITES)} refused"


def _invoke_finder(env: Environment, region: str, field: str, value: str) -> dict[str, Any]:
    return env.invoke(region, "finder", {"field": field, "value": value}).result


def _find(env: Environment, region: str, field: str, value: str) -> dict[str, Any]:
    found = _invoke_finder(env, region, field, value)
    assert found.get("ok") is True, f"finder in {region}: {json.dumps(found)[:300]}"
    return found


def _find_until(
    env: Environment, region: str, field: str, value: str, done: Any, candidates: int = 0
) -> dict[str, Any]:
    """Asked again while the index has not caught up (a GSI is eventually consistent), up to the deadline."""
    deadline = time.monotonic() + env.replication_deadline_s
    while True:
        found = _find(env, region, field, value)
        if (done(found["matches"]) and found.get("candidates", 0) >= candidates) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)
