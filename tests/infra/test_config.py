"""Bad config fails synth with one message naming the field, the value and what is allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, load_config
from tests.infra.synth import REPO_ROOT, cdk_json_context


def ctx(**overrides: Any) -> dict[str, Any]:
    c = cdk_json_context()
    for k, v in overrides.items():
        key = f"mrk-toolkit:{k}"
        if v is None:
            c.pop(key, None)
        else:
            c[key] = v
    return c


def test_default_config_from_cdk_json() -> None:
    config = load_config(cdk_json_context())
    assert config.primary_region == "us-east-2"
    assert config.replica_regions == ("us-west-1",)
    assert config.account is None
    assert config.regions == ("us-east-2", "us-west-1")


def test_cli_style_overrides_are_parsed() -> None:
    config = load_config(
        ctx(
            replicaRegions="us-west-1, eu-west-1", keyPendingWindowDays="7", dataKeyCache="true", account="123456789012"
        )
    )
    assert config.replica_regions == ("us-west-1", "eu-west-1")
    assert config.key_pending_window_days == 7
    assert config.data_key_cache.enabled is True
    assert config.account == "123456789012"
    assert load_config(ctx(replicaRegions='["eu-west-1"]')).replica_regions == ("eu-west-1",)


def test_account_comes_from_cdk_default_account_unless_set() -> None:
    assert load_config(ctx(), default_account="210987654321").account == "210987654321"
    assert load_config(ctx(account="123456789012"), default_account="210987654321").account == "123456789012"


@pytest.mark.parametrize(
    ("overrides", "field", "hint"),
    [
        ({"primaryRegion": "us-east"}, "primaryRegion", "region name"),
        ({"primaryRegion": "US-EAST-2"}, "primaryRegion", "region name"),
        ({"primaryRegion": None}, "primaryRegion", "required"),
        ({"replicaRegions": ["us-west-1", "eu-west-99x"]}, "replicaRegions", "region name"),
        ({"replicaRegions": ["us-west-1", "us-west-1"]}, "replicaRegions", "duplicated: us-west-1"),
        ({"replicaRegions": ["us-east-2"]}, "replicaRegions", "must not list the primary region us-east-2"),
        ({"replicaRegions": []}, "replicaRegions", "at least one replica region"),
        ({"replicaRegions": ""}, "replicaRegions", "at least one replica region"),
        ({"replicaRegions": ["cn-north-1"]}, "replicaRegions", "same AWS partition"),
        ({"account": "12345"}, "account", "12-digit"),
        ({"account": "abcdefghijkl"}, "account", "12-digit"),
        ({"replicaRegion": "us-west-1"}, "replicaRegion", "unknown option"),
        ({"keyPendingWindowDays": 3}, "keyPendingWindowDays", "from 7 to 30"),
        ({"keyPendingWindowDays": 31}, "keyPendingWindowDays", "from 7 to 30"),
        ({"keyRotationDays": 30}, "keyRotationDays", "from 90 to 2560"),
        ({"keyRotationDays": 3000}, "keyRotationDays", "from 90 to 2560"),
        ({"removalPolicy": "delete"}, "removalPolicy", "retain, destroy"),
        ({"algorithmSuite": "fast"}, "algorithmSuite", "signing, committing-unsigned"),
        ({"sensitiveFields": []}, "sensitiveFields", "at least one"),
        ({"sensitiveFields": ["id"]}, "sensitiveFields", "not 'id'"),
        ({"sensitiveFields": ["card-number"]}, "sensitiveFields", "A-Z a-z 0-9 _"),
        ({"sensitiveFields": ["ssn\n"]}, "sensitiveFields", "A-Z a-z 0-9 _"),
        ({"unsignedAttributes": ["ssn"]}, "unsignedAttributes", "always encrypted and signed"),
        ({"unsignedAttributes": ["_ttl"]}, "unsignedAttributes", "starting with a letter"),
        ({"sensitiveFields": ["ssn", "ssn"]}, "sensitiveFields", "once"),
        ({"logRetentionDays": 31}, "logRetentionDays", "CloudWatch Logs accepts"),
        ({"tableName": "x"}, "tableName", "3-255"),
        ({"keyAlias": "alias/aws/foo"}, "keyAlias", "not alias/aws/"),
        ({"keyAdminArns": ["arn:aws:iam::123:root"]}, "keyAdminArns", "IAM role, user or account root"),
        ({"dataKeyCache": "maybe"}, "dataKeyCache", "true or false"),
        ({"reservedConcurrency": 0}, "reservedConcurrency", "from 1 to 1000"),
        ({"store": "aurora"}, "store", "did you mean aurora-postgresql"),
        ({"store": "postgres"}, "store", "did you mean aurora-postgresql"),
        ({"store": "mysql"}, "store", "expected one of dynamodb, aurora-postgresql."),
        # Aurora fields are refused with the DynamoDB store (cdk.json's), naming the store to set.
        ({"databaseName": "records"}, "databaseName", "-c mrk-toolkit:store=aurora-postgresql"),
        ({"writeForwarding": True}, "writeForwarding", "removed: Aurora write forwarding is not exercised"),
        ({"store": "aurora-postgresql", "databaseName": "Records"}, "databaseName", "PostgreSQL identifier"),
        ({"store": "aurora-postgresql", "databaseName": "postgres"}, "databaseName", "PostgreSQL identifier"),
        ({"store": "aurora-postgresql", "databaseName": "select"}, "databaseName", "reserved word"),
        ({"store": "aurora-postgresql", "tableName": "pg_records"}, "tableName", "the SQL table 'pg_records'"),
        ({"store": "aurora-postgresql", "tableName": "1records"}, "tableName", "starting with a letter or _"),
        ({"store": "aurora-postgresql", "tableName": "user"}, "tableName", "reserved word"),
        ({"store": "aurora-postgresql", "auroraEngineVersion": "16.7"}, "auroraEngineVersion", "16.8"),
        ({"store": "aurora-postgresql", "auroraEngineVersion": "15.4"}, "auroraEngineVersion", "global databases"),
        (
            {"store": "aurora-postgresql", "writeForwarding": "false"},
            "writeForwarding",
            "drop -c mrk-toolkit:writeForwarding",
        ),
        (
            {"store": "aurora-postgresql", "auroraInstanceClass": "db.t4g.medium"},
            "auroraInstanceClass",
            "memory-optimized",
        ),
        ({"store": "aurora-postgresql", "auroraBackupRetentionDays": 1}, "auroraBackupRetentionDays", "from 7 to 35"),
        ({"store": "aurora-postgresql", "auroraSecretRotationDays": 0}, "auroraSecretRotationDays", "from 1 to 1000"),
        ({"store": "aurora-postgresql", "auroraSecretRotationDays": "monthly"}, "auroraSecretRotationDays", "integer"),
        ({"auroraSecretRotationDays": 30}, "auroraSecretRotationDays", "aurora-postgresql"),
    ],
)
def test_bad_config_names_field_value_and_fix(overrides: dict[str, Any], field: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(ctx(**overrides))
    message = str(err.value)
    assert err.value.field_name == field
    assert f"mrk-toolkit:{field}=" in message
    assert hint in message
    assert "-c mrk-toolkit:" in message


@pytest.mark.parametrize(
    ("option", "needles"),
    [
        (
            "mrk-toolkit:replicaRegions=us-east-2",
            ["Invalid config mrk-toolkit:replicaRegions=", "must not list the primary region us-east-2"],
        ),
        (
            "mrk-tolkit:dataKeyCache=true",
            ["'mrk-tolkit:dataKeyCache' (did you mean mrk-toolkit:dataKeyCache?)", "-c mrk-toolkit:dataKeyCache=..."],
        ),
    ],
)
def test_cdk_synth_fails_with_the_message_on_bad_config(tmp_path: Any, option: str, needles: list[str]) -> None:
    """The real CLI, as a user types it: `npx cdk synth -c mrk-toolkit:replicaRegions=us-east-2`; a
    misspelt prefix fails too, not ignored beside the keys the CDK CLI adds to the context."""
    cdk_cli = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk_cli.exists(), "run `make setup` (npm ci) first: the CDK CLI is pinned in package.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [str(cdk_cli), "synth", "-q", "-o", str(tmp_path), "-c", option],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    for needle in needles:
        assert needle in result.stderr


def test_aurora_store_config_and_its_sql_table_name() -> None:
    config = load_config(ctx(store="aurora-postgresql"))
    assert config.store == "aurora-postgresql"
    assert config.table_name == "mrk_toolkit_records"  # cdk.json's mrk-toolkit-records as an SQL identifier
    assert config.aurora is not None
    assert config.aurora.database_name == "records"
    assert config.aurora.engine_version == "16.8"
    assert config.aurora.instance_class == "db.r6g.large"
    assert config.aurora.backup_retention_days == 7
    tuned = load_config(
        ctx(
            store="aurora-postgresql",
            tableName="Records.V2",
            databaseName="crm",
            auroraEngineVersion="16.4",
            auroraInstanceClass="db.serverless",
            auroraBackupRetentionDays="14",
            auroraSecretRotationDays="7",
        )
    )
    assert tuned.table_name == "records_v2"
    assert tuned.aurora == type(config.aurora)(
        "crm", "16.4", "db.serverless", 14, 7, (("us-east-2", "10.20.0.0/16"), ("us-west-1", "10.21.0.0/16"))
    )
    assert config.aurora.secret_rotation_days == 30


def test_aurora_vpc_ranges_come_from_a_table_by_region_name_not_by_position() -> None:
    """Adding or removing a region renumbers no other (the VPCs are peered: a new range replaces a VPC)."""
    two = load_config(ctx(store="aurora-postgresql"))
    four = load_config(ctx(store="aurora-postgresql", replicaRegions=["eu-west-1", "us-west-1", "ap-south-1"]))
    assert two.aurora is not None and four.aurora is not None
    assert set(two.aurora.vpc_cidrs) <= set(four.aurora.vpc_cidrs)
    assert two.aurora.vpc_cidr("us-east-2") == "10.20.0.0/16"  # the range every region had before the peering
    assert len({cidr for _, cidr in four.aurora.vpc_cidrs}) == 4
    given = load_config(ctx(store="aurora-postgresql", auroraVpcCidrs='{"us-west-1": "172.16.0.0/20"}'))
    assert given.aurora is not None and given.aurora.vpc_cidr("us-west-1") == "172.16.0.0/20"


@pytest.mark.parametrize(
    ("value", "field", "says"),
    [
        ({"us-west-1": "10.20.128.0/17"}, "auroraVpcCidrs.us-west-1", "overlaps us-east-2's 10.20.0.0/16"),
        ({"us-west-1": "10.21.0.0/24"}, "auroraVpcCidrs.us-west-1", "/16 to /23"),
        ({"us-west-1": "10.21.0.0/12"}, "auroraVpcCidrs.us-west-1", "/16 to /23"),
        ({"us-west-1": "8.8.0.0/16"}, "auroraVpcCidrs.us-west-1", "private IPv4 range"),
        ({"us-west-1": "10.21.0.1/16"}, "auroraVpcCidrs.us-west-1", "private IPv4 range"),
        ({"us-west-1": "fd00::/48"}, "auroraVpcCidrs.us-west-1", "private IPv4 range"),
        ({"eu-west-1": "10.30.0.0/16"}, "auroraVpcCidrs.eu-west-1", "not a region of this deployment"),
        (["10.20.0.0/16"], "auroraVpcCidrs", "expected an object"),
        ("{not json", "auroraVpcCidrs", "expected a JSON object"),
    ],
)
def test_aurora_vpc_ranges_are_checked(value: Any, field: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(ctx(store="aurora-postgresql", auroraVpcCidrs=value))
    assert raised.value.field_name == field
    assert says in str(raised.value) and "mrk-toolkit:auroraVpcCidrs" in str(raised.value)


def test_a_region_without_a_default_range_needs_one() -> None:
    regions = {"primaryRegion": "us-isof-east-1", "replicaRegions": ["us-isof-south-1"]}
    with pytest.raises(ConfigError, match="no VPC range for us-isof-south-1"):
        load_config(ctx(store="aurora-postgresql", auroraVpcCidrs={"us-isof-east-1": "10.60.0.0/16"}, **regions))


def test_vpc_ranges_are_refused_with_the_dynamodb_store() -> None:
    with pytest.raises(ConfigError, match="applies only to store aurora-postgresql"):
        load_config(ctx(auroraVpcCidrs={"us-west-1": "10.21.0.0/16"}))


def test_the_dynamodb_store_is_the_default_and_unchanged() -> None:
    config = load_config(ctx(store=None))
    assert config.store == "dynamodb" and config.aurora is None
    assert config.table_name == "mrk-toolkit-records"
    assert load_config(ctx(store="dynamodb")) == config


def test_every_aurora_engine_version_is_one_cdk_knows() -> None:
    from aws_cdk import aws_rds as rds

    from stacks.config import AURORA_ENGINE_VERSIONS

    for version in AURORA_ENGINE_VERSIONS:
        known = getattr(rds.AuroraPostgresEngineVersion, f"VER_{version.replace('.', '_')}")
        assert known.aurora_postgres_full_version == version
