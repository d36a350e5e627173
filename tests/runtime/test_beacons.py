"""Beacons (issue 21) on moto: a multi-region HMAC key gives the same beacon in both regions, the field
key is derived once per container (0 KMS calls per record after that), per tenant and per table, the
value normalized per field; the writer stores each beacon as a signed attribute of item format 2."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import boto3
import pytest
from record_crypto.beacons import Beacons, label, normalize, truncate
from record_crypto.settings import (
    ENV_BEACON_FIELDS,
    ENV_BEACON_KEY_ARN,
    BeaconField,
    ConfigurationError,
    Settings,
)

from tests.runtime.conftest import PRIMARY, REPLICA, TABLE, TwoRegions, recording_session

SSN = BeaconField("ssn", 24, "digits")
DOB = BeaconField("dob", 8, "exact")


def beacon_key(aws: TwoRegions) -> tuple[str, str]:
    """A multi-region HMAC key and its replica (ARNs in PRIMARY and REPLICA), as the keys stacks make it."""
    kms = boto3.client("kms", PRIMARY)
    key = kms.create_key(MultiRegion=True, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    replica = kms.replicate_key(KeyId=key["KeyId"], ReplicaRegion=REPLICA)["ReplicaKeyMetadata"]
    return key["Arn"], replica["Arn"]


def beacon_env(arn: str, fields: str = "ssn:24:digits,dob:8:exact") -> dict[str, str]:
    return {ENV_BEACON_FIELDS: fields, ENV_BEACON_KEY_ARN: arn}


@pytest.fixture
def keys(aws: TwoRegions) -> dict[str, str]:
    primary, replica = beacon_key(aws)
    return {PRIMARY: primary, REPLICA: replica}


def test_normalizations() -> None:
    assert normalize(SSN, "078-05-1120") == normalize(SSN, "078 05 1120")
    assert normalize(SSN, "078-05-1120") == normalize(SSN, " 078.05.1120 ") == b"078051120"
    assert normalize(SSN, 12345) == b"12345"
    casefold = BeaconField("name", 16, "casefold")
    assert normalize(casefold, "  Ada\tLOVELACE ") == normalize(casefold, "ada lovelace") == b"ada lovelace"
    assert normalize(casefold, "Straße") == normalize(casefold, "STRASSE")
    assert normalize(DOB, "Ada") != normalize(DOB, "ada")
    assert normalize(DOB, "e\u0301") == normalize(DOB, "\u00e9")  # NFC: one character or two, one beacon


@pytest.mark.parametrize(("field", "value"), [(SSN, "no digits"), (SSN, [1]), (DOB, None), (DOB, 1.5), (DOB, True)])
def test_a_value_without_a_beacon_is_an_invalid_event_naming_the_field(field: BeaconField, value: Any) -> None:
    from record_crypto.errors import InvalidEvent

    with pytest.raises(InvalidEvent, match=f"'{field.name}'") as err:
        normalize(field, value)
    assert str(value) not in err.value.message or value in (None, True)


def test_truncation_keeps_the_leading_bits() -> None:
    mac = bytes.fromhex("abcdef12") + bytes(28)
    assert truncate(mac, 8) == 0xAB
    assert truncate(mac, 24) == 0xABCDEF
    assert truncate(mac, 32) == 0xABCDEF12


def test_same_beacon_in_both_regions_derived_once_and_by_the_documented_label(
    aws: TwoRegions, keys: dict[str, str]
) -> None:
    beacons = {
        region: Beacons(key_arn=arn, table=TABLE, fields=(SSN, DOB), botocore_session=recording_session(aws.recorder))
        for region, arn in keys.items()
    }
    for tenant in (None, "acme"):
        assert beacons[PRIMARY].beacon("ssn", "078-05-1120", tenant) == beacons[REPLICA].beacon(
            "ssn", "078051120", tenant
        )
    # The field key is GenerateMac over the label; the beacon is HMAC-SHA256 of the value, truncated.
    field_key = boto3.client("kms", REPLICA).generate_mac(
        KeyId=keys[REPLICA], MacAlgorithm="HMAC_SHA_256", Message=label(TABLE, "ssn", None)
    )["Mac"]
    expected = truncate(hmac.new(field_key, b"078051120", hashlib.sha256).digest(), 24)
    assert beacons[REPLICA].beacon("ssn", "078-05-1120", None) == expected
    aws.recorder.clear()
    for i in range(50):
        beacons[REPLICA].beacon("ssn", f"078-05-{i:04d}", None)
    assert aws.recorder.kms() == []  # 0 KMS calls per beacon once the field key is derived


def test_equal_values_of_two_tenants_fields_or_tables_differ(aws: TwoRegions, keys: dict[str, str]) -> None:
    wide = (BeaconField("ssn", 32, "digits"), BeaconField("tax_id", 32, "digits"))
    one = Beacons(key_arn=keys[PRIMARY], table=TABLE, fields=wide)
    other_table = Beacons(key_arn=keys[PRIMARY], table="other-records", fields=wide)
    value = "078-05-1120"
    found = {
        one.beacon("ssn", value, "acme"),
        one.beacon("ssn", value, "globex"),
        one.beacon("ssn", value, None),
        one.beacon("tax_id", value, "acme"),
        other_table.beacon("ssn", value, "acme"),
    }
    assert len(found) == 5
    # The label is length-prefixed: shifting a character between parts gives another label.
    assert label(TABLE, "ssn", "acme") != label(TABLE, "ssna", "cme")


def _service(aws: TwoRegions, region: str, keys: dict[str, str]) -> Any:
    return aws.service(region, **beacon_env(keys[region]))


def test_the_writer_stores_signed_beacons_and_the_replica_reads_them(aws: TwoRegions, keys: dict[str, str]) -> None:
    writer = _service(aws, PRIMARY, keys)
    record = {"name": "Ada", "ssn": "078-05-1120", "dob": "1815-12-10", "diagnosis": "x"}
    assert writer.write({"id": "p1", "record": record})["ok"]
    aws.replicate("p1")
    item = aws.raw_item(REPLICA, "p1")
    assert item is not None
    expected = writer.beacons.beacon("ssn", "078051120", None)
    assert item["_beacon_ssn"] == {"N": str(expected)}
    assert 0 <= int(item["_beacon_dob"]["N"]) < 2**8
    read = _service(aws, REPLICA, keys).read({"id": "p1"})
    assert read["ok"], read
    assert read["record"] == record  # no beacon in the record returned
    # A record without a beacon field gets no beacon attribute.
    assert writer.write({"id": "p2", "record": {"name": "Bo"}})["ok"]
    assert not [a for a in aws.raw_item(PRIMARY, "p2") or {} if a.startswith("_beacon_")]


def test_kms_calls_per_write_after_cold_start_are_the_data_key_only(aws: TwoRegions, keys: dict[str, str]) -> None:
    writer = _service(aws, PRIMARY, keys)
    writer.write({"id": "warm", "record": {"ssn": "1", "dob": "2"}})
    aws.recorder.clear()
    for i in range(5):
        assert writer.write({"id": f"p{i}", "record": {"ssn": f"078-05-{i}", "dob": "x"}})["ok"]
    assert [c.operation for c in aws.recorder.kms()] == ["GenerateDataKey"] * 5


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda item: item.update(_beacon_ssn={"N": str((int(item["_beacon_ssn"]["N"]) + 1) % 2**24)}), "differ"),
        (lambda item: item.pop("_beacon_ssn"), "were removed"),
        (lambda item: item.update(_beacon_ssn={"S": item["_beacon_ssn"]["N"]}), "differ"),
    ],
    ids=["changed", "removed", "retyped"],
)
def test_a_changed_or_removed_beacon_is_a_tampered_record(
    aws: TwoRegions, keys: dict[str, str], change: Any, needle: str
) -> None:
    assert _service(aws, PRIMARY, keys).write({"id": "p1", "record": {"ssn": "078-05-1120"}})["ok"]
    item = aws.raw_item(PRIMARY, "p1")
    assert item is not None
    change(item)
    aws.put_raw_item(REPLICA, item)
    result = _service(aws, REPLICA, keys).read({"id": "p1"})
    assert result["error"]["type"] == "TamperedRecord", result
    assert needle in result["error"]["message"]


def test_a_planted_beacon_is_a_tampered_record(aws: TwoRegions, keys: dict[str, str]) -> None:
    """A beacon added to a record written without one (to make it match someone else's lookup)."""
    assert _service(aws, PRIMARY, keys).write({"id": "p1", "record": {"name": "Ada"}})["ok"]
    item = aws.raw_item(PRIMARY, "p1")
    assert item is not None
    item["_beacon_ssn"] = {"N": "12345"}
    aws.put_raw_item(REPLICA, item)
    result = _service(aws, REPLICA, keys).read({"id": "p1"})
    assert result["error"]["type"] == "TamperedRecord"
    assert "did not sign" in result["error"]["message"]


def test_a_bad_beacon_value_is_refused_before_any_aws_call(aws: TwoRegions, keys: dict[str, str]) -> None:
    writer = _service(aws, PRIMARY, keys)
    aws.recorder.clear()
    result = writer.write({"id": "p1", "record": {"ssn": ["078", "05"]}})
    assert result["error"]["type"] == "InvalidEvent"
    assert "'ssn'" in result["error"]["message"] and "078" not in result["error"]["message"]
    assert aws.recorder.calls == []


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({ENV_BEACON_FIELDS: "ssn:24:digits"}, ENV_BEACON_KEY_ARN),
        ({ENV_BEACON_FIELDS: "name:24:digits"}, ENV_BEACON_FIELDS),
        ({ENV_BEACON_FIELDS: "ssn:7:digits"}, ENV_BEACON_FIELDS),
        ({ENV_BEACON_FIELDS: "ssn:33:digits"}, ENV_BEACON_FIELDS),
        ({ENV_BEACON_FIELDS: "ssn:24:lower"}, ENV_BEACON_FIELDS),
        ({ENV_BEACON_FIELDS: "ssn:24:digits,ssn:8:exact"}, ENV_BEACON_FIELDS),
        ({ENV_BEACON_KEY_ARN: "arn:aws:kms:us-east-2:111122223333:key/mrk-" + "0" * 32}, ENV_BEACON_FIELDS),
    ],
)
def test_a_bad_beacon_environment_fails_cold_start_naming_the_variable(
    aws: TwoRegions, env: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env(aws.env(PRIMARY, **env))
    assert err.value.name == variable


def test_the_beacon_key_must_be_this_regions(aws: TwoRegions, keys: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="own region us-west-1"):
        Settings.from_env(aws.env(REPLICA, **beacon_env(keys[PRIMARY])))
    settings = Settings.from_env(aws.env(REPLICA, **beacon_env(keys[REPLICA])))
    assert settings.beacon_fields == (SSN, DOB)
    assert Settings.from_env(aws.env(REPLICA)).beacon_fields == ()


# -- the finder ---------------------------------------------------------------------------------
def _with_indexes(fields: tuple[BeaconField, ...] = (SSN, DOB)) -> None:
    """The table in both regions with the beacon indexes the table stack declares (moto's tables of the
    ``aws`` fixture have none)."""
    for region in (PRIMARY, REPLICA):
        ddb = boto3.client("dynamodb", region)
        ddb.delete_table(TableName=TABLE)
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                *({"AttributeName": f.attribute, "AttributeType": "N"} for f in fields),
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": f.index_name,
                    "KeySchema": [{"AttributeName": f.attribute, "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for f in fields
            ],
            BillingMode="PAY_PER_REQUEST",
        )


@pytest.fixture
def indexed(aws: TwoRegions, keys: dict[str, str]) -> dict[str, str]:
    _with_indexes()
    return keys


def _write_all(aws: TwoRegions, keys: dict[str, str], records: dict[str, dict[str, Any]]) -> None:
    writer = _service(aws, PRIMARY, keys)
    for item_id, record in records.items():
        assert writer.write({"id": item_id, "record": record})["ok"]
        aws.replicate(item_id)


def test_written_in_one_region_found_in_another_many_and_none(aws: TwoRegions, indexed: dict[str, str]) -> None:
    records = {
        "p1": {"name": "Ada", "ssn": "078-05-1120", "dob": "1815-12-10"},
        "p2": {"name": "Bo", "ssn": "078 05 1120", "dob": "1900-01-01"},
        "p3": {"name": "Cy", "ssn": "219-09-9999", "dob": "1815-12-10"},
    }
    _write_all(aws, indexed, records)
    finder = _service(aws, REPLICA, indexed)
    found = finder.find({"field": "ssn", "value": "078051120"})
    assert found["ok"], found
    assert [m["id"] for m in found["matches"]] == ["p1", "p2"]
    assert found["matches"][0] == {"id": "p1", "record": records["p1"], "version": 1}
    assert finder.find({"field": "ssn", "value": "219-09-9999"})["matches"][0]["record"] == records["p3"]
    none = finder.find({"field": "ssn", "value": "000-00-0000"})
    assert none["ok"] and none["matches"] == []
    aws.recorder.clear()
    assert finder.find({"field": "ssn", "value": "078-05-1120"})["candidates"] == 2
    operations = [c.operation for c in aws.recorder.kms()]
    assert "GenerateMac" not in operations  # 0 KMS calls for the beacon once the field key is derived
    assert operations == ["Decrypt", "Decrypt"]  # one per candidate (data-key cache off)
    assert [c.operation for c in aws.recorder.table()] == ["Query"]


def test_false_positives_of_a_short_beacon_are_decrypted_and_dropped(aws: TwoRegions, indexed: dict[str, str]) -> None:
    """dob has 8 bits: 300 distinct dates share 256 beacons, so lookups meet other dates' records."""
    records = {f"p{i}": {"dob": f"d-{i:04d}"} for i in range(300)}
    _write_all(aws, indexed, records)
    finder = _service(aws, REPLICA, indexed)
    dropped = 0
    for i in range(0, 300, 10):
        found = finder.find({"field": "dob", "value": f"d-{i:04d}"})
        assert [m["id"] for m in found["matches"]] == [f"p{i}"], found
        dropped += found["candidates"] - 1
    assert dropped > 0


def test_a_planted_beacon_refuses_the_lookup(aws: TwoRegions, indexed: dict[str, str]) -> None:
    """A table writer gives another record the beacon of a value, to have it returned for that value."""
    _write_all(aws, indexed, {"p1": {"ssn": "078-05-1120"}, "p2": {"name": "Mallory"}})
    item = aws.raw_item(REPLICA, "p2")
    assert item is not None
    item["_beacon_ssn"] = aws.raw_item(REPLICA, "p1")["_beacon_ssn"]  # type: ignore[index]
    aws.put_raw_item(REPLICA, item)
    found = _service(aws, REPLICA, indexed).find({"field": "ssn", "value": "078-05-1120"})
    assert found["error"]["type"] == "TamperedRecord", found
    assert "did not sign" in found["error"]["message"]


def test_more_candidates_than_the_limit_are_refused_before_any_decrypt(
    aws: TwoRegions, indexed: dict[str, str]
) -> None:
    from record_crypto.settings import MAX_CANDIDATES

    _write_all(aws, indexed, {f"p{i}": {"dob": "1815-12-10"} for i in range(MAX_CANDIDATES + 1)})
    finder = _service(aws, REPLICA, indexed)
    finder.find({"field": "dob", "value": "another"})  # cold start: derive the field key
    aws.recorder.clear()
    found = finder.find({"field": "dob", "value": "1815-12-10"})
    assert found["error"]["type"] == "TooManyCandidates", found
    assert found["error"]["status"] == 422 and not found["error"]["retryable"]
    assert aws.recorder.kms() == []


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        ({"field": "name", "value": "Ada"}, "'name' is not a beacon field; beacon fields are ssn, dob"),
        ({"field": "ssn"}, "'value' is missing"),
        ({"field": "ssn", "value": ["078"]}, "'value' must be a string or an integer"),
        ({"field": "ssn", "value": "no digits"}, "must hold a digit"),
        ({"field": "ssn", "value": "1", "tenant": "acme"}, "this deployment has no tenants"),
        ({"field": "ssn", "value": "1", "limit": 5}, "unknown key(s) 'limit'"),
    ],
)
def test_a_bad_lookup_is_a_400_before_any_aws_call(
    aws: TwoRegions, indexed: dict[str, str], event: dict[str, Any], needle: str
) -> None:
    finder = _service(aws, REPLICA, indexed)
    aws.recorder.clear()
    found = finder.find(event)
    assert found["error"]["type"] == "InvalidEvent" and found["error"]["status"] == 400, found
    assert needle in found["error"]["message"]
    assert aws.recorder.calls == []


