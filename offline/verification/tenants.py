"""The main job of a deployment with tenants (README "Tenants"), written for any tenant configuration:
per tenant, a record written in its key's primary-most region is read in each of its regions; read as
another tenant it is refused (TenantMismatch) before any KMS call; in a region without the tenant's
key it is refused (TenantNotInRegion) although its ciphertext is there, and the writer there cannot
make a record of the tenant (TenantNotInRegion, nothing stored; its tenant session is refused a data key
under the tenant's key of another region); with the Aurora store, a tenant without a key in the primary
region writes from its own region through the global writer endpoint; an unknown tenant is a 400;
and every deployed role may do exactly its contract (offline/verification/permissions.py).

The checks of a deployment without tenants that attack or exercise the records (the table writer's
attacks, the cross-role refusals, a malformed event, clean logs, rotation) run here as a tenant:
``TenantView`` is the deployment as one tenant's functions see it (every event carries the tenant,
its writer region stands for the primary, its other regions for the replicas). Each region where
some tenant's record replicates to is attacked as the first such tenant.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import unquote

from cloud_assembly.audit_events import DENIED_ERROR_PREFIX, READER_USE, WRITER_USE
from lambda_src.record_crypto.errors import NotFound, TenantMismatch, TenantNotInRegion, UnknownTenant
from lambda_src.record_crypto.settings import ENV_TENANT_KEYS, STORE_AURORA_POSTGRESQL, TENANT_KEY
from offline.runbooks.audit_trail import encryption_context, issuer, on_key, trail_records
from offline.runbooks.rotation import rotate
from offline.verification.audit import (
    admin_decrypt_check,
    alerting,
    deployed_rules,
    matching,
    rules_check,
    sample_event,
    table_ciphertext,
    trail_alert_check,
    trail_check,
)
from offline.verification.aurora_scenario import region_checks as aurora_region_checks
from offline.verification.basics import Run, cross_role_checks, error_type, no_plaintext, read_until_replicated
from offline.verification.checks import Capability, Check, Environment, NamedCheck, check
from offline.verification.integrity import integrity_checks
from offline.verification.permissions import permission_checks


def tenant_regions(environments: Mapping[str, Mapping[str, str]]) -> dict[str, tuple[str, ...]]:
    """Tenant -> the regions where its key exists, from the readers' TENANT_KEYS (region -> environment)."""
    out: dict[str, list[str]] = {}
    for region, environment in sorted(environments.items()):
        for tenant, key_id in json.loads(environment.get(ENV_TENANT_KEYS) or "{}").items():
            out.setdefault(tenant, [])
            if key_id:
                out[tenant].append(region)
    return {tenant: tuple(regions) for tenant, regions in sorted(out.items())}


def writer_region(env: Environment, tenant: str) -> str:
    """Where the main job writes the tenant's records: the deployment's primary if the tenant's key is
    there, else the tenant's first region (the Aurora store: whose writer writes through the global
    writer endpoint into the current primary's cluster)."""
    regions = env.tenant_regions[tenant]
    return env.primary_region if env.primary_region in regions else regions[0]


class EnvironmentView:
    """The environment with some attributes of its own (``overrides``); everything else is the
    environment's."""

    def __init__(self, env: Environment, **overrides: Any) -> None:
        self._env = env
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


class TenantView(EnvironmentView):
    """The deployment as ``tenant``'s functions see it: every event carries the tenant (unless it names
    one itself), the tenant's writer region is the primary and its other regions are the replicas.
    Everything else is the environment's own."""

    tenant: str

    def __init__(self, env: Environment, tenant: str) -> None:
        primary = writer_region(env, tenant)
        super().__init__(
            env,
            tenant=tenant,
            primary_region=primary,
            replica_regions=tuple(r for r in env.tenant_regions[tenant] if r != primary),
        )

    def invoke(self, region: str, kind: str, event: dict[str, Any]) -> Any:
        return self._env.invoke(region, kind, {TENANT_KEY: self.tenant, **event})

    def cross_role_denied(self, region: str, code_of: str, role_of: str, event: dict[str, Any]) -> tuple[bool, str]:
        return self._env.cross_role_denied(region, code_of, role_of, {TENANT_KEY: self.tenant, **event})


