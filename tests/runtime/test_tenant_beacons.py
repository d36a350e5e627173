"""Beacons per tenant (issue 21) on moto: equal values of two tenants are stored with different beacons;
the finder of a tenant deployment needs ``tenant`` (400 before any call when missing or unknown), finds
only that tenant's records, decrypts them with that tenant's key only, and never decrypts a candidate of
another tenant whose truncated beacon collides; a beacon copied from one tenant's record onto another's
is refused (signed). The sessions' least privilege is proven on the emulator and the templates
(tests/offline/test_tenant_beacons_end_to_end.py, tests/infra/test_tenant_role_contracts.py).

Tenants as in tests/runtime/test_tenants.py: ``acme`` in both regions, ``globex`` in us-west-1 only; every
record here is written and found in us-west-1 (both tenants have a key there)."""

from __future__ import annotations

from typing import Any

import pytest
from record_crypto.errors import ERROR_TYPES
from record_crypto.records import TENANT_ATTRIBUTE
from record_crypto.settings import ENV_TENANT_KEYS, TENANT_KEY, tenant_keys_environment

from tests.runtime.conftest import PRIMARY, REPLICA, TwoRegions
from tests.runtime.test_beacons import _with_indexes, beacon_env, keys  # noqa: F401 (fixture)
from tests.runtime.test_tenants import refused, tenants  # noqa: F401 (fixture)

X = "1815-12-10"  # acme's dob (an 8-bit beacon: collisions are found in a few hundred tries)


@pytest.fixture
def deployment(aws: TwoRegions, keys: dict[str, str], tenants: dict[str, dict[str, str | None]]) -> Any:  # noqa: F811
    """The replica region's service with both tenants and the beacon fields, over indexed tables."""
    _with_indexes()
    return aws.service(
        REPLICA, **{ENV_TENANT_KEYS: tenant_keys_environment(tenants[REPLICA]), **beacon_env(keys[REPLICA])}
    )


def write(service: Any, item_id: str, tenant: str, record: dict[str, Any]) -> None:
    result = service.write({"id": item_id, "record": record, TENANT_KEY: tenant})
    assert result["ok"], result


def colliding_value(service: Any, field: str, tenant: str, beacon: int) -> str:
    """A value whose beacon for ``tenant`` is ``beacon`` (computed locally: 0 KMS calls after derivation)."""
    for i in range(100_000):
        if service.beacons.beacon(field, f"v-{i}", tenant) == beacon:
            return f"v-{i}"
    raise AssertionError("no collision in 100,000 values")


def decrypted_with(aws: TwoRegions, key_id: str | None) -> int:
    assert key_id is not None
    return len([c for c in aws.recorder.kms("Decrypt") if c.key_id and key_id in c.key_id])


def test_equal_values_of_two_tenants_are_stored_with_different_beacons(aws: TwoRegions, deployment: Any) -> None:
    write(deployment, "a1", "acme", {"ssn": "078-05-1120"})
    write(deployment, "g1", "globex", {"ssn": "078-05-1120"})
    acme, globex = aws.raw_item(REPLICA, "a1"), aws.raw_item(REPLICA, "g1")
    assert acme is not None and globex is not None
    assert acme["_beacon_ssn"] != globex["_beacon_ssn"]
    assert acme["_beacon_ssn"] == {"N": str(deployment.beacons.beacon("ssn", "078051120", "acme"))}


def test_a_tenant_finds_its_own_records_only_with_its_own_key(
    aws: TwoRegions,
    deployment: Any,
    tenants: dict[str, dict[str, str | None]],  # noqa: F811
) -> None:
    write(deployment, "a1", "acme", {"ssn": "078-05-1120", "dob": X})
    write(deployment, "g1", "globex", {"ssn": "078-05-1120"})
    aws.recorder.clear()
    found = deployment.find({"field": "ssn", "value": "078051120", TENANT_KEY: "acme"})
    assert found["ok"] and found[TENANT_KEY] == "acme", found
    assert [m["id"] for m in found["matches"]] == ["a1"]
    assert decrypted_with(aws, tenants[REPLICA]["acme"]) == 1 == len(aws.recorder.kms("Decrypt"))
    # globex looking up acme's value finds its own record, nothing of acme's.
    found = deployment.find({"field": "ssn", "value": "078-05-1120", TENANT_KEY: "globex"})
    assert [m["id"] for m in found["matches"]] == ["g1"], found
    found = deployment.find({"field": "dob", "value": X, TENANT_KEY: "globex"})
    assert found["ok"] and found["matches"] == [], found
    assert decrypted_with(aws, tenants[REPLICA]["acme"]) == 1  # none more with acme's key