# -- a field added to a running deployment (README "Adding a beacon field") -------------------------------
BACKFILL_PATH = "/MrkToolkit/beacon-backfill/" + REPLICA


def test_a_lookup_is_incomplete_until_the_backfill_state_names_the_field(
    aws: TwoRegions, indexed: dict[str, str]
) -> None:
    from record_crypto.settings import ENV_BEACON_BACKFILL_PATH, beacon_backfill_state

    _write_all(aws, indexed, {"p1": {"ssn": "078-05-1120"}})
    finder = aws.service(REPLICA, **beacon_env(indexed[REPLICA]), **{ENV_BEACON_BACKFILL_PATH: BACKFILL_PATH})
    ssm = boto3.client("ssm", REPLICA)
    assert finder.find({"field": "ssn", "value": "078051120"})["complete"] is False  # no parameter yet
    # Another definition of the field (a field removed and added again with other bits) is not this one's.
    ssm.put_parameter(Name=f"{BACKFILL_PATH}/ssn", Value="complete ssn:16:digits", Type="String")
    finder.backfill._seen.clear()
    assert finder.find({"field": "ssn", "value": "078051120"})["complete"] is False
    ssm.put_parameter(Name=f"{BACKFILL_PATH}/ssn", Value=beacon_backfill_state(SSN), Type="String", Overwrite=True)
    finder.backfill._seen.clear()
    found = finder.find({"field": "ssn", "value": "078051120"})
    assert found["complete"] is True and [m["id"] for m in found["matches"]] == ["p1"], found
    assert finder.find({"field": "dob", "value": "x"})["complete"] is False  # per field
    # Without a path (library use) nothing says the backfill is done: incomplete, never the opposite.
    assert _service(aws, REPLICA, indexed).find({"field": "ssn", "value": "078051120"})["complete"] is False


def test_the_backfill_state_is_cached_per_container(aws: TwoRegions) -> None:
    from record_crypto.beacons import BACKFILL_COMPLETE_TTL_S, BACKFILL_INCOMPLETE_TTL_S, BackfillState
    from record_crypto.settings import beacon_backfill_state

    now = [0.0]
    state = BackfillState(path=BACKFILL_PATH, region=REPLICA, clock=lambda: now[0])
    assert state.complete(SSN) is False and state.complete(SSN) is False and state.reads == 1
    boto3.client("ssm", REPLICA).put_parameter(
        Name=f"{BACKFILL_PATH}/ssn", Value=beacon_backfill_state(SSN), Type="String"
    )
    now[0] += BACKFILL_INCOMPLETE_TTL_S + 0.1
    assert state.complete(SSN) is True and state.reads == 2
    now[0] += BACKFILL_COMPLETE_TTL_S - 1
    assert state.complete(SSN) is True and state.reads == 2