def as_tenant(item: Check, tenant: str) -> Check:
    """``item`` run against ``tenant``'s view of the environment, its name saying so."""
    return replace(item, name=f"{item.name} (tenant {tenant})", run=lambda env: item.run(TenantView(env, tenant)))


def tenant_runs(run: Run, tenants: Mapping[str, Any]) -> dict[str, Run]:
    """A run per tenant: its own ids (``verify-<run>-<tenant>-...``) and main record, the run's list of
    minted ids (so that the clean-up deletes them all)."""
    return {tenant: Run(run_id=f"{run.run_id}-{tenant}", minted=run.minted) for tenant in tenants}


def attacked_regions(env: Environment) -> dict[str, str]:
    """Region -> the tenant whose records the region's attacks use: the first tenant (by id) whose
    records replicate there from another of its regions. A region no tenant replicates to is left out."""
    out: dict[str, str] = {}
    for tenant in env.tenant_regions:
        for region in TenantView(env, tenant).replica_regions:
            out.setdefault(region, tenant)
    return {region: out[region] for region in (env.primary_region, *env.replica_regions) if region in out}


def outside_pairs(env: Environment) -> list[tuple[str, str]]:
    """(tenant, region) for each region of the deployment where the tenant has no key."""
    regions = (env.primary_region, *env.replica_regions)
    return [(t, r) for t, own in env.tenant_regions.items() for r in regions if r not in own]


def shared_regions(env: Environment) -> list[str]:
    """The regions where two tenants' keys or more exist (where a tenant can be crossed with another)."""
    regions = (env.primary_region, *env.replica_regions)
    return [r for r in regions if sum(r in own for own in env.tenant_regions.values()) > 1]


# tenant -> (item id, record, region written in): what the first checks wrote, for the others.
Written = dict[str, tuple[str, dict[str, Any], str]]
SQL = Capability.DATABASE_SESSIONS
OUTSIDE_WRITER = "a tenant's writer outside its regions is refused, and stores nothing"
OUTSIDE_SESSION = (
    "a writer's tenant session outside the tenant's regions is refused a data key under the tenant's key elsewhere"
)
THROUGH_THE_GLOBAL_ENDPOINT = (
    "a tenant without a key in the primary region writes from its own region through the global writer endpoint"
)


def tenant_checks(run: Run, env: Environment, runs: Mapping[str, Run] | None = None) -> list[Check | NamedCheck]:
    """The tenant checks proper (``runs``: the tenants' runs, ``tenant_runs``)."""
    tenants = env.tenant_regions
    runs = runs or tenant_runs(run, tenants)
    written: Written = {}
    out: list[Check | NamedCheck] = [
        check(
            f"tenant {tenant} writes and reads in {', '.join(regions)}",
            partial(_own, runs[tenant], written, tenant),
        )
        for tenant, regions in tenants.items()
    ]
    if shared_regions(env):  # else no reader can be asked for another tenant's record: nothing to cross
        out.append(check("a record of one tenant read as another is refused", partial(_crossed, written)))
    out.append(check("a tenant's record outside its regions is there, and refused", partial(_outside, written)))
    out.append(check(OUTSIDE_WRITER, partial(_outside_writer, runs)))
    if outside_pairs(env):
        out.append(check(OUTSIDE_SESSION, _outside_session, Capability.TENANT_SESSIONS))
    if env.store == STORE_AURORA_POSTGRESQL and any(writer_region(env, t) != env.primary_region for t in tenants):
        out.append(check(THROUGH_THE_GLOBAL_ENDPOINT, partial(_through_the_global_endpoint, written), SQL))
    out.append(check("an unknown tenant is a 400 naming it", _unknown))
    out.append(check("deployed: each tenant's key exists only in its tenant's regions", _keys_where_allowed))
    out.append(check("deployed: each tenant key's policy binds every use to its tenant", _key_policies_bound))
    out.append(check("deployed: each tenant-access role may use a key only for its session's tenant", _roles_scoped))
    if shared_regions(env):
        out.append(
            check(
                "a function holding one tenant's session is refused KMS for another tenant's key and context",
                _session_bound,
                Capability.TENANT_SESSIONS,
            )
        )
    out.append(check("deployed: the audit rules watch every tenant key where it exists", _tenant_keys_watched))
    # Every role against its contract (cloud_assembly/contracts.py): the tenant-access roles asked as a
    # session of each tenant (and untagged), the function roles' AssumeRole decided by the trust policies.
    return out + permission_checks(env.reader, (env.primary_region, *env.replica_regions))


