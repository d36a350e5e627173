"""Beacons per tenant (issue 21) through the deployed functions on the emulator (the emulated IAM deciding
every call by the templates' policies, the finder taking each tenant's session of its tenant-access role):
equal values of two tenants are stored with different beacons; a tenant's lookup returns its own record
only, and another tenant looking up the same value finds nothing of it; a beacon copied by a table writer
from tenant A's record onto tenant B's is refused (TamperedRecord: beacons are signed) when B's lookup meets
it, and never returned to A; after ``erase-tenant`` the erased tenant's records are unfindable (KeyDisabled)
in every region, while the other tenants are found."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest

from lambda_src.record_crypto.beacons import Beacons
from lambda_src.record_crypto.errors import KeyDisabled, TamperedRecord
from lambda_src.record_crypto.settings import ENV_BEACON_KEY_ARN, ENV_TABLE_NAME, TENANT_KEY
from offline.__main__ import main
from stacks.synthesize import synthesize
from tests.offline.test_tenant_beacons_main_job import CONTEXT
from tests.offline.test_tenants_end_to_end import PRIMARY
from tests.offline.test_verify_served import _tables, served  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e
SHARED = "us-west-1"  # acme and globex both have a key here
AS_DEPLOYED = [arg for name, value in CONTEXT.items() for arg in ("-c", f"{name}={value}")]
SSN, DOB = "078-05-1120", "1815-12-10"


def _invoke(env: Any, region: str, kind: str, event: dict[str, Any]) -> dict[str, Any]:
    reply = boto3.client("lambda", region_name=region).invoke(
        FunctionName=env.function_names[(region, kind)], Payload=json.dumps(event).encode()
    )
    return dict(json.loads(reply["Payload"].read()))


def _write(env: Any, region: str, tenant: str, item_id: str, record: dict[str, Any], *where: str) -> None:
    """Written as ``tenant`` in ``region``, then read back as it in each of ``where`` (replication waited for)."""
    result = _invoke(env, region, "writer", {"id": item_id, "record": record, TENANT_KEY: tenant})
    assert result["ok"] is True, result
    for there in where:
        deadline = time.monotonic() + 30
        while not (read := _invoke(env, there, "reader", {"id": item_id, TENANT_KEY: tenant})).get("ok"):
            assert time.monotonic() < deadline, f"{item_id} in {there}: {read}"
            time.sleep(0.2)


def _find(env: Any, region: str, tenant: str, field: str, value: str) -> dict[str, Any]:
    return _invoke(env, region, "finder", {"field": field, "value": value, TENANT_KEY: tenant})


def _ids(found: dict[str, Any]) -> list[str]:
    assert found.get("ok") is True, found
    return [m["id"] for m in found["matches"]]


def _stored(env: Any, region: str, item_id: str) -> dict[str, Any]:
    ddb = boto3.client("dynamodb", region_name=region)
    return dict(ddb.get_item(TableName=env.deployment.tables[region], Key={"id": {"S": item_id}})["Item"])


def _finder_beacons(env: Any, region: str) -> Beacons:
    """Beacons computed as the region's finder role computes them (its GenerateMac on the beacon key)."""
    finder = env.deployment.function(region, "finder")
    credentials = env.aws.credentials_for(finder.role_arn)
    session = botocore.session.Session()
    session.set_credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])
    key_arn, table = finder.environment[ENV_BEACON_KEY_ARN], finder.environment[ENV_TABLE_NAME]
    return Beacons(key_arn=key_arn, table=table, fields=env.beacon_fields, botocore_session=session)


