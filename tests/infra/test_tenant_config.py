"""``tenants``: tenant id -> {regions, primaryRegion}; every mistake names the tenant, the setting and the fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambda_src.record_crypto.settings import MAX_TENANTS, STORE_AURORA_POSTGRESQL, TENANT_ID
from stacks.config import ConfigError, load_config
from tests.infra.synth import cdk_json_context

THREE_REGIONS = {"mrk-toolkit:replicaRegions": ["us-west-1", "eu-west-1"]}


def config(tenants: Any, **extra: Any) -> Any:
    return load_config({**cdk_json_context(), **THREE_REGIONS, **extra, "mrk-toolkit:tenants": tenants})


def test_no_tenants_is_the_single_key_deployment() -> None:
    assert load_config(cdk_json_context()).tenants == ()
    assert config({}).tenants == ()
    assert config("").tenants == ()


def test_defaults_every_region_and_the_deployment_primary_else_the_first() -> None:
    tenants = {t.tenant_id: t for t in config({"globex": {}, "acme": {"regions": ["eu-west-1", "us-west-1"]}}).tenants}
    assert list(tenants) == ["acme", "globex"]  # sorted: synth does not depend on the map's order
    assert tenants["globex"].regions == ("us-east-2", "us-west-1", "eu-west-1")
    assert tenants["globex"].primary_region == "us-east-2"
    # In the deployment's order; the primary is the tenant's first there (us-east-2 is not among them).
    assert tenants["acme"].regions == ("us-west-1", "eu-west-1")
    assert tenants["acme"].primary_region == "us-west-1"
    assert tenants["acme"].replica_regions == ("eu-west-1",)


def test_command_line_json_and_an_explicit_primary() -> None:
    text = json.dumps({"initech": {"regions": ["us-east-2", "eu-west-1"], "primaryRegion": "eu-west-1"}})
    (tenant,) = config(text).tenants
    assert (tenant.primary_region, tenant.replica_regions) == ("eu-west-1", ("us-east-2",))
    assert [t.tenant_id for t in config(text).tenants_in("us-west-1")] == []


@pytest.mark.parametrize(
    ("tenants", "field", "needle"),
    [
        ({"Acme": {}}, "tenants", "1-32 characters from a-z 0-9 -"),
        ({"acme-": {}}, "tenants", "starting and ending with a letter or digit"),
        ({"a" * 33: {}}, "tenants", "1-32 characters"),
        ({"acme": {"region": ["us-west-1"]}}, "tenants.acme.region", "did you mean regions"),
        ({"acme": {"primaryregion": "us-west-1"}}, "tenants.acme.primaryregion", "did you mean primaryRegion"),
        ({"acme": {"regions": []}}, "tenants.acme.regions", "at least one region"),
        ({"acme": {"regions": ["us-west-9x"]}}, "tenants.acme.regions", "AWS region name"),
        ({"acme": {"regions": ["us-wset-1"]}}, "tenants.acme.regions", "did you mean us-west-1"),
        ({"acme": {"regions": ["ap-south-1"]}}, "tenants.acme.regions", "not a region of the deployment"),
        ({"acme": {"regions": ["us-west-1", "us-west-1"]}}, "tenants.acme.regions", "duplicated: us-west-1"),
        ({"acme": {"regions": ["us-west-1"], "primaryRegion": "us-east-2"}}, "tenants.acme.primaryRegion", "one of"),
        ({"acme": ["us-west-1"]}, "tenants.acme", "expected an object"),
        (["acme"], "tenants", "expected an object"),
        ("{acme", "tenants", "expected a JSON object"),
        ({f"t{i}": {} for i in range(MAX_TENANTS + 1)}, "tenants", f"at most {MAX_TENANTS} tenants"),
    ],
)
def test_bad_tenants_name_the_setting_and_the_fix(tenants: Any, field: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(tenants)
    assert err.value.field_name == field
    assert f"mrk-toolkit:{field}=" in str(err.value)
    assert needle in str(err.value)
    assert "-c 'mrk-toolkit:tenants=" in str(err.value)


def test_the_limit_is_allowed() -> None:
    assert len(config({f"t{i}": {} for i in range(MAX_TENANTS)}).tenants) == MAX_TENANTS


@pytest.mark.parametrize("tenant_id", ["a", "acme", "acme-eu-2", "0", "9lives", "x" * 32])
def test_good_tenant_ids(tenant_id: str) -> None:
    assert TENANT_ID.match(tenant_id)
    assert config({tenant_id: {}}).tenants[0].tenant_id == tenant_id


def test_a_misspelt_tenants_option_gets_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="did you mean tenants"):
        load_config({**cdk_json_context(), "mrk-toolkit:tenant": {"acme": {}}})


def test_with_the_aurora_store_a_tenant_may_live_in_secondary_regions_only() -> None:
    """Every region's writer writes through the global writer endpoint (README "Cross-region network"),
    encrypting with its own region's tenant key: a tenant need not have a key in the primary region,
    on either store, and nothing is added to its regions."""
    aurora = {"mrk-toolkit:store": STORE_AURORA_POSTGRESQL}
    tenants = {"acme": {}, "globex": {"regions": ["us-west-1"]}, "north": {"regions": ["eu-west-1", "us-west-1"]}}
    for extra in (aurora, {}):
        by_id = {t.tenant_id: t for t in config(tenants, **extra).tenants}
        assert (by_id["globex"].regions, by_id["globex"].primary_region) == (("us-west-1",), "us-west-1")
        assert by_id["north"].regions == ("us-west-1", "eu-west-1") and by_id["north"].primary_region == "us-west-1"
        assert [t.tenant_id for t in config(tenants, **extra).tenants_in("us-east-2")] == ["acme"]