def record_checks(runs: Mapping[str, Run], env: Environment) -> list[Check]:
    """The records attacked and exercised as a tenant: per region some tenant's records replicate to,
    the attacks of someone who can write the region's items (the DynamoDB store) or rows (the Aurora
    store: and its writer writing through the global writer endpoint) and the cross-role refusals;
    every tenant key's rotation."""
    out: list[Check] = []
    for region, tenant in attacked_regions(env).items():
        if env.store == STORE_AURORA_POSTGRESQL:
            attacks = aurora_region_checks(runs[tenant], region)
        else:
            attacks = integrity_checks(runs[tenant], TenantView(env, tenant), region)
            attacks += cross_role_checks(runs[tenant], region)
        out += [as_tenant(c, tenant) for c in attacks]
    out.append(
        check(
            "every tenant key rotates on demand, and each tenant's regions decrypt across the rotation",
            partial(_rotations, runs),
            Capability.ROTATE_AT_WILL,
        )
    )
    return out


def in_attacked_regions(item: Check) -> Check:
    """``item`` (a check over the replica regions) run over the regions the tenants' attacks ran in."""
    return replace(item, run=lambda env: item.run(EnvironmentView(env, replica_regions=tuple(attacked_regions(env)))))


def tenant_audit_checks(runs: Mapping[str, Run], env: Environment) -> list[Check]:
    """The audit trail with tenants: it records every management event; in each region every use of a
    tenant key was its tenant's, by the tenant-access role of the function that makes that use; the
    records key's rules are still deployed; the account's administrator decrypting a tenant's record
    fires the unexpected-use alert (the DynamoDB store: its stored message read from the table);
    stopping the trail alerts."""
    regions = (env.primary_region, *env.replica_regions)
    held = [r for r in regions if any(r in own for own in env.tenant_regions.values())]
    out = [trail_check()]
    out += [
        check(
            f"audit: in {region} every use of a tenant key was its tenant's, by the tenant-access role of its use",
            partial(_tenant_uses, region),
        )
        for region in held
    ]
    out += [rules_check(region) for region in regions]
    attacked = attacked_regions(env)
    if env.store != STORE_AURORA_POSTGRESQL and attacked:
        region, tenant = next(iter(attacked.items()))
        out.append(as_tenant(admin_decrypt_check(runs[tenant], region, table_ciphertext), tenant))
    return [*out, trail_alert_check()]


def _tenant_uses(region: str, env: Environment) -> str:
    """Every allowed Decrypt / GenerateDataKey the trail recorded on the region's tenant keys: in a session
    of the reader's (or, with beacons, the finder's) / writer's tenant-access role, with the key's tenant in
    the encryption context."""
    access = tenant_access_roles(env)
    cloudtrail, keys = env.client("cloudtrail", region), _tenant_keys(env)[region]
    counted, wrong = {READER_USE: 0, WRITER_USE: 0}, []
    for use, kinds in ((READER_USE, ("reader", "finder")), (WRITER_USE, ("writer",))):
        expected = {access[(region, kind)] for kind in kinds if (region, kind) in access}
        for record in trail_records(cloudtrail, use):
            tenant = next((t for t, arns in keys.items() if any(on_key(record, a) for a in arns)), None)
            if tenant is None or record.get("errorCode"):
                continue
            counted[use] += 1
            if issuer(record) not in expected:
                roles = " or ".join(f"the {kind}'s" for kind in kinds)
                wrong.append(f"{use} of {tenant}'s key by {issuer(record)}, not {roles} tenant-access role")
            if encryption_context(record).get(TENANT_KEY) != tenant:
                wrong.append(f"{use} of {tenant}'s key with {TENANT_KEY}={encryption_context(record).get(TENANT_KEY)}")
    assert not wrong, "; ".join(sorted(set(wrong)))
    # Every region with a tenant key read a record there (the first checks): its trail has that decrypt.
    assert counted[READER_USE], f"the trail in {region} recorded no decrypt with its tenant keys"
    return (
        f"{counted[READER_USE]} decrypts by the reader's and {counted[WRITER_USE]} data keys by the writer's "
        f"tenant-access role, each with its key's tenant in the context"
    )


