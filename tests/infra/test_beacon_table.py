"""Beacons (issue 21): one global secondary index per beacon field on the global table, in every replica,
keyed by the beacon (a number); none without beaconFields."""

from __future__ import annotations

from tests.infra.helpers import only
from tests.infra.synth import Synthesized


def test_one_index_per_beacon_field_in_every_replica(beacons_app: Synthesized) -> None:
    app = beacons_app
    _, table = only(app.raw(app.stacks.table), "AWS::DynamoDB::GlobalTable")
    props = table["Properties"]
    indexes = {gsi["IndexName"]: gsi for gsi in props["GlobalSecondaryIndexes"]}
    assert list(indexes) == [f.index_name for f in app.config.beacon_fields]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    for field in app.config.beacon_fields:
        gsi = indexes[field.index_name]
        assert gsi["KeySchema"] == [{"AttributeName": field.attribute, "KeyType": "HASH"}]
        # A lookup authenticates each candidate whole (the signature covers every stored attribute).
        assert gsi["Projection"] == {"ProjectionType": "ALL"}
        assert types[field.attribute] == "N"
    assert {r["Region"] for r in props["Replicas"]} == set(app.config.regions)
    for replica in props["Replicas"]:
        assert [g["IndexName"] for g in replica["GlobalSecondaryIndexes"]] == list(indexes), replica["Region"]


def test_no_index_without_beacon_fields(default_app: Synthesized) -> None:
    _, table = only(default_app.raw(default_app.stacks.table), "AWS::DynamoDB::GlobalTable")
    assert "GlobalSecondaryIndexes" not in table["Properties"]
