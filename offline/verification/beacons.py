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
from collections.abc import Mapping
from functools import partial
from typing import Any

from lambda_src.record_crypto.errors import ERROR_TYPES, TamperedRecord
from lambda_src.record_crypto.records import TENANT_ATTRIBUTE
from lambda_src.record_crypto.settings import TENANT_KEY, BeaconField
from offline.emulator.iam_gate import request_target
from offline.verification.aurora_scenario import AURORA
from offline.verification.basics import Run, error_type, failure, read_until_replicated
from offline.verification.checks import Capability, Check, Environment, check
from offline.verification.invariants import required_context
from offline.verification.probes import foreign_contexts
from offline.verification.tenants import TenantView, as_tenant
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


# -- tenants with beacons (README "Beacons", "Tenants") ------------------------------------------
def tenant_beacon_checks(runs: Mapping[str, Run], env: Environment) -> list[Check]:
    """With tenants and beacon fields: per tenant, its record found by each field in each of its regions
    and a fresh value finding nothing (the finder asked as that tenant); where two tenants share a region,
    equal values stored with different beacons and each tenant finding its own record only, nothing of the
    other's; a beacon copied from one tenant's record onto another's never returned (``ALTER_ITEMS``,
    DynamoDB); per region the finder's tenant sessions decrypting their own tenant's data keys only
    (``TENANT_SESSIONS``). None without beacon fields."""
    fields = env.beacon_fields
    if not fields:
        return []
    names = ", ".join(f.name for f in fields)
    out: list[Check] = []
    for tenant in env.tenant_regions:
        out.append(
            as_tenant(
                check(
                    f"beacons: a record is found by {names} in each of its tenant's regions",
                    partial(_found, runs[tenant]),
                ),
                tenant,
            )
        )
        out.append(as_tenant(check("beacons: a value never written finds nothing", _nothing), tenant))
    first = next(iter(runs.values()))
    shared = _shared_pairs(env)
    if shared:
        out.append(
            check(
                f"beacons: equal values of two tenants are stored with different beacons, each tenant finds its own "
                f"only ({', '.join(shared)})",
                partial(_tenants_apart, first),
            )
        )
    if shared and env.store != AURORA:
        region = next(iter(shared))
        out.append(
            check(
                f"beacons: a beacon copied from one tenant's record onto another's in {region} is never returned",
                partial(_copied_across_tenants, first, region),
                Capability.ALTER_ITEMS,
            )
        )
    regions = (env.primary_region, *env.replica_regions)
    out += [
        check(
            f"beacons: the finder's tenant sessions in {r} decrypt their own tenant's records only",
            partial(_finder_sessions, r),
            Capability.TENANT_SESSIONS,
        )
        for r in regions
        if any(r in own for own in env.tenant_regions.values())
    ]
    return out


def _shared_pairs(env: Environment) -> dict[str, tuple[str, str]]:
    """Region -> the first two tenants (by id) whose keys are both there."""
    out = {}
    for region in (env.primary_region, *env.replica_regions):
        here = [t for t, own in env.tenant_regions.items() if region in own]
        if len(here) > 1:
            out[region] = (here[0], here[1])
    return out


def _tenant_write(run: Run, env: Environment, tenant: str, label: str, record: dict[str, Any], region: str) -> str:
    """``record`` written as ``tenant`` in its writer region, read back as it in ``region``; its id."""
    view = TenantView(env, tenant)
    item_id = run.item_id(f"{label}-{tenant}")
    inv = view.invoke(view.primary_region, "writer", {"id": item_id, "record": record})
    assert inv.result.get("ok") is True, failure(f"{tenant}'s writer", inv)
    read = read_until_replicated(env, region, item_id, extra={TENANT_KEY: tenant})
    assert read.result.get("ok") is True, failure(f"{tenant}'s reader in {region}", read)
    return item_id


def _find_as(env: Environment, region: str, tenant: str, field: str, value: str) -> dict[str, Any]:
    return TenantView(env, tenant).invoke(region, "finder", {"field": field, "value": value}).result


def _tenants_apart(run: Run, env: Environment) -> str:
    field, seen = env.beacon_fields[0], []
    for region, (tenant, other) in _shared_pairs(env).items():
        value, only = digits_value(), digits_value()
        ids = {
            t: _tenant_write(run, env, t, f"beacon-apart-{region}", {field.name: value}, region)
            for t in (tenant, other)
        }
        _tenant_write(run, env, tenant, f"beacon-solo-{region}", {field.name: only}, region)
        if env.store != AURORA:
            stored = {t: (env.raw_item(region, i) or {}).get(field.attribute) for t, i in ids.items()}
            assert stored[tenant] is not None and stored[other] is not None, f"{region}: no {field.attribute} stored"
            assert stored[tenant] != stored[other], f"{region}: {tenant} and {other} stored the same beacon {stored}"
        for who in (tenant, other):
            found = _find_until_as(env, region, who, field.name, value, lambda m: bool(m))
            got = [m["id"] for m in found.get("matches", [])]
            assert got == [ids[who]], f"{who} in {region}: expected [{ids[who]}], got {got} ({str(found)[:200]})"
        found = _find_as(env, region, other, field.name, only)
        assert found.get("ok") is True and found["matches"] == [], f"{other} found {tenant}'s value: {str(found)[:300]}"
        seen.append(f"{tenant} and {other} in {region}")
    where = "stored beacons differ; " if env.store != AURORA else ""
    return f"{where}each found its own record only, nothing of the other's value: {'; '.join(seen)}"