def _own(run: Run, written: Written, tenant: str, env: Environment) -> str:
    """The tenant's main record (``run.main``, which its attacks use), written and read back everywhere."""
    view = TenantView(env, tenant)
    item_id, record = run.item_id("main"), run.sample_record(env, "main")
    inv = view.invoke(view.primary_region, "writer", {"id": item_id, "record": record})
    assert inv.result.get("ok") is True, f"write in {view.primary_region}: {str(inv.result)[:200]}"
    run.main.update(item_id=item_id, record=record)
    written[tenant] = (item_id, record, view.primary_region)
    for region in env.tenant_regions[tenant]:
        read = read_until_replicated(env, region, item_id, extra={TENANT_KEY: tenant})
        assert read.result.get("ok") is True and read.result["record"] == record, f"{region}: {str(read.result)[:200]}"
    return f"written in {view.primary_region}, read back in {', '.join(env.tenant_regions[tenant])}"


def _rotations(runs: Mapping[str, Run], env: Environment) -> str:
    """Per tenant: its key rotated on demand in its primary region; records written before and after
    decrypt in each of its regions; rotating a replica of it is refused."""
    keys, seen = _tenant_keys(env), []
    for tenant, regions in env.tenant_regions.items():
        view, run = TenantView(env, tenant), runs[tenant]
        kms_region, arn = _primary_key(env, keys, tenant)
        record = run.sample_record(env, "rotation")
        before, after = run.item_id("rotation-before"), run.item_id("rotation-after")
        _write(view, before, record)
        rotate(env.client("kms", kms_region), arn)
        _write(view, after, record)
        for region in regions:
            for item_id in (before, after):
                inv = read_until_replicated(env, region, item_id, extra={TENANT_KEY: tenant})
                assert inv.result.get("ok") is True, f"{tenant}'s {item_id} in {region}: {str(inv.result)[:200]}"
                assert inv.result["record"] == record, f"{tenant}'s {item_id} read in {region} differs"
        refused = ""
        replica = next((r for r in regions if r != kms_region), None)
        if replica is not None:
            try:
                env.client("kms", replica).rotate_key_on_demand(KeyId=keys[replica][tenant][0])
            except Exception as error:  # botocore ClientError: KMS refuses to rotate a replica
                refused = f", its {replica} replica refused ({type(error).__name__})"
            else:
                raise AssertionError(f"RotateKeyOnDemand of {tenant}'s replica in {replica} was accepted")
        seen.append(f"{tenant} (primary in {kms_region}{refused})")
    return f"rotated: {'; '.join(seen)}; records written before and after read in each tenant's regions"


def _write(view: TenantView, item_id: str, record: dict[str, Any]) -> None:
    inv = view.invoke(view.primary_region, "writer", {"id": item_id, "record": record})
    assert inv.result.get("ok") is True, f"{view.tenant}'s write of {item_id}: {str(inv.result)[:200]}"


def _primary_key(env: Environment, keys: Mapping[str, Mapping[str, list[str]]], tenant: str) -> tuple[str, str]:
    """(region, ARN) of the tenant's primary key, read back through KMS."""
    for region in env.tenant_regions[tenant]:
        for arn in keys[region].get(tenant, []):
            described = env.client("kms", region).describe_key(KeyId=arn)["KeyMetadata"]
            if described.get("MultiRegionConfiguration", {}).get("MultiRegionKeyType") == "PRIMARY":
                return region, arn
    raise AssertionError(f"no primary key of {tenant} in {', '.join(env.tenant_regions[tenant])}")


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


