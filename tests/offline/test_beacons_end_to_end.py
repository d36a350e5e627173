"""Beacons (issue 21) through the deployed functions on the emulator: the templates stand up a multi-region
HMAC key, the beacon indexes of the global table and a finder per region; a record written in the primary
region is found by value in every region (the emulated IAM deciding every call, GenerateMac and the
index Query included, by the templates' policies); many, none, a non-beacon field (400), the false
positives of an 8-bit beacon dropped, a planted beacon refused, more candidates than the limit refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambda_src.record_crypto.settings import MAX_CANDIDATES
from stacks.synthesize import synthesize
from tests.offline.test_verify_served import served  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e
PRIMARY, REPLICAS = "us-east-2", ("us-west-1", "eu-west-1")
# ssn: 24 bits of its digits; date_of_birth: 8 bits, so that 300 distinct dates share 256 beacons.
BEACONS = {"ssn": {"bits": 24, "normalize": "digits"}, "date_of_birth": {"bits": 8}}
CONTEXT = {"mrk-toolkit:replicaRegions": ",".join(REPLICAS), "mrk-toolkit:beaconFields": json.dumps(BEACONS)}


def _invoke(env: Any, region: str, kind: str, event: dict[str, Any]) -> dict[str, Any]:
    name = next(f.name for f in env.deployment.functions if f.region == region and f.kind == kind)
    reply = boto3.client("lambda", region_name=region).invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return dict(json.loads(reply["Payload"].read()))


def _write(env: Any, records: dict[str, dict[str, Any]]) -> None:
    """Write in the primary region, then wait until (emulated) global tables have copied every item."""
    for item_id, record in records.items():
        result = _invoke(env, PRIMARY, "writer", {"id": item_id, "record": record})
        assert result["ok"] is True, result
    deadline = time.monotonic() + 120
    for region in REPLICAS:
        table = env.deployment.tables[region]
        ddb = boto3.client("dynamodb", region_name=region)
        while any("Item" not in ddb.get_item(TableName=table, Key={"id": {"S": i}}) for i in records):
            assert time.monotonic() < deadline, f"not replicated to {region}"
            time.sleep(0.2)


def _ids(found: dict[str, Any]) -> list[str]:
    assert found.get("ok") is True, found
    return [m["id"] for m in found["matches"]]


@pytest.fixture
def env(tmp_path: Path, served: Any) -> Any:  # noqa: F811
    return served(Path(synthesize(dict(CONTEXT), str(tmp_path / "cdk.out"))))


def test_written_in_one_region_found_in_every_other(env: Any) -> None:
    people = {
        "p1": {"name": "Ada", "ssn": "078-05-1120", "date_of_birth": "1815-12-10"},
        "p2": {"name": "Bo", "ssn": "078 05 1120", "date_of_birth": "1900-01-01"},
        "p3": {"name": "Cy", "ssn": "219-09-9999", "date_of_birth": "1815-12-10"},
    }
    _write(env, people)
    for region in (PRIMARY, *REPLICAS):
        found = _invoke(env, region, "finder", {"field": "ssn", "value": "078051120"})
        assert _ids(found) == ["p1", "p2"], region  # many (one value written two ways)
        assert found["matches"][0] == {"id": "p1", "record": people["p1"], "version": 1}, region
        assert _ids(_invoke(env, region, "finder", {"field": "ssn", "value": "000-00-0000"})) == [], region  # none
        refused = _invoke(env, region, "finder", {"field": "name", "value": "Ada"})
        assert refused["error"]["type"] == "InvalidEvent" and refused["error"]["status"] == 400, refused
    # The table holds beacons, never the value.
    item = boto3.client("dynamodb", region_name=REPLICAS[0]).get_item(
        TableName=env.deployment.tables[REPLICAS[0]], Key={"id": {"S": "p1"}}
    )["Item"]
    # The whole value, not a part of it: ciphertext bytes and beacon numbers contain any 3 digits by chance.
    plain = json.dumps({k: v for k, v in item.items() if "B" not in v})
    assert "_beacon_ssn" in item and "078-05-1120" not in plain and "078051120" not in plain
    assert all(b"078-05-1120" not in v["B"] and b"078051120" not in v["B"] for v in item.values() if "B" in v)


def test_false_positives_dropped_and_a_planted_beacon_refused(env: Any) -> None:
    _write(env, {f"d{i}": {"date_of_birth": f"d-{i:04d}"} for i in range(300)})
    dropped = 0
    for i in range(0, 300, 15):
        found = _invoke(env, REPLICAS[1], "finder", {"field": "date_of_birth", "value": f"d-{i:04d}"})
        assert _ids(found) == [f"d{i}"], found
        dropped += found["candidates"] - 1
    assert dropped > 0, "8 bits over 300 values: some lookups meet other values' records"
    # A table writer plants d0's beacon on another record so that a lookup of d0's value returns it.
    table, region = env.deployment.tables[REPLICAS[0]], REPLICAS[0]
    ddb = boto3.client("dynamodb", region_name=region)
    beacon = ddb.get_item(TableName=table, Key={"id": {"S": "d0"}})["Item"]["_beacon_date_of_birth"]
    _write(env, {"mallory": {"name": "Mallory"}})
    item = ddb.get_item(TableName=table, Key={"id": {"S": "mallory"}})["Item"]
    ddb.put_item(TableName=table, Item={**item, "_beacon_date_of_birth": beacon})
    found = _invoke(env, region, "finder", {"field": "date_of_birth", "value": "d-0000"})
    assert found["error"]["type"] == "TamperedRecord", found


def test_too_many_candidates_is_refused(env: Any) -> None:
    _write(env, {f"s{i}": {"date_of_birth": "1815-12-10"} for i in range(MAX_CANDIDATES + 1)})
    found = _invoke(env, REPLICAS[0], "finder", {"field": "date_of_birth", "value": "1815-12-10"})
    assert found["error"]["type"] == "TooManyCandidates", found


AURORA_CONTEXT = {**CONTEXT, "mrk-toolkit:store": "aurora-postgresql"}


def test_the_aurora_store_written_in_the_primary_found_in_every_region(tmp_path: Path, served: Any) -> None:  # noqa: F811
    """The schema setup (a custom resource on the emulator's PostgreSQL) adds the beacon columns and indexes;
    the finder of each region reads its own cluster (the secondaries by streaming replication)."""
    env = served(Path(synthesize(dict(AURORA_CONTEXT), str(tmp_path / "cdk.out"))))
    people = {"p1": {"ssn": "078-05-1120"}, "p2": {"ssn": "078 05 1120"}, "p3": {"ssn": "219-09-9999"}}
    for item_id, record in people.items():
        assert _invoke(env, PRIMARY, "writer", {"id": item_id, "record": record})["ok"] is True
    for region in (PRIMARY, *REPLICAS):
        deadline = time.monotonic() + 60
        while True:
            found = _invoke(env, region, "finder", {"field": "ssn", "value": "078051120"})
            if _ids(found) == ["p1", "p2"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert _ids(found) == ["p1", "p2"], region
        assert found["matches"][1]["record"] == people["p2"], region