def test_another_tenants_candidate_on_a_colliding_beacon_is_never_decrypted(
    aws: TwoRegions,
    deployment: Any,
    tenants: dict[str, dict[str, str | None]],  # noqa: F811
) -> None:
    write(deployment, "a1", "acme", {"dob": X})
    acme_beacon = deployment.beacons.beacon("dob", X, "acme")
    write(deployment, "g1", "globex", {"dob": colliding_value(deployment, "dob", "globex", acme_beacon)})
    stored = aws.raw_item(REPLICA, "g1")
    assert stored is not None and stored["_beacon_dob"] == {"N": str(acme_beacon)}  # the collision is real
    aws.recorder.clear()
    found = deployment.find({"field": "dob", "value": X, TENANT_KEY: "acme"})
    assert [m["id"] for m in found["matches"]] == ["a1"] and found["candidates"] == 2, found
    assert decrypted_with(aws, tenants[REPLICA]["globex"]) == 0
    assert len(aws.recorder.kms("Decrypt")) == 1


def test_a_beacon_copied_onto_another_tenants_record_is_refused(
    aws: TwoRegions,
    deployment: Any,
    tenants: dict[str, dict[str, str | None]],  # noqa: F811
) -> None:
    """A table writer copies acme's beacon onto a globex record, to have it found for a value it does not
    hold: acme's finder never decrypts it (another tenant's), globex's refuses it (the beacon is signed)."""
    write(deployment, "a1", "acme", {"dob": X})
    write(deployment, "g1", "globex", {"dob": "1900-01-01"})
    acme = aws.raw_item(REPLICA, "a1")
    globex = aws.raw_item(REPLICA, "g1")
    assert acme is not None and globex is not None
    aws.put_raw_item(REPLICA, {**globex, "_beacon_dob": acme["_beacon_dob"]})
    found = deployment.find({"field": "dob", "value": X, TENANT_KEY: "acme"})
    assert [m["id"] for m in found["matches"]] == ["a1"], found
    value = colliding_value(deployment, "dob", "globex", int(acme["_beacon_dob"]["N"]))
    error = refused(deployment.find({"field": "dob", "value": value, TENANT_KEY: "globex"}), "TamperedRecord")
    assert "1900" not in error["message"]
    # Relabelled as acme's too: acme's finder takes it, and its key refuses it (globex's data key is not
    # acme's to decrypt); nothing is decrypted with globex's key.
    aws.put_raw_item(REPLICA, {**globex, "_beacon_dob": acme["_beacon_dob"], TENANT_ATTRIBUTE: {"S": "acme"}})
    aws.recorder.clear()
    error = refused(deployment.find({"field": "dob", "value": X, TENANT_KEY: "acme"}), "WrongKey")
    assert ERROR_TYPES["WrongKey"].security_signal and "1900" not in error["message"]
    assert decrypted_with(aws, tenants[REPLICA]["globex"]) == 0


@pytest.mark.parametrize(
    ("event", "error_type", "needle"),
    [
        ({"field": "ssn", "value": "1"}, "InvalidEvent", "'tenant' is missing"),
        ({"field": "ssn", "value": "1", TENANT_KEY: "initech"}, "UnknownTenant", "'initech'"),
        ({"field": "ssn", "value": "1", TENANT_KEY: "Acme"}, "InvalidEvent", "'tenant' must be a tenant id"),
    ],
)
def test_a_lookup_without_a_known_tenant_is_a_400_before_any_call(
    aws: TwoRegions, deployment: Any, event: dict[str, Any], error_type: str, needle: str
) -> None:
    aws.recorder.clear()
    error = refused(deployment.find(event), error_type)
    assert error["status"] == 400 and needle in error["message"], error
    assert aws.recorder.calls == []


def test_a_lookup_of_a_tenant_without_a_key_in_this_region_is_refused_before_any_call(
    aws: TwoRegions,
    keys: dict[str, str],  # noqa: F811
    tenants: dict[str, dict[str, str | None]],  # noqa: F811
) -> None:
    """globex has no key in us-east-2: its candidates there (replicated ciphertext) may not be decrypted."""
    _with_indexes()
    primary = aws.service(
        PRIMARY, **{ENV_TENANT_KEYS: tenant_keys_environment(tenants[PRIMARY]), **beacon_env(keys[PRIMARY])}
    )
    aws.recorder.clear()
    error = refused(primary.find({"field": "ssn", "value": "078-05-1120", TENANT_KEY: "globex"}), "TenantNotInRegion")
    assert (error["status"], error["retryable"]) == (403, False)
    assert aws.recorder.calls == []