def _stored(env: Environment, region: str, item_id: str) -> Any:
    """The record as the store holds it in ``region`` (a table replica's item, or the Aurora
    cluster's row), once replication has brought it."""
    if env.store != STORE_AURORA_POSTGRESQL:
        return _replicated(env, region, item_id)
    db, deadline = env.database(), time.monotonic() + env.replication_deadline_s
    while not (rows := db.admin(f"SELECT * FROM {db.table} WHERE id = %s", item_id, region=region)):  # noqa: S608 - the table name is the config's, not input
        assert time.monotonic() < deadline, f"{item_id} did not replicate to {region}"
        time.sleep(0.2)
    return [str(value) for value in rows[0]]


def _outside(written: Written, env: Environment) -> str:
    assert written, "no tenant wrote a record (the earlier checks failed)"
    all_regions = (env.primary_region, *env.replica_regions)
    seen = []
    for tenant, (item_id, record, _) in written.items():
        for region in (r for r in all_regions if r not in env.tenant_regions[tenant]):
            no_plaintext(env, _stored(env, region, item_id), record)
            inv = env.invoke(region, "reader", {"id": item_id, TENANT_KEY: tenant})
            assert error_type(inv) == TenantNotInRegion.type, f"{tenant} in {region}: {str(inv.result)[:200]}"
            assert inv.result["error"]["retryable"] is False
            seen.append(f"{tenant} in {region}")
    where = ", ".join(seen) or "none (every tenant is everywhere)"
    return f"ciphertext present, {TenantNotInRegion.type} (not retryable) for {where}"


def _outside_writer(runs: Mapping[str, Run], env: Environment) -> str:
    """In each region outside a tenant's regions its writer is refused (TenantNotInRegion, before any KMS or
    database call) and stores nothing: no one there can make a record of the tenant."""
    seen = []
    for tenant, region in outside_pairs(env):
        run = runs[tenant]
        item_id, record = run.item_id(f"outside-{region}"), run.sample_record(env, f"outside-{region}")
        inv = env.invoke(region, "writer", {"id": item_id, "record": record, TENANT_KEY: tenant})
        assert error_type(inv) == TenantNotInRegion.type, f"{tenant}'s write in {region}: {str(inv.result)[:200]}"
        assert inv.result["error"]["retryable"] is False
        no_plaintext(env, inv.result, record)
        _nothing_stored(env, tenant, region, item_id)
        seen.append(f"{tenant} in {region}")
    where = ", ".join(seen) or "none (every tenant is everywhere)"
    return f"{TenantNotInRegion.type} (not retryable), nothing stored, for {where}"


def _nothing_stored(env: Environment, tenant: str, region: str, item_id: str) -> None:
    """Where a write in ``region`` would land holds no ``item_id``: the region's table replica (DynamoDB),
    the current writer's cluster (Aurora; without a database session, the tenant's first region's reader)."""
    if env.store != STORE_AURORA_POSTGRESQL:
        assert env.raw_item(region, item_id) is None, f"{tenant}'s refused write in {region} stored {item_id}"
    elif SQL in env.capabilities:
        db = env.database()
        rows = db.admin(f"SELECT writer_region FROM {db.table} WHERE id = %s", item_id)  # noqa: S608 - the config's table
        assert not rows, f"{tenant}'s refused write in {region} stored {item_id}: {rows}"
    else:
        home = env.tenant_regions[tenant][0]
        inv = env.invoke(home, "reader", {"id": item_id, TENANT_KEY: tenant})
        assert error_type(inv) == NotFound.type, f"{tenant}'s refused write in {region}: {str(inv.result)[:200]}"


