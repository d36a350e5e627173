"""The main job of a deployment with tenants (README "Tenants"), written for any tenant configuration:
per tenant, a record written in its key's primary-most region is read in each of its regions; read as
another tenant it is refused (TenantMismatch) before any KMS call; in a region without the tenant's
key it is refused (TenantNotInRegion) although its ciphertext is there; an unknown tenant is a 400.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from lambda_src.record_crypto.errors import TenantMismatch, TenantNotInRegion, UnknownTenant
from lambda_src.record_crypto.settings import ENV_TENANT_KEYS, TENANT_KEY
from offline.verification.basics import Run, error_type, no_plaintext, read_until_replicated
from offline.verification.checks import Capability, Check, Environment, NamedCheck, check


def tenant_regions(environments: Mapping[str, Mapping[str, str]]) -> dict[str, tuple[str, ...]]:
    """Tenant -> the regions where its key exists, from the readers' TENANT_KEYS (region -> environment)."""
    out: dict[str, list[str]] = {}
    for region, environment in sorted(environments.items()):
        for tenant, key_id in json.loads(environment.get(ENV_TENANT_KEYS) or "{}").items():
            out.setdefault(tenant, [])
            if key_id:
                out[tenant].append(region)
    return {tenant: tuple(regions) for tenant, regions in sorted(out.items())}


# tenant -> (item id, record, region written in): what the first checks wrote, for the others.
Written = dict[str, tuple[str, dict[str, Any], str]]


def tenant_checks(run: Run, env: Environment) -> list[Check | NamedCheck]:
    tenants = env.tenant_regions
    written: Written = {}
    out: list[Check | NamedCheck] = [
        check(f"tenant {tenant} writes and reads in {', '.join(regions)}", partial(_own, run, written, tenant))
        for tenant, regions in tenants.items()
    ]
    if len(tenants) > 1:
        out.append(check("a record of one tenant read as another is refused", partial(_crossed, written)))
    out.append(check("a tenant's record outside its regions is there, and refused", partial(_outside, written)))
    out.append(check("an unknown tenant is a 400 naming it", _unknown))
    out.append(
        check(
            "a function holding one tenant's session is refused KMS for another tenant's key and context",
            _session_bound,
            Capability.TENANT_SESSIONS,
        )
    )
    return out


def _record(env: Environment, tenant: str, tag: str) -> dict[str, Any]:
    secrets = {f: f"SECRET-{f}-{tenant}-{tag}" for f in env.sensitive_fields}
    return {"name": f"{tenant} {tag}", "country": "NZ", **secrets}


def _own(run: Run, written: Written, tenant: str, env: Environment) -> str:
    regions = env.tenant_regions[tenant]
    writer_region = env.primary_region if env.primary_region in regions else regions[0]
    item_id, record = run.item_id(f"tenant-{tenant}"), _record(env, tenant, run.run_id)
    inv = env.invoke(writer_region, "writer", {"id": item_id, "record": record, TENANT_KEY: tenant})
    assert inv.result.get("ok") is True, f"write in {writer_region}: {str(inv.result)[:200]}"
    written[tenant] = (item_id, record, writer_region)
    for region in regions:
        read = read_until_replicated(env, region, item_id, extra={TENANT_KEY: tenant})
        assert read.result.get("ok") is True and read.result["record"] == record, f"{region}: {str(read.result)[:200]}"
    return f"written in {writer_region}, read back in {', '.join(regions)}"


def _crossed(written: Written, env: Environment) -> str:
    assert written, "no tenant wrote a record (the earlier checks failed)"
    seen = []
    for tenant, (item_id, record, _) in written.items():
        for other, regions in env.tenant_regions.items():
            shared = [r for r in regions if r in env.tenant_regions[tenant]]
            if other == tenant or not shared:
                continue
            inv = env.invoke(shared[0], "reader", {"id": item_id, TENANT_KEY: other})
            assert error_type(inv) == TenantMismatch.type, f"{tenant}'s record as {other}: {str(inv.result)[:200]}"
            no_plaintext(env, inv.result, record)
            seen.append(f"{tenant} as {other} in {shared[0]}")
    assert seen, "no two tenants share a region: nothing to cross"
    return f"{TenantMismatch.type} for {'; '.join(seen)}"


def _replicated(env: Environment, region: str, item_id: str) -> dict[str, Any]:
    """The item as the table replica in ``region`` holds it, once replication has brought it."""
    deadline = time.monotonic() + env.replication_deadline_s
    while (item := env.raw_item(region, item_id)) is None:
        assert time.monotonic() < deadline, f"{item_id} did not replicate to {region}"
        time.sleep(0.2)
    return item


def _outside(written: Written, env: Environment) -> str:
    assert written, "no tenant wrote a record (the earlier checks failed)"
    all_regions = (env.primary_region, *env.replica_regions)
    seen = []
    for tenant, (item_id, record, _) in written.items():
        for region in (r for r in all_regions if r not in env.tenant_regions[tenant]):
            item = _replicated(env, region, item_id)
            no_plaintext(env, item, record)
            inv = env.invoke(region, "reader", {"id": item_id, TENANT_KEY: tenant})
            assert error_type(inv) == TenantNotInRegion.type, f"{tenant} in {region}: {str(inv.result)[:200]}"
            assert inv.result["error"]["retryable"] is False
            seen.append(f"{tenant} in {region}")
    where = ", ".join(seen) or "none (every tenant is everywhere)"
    return f"ciphertext present, {TenantNotInRegion.type} (not retryable) for {where}"


def _unknown(env: Environment) -> str:
    inv = env.invoke(env.primary_region, "reader", {"id": "any", TENANT_KEY: "no-such-tenant"})
    assert error_type(inv) == UnknownTenant.type and inv.result["error"]["status"] == 400, str(inv.result)[:200]
    assert "no-such-tenant" in inv.result["error"]["message"]
    return f"{UnknownTenant.type} (400) naming the tenant"


def _session_bound(env: Environment) -> str:
    """Per region with two tenant keys or more, as the writer's role: the tenant's session may make a
    data key with its key and its context, and is refused another tenant's key or context."""
    seen = []
    for region in (env.primary_region, *env.replica_regions):
        here = [t for t, regions in env.tenant_regions.items() if region in regions]
        if len(here) < 2:
            continue
        tenant, other = here[0], here[1]
        kms, keys = env.tenant_session_kms(region, "writer", tenant)
        context = {**(env.observed_context() or {}), TENANT_KEY: tenant}
        kms.generate_data_key(KeyId=keys[tenant], KeySpec="AES_256", EncryptionContext=context)
        for key, ctx in (
            (keys[other], {**context, TENANT_KEY: other}),
            (keys[other], context),
            (keys[tenant], {**context, TENANT_KEY: other}),
        ):
            try:
                kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=ctx)
            except Exception as error:  # botocore ClientError
                assert "AccessDenied" in type(error).__name__ or "AccessDenied" in str(error), str(error)[:200]
            else:
                raise AssertionError(f"{tenant}'s session in {region} made a data key with {key} for {ctx[TENANT_KEY]}")
        seen.append(f"{tenant}'s session in {region}: own key ok; {other}'s key or context refused")
    assert seen, "no region holds two tenants' keys: nothing to cross"
    return "; ".join(seen)
