"""The main job of deployments with tenants, on the emulator, asserted for whatever tenants the config
names (``expected``: what the config implies, computed here independently of offline/verification):
each tenant writes and reads where its key is; a record read as another tenant, or in a region outside
its tenant's set (where its ciphertext is), is refused; an unknown tenant is a 400; the table writer's
attacks run as a tenant in every region some tenant's records replicate to; every tenant key rotates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambda_src.record_crypto.settings import ENV_TENANT_KEYS, STORE_AURORA_POSTGRESQL, STORE_DYNAMODB
from offline.verification.checks import Report
from offline.verification.emulated import run_offline
from offline.verification.tenants import OUTSIDE_SESSION, OUTSIDE_WRITER, THROUGH_THE_GLOBAL_ENDPOINT, tenant_regions

pytestmark = pytest.mark.e2e
PRIMARY, REPLICAS = "us-east-2", ("us-west-1", "eu-west-1")
TENANTS = {
    "acme": {},
    "globex": {"regions": ["us-west-1"]},
    "initech": {"regions": ["us-east-2", "eu-west-1"], "primaryRegion": "eu-west-1"},
}
# No region holds two tenants' keys, and no tenant's key is in the deployment's primary region but one.
APART = {
    "north": {"regions": ["us-west-1", "eu-west-1"], "primaryRegion": "us-west-1"},
    "south": {"regions": [PRIMARY]},
}
CONTEXT = {"mrk-toolkit:replicaRegions": ",".join(REPLICAS), "mrk-toolkit:tenants": json.dumps(TENANTS)}
ATTACKS = {
    STORE_DYNAMODB: (
        "tampered item",
        "ciphertext moved to another item",
        "planted sensitive value",
        "rolled-back item",
    ),
    STORE_AURORA_POSTGRESQL: ("planted sensitive value", "changed plaintext attribute", "rolled-back row"),
}


def expected(tenants: dict[str, dict[str, Any]], store: str) -> dict[str, Any]:
    """What the config implies: each tenant's regions (sorted) and writer region, the regions outside
    its set, the regions two tenants share, and (DynamoDB) the region -> tenant the attacks run as."""
    everywhere = sorted((PRIMARY, *REPLICAS))
    regions = {t: sorted(s.get("regions") or everywhere) for t, s in sorted(tenants.items())}
    writer = {t: PRIMARY if PRIMARY in r else r[0] for t, r in regions.items()}
    attacked: dict[str, str] = {}
    for tenant, own in regions.items():
        for region in own:
            if region != writer[tenant]:
                attacked.setdefault(region, tenant)
    shared = [r for r in everywhere if sum(r in own for own in regions.values()) > 1]
    outside = [f"{t} in {r}" for t, own in regions.items() for r in everywhere if r not in own]
    return {"regions": regions, "writer": writer, "attacked": attacked, "shared": shared, "outside": outside}


def assert_tenant_main_job(report: Report, tenants: dict[str, dict[str, Any]], store: str) -> None:
    assert report.ok, report.render()
    want = expected(tenants, store)
    details = {c.name: c.detail for c in report.checks}
    for tenant, regions in want["regions"].items():
        name = f"tenant {tenant} writes and reads in {', '.join(regions)}"
        assert details[name] == f"written in {want['writer'][tenant]}, read back in {', '.join(regions)}"
    outside = details["a tenant's record outside its regions is there, and refused"]
    assert all(where in outside for where in want["outside"]), outside
    written = details[OUTSIDE_WRITER]  # the writer there makes no record of the tenant
    assert all(where in written for where in want["outside"]) and "nothing stored" in written, written
    assert (OUTSIDE_SESSION in details) == bool(want["outside"]), sorted(details)
    for where in want["outside"] if OUTSIDE_SESSION in details else ():
        tenant, region = where.split(" in ")
        assert f"{tenant}'s session in {region} on its " in details[OUTSIDE_SESSION], details[OUTSIDE_SESSION]
    through = [t for t, w in want["writer"].items() if w != PRIMARY] if store == STORE_AURORA_POSTGRESQL else []
    assert (THROUGH_THE_GLOBAL_ENDPOINT in details) == bool(through), sorted(details)
    for tenant in through:
        assert f"{tenant} from {want['writer'][tenant]}" in details[THROUGH_THE_GLOBAL_ENDPOINT]
    crossed = "a record of one tenant read as another is refused"
    assert (crossed in details) == bool(want["shared"]), sorted(details)
    for region, tenant in want["attacked"].items():
        for attack in ATTACKS[store]:
            assert any(n.startswith(f"{attack} in {region} is refused") for n in details), f"{attack} in {region}"
        assert f"the writer's role in {region} cannot decrypt (tenant {tenant})" in details
    attacked = [n for n in details if n.startswith("planted sensitive value in ")]
    assert len(attacked) == len(want["attacked"]), attacked
    rotated = details["every tenant key rotates on demand, and each tenant's regions decrypt across the rotation"]
    assert all(f"{t} (primary in " in rotated for t in tenants), rotated
    assert details["an unknown tenant is a 400 naming it"].startswith("UnknownTenant (400)")
    assert "function logs hold no plaintext (tenant " + sorted(tenants)[0] + ")" in details


def _run(tmp_path: Path, tenants: dict[str, dict[str, Any]], **context: str) -> Report:
    overrides = {"mrk-toolkit:replicaRegions": ",".join(REPLICAS), "mrk-toolkit:tenants": json.dumps(tenants)}
    return run_offline(
        context_overrides={**overrides, **context}, lag_seconds=0.3, progress=lambda _line: None, log_dir=tmp_path
    )


def test_three_tenants_end_to_end(tmp_path: Path) -> None:
    report = _run(tmp_path, TENANTS)
    assert_tenant_main_job(report, TENANTS, STORE_DYNAMODB)
    details = {c.name: c.detail for c in report.checks}
    bound = details["a function holding one tenant's session is refused KMS for another tenant's key and context"]
    assert "acme's session in us-east-2: own key ok; initech's key or context refused" in bound


def test_tenants_apart_end_to_end(tmp_path: Path) -> None:
    """No two tenants share a region, and one tenant is only outside the primary region: nothing to
    cross (those checks are left out, not passed empty), the attacks run as north in its other region."""
    report = _run(tmp_path, APART)
    assert_tenant_main_job(report, APART, STORE_DYNAMODB)
    assert expected(APART, STORE_DYNAMODB)["attacked"] == {"us-west-1": "north"}


def test_tenant_regions_come_from_the_readers_tenant_keys() -> None:
    environments = {
        "us-east-2": {ENV_TENANT_KEYS: '{"acme":"mrk-1","globex":""}'},
        "us-west-1": {ENV_TENANT_KEYS: '{"acme":"mrk-1","globex":"mrk-2"}'},
    }
    assert tenant_regions(environments) == {"acme": ("us-east-2", "us-west-1"), "globex": ("us-west-1",)}
    assert tenant_regions({"us-east-2": {}}) == {}


def test_three_tenants_on_the_aurora_store(tmp_path: Path) -> None:
    """The same main job on real PostgreSQL, the same tenants: globex, whose only region is a secondary,
    writes there (its writer encrypts with its us-west-1 key and writes through the global writer endpoint
    into the primary's cluster) and reads there; its row in us-east-2 and eu-west-1 is there and refused
    (TenantNotInRegion, as on the DynamoDB store), read as acme in us-west-1 it is TenantMismatch, and the
    writers of us-east-2 and eu-west-1 cannot make a record of it (refused, nothing stored; their globex
    sessions refused a data key under its us-west-1 key)."""
    report = _run(tmp_path, TENANTS, **{"mrk-toolkit:store": STORE_AURORA_POSTGRESQL})
    assert_tenant_main_job(report, TENANTS, STORE_AURORA_POSTGRESQL)
    details = {c.name: c.detail for c in report.checks}
    assert details["tenant globex writes and reads in us-west-1"] == "written in us-west-1, read back in us-west-1"
    assert "globex from us-west-1" in details[THROUGH_THE_GLOBAL_ENDPOINT]
    for region in (PRIMARY, "eu-west-1"):
        assert f"globex in {region}" in details["a tenant's record outside its regions is there, and refused"]
        assert f"globex in {region}" in details[OUTSIDE_WRITER]
        assert f"globex's session in {region} on its us-west-1 key" in details[OUTSIDE_SESSION]
    assert "globex as acme in us-west-1" in details["a record of one tenant read as another is refused"]
