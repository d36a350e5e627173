"""record_crypto's discovery (README "Discovery"): settings from the deployment's SSM parameters in ONE
cached GetParametersByPath call, and a clear DeploymentNotDiscovered naming the path and the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from record_crypto import DeploymentNotDiscovered, RecordService, clear_discovery_cache, discover_settings
from record_crypto.settings import (
    PARAM_BEACON_FIELDS,
    PARAM_BEACON_KEY_ARN,
    PARAM_DB_NAME,
    PARAM_DB_PORT,
    PARAM_DB_READER_ENDPOINT,
    PARAM_DB_READER_SECRET_ARN,
    PARAM_DB_WRITER_ENDPOINT,
    PARAM_DB_WRITER_SECRET_ARN,
    PARAM_READER_TENANT_ROLE_ARN,
    PARAM_RECORD_KEY_ARN,
    PARAM_RECORD_OPTIONS,
    PARAM_TABLE_NAME,
    PARAM_TENANT_KEYS,
    PARAM_WRITER_TENANT_ROLE_ARN,
    STORE_AURORA_POSTGRESQL,
    STORE_DYNAMODB,
    discovery_path,
    record_options_value,
)

from tests.runtime.conftest import PRIMARY, REPLICA, SENSITIVE, TABLE, Recorder, TwoRegions, recording_session

DEPLOYMENT = "MrkToolkit"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_discovery_cache()
    yield
    clear_discovery_cache()


def publish(region: str, values: dict[str, str], deployment: str = DEPLOYMENT) -> None:
    ssm = boto3.client("ssm", region)
    for name, value in values.items():
        ssm.put_parameter(Name=f"{discovery_path(deployment, region)}/{name}", Value=value, Type="String")


def options(store: str = STORE_DYNAMODB) -> str:
    return record_options_value(
        store=store,
        sensitive_fields=SENSITIVE,
        unsigned_attributes=(),
        algorithm_suite="signing",
        max_record_bytes=4096,
    )


def publish_deployment(aws: TwoRegions) -> None:
    for region, arn in ((PRIMARY, aws.primary_arn), (REPLICA, aws.replica_arn)):
        publish(region, {PARAM_RECORD_KEY_ARN: arn, PARAM_TABLE_NAME: TABLE, PARAM_RECORD_OPTIONS: options()})


def test_a_service_from_region_and_deployment_writes_and_reads(aws: TwoRegions) -> None:
    publish_deployment(aws)
    recorder = Recorder()
    writer = RecordService.discover(region=PRIMARY, deployment=DEPLOYMENT, botocore_session=recording_session(recorder))
    assert (writer.settings.mrk_arn, writer.settings.table_name) == (aws.primary_arn, TABLE)
    assert (writer.settings.sensitive_fields, writer.settings.max_record_bytes) == (SENSITIVE, 4096)
    writer.put("d1", {"name": "Ada", "ssn": "123"})
    aws.replicate("d1")
    reader = RecordService.discover(region=REPLICA, deployment=DEPLOYMENT, botocore_session=recording_session(recorder))
    assert reader.settings.mrk_arn == aws.replica_arn
    assert reader.get("d1").record == {"name": "Ada", "ssn": "123"}
    ssm_calls = [(c.operation, c.region) for c in recorder.calls if c.service == "ssm"]
    assert ssm_calls == [("GetParametersByPath", PRIMARY), ("GetParametersByPath", REPLICA)]


def test_one_call_per_deployment_and_region_then_the_cache(aws: TwoRegions) -> None:
    publish_deployment(aws)
    recorder = Recorder()
    for _ in range(3):
        discover_settings(region=PRIMARY, deployment=DEPLOYMENT, botocore_session=recording_session(recorder))
    assert [c.operation for c in recorder.calls if c.service == "ssm"] == ["GetParametersByPath"]
    clear_discovery_cache()
    discover_settings(region=PRIMARY, deployment=DEPLOYMENT, botocore_session=recording_session(recorder))
    assert len([c for c in recorder.calls if c.service == "ssm"]) == 2


def test_a_missing_deployment_or_parameter_names_the_path_and_the_fix(aws: TwoRegions) -> None:
    with pytest.raises(
        DeploymentNotDiscovered, match=r"No deployment 'Other' in us-east-2: /Other/us-east-2/record-key"
    ):
        discover_settings(region=PRIMARY, deployment="Other")
    publish(PRIMARY, {PARAM_TABLE_NAME: TABLE, PARAM_RECORD_OPTIONS: options()})
    with pytest.raises(DeploymentNotDiscovered, match=r"/MrkToolkit/us-east-2/record-key-arn is missing") as missing:
        discover_settings(region=PRIMARY, deployment=DEPLOYMENT)
    assert missing.value.type == "DeploymentNotDiscovered" and "stack prefix" in missing.value.message
    # A failure is not cached: once deployed, the next call finds it.
    publish(PRIMARY, {PARAM_RECORD_KEY_ARN: aws.primary_arn})
    assert discover_settings(region=PRIMARY, deployment=DEPLOYMENT).mrk_arn == aws.primary_arn


@pytest.mark.parametrize(
    ("region", "deployment", "field"),
    [("nowhere", DEPLOYMENT, "region"), (PRIMARY, "/etc", "deployment"), (PRIMARY, "", "deployment")],
)
def test_bad_names_are_refused_before_any_call(region: str, deployment: str, field: str) -> None:
    with pytest.raises(DeploymentNotDiscovered, match=rf"^{field}: "):
        discover_settings(region=region, deployment=deployment)


def test_a_key_of_another_region_or_malformed_options_are_refused(aws: TwoRegions) -> None:
    publish(PRIMARY, {PARAM_RECORD_KEY_ARN: aws.replica_arn, PARAM_TABLE_NAME: TABLE, PARAM_RECORD_OPTIONS: options()})
    with pytest.raises(
        DeploymentNotDiscovered, match=r"/MrkToolkit/us-east-2 do not make valid settings .*RECORDS_MRK_ARN"
    ):
        discover_settings(region=PRIMARY, deployment=DEPLOYMENT)
    publish(REPLICA, {PARAM_RECORD_KEY_ARN: aws.replica_arn, PARAM_TABLE_NAME: TABLE, PARAM_RECORD_OPTIONS: "[]"})
    with pytest.raises(DeploymentNotDiscovered, match=r"/MrkToolkit/us-west-1/record-options is not"):
        discover_settings(region=REPLICA, deployment=DEPLOYMENT)


def test_access_denied_names_the_permission_and_the_path(aws: TwoRegions) -> None:
    publish_deployment(aws)
    session = recording_session(Recorder(), faults={"ssm.GetParametersByPath": ["AccessDeniedException"]})
    with pytest.raises(
        DeploymentNotDiscovered, match=r"ssm:GetParametersByPath on the path .*parameter/MrkToolkit/us-east-2"
    ):
        discover_settings(region=PRIMARY, deployment=DEPLOYMENT, botocore_session=session)


def test_the_aurora_store_gives_the_writer_or_the_reader_its_endpoint_and_secret(aws: TwoRegions) -> None:
    secret = f"arn:aws:secretsmanager:{PRIMARY}:123456789012:secret:MrkToolkit-records_"
    publish(
        PRIMARY,
        {
            PARAM_RECORD_KEY_ARN: aws.primary_arn,
            PARAM_TABLE_NAME: "records",
            PARAM_RECORD_OPTIONS: options(STORE_AURORA_POSTGRESQL),
            PARAM_DB_WRITER_ENDPOINT: "writer.cluster-x.us-east-2.rds.amazonaws.com",
            PARAM_DB_READER_ENDPOINT: "reader.cluster-ro-x.us-east-2.rds.amazonaws.com",
            PARAM_DB_PORT: "5432",
            PARAM_DB_NAME: "records",
            PARAM_DB_WRITER_SECRET_ARN: secret + "writer-abc",
            PARAM_DB_READER_SECRET_ARN: secret + "reader-abc",
        },
    )
    writer = discover_settings(region=PRIMARY, deployment=DEPLOYMENT).database
    reader = discover_settings(region=PRIMARY, deployment=DEPLOYMENT, database_role="reader").database
    assert writer is not None and reader is not None
    assert (writer.host, writer.secret_arn) == ("writer.cluster-x.us-east-2.rds.amazonaws.com", secret + "writer-abc")
    assert (reader.host, reader.secret_arn, reader.port) == (
        "reader.cluster-ro-x.us-east-2.rds.amazonaws.com",
        secret + "reader-abc",
        5432,
    )
    boto3.client("ssm", PRIMARY).delete_parameter(Name=f"/MrkToolkit/{PRIMARY}/{PARAM_DB_NAME}")
    clear_discovery_cache()
    with pytest.raises(DeploymentNotDiscovered, match=r"/MrkToolkit/us-east-2/db-name missing"):
        discover_settings(region=PRIMARY, deployment=DEPLOYMENT)


def test_the_example_discovers_the_deployment(aws: TwoRegions, capsys: pytest.CaptureFixture[str]) -> None:
    from examples.records_from_python import main

    publish_deployment(aws)
    assert main(["--region", PRIMARY, "--deployment", DEPLOYMENT]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "stored example-1 version 1 in us-east-2, encrypted ['ssn']"
    assert out[1] == "read example-1 version 1 in us-east-2: name=Ada, ssn decrypted"
    for bad in (["--region", PRIMARY], ["--region", PRIMARY, "--deployment", "D", "--table", TABLE]):
        with pytest.raises(SystemExit):
            main(bad)
    assert "give --deployment, or --table and --key-arn" in capsys.readouterr().err


def test_more_than_one_page_is_read_whole(aws: TwoRegions) -> None:
    """Someone added parameters under the path: the published ones are still found (pages followed)."""
    publish(PRIMARY, {f"extra-{n:02d}": "x" for n in range(12)})
    publish_deployment(aws)
    recorder = Recorder()
    settings = discover_settings(region=PRIMARY, deployment=DEPLOYMENT, botocore_session=recording_session(recorder))
    assert settings.mrk_arn == aws.primary_arn
    assert len([c for c in recorder.calls if c.service == "ssm"]) == 2


WRITER_TENANT_ROLE = "arn:aws:iam::123456789012:role/MrkToolkit/writer/Application-WriterTenantRole-1"
READER_TENANT_ROLE = "arn:aws:iam::123456789012:role/MrkToolkit/reader/Application-ReaderTenantRole-1"


def test_with_tenants_the_writer_and_the_reader_get_the_tenant_keys_and_their_tenant_access_role(
    aws: TwoRegions,
) -> None:
    """README "The application roles": the region's tenant keys and, per role, the application's tenant-access
    role a tenant's session is assumed in."""
    key_id = aws.primary_arn.rsplit("/", 1)[1]
    publish(
        PRIMARY,
        {
            PARAM_RECORD_KEY_ARN: aws.primary_arn,
            PARAM_TABLE_NAME: TABLE,
            PARAM_RECORD_OPTIONS: options(),
            PARAM_TENANT_KEYS: json.dumps({"acme": key_id, "globex": ""}),
            PARAM_WRITER_TENANT_ROLE_ARN: WRITER_TENANT_ROLE,
            PARAM_READER_TENANT_ROLE_ARN: READER_TENANT_ROLE,
        },
    )
    writer = discover_settings(region=PRIMARY, deployment=DEPLOYMENT)
    assert writer.tenant_keys == {"acme": aws.primary_arn, "globex": None}
    assert writer.tenant_role_arn == WRITER_TENANT_ROLE
    reader = RecordService.discover(region=PRIMARY, deployment=DEPLOYMENT, role="reader").settings
    assert (reader.tenant_keys, reader.tenant_role_arn) == (writer.tenant_keys, READER_TENANT_ROLE)


