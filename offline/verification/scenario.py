"""The main job: one list of checks, built by ``main_job`` from the environment, run by
``python -m offline demo`` on the emulator and by ``python -m offline verify`` on a real account
(the same list; a check needing what only the emulator can do is reported N/A there).

DynamoDB store: write in the primary, read in every replica, only ciphertext at rest; per replica
the read before replication, the table-writer attacks (offline/verification/integrity.py) and the
cross-role refusals; a malformed event; clean logs; then the deployment read back: each role
refused a foreign encryption context, the deployed invariants (invariants.py, and the checks
appended to ``deployed_checks``), the alarms (signals.py), the key's rotation, the tamper
refusals reaching the alarms; last, the audit trail read back and the audit alerts (audit.py).
The Aurora PostgreSQL store's list: aurora_scenario.py. A deployment with tenants (either store):
``tenants_main_job``, the tenant checks (tenants.py) and these checks run as a tenant.

``run_main_job`` ends the DynamoDB store's run with the clean-up (basics.py ``clean_up``), whatever
happened before it: every id the run used is deleted in every region, so that ``verify`` leaves a
production table as it found it.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

from offline.runbooks.rotation import rotate
from offline.verification.audit import audit_checks
from offline.verification.aurora_scenario import AURORA, aurora_checks, database_checks, deployed_aurora_checks
from offline.verification.aurora_scenario import clean_up as aurora_clean_up
from offline.verification.basics import (
    Run,
    as_bytes,
    clean_up,
    closing_checks,
    cross_role_checks,
    no_plaintext,
    read_until_replicated,
    roundtrip_checks,
    write,
)
from offline.verification.beacons import beacon_checks, tenant_beacon_checks
from offline.verification.checks import (
    Capability,
    Check,
    Environment,
    NamedCheck,
    Report,
    Result,
    check,
    run_checks,
    run_one,
)
from offline.verification.integrity import integrity_checks
from offline.verification.invariants import deployed_checks
from offline.verification.probes import context_checks
from offline.verification.signals import SignalsReader, alarm_checks, tamper_alarms_check
from offline.verification.tenants import (
    as_tenant,
    attacked_regions,
    in_attacked_regions,
    record_checks,
    tenant_audit_checks,
    tenant_checks,
    tenant_runs,
)


def main_job(env: Environment, run: Run | None = None) -> list[Check | NamedCheck]:
    """The main job's checks for ``env``'s deployment: what demo and verify both run."""
    run = run or Run()
    if env.tenant_regions:
        return tenants_main_job(run, env)
    if env.store == AURORA:
        return [*aurora_checks(run, env), *beacon_checks(run, env)]
    return dynamodb_checks(run, env)


def title(env: Environment) -> str:
    where = f"write in {env.primary_region}, read in {', '.join(env.replica_regions)}"
    if env.store == AURORA:
        return f"Aurora PostgreSQL store: {where}"
    return f"Cross-region client-side encryption: {where}"


def run_main_job(
    env: Environment, *, header: list[str] | None = None, progress: Callable[[str], None] | None = None
) -> Report:
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    run = Run()
    report = Report(title(env), header=list(header or []))
    finished = False
    try:
        run_checks(main_job(env, run), env, report)
        finished = True
    finally:  # whatever happened (a failed check, an error, Ctrl-C), the items written go
        cleaned = run_one(aurora_clean_up(run) if env.store == AURORA else clean_up(run), env)
        report.checks.append(cleaned)
        if not finished:
            say(f"{cleaned.status}  {cleaned.name}: {cleaned.detail}")
    for name, detail in env.problems():
        report.checks.append(Result(name, False, detail, 0.0))
    return report


def dynamodb_checks(run: Run, env: Environment) -> list[Check | NamedCheck]:
    out: list[Check | NamedCheck] = [*roundtrip_checks(run, env, _at_rest, "table")]
    for replica in env.replica_regions:
        out.append(
            check(f"reader in {replica} before replication gets a retryable NotFound", partial(_before, run, replica))
        )
        out += integrity_checks(run, env, replica) + cross_role_checks(run, replica)
    out += beacon_checks(run, env)
    return [*out, *closing_checks(run), *read_back_checks(run, env), *audit_checks(run, env)]


def tenants_main_job(run: Run, env: Environment) -> list[Check | NamedCheck]:
    """A deployment with tenants (README "Tenants"): the tenant checks, with beacon fields the finder per
    tenant (beacons.py), the records attacked and rotated as a tenant (tenants.py), a malformed event and
    clean logs, the alarms, the tamper refusals reaching the alarms of the regions attacked."""
    runs = tenant_runs(run, env.tenant_regions)
    first = next(iter(env.tenant_regions))
    regions = (env.primary_region, *env.replica_regions)
    signals = SignalsReader(env.client)
    return [
        *(database_checks(env) if env.store == AURORA else ()),
        *tenant_checks(run, env, runs),
        *tenant_beacon_checks(runs, env),
        *record_checks(runs, env),
        *(as_tenant(c, first) for c in closing_checks(run)),
        *(
            deployed_aurora_checks(env, regions)
            if env.store == AURORA
            else alarm_checks(signals, regions, env.table_name, env.function_names)
        ),
        # where a tenant's records were attacked (none if no tenant's records replicate between its regions)
        *([in_attacked_regions(tamper_alarms_check())] if env.store != AURORA and attacked_regions(env) else []),
        *tenant_audit_checks(runs, env),
    ]


def read_back_checks(run: Run, env: Environment) -> list[Check | NamedCheck]:
    """The deployment read back through the AWS APIs, and what it does with the key and the alarms."""
    regions = (env.primary_region, *env.replica_regions)
    signals = SignalsReader(env.client)
    return [
        *context_checks(env),
        *deployed_checks(env.reader, regions, env.observed_context),
        *alarm_checks(signals, regions, env.table_name, env.function_names),
        check(
            "the multi-region key rotates on demand, and every region decrypts across the rotation",
            partial(_rotation, run),
            Capability.ROTATE_AT_WILL,
        ),
        tamper_alarms_check(),
    ]


def _at_rest(run: Run, region: str, env: Environment) -> str:
    item = env.raw_item(region, run.main["item_id"])
    assert item is not None, "item missing"
    no_plaintext(env, item, run.main["record"])
    binary = [k for k, v in item.items() if isinstance(v, dict) and "B" in v]
    assert len(binary) == 1, f"expected one ciphertext attribute, found {binary}"
    plain = [k for k in ("name", "country") if k in item]
    assert plain == ["name", "country"], "non-sensitive attributes should stay queryable"
    size = len(base64.b64encode(as_bytes(item[binary[0]]["B"])))
    return f"sensitive fields only inside '{binary[0]}' ({size} b64 chars)"


def _before(run: Run, replica: str, env: Environment) -> str:
    """Where replication lags for sure (the emulator), a fresh write; elsewhere an id never written."""
    if Capability.HOLD_REPLICATION in env.capabilities:
        item_id, _, _ = write(run, env, f"fresh-{replica}")
    else:
        item_id = run.item_id("never-written")
    inv = env.invoke(replica, "reader", {"id": item_id})
    err = inv.result.get("error", {})
    assert err.get("type") == "NotFound" and err.get("retryable") is True, f"got {json.dumps(inv.result)[:200]}"
    return f"{err['type']} (retryable) for an item not yet in {replica}"


def _rotation(run: Run, env: Environment) -> str:
    """Records written before and after an on-demand rotation decrypt in every region; a replica
    cannot be rotated (the emulator rotates material for real: offline/emulator/moto_patches.py)."""
    primary = env.primary_region
    tag = run.run_id
    record: dict[str, Any] = {"name": "rotation", **{f: f"SECRET-{f}-{tag}-rotation" for f in env.sensitive_fields}}
    before = _written(env, run.item_id("rotation-before"), record)
    done = rotate(env.client("kms", primary), env.reader.mrk_arn(primary))
    after = _written(env, run.item_id("rotation-after"), record)
    for region in env.replica_regions:
        for item_id in (before, after):
            inv = read_until_replicated(env, region, item_id)
            assert inv.result.get("ok") is True, f"{item_id} in {region}: {str(inv.result)[:200]}"
            assert inv.result["record"] == record, f"{item_id} read in {region} differs from what was written"
    replica = env.replica_regions[0]
    try:
        env.client("kms", replica).rotate_key_on_demand(KeyId=env.reader.mrk_arn(replica))
    except Exception as error:  # botocore ClientError: KMS refuses to rotate a replica
        refused = type(error).__name__
    else:
        raise AssertionError(f"RotateKeyOnDemand on the {replica} replica was accepted")
    return (
        f"{done.split(' (')[0]}; records written before and after decrypt in "
        f"{', '.join(env.replica_regions)}; rotating the {replica} replica is refused ({refused})"
    )


def _written(env: Environment, item_id: str, record: dict[str, Any]) -> str:
    result = env.invoke(env.primary_region, "writer", {"id": item_id, "record": record}).result
    assert result.get("ok") is True, f"write of {item_id} failed: {str(result)[:200]}"
    return item_id