def _outside_session(env: Environment) -> str:
    """As the writer's role in a region outside a tenant's regions, the tenant's session of the writer's
    tenant-access role (what the writer there would use) is refused GenerateDataKey under the tenant's key
    in each of its regions: the role names its own region's tenant keys only, the key policy its regions'."""
    keys, seen, untouched = _tenant_keys(env), [], []
    for tenant, region in outside_pairs(env):
        if not any(region in own for own in env.tenant_regions.values()):
            untouched.append(region)  # no tenant key here: its writer has no tenant-access role at all
            continue
        context = {**(env.observed_context() or {}), TENANT_KEY: tenant}
        for home in env.tenant_regions[tenant]:
            kms, _ = env.tenant_session_kms(region, "writer", tenant, kms_region=home)
            for arn in keys[home].get(tenant, []):
                try:
                    kms.generate_data_key(KeyId=arn, KeySpec="AES_256", EncryptionContext=context)
                except Exception as error:  # botocore ClientError
                    assert "AccessDenied" in type(error).__name__ or "AccessDenied" in str(error), str(error)[:200]
                else:
                    raise AssertionError(f"the writer's {tenant} session in {region} made a data key with {arn}")
                seen.append(f"{tenant}'s session in {region} on its {home} key")
    assert seen or untouched, "no tenant is outside a region: nothing to refuse"
    without = f"; no tenant-access role in {', '.join(sorted(set(untouched)))}" if untouched else ""
    return f"AccessDenied for {'; '.join(seen) or 'none'}{without}"


def _through_the_global_endpoint(written: Written, env: Environment) -> str:
    """The Aurora store: the record of each tenant whose writer region is not the primary (its first
    region) is in the current writer's cluster, written by that region's writer (its ``writer_region``)."""
    assert written, "no tenant wrote a record (the earlier checks failed)"
    db, seen = env.database(), []
    for tenant, (item_id, _, region) in written.items():
        if region == env.primary_region:
            continue
        rows = db.admin(f"SELECT writer_region FROM {db.table} WHERE id = %s", item_id)  # noqa: S608 - the config's table
        assert rows == [(region,)], f"{tenant}'s record {item_id} in the writer's cluster: {rows}"
        seen.append(f"{tenant} from {region}")
    assert seen, "every tenant wrote in the primary region"
    return f"in the primary's cluster, each written by its region's writer: {', '.join(seen)}"


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


def _tenant_keys(env: Environment) -> dict[str, dict[str, list[str]]]:
    """Region -> tenant -> the keys of the region that are the tenant's: tagged with it, or sharing the
    multi-region key id of a primary tagged with it (a replica whose tag was dropped or changed is
    still its primary's tenant's). Read back through KMS."""
    owners = _key_owners(env)
    return {region: _keys_of(env, region, owners) for region in (env.primary_region, *env.replica_regions)}


def _keys_of(env: Environment, region: str, owners: Mapping[str, str]) -> dict[str, list[str]]:
    kms = env.client("kms", region)
    out: dict[str, list[str]] = {}
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
            tagged = next((t["TagValue"] for t in tags if t["TagKey"] == TENANT_KEY), None)
            tenant = owners.get(key["KeyId"], tagged)
            if tenant is not None:
                out.setdefault(tenant, []).append(key["KeyArn"])
    return out


def _key_owners(env: Environment) -> dict[str, str]:
    """Multi-region key id -> the tenant its primary is tagged with (a primary is created with its tags)."""
    owners: dict[str, str] = {}
    for region in (env.primary_region, *env.replica_regions):
        kms = env.client("kms", region)
        for page in kms.get_paginator("list_keys").paginate():
            for key in page["Keys"]:
                if not key["KeyId"].startswith("mrk-"):
                    continue
                described = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
                if described.get("MultiRegionConfiguration", {}).get("MultiRegionKeyType") != "PRIMARY":
                    continue
                tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
                tenant = next((t["TagValue"] for t in tags if t["TagKey"] == TENANT_KEY), None)
                if tenant is not None:
                    owners[key["KeyId"]] = tenant
    return owners


