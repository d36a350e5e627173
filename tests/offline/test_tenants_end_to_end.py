"""The main job of a deployment with three tenants of different region sets, on the emulator: each
tenant writes and reads where its key is; a record read as another tenant, or in a region outside its
tenant's set (where its ciphertext is), is refused; an unknown tenant is a 400."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lambda_src.record_crypto.settings import ENV_TENANT_KEYS, STORE_AURORA_POSTGRESQL
from offline.verification.emulated import run_offline
from offline.verification.tenants import tenant_regions

pytestmark = pytest.mark.e2e
TENANTS = {
    "acme": {},
    "globex": {"regions": ["us-west-1"]},
    "initech": {"regions": ["us-east-2", "eu-west-1"], "primaryRegion": "eu-west-1"},
}
CONTEXT = {"mrk-toolkit:replicaRegions": "us-west-1,eu-west-1", "mrk-toolkit:tenants": json.dumps(TENANTS)}


def test_three_tenants_end_to_end(tmp_path: Path) -> None:
    report = run_offline(context_overrides=CONTEXT, lag_seconds=0.3, progress=lambda _line: None, log_dir=tmp_path)
    assert report.ok, report.render()
    details = {c.name: c.detail for c in report.checks}
    assert details["tenant globex writes and reads in us-west-1"] == "written in us-west-1, read back in us-west-1"
    crossed = details["a record of one tenant read as another is refused"]
    assert "acme as globex in us-west-1" in crossed and "initech as acme in eu-west-1" in crossed
    outside = details["a tenant's record outside its regions is there, and refused"]
    for where in ("globex in us-east-2", "globex in eu-west-1", "initech in us-west-1"):
        assert where in outside
    bound = details["a function holding one tenant's session is refused KMS for another tenant's key and context"]
    assert "acme's session in us-east-2: own key ok; initech's key or context refused" in bound


def test_tenant_regions_come_from_the_readers_tenant_keys() -> None:
    environments = {
        "us-east-2": {ENV_TENANT_KEYS: '{"acme":"mrk-1","globex":""}'},
        "us-west-1": {ENV_TENANT_KEYS: '{"acme":"mrk-1","globex":"mrk-2"}'},
    }
    assert tenant_regions(environments) == {"acme": ("us-east-2", "us-west-1"), "globex": ("us-west-1",)}
    assert tenant_regions({"us-east-2": {}}) == {}


def test_three_tenants_on_the_aurora_store(tmp_path: Path) -> None:
    """The same main job on real PostgreSQL: every tenant writes in the primary region (the only
    writable cluster), reads where its key is, and its row elsewhere is there and refused."""
    tenants = {**TENANTS, "globex": {"regions": ["us-east-2", "us-west-1"]}}
    context = {**CONTEXT, "mrk-toolkit:tenants": json.dumps(tenants), "mrk-toolkit:store": STORE_AURORA_POSTGRESQL}
    report = run_offline(context_overrides=context, lag_seconds=0.3, progress=lambda _line: None, log_dir=tmp_path)
    assert report.ok, report.render()
    details = {c.name: c.detail for c in report.checks}
    assert details["tenant globex writes and reads in us-east-2, us-west-1"].startswith("written in us-east-2")
    outside = details["a tenant's record outside its regions is there, and refused"]
    assert "globex in eu-west-1" in outside and "initech in us-west-1" in outside