def test_beacons_per_tenant_through_the_deployed_finders(tmp_path: Path, served: Any) -> None:  # noqa: F811
    env = served(Path(synthesize(dict(CONTEXT), str(tmp_path / "cdk.out"))))
    _write(env, PRIMARY, "acme", "a1", {"ssn": SSN, "date_of_birth": DOB}, SHARED)
    _write(env, SHARED, "globex", "g1", {"ssn": SSN})
    acme, globex = _stored(env, SHARED, "a1"), _stored(env, SHARED, "g1")
    assert acme["_beacon_ssn"] != globex["_beacon_ssn"], "equal values of two tenants, one beacon"
    assert _ids(_find(env, SHARED, "acme", "ssn", SSN)) == ["a1"]
    assert _ids(_find(env, SHARED, "globex", "ssn", SSN)) == ["g1"]
    assert _ids(_find(env, SHARED, "globex", "date_of_birth", DOB)) == [], "acme's value found for globex"

    # A table writer copies acme's 8-bit beacon onto a globex record; globex's lookup of a value whose beacon
    # is that one meets the record and refuses it; acme's lookup meets it and never returns it.
    _write(env, SHARED, "globex", "g2", {"date_of_birth": "1900-01-01"})
    copied = acme["_beacon_date_of_birth"]
    beacons = _finder_beacons(env, SHARED)
    value = next(
        v for v in (f"d-{i}" for i in range(5000)) if {"N": str(beacons.beacon("date_of_birth", v, "globex"))} == copied
    )
    boto3.client("dynamodb", region_name=SHARED).put_item(
        TableName=env.deployment.tables[SHARED], Item={**_stored(env, SHARED, "g2"), "_beacon_date_of_birth": copied}
    )
    refused = _find(env, SHARED, "globex", "date_of_birth", value)
    assert refused.get("error", {}).get("type") == TamperedRecord.type, refused
    found = _find(env, SHARED, "acme", "date_of_birth", DOB)
    assert _ids(found) == ["a1"] and found["candidates"] >= 2, found

    # Erasure: initech's records become unfindable in each of its regions; acme is still found.
    _write(env, PRIMARY, "initech", "i1", {"ssn": SSN}, "eu-west-1")
    for region in (PRIMARY, "eu-west-1"):
        assert _ids(_find(env, region, "initech", "ssn", SSN)) == ["i1"], region
    assert main(["erase-tenant", "initech", "--yes", *AS_DEPLOYED]) == 0
    for region in (PRIMARY, "eu-west-1"):
        after = _find(env, region, "initech", "ssn", SSN)
        assert after.get("error", {}).get("type") == KeyDisabled.type, (region, after)
        assert "i1" not in json.dumps(after) and SSN not in json.dumps(after)
    assert _ids(_find(env, PRIMARY, "acme", "ssn", SSN)) == ["a1"]


def test_verify_runs_the_lookups_per_tenant_and_leaves_the_tables_as_they_were(
    tmp_path: Path,
    served: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`verify` against the emulated deployment, as against an account: the per-tenant lookups pass; the
    finder's tenant sessions cannot be taken by an operator (N/A); every id it wrote is deleted."""
    env = served(Path(synthesize(dict(CONTEXT), str(tmp_path / "cdk.out"))))
    before = _tables(env)
    capsys.readouterr()
    code = main(["verify", "--deadline", "10", *(f"-c{k}={v}" for k, v in CONTEXT.items())])
    out = capsys.readouterr().out
    assert code == 0, "\n".join(line for line in out.splitlines() if line.startswith("FAIL"))
    lines = {line.split("  ")[1].strip(): line[:4] for line in out.splitlines() if line[:4] in ("PASS", "N/A ", "FAIL")}
    found = [n for n in lines if n.startswith("beacons: a record is found by ")]
    assert len(found) == 3 and all(lines[n] == "PASS" for n in found), lines
    apart = [n for n in lines if n.startswith("beacons: equal values of two tenants")]
    copied = [n for n in lines if n.startswith("beacons: a beacon copied from one tenant's record")]
    assert [lines[n] for n in apart + copied] == ["PASS", "PASS"], lines
    sessions = [n for n in lines if n.startswith("beacons: the finder's tenant sessions in ")]
    assert len(sessions) == 3 and all(lines[n] == "N/A " for n in sessions), lines
    assert _tables(env) == before, "verify left the tables changed"