def _keys_where_allowed(env: Environment) -> str:
    allowed = env.tenant_regions
    wrong, found = [], 0
    keys = _tenant_keys(env)
    for region in (env.primary_region, *env.replica_regions):
        for tenant, arns in keys[region].items():
            found += len(arns)
            if region not in allowed.get(tenant, ()):
                wrong += [
                    f"{tenant}'s key {arn} is in {region}, outside its regions {allowed.get(tenant, ())}"
                    for arn in arns
                ]
            elif len(arns) > 1:
                wrong.append(f"{tenant} has {len(arns)} keys in {region}: {', '.join(arns)}")
    assert not wrong, "; ".join(wrong)
    missing = [(t, r) for t, regions in allowed.items() for r in regions if not keys.get(r, {}).get(t)]
    assert not missing, f"tenant keys missing: {missing}"
    return f"{found} tenant keys, each in one of its tenant's regions, one per tenant and region"


def _key_policies_bound(env: Environment) -> str:
    """Every statement of a tenant key's policy that allows a cryptographic use requires the key's
    tenant in the encryption context (StringEquals kms:EncryptionContext:tenant)."""
    wrong, checked = [], 0
    keys = _tenant_keys(env)
    for region in (env.primary_region, *env.replica_regions):
        kms = env.client("kms", region)
        for tenant, arns in keys[region].items():
            for arn in arns:
                policy = json.loads(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])
                checked += 1
                wrong += [f"{arn} ({tenant}): statement {sid} {why}" for sid, why in _unbound(policy, tenant)]
    assert not wrong, "; ".join(wrong)
    return f"{checked} tenant key policies: every use requires kms:EncryptionContext:{TENANT_KEY} of the key's tenant"


_USE = ("kms:decrypt", "kms:generatedatakey", "kms:encrypt", "kms:reencrypt", "kms:*", "*")


def _unbound(policy: Mapping[str, Any], tenant: str) -> list[tuple[str, str]]:
    out = []
    for stmt in policy.get("Statement", []):
        actions = stmt.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if stmt.get("Effect") != "Allow" or not any(a.lower().startswith(_USE) for a in actions):
            continue
        equals = {k.lower(): v for k, v in (stmt.get("Condition", {}).get("StringEquals") or {}).items()}
        value = equals.get(f"kms:encryptioncontext:{TENANT_KEY}")
        if value != tenant and value != [tenant]:
            out.append(
                (
                    stmt.get("Sid", "?"),
                    f"allows {', '.join(actions)} without kms:EncryptionContext:{TENANT_KEY}={tenant}",
                )
            )
    return out


_SESSION_TENANT = f"${{aws:PrincipalTag/{TENANT_KEY}}}"
_SCOPED = {f"aws:resourcetag/{TENANT_KEY}", f"kms:encryptioncontext:{TENANT_KEY}"}


def _roles_scoped(env: Environment) -> str:
    """Every role that sessions may tag (its trust policy allows sts:TagSession) allows KMS use only
    where the key's tag and the encryption context equal the session's tenant."""
    iam = env.client("iam", env.primary_region)
    wrong, roles = [], 0
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            if "sts:TagSession" not in json.dumps(role.get("AssumeRolePolicyDocument", {})):
                continue
            roles += 1
            for name, document in _role_documents(iam, role["RoleName"]):
                wrong += [f"{role['Arn']} ({name}): {why}" for why in _unscoped(document)]
    assert roles, "no role takes tagged sessions"
    assert not wrong, "; ".join(wrong)
    return f"{roles} tenant-access roles: KMS only where aws:ResourceTag/{TENANT_KEY} and the context are the session's"


def _role_documents(iam: Any, role_name: str) -> list[tuple[str, Mapping[str, Any]]]:
    out = []
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
        out.append((attached["PolicyName"], _document(version["PolicyVersion"]["Document"])))
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        out.append((name, _document(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])))
    return out


def _document(document: Any) -> Mapping[str, Any]:
    return json.loads(unquote(document)) if isinstance(document, str) else document


