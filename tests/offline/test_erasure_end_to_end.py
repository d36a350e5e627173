"""Erasure of one tenant through the deployed functions (README "Tenants", erase-tenant): after
`erase-tenant --yes` the tenant's records are refused with KeyDisabled in every region where they
were readable (reads and writes), every other tenant is served, the tenant's ciphertext stays in every
table replica; `--cancel` within the waiting period serves the tenant again."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambda_src.record_crypto.errors import KeyDisabled
from lambda_src.record_crypto.settings import TENANT_KEY
from offline.__main__ import main
from stacks.synthesize import synthesize
from tests.offline.test_tenants_end_to_end import CONTEXT, TENANTS
from tests.offline.test_verify_served import served  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e
ERASED = "initech"
REGIONS = ("us-east-2", "us-west-1", "eu-west-1")
AS_DEPLOYED = [arg for name, value in CONTEXT.items() for arg in ("-c", f"{name}={value}")]


def _regions(tenant: str) -> tuple[str, ...]:
    return tuple(TENANTS[tenant].get("regions", REGIONS))  # type: ignore[attr-defined]


def _invoke(env: Any, region: str, kind: str, event: dict[str, Any]) -> dict[str, Any]:
    reply = boto3.client("lambda", region_name=region).invoke(
        FunctionName=env.function_names[(region, kind)], Payload=json.dumps(event).encode()
    )
    return dict(json.loads(reply["Payload"].read()))


def _reads(env: Any, ids: dict[str, str]) -> dict[tuple[str, str], str]:
    """tenant, region -> "ok" or the error type of its record's read there (a retryable NotFound is read
    again until replication has brought the record: the emulated lag grows on a loaded machine)."""
    out = {}
    for tenant, item_id in ids.items():
        for region in _regions(tenant):
            deadline = time.monotonic() + 15
            while True:
                result = _invoke(env, region, "reader", {"id": item_id, TENANT_KEY: tenant})
                error = result.get("error", {})
                if result.get("ok") or error.get("type") != "NotFound" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            out[(tenant, region)] = "ok" if result.get("ok") else error.get("type", str(result)[:300])
    return out


def test_an_erased_tenant_is_refused_everywhere_and_the_others_are_served(
    tmp_path: Path,
    served: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = served(Path(synthesize(dict(CONTEXT), str(tmp_path / "cdk.out"))))
    ids = {}
    for tenant in TENANTS:
        ids[tenant] = f"erasure-{tenant}"
        event = {"id": ids[tenant], "record": {"ssn": f"SECRET-{tenant}"}, TENANT_KEY: tenant}
        assert _invoke(env, _regions(tenant)[0], "writer", event)["ok"] is True
    env.replication.sync(env.deployment.tables, env.deployment.stream_arns)
    served_before = _reads(env, ids)
    assert set(served_before.values()) == {"ok"}, served_before

    assert main(["erase-tenant", ERASED, "--yes", *AS_DEPLOYED]) == 0, capsys.readouterr().err
    after = _reads(env, ids)
    refused = {(ERASED, region): KeyDisabled.type for region in _regions(ERASED)}
    assert {k: v for k, v in after.items() if k[0] == ERASED} == refused
    assert all(v == "ok" for k, v in after.items() if k[0] != ERASED), after
    write = _invoke(env, _regions(ERASED)[0], "writer", {"id": "erasure-new", "record": {"a": 1}, TENANT_KEY: ERASED})
    assert write["error"]["type"] == KeyDisabled.type and write["error"]["retryable"] is False
    for region in REGIONS:  # the ciphertext stays until the items are deleted (README: GDPR and backups)
        item = boto3.client("dynamodb", region_name=region).get_item(
            TableName=env.deployment.tables[region], Key={"id": {"S": ids[ERASED]}}
        )
        assert "Item" in item and f"SECRET-{ERASED}" not in json.dumps(item, default=str), region

    assert main(["erase-tenant", ERASED, "--cancel", *AS_DEPLOYED]) == 0, capsys.readouterr().err
    assert _reads(env, ids) == served_before, "cancelled within the waiting period, the tenant is served again"


def test_destroy_removes_the_tenant_keys_stacks_and_lists_their_keys(
    tmp_path: Path,
    served: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = served(Path(synthesize(dict(CONTEXT), str(tmp_path / "cdk.out"))))
    capsys.readouterr()
    assert main(["destroy", "--yes", *AS_DEPLOYED]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for stack in env.deployment.assembly.stacks.values():
        found = boto3.client("cloudformation", region_name=stack.region).list_stacks()["StackSummaries"]
        assert all(s["StackStatus"] == "DELETE_COMPLETE" for s in found if s["StackName"] == stack.name), stack.name
        assert f"deleted {stack.name} " in out, stack.name
    commands = [line for line in out.splitlines() if line.startswith("aws kms schedule-key-deletion")]
    tenant_keys = sum(len(_regions(tenant)) for tenant in TENANTS)
    assert len(commands) >= tenant_keys + len(REGIONS), "every retained tenant key is listed with its command"
