"""``beaconFields``: sensitive field -> {bits, normalize}; every mistake names the field, the setting and the fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambda_src.record_crypto.settings import (
    BEACON_BITS_MAX,
    BEACON_BITS_MIN,
    MAX_BEACON_FIELDS,
    BeaconField,
    beacon_fields_environment,
)
from stacks.config import ConfigError, load_config
from tests.infra.synth import cdk_json_context


def config(beacons: Any, **extra: Any) -> Any:
    return load_config({**cdk_json_context(), **extra, "mrk-toolkit:beaconFields": beacons})


def test_no_beacon_fields_by_default() -> None:
    assert load_config(cdk_json_context()).beacon_fields == ()
    assert config({}).beacon_fields == ()
    assert config("").beacon_fields == ()


def test_bits_and_normalization_default_exact_in_the_order_given() -> None:
    fields = config(
        {"ssn": {"bits": 24, "normalize": "digits"}, "card_number": {"bits": BEACON_BITS_MIN}}
    ).beacon_fields
    assert fields == (
        BeaconField(name="ssn", bits=24, normalization="digits"),
        BeaconField(name="card_number", bits=8, normalization="exact"),
    )
    assert fields[0].attribute == "_beacon_ssn"
    assert beacon_fields_environment(fields) == "ssn:24:digits,card_number:8:exact"


def test_command_line_json() -> None:
    text = json.dumps({"ssn": {"bits": BEACON_BITS_MAX, "normalize": "casefold"}})
    assert config(text).beacon_fields == (BeaconField("ssn", 32, "casefold"),)


@pytest.mark.parametrize(
    ("beacons", "field", "needle"),
    [
        ({"sn": {"bits": 16}}, "beaconFields.sn", "did you mean ssn?"),
        ({"name": {"bits": 16}}, "beaconFields.name", "add 'name' to mrk-toolkit:sensitiveFields"),
        ({"ssn": {"bit": 16}}, "beaconFields.ssn.bit", "did you mean bits?"),
        ({"ssn": {"bits": 16, "normalise": "digits"}}, "beaconFields.ssn.normalise", "did you mean normalize?"),
        ({"ssn": {}}, "beaconFields.ssn.bits", "required: the beacon's length, 8-32 bits"),
        ({"ssn": {"bits": 7}}, "beaconFields.ssn.bits", "an integer from 8 to 32"),
        ({"ssn": {"bits": 33}}, "beaconFields.ssn.bits", "an integer from 8 to 32"),
        ({"ssn": {"bits": "16"}}, "beaconFields.ssn.bits", "an integer from 8 to 32"),
        ({"ssn": {"bits": True}}, "beaconFields.ssn.bits", "an integer from 8 to 32"),
        ({"ssn": {"bits": 16, "normalize": "digit"}}, "beaconFields.ssn.normalize", "did you mean digits?"),
        ({"ssn": {"bits": 16, "normalize": "lower"}}, "beaconFields.ssn.normalize", "exact, casefold, digits"),
        ({"ssn": 16}, "beaconFields.ssn", "expected an object with bits and normalize"),
        (["ssn"], "beaconFields", "expected an object"),
        ("{ssn", "beaconFields", "expected a JSON object"),
    ],
)
def test_a_mistake_names_the_field_the_setting_and_the_fix(beacons: Any, field: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(beacons)
    message = str(err.value)
    assert err.value.field_name == field
    assert needle in message
    assert "mrk-toolkit:beaconFields" in message  # the fix names the option


def test_at_most_a_few_beacon_fields() -> None:
    names = [f"f{i}" for i in range(MAX_BEACON_FIELDS + 1)]
    extra = {"mrk-toolkit:sensitiveFields": names}
    assert len(config({n: {"bits": 16} for n in names[:-1]}, **extra).beacon_fields) == MAX_BEACON_FIELDS
    with pytest.raises(ConfigError, match=f"at most {MAX_BEACON_FIELDS} beacon fields"):
        config({n: {"bits": 16} for n in names}, **extra)


def test_a_beacon_field_must_stay_sensitive() -> None:
    """Dropping a field from sensitiveFields while it keeps a beacon is refused (it would be stored in
    plaintext beside its own beacon)."""
    with pytest.raises(ConfigError, match="sensitive field only"):
        config({"ssn": {"bits": 16}}, **{"mrk-toolkit:sensitiveFields": ["card_number"]})


def test_beacons_with_tenants_are_per_tenant_fields_of_the_same_config() -> None:
    """Beacons and tenants combine (README "Beacons", "Tenants"): the same fields, each tenant's beacons
    derived with its own label (record_crypto/beacons.py), found by a finder in that tenant's session."""
    loaded = config({"ssn": {"bits": 16}}, **{"mrk-toolkit:tenants": {"acme": {}, "globex": {}}})
    assert loaded.beacon_fields == (BeaconField("ssn", 16, "exact"),)
    assert [t.tenant_id for t in loaded.tenants] == ["acme", "globex"]