def _unscoped(document: Mapping[str, Any]) -> list[str]:
    out = []
    statements = document.get("Statement", [])
    for stmt in [statements] if isinstance(statements, dict) else statements:
        actions = stmt.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if stmt.get("Effect") != "Allow" or not any(a.lower().startswith(("kms:", "*")) for a in actions):
            continue
        equals = {k.lower(): v for k, v in (stmt.get("Condition", {}).get("StringEquals") or {}).items()}
        missing = sorted(k for k in _SCOPED if equals.get(k) not in (_SESSION_TENANT, [_SESSION_TENANT]))
        if missing:
            out.append(
                f"statement {stmt.get('Sid', '?')} allows {', '.join(actions)} "
                f"without {' and '.join(missing)} = {_SESSION_TENANT}"
            )
    return out


def tenant_access_roles(env: Environment) -> dict[tuple[str, str], str]:
    """(region, "writer"|"reader"|"finder") -> the ARN of the tenant-access role that function's role may take
    tagged sessions of: the role whose trust policy names the function's role and allows sts:TagSession
    (read back through IAM)."""
    iam = env.client("iam", env.primary_region)
    by_function = {arn: where for where, arn in env.reader.role_arns.items()}
    out: dict[tuple[str, str], str] = {}
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            trust = json.dumps(_document(role.get("AssumeRolePolicyDocument", {})))
            if "sts:TagSession" not in trust:
                continue
            for function_role, where in by_function.items():
                if f'"{function_role}"' in trust:
                    out[where] = role["Arn"]
    return out


def _tenant_keys_watched(env: Environment) -> str:
    """In each region, a change to a tenant key alerts the region's topic and a call denied on it is
    counted; any use of it but the tenant-access roles' own alerts (the account's administrator
    decrypting, the function's own role asking); their own use does not (the rules as deployed,
    matched by EventBridge's pattern language as moto implements it)."""
    account, seen = env.reader.account, 0
    root = f"arn:aws:iam::{account}:root"
    access = tenant_access_roles(env)
    for region, owned in _tenant_keys(env).items():
        rules = deployed_rules(env, region)
        topic = f"arn:aws:sns:{region}:{account}:{env.reader.stack_prefix}-alarms"

        for tenant, keys in owned.items():
            for key in keys:
                change = sample_event(env, region, "DisableKey", root, key=key)
                assert alerting(rules, topic, change, False), (
                    f"no rule in {region} alerts {topic} when {tenant}'s key {key} is disabled"
                )
                denied = sample_event(env, region, "Decrypt", root, error=f"{DENIED_ERROR_PREFIX}Exception", key=key)
                assert matching(rules, denied, True), f"no rule in {region} counts calls denied on {tenant}'s key {key}"
                for what, use, caller in (
                    ("the account's administrator", READER_USE, root),
                    ("the reader's own role", READER_USE, env.reader.role_arns[(region, "reader")]),
                    ("the reader's tenant-access role", WRITER_USE, access[(region, "reader")]),
                ):
                    unexpected = sample_event(env, region, use, caller, key=key)
                    assert alerting(rules, topic, unexpected, True), (
                        f"no rule in {region} alerts {topic} of {use} by {what} on {key}"
                    )
                if (region, "finder") in access:  # with beacons: the finder decrypts, and makes no data key
                    unexpected = sample_event(env, region, WRITER_USE, access[(region, "finder")], key=key)
                    assert alerting(rules, topic, unexpected, True), (
                        f"no rule in {region} alerts {topic} of {WRITER_USE} by the finder's tenant-access role"
                    )
                for kind, use in (("writer", WRITER_USE), ("reader", READER_USE), ("finder", READER_USE)):
                    if (region, kind) not in access:
                        continue
                    own = alerting(rules, topic, sample_event(env, region, use, access[(region, kind)], key=key), True)
                    assert not own, f"the {kind}'s tenant-access role's own {use} on {key} would alert ({own})"
                seen += 1
    assert seen, "no tenant key found"
    return (
        f"{seen} tenant keys: a change alerts the region's topic, a denied call is counted, a use but the "
        f"tenant-access roles' own ({WRITER_USE} by the writer's, {READER_USE} by the reader's) alerts"
    )