def test_without_tenants_no_tenant_settings_and_bad_tenant_keys_are_refused(aws: TwoRegions) -> None:
    publish_deployment(aws)
    settings = discover_settings(region=PRIMARY, deployment=DEPLOYMENT, role="reader")
    assert (settings.tenant_keys, settings.tenant_role_arn) == (None, None)
    publish(REPLICA, {PARAM_TENANT_KEYS: "[1]"})
    with pytest.raises(DeploymentNotDiscovered, match=f"/{DEPLOYMENT}/{REPLICA}/{PARAM_TENANT_KEYS} is not the"):
        discover_settings(region=REPLICA, deployment=DEPLOYMENT)


def test_with_beacon_fields_the_writer_gets_the_fields_and_the_regions_beacon_key(aws: TwoRegions) -> None:
    beacon_key = aws.primary_arn  # any multi-region key ARN of the region stands in for the HMAC key here
    values = {PARAM_RECORD_KEY_ARN: aws.primary_arn, PARAM_TABLE_NAME: TABLE, PARAM_RECORD_OPTIONS: options()}
    publish(PRIMARY, {**values, PARAM_BEACON_FIELDS: "ssn:24:digits", PARAM_BEACON_KEY_ARN: beacon_key})
    settings = discover_settings(region=PRIMARY, deployment=DEPLOYMENT)
    assert [(f.name, f.bits, f.normalization) for f in settings.beacon_fields] == [("ssn", 24, "digits")]
    assert settings.beacon_key_arn == beacon_key
    publish(REPLICA, {PARAM_RECORD_KEY_ARN: aws.replica_arn, PARAM_TABLE_NAME: TABLE, PARAM_RECORD_OPTIONS: options()})
    publish(REPLICA, {PARAM_BEACON_FIELDS: "name:24:digits", PARAM_BEACON_KEY_ARN: aws.replica_arn})
    with pytest.raises(DeploymentNotDiscovered, match="BEACON_FIELDS"):  # not a sensitive field
        discover_settings(region=REPLICA, deployment=DEPLOYMENT)
