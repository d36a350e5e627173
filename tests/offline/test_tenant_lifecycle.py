"""Tenants added to and taken out of a running deployment (`python -m offline deploy` against `python -m
offline up`, a stack update as `cdk deploy --all` makes it): a new tenant gets its key in its regions and
is served at once, the records of the tenants already there stay readable; a tenant taken out of the
config is refused as unknown while its key stays (README "Tenants": run `erase-tenant` first if its
records must become unreadable)."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

import pytest

from lambda_src.record_crypto.errors import TenantNotInRegion, UnknownTenant
from lambda_src.record_crypto.settings import TENANT_KEY
from tests.offline.test_lifecycle import client, invoke, run_offline, stack_exists, up  # noqa: F401 - up: a fixture

pytestmark = pytest.mark.e2e
REPLICAS = "mrk-toolkit:replicaRegions=us-west-1,eu-west-1"
BEFORE = {"acme": {}, "globex": {"regions": ["us-west-1"]}}
NEW = {"initech": {"regions": ["us-east-2", "eu-west-1"], "primaryRegion": "eu-west-1"}}


def options(tenants: dict[str, Any]) -> str:
    return f"-c {REPLICAS} -c {shlex.quote('mrk-toolkit:tenants=' + json.dumps(tenants))}"


def as_tenant(region: str, kind: str, tenant: str, event: dict[str, Any]) -> dict[str, Any]:
    return invoke(region, kind, {**event, TENANT_KEY: tenant})


def read(region: str, tenant: str, item_id: str) -> dict[str, Any]:
    """The reader's answer once replication has brought the item (a retryable NotFound until then)."""
    deadline = time.monotonic() + 15
    while True:
        result = as_tenant(region, "reader", tenant, {"id": item_id})
        lagging = result.get("error", {}).get("type") == "NotFound"
        if not lagging or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def key_of(tenant: str, region: str) -> dict[str, Any] | None:
    try:
        return client("kms", region).describe_key(KeyId=f"alias/mrk-toolkit/records/tenant/{tenant}")["KeyMetadata"]  # type: ignore[no-any-return]
    except client("kms", region).exceptions.NotFoundException:
        return None


def test_a_tenant_is_added_and_another_taken_out_under_a_running_deployment(
    up: Any,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    written = {
        "acme": ("us-east-2", "acme-1", {"name": "A", "ssn": "078-05-1120"}),
        "globex": ("us-west-1", "globex-1", {"name": "G", "ssn": "219-09-9999"}),
    }

    def while_up(_env: Any) -> None:
        for tenant, (region, item_id, record) in written.items():
            assert as_tenant(region, "writer", tenant, {"id": item_id, "record": record})["ok"] is True
        # initech added: its key primary in eu-west-1 (a TenantKeys stack that did not exist), replica in us-east-2.
        code, out, err = run_offline(f"python -m offline deploy {options({**BEFORE, **NEW})}", capsys)
        assert code == 0, err + out
        assert stack_exists("MrkToolkit-TenantKeys-eu-west-1", "eu-west-1"), out
        primary, replica = key_of("initech", "eu-west-1"), key_of("initech", "us-east-2")
        assert primary is not None and replica is not None and key_of("initech", "us-west-1") is None
        assert primary["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
        assert replica["KeyId"] == primary["KeyId"]
        record = {"name": "I", "ssn": "123-45-6789"}
        assert as_tenant("us-east-2", "writer", "initech", {"id": "initech-1", "record": record})["ok"] is True
        got = read("eu-west-1", "initech", "initech-1")
        assert got.get("ok") is True and got["record"] == record, got
        outside = read("us-west-1", "initech", "initech-1")
        assert outside["error"]["type"] == TenantNotInRegion.type, outside
        for tenant, (region, item_id, rec) in written.items():  # the tenants already there: still served
            got = read(region, tenant, item_id)
            assert got.get("ok") is True and got["record"] == rec, (tenant, got)
        # globex taken out: refused as unknown everywhere, before any KMS call; its key stays (retained).
        code, out, err = run_offline(f"python -m offline deploy {options({'acme': {}, **NEW})}", capsys)
        assert code == 0, err + out
        for region in ("us-east-2", "us-west-1", "eu-west-1"):
            refused = as_tenant(region, "reader", "globex", {"id": "globex-1"})
            assert refused["error"]["type"] == UnknownTenant.type and refused["error"]["status"] == 400, refused
        kept = key_of("globex", "us-west-1")
        assert kept is not None and kept["KeyState"] == "Enabled", kept
        got = read("us-west-1", "acme", "acme-1")
        assert got.get("ok") is True and got["record"] == written["acme"][2], got

    up(f"python -m offline up {options(BEFORE)}", while_up)
