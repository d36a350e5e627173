"""Records of a deployment with tenants: the tenant is in the encryption context, stored and signed;
a record of one tenant is never returned for another; an unknown tenant, or a tenant without a key in
this region, is refused before any KMS (and database) call.

Two tenants over the two regions: ``acme`` everywhere (primary in us-east-2), ``globex`` only in
us-west-1 (a key with no replica)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from record_crypto.errors import ERROR_TYPES
from record_crypto.records import TENANT_ATTRIBUTE
from record_crypto.settings import ENV_TENANT_KEYS, TENANT_KEY, ConfigurationError, Settings, tenant_keys_environment

from tests.runtime.conftest import PRIMARY, REPLICA, TwoRegions, assert_no_plaintext, sample_record


@pytest.fixture
def tenants(aws: TwoRegions) -> dict[str, dict[str, str | None]]:
    """region -> tenant id -> key id in that region (None: no key there)."""
    acme = boto3.client("kms", PRIMARY).create_key(MultiRegion=True, Tags=[{"TagKey": "tenant", "TagValue": "acme"}])
    boto3.client("kms", PRIMARY).replicate_key(KeyId=acme["KeyMetadata"]["KeyId"], ReplicaRegion=REPLICA)
    globex = boto3.client("kms", REPLICA).create_key(MultiRegion=True)
    acme_id, globex_id = acme["KeyMetadata"]["KeyId"], globex["KeyMetadata"]["KeyId"]
    return {PRIMARY: {"acme": acme_id, "globex": None}, REPLICA: {"acme": acme_id, "globex": globex_id}}


def service(aws: TwoRegions, tenants: dict[str, dict[str, str | None]], region: str) -> Any:
    return aws.service(region, **{ENV_TENANT_KEYS: tenant_keys_environment(tenants[region])})


def write(aws: TwoRegions, tenants: Any, tenant: str, region: str = PRIMARY, item_id: str = "p-1") -> dict[str, Any]:
    return service(aws, tenants, region).write({"id": item_id, "record": sample_record(item_id), TENANT_KEY: tenant})


def refused(result: dict[str, Any], error_type: str) -> dict[str, Any]:
    assert result["ok"] is False, result
    assert result["error"]["type"] == error_type, result
    assert ERROR_TYPES[error_type].type == error_type
    return result["error"]


def test_a_tenant_writes_and_reads_where_its_key_is(aws: TwoRegions, tenants: Any) -> None:
    assert write(aws, tenants, "acme")["tenant"] == "acme"
    generate = aws.recorder.kms("GenerateDataKey")
    assert generate[-1].key_id.endswith(tenants[PRIMARY]["acme"])
    assert generate[-1].params["EncryptionContext"][TENANT_KEY] == "acme"
    aws.replicate("p-1")
    item = aws.raw_item(REPLICA, "p-1")
    assert item is not None and item[TENANT_ATTRIBUTE] == {"S": "acme"}
    assert_no_plaintext(item, sample_record("p-1"))
    result = service(aws, tenants, REPLICA).read({"id": "p-1", TENANT_KEY: "acme"})
    assert result["ok"], result
    assert (result["tenant"], result["record"]["ssn"]) == ("acme", sample_record("p-1")["ssn"])
    assert aws.recorder.kms("Decrypt")[-1].key_id.endswith(tenants[REPLICA]["acme"])
    # A tenant of one region writes and reads there.
    assert write(aws, tenants, "globex", REPLICA, "g-1")["ok"]
    assert service(aws, tenants, REPLICA).read({"id": "g-1", TENANT_KEY: "globex"})["ok"]


def test_a_record_of_one_tenant_read_as_another_is_refused_before_kms(aws: TwoRegions, tenants: Any) -> None:
    assert write(aws, tenants, "acme")["ok"]
    aws.replicate("p-1")
    reader = service(aws, tenants, REPLICA)
    aws.recorder.clear()
    error = refused(reader.read({"id": "p-1", TENANT_KEY: "globex"}), "TenantMismatch")
    assert error["status"] == 403 and error["retryable"] is False
    assert "acme" not in error["message"]  # the other tenant's id is not disclosed
    assert aws.recorder.kms() == []


def test_a_relabelled_record_is_refused(aws: TwoRegions, tenants: Any) -> None:
    """Someone with PutItem rewrites the stored tenant: the key, the context and the signature disagree."""
    assert write(aws, tenants, "acme")["ok"]
    aws.replicate("p-1")
    item = aws.raw_item(REPLICA, "p-1")
    assert item is not None
    aws.put_raw_item(REPLICA, {**item, TENANT_ATTRIBUTE: {"S": "globex"}})
    result = service(aws, tenants, REPLICA).read({"id": "p-1", TENANT_KEY: "globex"})
    assert result["ok"] is False
    assert ERROR_TYPES[result["error"]["type"]].security_signal, result
    assert_no_plaintext(result, sample_record("p-1"))


def test_a_tenant_without_a_key_in_this_region_is_refused_before_any_call(aws: TwoRegions, tenants: Any) -> None:
    assert write(aws, tenants, "globex", REPLICA, "g-1")["ok"]
    aws.replicate("g-1", REPLICA, PRIMARY)  # the ciphertext is there, as a global table puts it
    assert aws.raw_item(PRIMARY, "g-1") is not None
    aws.recorder.clear()
    primary = service(aws, tenants, PRIMARY)
    for result in (
        primary.read({"id": "g-1", TENANT_KEY: "globex"}),
        primary.write({"id": "g-2", "record": sample_record(), TENANT_KEY: "globex"}),
    ):
        error = refused(result, "TenantNotInRegion")
        assert (error["status"], error["retryable"]) == (403, False)
        assert "globex" in error["message"] and PRIMARY in error["message"]
    assert aws.recorder.calls == []


def test_an_unknown_tenant_is_a_400_naming_it_before_any_call(aws: TwoRegions, tenants: Any) -> None:
    aws.recorder.clear()
    reader, writer = service(aws, tenants, REPLICA), service(aws, tenants, PRIMARY)
    for result in (
        reader.read({"id": "p-1", TENANT_KEY: "initech"}),
        writer.write({"id": "p-1", "record": sample_record(), TENANT_KEY: "initech"}),
    ):
        error = refused(result, "UnknownTenant")
        assert error["status"] == 400 and "'initech'" in error["message"]
    for bad in ("Acme", "", 7, None):
        error = refused(reader.read({"id": "p-1", TENANT_KEY: bad}), "InvalidEvent")
        assert "'tenant' must be a tenant id" in error["message"]
    assert "'tenant' is missing" in refused(reader.read({"id": "p-1"}), "InvalidEvent")["message"]
    assert aws.recorder.calls == []


def test_without_tenants_an_event_naming_one_is_refused(aws: TwoRegions) -> None:
    aws.recorder.clear()
    error = refused(aws.service(REPLICA).read({"id": "p-1", TENANT_KEY: "acme"}), "InvalidEvent")
    assert "this deployment has no tenants" in error["message"]
    assert aws.recorder.calls == []


def test_a_record_without_tenant_is_refused_in_a_deployment_with_tenants(aws: TwoRegions, tenants: Any) -> None:
    aws.written()  # written by the single-key deployment
    aws.recorder.clear()
    error = refused(service(aws, tenants, REPLICA).read({"id": "person-1", TENANT_KEY: "acme"}), "TenantMismatch")
    assert "it has no tenant" in error["message"]
    assert aws.recorder.kms() == []


def test_the_library_api_takes_the_tenant(aws: TwoRegions, tenants: Any) -> None:
    written = service(aws, tenants, PRIMARY).put("lib-1", sample_record(), tenant="acme")
    assert written.tenant == "acme"
    assert service(aws, tenants, PRIMARY).get("lib-1", tenant="acme").tenant == "acme"


ARN = "arn:aws:kms:us-east-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"


@pytest.mark.parametrize(
    "value",
    ['{"Acme": "mrk-1234abcd12ab34cd56ef1234567890ab"}', '{"acme": "key-1"}', "[]", "{}", "{acme", '{"acme": 1}'],
)
def test_a_bad_tenant_keys_variable_is_named(value: str) -> None:
    environ = {"AWS_REGION": "us-east-2", "RECORDS_TABLE_NAME": "t-records", "RECORDS_MRK_ARN": ARN}
    with pytest.raises(ConfigurationError, match=ENV_TENANT_KEYS):
        Settings.from_env({**environ, "SENSITIVE_FIELDS": "ssn", ENV_TENANT_KEYS: value})


def test_tenant_keys_become_arns_of_this_region() -> None:
    settings = Settings.create(
        table_name="t-records",
        mrk_arn=ARN,
        region="us-east-2",
        sensitive_fields=["ssn"],
        tenant_key_ids={"acme": "mrk-00001111222233334444555566667777", "globex": None},
    )
    assert settings.tenant_keys == {
        "acme": "arn:aws:kms:us-east-2:111122223333:key/mrk-00001111222233334444555566667777",
        "globex": None,
    }


# -- the PostgreSQL store (real PostgreSQL, a primary and its standby) ----------------------------
def test_postgres_store_keeps_the_tenant_signed_and_refuses_another(tenants: Any, pg: Any) -> None:
    from tests.runtime.pg import TABLE

    env = {PRIMARY: tenant_keys_environment(tenants[PRIMARY]), REPLICA: tenant_keys_environment(tenants[REPLICA])}
    writer = pg.writer(**{ENV_TENANT_KEYS: env[PRIMARY]})
    assert writer.write({"id": "p-1", "record": sample_record("p-1"), TENANT_KEY: "acme"})["ok"]
    pg.cluster.caught_up()
    assert pg.row(REPLICA, "p-1")["attributes"][TENANT_ATTRIBUTE] == "acme"
    reader = pg.reader(**{ENV_TENANT_KEYS: env[REPLICA]})
    result = reader.read({"id": "p-1", TENANT_KEY: "acme"})
    assert result["ok"] and result["tenant"] == "acme", result
    pg.recorder.clear()
    refused(reader.read({"id": "p-1", TENANT_KEY: "globex"}), "TenantMismatch")
    assert pg.recorder.kms() == []
    refused(
        pg.reader(PRIMARY, **{ENV_TENANT_KEYS: env[PRIMARY]}).read({"id": "p-1", TENANT_KEY: "globex"}),
        "TenantNotInRegion",
    )
    # A database administrator relabels the row: the signature (and the key) refuse it.
    pg.attack(f"UPDATE {TABLE} SET attributes = jsonb_set(attributes, '{{_tenant}}', '\"globex\"')")
    result = reader.read({"id": "p-1", TENANT_KEY: "globex"})
    assert result["ok"] is False and ERROR_TYPES[result["error"]["type"]].security_signal, result