def _find_until_as(
    env: Environment, region: str, tenant: str, field: str, value: str, done: Any, candidates: int = 0
) -> dict[str, Any]:
    """As ``_find_until``, as ``tenant``."""
    return _find_until(TenantView(env, tenant), region, field, value, done, candidates)  # type: ignore[arg-type]


def _copied_across_tenants(run: Run, region: str, env: Environment) -> str:
    """A table writer copies tenant A's beacon onto tenant B's record (to have it found by A's lookups): A's
    finder meets it and never returns it (never decrypts it with A's rights); B's reader refuses B's record
    (the beacon is signed with it); relabelled as A's, A's finder refuses the lookup (B's data key is not
    A's to decrypt)."""
    tenant, other = _shared_pairs(env)[region]
    field, value = env.beacon_fields[0], digits_value()
    victim = _tenant_write(run, env, tenant, "beacon-copied-from", {field.name: value}, region)
    target = _tenant_write(run, env, other, "beacon-copied-onto", {field.name: digits_value()}, region)
    beacon = (env.raw_item(region, victim) or {}).get(field.attribute)
    item = env.raw_item(region, target) or {}
    assert beacon is not None and item, f"{victim} or {target} missing in {region}"
    env.put_raw_item(region, {**item, field.attribute: beacon})
    found = _find_until_as(env, region, tenant, field.name, value, lambda m: True, candidates=2)
    got = [m["id"] for m in found.get("matches", [])]
    assert got == [victim], f"{tenant}'s lookup in {region}: expected [{victim}], got {got} ({str(found)[:200]})"
    read = env.invoke(region, "reader", {"id": target, TENANT_KEY: other})
    assert error_type(read) == TamperedRecord.type, f"{other}'s read of {target}: {str(read.result)[:300]}"
    env.put_raw_item(region, {**item, field.attribute: beacon, TENANT_ATTRIBUTE: {"S": tenant}})
    relabelled = _find_as(env, region, tenant, field.name, value)
    kind = relabelled.get("error", {}).get("type")
    assert kind in ERROR_TYPES and ERROR_TYPES[kind].security_signal, f"relabelled: {json.dumps(relabelled)[:300]}"
    return (
        f"{tenant}'s beacon on {other}'s {target}: {tenant}'s finder met {found['candidates']} candidates and "
        f"returned {victim} alone; {other}'s reader {TamperedRecord.type}; relabelled {tenant}'s: {kind}"
    )


def _finder_sessions(region: str, env: Environment) -> str:
    """As the finder's role, each tenant's session of the finder's tenant-access role: it decrypts a data key
    its tenant's writer session made with its tenant's key and context, is refused another tenant's, and
    may make no data key."""
    here = [t for t, own in env.tenant_regions.items() if region in own]
    context = {k: v for k, v in (env.observed_context() or {}).items() if k != TENANT_KEY}
    made: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    for tenant in here:
        writer, keys = env.tenant_session_kms(region, "writer", tenant)
        ctx = {**context, TENANT_KEY: tenant}
        made[tenant] = (writer.generate_data_key(KeyId=keys[tenant], KeySpec="AES_256", EncryptionContext=ctx), ctx)
    for tenant in here:
        finder, keys = env.tenant_session_kms(region, "finder", tenant)
        (data_key, ctx) = made[tenant]
        plain = finder.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"]
        assert plain == data_key["Plaintext"], f"{tenant}'s finder session in {region} decrypted another plaintext"
        make = {"KeyId": keys[tenant], "KeySpec": "AES_256", "EncryptionContext": ctx}
        _refused(finder.generate_data_key, make, f"{tenant}'s finder session in {region} made a data key")
        for other in (t for t in here if t != tenant):
            theirs, their_ctx = made[other]
            _refused(
                finder.decrypt,
                {"CiphertextBlob": theirs["CiphertextBlob"], "EncryptionContext": their_ctx},
                f"{tenant}'s finder session in {region} decrypted {other}'s data key",
            )
    crossed = "; another tenant's refused" if len(here) > 1 else ""
    return f"{', '.join(here)}: each session decrypts its own tenant's data key{crossed}; GenerateDataKey refused"


def _refused(call: Any, params: Mapping[str, Any], what: str) -> None:
    try:
        call(**params)
    except Exception as error:  # botocore ClientError
        assert "AccessDenied" in type(error).__name__ or "AccessDenied" in str(error), str(error)[:200]
    else:
        raise AssertionError(what)
